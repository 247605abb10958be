//! `cargo xtask bench-gpu`: the GPU table of issue 16 in one command. Builds the release
//! `actiscope` binary and the `nmf_device` example, installs PyTorch into the bench venv when
//! missing, and runs `xtask/bench/gpu_table.py`: each workload (paper MLP, a 2048x3 MLP, the
//! factorization paper's CNN; the NMF of the digits) through actiscope on wgpu and flex and
//! through a PyTorch peer on CUDA and the CPU, same data, model, batch and optimizer, one run
//! each; then the first epoch in a first and a second process, capture per device, and what
//! `--device auto` picks. Where there is no GPU it says so and exits 0 (`--cpu-only` measures
//! the CPU columns instead).
//!
//! For a GPU machine without cargo, `--prepare DIR` only writes the two binaries, stripped
//! and xz-compressed (about 24 MB together, where a carried working tree may hold 64 MiB),
//! into `DIR`; carry it, then run `python3 xtask/bench/gpu_table.py --actiscope
//! DIR/actiscope.xz --nmf-device DIR/nmf_device.xz` there (the script unpacks them).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::bench::{bench_python, build_release_cli, build_release_example, release_dir};
use crate::shell::{repo_root, run};

/// Options of `cargo xtask bench-gpu`.
#[derive(Debug, clap::Args)]
pub struct GpuBenchArgs {
    /// Epochs of each training run (the steady state is the mean of epochs 2 to N-1).
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Measure the CPU columns only (flex and PyTorch CPU): no GPU needed.
    #[arg(long)]
    cpu_only: bool,
    /// Only the workloads whose name contains this (e.g. `2048`, `CNN`, `NMF`).
    #[arg(long)]
    only: Option<String>,
    /// Write the release binaries, stripped and xz-compressed, into this folder for a GPU
    /// machine, and stop.
    #[arg(long)]
    prepare: Option<PathBuf>,
    /// Where the JSON of every number goes.
    #[arg(long, default_value = "target/gpu-table.json")]
    out: PathBuf,
}

/// Runs `cargo xtask bench-gpu`.
pub fn bench_gpu(args: &GpuBenchArgs) -> anyhow::Result<()> {
    let root = repo_root();
    build_release_cli()?;
    let nmf_device = build_release_example("actiscope-train", "nmf_device")?;
    let actiscope = release_dir().join("actiscope");
    if let Some(dir) = &args.prepare {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for binary in [&actiscope, &nmf_device] {
            let name = binary.file_name().context("a binary has a file name")?;
            let copy = dir.join(name);
            std::fs::copy(binary, &copy)
                .with_context(|| format!("copying {} to {}", binary.display(), copy.display()))?;
            run(Command::new("strip").arg(&copy))?;
            run(Command::new("xz").args(["-T0", "-6", "-f"]).arg(&copy))?;
        }
        println!(
            "binaries in {}; on the GPU machine: python3 xtask/bench/gpu_table.py \
             --actiscope {0}/actiscope.xz --nmf-device {0}/nmf_device.xz",
            dir.display()
        );
        return Ok(());
    }
    let python = bench_python(&[("torch", "torch")])?;
    let mut command = Command::new(&python);
    command
        .arg(root.join("xtask/bench/gpu_table.py"))
        .arg("--actiscope")
        .arg(&actiscope)
        .arg("--nmf-device")
        .arg(&nmf_device)
        .arg("--data")
        .arg(root.join("assets/digits-10k.bin.gz"))
        .args(["--epochs", &args.epochs.to_string()])
        .arg("--out")
        .arg(root.join(&args.out));
    if args.cpu_only {
        command.arg("--cpu-only");
    }
    if let Some(only) = &args.only {
        command.args(["--only", only]);
    }
    let status = command
        .status()
        .context("running xtask/bench/gpu_table.py")?;
    if !status.success() {
        bail!("the GPU table failed ({status})");
    }
    Ok(())
}
