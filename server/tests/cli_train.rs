//! `actiscope train` as a user runs it: bad input exits 2 with a clear message and writes
//! nothing; a short run stores its epochs and prints the JSON summary; Ctrl-C stops cleanly.

// Tests fail by panicking, helpers included.
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

fn actiscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_actiscope"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_input_exits_2_names_the_problem_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    let store_arg = store.to_str().unwrap();
    let empty_dir = dir.path().join("no-idx-here");
    std::fs::create_dir(&empty_dir).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--epochs", "0"], "epochs"),
        (vec!["--epochs", "-3"], "epochs"),
        (vec!["--epochs", "100000000"], "epochs"),
        (vec!["--hidden", "40,0,40"], "widths"),
        (vec!["--hidden", "40,-3"], "-3"),
        (vec!["--lr", "0"], "learning rate"),
        (vec!["--lr", "-0.1"], "learning rate"),
        (vec!["--lr", "NaN"], "learning rate"),
        (vec!["--dataset", "imagenet"], "imagenet"),
        (
            vec!["--dataset", empty_dir.to_str().unwrap()],
            "train-images-idx3-ubyte",
        ),
        (vec!["--dataset", "moons", "--probe", "label=7"], "probe"),
        (vec!["--dataset", "moons", "--model", "cnn"], "CNN"),
        (vec!["--device", "tpu"], "tpu"),
        (vec!["--optimizer", "rmsprop"], "rmsprop"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["train", "--store", store_arg];
        args.extend(&extra);
        let output = actiscope(&args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {message}");
        assert!(
            message.contains(needle),
            "{extra:?} should mention {needle}: {message}"
        );
        assert!(!store.exists(), "{extra:?} must not create the store");
    }
}

#[test]
fn a_bad_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "epochs = 2\nlearning_rate = 0.1\n").unwrap();
    let store = dir.path().join("runs.db");
    let output = actiscope(&[
        "train",
        "--store",
        store.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(
        message.contains("run.toml") && message.contains("learning_rate"),
        "{message}"
    );
}

#[test]
fn a_short_run_prints_json_and_stores_every_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "dataset = \"moons\"\nhidden = [8, 8]\noptimizer = \"adam\"\nlr = 0.01\n",
    )
    .unwrap();
    let store = dir.path().join("runs.db");
    let output = actiscope(&[
        "train",
        "--store",
        store.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--epochs",
        "2",
        "--device",
        "flex",
        "--probe",
        "n=30",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    assert_eq!(summary["status"], "completed");
    assert!(summary["device"].as_str().unwrap().starts_with("flex"));
    let epochs = summary["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    for (i, epoch) in epochs.iter().enumerate() {
        assert_eq!(epoch["epoch"], i + 1);
        for key in [
            "train_loss",
            "val_loss",
            "train_accuracy",
            "val_accuracy",
            "train_secs",
            "capture_secs",
        ] {
            assert!(
                epoch[key].as_f64().is_some_and(f64::is_finite),
                "{key} in {epoch}"
            );
        }
        assert_eq!(epoch["unique_patterns"].as_array().unwrap().len(), 2);
    }
    let run_id = summary["run_id"].as_i64().unwrap();
    let store = Store::open(&store).unwrap();
    assert_eq!(store.status(run_id).unwrap().as_deref(), Some("completed"));
    assert_eq!(store.epochs(run_id).unwrap().len(), 2);
    assert!(store.snapshot(run_id, 2, "epoch").unwrap().is_some());
    // Stored like a run the server started: the dashboard's inspector and the NMF input block
    // need the probe's inputs.
    assert!(store.snapshot(run_id, 0, "probe_images").unwrap().is_some());
    assert!(store.snapshot(run_id, 2, "probe_scores").unwrap().is_some());
}

fn stored_epochs(path: &Path) -> usize {
    Store::open(path)
        .and_then(|s| s.epochs(1))
        .map(|e| e.len())
        .unwrap_or(0)
}

#[test]
fn ctrl_c_stops_after_the_epoch_in_flight_and_keeps_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_actiscope"))
        .args([
            "train",
            "--store",
            store.to_str().unwrap(),
            "--dataset",
            "moons",
            "--hidden",
            "8",
        ])
        .args([
            "--epochs", "100000", "--device", "flex", "--probe", "n=20", "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !store.exists() || stored_epochs(&store) < 2 {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            panic!("the trainer exited early: {}", stderr(&output));
        }
        assert!(Instant::now() < deadline, "no epoch stored within 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["status"], "stopped");
    let reported = summary["epochs"].as_array().unwrap().len();
    assert!((2..100_000).contains(&reported));
    assert_eq!(
        stored_epochs(&store),
        reported,
        "every reported epoch is stored"
    );
}
