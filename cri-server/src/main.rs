//! `cri-server`: parse flags, load the config, install logging, then run
//! the daemon or one of the subcommands (`config default`, `config dump`,
//! `check`).

use std::process::ExitCode;

use clap::Parser;
use cri_config::Config;
use cri_containerd as containerd;
use cri_server::cli::{Cli, Command, ConfigCommand};
use cri_server::{daemon, preflight, telemetry};

fn main() -> anyhow::Result<ExitCode> {
    // Before the runtime's threads exist.
    cri_server::allocator::release_large_allocations();
    // The reference grammar compiles on another core while the daemon
    // starts, not in the first call that parses an image name.
    std::thread::spawn(cri_image::ImageRef::warm_up);
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if cli.command == Some(Command::Config(ConfigCommand::Default)) {
        print!("{}", Config::default_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let source = cli.config_source();
    let (config, warnings) = Config::load(source.path(), cli.overrides())?;
    match cli.command {
        Some(Command::Config(ConfigCommand::Dump)) => {
            print!("{}", config.to_dump_toml());
            for warning in warnings {
                eprintln!("warning: unknown config key ignored: {warning}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Check) => {
            println!("config: {}", source.describe());
            for warning in &warnings {
                println!("warning unknown config key ignored: {warning}");
            }
            let server = &config.server;
            let containerd =
                containerd::connect_lazy(&server.containerd_address, &server.containerd_namespace)?;
            let report = preflight::check_all(&config, &containerd).await;
            print!("{report}");
            if report.failed() {
                println!("preflight failed");
                Ok(ExitCode::FAILURE)
            } else {
                println!("preflight ok");
                Ok(ExitCode::SUCCESS)
            }
        }
        Some(Command::Config(ConfigCommand::Default)) | None => {
            let telemetry = telemetry::init(
                &config.server.log_level,
                config.server.log_format,
                &config.tracing,
            )?;
            tracing::info!(config = %source.describe(), version = env!("CARGO_PKG_VERSION"), "config file");
            for warning in warnings {
                tracing::warn!(key = %warning, "unknown config key ignored");
            }
            let shutdown = daemon::termination_signal()?;
            let result = daemon::run(config, shutdown).await;
            telemetry.shutdown().await;
            result?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
