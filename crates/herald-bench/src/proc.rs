//! What `/proc` says about a process: resident memory and CPU time, and the load average.

use std::time::Duration;

use anyhow::Context;

/// Resident set size of `pid`, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

/// This process's soft limit on open files (`Max open files` in `/proc/self/limits`);
/// 1024 if it cannot be read.
pub fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

/// User plus system CPU time `pid` has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is index 0, so utime (field 14) is index 11 and stime index 12.
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    // USER_HZ is 100 on every Linux architecture Herald targets.
    Ok(Duration::from_millis(ticks * 10))
}

/// CPU and wall time of a process over a measured stretch.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: u32,
    cpu: Duration,
    at: std::time::Instant,
}

impl CpuMeter {
    /// Starts measuring `pid`.
    pub fn start(pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            pid,
            cpu: cpu_time(pid)?,
            at: std::time::Instant::now(),
        })
    }

    /// CPU used since `start`.
    pub fn used(&self) -> anyhow::Result<Duration> {
        Ok(cpu_time(self.pid)?.saturating_sub(self.cpu))
    }

    /// CPU used since `start`, as a percentage of one core.
    pub fn percent(&self) -> anyhow::Result<f64> {
        Ok(100.0 * self.used()?.as_secs_f64() / self.at.elapsed().as_secs_f64())
    }
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        let meter = CpuMeter::start(pid).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_millis(100);
        let mut spin = 0u64;
        while std::time::Instant::now() < deadline {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(
            meter.used().unwrap() > Duration::ZERO,
            "a busy 100 ms shows up"
        );
    }
}
