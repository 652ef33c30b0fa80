//! Every service refuses `herald up`'s public dev credentials on a listener other hosts can
//! reach, whoever starts it (its own binary or `herald up`).

use herald_core::dev;
use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_test_support::NatsServer;
use tokio::net::TcpListener;

/// The error a service's `App::build` gave on `addr` (`None`: it built).
async fn build_error(nats: &NatsServer, service: &str, addr: &str) -> Option<String> {
    let (ctx, _shutdown) = herald_test_support::service::context(nats, service).await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let dev = Secret::new;
    match service {
        "ingest" => {
            let mut cfg = herald_ingest::Config::default();
            let tenant = TenantId::parse(dev::TENANT).unwrap();
            cfg.api_keys.insert(tenant, vec![dev(dev::API_KEY)]);
            let app = herald_ingest::App::build(cfg, listener, ctx).await;
            app.err().map(|e| format!("{:#}", anyhow::Error::from(e)))
        }
        "gateway" => {
            let mut cfg = herald_gateway::Config::default();
            cfg.jwt.secret = Some(dev(dev::JWT_SECRET));
            let app = herald_gateway::App::build(cfg, listener, ctx).await;
            app.err().map(|e| format!("{:#}", anyhow::Error::from(e)))
        }
        "notifier" => {
            let mut cfg = herald_notifier::Config::default();
            cfg.slack.bot_token = Some(dev(dev::SEQUIN_TOKEN));
            let app = herald_notifier::App::build(cfg, listener, ctx).await;
            app.err().map(|e| format!("{:#}", anyhow::Error::from(e)))
        }
        other => unreachable!("{other}"),
    }
}

#[tokio::test]
async fn every_service_refuses_a_dev_credential_on_a_non_loopback_listener() {
    let nats = NatsServer::start().await;
    for service in ["ingest", "gateway", "notifier"] {
        let err = build_error(&nats, service, "0.0.0.0:0")
            .await
            .unwrap_or_else(|| panic!("{service} started on 0.0.0.0 with a dev credential"));
        let setting = format!("HERALD_{}__LISTEN=0.0.0.0:", service.to_uppercase());
        assert!(
            err.contains(&setting) && err.contains("is not loopback"),
            "{err}"
        );
        for (_, value) in dev::CREDENTIALS {
            assert!(!err.contains(value), "the error names, never shows: {err}");
        }
        assert_eq!(
            build_error(&nats, service, "127.0.0.1:0").await,
            None,
            "{service} on loopback keeps working with the dev credentials"
        );
    }
}
