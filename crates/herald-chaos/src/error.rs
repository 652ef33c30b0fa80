//! What can stop a chaos run before its checker has anything to say.
//!
//! Violations of Herald's promises are not errors: they are findings, collected into the
//! report. These are failures of the harness itself (a binary missing, a port taken, a
//! service that never became ready).

use std::path::PathBuf;
use std::time::Duration;

/// Why the chaos run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service binary is missing: the workspace has not been built.
    #[error("{0} does not exist: build the binaries first (`cargo build --bins`)")]
    MissingBinary(PathBuf),
    /// A file of the run (config, rules, logs) could not be written.
    #[error("could not write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A process could not be started.
    #[error("could not start {what}")]
    Spawn {
        /// The component.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A component did not answer `/readyz` with 200 in time.
    #[error("{what} was not ready after {waited:?}")]
    NotReady {
        /// The component.
        what: String,
        /// How long we waited.
        waited: Duration,
    },
    /// Reading the final state from JetStream failed.
    #[error("could not read {what} from JetStream")]
    Nats {
        /// What was being read.
        what: &'static str,
        /// The cause.
        #[source]
        source: async_nats::Error,
    },
    /// Signing a client token failed.
    #[error("could not sign a client token")]
    Token(#[source] jsonwebtoken::errors::Error),
    /// The stack (nats-server or a service) could not be started or changed.
    #[error(transparent)]
    Stack(Box<herald_launch::StackError>),
    /// A free loopback port could not be found.
    #[error("could not find a free loopback port")]
    Port(#[source] std::io::Error),
}

impl Error {
    /// Wraps a JetStream error with what was being read.
    pub fn nats(what: &'static str, source: impl Into<async_nats::Error>) -> Self {
        Self::Nats {
            what,
            source: source.into(),
        }
    }
}
