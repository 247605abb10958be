//! Workers over one store: a run queued through `serve --no-train` is claimed and trained by
//! `actiscope worker` processes; a worker killed with SIGKILL mid-run, ten times over, has its
//! run put back in the queue and resumed by the next, so the run ends with every epoch stored
//! once and the training losses of a run that was never interrupted. A second server on the
//! same store sees it all.

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

use actiscope_store::Store;

mod common;

use common::{StoreArg, binary, http, metrics, serve, serve_with, wait_for_epochs};

const EPOCHS: usize = 120;

fn worker(store: &(impl StoreArg + ?Sized), extra: &[&str]) -> Child {
    worker_logging(store, extra, None)
}

/// A worker whose messages go to `log` (when given).
fn worker_logging(store: &(impl StoreArg + ?Sized), extra: &[&str], log: Option<&Path>) -> Child {
    Command::new(binary())
        .args(["worker", "--store"])
        .arg(store.arg())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log.map_or_else(Stdio::null, |path| {
            Stdio::from(std::fs::File::create(path).unwrap())
        }))
        .spawn()
        .unwrap()
}

/// The run of these tests, as `train` and `submit` take it (with `--epochs` [`EPOCHS`]).
const RUN_FLAGS: [&str; 10] = [
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

/// The run of these tests as `POST /api/runs` takes it: the same as [`RUN_FLAGS`].
fn run_body() -> String {
    format!(
        r#"{{"dataset":"moons","hidden":"16,16","probe":"n=100","device":"flex","seed":5,"epochs":{EPOCHS}}}"#
    )
}

/// The run as it trains uninterrupted: its stored metrics.
fn uninterrupted(dir: &Path) -> Vec<actiscope_protocol::EpochMetrics> {
    let straight = dir.join("straight.db");
    let epochs = EPOCHS.to_string();
    let out = Command::new(binary())
        .arg("train")
        .args(RUN_FLAGS)
        .args(["--epochs", &epochs, "--store"])
        .arg(&straight)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    metrics(&straight, 1)
}

/// Asserts that run 1 of `store` holds every epoch once, with the losses of `expected`.
fn assert_resumed_exactly(
    store: &(impl StoreArg + ?Sized),
    expected: &[actiscope_protocol::EpochMetrics],
) {
    let resumed = metrics(store, 1);
    let numbers: Vec<usize> = resumed.iter().map(|m| m.epoch).collect();
    assert_eq!(
        numbers,
        (1..=EPOCHS).collect::<Vec<_>>(),
        "every epoch once"
    );
    for (got, want) in resumed.iter().zip(expected) {
        assert!(
            (got.train_loss - want.train_loss).abs() <= 1e-5 * want.train_loss.max(1.0),
            "epoch {}: {} vs {} uninterrupted (a restart, not a resume?)",
            got.epoch,
            got.train_loss,
            want.train_loss
        );
    }
}

/// Waits until server `b` shows run 1 completed, and checks that it counts every epoch.
fn wait_until_completed_with_every_epoch(b: SocketAddr, deadline: Instant) {
    loop {
        let (_, body) = http(b, "GET", "/api/runs/1", "");
        let run: serde_json::Value = serde_json::from_str(&body).unwrap();
        if run["status"] == "completed" {
            assert_eq!(
                run["epochs_stored"], EPOCHS as u64,
                "server B sees every epoch"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not finished: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that server `a` serves every epoch the workers stored of run 1, then stops both
/// servers.
fn serves_every_epoch_then_stop(a: SocketAddr, servers: [&mut Child; 2]) {
    let (_, body) = http(a, "GET", "/api/runs/1/epochs", "");
    let via_a: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        via_a.len(),
        EPOCHS,
        "server A serves what the workers stored"
    );
    for server in servers {
        server.kill().unwrap();
        server.wait().unwrap();
    }
}

/// The epoch each claim of run 1 started from, as the worker logged it ("from epoch N of").
fn started_from(log: &Path) -> Vec<usize> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("run 1 ("))
        .filter_map(|line| {
            let rest = line.split(" from epoch ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

#[test]
fn workers_killed_mid_run_hand_it_on_with_every_epoch_once_and_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    let expected = uninterrupted(dir.path());

    let store = dir.path().join("runs.db");
    drop(Store::open(&store).unwrap());
    let (mut server_a, a) = serve_with(&store, &["--no-train"]);
    let (mut server_b, b) = serve(&store);
    let body = run_body();
    let (status, answer) = http(a, "POST", "/api/runs", &body);
    assert_eq!(status, 201, "{answer}");
    let run: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(run["status"], "queued", "server A trains nothing");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        metrics(&store, 1).is_empty(),
        "nothing trains without a worker"
    );

    // Ten workers, each killed once it has stored a few more epochs.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut kills = 0;
    let mut starts = Vec::new();
    while kills < 10 {
        let before = metrics(&store, 1).len();
        let log = dir.path().join(format!("worker-{kills}.log"));
        let mut w = worker_logging(&store, &[], Some(&log));
        wait_for_epochs(&store, 1, before + 3);
        assert!(Instant::now() < deadline, "no progress after {kills} kills");
        w.kill().unwrap(); // SIGKILL
        w.wait().unwrap();
        // Resumed from the dead worker's last checkpoint (every epoch checkpoints), not
        // restarted: a restart would also reproduce the losses, from epoch 1.
        starts.push((before, started_from(&log)));
        kills += 1;
        if metrics(&store, 1).len() >= EPOCHS {
            break;
        }
    }
    assert!(kills >= 5, "the run finished before enough kills: {kills}");
    for (before, from) in &starts {
        assert_eq!(
            from,
            &[before + 1],
            "a worker started after {before} epochs: {starts:?}"
        );
    }
    // With no worker alive, the servers put the dead worker's run back in the queue and say so.
    loop {
        let (_, body) = http(b, "GET", "/api/runs/1", "");
        let run: serde_json::Value = serde_json::from_str(&body).unwrap();
        if run["status"] == "queued" || run["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "still shown running: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Two more workers finish it.
    let mut last: Vec<Child> = (0..2)
        .map(|_| worker(&store, &["--exit-when-idle"]))
        .collect();
    wait_until_completed_with_every_epoch(b, deadline);
    for w in &mut last {
        let status = w.wait().unwrap();
        assert!(status.success(), "an idle worker exits cleanly");
    }
    assert_resumed_exactly(&store, &expected);
    serves_every_epoch_then_stop(a, [&mut server_a, &mut server_b]);
}

#[test]
fn a_submitted_run_is_trained_by_a_worker_and_bad_submissions_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    let out = Command::new(binary())
        .args([
            "submit",
            "--dataset",
            "moons",
            "--hidden",
            "8",
            "--epochs",
            "3",
        ])
        .args(["--probe", "n=50", "--device", "flex", "--json", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let queued: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(queued["status"], "queued");
    let status = worker(&store, &["--exit-when-idle", "--slots", "2"])
        .wait()
        .unwrap();
    assert!(status.success());
    let row = Store::open(&store).unwrap().run(1).unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.epochs_stored), ("completed", 3));
    assert_eq!(row.device.split_whitespace().next(), Some("flex"));
    // A worker stopped with Ctrl-C leaves its run stopped; a server that trains nothing
    // resumes it by queueing it for the next worker, which goes on from its checkpoint.
    let out = Command::new(binary())
        .args([
            "submit",
            "--dataset",
            "moons",
            "--hidden",
            "8",
            "--epochs",
            "100000",
        ])
        .args(["--probe", "n=50", "--device", "flex", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut w = worker(&store, &[]);
    wait_for_epochs(&store, 2, 3);
    let interrupted = Command::new("kill")
        .args(["-INT", &w.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    assert!(w.wait().unwrap().success(), "Ctrl-C stops a worker cleanly");
    let stopped_at = metrics(&store, 2).len();
    assert_eq!(
        Store::open(&store).unwrap().run(2).unwrap().unwrap().status,
        "stopped"
    );
    let (mut server, addr) = serve_with(&store, &["--no-train"]);
    let (status, body) = http(addr, "POST", "/api/runs/2/resume", "");
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("\"queued\""), "{body}");
    let log = dir.path().join("resumer.log");
    let mut w = worker_logging(&store, &[], Some(&log));
    wait_for_epochs(&store, 2, stopped_at + 2);
    w.kill().unwrap();
    w.wait().unwrap();
    assert_eq!(started_from(&log).len(), 0, "the log names run 1 only");
    let from: Vec<usize> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("run 2 ("))
        .filter_map(|l| {
            l.split(" from epoch ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(from, [stopped_at + 1], "resumed where it stopped");
    server.kill().unwrap();
    server.wait().unwrap();
    let out = Command::new(binary())
        .args(["submit", "--epochs", "0", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(binary())
        .args(["worker", "--slots", "0", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn slots_and_workers_share_one_store_without_losing_an_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    for seed in 0..6 {
        let out = Command::new(binary())
            .args([
                "submit",
                "--dataset",
                "moons",
                "--hidden",
                "16",
                "--epochs",
                "30",
            ])
            .args(["--probe", "n=50", "--device", "flex", "--seed"])
            .arg(seed.to_string())
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Three workers, one of them with two slots: four runs train at once on one file.
    let mut workers = vec![
        worker(&store, &["--exit-when-idle", "--slots", "2"]),
        worker(&store, &["--exit-when-idle"]),
        worker(&store, &["--exit-when-idle"]),
    ];
    for w in &mut workers {
        assert!(w.wait().unwrap().success());
    }
    let runs = Store::open(&store).unwrap().runs().unwrap();
    assert_eq!(runs.len(), 6);
    let owners: std::collections::HashSet<String> = runs.iter().map(|r| r.owner.clone()).collect();
    assert!(owners.len() >= 2, "the runs were shared out: {owners:?}");
    for run in runs {
        assert_eq!(run.status, "completed", "run {}", run.id);
        let numbers: Vec<usize> = metrics(&store, run.id).iter().map(|m| m.epoch).collect();
        assert_eq!(numbers, (1..=30).collect::<Vec<_>>(), "run {}", run.id);
    }
}

/// The issue's several-machines test, on loopback: one PostgreSQL server, two actiscope
/// servers that train nothing, three workers at once. A run queued through server A is
/// claimed by a worker; the worker training it is killed with SIGKILL ten times, and each
/// time another worker resumes it from the checkpoint. Server B streams it live, and the run
/// ends with every epoch once and the losses of an uninterrupted run.
#[test]
fn on_postgres_two_servers_and_three_workers_hand_a_run_on_through_ten_kills() {
    let pg = actiscope_store::testing::TestPostgres::shared().unwrap();
    let store = pg.url(&pg.fresh_database().unwrap());
    let store = store.as_str();
    let dir = tempfile::tempdir().unwrap();
    let expected = uninterrupted(dir.path());
    let (mut server_a, a) = serve_with(store, &["--no-train"]);
    let (mut server_b, b) = serve_with(store, &["--no-train"]);
    let body = run_body();
    let (status, answer) = http(a, "POST", "/api/runs", &body);
    assert_eq!(status, 201, "{answer}");
    // Server B lists the run queued on A (through NOTIFY), before any worker exists.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = http(b, "GET", "/api/runs/1", "");
        if body.contains("\"queued\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server B does not list it: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs: Vec<std::path::PathBuf> = (0..13)
        .map(|i| dir.path().join(format!("w{i}.log")))
        .collect();
    let mut workers: Vec<Child> = (0..3)
        .map(|i| worker_logging(store, &[], Some(&logs[i])))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut kills = 0;
    while kills < 10 && metrics(store, 1).len() < EPOCHS - 5 {
        let before = metrics(store, 1).len();
        wait_for_epochs(store, 1, before + 3);
        assert!(Instant::now() < deadline, "no progress after {kills} kills");
        // The worker that trains the run now: its pid is in the run's owner.
        let row = store.open().unwrap().run(1).unwrap().unwrap();
        let pid: u32 = row.owner.rsplit('/').nth(1).unwrap().parse().unwrap();
        let Some(index) = workers.iter().position(|w| w.id() == pid) else {
            continue; // claimed by a worker that is already being replaced
        };
        workers[index].kill().unwrap(); // SIGKILL
        workers[index].wait().unwrap();
        kills += 1;
        workers[index] = worker_logging(store, &[], Some(&logs[2 + kills]));
    }
    assert!(kills >= 10, "the run finished before ten kills: {kills}");
    wait_until_completed_with_every_epoch(b, deadline);
    for w in &mut workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    assert_resumed_exactly(store, &expected);
    // Every claim after the first resumed from a checkpoint; none started over.
    let mut claims: Vec<usize> = logs.iter().flat_map(|log| started_from(log)).collect();
    claims.sort_unstable();
    assert_eq!(claims.first(), Some(&1), "{claims:?}");
    assert!(
        claims.len() > kills,
        "each kill handed the run on: {claims:?}"
    );
    assert_eq!(
        claims.iter().filter(|&&from| from == 1).count(),
        1,
        "{claims:?}"
    );
    serves_every_epoch_then_stop(a, [&mut server_a, &mut server_b]);
}

/// `--store` takes a `postgres://` URL whose password may come from `PGPASSWORD` instead; the
/// password is never printed, and a wrong one is a clear error (exit 1, not a panic).
#[test]
fn a_postgres_store_takes_its_password_from_pgpassword_and_never_prints_it() {
    let pg = actiscope_store::testing::TestPostgres::shared().unwrap();
    let database = pg.fresh_database().unwrap();
    let without_password = format!(
        "postgres://{}@127.0.0.1:{}/{database}",
        actiscope_store::testing::USER,
        pg.port()
    );
    let submit = |url: &str, password: Option<&str>| {
        let mut command = Command::new(binary());
        command
            .args([
                "submit",
                "--dataset",
                "moons",
                "--hidden",
                "8",
                "--epochs",
                "2",
            ])
            .args([
                "--probe", "n=50", "--device", "flex", "--json", "--store", url,
            ])
            .env_remove("PGPASSWORD")
            .env("PGPASSFILE", "/nonexistent");
        if let Some(password) = password {
            command.env("PGPASSWORD", password);
        }
        command.output().unwrap()
    };
    let out = submit(&without_password, Some(pg.password()));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains(&without_password),
        "names the store: {printed}"
    );
    assert!(!printed.contains(pg.password()), "{printed}");
    let out = submit(&pg.url(&database), None);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(!printed.contains(pg.password()), "{printed}");
    let out = submit(&without_password, Some("wrong"));
    let printed = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("password authentication failed"),
        "{printed}"
    );
    // Two queued runs; a worker on the GPU-less test machine trains both with --device flex.
    let status = worker(
        pg.url(&database).as_str(),
        &["--exit-when-idle", "--device", "flex"],
    )
    .wait()
    .unwrap();
    assert!(status.success());
    let store = pg.url(&database);
    for run in store.as_str().open().unwrap().runs().unwrap() {
        assert_eq!((run.status.as_str(), run.epochs_stored), ("completed", 2));
    }
    let out = Command::new(binary())
        .args(["worker", "--device", "tpu", "--store", &store])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
/// The database connection of every process is cut mid-run (as a database restart would): the
/// worker's epoch write fails, it puts the run back in the queue once the database answers,
/// and the run resumes from its checkpoint, every epoch once, the same losses.
#[test]
fn on_postgres_a_cut_connection_mid_run_puts_the_run_back_and_it_resumes() {
    let pg = actiscope_store::testing::TestPostgres::shared().unwrap();
    let database = pg.fresh_database().unwrap();
    let store = pg.url(&database);
    let store = store.as_str();
    let dir = tempfile::tempdir().unwrap();
    let expected = uninterrupted(dir.path());
    let epochs = EPOCHS.to_string();
    let out = Command::new(binary())
        .arg("submit")
        .args(RUN_FLAGS)
        .args(["--epochs", &epochs, "--store", store])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut server, addr) = serve_with(store, &["--no-train"]);
    let log = dir.path().join("worker.log");
    let mut w = worker_logging(store, &[], Some(&log));
    wait_for_epochs(store, 1, 10);
    let cut = pg.cut_connections(&database).unwrap();
    assert!(cut >= 2, "the worker's and the server's sessions: {cut}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = http(addr, "GET", "/api/runs/1", "");
        if body.contains("\"completed\"") {
            break;
        }
        assert!(Instant::now() < deadline, "not finished: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    w.kill().unwrap();
    w.wait().unwrap();
    assert_resumed_exactly(store, &expected);
    let claims = started_from(&log);
    assert_eq!(claims.len(), 2, "claimed again after the cut: {claims:?}");
    assert_eq!(claims.first(), Some(&1));
    assert!(claims[1] > 10, "resumed from a checkpoint: {claims:?}");
    server.kill().unwrap();
    server.wait().unwrap();
}
