//! Faults on the real `actiscope` binary: `train` and `serve` processes killed with SIGKILL
//! mid-run, 20 times each, and a store that cannot grow. Every stored epoch must read back,
//! no run may be left "running" once its process is gone, and a run whose process is alive
//! is never marked interrupted by a server beside it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actiscope_protocol::{EpochSnapshot, RunSummary};
use actiscope_server::runner::{PROBE_ACTIVATIONS_KIND, SNAPSHOT_KIND};
use actiscope_store::Store;

mod common;

use common::{binary, http, serve, wait_for_epochs};

const ROUNDS: usize = 20;

fn get_json<T: serde::de::DeserializeOwned>(addr: SocketAddr, path: &str) -> T {
    let (status, body) = http(addr, "GET", path, "");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// A kill that lands anywhere in an epoch: a different pause each round.
fn jitter(round: usize) -> Duration {
    Duration::from_millis((round as u64 * 7) % 23)
}

fn kill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Every epoch of every run in `store` is there from 1 on without a gap, and each stored
/// snapshot and probe blob decodes; returns the epochs per run.
fn every_stored_epoch_reads_back(store: &Path) -> Vec<usize> {
    let store = Store::open(store).unwrap();
    let mut counts = Vec::new();
    for run in store.runs().unwrap() {
        let epochs = store.epochs(run.id).unwrap();
        let numbers: Vec<u32> = epochs.iter().map(|(e, _)| *e).collect();
        assert_eq!(
            numbers,
            (1..=numbers.len() as u32).collect::<Vec<_>>(),
            "run {}: epochs with a gap",
            run.id
        );
        for (epoch, metrics) in &epochs {
            serde_json::from_str::<serde_json::Value>(metrics).unwrap();
            let blob = store.snapshot(run.id, *epoch, SNAPSHOT_KIND).unwrap();
            let snapshot: EpochSnapshot = actiscope_protocol::decode(&blob.unwrap())
                .unwrap_or_else(|e| panic!("run {} epoch {epoch}: {e}", run.id));
            assert_eq!(snapshot.metrics.epoch as u32, *epoch);
            let probe = store
                .snapshot(run.id, *epoch, PROBE_ACTIVATIONS_KIND)
                .unwrap();
            assert!(probe.is_some(), "run {} epoch {epoch}: no probe", run.id);
        }
        counts.push(epochs.len());
    }
    counts
}

fn statuses(addr: SocketAddr) -> Vec<String> {
    get_json::<Vec<RunSummary>>(addr, "/api/runs")
        .into_iter()
        .map(|r| r.status)
        .collect()
}

#[test]
fn train_processes_killed_mid_run_lose_no_epoch_and_a_server_beside_them_marks_them_only_once_gone()
{
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    // The store exists before the server and the trainers open it.
    drop(Store::open(&store).unwrap());
    let (mut server, addr) = serve(&store);
    for round in 0..ROUNDS {
        let run_id = round as i64 + 1;
        let mut train = Command::new(binary())
            .args([
                "train",
                "--dataset",
                "moons",
                "--hidden",
                "16,16",
                "--epochs",
            ])
            .args(["100000", "--probe", "n=100", "--device", "flex", "--store"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_epochs(&store, run_id, 1 + round % 4);
        if round == 0 {
            // Longer than the server's heartbeat interval: the live trainer's run stays
            // running in the server's eyes.
            std::thread::sleep(actiscope_server::owner::HEARTBEAT_INTERVAL * 2);
            let run: RunSummary = get_json(addr, &format!("/api/runs/{run_id}"));
            assert_eq!(run.status, "running", "a live trainer's run was marked");
        }
        std::thread::sleep(jitter(round));
        kill(&mut train);
    }
    // The server notices each dead trainer (same machine: its process is gone).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = statuses(addr);
        assert_eq!(statuses.len(), ROUNDS);
        if statuses.iter().all(|s| s == "interrupted") {
            break;
        }
        assert!(Instant::now() < deadline, "left running: {statuses:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The API serves every stored epoch of a killed run.
    let epochs: Vec<serde_json::Value> = get_json(addr, "/api/runs/3/epochs");
    for epoch in 1..=epochs.len() {
        let _: EpochSnapshot = get_json(addr, &format!("/api/runs/3/epochs/{epoch}"));
    }
    kill(&mut server);
    let counts = every_stored_epoch_reads_back(&store);
    assert_eq!(counts.len(), ROUNDS);
    assert!(counts.iter().all(|&n| n >= 1), "{counts:?}");
}

#[test]
fn servers_killed_mid_run_lose_no_epoch_and_leave_no_run_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    let request = r#"{"dataset": "moons", "hidden": "16,16", "epochs": 100000,
                      "probe": "n=100", "device": "flex"}"#;
    for round in 0..ROUNDS {
        let (mut server, addr) = serve(&store);
        // The run the previous server trained is interrupted now; none is running.
        let before = statuses(addr);
        assert_eq!(before.len(), round);
        assert!(before.iter().all(|s| s == "interrupted"), "{before:?}");
        let (status, body) = http(addr, "POST", "/api/runs", request);
        assert_eq!(status, 201, "{body}");
        let run: RunSummary = serde_json::from_str(&body).unwrap();
        wait_for_epochs(&store, run.run_id, 1 + round % 4);
        std::thread::sleep(jitter(round));
        kill(&mut server);
    }
    let (mut server, addr) = serve(&store);
    let runs: Vec<RunSummary> = get_json(addr, "/api/runs");
    assert_eq!(runs.len(), ROUNDS);
    for run in &runs {
        assert_eq!(run.status, "interrupted", "{run:?}");
        assert!(run.epochs_stored >= 1);
        let last = run.epochs_stored;
        let _: EpochSnapshot = get_json(addr, &format!("/api/runs/{}/epochs/{last}", run.run_id));
    }
    kill(&mut server);
    let counts = every_stored_epoch_reads_back(&store);
    assert_eq!(counts.len(), ROUNDS);
}

#[test]
fn a_store_that_cannot_grow_is_a_clear_error_and_keeps_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    // The file size limit (`ulimit -f`, in KiB) stands in for a full disk: writes past it
    // fail (with SIGXFSZ ignored) as they would with ENOSPC.
    let output = Command::new("bash")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 6000; exec "$0" "$@""#)
        .arg(binary())
        .args([
            "train",
            "--dataset",
            "digits",
            "--epochs",
            "40",
            "--probe",
            "n=1000",
        ])
        .args(["--device", "flex", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("cannot grow"), "{stderr}");
    assert!(stderr.contains("intact"), "{stderr}");
    // Without the limit, everything stored before reads back, and no run is left running.
    let counts = every_stored_epoch_reads_back(&store);
    assert_eq!(counts.len(), 1);
    assert!(counts[0] >= 1 && counts[0] < 40, "{counts:?}");
    let (mut server, addr) = serve(&store);
    assert_eq!(statuses(addr), ["interrupted"]);
    kill(&mut server);
}
