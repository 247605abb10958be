//! Entry point of the `actiscope` binary; see [`actiscope_server::cli`].

use std::process::ExitCode;

use clap::Parser;

use actiscope_server::cli::{Cli, Command, serve};
use actiscope_server::devices_cmd::devices;
use actiscope_server::import_cmd::import;
use actiscope_server::report_cmd::report;
use actiscope_server::resume_cmd::resume;
use actiscope_server::train_cmd::{BadInput, train};
use actiscope_server::worker_cmd::{submit, worker};

/// Logging unless `RUST_LOG` says otherwise: ours at `info`; CubeCL's runtime only warns, as
/// it would otherwise print a line per kernel it tunes (the GPU's preparation is told by
/// actiscope itself, step by step).
const DEFAULT_LOG_FILTER: &str = "info,cubecl_runtime=warn";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(serve(args))),
        Command::Train(args) => train(&args),
        Command::Import(args) => import(&args),
        Command::Report(args) => report(&args),
        Command::Resume(args) => resume(&args),
        Command::Submit(args) => submit(&args),
        Command::Worker(args) => worker(&args),
        Command::Devices(args) => devices(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<BadInput>().is_some() => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
