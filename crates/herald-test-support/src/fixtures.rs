//! The shared fixtures (a copy of `../shared/fixtures`, kept in the repo so tests run from any
//! clone): real Sequin, Debezium, Telegram and Slack payloads and signature test vectors.

use std::path::PathBuf;

use serde::Deserialize;

/// The fixtures folder.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The raw bytes of `fixtures/<path>`, e.g. `sequin/insert.json`.
pub fn bytes(path: &str) -> Vec<u8> {
    let full = dir().join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("read fixture {}: {e}", full.display()))
}

/// `fixtures/<path>` parsed as JSON.
pub fn json(path: &str) -> serde_json::Value {
    serde_json::from_slice(&bytes(path)).unwrap_or_else(|e| panic!("parse fixture {path}: {e}"))
}

/// One entry of `signatures/vectors.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct SignatureVector {
    /// `standard-webhooks` or `hmac-sha256-hex`.
    pub scheme: String,
    /// Where the vector comes from.
    pub origin: String,
    /// The secret (`whsec_…` for Standard Webhooks).
    pub secret: String,
    /// The message id (Standard Webhooks).
    pub id: Option<String>,
    /// The unix timestamp (Standard Webhooks).
    pub timestamp: Option<i64>,
    /// The exact payload bytes.
    pub payload: String,
    /// The signature header value.
    pub signature: String,
    /// The header carrying the signature (HMAC).
    pub header: Option<String>,
    /// The prefix before the hex digest (HMAC).
    pub prefix: Option<String>,
    /// Whether the signature is valid.
    pub valid: bool,
}

/// Every signature vector.
pub fn signature_vectors() -> Vec<SignatureVector> {
    serde_json::from_slice(&bytes("signatures/vectors.json")).expect("parse signature vectors")
}

/// The Sequin fixtures that are single messages (not batches).
pub const SEQUIN_SINGLE: &[&str] = &[
    "sequin/insert.json",
    "sequin/update.json",
    "sequin/delete.json",
    "sequin/read-backfill.json",
    "sequin/games-update.json",
    "sequin/trades-insert.json",
];
