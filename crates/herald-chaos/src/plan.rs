//! What a run looks like: its settings, the tenants and topics, the clients, and the
//! notification rules — everything the stack, the load and the checker agree on.

use std::path::PathBuf;
use std::time::Duration;

/// The tenants the producer writes to. Each has its own webhook source.
pub const TENANTS: [&str; 2] = ["alpha", "beta"];
/// The topics of every tenant.
pub const TOPICS: [&str; 2] = ["leads", "deals"];
/// The actions the producer picks from.
pub const ACTIONS: [&str; 3] = ["insert", "update", "delete"];
/// Every event id the producer makes starts with this, so notification texts (single
/// messages and digests alike) can be scanned for the ids they carry.
pub const ID_PREFIX: &str = "evt-";
/// The gateways' HS256 secret.
pub const JWT_SECRET: &str = "herald-chaos-jwt-secret-not-for-production";
/// The raw key of every webhook source (used as a Standard Webhooks `whsec_` secret).
pub const WEBHOOK_KEY: &[u8] = b"herald-chaos-webhook-signing-key";
/// The fake Telegram chat that refuses everything (`chat not found`): its events must all
/// end in the DLQ.
pub const DEAD_CHAT: i64 = 666;
/// The fake Telegram chat that accepts everything.
pub const LIVE_CHAT: i64 = 1001;
/// The fake Slack webhook name.
pub const SLACK_HOOK: &str = "beta";
/// How many gateway instances run.
pub const GATEWAYS: usize = 2;

/// How long and how hard a run is.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long the producer posts webhooks while the driver kills things.
    pub duration: Duration,
    /// The seed of every random choice (kill order and timing, actions, tenants).
    pub seed: u64,
    /// Webhooks per second, over all producers.
    pub rate: u32,
    /// Concurrent producers.
    pub producers: usize,
    /// The shortest and longest pause between two kills.
    pub kill_every: (Duration, Duration),
    /// The shortest and longest time a killed component stays down.
    pub downtime: (Duration, Duration),
    /// How long the system may take, once the chaos stops, to deliver everything.
    pub settle: Duration,
    /// Where `herald-{ingest,gateway,notifier,stats}` are.
    pub bin_dir: PathBuf,
    /// Keep the run directory (configs and every process's log) even when the run passes.
    pub keep: bool,
    /// The fault kinds drawn from (empty: SIGKILL only).
    pub faults: Vec<crate::faults::FaultKind>,
    /// The shortest and longest freeze, proxy fault or full store.
    pub pause: (Duration, Duration),
}

/// How a client talks to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Server-sent events, resuming with `Last-Event-ID`.
    Sse,
    /// WebSocket `herald.v1`, resuming with `since`.
    Ws,
}

/// One browser-like client.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientSpec {
    /// A name for the report.
    pub name: String,
    /// SSE or WebSocket.
    pub transport: Transport,
    /// The tenant of its token.
    pub tenant: &'static str,
    /// The topics it subscribes to (and its token grants).
    pub topics: Vec<&'static str>,
}

/// The clients of every run: both transports, both tenants, one and several topics.
pub fn clients() -> Vec<ClientSpec> {
    let spec = |transport, tenant, topics: &[&'static str]| {
        let name = format!(
            "{}-{tenant}-{}",
            match transport {
                Transport::Sse => "sse",
                Transport::Ws => "ws",
            },
            topics.join("+")
        );
        ClientSpec {
            name,
            transport,
            tenant,
            topics: topics.to_vec(),
        }
    };
    vec![
        spec(Transport::Sse, "alpha", &["leads", "deals"]),
        spec(Transport::Sse, "alpha", &["leads"]),
        spec(Transport::Sse, "beta", &["deals"]),
        spec(Transport::Ws, "alpha", &["deals"]),
        spec(Transport::Ws, "beta", &["leads", "deals"]),
        spec(Transport::Ws, "beta", &["leads"]),
    ]
}

/// A notification the rules ask for: which events go to which target.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The rules file's target name (`Herald-Target` on dead letters).
    pub target: &'static str,
    /// The fake's name for the target (chat id or webhook name).
    pub fake_target: &'static str,
    /// The tenant routed.
    pub tenant: &'static str,
    /// The topic routed.
    pub topic: &'static str,
    /// The actions routed (empty: all).
    pub actions: &'static [&'static str],
}

/// The routes the rules file sets up (see [`rules_toml`]).
pub const ROUTES: [Route; 3] = [
    Route {
        target: "alpha-telegram",
        fake_target: "1001",
        tenant: "alpha",
        topic: "leads",
        actions: &["insert"],
    },
    Route {
        target: "beta-slack",
        fake_target: SLACK_HOOK,
        tenant: "beta",
        topic: "leads",
        actions: &[],
    },
    Route {
        target: "dead-telegram",
        fake_target: "666",
        tenant: "alpha",
        topic: "deals",
        actions: &["delete"],
    },
];

impl Route {
    /// Whether an event of `tenant`/`topic`/`action` goes to this route's target.
    pub fn matches(&self, tenant: &str, topic: &str, action: &str) -> bool {
        self.tenant == tenant
            && self.topic == topic
            && (self.actions.is_empty() || self.actions.contains(&action))
    }
}

/// The notifier's rules file for [`ROUTES`]; `slack_url` is the fake's webhook URL.
pub fn rules_toml(slack_url: &str) -> String {
    let mut out = format!(
        r#"[targets.alpha-telegram]
kind = "telegram"
chat_id = {LIVE_CHAT}
markup = "plain"

[targets.beta-slack]
kind = "slack_webhook"
url = "{slack_url}"

[targets.dead-telegram]
kind = "telegram"
chat_id = {DEAD_CHAT}
markup = "plain"
"#
    );
    for r in ROUTES {
        let actions = if r.actions.is_empty() {
            String::new()
        } else {
            format!("actions = {:?}\n", r.actions)
        };
        out.push_str(&format!(
            "\n[[rules]]\nname = \"{}\"\ntenant = \"{}\"\ntopic = \"{}\"\n{actions}targets = [\"{}\"]\ntemplate = \"event {{{{ id }}}}\"\n",
            r.target, r.tenant, r.topic, r.target
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_what_the_rules_say() {
        assert!(ROUTES[0].matches("alpha", "leads", "insert"));
        assert!(!ROUTES[0].matches("alpha", "leads", "update"));
        assert!(!ROUTES[0].matches("beta", "leads", "insert"));
        assert!(ROUTES[1].matches("beta", "leads", "delete"));
        let rules = rules_toml("http://127.0.0.1:1/hook");
        assert!(rules.contains("actions = [\"insert\"]"), "{rules}");
        assert!(rules.contains("template = \"event {{ id }}\""), "{rules}");
        assert_eq!(rules.matches("[[rules]]").count(), ROUTES.len());
    }
}
