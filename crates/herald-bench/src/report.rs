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
    /// The machine's 1-minute load average when the scenario finished (the machine is
    /// shared; figures taken under load are floors).
    pub load_average: f64,
}

impl Report {
    /// An empty report of `scenario` run with `params`.
    pub fn new(scenario: &str, params: serde_json::Value) -> Self {
        Self {
            scenario: scenario.into(),
            params,
            figures: Vec::new(),
            checks: Vec::new(),
            load_average: crate::proc::load_average(),
        }
    }

    /// Adds a figure.
    #[must_use]
    pub fn figure(mut self, name: &str, value: f64, unit: &str) -> Self {
        self.figures.push((name.into(), value, unit.into()));
        self
    }

    /// Adds a correctness check.
    #[must_use]
    pub fn check(mut self, name: &str, ok: bool) -> Self {
        self.checks.push((name.into(), ok));
        self
    }

    /// Whether every check holds.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }
}

/// Prints the table; with `save`, also writes `bench/results/<scenario>-<timestamp>.json`
/// with the machine and the command line.
pub fn write(report: &Report, save: bool) -> anyhow::Result<()> {
    println!(
        "\n{} ({}) load average {:.2}",
        report.scenario, report.params, report.load_average
    );
    for (name, value, unit) in &report.figures {
        println!("  {name:<44} {value:>14.1} {unit}");
    }
    for (name, ok) in &report.checks {
        println!("  {name:<44} {:>14}", if *ok { "ok" } else { "FAILED" });
    }
    if !save {
        return Ok(());
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/results");
    std::fs::create_dir_all(&dir)?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let path = dir.join(format!("{}-{stamp}.json", report.scenario));
    let machine = serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu_model(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    let command: Vec<String> = std::env::args().collect();
    let doc =
        serde_json::json!({"machine": machine, "command": command.join(" "), "report": report});
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
    println!("  → {}", path.display());
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default()
}
