//! `cargo xtask bench-similarity`: actiscope's similarity measures against a straightforward
//! numpy implementation of the same formulas (`xtask/bench/numpy_similarity.py`), side by side
//! in one run, on the same files written by `examples/similarity_bench.rs` into
//! target/bench-similarity/. numpy reads the `f32` files and converts them to `f64` once,
//! outside the timing, and computes in `f64`. Two cases:
//! 1. a pair of 5,000 x 512 matrices (ReLU Gaussian blobs and a noisy linear map of them):
//!    linear CKA, debiased CKA, SVCCA (99% of the variance) and PWCCA (plain CCA); both
//!    sides' values are printed and must agree to 1e-4;
//! 2. the layers x epochs grid of a synthetic 30-epoch run (3 layers of 1,000 x 40 per
//!    epoch) against the last epoch, SVCCA and CKA, the whole grid timed.
//!
//! Each measure: best of 3 after a warm-up. numpy's BLAS is limited to the line's thread
//! count; actiscope's similarity module takes a second thread when
//! `available_parallelism` reports one, which `taskset` limits, so the actiscope side runs
//! under `taskset -c 0` (1 thread) and `taskset -c 0,1` (2 threads) when `taskset` exists.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::bench::{bench_python, build_release_example, number, report, run_python_peer};
use crate::shell::{repo_root, run};

/// Options of `cargo xtask bench-similarity`.
#[derive(Debug, clap::Args)]
pub struct SimilarityBenchArgs {
    /// Instances of the pair (case 1).
    #[arg(long, default_value_t = 5_000)]
    rows: usize,
    /// Neurons of each matrix of the pair.
    #[arg(long, default_value_t = 512)]
    cols: usize,
    /// Probe instances of the grid (case 2).
    #[arg(long, default_value_t = 1_000)]
    instances: usize,
    /// Neurons per layer of the grid.
    #[arg(long, default_value_t = 40)]
    neurons: usize,
    /// Layers of the grid.
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// Epochs of the grid.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Threads of the second line (the first runs both sides on one thread).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Values of the two sides closer than this count as agreeing.
const TOLERANCE: f64 = 1e-4;

/// The numbers of the JSON array `key` of a report.
fn numbers(value: &serde_json::Value, key: &str) -> anyhow::Result<Vec<f64>> {
    value
        .get(key)
        .and_then(serde_json::Value::as_array)
        .with_context(|| format!("no {key} in the report"))?
        .iter()
        .map(|v| v.as_f64().with_context(|| format!("{key}: not a number")))
        .collect()
}

/// Prints the most any exact linear CKA could gain over numpy's on this machine: the feature
/// form needs `XᵀX` and `YᵀY` (lower triangles) and `YᵀX`, `2 n (p(p+1)/2 + q(q+1)/2 + pq)`
/// flops; at the faster of the two `f32` matrix-product rates measured on these matrices
/// (faer's on one thread times `threads`, as if it scaled perfectly; OpenBLAS's through numpy
/// on `threads`) that takes at least `flops / rate` seconds, so no CKA built on those kernels
/// can be more than numpy's time over that many times faster.
fn ceiling(
    ours: &serde_json::Value,
    theirs: &serde_json::Value,
    args: &SimilarityBenchArgs,
    threads: usize,
) -> anyhow::Result<()> {
    let (n, p) = (args.rows as f64, args.cols as f64);
    let flops = 2.0 * n * (p * (p + 1.0) + p * p);
    let (faer_rate, blas_rate) = (
        number(ours, "gemm_f32_gflops")? * threads as f64,
        number(theirs, "gemm_f32_gflops")?,
    );
    let fastest = faer_rate.max(blas_rate) * 1e9;
    let least_secs = flops / fastest;
    println!(
        "  ceiling: exact CKA needs {:.2} GFLOP of products; at the fastest f32 rate measured \
         on them here\n  (faer {faer_rate:.1}, OpenBLAS {blas_rate:.1} GFLOP/s on {threads} thread(s)) that is at least \
         {least_secs:.4} s, so at most {:.2}x numpy's CKA",
        flops / 1e9,
        number(theirs, "cka_secs")? / least_secs
    );
    Ok(())
}

/// Runs both sides and prints the comparison.
pub fn bench_similarity(args: &SimilarityBenchArgs) -> anyhow::Result<()> {
    let root = repo_root();
    let dir = root.join("target/bench-similarity");
    std::fs::create_dir_all(&dir)?;
    let binary = build_release_example("actiscope-analysis", "similarity_bench")?;
    let x = dir.join(format!("pair-x-{}x{}.f32", args.rows, args.cols));
    let y = dir.join(format!("pair-y-{}x{}.f32", args.rows, args.cols));
    let grid = dir.join(format!(
        "grid-{}e-{}l-{}x{}.f32",
        args.epochs, args.layers, args.instances, args.neurons
    ));
    let (rows, cols) = (args.rows.to_string(), args.cols.to_string());
    let grid_shape = [
        args.instances.to_string(),
        args.neurons.to_string(),
        args.layers.to_string(),
        args.epochs.to_string(),
    ];
    let grid_flags = [
        "--instances",
        &grid_shape[0],
        "--neurons",
        &grid_shape[1],
        "--layers",
        &grid_shape[2],
        "--epochs",
        &grid_shape[3],
    ];
    run(Command::new(&binary)
        .arg("generate-pair")
        .args([&x, &y])
        .args(["--rows", &rows, "--cols", &cols]))?;
    run(Command::new(&binary)
        .arg("generate-grid")
        .arg(&grid)
        .args(grid_flags))?;

    let taskset = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    // The actiscope side in `mode` on `threads` cores (`taskset`; without it, whatever the
    // machine has).
    let ours = |mode: &str, files: &[&Path], flags: &[&str], threads: usize| {
        let mut command = if taskset {
            let cores = (0..threads)
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let mut command = Command::new("taskset");
            command.args(["-c", &cores]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let output = command
            .arg(mode)
            .args(files)
            .args(flags)
            .output()
            .context("running similarity_bench")?;
        report(&output, "actiscope (similarity_bench)")
    };
    let python = bench_python(&[("numpy", "numpy")])?;
    let script = root.join("xtask/bench/numpy_similarity.py");
    let theirs = |peer_args: &[&std::ffi::OsStr], threads: usize| {
        run_python_peer(&python, &script, peer_args, threads, "numpy peer")
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "similarity, actiscope_analysis::similarity against numpy (float64 on the float32 input, \
         converted once outside the timing), best of 3 after a warm-up per measure{}:",
        if taskset {
            String::new()
        } else {
            format!(
                "; no taskset here, so actiscope uses what it finds ({cores} core(s)) on every line"
            )
        }
    );
    let mut disagreements = Vec::new();
    let mut thread_counts = vec![1];
    if args.threads > 1 && cores > 1 {
        thread_counts.push(args.threads.min(cores));
    }
    for threads in thread_counts {
        let pair_flags = ["--rows", rows.as_str(), "--cols", cols.as_str()];
        let our_pair = ours("pair", &[&x, &y], &pair_flags, threads)?;
        let their_pair = theirs(
            &[
                "pair".as_ref(),
                x.as_os_str(),
                y.as_os_str(),
                rows.as_ref(),
                cols.as_ref(),
            ],
            threads,
        )?;
        let our_grid = ours("grid", &[&grid], &grid_flags, threads)?;
        let mut grid_args = vec!["grid".as_ref(), grid.as_os_str()];
        grid_args.extend(grid_shape.iter().map(std::ffi::OsStr::new));
        let their_grid = theirs(&grid_args, threads)?;
        println!(
            "\n  {threads} thread(s) each side (actiscope threads seen: {}; numpy {}):",
            number(&our_pair, "threads")?,
            their_pair
                .get("numpy")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
        );
        println!(
            "  {:<46} {:>11} {:>11} {:>8} {:>14} {:>14}",
            "", "actiscope", "numpy", "ratio", "actiscope val", "numpy val"
        );
        let case = format!("{} x {} pair", args.rows, args.cols);
        for (key, label) in [
            ("cka", "CKA"),
            ("cka_debiased", "debiased CKA"),
            ("svcca", "SVCCA (99%)"),
            ("pwcca", "PWCCA (plain CCA)"),
        ] {
            let secs = format!("{key}_secs");
            let (ours_s, theirs_s) = (number(&our_pair, &secs)?, number(&their_pair, &secs)?);
            let (ours_v, theirs_v) = (number(&our_pair, key)?, number(&their_pair, key)?);
            if (ours_v - theirs_v).abs() > TOLERANCE {
                disagreements.push(format!("{label}: {ours_v} vs {theirs_v}"));
            }
            println!(
                "  {:<46} {:>9.4} s {:>9.4} s {:>7.2}x {:>14.8} {:>14.8}",
                format!("{case}, {label}"),
                ours_s,
                theirs_s,
                theirs_s / ours_s,
                ours_v,
                theirs_v
            );
        }
        ceiling(&our_pair, &their_pair, args, threads)?;
        let case = format!(
            "grid {} layers x {} epochs of {} x {}",
            args.layers, args.epochs, args.instances, args.neurons
        );
        for (key, label) in [("svcca", "SVCCA"), ("cka", "CKA")] {
            let secs = format!("{key}_secs");
            let (ours_s, theirs_s) = (number(&our_grid, &secs)?, number(&their_grid, &secs)?);
            let values = format!("{key}_values");
            let (ours_v, theirs_v) = (numbers(&our_grid, &values)?, numbers(&their_grid, &values)?);
            if ours_v.len() != theirs_v.len() {
                bail!(
                    "{label} grids differ in size: {} vs {}",
                    ours_v.len(),
                    theirs_v.len()
                );
            }
            let worst = ours_v
                .iter()
                .zip(&theirs_v)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            if worst > TOLERANCE {
                disagreements.push(format!("{label} grid: largest difference {worst:.2e}"));
            }
            println!(
                "  {:<46} {:>9.4} s {:>9.4} s {:>7.2}x {:>29}",
                format!("{case}, {label}"),
                ours_s,
                theirs_s,
                theirs_s / ours_s,
                format!("max |diff| {worst:.1e}")
            );
        }
    }
    println!("\n  ratio = numpy / actiscope (goal: at least 5x on SVCCA and CKA)");
    if disagreements.is_empty() {
        println!("  values agree to {TOLERANCE:e} on every measure and grid cell");
    } else {
        println!("  values DISAGREE: {}", disagreements.join("; "));
    }
    Ok(())
}
