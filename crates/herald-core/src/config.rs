//! Layered configuration: defaults → optional TOML file → `HERALD_*` environment.
//!
//! Nested keys use a double underscore in the environment: `HERALD_NATS__URL` sets
//! `nats.url`. Values are parsed like TOML values, so `HERALD_STREAM__REPLICAS=3` is a number
//! and `HERALD_SOURCES='{crm={tenant="acme", ...}}'` is a table.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The environment variable prefix.
pub const ENV_PREFIX: &str = "HERALD_";
/// The environment variable naming the optional TOML config file.
pub const CONFIG_FILE_ENV: &str = "HERALD_CONFIG";

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A named config file does not exist.
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    /// A value is missing, malformed or of the wrong type.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        // figment's Display names the key and the provider (file or env var) at fault.
        Self::Invalid(err.to_string())
    }
}

/// Loads `T` from its defaults, then `file` (if given), then the `HERALD_*` environment.
/// `section` scopes the environment: `Some("ingest")` reads `HERALD_INGEST__*` as well, on
/// top of the unscoped variables, so one process can host several services.
pub fn load<T>(file: Option<&Path>, section: Option<&str>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Missing(path.to_owned()));
        }
        let toml = Figment::from(Toml::file(path));
        fig = match section {
            Some(s) => fig.merge(toml.clone().focus(s)),
            None => fig.merge(toml),
        };
    }
    fig = fig.merge(env(ENV_PREFIX).filter(|key| key.as_str() != "config"));
    if let Some(s) = section {
        fig = fig.merge(env(&format!("{ENV_PREFIX}{}__", s.to_ascii_uppercase())));
    }
    Ok(fig.extract()?)
}

/// The variables starting with `prefix`, nested on `__`. A variable set to the empty string is
/// unset: `HERALD_X=` (compose's `${X:-}`) means "no value", not an empty string that fails
/// to parse as a number or overrides a file's value.
fn env(prefix: &str) -> Env {
    let empty: std::collections::HashSet<String> = std::env::vars_os()
        .filter(|(_, value)| value.is_empty())
        .filter_map(|(name, _)| name.into_string().ok())
        .map(|name| name.to_ascii_uppercase())
        .collect();
    let prefix = prefix.to_ascii_uppercase();
    Env::prefixed(&prefix)
        .filter(move |key| {
            !empty.contains(&format!("{prefix}{}", key.as_str().to_ascii_uppercase()))
        })
        .split("__")
}

/// The config file named by `HERALD_CONFIG`, if any.
pub fn file_from_env() -> Option<PathBuf> {
    std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Demo {
        listen: String,
        nested: Nested,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Nested {
        replicas: usize,
    }

    #[test]
    fn layers_file_then_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("h.toml", "listen = \"from-file\"\n[nested]\nreplicas = 2\n")?;
            let cfg: Demo = load(Some(Path::new("h.toml")), None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen, "from-file");
            assert_eq!(cfg.nested.replicas, 2);
            jail.set_env("HERALD_NESTED__REPLICAS", "3");
            let cfg: Demo = load(Some(Path::new("h.toml")), None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.nested.replicas, 3);
            Ok(())
        });
    }

    #[test]
    fn an_empty_variable_is_unset() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "h.toml",
                "[demo]\nlisten = \"from-file\"\n[demo.nested]\nreplicas = 2\n",
            )?;
            jail.set_env("HERALD_LISTEN", "");
            jail.set_env("HERALD_NESTED__REPLICAS", "");
            jail.set_env("HERALD_DEMO__NESTED__REPLICAS", "");
            let cfg: Demo =
                load(Some(Path::new("h.toml")), Some("demo")).map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen, "from-file");
            assert_eq!(cfg.nested.replicas, 2);
            jail.set_env("HERALD_DEMO__NESTED__REPLICAS", "5");
            let cfg: Demo = load(None, Some("demo")).map_err(|e| e.to_string())?;
            assert_eq!(cfg.nested.replicas, 5);
            Ok(())
        });
    }

    #[test]
    fn missing_file_and_bad_values_are_clear_errors() {
        figment::Jail::expect_with(|jail| {
            assert!(matches!(
                load::<Demo>(Some(Path::new("nope.toml")), None),
                Err(ConfigError::Missing(_))
            ));
            jail.set_env("HERALD_NESTED__REPLICAS", "many");
            let err = load::<Demo>(None, None).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("nested.replicas"), "{err}");
            Ok(())
        });
    }
}
