//! `cargo xtask bench-nmf`: actiscope's NMF against scikit-learn's (`solver="mu"`) side by
//! side in one run, on the same matrix: the built-in digits' pixels (10,000 x 784, intensities
//! in `[0, 1]`), rank 20, 200 rounds, no early stop. actiscope multiplies the pixels (81%
//! zeros) in sparse form, so scikit-learn gets them twice: as a dense array and as a
//! `scipy.sparse` CSR matrix of the same values (same rank, rounds and random start). Prints
//! the times, both ratios and the RMSEs (which should be close: same algorithm, different
//! random starts on the two sides).

use std::io::Read;
use std::process::Command;

use anyhow::{Context, bail};

use crate::bench::{bench_python, build_release_example, number, report, run_python_peer};
use crate::shell::repo_root;

/// Options of `cargo xtask bench-nmf`.
#[derive(Debug, clap::Args)]
pub struct NmfBenchArgs {
    /// Factors.
    #[arg(long, default_value_t = 20)]
    rank: usize,
    /// Multiplicative-update rounds.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Threads of the second comparison (the first runs both sides on one thread).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also time the NMF lens's device fit (the same updates as dense tensor products) on this
    /// burn device (`wgpu` for a GPU, `flex`), through actiscope-train's `nmf_device` example.
    #[arg(long)]
    device: Option<String>,
}

/// Decodes the built-in digits into `count x pixels` row-major `f32` in `[0, 1]`.
fn digits_pixels() -> anyhow::Result<(usize, usize, Vec<u8>)> {
    let path = repo_root().join("assets/digits-10k.bin.gz");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).context("opening the digits")?)
        .read_to_end(&mut raw)
        .context("decompressing the digits")?;
    let field = |at: usize| -> anyhow::Result<usize> {
        let bytes: [u8; 4] = raw
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .context("digits header cut short")?;
        Ok(u32::from_be_bytes(bytes) as usize)
    };
    if raw.get(..4) != Some(b"ADG1".as_slice()) {
        bail!("{} is not an ADG1 file", path.display());
    }
    let (count, rows, cols) = (field(4)?, field(8)?, field(12)?);
    let pixels_at = 16 + count;
    let pixels = raw
        .get(pixels_at..pixels_at + count * rows * cols)
        .context("digits pixels cut short")?;
    let mut out = Vec::with_capacity(pixels.len() * 4);
    for &p in pixels {
        out.extend_from_slice(&(f32::from(p) / 255.0).to_le_bytes());
    }
    Ok((count, rows * cols, out))
}

/// Runs both sides and prints the comparison.
pub fn bench_nmf(args: &NmfBenchArgs) -> anyhow::Result<()> {
    let root = repo_root();
    let (count, features, bytes) = digits_pixels()?;
    let dir = root.join("target/bench-nmf");
    std::fs::create_dir_all(&dir)?;
    let matrix = dir.join("digits-pixels.f32");
    std::fs::write(&matrix, bytes)?;
    let shape = [
        count.to_string(),
        features.to_string(),
        args.rank.to_string(),
        args.iterations.to_string(),
    ];
    let nmf_bench = build_release_example("actiscope-analysis", "nmf_bench")?;
    let python = bench_python(&[("sklearn", "scikit-learn"), ("scipy", "scipy")])?;
    let ours = |threads: usize| -> anyhow::Result<serde_json::Value> {
        let output = Command::new(&nmf_bench)
            .arg(&matrix)
            .args(&shape)
            .arg(threads.to_string())
            .output()
            .context("running nmf_bench")?;
        report(&output, "actiscope (nmf_bench)")
    };
    let script = root.join("xtask/bench/sklearn_nmf.py");
    // `layout`: "dense" (a NumPy array) or "csr" (a scipy.sparse CSR matrix).
    let theirs = |threads: usize, layout: &str| -> anyhow::Result<serde_json::Value> {
        let mut peer_args = vec![matrix.as_os_str()];
        peer_args.extend(shape.iter().map(std::ffi::OsStr::new));
        peer_args.push(std::ffi::OsStr::new(layout));
        let report = run_python_peer(&python, &script, &peer_args, threads, "scikit-learn peer")?;
        let rounds = report.get("iterations").and_then(serde_json::Value::as_u64);
        if rounds != Some(args.iterations as u64) {
            bail!(
                "scikit-learn ({layout}) ran {rounds:?} rounds, not {}",
                args.iterations
            );
        }
        Ok(report)
    };
    println!(
        "NMF of the {features} x {count} digits pixel matrix, rank {}, {} rounds (best of 3 after a warm-up):",
        args.rank, args.iterations
    );
    for threads in [1, args.threads.max(1)] {
        let ours = ours(threads)?;
        let (dense, csr) = (theirs(threads, "dense")?, theirs(threads, "csr")?);
        let our_secs = number(&ours, "secs")?;
        let (dense_secs, csr_secs) = (number(&dense, "secs")?, number(&csr, "secs")?);
        println!(
            "  {threads} thread(s): actiscope {our_secs:.3} s (rmse {:.4}, {} rounds); \
             scikit-learn mu on the dense array {dense_secs:.3} s (rmse {:.4}): {:.2}x faster \
             (goal: at least 3x); on the CSR matrix {csr_secs:.3} s (rmse {:.4}): {:.2}x faster",
            number(&ours, "rmse")?,
            number(&ours, "iterations")?,
            number(&dense, "rmse")?,
            dense_secs / our_secs,
            number(&csr, "rmse")?,
            csr_secs / our_secs
        );
        if args.threads <= 1 {
            break;
        }
    }
    if let Some(device) = &args.device {
        // The NMF lens's device fit, through actiscope-train's `nmf_device` example
        // (`MATRIX ROWS COLS RANK ROUNDS DEVICE`).
        let nmf_device = build_release_example("actiscope-train", "nmf_device")?;
        let output = Command::new(&nmf_device)
            .arg(&matrix)
            .args(&shape)
            .arg(device)
            .output()
            .context("running the nmf_device example")?;
        let on_device = report(&output, "actiscope-train's nmf_device example")?;
        let theirs_one = theirs(1, "dense")?;
        let (device_secs, their_secs) = (number(&on_device, "secs")?, number(&theirs_one, "secs")?);
        println!(
            "  on {}: {device_secs:.3} s (rmse {:.4}, dense tensor products), scikit-learn mu (1 thread, this run) {their_secs:.3} s: scikit-learn's time / the device's = {:.2}",
            on_device
                .get("device")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(device),
            number(&on_device, "rmse")?,
            their_secs / device_secs
        );
    }
    Ok(())
}
