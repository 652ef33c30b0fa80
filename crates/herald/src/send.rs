//! `herald send`: sign a payload with any scheme ingest accepts and post it.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use herald_core::signature;

/// Verification schemes, as configured on a source.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Scheme {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
    StandardWebhooks,
    /// `<header>: <prefix><hex HMAC-SHA256>` (GitHub style by default).
    HmacSha256,
    /// `Authorization: Bearer <secret>`, as Sequin sends.
    Bearer,
}

/// Options of `herald send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The full URL, e.g. http://127.0.0.1:8081/v1/webhooks/crm.
    pub url: String,
    /// The JSON body: a file, or `-` for standard input.
    pub body: PathBuf,
    /// How to sign.
    #[arg(long, value_enum, default_value = "bearer")]
    pub scheme: Scheme,
    /// The secret or token.
    #[arg(long, env = "HERALD_SEND_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The message id (standard-webhooks); default a fresh UUIDv7.
    #[arg(long)]
    pub id: Option<String>,
    /// The signature header (hmac-sha256).
    #[arg(long, default_value = "X-Hub-Signature-256")]
    pub header: String,
    /// The prefix before the hex digest (hmac-sha256).
    #[arg(long, default_value = "sha256=")]
    pub prefix: String,
    /// The content type.
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
}

/// Signs and posts; prints the status and body; fails on a non-2xx answer.
pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let body = if args.body.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        buf
    } else {
        std::fs::read(&args.body).with_context(|| format!("reading {}", args.body.display()))?
    };
    let mut req = reqwest::Client::new()
        .post(&args.url)
        .header("content-type", &args.content_type);
    match args.scheme {
        Scheme::StandardWebhooks => {
            let key = signature::standard::decode_secret(&args.secret)
                .context("a standard-webhooks secret is whsec_<base64>")?;
            let id = args
                .id
                .unwrap_or_else(|| herald_core::event::EventId::generate().to_string());
            let ts = time::OffsetDateTime::now_utc().unix_timestamp();
            req = req
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header(
                    "webhook-signature",
                    signature::standard::sign(&key, &id, ts, &body),
                );
        }
        Scheme::HmacSha256 => {
            req = req.header(
                args.header.as_str(),
                signature::hmac_hex::sign(args.secret.as_bytes(), &args.prefix, &body),
            );
        }
        Scheme::Bearer => req = req.bearer_auth(&args.secret),
    }
    let resp = req.body(body).send().await.context("sending the request")?;
    let status = resp.status();
    println!("{status}\n{}", resp.text().await.unwrap_or_default());
    anyhow::ensure!(status.is_success(), "ingest answered {status}");
    Ok(())
}
