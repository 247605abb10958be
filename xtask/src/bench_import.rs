//! `cargo xtask bench-import`: how fast and in how much memory the release `actiscope import`
//! reads one epoch. Two cases by default, as the import issue set them: 60,000 instances x
//! three 4,096-unit layers (2.9 GB of float32, goal under 2 s) and 10,000 x three 512-unit
//! layers (goal under 0.3 s). Each case's run directory (one safetensors epoch of seeded
//! pseudo-random pre-activations, ~half of them positive) is written once under
//! `target/bench-import/`; the import runs once to warm the page cache, then three times into
//! fresh stores, and the best and the median wall times are printed with the importer's peak
//! RSS (`VmHWM`, sampled every 5 ms while it runs).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::{build_release_cli, release_dir};
use crate::shell::repo_root;

/// Options of `cargo xtask bench-import`.
#[derive(Debug, clap::Args)]
pub struct ImportBenchArgs {
    /// Only the case of this many instances (default: both cases).
    #[arg(long)]
    instances: Option<usize>,
    /// Units per layer of that case.
    #[arg(long, default_value_t = 4096)]
    units: usize,
    /// Layers of that case.
    #[arg(long, default_value_t = 3)]
    layers: usize,
}

/// A seeded xorshift generator: the data only needs to look like pre-activations.
struct XorShift(u64);

impl XorShift {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // Uniform in [-1, 1): about half the units active.
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Writes a run directory of `instances` x `layers` x `units` (one epoch) under `dir`, unless
/// it is there already.
fn write_run(dir: &Path, instances: usize, units: usize, layers: usize) -> anyhow::Result<()> {
    let epoch = dir.join("epoch-0001.safetensors");
    if epoch.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let names: Vec<String> = (1..=layers).map(|l| format!("fc{l}")).collect();
    std::fs::write(
        dir.join("run.toml"),
        format!(
            "name = \"bench {instances} x {layers} x {units}\"\nlayers = {names:?}\nclasses = \
             [\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]\n"
        ),
    )?;
    // labels.npy: int64, by hand (a version 1.0 header padded to 64 bytes).
    let mut labels = Vec::new();
    let dict = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({instances},), }}");
    let header_len = (10 + dict.len() + 1).div_ceil(64) * 64 - 10;
    labels.extend_from_slice(b"\x93NUMPY\x01\x00");
    labels.extend_from_slice(&u16::try_from(header_len)?.to_le_bytes());
    labels.extend_from_slice(dict.as_bytes());
    labels.resize(10 + header_len - 1, b' ');
    labels.push(b'\n');
    for i in 0..instances {
        labels.extend_from_slice(&((i % 10) as i64).to_le_bytes());
    }
    std::fs::write(dir.join("labels.npy"), labels)?;
    // The epoch: a safetensors header, then every layer's rows.
    let layer_bytes = instances * units * 4;
    let mut table = serde_json::Map::new();
    for (l, name) in names.iter().enumerate() {
        table.insert(
            name.clone(),
            serde_json::json!({
                "dtype": "F32",
                "shape": [instances, units],
                "data_offsets": [l * layer_bytes, (l + 1) * layer_bytes],
            }),
        );
    }
    let mut header = serde_json::to_vec(&table)?;
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let partial = dir.join("epoch-0001.safetensors.tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    out.write_all(&(header.len() as u64).to_le_bytes())?;
    out.write_all(&header)?;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut row = vec![0u8; units * 4];
    for _ in 0..layers * instances {
        for value in row.chunks_exact_mut(4) {
            value.copy_from_slice(&rng.next_f32().to_le_bytes());
        }
        out.write_all(&row)?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&partial, &epoch)?;
    Ok(())
}

/// Peak RSS (`VmHWM`) of process `pid` in MiB, if it can be read.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// One import of `dir` into a fresh store: (wall seconds, peak RSS in MiB).
fn import_once(binary: &Path, dir: &Path, store: &Path) -> anyhow::Result<(f64, f64)> {
    let _ = std::fs::remove_file(store);
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("import")
        .arg("--store")
        .arg(store)
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut peak = 0.0f64;
    let status = loop {
        if let Some(rss) = peak_rss_mib(child.id()) {
            peak = peak.max(rss);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("actiscope import {} failed: {status}", dir.display());
    }
    Ok((secs, peak))
}

/// Runs the benchmark.
pub fn bench_import(args: &ImportBenchArgs) -> anyhow::Result<()> {
    build_release_cli()?;
    let binary = release_dir().join("actiscope");
    let cases: Vec<(usize, usize, usize, f64)> = match args.instances {
        Some(instances) => vec![(instances, args.units, args.layers, f64::NAN)],
        None => vec![(60_000, 4096, 3, 2.0), (10_000, 512, 3, 0.3)],
    };
    let root = repo_root().join("target/bench-import");
    for (instances, units, layers, goal) in cases {
        let dir = root.join(format!("run-{instances}x{layers}x{units}"));
        println!("writing {} (once) ...", dir.display());
        write_run(&dir, instances, units, layers)?;
        let store = root.join("bench.db");
        import_once(&binary, &dir, &store)?; // warms the page cache
        let mut runs = Vec::new();
        for _ in 0..3 {
            runs.push(import_once(&binary, &dir, &store)?);
        }
        let mut secs: Vec<f64> = runs.iter().map(|r| r.0).collect();
        secs.sort_by(f64::total_cmp);
        let peak = runs.iter().map(|r| r.1).fold(0.0, f64::max);
        let gigabytes = (instances * units * layers * 4) as f64 / 1e9;
        println!(
            "import of one epoch, {instances} instances x {layers} layers x {units} units \
             ({gigabytes:.2} GB of float32, safetensors): best {:.3} s, median {:.3} s \
             (goal {goal} s); peak RSS {peak:.0} MiB",
            secs.first().copied().unwrap_or(f64::NAN),
            secs.get(1).copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
