//! The one `main` of every service binary: `--config` (or `HERALD_CONFIG`), config, telemetry,
//! signals, NATS, listener, build, run, and a clean exit that says why.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use super::{Service, ServiceConfig, ServiceContext, bind};
use crate::config::{self, ConfigError};
use crate::nats::ConnectError;
use crate::{shutdown, telemetry};

/// An error of a service or a subcommand, boxed.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The command line of every service binary.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args<C: Subcommand> {
    /// A TOML config file (also HERALD_CONFIG).
    #[arg(long, env = crate::config::CONFIG_FILE_ENV)]
    pub config: Option<PathBuf>,
    /// What to do instead of serving (none: serve).
    #[command(subcommand)]
    pub command: Option<C>,
}

impl<C: Subcommand> Args<C> {
    /// Parses the process's arguments under `S`'s name and help text; exits on `--help`,
    /// `--version` or a usage error (code 2), as clap does.
    pub fn parse_for<S: Service>() -> Self {
        let about = format!(
            "{}\n\nConfiguration: defaults, then the TOML file, then HERALD_* environment \
             variables (nested keys with `__`, e.g. HERALD_NATS__URL). See docs/{}.md.",
            S::ABOUT,
            S::SECTION
        );
        let matches = Self::command()
            .name(S::NAME)
            .about(S::ABOUT)
            .long_about(about)
            .get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }
}

/// A subcommand a service binary runs instead of serving (e.g. `herald-stats rebuild`): it
/// gets the loaded, validated config and a connected context, and no listener.
pub trait Command<S: Service>: Subcommand + Send {
    /// Runs the subcommand to completion.
    fn run(
        self,
        cfg: S::Config,
        ctx: ServiceContext,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// No subcommands: the binary only serves.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum NoCommand {}

impl<S: Service> Command<S> for NoCommand {
    async fn run(self, _: S::Config, _: ServiceContext) -> Result<(), BoxError> {
        match self {}
    }
}

/// Why a service binary stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config file or the environment could not be read.
    #[error("loading configuration")]
    Load(#[from] ConfigError),
    /// The config section is invalid.
    #[error("invalid configuration")]
    Invalid(#[source] BoxError),
    /// The NATS client could not be set up.
    #[error("setting up NATS")]
    Connect(#[from] ConnectError),
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] super::BindError),
    /// The service failed to build or while running.
    #[error("the service failed")]
    Service(#[source] BoxError),
    /// The subcommand failed.
    #[error("the command failed")]
    Command(#[source] BoxError),
}

/// The whole `main` of a service binary: see [`main_with`]; this one has no subcommands.
pub async fn main<S: Service>() -> ExitCode {
    main_with::<S, NoCommand>().await
}

/// The whole `main` of a service binary with subcommands `C`: parses the arguments, loads
/// `[nats]`, `[stream]`, `[log]`, `[http]` and `S`'s section, validates it, inits telemetry,
/// turns SIGINT/SIGTERM into the shutdown token, connects to NATS as `S::NAME`, then runs `C`
/// if one was given, or binds `listen` (see [`bind`]), builds `S`, logs its address and
/// serves. On error it logs and prints the cause chain and exits 1.
pub async fn main_with<S: Service, C: Command<S>>() -> ExitCode {
    match start::<S, C>(Args::parse_for::<S>()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let chain = crate::error_chain(&err);
            tracing::error!(error = %chain, "{} stopped", S::NAME);
            eprintln!("{}: {chain}", S::NAME);
            ExitCode::FAILURE
        }
    }
}

async fn start<S: Service, C: Command<S>>(args: Args<C>) -> Result<(), StartError> {
    let file = args.config.as_deref();
    let common: super::CommonConfig = config::load(file, None)?;
    let cfg: S::Config = config::load(file, Some(S::SECTION))?;
    telemetry::init(&common.log);
    cfg.validate()
        .map_err(|err| StartError::Invalid(err.into()))?;
    let ctx = ServiceContext::connect(&common, S::NAME, shutdown::on_signals()).await?;
    if let Some(command) = args.command {
        return command.run(cfg, ctx).await.map_err(StartError::Command);
    }
    let listener = bind(cfg.listen())?;
    let service = S::build(cfg, listener, ctx)
        .await
        .map_err(|err| StartError::Service(err.into()))?;
    tracing::info!(addr = %service.local_addr(), "{} listening", S::NAME);
    service
        .run_until_stopped()
        .await
        .map_err(|err| StartError::Service(err.into()))
}
