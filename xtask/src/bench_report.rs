//! `cargo xtask bench-report`: how long the release `actiscope report` takes to write every
//! figure of a 30-epoch paper-MLP run in both formats. The run (the default preset: the APD
//! paper's 784-40-40-40-10 MLP on the built-in digits, 30 epochs) is trained once into a fresh
//! store under `target/bench-report/`; the report then runs three times, each a new process
//! with cold caches (as a user's would be), into a fresh folder. Prints the figure and file
//! counts, the best and the median wall time, and the goal (5 s on 2 cores).

// `Value[...]` gives `Null` for a missing key instead of panicking, and a developer command may
// stop on a malformed report of its own making; request paths never index.
#![allow(clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::bench::{build_release_cli, release_dir};
use crate::shell::repo_root;

/// Options of `cargo xtask bench-report`.
#[derive(Debug, clap::Args)]
pub struct ReportBenchArgs {
    /// Epochs of the run.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Reports timed.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// One report of run 1 of `store` into `out`: wall seconds.
fn report_once(binary: &Path, store: &Path, out: &Path) -> anyhow::Result<f64> {
    let _ = std::fs::remove_dir_all(out);
    let started = Instant::now();
    let status = Command::new(binary)
        .args(["report", "--run", "1", "--store"])
        .arg(store)
        .arg("--out")
        .arg(out)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .status()
        .with_context(|| format!("starting {}", binary.display()))?;
    let secs = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("actiscope report failed: {status}");
    }
    Ok(secs)
}

/// Runs the benchmark.
pub fn bench_report(args: &ReportBenchArgs) -> anyhow::Result<()> {
    build_release_cli()?;
    let binary = release_dir().join("actiscope");
    let dir = repo_root().join("target/bench-report");
    std::fs::create_dir_all(&dir)?;
    let store = dir.join("runs.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("runs.db{suffix}")));
    }
    println!("training a {}-epoch paper-MLP run (once) ...", args.epochs);
    let status = Command::new(&binary)
        .args(["train", "--epochs", &args.epochs.to_string(), "--store"])
        .arg(&store)
        .env("RUST_LOG", "warn")
        .status()?;
    if !status.success() {
        bail!("actiscope train failed: {status}");
    }
    let out = dir.join("figures");
    let mut secs = Vec::new();
    for _ in 0..args.rounds.max(1) {
        secs.push(report_once(&binary, &store, &out)?);
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json"))?)?;
    let figures = report["figures"].as_array().map_or(0, Vec::len);
    let skipped = report["skipped"].as_array().map_or(0, Vec::len);
    let files = std::fs::read_dir(&out)?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".svg") || name.ends_with(".png")
        })
        .count();
    secs.sort_by(f64::total_cmp);
    println!(
        "actiscope report of a {}-epoch paper-MLP run: {figures} figures ({skipped} skipped), \
         {files} files (SVG and PNG); best {:.2} s, median {:.2} s over {} reports on {} \
         cores (goal: under 5 s on 2 cores)",
        args.epochs,
        secs.first().copied().unwrap_or(f64::NAN),
        secs.get(secs.len() / 2).copied().unwrap_or(f64::NAN),
        secs.len(),
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    Ok(())
}
