//! Writing results: JSON for machines, a table for people.

use std::path::PathBuf;

use serde::Serialize;

/// One scenario's results.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario name, e.g. `ingest`.
    pub scenario: String,
    /// The parameters it ran with.
    pub params: serde_json::Value,
    /// The figures: (name, value, unit).
    pub figures: Vec<(String, f64, String)>,
    /// Correctness checks that must hold (e.g. every event stored once).
    pub checks: Vec<(String, bool)>,
}

/// Prints the table and writes `bench/results/<scenario>-<timestamp>.json`.
pub fn write(report: &Report) -> anyhow::Result<()> {
    println!("\n{} ({})", report.scenario, report.params);
    for (name, value, unit) in &report.figures {
        println!("  {name:<40} {value:>14.1} {unit}");
    }
    for (name, ok) in &report.checks {
        println!("  {name:<40} {:>14}", if *ok { "ok" } else { "FAILED" });
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/results");
    std::fs::create_dir_all(&dir)?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let path = dir.join(format!("{}-{stamp}.json", report.scenario));
    let machine = serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    let doc = serde_json::json!({"machine": machine, "report": report});
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
    println!("  → {}", path.display());
    if report.checks.iter().any(|(_, ok)| !ok) {
        anyhow::bail!("a correctness check failed");
    }
    Ok(())
}
