//! Load on one live run, from loopback: N websocket clients follow the run while a bounded
//! REST loop fetches snapshots and one more client pings. Reports REST and ping p50/p99
//! latency, whether every client got every epoch in order, training speed against the same
//! run with nobody watching, the epoch frame's size, and the CPU the server process spent.
//! Run with `cargo xtask bench-serve`; `--run '{"dataset":"fashion-mnist",...}'` changes the
//! run (any `POST /api/runs` keys; `epochs` comes from `--epochs`, and `probe` and `device`
//! default to `n=500` and `flex`).
//!
//! The server is the `actiscope serve` binary given by `--server` (the xtask passes the
//! release build), one fresh process and store per run, so its CPU time is its own. The
//! clients stand in for browsers on other machines, so they cost this machine as little as
//! they can: they run on one thread of this process, keep the frames they receive, and decode
//! and check them only after training has ended.

// A benchmark reports by printing and stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actiscope_e2e::{http_get, http_post_json};
use actiscope_protocol::{
    ClientMessage, EpochMetrics, ServerMessage, decode_server_message, encode,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// One `actiscope serve` process with a store of its own.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    _store_dir: tempfile::TempDir,
}

impl ServerProcess {
    fn start(binary: &Path) -> Self {
        let store_dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary)
            .args(["serve", "--port", "0", "--store"])
            .arg(store_dir.path().join("runs.db"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        // Blocking reads, before any load starts: the server prints its address at once.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the server prints its URL").unwrap();
            if let Some(url) = line.strip_prefix("actiscope listening on http://") {
                break url.trim().trim_end_matches('/').parse().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            _store_dir: store_dir,
        }
    }

    /// CPU seconds the process has used so far.
    fn cpu_secs(&self) -> f64 {
        cpu_secs(&self.child.id().to_string())
    }

    /// The most memory the process has held so far (`VmHWM`), in MiB.
    fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(&self.child.id().to_string())
    }

    /// Starts the benchmark's run: `run` (a `POST /api/runs` body; by default the paper's
    /// MLP on the digits) for `epochs` epochs, 500 probe instances and flex unless it says.
    async fn start_run(&self, run: &serde_json::Value, epochs: usize) -> i64 {
        let mut body = serde_json::json!({"probe": "n=500", "device": "flex"});
        if let (Some(body), Some(run)) = (body.as_object_mut(), run.as_object()) {
            body.extend(run.clone());
            body.insert("epochs".to_owned(), epochs.into());
        }
        let body = body.to_string();
        let (status, json) = http_post_json(self.addr, "/api/runs", &body).await.unwrap();
        assert_eq!(status, 201, "{json}");
        let run: serde_json::Value = serde_json::from_str(&json).unwrap();
        run["run_id"].as_i64().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_finished(addr: SocketAddr, run_id: i64) -> Vec<EpochMetrics> {
    loop {
        let (_, body) = http_get(addr, &format!("/api/runs/{run_id}"))
            .await
            .unwrap();
        let run: serde_json::Value = serde_json::from_str(&body).unwrap();
        if run["status"] != "running" && run["status"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, body) = http_get(addr, &format!("/api/runs/{run_id}/epochs"))
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

fn mean_train_secs(epochs: &[EpochMetrics]) -> f64 {
    let tail = &epochs[1.min(epochs.len())..];
    tail.iter().map(|m| m.train_secs).sum::<f64>() / tail.len().max(1) as f64
}

/// CPU seconds (user + system) used so far by process `pid`, from `/proc` (Linux; NaN
/// elsewhere). Ticks are 1/100 s: Linux reports them in USER_HZ, which is 100 on every
/// architecture it runs the benchmark on.
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name, which sits in parentheses and may hold spaces.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Peak resident memory (`VmHWM` in `/proc/PID/status`) of process `pid`, in MiB (Linux;
/// NaN elsewhere).
fn peak_rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let clients = arg("--clients", 200);
    let rest_pause = Duration::from_millis(arg("--rest-pause-ms", 20) as u64);
    let epochs = arg("--epochs", 30);
    let rounds = arg("--rounds", 5).max(1);
    let run: serde_json::Value = args
        .iter()
        .position(|a| a == "--run")
        .and_then(|i| args.get(i + 1))
        .map_or_else(
            || serde_json::json!({}),
            |json| serde_json::from_str(json).expect("--run takes a JSON object"),
        );
    let server = args
        .iter()
        .position(|a| a == "--server")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| PathBuf::from("target/release/actiscope"), PathBuf::from);
    let mut slowdowns = Vec::new();
    let mut cpu_added = Vec::new();
    let mut all_latencies = Vec::new();
    let mut all_pings = Vec::new();
    let mut peaks = Vec::new();
    println!("run: {run} for {epochs} epochs");
    for round_idx in 1..=rounds {
        let result = round(&server, &run, clients, epochs, rest_pause).await;
        let added = 100.0 * (result.loaded_server_cpu / result.baseline_cpu - 1.0);
        println!(
            "round {round_idx}: {}/{clients} clients got every epoch once, in order; training {:.3} s/epoch alone, {:.3} s/epoch under load: {:+.1}%; \
             server CPU {:.2} s alone, {:.2} s under load: {added:+.1}%",
            result.complete,
            result.baseline,
            result.loaded,
            100.0 * (result.loaded / result.baseline - 1.0),
            result.baseline_cpu,
            result.loaded_server_cpu,
        );
        println!(
            "round {round_idx}: server peak RSS {:.0} MiB alone, {:.0} MiB with {clients} clients; \
             the clients and the REST loop (this process) used {:.2} s of CPU meanwhile",
            result.baseline_rss_mib, result.loaded_rss_mib, result.clients_cpu
        );
        println!(
            "round {round_idx}: an epoch frame is {:.0} KiB; per epoch (means after the first) \
             capture {:.3} s beside training",
            result.epoch_frame_bytes as f64 / 1024.0,
            result.capture_secs,
        );
        peaks.push((result.baseline_rss_mib, result.loaded_rss_mib));
        cpu_added.push(added);
        assert_eq!(
            result.complete, clients,
            "a client missed or repeated an epoch"
        );
        slowdowns.push(100.0 * (result.loaded / result.baseline - 1.0));
        all_latencies.extend(result.latencies);
        all_pings.extend(result.pings);
    }
    all_pings.sort_by(f64::total_cmp);
    slowdowns.sort_by(f64::total_cmp);
    cpu_added.sort_by(f64::total_cmp);
    all_latencies.sort_by(f64::total_cmp);
    println!(
        "REST (run + latest snapshot), {} requests: p50 {:.1} ms, p99 {:.1} ms",
        all_latencies.len(),
        percentile(&all_latencies, 0.5),
        percentile(&all_latencies, 0.99)
    );
    println!(
        "websocket ping round trips while training, {} pings: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        all_pings.len(),
        percentile(&all_pings, 0.5),
        percentile(&all_pings, 0.99),
        all_pings.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "training under load, {rounds} rounds (baseline and loaded run alternate): median {:+.1}%, range {:+.1}% to {:+.1}% (goal: at most +10%)",
        percentile(&slowdowns, 0.5),
        slowdowns.first().copied().unwrap_or(f64::NAN),
        slowdowns.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "server CPU under load against the quiet run's: median {:+.1}%, range {:+.1}% to {:+.1}%",
        percentile(&cpu_added, 0.5),
        cpu_added.first().copied().unwrap_or(f64::NAN),
        cpu_added.last().copied().unwrap_or(f64::NAN)
    );
    let most = |pick: fn(&(f64, f64)) -> f64| peaks.iter().map(pick).fold(f64::NAN, f64::max);
    println!(
        "server peak RSS, highest over the rounds: {:.0} MiB alone, {:.0} MiB with {clients} clients",
        most(|p| p.0),
        most(|p| p.1)
    );
}

/// What one round measured.
struct Round {
    baseline: f64,
    loaded: f64,
    /// CPU seconds of the server process of the quiet run.
    baseline_cpu: f64,
    /// CPU seconds of the server process of the loaded run.
    loaded_server_cpu: f64,
    /// CPU seconds this process (the clients and the REST loop) spent during the loaded run.
    clients_cpu: f64,
    /// Peak RSS of the quiet run's server, MiB.
    baseline_rss_mib: f64,
    /// Peak RSS of the loaded run's server, MiB.
    loaded_rss_mib: f64,
    complete: usize,
    latencies: Vec<f64>,
    /// Round trips of websocket pings sent every 50 ms while the run trained, ms.
    pings: Vec<f64>,
    /// Bytes of the first epoch's frame as sent.
    epoch_frame_bytes: usize,
    /// Mean capture seconds per epoch after the first (loaded run).
    capture_secs: f64,
}

/// One baseline run with nobody watching, then one under load (the REST loop pauses
/// `rest_pause` between its rounds of two requests).
async fn round(
    server: &Path,
    run: &serde_json::Value,
    clients: usize,
    epochs: usize,
    rest_pause: Duration,
) -> Round {
    // Baseline: the same run, nobody watching.
    let quiet = ServerProcess::start(server);
    let run_id = quiet.start_run(run, epochs).await;
    let baseline = mean_train_secs(&wait_finished(quiet.addr, run_id).await);
    let baseline_cpu = quiet.cpu_secs();
    let baseline_rss_mib = quiet.peak_rss_mib();
    drop(quiet);

    // Loaded: N websocket clients plus a REST loop, on a thread of this process.
    let bench_cpu_before = cpu_secs("self");
    let loaded_server = ServerProcess::start(server);
    let run_id = loaded_server.start_run(run, epochs).await;
    let addr = loaded_server.addr;
    let url = format!("ws://{addr}/ws");
    let training_done = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&training_done);
    let load = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut followers = Vec::new();
            for _ in 0..clients {
                let (url, done) = (url.clone(), Arc::clone(&done));
                followers.push(tokio::spawn(async move {
                    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                    let subscribe = encode(&ClientMessage::Subscribe {
                        run_id,
                        from_epoch: 1,
                    })
                    .unwrap();
                    socket
                        .send(Message::Binary(subscribe.into()))
                        .await
                        .unwrap();
                    let mut frames = Vec::new();
                    // Until training is over and the socket has been quiet for half a second.
                    let mut last_frame = Instant::now();
                    loop {
                        match tokio::time::timeout(Duration::from_millis(100), socket.next()).await
                        {
                            Ok(Some(Ok(Message::Binary(bytes)))) => {
                                frames.push(bytes);
                                last_frame = Instant::now();
                            }
                            Ok(Some(Ok(_))) => {}
                            Ok(_) => break,
                            Err(_) => {
                                if done.load(Ordering::SeqCst)
                                    && last_frame.elapsed() > Duration::from_millis(500)
                                {
                                    break;
                                }
                            }
                        }
                    }
                    frames
                }));
            }
            let pinger = {
                let (url, done) = (url.clone(), Arc::clone(&done));
                tokio::spawn(async move { ping_until(&url, &done).await })
            };
            let rest = tokio::spawn(async move {
                let mut latencies_ms = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let (_, body) = http_get(addr, &format!("/api/runs/{run_id}"))
                        .await
                        .unwrap();
                    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let stored = run["epochs_stored"].as_u64().unwrap_or(0);
                    if stored > 0 {
                        let (status, _) =
                            http_get(addr, &format!("/api/runs/{run_id}/epochs/{stored}"))
                                .await
                                .unwrap();
                        assert_eq!(status, 200);
                    }
                    latencies_ms.push(started.elapsed().as_secs_f64() * 1e3);
                    let until = Instant::now() + rest_pause;
                    while !done.load(Ordering::SeqCst) && Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(20).min(rest_pause)).await;
                    }
                }
                latencies_ms
            });
            let mut all_frames = Vec::new();
            for follower in followers {
                all_frames.push(follower.await.unwrap());
            }
            (all_frames, rest.await.unwrap(), pinger.await.unwrap())
        })
    });
    let loaded_epochs = wait_finished(addr, run_id).await;
    let loaded = mean_train_secs(&loaded_epochs);
    training_done.store(true, Ordering::SeqCst);
    let (all_frames, latencies, pings) = load.join().unwrap();
    let loaded_server_cpu = loaded_server.cpu_secs();
    let clients_cpu = cpu_secs("self") - bench_cpu_before;
    let loaded_rss_mib = loaded_server.peak_rss_mib();
    drop(loaded_server);
    // Every client must have received the same frames; the first client's are decoded and
    // must hold each epoch once, in order (byte-equal frames hold the same messages).
    let epochs_of = |frames: &[tokio_tungstenite::tungstenite::Bytes]| -> Vec<usize> {
        frames
            .iter()
            .filter_map(|bytes| match decode_server_message(bytes) {
                Ok(ServerMessage::Epoch { snapshot, .. }) => Some(snapshot.metrics.epoch),
                _ => None,
            })
            .collect()
    };
    let epoch_frames = |frames: &[tokio_tungstenite::tungstenite::Bytes]| -> Vec<tokio_tungstenite::tungstenite::Bytes> {
        // Progress frames depend on timing; the epoch frames are large, the others small.
        frames.iter().filter(|f| f.len() > 4_096).cloned().collect()
    };
    let reference = all_frames
        .first()
        .map(|f| epoch_frames(f))
        .unwrap_or_default();
    let complete = if epochs_of(&reference) == (1..=epochs).collect::<Vec<_>>() {
        all_frames
            .iter()
            .filter(|frames| epoch_frames(frames) == reference)
            .count()
    } else {
        0
    };
    let after_first = &loaded_epochs[1.min(loaded_epochs.len())..];
    let capture_secs =
        after_first.iter().map(|m| m.capture_secs).sum::<f64>() / after_first.len().max(1) as f64;
    Round {
        pings,
        epoch_frame_bytes: reference.first().map_or(0, |f| f.len()),
        capture_secs,
        baseline,
        loaded,
        baseline_cpu,
        loaded_server_cpu,
        clients_cpu,
        baseline_rss_mib,
        loaded_rss_mib,
        complete,
        latencies,
    }
}

/// Pings the server over a websocket of its own every 50 ms until `done`, returning each
/// round trip in milliseconds: what the dashboard's own ping would see while the run trains.
async fn ping_until(url: &str, done: &AtomicBool) -> Vec<f64> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut round_trips = Vec::new();
    let mut nonce = 0u64;
    while !done.load(Ordering::SeqCst) {
        nonce += 1;
        let ping = encode(&ClientMessage::Ping { nonce }).unwrap();
        let sent = Instant::now();
        socket.send(Message::Binary(ping.into())).await.unwrap();
        // The run list and other broadcasts may come first; the pong carries our nonce.
        loop {
            match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                Ok(Some(Ok(Message::Binary(bytes)))) => {
                    if let Ok(ServerMessage::Pong { nonce: back }) = decode_server_message(&bytes)
                        && back == nonce
                    {
                        round_trips.push(sent.elapsed().as_secs_f64() * 1e3);
                        break;
                    }
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("the pinging socket failed: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    round_trips
}
