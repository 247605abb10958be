//! `actiscope import` on the real binary: a run written by the Python writer imports with the
//! unique-pattern counts and APD numpy computes from the same arrays; bad directories exit 2
//! and store nothing; `--follow` picks up an epoch written after it started within a second.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use actiscope_protocol::apd::ApdNodeKind;
use actiscope_protocol::{EpochMetrics, EpochSnapshot, RunSummary};
use actiscope_store::Store;

mod common;

use common::{binary, http, serve};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    repo().join("crates/import/tests/fixtures").join(name)
}

fn import(store: &Path, dir: &Path, extra: &[&str]) -> Output {
    Command::new(binary())
        .arg("import")
        .args(extra)
        .arg("--store")
        .arg(store)
        .arg(dir)
        .output()
        .unwrap()
}

fn run_count(store: &Path) -> u64 {
    Store::open(store).unwrap().run_count().unwrap()
}

/// A GET through the shared client: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, "")
}

/// The nodes and edges of an APD by what they stand for: (level, key) -> (instances, errors)
/// and (level, from key, to key) -> (instances, errors), keys being bit strings and labels.
type Nodes = BTreeMap<(u32, String), (u32, u32)>;
type Edges = BTreeMap<(u32, String, String), (u32, u32)>;

fn apd_by_key(snapshot: &EpochSnapshot) -> (Nodes, Edges) {
    let apd = &snapshot.apd;
    let key = |level: usize, node: u32| -> String {
        match &apd.levels[level][node as usize].kind {
            ApdNodeKind::Pattern { bits, .. } => bits.clone(),
            ApdNodeKind::Label { label } => label.to_string(),
            ApdNodeKind::Other { .. } => panic!("stored APDs are unmerged"),
        }
    };
    let mut nodes = Nodes::new();
    for (level, level_nodes) in apd.levels.iter().enumerate() {
        for (i, node) in level_nodes.iter().enumerate() {
            nodes.insert(
                (level as u32, key(level, i as u32)),
                (node.instances, node.errors),
            );
        }
    }
    let mut edges = Edges::new();
    for edge in &apd.edges {
        let level = edge.from_level as usize;
        edges.insert(
            (
                edge.from_level,
                key(level, edge.from_node),
                key(level + 1, edge.to_node),
            ),
            (edge.instances, edge.errors),
        );
    }
    (nodes, edges)
}

fn expected_apd(epoch: &serde_json::Value) -> (Nodes, Edges) {
    let count = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap() as u32;
    let mut nodes = Nodes::new();
    for (level, level_nodes) in epoch["nodes"].as_array().unwrap().iter().enumerate() {
        for node in level_nodes.as_array().unwrap() {
            nodes.insert(
                (level as u32, node["key"].as_str().unwrap().to_owned()),
                (count(node, "instances"), count(node, "errors")),
            );
        }
    }
    let mut edges = Edges::new();
    for edge in epoch["edges"].as_array().unwrap() {
        edges.insert(
            (
                count(edge, "from_level"),
                edge["from_key"].as_str().unwrap().to_owned(),
                edge["to_key"].as_str().unwrap().to_owned(),
            ),
            (count(edge, "instances"), count(edge, "errors")),
        );
    }
    (nodes, edges)
}

#[test]
#[ignore = "needs Python with numpy and safetensors (ACTISCOPE_PYTHON): `cargo xtask test` runs it"]
fn a_run_the_python_writer_wrote_imports_with_the_counts_and_apd_numpy_computes() {
    let python = std::env::var("ACTISCOPE_PYTHON")
        .expect("ACTISCOPE_PYTHON names a Python with numpy and safetensors");
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let written = Command::new(python)
        .arg(repo().join("python/tests/write_fixture.py"))
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("expected.json")).unwrap())
            .unwrap();
    let store = dir.path().join("runs.db");
    let imported = import(&store, &run_dir, &[]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let (mut server, addr) = serve(&store);
    let (status, body) = get(addr, "/api/runs/1/epochs");
    assert_eq!(status, 200, "{body}");
    let metrics: Vec<EpochMetrics> = serde_json::from_str(&body).unwrap();
    assert_eq!(metrics.len(), 4);
    for (e, m) in metrics.iter().enumerate() {
        let counts: Vec<usize> = expected["unique_patterns"][e]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(m.unique_patterns, counts, "epoch {}", e + 1);
        let accuracy = expected["accuracy"][e].as_f64().unwrap();
        let loss = expected["mean_loss"][e].as_f64().unwrap();
        assert!(
            (m.train_accuracy - accuracy).abs() < 1e-9,
            "epoch {}",
            e + 1
        );
        assert!((m.train_loss - loss).abs() < 1e-6, "epoch {}", e + 1);
        let (status, body) = get(addr, &format!("/api/runs/1/epochs/{}", e + 1));
        assert_eq!(status, 200, "{body}");
        let snapshot: EpochSnapshot = serde_json::from_str(&body).unwrap();
        assert_eq!(snapshot.apd.instance_count, 200, "the probe's instances");
        assert_eq!(
            apd_by_key(&snapshot),
            expected_apd(&expected["apd"][e]),
            "epoch {}",
            e + 1
        );
    }
    let (_, body) = get(addr, "/api/runs/1");
    let run: RunSummary = serde_json::from_str(&body).unwrap();
    assert_eq!((run.status.as_str(), run.hidden_layers), ("completed", 2));
    assert!(
        run.model.contains("fc1 12") && run.model.contains("fc2 8"),
        "{run:?}"
    );
    // The lenses work on it: a mapper graph and a similarity grid of the imported layers.
    let (status, body) = get(addr, "/api/runs/1/epochs/4/mapper?layer=1&min_samples=1");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(addr, "/api/runs/1/similarity?method=cka");
    assert_eq!(status, 200, "{body}");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A run directory from the reader fixtures: 4 instances, layers fc1 and fc2 (6 units each).
fn fixture_run(root: &Path) -> PathBuf {
    let dir = root.join("run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("run.toml"),
        "name = \"toy\"\nlayers = [\"fc1\", \"fc2\"]\nclasses = [\"a\", \"b\", \"c\"]\n",
    )
    .unwrap();
    std::fs::copy(fixture("labels_i64_big.npy"), dir.join("labels.npy")).unwrap();
    dir
}

/// Writes epoch `number` as an npy folder, the way writers must: under another name, then
/// renamed.
fn write_epoch(dir: &Path, number: u32) {
    let partial = dir.join(format!("epoch-{number:04}.tmp"));
    std::fs::create_dir(&partial).unwrap();
    std::fs::copy(fixture("f32_v1.npy"), partial.join("fc1.npy")).unwrap();
    std::fs::copy(fixture("f64_big_fortran_v2.npy"), partial.join("fc2.npy")).unwrap();
    std::fs::rename(&partial, dir.join(format!("epoch-{number:04}"))).unwrap();
}

#[test]
fn bad_directories_exit_2_naming_file_tensor_and_reason_and_store_nothing() {
    type Spoil = fn(&Path);
    let cases: Vec<(&str, Spoil, &[&str])> = vec![
        ("no epoch", |_| {}, &["holds no epoch"]),
        (
            "a layer missing in the second epoch",
            |dir| {
                write_epoch(dir, 1);
                write_epoch(dir, 2);
                std::fs::remove_file(dir.join("epoch-0002/fc2.npy")).unwrap();
            },
            &["epoch-0002", "fc2", "no tensor"],
        ),
        (
            "a gap",
            |dir| {
                write_epoch(dir, 1);
                write_epoch(dir, 3);
            },
            &["epoch-0003", "epoch 2 is missing"],
        ),
        (
            "NaN in the data of the second epoch",
            |dir| {
                write_epoch(dir, 1);
                write_epoch(dir, 2);
                let path = dir.join("epoch-0002/fc1.npy");
                let mut bytes = std::fs::read(&path).unwrap();
                let at = bytes.len() - 4;
                bytes[at..].copy_from_slice(&f32::INFINITY.to_le_bytes());
                std::fs::write(&path, bytes).unwrap();
            },
            &["epoch-0002/fc1.npy", "fc1", "instance 3", "finite"],
        ),
        (
            "layers of another size",
            |dir| {
                write_epoch(dir, 1);
                write_epoch(dir, 2);
                std::fs::copy(
                    fixture("labels_i64_big.npy"),
                    dir.join("epoch-0002/fc2.npy"),
                )
                .unwrap();
            },
            &["epoch-0002/fc2.npy", "fc2"],
        ),
        (
            "an unreadable directory",
            |dir| std::fs::remove_dir_all(dir).unwrap(),
            &["run.toml", "No such file"],
        ),
    ];
    for (what, spoil, expected) in cases {
        let root = tempfile::tempdir().unwrap();
        let dir = fixture_run(root.path());
        spoil(&dir);
        let store = root.path().join("runs.db");
        let output = import(&store, &dir, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{what}: {stderr:?} lacks {part:?}");
        }
        let stored = if store.exists() { run_count(&store) } else { 0 };
        assert_eq!(stored, 0, "{what}: a bad directory left a run");
    }
}

#[test]
fn follow_picks_up_a_new_epoch_within_a_second_and_stops_when_the_job_is_done() {
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_run(root.path());
    write_epoch(&dir, 1);
    let store = root.path().join("runs.db");
    let mut follower = Command::new(binary())
        .args(["import", "--follow", "--json", "--store"])
        .arg(&store)
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stored = |count: usize| {
        Store::open(&store)
            .and_then(|s| s.epochs(1))
            .is_ok_and(|e| e.len() >= count)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stored(1) {
        assert!(Instant::now() < deadline, "epoch 1 was never imported");
        std::thread::sleep(Duration::from_millis(10));
    }
    for number in 2..=3 {
        let written = Instant::now();
        write_epoch(&dir, number);
        while !stored(number as usize) {
            assert!(
                written.elapsed() < Duration::from_secs(1),
                "epoch {number} was not imported within a second"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    std::fs::write(dir.join("finished"), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while follower.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the follower did not stop after `finished`"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = follower.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["epochs"].as_array().unwrap().len(), 3);

    // A writer that starts again and rewrites epoch 1 (renamed over the imported file) is
    // refused, keeping what was imported.
    let dir = fixture_run(&root.path().join("again"));
    std::fs::copy(
        fixture("epoch.safetensors"),
        dir.join("epoch-0001.safetensors"),
    )
    .unwrap();
    let store2 = root.path().join("runs2.db");
    let follower = Command::new(binary())
        .args(["import", "--follow", "--store"])
        .arg(&store2)
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Store::open(&store2)
        .and_then(|s| s.epochs(1))
        .is_ok_and(|e| e.len() == 1)
    {
        assert!(Instant::now() < deadline, "epoch 1 was never imported");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A later modification time, whatever the file system's clock granularity.
    std::thread::sleep(Duration::from_millis(1100));
    let partial = dir.join("epoch-0001.safetensors.tmp");
    std::fs::copy(fixture("epoch.safetensors"), &partial).unwrap();
    std::fs::rename(&partial, dir.join("epoch-0001.safetensors")).unwrap();
    let output = follower.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("epoch 1 was removed or rewritten"),
        "{stderr}"
    );
    let store2 = Store::open(&store2).unwrap();
    assert_eq!(store2.status(1).unwrap().as_deref(), Some("interrupted"));
    assert_eq!(store2.epochs(1).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_at_once_are_bounded_and_a_stopped_one_frees_its_place() {
    use actiscope_server::hub::{Hub, HubError, MAX_IMPORTS};
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_run(root.path());
    write_epoch(&dir, 1);
    let hub = Hub::new(Store::open(&root.path().join("runs.db")).unwrap());
    // Following a job that never finishes: each import keeps its place.
    let mut runs = Vec::new();
    for _ in 0..MAX_IMPORTS {
        runs.push(hub.start_import(dir.clone(), true).await.unwrap());
    }
    match hub.start_import(dir.clone(), true).await {
        Err(HubError::TooManyImports(n)) => assert_eq!(n, MAX_IMPORTS),
        other => panic!("expected TooManyImports, got {other:?}"),
    }
    assert!(hub.stop_run(runs[0]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let freed = loop {
        match hub.start_import(dir.clone(), true).await {
            Ok(run_id) => break run_id,
            Err(HubError::TooManyImports(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("the stopped import never freed its place: {err}"),
        }
    };
    for run_id in runs.iter().chain([&freed]) {
        hub.stop_run(*run_id);
    }
    let status = hub.run(runs[0]).unwrap().unwrap().status;
    assert_eq!(status, "stopped");
}
