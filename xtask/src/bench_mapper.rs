//! `cargo xtask bench-mapper`: actiscope's mapper against KeplerMapper side by side, on the
//! same matrix: 10,000 x 40 clustered synthetic activations (10 Gaussian blobs pushed through
//! a ReLU, written by `examples/mapper_bench.rs generate` into target/bench-mapper/), first
//! principal component lens, 10 intervals with 30% overlap, DBSCAN with an explicit `eps`
//! (3.0: above the blobs' typical 5th-neighbour distance of about 2.3, well below their
//! separation of about 8) and `min_samples` 5. Both sides run on one thread, best of 5 after
//! a warm-up, twice each, alternating. Prints both times, the ratio, and whether node and
//! edge counts agree.

use std::path::Path;
use std::process::Output;

use anyhow::{Context, bail};

use crate::bench::{build_release_example, number, report, run_python_peer};
use crate::shell::repo_root;

/// Options of `cargo xtask bench-mapper`.
#[derive(Debug, clap::Args)]
pub struct MapperBenchArgs {
    /// Instances (rows of the synthetic matrix).
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Neurons (columns).
    #[arg(long, default_value_t = 40)]
    cols: usize,
    /// Cover intervals.
    #[arg(long, default_value_t = 10)]
    intervals: u32,
    /// Overlap of neighbouring intervals, percent.
    #[arg(long, default_value_t = 30.0)]
    overlap: f32,
    /// DBSCAN radius.
    #[arg(long, default_value_t = 3.0)]
    eps: f32,
    /// DBSCAN core size (counting the point itself).
    #[arg(long, default_value_t = 5)]
    min_samples: u32,
    /// Timed repetitions per side (best is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// CPU threads for scikit-learn's BLAS / OpenMP (actiscope's mapper runs on one thread).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// The release `mapper_bench` example (`binary`) run with `args`, output captured.
fn example(binary: &Path, args: &[&str], matrix: &Path) -> anyhow::Result<Output> {
    std::process::Command::new(binary)
        .args(args.first())
        .arg(matrix)
        .args(args.get(1..).unwrap_or_default())
        .output()
        .context("running the mapper_bench example")
}

/// Runs both sides and prints the comparison.
pub fn bench_mapper(args: &MapperBenchArgs) -> anyhow::Result<()> {
    let root = repo_root();
    let dir = root.join("target/bench-mapper");
    std::fs::create_dir_all(&dir)?;
    let matrix = dir.join(format!("blobs-{}x{}.f32", args.rows, args.cols));
    let mapper_bench = build_release_example("actiscope-analysis", "mapper_bench")?;
    let (rows, cols) = (args.rows.to_string(), args.cols.to_string());
    let generated = example(
        &mapper_bench,
        &["generate", "--rows", &rows, "--cols", &cols],
        &matrix,
    )?;
    if !generated.status.success() {
        bail!(
            "writing the matrix failed: {}",
            String::from_utf8_lossy(&generated.stderr)
        );
    }

    let settings = [
        ("--cols", cols.clone()),
        ("--intervals", args.intervals.to_string()),
        ("--overlap", args.overlap.to_string()),
        ("--eps", args.eps.to_string()),
        ("--min-samples", args.min_samples.to_string()),
        ("--repeats", args.repeats.to_string()),
    ];
    let flags: Vec<&str> = settings
        .iter()
        .flat_map(|(flag, value)| [*flag, value.as_str()])
        .collect();
    let mut ours_args = vec!["run"];
    ours_args.extend(&flags);
    let python =
        crate::bench::bench_python(&[("sklearn", "scikit-learn"), ("kmapper", "kmapper")])?;
    let script = root.join("xtask/bench/kmapper_bench.py");
    let kmapper = || -> anyhow::Result<serde_json::Value> {
        let mut peer_args = vec![matrix.as_os_str()];
        peer_args.extend(flags.iter().map(std::ffi::OsStr::new));
        run_python_peer(
            &python,
            &script,
            &peer_args,
            args.threads,
            "KeplerMapper peer",
        )
    };
    // The sides alternate (twice each, best kept) so that a busy machine weighs on both.
    let faster = |a: serde_json::Value, b: serde_json::Value| {
        let secs = |v: &serde_json::Value| number(v, "secs").unwrap_or(f64::INFINITY);
        if secs(&b) < secs(&a) { b } else { a }
    };
    let mut ours = report(
        &example(&mapper_bench, &ours_args, &matrix)?,
        "actiscope (mapper_bench)",
    )?;
    let mut theirs = kmapper()?;
    ours = faster(
        ours,
        report(
            &example(&mapper_bench, &ours_args, &matrix)?,
            "actiscope (mapper_bench)",
        )?,
    );
    theirs = faster(theirs, kmapper()?);

    let (our_secs, their_secs) = (number(&ours, "secs")?, number(&theirs, "secs")?);
    let count = |v: &serde_json::Value, key: &str| number(v, key).map(|x| x as u64);
    let (our_nodes, their_nodes) = (count(&ours, "nodes")?, count(&theirs, "nodes")?);
    let (our_edges, their_edges) = (count(&ours, "edges")?, count(&theirs, "edges")?);
    let agree = |a: u64, b: u64| if a == b { "yes" } else { "NO" };
    println!(
        "mapper of {} x {} clustered activations: PCA-1 lens, {} intervals, {}% overlap, \
         DBSCAN(eps {}, min_samples {}), best of 2 x {} (sides alternating):",
        args.rows,
        args.cols,
        args.intervals,
        args.overlap,
        args.eps,
        args.min_samples,
        args.repeats
    );
    println!(
        "  {:<40} {:>10} {:>10} {:>7} {:>7}",
        "", "total", "lens", "nodes", "edges"
    );
    println!(
        "  {:<40} {:>8.1}ms {:>8.1}ms {:>7} {:>7}",
        "actiscope (faer, 1 thread)",
        our_secs * 1e3,
        number(&ours, "lens_secs")? * 1e3,
        our_nodes,
        our_edges
    );
    println!(
        "  {:<40} {:>8.1}ms {:>8.1}ms {:>7} {:>7}",
        format!(
            "kmapper {} + sklearn {} ({} thr)",
            theirs
                .get("kmapper")
                .and_then(|v| v.as_str())
                .unwrap_or("?"),
            theirs
                .get("sklearn")
                .and_then(|v| v.as_str())
                .unwrap_or("?"),
            args.threads
        ),
        their_secs * 1e3,
        number(&theirs, "lens_secs")? * 1e3,
        their_nodes,
        their_edges
    );
    println!(
        "  speed-up: {:.1}x (goal: at least 10x); actiscope single-core {:.1} ms (goal: under 200 ms)",
        their_secs / our_secs,
        our_secs * 1e3
    );
    println!(
        "  node counts agree: {}; edge counts agree: {}",
        agree(our_nodes, their_nodes),
        agree(our_edges, their_edges)
    );
    Ok(())
}
