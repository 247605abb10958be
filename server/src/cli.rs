//! The `actiscope` command line: argument parsing and the `serve` command.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::app::app;
use crate::state::AppState;

/// actiscope: see how a neural network learns, epoch by epoch.
#[derive(Debug, Parser)]
#[command(name = "actiscope", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the dashboard and the API for the runs in a store.
    Serve(ServeArgs),
    /// Train a network headless, storing every epoch in a run store.
    Train(crate::train_cmd::TrainArgs),
    /// Time the NMF updates on a burn device (for `cargo xtask bench-nmf --device`).
    #[command(hide = true)]
    BenchNmfDevice(BenchNmfDeviceArgs),
}

/// Arguments of `actiscope serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to bind. Only loopback is safe without further protection.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to bind; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// SQLite file holding the runs (created when missing).
    #[arg(long, default_value = "runs.db")]
    pub store: PathBuf,
    /// Trunk build of the dashboard to serve (the folder holding index.html).
    #[arg(long)]
    pub dist: Option<PathBuf>,
    /// When the store holds no run, start the default one (the APD paper's MLP on the
    /// built-in digits) so the dashboard fills in at once.
    #[arg(long)]
    pub default_run: bool,
    /// Epochs of the default run.
    #[arg(long, default_value_t = 30)]
    pub default_epochs: usize,
    /// Runs that train at the same time; more are queued.
    #[arg(long, default_value_t = crate::hub::DEFAULT_CONCURRENT_RUNS)]
    pub max_runs: usize,
    /// Token every API and websocket request must carry (`Authorization: Bearer` or
    /// `?token=`). Required when binding anything but a loopback address.
    #[arg(long)]
    pub token: Option<String>,
}

/// Runs `actiscope serve` until Ctrl-C.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = actiscope_store::Store::open(&args.store)
        .with_context(|| format!("opening the run store {}", args.store.display()))?;
    let interrupted = store
        .mark_interrupted()
        .context("marking runs left running by a previous process")?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "runs left running by a previous process marked interrupted"
        );
    }
    if let Some(dist) = &args.dist
        && !dist.join("index.html").is_file()
    {
        anyhow::bail!(
            "{} holds no index.html; build the dashboard with `trunk build` first",
            dist.display()
        );
    }
    if !args.host.is_loopback() && args.token.as_deref().is_none_or(str::is_empty) {
        anyhow::bail!(
            "binding {} exposes the server beyond this machine: pass --token <secret> too",
            args.host
        );
    }
    let addr = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    println!("actiscope listening on http://{local}/");
    let has_runs = store.run_count().context("counting stored runs")? > 0;
    let state = AppState::with_options(
        store,
        args.dist,
        crate::state::ServerOptions {
            concurrent_runs: args.max_runs,
            token: args.token,
        },
    );
    if args.default_run && !has_runs {
        let config = actiscope_train::TrainConfig {
            epochs: args.default_epochs,
            ..actiscope_train::TrainConfig::default()
        };
        let run_id = state
            .hub()
            .start_run(config)
            .await
            .context("starting the default run")?;
        println!("started the default run {run_id} (paper MLP on the built-in digits)");
    }
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            // If the signal handler cannot be installed the server simply runs until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
        .context("serving HTTP")
}

/// Arguments of the hidden `bench-nmf-device` command.
#[derive(Debug, clap::Args)]
pub struct BenchNmfDeviceArgs {
    /// `rows x cols` little-endian `f32` values, row-major (instances in rows).
    #[arg(long)]
    pub matrix: PathBuf,
    /// Rows (instances).
    #[arg(long)]
    pub rows: usize,
    /// Columns (features).
    #[arg(long)]
    pub cols: usize,
    /// Rank of the factorization.
    #[arg(long, default_value_t = 20)]
    pub rank: usize,
    /// Rounds of updates.
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// wgpu, vulkan or flex.
    #[arg(long, default_value = "wgpu")]
    pub device: String,
}

/// Runs `bench-nmf-device`: one warm-up fit (it compiles the GPU kernels), then the best of
/// three timed fits, printed as one JSON line (`secs`, `rmse`, `device`).
pub fn bench_nmf_device(args: &BenchNmfDeviceArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let bytes = std::fs::read(&args.matrix)
        .with_context(|| format!("reading {}", args.matrix.display()))?;
    let values: Vec<f32> = bytes
        .as_chunks::<4>()
        .0
        .iter()
        .map(|c| f32::from_le_bytes(*c))
        .collect();
    let matrix = actiscope_analysis::Matrix::new(args.rows, args.cols, values)
        .context("the matrix does not have rows x cols values")?;
    let choice = actiscope_train::device::DeviceChoice::parse(&args.device)?;
    let chosen = actiscope_train::device::choose(choice)?;
    let fit = |iterations: usize| {
        actiscope_train::nmf_device::nmf_on_device(
            &matrix,
            args.rank,
            iterations,
            0,
            1e-9,
            &chosen.device,
        )
    };
    fit(args.iterations.min(5))?;
    let mut best_secs = f64::INFINITY;
    let mut rmse = f64::NAN;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        rmse = fit(args.iterations)?.rmse;
        best_secs = best_secs.min(started.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({"secs": best_secs, "rmse": rmse, "device": chosen.description})
    );
    Ok(())
}
