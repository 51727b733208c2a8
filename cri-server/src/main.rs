//! `cri-server`: parse flags, load the config, install logging, serve.

use clap::Parser;
use cri_server::cli::Cli;
use cri_server::config::Config;
use cri_server::{daemon, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (config, warnings) = Config::load(cli.config.as_deref(), cli.overrides())?;
    telemetry::init(&config.server.log_level, config.server.log_format)?;
    for warning in warnings {
        tracing::warn!(key = %warning, "unknown config key ignored");
    }
    let shutdown = daemon::termination_signal()?;
    daemon::run(config, shutdown).await?;
    Ok(())
}
