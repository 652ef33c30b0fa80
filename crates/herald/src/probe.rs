//! `herald probe <url>`: exit 0 when the URL answers 2xx. The container healthcheck, so the
//! runtime image needs no curl.

use std::time::Duration;

/// Options of `herald probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The URL to GET, e.g. http://127.0.0.1:8081/readyz.
    pub url: String,
    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// GETs the URL; fails unless the answer is 2xx.
pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let resp = reqwest::Client::builder()
        .timeout(args.timeout)
        .build()?
        .get(&args.url)
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "{} answered {}",
        args.url,
        resp.status()
    );
    Ok(())
}
