//! `cargo xtask bench-train`: actiscope against PyTorch (CPU) on the paper's MLP, side by side
//! in one run, same data, batch size and threads. Prints seconds per epoch and the ratio, and
//! the share of an epoch spent on capture and pattern counting.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};

use crate::shell::{cargo, repo_root, run};

/// Options of `cargo xtask bench-train`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Epochs per side (the first and the last are left out of the means: warm-up, and the
    /// last capture has no next epoch to overlap).
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// CPU threads for both sides.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Skip PyTorch (measure actiscope only).
    #[arg(long)]
    no_torch: bool,
}

fn mean_after_first(values: &[f64]) -> f64 {
    let tail = values.get(1..).filter(|t| !t.is_empty()).unwrap_or(values);
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// The last line of a peer's standard output, parsed as JSON.
pub fn report(output: &Output, who: &str) -> anyhow::Result<serde_json::Value> {
    if !output.status.success() {
        bail!("{who} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .last()
        .with_context(|| format!("{who} printed nothing"))?;
    serde_json::from_str(line).with_context(|| format!("{who} printed no JSON: {line}"))
}

/// `key` of a peer's JSON report as a number.
pub fn number(value: &serde_json::Value, key: &str) -> anyhow::Result<f64> {
    value
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .with_context(|| format!("no {key} in {value}"))
}

/// Runs the Python peer `script` with `args`, its BLAS and OpenMP pools limited to `threads`,
/// and returns its JSON report (`who` names it in errors).
pub fn run_python_peer(
    python: &Path,
    script: &Path,
    args: &[&std::ffi::OsStr],
    threads: usize,
    who: &str,
) -> anyhow::Result<serde_json::Value> {
    let threads = threads.to_string();
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .env("OMP_NUM_THREADS", &threads)
        .env("OPENBLAS_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .output()
        .with_context(|| format!("running the {who}"))?;
    report(&output, who)
}

/// The Python of the venv the benchmarks and the Python tests share (`~/.cache/actiscope/venv`,
/// kept between clean clones; `target/bench-venv` without a home), made on first use, with each
/// `(module, PyPI package)` of `packages` installed from PyPI when its module does not import.
pub fn bench_python(packages: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let venv = std::env::var_os("HOME").map_or_else(
        || repo_root().join("target/bench-venv"),
        |home| PathBuf::from(home).join(".cache/actiscope/venv"),
    );
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    for (module, package) in packages {
        let present = Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            println!("installing {package} from PyPI into {}", venv.display());
            run(Command::new(&python).args(["-m", "pip", "install", "--quiet", package]))?;
        }
    }
    Ok(python)
}

/// Runs `actiscope train` on the paper's MLP (`--capture-inline` when `inline`) and returns
/// its per-epoch JSON.
fn train_epochs(args: &BenchArgs, inline: bool) -> anyhow::Result<Vec<serde_json::Value>> {
    let store = std::env::temp_dir().join(format!(
        "actiscope-bench-{}-{inline}.db",
        std::process::id()
    ));
    let mut command = Command::new(release_dir().join("actiscope"));
    command
        .args(["train", "--store"])
        .arg(&store)
        .args([
            "--dataset",
            "digits",
            "--hidden",
            "40,40,40",
            "--optimizer",
            "sgd",
            "--lr",
            "0.001",
            "--batch",
            "64",
            "--device",
            "flex",
            "--json",
            "--epochs",
            &args.epochs.to_string(),
        ])
        .env("RAYON_NUM_THREADS", args.threads.to_string());
    if inline {
        command.arg("--capture-inline");
    }
    let output = command.output().context("running actiscope train")?;
    let _ = std::fs::remove_file(&store);
    if !output.status.success() {
        bail!(
            "actiscope train failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(summary
        .get("epochs")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default())
}

/// Where Cargo puts release builds: `release` under `CARGO_TARGET_DIR` when set (relative to
/// the repository root, as Cargo reads it there), else under the repository's `target`.
pub fn release_dir() -> PathBuf {
    let root = repo_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
        .join("release")
}

/// Builds `package`'s example `example` in release and returns the path of its binary
/// (`<target>/release/examples/<example>`).
pub fn build_release_example(package: &str, example: &str) -> anyhow::Result<PathBuf> {
    build_release_example_with(package, example, &[])
}

/// [`build_release_example`] with the package's `features` on.
pub fn build_release_example_with(
    package: &str,
    example: &str,
    features: &[&str],
) -> anyhow::Result<PathBuf> {
    let mut command = cargo();
    command.args([
        "build",
        "--release",
        "--package",
        package,
        "--example",
        example,
    ]);
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    run(&mut command)?;
    Ok(release_dir().join("examples").join(example))
}

/// Builds the release `actiscope` binary (`<target>/release/actiscope`) that benchmarks run.
pub fn build_release_cli() -> anyhow::Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "--package",
        "actiscope-server",
        "--bin",
        "actiscope",
    ]))
}

/// Runs both sides and prints the comparison.
pub fn bench_train(args: &BenchArgs) -> anyhow::Result<()> {
    let root = repo_root();
    build_release_cli()?;
    // Beside (the default): capture overlaps the next epoch's training; inline: training
    // waits for each capture, so its train_secs is training alone.
    let beside = train_epochs(args, false)?;
    let inline = train_epochs(args, true)?;
    // The first epoch warms up; with capture beside, the last one also waits for its own
    // capture (nothing follows to overlap it), so the steady state is the epochs between.
    let field = |epochs: &[serde_json::Value], key: &str| -> f64 {
        let values: Vec<f64> = epochs.iter().filter_map(|e| e.get(key)?.as_f64()).collect();
        let steady = values
            .get(..values.len().saturating_sub(1))
            .unwrap_or(&values);
        mean_after_first(if steady.len() >= 2 { steady } else { &values })
    };
    let train_secs = field(&inline, "train_secs");
    let capture_secs = field(&inline, "capture_secs");
    let beside_epoch_secs = field(&beside, "train_secs") + field(&beside, "capture_wait_secs");
    println!(
        "actiscope (flex, {} threads): {train_secs:.3} s/epoch training alone; capture + patterns take {capture_secs:.3} s/epoch ({:.1}% of training when run inline)",
        args.threads,
        100.0 * capture_secs / train_secs
    );
    println!(
        "  capture beside the next epoch: {beside_epoch_secs:.3} s/epoch of training + waiting ({:.3} s training, {:.3} s waiting, capture itself {:.3} s): capture adds {:+.1}% to an epoch (goal: at most 5%)",
        field(&beside, "train_secs"),
        field(&beside, "capture_wait_secs"),
        field(&beside, "capture_secs"),
        100.0 * (beside_epoch_secs / train_secs - 1.0)
    );

    if args.no_torch {
        return Ok(());
    }
    let python = bench_python(&[("torch", "torch")])?;
    let torch = Command::new(&python)
        .arg(root.join("xtask/bench/torch_mlp.py"))
        .arg("--data")
        .arg(Path::new(&root).join("assets/digits-10k.bin.gz"))
        .args([
            "--epochs",
            &args.epochs.to_string(),
            "--threads",
            &args.threads.to_string(),
        ])
        .output()
        .context("running the PyTorch peer")?;
    if !torch.status.success() {
        bail!(
            "PyTorch peer failed: {}",
            String::from_utf8_lossy(&torch.stderr)
        );
    }
    let torch_secs: Vec<f64> = String::from_utf8_lossy(&torch.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("train_secs")?.as_f64())
        .collect();
    let torch_mean = mean_after_first(&torch_secs);
    println!(
        "pytorch  (cpu,  {} threads): {torch_mean:.3} s/epoch training",
        args.threads
    );
    println!(
        "ratio actiscope / pytorch: {:.2}x (goal: at most 1.0x)",
        train_secs / torch_mean
    );
    Ok(())
}

/// Options of `cargo xtask bench-serve`.
#[derive(Debug, clap::Args)]
pub struct ServeBenchArgs {
    /// Websocket clients following the live run.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Epochs of each run (the baseline and the loaded one). An epoch takes about 0.1 s, so
    /// fewer than about 30 leave the figure to the machine's noise.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Rounds of (baseline run, loaded run); the median slowdown is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The run, as a `POST /api/runs` JSON object (default: the paper's MLP on the digits),
    /// e.g. `{"dataset":"fashion-mnist","hidden":"1024,1024,1024"}`; `--epochs` wins, and
    /// `probe` and `device` default to `n=500` and `flex`.
    #[arg(long)]
    run: Option<String>,
}

/// Runs the load benchmark (`tests/examples/serve_load.rs`) against the release `actiscope`
/// binary, the server a user runs. The clients are a release build too: they stand in for
/// browsers on other machines, so they should cost this machine as little as they can.
pub fn bench_serve(args: &ServeBenchArgs) -> anyhow::Result<()> {
    build_release_cli()?;
    let server = release_dir().join("actiscope");
    let clients = build_release_example("actiscope-e2e", "serve_load")?;
    let mut command = Command::new(clients);
    command.arg("--server").arg(&server).args([
        "--clients",
        &args.clients.to_string(),
        "--epochs",
        &args.epochs.to_string(),
        "--rounds",
        &args.rounds.to_string(),
    ]);
    if let Some(body) = &args.run {
        command.args(["--run", body]);
    }
    run(&mut command)
}
