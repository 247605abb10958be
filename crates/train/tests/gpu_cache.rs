//! The GPU's autotune cache across processes, on whatever wgpu adapter the machine has
//! (lavapipe without a GPU): a first process tunes and stores, a second one reads what the
//! first stored instead of tuning again, and a cache file that is garbage costs a new tuning,
//! never the run; and a prepared run ([`Trainer::prepare_device`]) tunes everything before its
//! first epoch. Each process is this test binary run again with `CHILD_ENV` set, which makes
//! [`child_trains_on_wgpu`] train a small MLP for one epoch, or
//! [`child_prepares_then_trains_on_wgpu`] prepare the device and then train two.

// Tests fail by panicking, helpers included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;

use actiscope_train::data::DatasetSpec;
use actiscope_train::data::synthetic::Planar;
use actiscope_train::device::DeviceChoice;
use actiscope_train::gpu_cache::CACHE_ENV;
use actiscope_train::model::{Activation, ModelSpec};
use actiscope_train::{OptimizerKind, ProbeSpec, TrainConfig, Trainer};

/// Set in the children this test starts.
const CHILD_ENV: &str = "ACTISCOPE_GPU_CACHE_CHILD";

/// Written to standard error by [`child_prepares_then_trains_on_wgpu`] between preparing
/// and training.
const PREPARED: &str = "=== the device is prepared ===";

/// The small MLP the children train on wgpu for `epochs` epochs.
fn small_mlp(epochs: usize) -> TrainConfig {
    TrainConfig {
        dataset: DatasetSpec::Planar(Planar::Blobs),
        model: ModelSpec::Mlp {
            hidden: vec![64, 64],
            activation: Activation::Relu,
        },
        optimizer: OptimizerKind::Adam,
        learning_rate: 0.01,
        batch_size: 128,
        epochs,
        seed: 1,
        probe: ProbeSpec::parse("n=20").unwrap(),
        device: DeviceChoice::Wgpu,
        training: Default::default(),
        checkpoint_every: 0,
    }
}

#[test]
#[ignore = "run by a_second_process_reads_the_autotune_cache, in its own process"]
fn child_trains_on_wgpu() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut trainer = Trainer::new(small_mlp(1)).unwrap();
    let report = trainer.run_epoch(&mut |_, _| {}).unwrap();
    assert!(report.metrics.train_loss.is_finite());
}

#[test]
#[ignore = "run by a_prepared_run_tunes_nothing_in_its_epochs, in its own process"]
fn child_prepares_then_trains_on_wgpu() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut trainer = Trainer::new(small_mlp(2)).unwrap();
    assert!(trainer.device_needs_preparing());
    trainer.prepare_device(&mut |_| {}).unwrap();
    eprintln!("{PREPARED}");
    for _ in 0..2 {
        let report = trainer.run_epoch(&mut |_, _| {}).unwrap();
        assert!(report.metrics.train_loss.is_finite());
    }
}

/// Runs the child test `name` in a new process with the cache in `cache` and CubeCL's
/// autotune log in `log` (a file, or `stderr`); returns the child's standard error.
fn run_child(name: &str, cache: &Path, log: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture"])
        .env(CHILD_ENV, "1")
        .env(CACHE_ENV, cache)
        .env("CUBECL_DEBUG_LOG", log)
        // Fewer candidates per kernel: the cache is what is tested, not the tuning.
        .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "the child failed: {stderr}");
    stderr
}

/// Runs [`child_trains_on_wgpu`] in a new process with the cache in `cache` and CubeCL's
/// autotune log in `log`; returns the log's text.
fn child(cache: &Path, log: &Path) -> String {
    let _ = std::fs::remove_file(log);
    run_child(
        "child_trains_on_wgpu",
        cache,
        log.to_str().expect("a UTF-8 temporary path"),
    );
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Lines of CubeCL's log that report a finished autotune (a benchmark run, not a cache hit).
fn tunings(log: &str) -> usize {
    log.lines()
        .filter(|line| line.contains("Fastest") || line.contains("fastest"))
        .count()
}

#[test]
fn a_second_process_reads_the_autotune_cache_and_garbage_in_it_costs_only_a_new_tuning() {
    let cache = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("cubecl.log");

    let first = child(cache.path(), &log);
    assert!(tunings(&first) > 0, "the first process tunes:\n{first}");
    let stored: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().collect();
    assert!(!stored.is_empty(), "the first process stores its results");

    let second = child(cache.path(), &log);
    assert_eq!(
        tunings(&second),
        0,
        "the second process reads the cache instead of tuning:\n{second}"
    );

    // Every file of the cache becomes garbage: the run goes on and tunes again.
    for entry in walk(cache.path()) {
        std::fs::write(&entry, b"not a database at all").unwrap();
    }
    let third = child(cache.path(), &log);
    assert!(
        tunings(&third) > 0,
        "a broken cache is tuned again:\n{third}"
    );
}

#[test]
fn a_prepared_run_tunes_nothing_in_its_epochs() {
    // An empty cache: everything the run needs is tuned in this process.
    let cache = tempfile::tempdir().unwrap();
    let stderr = run_child("child_prepares_then_trains_on_wgpu", cache.path(), "stderr");
    let (preparing, training) = stderr
        .split_once(PREPARED)
        .unwrap_or_else(|| panic!("the child never said it was prepared:\n{stderr}"));
    assert!(
        tunings(preparing) > 0,
        "preparing the device tunes its kernels:\n{preparing}"
    );
    assert_eq!(
        tunings(training),
        0,
        "two epochs after the preparation tune nothing more:\n{training}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
