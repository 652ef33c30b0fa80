//! The example configuration in deploy/ parses and is valid for every service.

use herald_core::service::{CommonConfig, ServiceConfig as _};

#[test]
fn the_example_config_is_valid() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/herald.example.toml"
    ));
    let common: CommonConfig = herald_core::config::load(Some(path), None).unwrap();
    assert_eq!(
        common.stream.duplicate_window,
        std::time::Duration::from_secs(900)
    );
    let ingest: herald_ingest::Config =
        herald_core::config::load(Some(path), Some("ingest")).unwrap();
    ingest.validate().unwrap();
    assert_eq!(ingest.sources["crm"].tenant.as_str(), "acme");
}
