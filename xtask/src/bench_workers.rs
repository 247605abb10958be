//! `cargo xtask bench-workers`: a sweep of 12 runs (the default preset's paper MLP on the
//! built-in digits, 3 epochs each) queued with `actiscope submit` and trained by 1, 2 and 4
//! `actiscope worker` processes of one slot each, on a SQLite file and then on a PostgreSQL
//! database; prints the wall time of each sweep and its runs per minute. Then
//! `crates/store/examples/store_overhead.rs` prints, for both engines, what one epoch of the
//! paper MLP costs the store (write, notify, another connection's read) and what one claim
//! from the queue costs.

use std::ffi::OsString;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::bench::{build_release_cli, build_release_example_with, release_dir};
use crate::shell::repo_root;

/// Options of `cargo xtask bench-workers`.
#[derive(Debug, clap::Args)]
pub struct WorkersBenchArgs {
    /// Runs in the sweep.
    #[arg(long, default_value_t = 12)]
    runs: usize,
    /// Epochs of each run.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
}

/// One sweep with `workers` workers on `store` (a fresh file, or an empty database): wall
/// seconds from the first worker's start to the last one's exit.
fn sweep(
    binary: &Path,
    store: &OsString,
    args: &WorkersBenchArgs,
    workers: usize,
) -> anyhow::Result<f64> {
    for seed in 0..args.runs {
        let status = Command::new(binary)
            .args(["submit", "--epochs", &args.epochs.to_string(), "--seed"])
            .arg(seed.to_string())
            .args(["--device", "flex", "--store"])
            .arg(store)
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("actiscope submit failed: {status}");
        }
    }
    let started = Instant::now();
    let children = (0..workers)
        .map(|_| {
            Command::new(binary)
                .args(["worker", "--exit-when-idle", "--store"])
                .arg(store)
                .env("RAYON_NUM_THREADS", "1")
                .stderr(Stdio::null())
                .spawn()
                .context("starting a worker")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            bail!("a worker failed: {status}");
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Prints the three sweeps on one engine; `store(workers)` names a fresh store for each.
fn sweeps(
    binary: &Path,
    args: &WorkersBenchArgs,
    engine: &str,
    store: &dyn Fn(usize) -> anyhow::Result<OsString>,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut one = f64::NAN;
    for workers in [1, 2, 4] {
        let secs = sweep(binary, &store(workers)?, args, workers)?;
        if workers == 1 {
            one = secs;
        }
        println!(
            "{} runs x {} epochs, {workers} worker(s) of one slot on {cores} cores, {engine}: \
             {secs:.1} s, {:.1} runs/min, {:.2}x one worker",
            args.runs,
            args.epochs,
            args.runs as f64 * 60.0 / secs,
            one / secs
        );
    }
    Ok(())
}

/// Runs the benchmark.
pub fn bench_workers(args: &WorkersBenchArgs) -> anyhow::Result<()> {
    build_release_cli()?;
    let overhead = build_release_example_with("actiscope-store", "store_overhead", &["testing"])?;
    let binary = release_dir().join("actiscope");
    let dir = repo_root().join("target/bench-workers");
    std::fs::create_dir_all(&dir)?;
    sweeps(&binary, args, "SQLite file", &|workers| {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("sweep-{workers}.db{suffix}")));
        }
        Ok(dir.join(format!("sweep-{workers}.db")).into_os_string())
    })?;
    // A PostgreSQL server of its own for each sweep, stopped when its stdin closes.
    let servers = std::cell::RefCell::new(Vec::new());
    let result = sweeps(&binary, args, "PostgreSQL", &|_| {
        let mut server = Command::new(&overhead)
            .arg("--postgres-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting PostgreSQL")?;
        let mut url = String::new();
        if let Some(stdout) = server.stdout.take() {
            std::io::BufReader::new(stdout).read_line(&mut url)?;
        }
        servers.borrow_mut().push(server);
        if url.trim().is_empty() {
            bail!("the PostgreSQL server did not start");
        }
        Ok(OsString::from(url.trim()))
    });
    for mut server in servers.into_inner() {
        drop(server.stdin.take());
        let _ = server.wait();
    }
    result?;

    // The source of the per-epoch blobs: one real run of the paper MLP.
    let source = dir.join("paper-mlp.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("paper-mlp.db{suffix}")));
    }
    let status = Command::new(&binary)
        .args(["train", "--epochs", "1", "--device", "flex", "--store"])
        .arg(&source)
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("training the source run failed: {status}");
    }
    let output = Command::new(overhead).arg(&source).arg("1").output()?;
    if !output.status.success() {
        bail!(
            "store_overhead failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&output.stdout));
    Ok(())
}
