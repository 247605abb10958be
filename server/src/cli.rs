//! The `actiscope` command line: argument parsing and the `serve` command.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::train_cmd::open_store;
use clap::{Parser, Subcommand};
use tokio::net::{TcpListener, TcpSocket};

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
    Train(Box<crate::train_cmd::TrainArgs>),
    /// Queue a run in the store for `actiscope worker`s (the flags of `train`).
    Submit(Box<crate::train_cmd::TrainArgs>),
    /// Claim runs queued in the store and train them, resuming runs whose worker died.
    Worker(crate::worker_cmd::WorkerArgs),
    /// Import activations written by PyTorch or any framework (a run directory), once or
    /// following a job that is still writing.
    Import(crate::import_cmd::ImportArgs),
    /// Write every figure of a stored run (SVG and PNG), an index.html and report.json.
    Report(crate::report_cmd::ReportArgs),
    /// Go on with a stopped or interrupted run from its newest checkpoint.
    Resume(crate::resume_cmd::ResumeArgs),
    /// List the graphics adapters wgpu sees and say what `--device auto` does here.
    Devices(crate::devices_cmd::DevicesArgs),
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
    /// The run store: a SQLite file (created when missing) or a PostgreSQL database,
    /// `postgres://user@host:port/database` (password in the URL, `PGPASSWORD` or `~/.pgpass`).
    #[arg(long, default_value = "runs.db")]
    pub store: actiscope_store::StoreLocation,
    /// Trunk build of the dashboard to serve (the folder holding index.html). A release
    /// binary built after `trunk build --release` carries the dashboard and needs none.
    #[arg(long)]
    pub dist: Option<PathBuf>,
    /// When the store holds no run, start the default one (the APD paper's MLP trained with
    /// Adam on the built-in digits) so the dashboard fills in at once.
    #[arg(long)]
    pub default_run: bool,
    /// Epochs of the default run.
    #[arg(long, default_value_t = 30)]
    pub default_epochs: usize,
    /// Runs that train at the same time; more are queued.
    #[arg(long, default_value_t = crate::hub::DEFAULT_CONCURRENT_RUNS)]
    pub max_runs: usize,
    /// Train nothing here: runs started from the dashboard or the API are queued in the store,
    /// and `actiscope worker` processes (on this machine) claim and train them.
    #[arg(long, conflicts_with = "default_run")]
    pub no_train: bool,
    /// Runs that may wait for a training slot; more are refused (429) until one starts.
    #[arg(long, default_value_t = crate::hub::DEFAULT_MAX_QUEUED)]
    pub max_queued: usize,
    /// Token every API and websocket request must carry (`Authorization: Bearer`, the cookie
    /// a page load with `?token=` sets, or `?token=`). Required when binding anything but a
    /// loopback address. Prefer `--token-file` or `ACTISCOPE_TOKEN`: `ps` shows flags.
    #[arg(long)]
    pub token: Option<String>,
    /// A file whose first line is the token.
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Websockets open at once; more are closed at once with a reason.
    #[arg(long, default_value_t = crate::state::DEFAULT_MAX_SOCKETS)]
    pub max_sockets: usize,
    /// A host name (or address) the server may be reached by besides loopback names and the
    /// bound address; repeat for several. Requests naming any other host are refused (403).
    #[arg(long)]
    pub allow_host: Vec<String>,
    /// Where the NMF lens fits: `auto` (a GPU when there is one and a large fit's timed
    /// rounds finish sooner there), `cpu`, or `wgpu` (always, on any wgpu adapter).
    #[arg(long, default_value = "auto", value_parser = actiscope_train::nmf::NmfDeviceChoice::parse)]
    pub nmf_device: actiscope_train::nmf::NmfDeviceChoice,
}

/// The token from `--token`, `--token-file` or `ACTISCOPE_TOKEN`, in that order; empty means none.
fn resolve_token(args: &ServeArgs) -> anyhow::Result<Option<String>> {
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        (None, None) => std::env::var("ACTISCOPE_TOKEN").ok(),
    };
    Ok(token.filter(|t| !t.is_empty()))
}

/// Connections the kernel queues for the server to accept: a dashboard opened in many tabs,
/// or a lab's worth of clients connecting at once, must not overflow it (a dropped SYN costs
/// the client a second before it retries).
const LISTEN_BACKLOG: u32 = 1024;

/// A listener on `addr` with a backlog of [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Runs `actiscope serve` until Ctrl-C.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut store = open_store(&args.store)?;
    // Runs another live process trains (an `actiscope train` beside this server) stay as
    // they are.
    let interrupted = crate::owner::mark_orphans(&mut store, &crate::owner::this_process())
        .context("marking runs left running by processes that are gone")?;
    if !interrupted.is_empty() {
        tracing::warn!(
            ?interrupted,
            "runs left running by processes that are gone marked interrupted"
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
    let token = resolve_token(&args)?;
    if !args.host.is_loopback() && token.is_none() {
        anyhow::bail!(
            "binding {} exposes the server beyond this machine: give a token too \
             (ACTISCOPE_TOKEN, --token-file or --token)",
            args.host
        );
    }
    let addr = SocketAddr::new(args.host, args.port);
    let listener = listen(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    match &token {
        Some(token) => println!(
            "actiscope listening on http://{local}/?token={}",
            crate::guard::percent_encode(token)
        ),
        None => println!("actiscope listening on http://{local}/"),
    }
    let has_runs = store.run_count().context("counting stored runs")? > 0;
    let frontend = crate::frontend::Frontend::choose(args.dist);
    if frontend == crate::frontend::Frontend::Missing {
        tracing::warn!("no dashboard to serve: pass --dist DIR or run `cargo xtask run`");
    }
    let device = tokio::task::spawn_blocking(|| {
        actiscope_train::device::choose(actiscope_train::device::DeviceChoice::Auto)
    })
    .await
    .context("probing for a GPU")?
    .context("choosing a training device")?;
    if device.backend == actiscope_train::device::DeviceChoice::Flex {
        tracing::info!("--device auto trains on {}", device.description);
    } else {
        tracing::info!(
            "--device auto times each run's model on {} and on flex (CPU), and trains on the faster",
            device.description
        );
    }
    let state = AppState::with_frontend(
        store,
        frontend,
        crate::state::ServerOptions {
            no_train: args.no_train,
            concurrent_runs: args.max_runs,
            max_queued: args.max_queued,
            token,
            host_policy: crate::guard::HostPolicy::for_bind(args.host, args.allow_host),
            max_sockets: args.max_sockets,
            nmf_device: args.nmf_device,
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
        println!(
            "started the default run {run_id} (the APD paper's MLP with Adam on the built-in \
             digits; `actiscope train --preset apd-paper` trains the paper's exact setting)"
        );
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
