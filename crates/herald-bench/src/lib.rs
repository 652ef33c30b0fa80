//! Herald's benchmarks: a load generator on 127.0.0.1 against real services and a real
//! nats-server, bounded in count and time. The gateway runs as its own release process so
//! its CPU and memory can be read from `/proc`; ingest runs in this process.
//!
//! | module | what |
//! |---|---|
//! | [`fanout`] | A: fan-out deliveries/s and latency; B: RSS per idle connection — each next to nats-server's own WebSocket |
//! | [`storm`] | C: every client drops and resumes by cursor while events flow |
//! | [`ingest`] | D: signed webhooks/s at N concurrent requests vs raw JetStream publishes/s |
//! | [`stats`] | E: events/s aggregated into exact counters |
//! | [`state`] | F: collections: row changes applied/s, mirror load, memory per row, whole-snapshot latency |
//! | [`rawwriter`] | A's floor: one thread writing a pre-built frame to every socket, same clients, same run |
//! | [`stack`] | the system under test: nats-server (+ WebSocket), ingest, the gateway process |
//! | [`crowd`], [`sse`], [`natsws`] | the clients: raw-HTTP SSE, NATS-protocol WebSocket |
//! | [`track`] | per-client counters: gaps, duplicates, latency |
//! | [`proc`] | RSS and CPU time from `/proc` |
//! | [`report`] | machine-readable JSON plus a short table under `bench/results/` |
//! | [`cli`] | the command line: one subcommand per scenario |

pub mod cli;
pub mod crowd;
pub mod fanout;
pub mod ingest;
pub mod natsws;
pub mod proc;
pub mod rawwriter;
pub mod report;
pub mod sse;
pub mod stack;
pub mod state;
pub mod stats;
pub mod storm;
pub mod track;

/// Every scenario with its defaults: A and B, C, D, E, F.
pub async fn all() -> anyhow::Result<Vec<report::Report>> {
    let mut all = fanout::run(fanout::Args::default()).await?;
    all.push(storm::run(storm::Args::default()).await?);
    all.push(ingest::run(ingest::Args::default()).await?);
    all.push(stats::run(stats::Args::default()).await?);
    all.push(state::run(state::Args::default()).await?);
    Ok(all)
}

/// A, B and C with 200 clients, for CI: only their correctness checks matter.
pub async fn quick() -> anyhow::Result<Vec<report::Report>> {
    let (clients, rate) = (200, 50.0);
    let load = stack::Load {
        clients,
        rate,
        ..stack::Load::default()
    };
    let a = fanout::Args {
        load: load.clone(),
        seconds: 2,
        burst: 20,
    };
    let c = load;
    let mut all = fanout::run(a).await?;
    all.push(storm::run(c).await?);
    Ok(all)
}
