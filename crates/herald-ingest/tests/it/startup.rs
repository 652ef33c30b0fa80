//! Start-up refusals: ingest does not start with a secret anyone can compute, or with a
//! tolerance that outlives de-duplication (issue 13, "Config refuses weak secrets").

use std::time::Duration;

use herald_core::secret::Secret;
use herald_ingest::config::{ConfigError, Verify};
use herald_ingest::{App, Error};
use herald_test_support::{NatsServer, net, service};

use crate::helpers::test_config;

async fn build(cfg: herald_ingest::Config) -> Result<App, Error> {
    let nats = NatsServer::start().await;
    let (ctx, _shutdown) = service::context(&nats, "ingest-startup").await;
    App::build(cfg, net::listener().await, ctx).await
}

#[tokio::test]
async fn weak_secrets_and_long_tolerances_stop_ingest_at_build() {
    herald_core::telemetry::init_for_tests();
    let mut empty = test_config();
    empty.sources.get_mut("crm").unwrap().secrets = vec![Secret::new("")];
    let err = build(empty)
        .await
        .err()
        .expect("an empty bearer token is refused");
    assert!(
        matches!(&err, Error::Config(ConfigError::EmptySecret(s)) if s == "crm"),
        "{err}"
    );

    let mut no_key = test_config();
    no_key.sources.get_mut("events").unwrap().secrets = vec![Secret::new("whsec_")];
    let err = build(no_key)
        .await
        .err()
        .expect("whsec_ without a key is refused");
    assert!(err.to_string().contains("\"events\""), "{err}");

    // The default duplicate window is 15 min: a 10 min tolerance verifies a replay for 20.
    let mut long = test_config();
    long.sources.get_mut("crm-signed").unwrap().verify = Verify::StandardWebhooks {
        tolerance: Duration::from_secs(600),
    };
    let err = build(long).await.err().expect("the tolerance is refused");
    assert!(
        matches!(&err, Error::Config(ConfigError::ToleranceTooLong { source_name, .. }) if source_name == "crm-signed"),
        "{err}"
    );
    assert!(build(test_config()).await.is_ok());
}
