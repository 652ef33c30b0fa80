//! Signed webhook requests for every scheme ingest accepts.

use herald_core::signature;

/// Headers (name, value) that sign `body` the Standard Webhooks way, with id `id`, now.
pub fn standard_headers(secret: &str, id: &str, body: &[u8]) -> Vec<(String, String)> {
    standard_headers_at(
        secret,
        id,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        body,
    )
}

/// Like [`standard_headers`] at an explicit unix `timestamp`.
pub fn standard_headers_at(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let key = signature::standard::decode_secret(secret).expect("a whsec_ secret");
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        (
            "webhook-signature".into(),
            signature::standard::sign(&key, id, timestamp, body),
        ),
    ]
}

/// The GitHub-style header `X-Hub-Signature-256: sha256=<hex>` for `body`.
pub fn github_headers(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![(
        "X-Hub-Signature-256".into(),
        signature::hmac_hex::sign(secret.as_bytes(), "sha256=", body),
    )]
}

/// `Authorization: Bearer <token>`, as Sequin sends it.
pub fn bearer_headers(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {token}"))]
}

/// Applies `headers` to a reqwest request.
pub fn apply(
    mut req: reqwest::RequestBuilder,
    headers: &[(String, String)],
) -> reqwest::RequestBuilder {
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req
}
