//! `cargo xtask bench-workers`: a sweep of 12 runs (the default preset's paper MLP on the
//! built-in digits, 3 epochs each) queued with `actiscope submit` and trained by 1, 2 and 4
//! `actiscope worker` processes of one slot each, on one store file; prints the wall time of
//! each sweep and its runs per minute, then what one claim from the queue costs
//! (`crates/store/examples/claim_cost.rs`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::bench::{build_release_cli, build_release_example, release_dir};
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

/// One sweep with `workers` workers: wall seconds from the first worker's start to the last
/// one's exit.
fn sweep(
    binary: &Path,
    dir: &Path,
    args: &WorkersBenchArgs,
    workers: usize,
) -> anyhow::Result<f64> {
    let store = dir.join(format!("sweep-{workers}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("sweep-{workers}.db{suffix}")));
    }
    for seed in 0..args.runs {
        let status = Command::new(binary)
            .args(["submit", "--epochs", &args.epochs.to_string(), "--seed"])
            .arg(seed.to_string())
            .args(["--device", "flex", "--store"])
            .arg(&store)
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
                .arg(&store)
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

/// Runs the benchmark.
pub fn bench_workers(args: &WorkersBenchArgs) -> anyhow::Result<()> {
    build_release_cli()?;
    let claim_cost = build_release_example("actiscope-store", "claim_cost")?;
    let binary = release_dir().join("actiscope");
    let dir = repo_root().join("target/bench-workers");
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut one = f64::NAN;
    for workers in [1, 2, 4] {
        let secs = sweep(&binary, &dir, args, workers)?;
        if workers == 1 {
            one = secs;
        }
        println!(
            "{} runs x {} epochs, {workers} worker(s) of one slot on {cores} cores: {secs:.1} s, \
             {:.1} runs/min, {:.2}x one worker",
            args.runs,
            args.epochs,
            args.runs as f64 * 60.0 / secs,
            one / secs
        );
    }
    let output = Command::new(claim_cost).output()?;
    if !output.status.success() {
        bail!("claim_cost failed: {}", output.status);
    }
    print!("{}", String::from_utf8_lossy(&output.stdout));
    Ok(())
}
