//! `actiscope resume`: a run killed with SIGKILL mid-run goes on from its newest checkpoint,
//! every epoch stored exactly once, and its losses continue where the weights were (the same
//! numbers an uninterrupted run of the same seed trains), not from a fresh start. Runs that
//! cannot resume are refused with status 2.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use actiscope_store::Store;

mod common;

use common::{binary, http, metrics, serve, wait_for_epochs};

/// A small run: a few milliseconds per epoch, so a kill lands mid-run.
const RUN: [&str; 10] = [
    "--dataset",
    "moons",
    "--hidden",
    "16,16",
    "--probe",
    "n=100",
    "--device",
    "flex",
    "--seed",
    "5",
];
const EPOCHS: usize = 40;

fn resume(store: &Path, run: &str) -> Output {
    Command::new(binary())
        .args(["resume", "--store"])
        .arg(store)
        .arg(run)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn a_killed_run_resumes_from_its_checkpoint_with_every_epoch_once_and_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    let epochs = EPOCHS.to_string();
    // The uninterrupted run.
    let straight = dir.path().join("straight.db");
    let out = Command::new(binary())
        .arg("train")
        .args(RUN)
        .args(["--epochs", &epochs, "--store"])
        .arg(&straight)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = metrics(&straight, 1);
    // The same run, killed after a few epochs.
    let store = dir.path().join("runs.db");
    let mut train = Command::new(binary())
        .arg("train")
        .args(RUN)
        .args(["--epochs", &epochs, "--store"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_epochs(&store, 1, 3);
    train.kill().unwrap(); // SIGKILL
    train.wait().unwrap();
    let before = metrics(&store, 1).len();
    assert!(before < EPOCHS, "killed too late to test anything");

    let out = resume(&store, "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming run 1"), "{stderr}");
    let resumed = metrics(&store, 1);
    let numbers: Vec<usize> = resumed.iter().map(|m| m.epoch).collect();
    assert_eq!(
        numbers,
        (1..=EPOCHS).collect::<Vec<_>>(),
        "every epoch once, in order"
    );
    let run = Store::open(&store).unwrap().run(1).unwrap().unwrap();
    assert_eq!(run.status, "completed");
    // The weights, optimizer state and batch order were restored: the same losses as the
    // uninterrupted run (a fresh start would be back at epoch 1's loss).
    for (got, want) in resumed.iter().zip(&expected) {
        assert!(
            (got.train_loss - want.train_loss).abs() <= 1e-5 * want.train_loss.max(1.0),
            "epoch {}: {} vs {} uninterrupted",
            got.epoch,
            got.train_loss,
            want.train_loss
        );
    }
    assert!(resumed[EPOCHS - 1].train_loss < resumed[0].train_loss);
    // Only the newest checkpoint is kept.
    let checkpoints = Store::open(&store)
        .unwrap()
        .snapshots_from(1, actiscope_server::runner::CHECKPOINT_KIND, 0)
        .unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0].0 as usize, EPOCHS);

    // What cannot resume.
    let out = resume(&store, "1");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("completed all its epochs"));
    let out = resume(&store, "9");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no run 9"));
    let out = resume(&dir.path().join("missing.db"), "1");
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("missing.db").exists());
    // A run without checkpoints, stopped early by a kill.
    let bare = dir.path().join("bare.db");
    let mut train = Command::new(binary())
        .arg("train")
        .args(RUN)
        .args(["--epochs", "100000", "--checkpoint-every", "0", "--store"])
        .arg(&bare)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_epochs(&bare, 1, 1);
    train.kill().unwrap();
    train.wait().unwrap();
    let out = resume(&bare, "1");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no checkpoint"));
}

#[test]
fn a_checkpoint_every_few_epochs_drops_the_later_epochs_and_trains_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    let mut train = Command::new(binary())
        .arg("train")
        .args(RUN)
        .args(["--epochs", "100000", "--checkpoint-every", "4", "--store"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Past the first checkpoint (epoch 4), before the second is certain.
    wait_for_epochs(&store, 1, 6);
    train.kill().unwrap();
    train.wait().unwrap();
    let stored = metrics(&store, 1).len();
    let checkpoint = Store::open(&store)
        .unwrap()
        .latest_snapshot(1, actiscope_server::runner::CHECKPOINT_KIND)
        .unwrap()
        .unwrap()
        .0 as usize;
    assert_eq!(checkpoint % 4, 0);
    assert!(checkpoint <= stored);
    // Resuming a 100,000-epoch run would not end: stop it as Ctrl-C would, once it has
    // stored again past where it was.
    let mut child = Command::new(binary())
        .args(["resume", "--store"])
        .arg(&store)
        .arg("1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while metrics(&store, 1).last().map_or(0, |m| m.epoch) < stored + 2 {
        assert!(Instant::now() < deadline, "the resumed run stores nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let numbers: Vec<usize> = metrics(&store, 1).iter().map(|m| m.epoch).collect();
    let n = numbers.len();
    assert_eq!(
        numbers,
        (1..=n).collect::<Vec<_>>(),
        "no gap, no epoch twice"
    );
}

#[test]
fn the_api_resumes_an_interrupted_run_and_refuses_what_cannot_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    let mut train = Command::new(binary())
        .arg("train")
        .args(RUN)
        .args(["--epochs", "60", "--store"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_epochs(&store, 1, 2);
    train.kill().unwrap();
    train.wait().unwrap();
    assert!(
        metrics(&store, 1).len() < 60,
        "killed too late to test anything"
    );
    let (mut server, addr) = serve(&store);
    let (status, body) = http(addr, "POST", "/api/runs/1/resume", "");
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = http(addr, "GET", "/api/runs/1", "");
        let run: serde_json::Value = serde_json::from_str(&body).unwrap();
        if run["status"] == "completed" {
            assert_eq!(run["epochs_stored"], 60);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed run did not finish: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let numbers: Vec<usize> = metrics(&store, 1).iter().map(|m| m.epoch).collect();
    assert_eq!(numbers, (1..=60).collect::<Vec<_>>());
    for (path, status, says) in [
        ("/api/runs/1/resume", 409, "completed all its epochs"),
        ("/api/runs/7/resume", 404, "there is no run 7"),
    ] {
        let (got, body) = http(addr, "POST", path, "");
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
