//! Load on one live run, from loopback: N websocket clients follow the run while a bounded
//! REST loop fetches snapshots. Reports REST p50/p99 latency, whether every client got every
//! epoch in order, and training speed against the same run with no clients, measured in the
//! same process. Run with `cargo xtask bench-serve`.
//!
//! The clients stand in for browsers on other machines, so they cost this machine as little
//! as they can: they run on a runtime of their own (one thread, not the server's workers),
//! keep the frames they receive, and decode and check them only after training has ended.

// A benchmark reports by printing and stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actiscope_e2e::{TestServer, http_get};
use actiscope_protocol::{ClientMessage, EpochMetrics, ServerMessage, decode, encode};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn config(epochs: usize) -> actiscope_train::TrainConfig {
    actiscope_train::TrainConfig {
        epochs,
        probe: actiscope_train::ProbeSpec::parse("n=500").unwrap(),
        device: actiscope_train::device::DeviceChoice::Flex,
        ..actiscope_train::TrainConfig::default()
    }
}

async fn wait_finished(server: &TestServer, run_id: i64) -> Vec<EpochMetrics> {
    loop {
        let (_, body) = http_get(server.addr, &format!("/api/runs/{run_id}"))
            .await
            .unwrap();
        let run: serde_json::Value = serde_json::from_str(&body).unwrap();
        if run["status"] != "running" && run["status"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, body) = http_get(server.addr, &format!("/api/runs/{run_id}/epochs"))
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

fn mean_train_secs(epochs: &[EpochMetrics]) -> f64 {
    let tail = &epochs[1.min(epochs.len())..];
    tail.iter().map(|m| m.train_secs).sum::<f64>() / tail.len().max(1) as f64
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
    let clients = arg("--clients", 50);
    let rest_pause = Duration::from_millis(arg("--rest-pause-ms", 20) as u64);
    let epochs = arg("--epochs", 10);
    let rounds = arg("--rounds", 3).max(1);
    let mut slowdowns = Vec::new();
    let mut all_latencies = Vec::new();
    for round_idx in 1..=rounds {
        let result = round(clients, epochs, rest_pause).await;
        println!(
            "round {round_idx}: {}/{clients} clients got every epoch once, in order; training {:.3} s/epoch alone, {:.3} s/epoch under load: {:+.1}%",
            result.complete,
            result.baseline,
            result.loaded,
            100.0 * (result.loaded / result.baseline - 1.0)
        );
        assert_eq!(
            result.complete, clients,
            "a client missed or repeated an epoch"
        );
        slowdowns.push(100.0 * (result.loaded / result.baseline - 1.0));
        all_latencies.extend(result.latencies);
    }
    slowdowns.sort_by(f64::total_cmp);
    all_latencies.sort_by(f64::total_cmp);
    println!(
        "REST (run + latest snapshot), {} requests: p50 {:.1} ms, p99 {:.1} ms",
        all_latencies.len(),
        percentile(&all_latencies, 0.5),
        percentile(&all_latencies, 0.99)
    );
    println!(
        "training under load, {rounds} rounds (baseline and loaded run alternate): median {:+.1}%, range {:+.1}% to {:+.1}% (goal: at most +10%)",
        percentile(&slowdowns, 0.5),
        slowdowns.first().copied().unwrap_or(f64::NAN),
        slowdowns.last().copied().unwrap_or(f64::NAN)
    );
}

/// What one round measured.
struct Round {
    baseline: f64,
    loaded: f64,
    complete: usize,
    latencies: Vec<f64>,
}

/// One baseline run with nobody watching, then one under load (the REST loop pauses
/// `rest_pause` between its rounds of two requests).
async fn round(clients: usize, epochs: usize, rest_pause: Duration) -> Round {
    // Baseline: the same run, nobody watching.
    let (quiet, run_id) = TestServer::start_with_run(None, Some(config(epochs)))
        .await
        .unwrap();
    let baseline = mean_train_secs(&wait_finished(&quiet, run_id.unwrap()).await);
    drop(quiet);

    // Loaded: N websocket clients plus a REST loop, on their own runtime and thread.
    let (server, run_id) = TestServer::start_with_run(None, Some(config(epochs)))
        .await
        .unwrap();
    let run_id = run_id.unwrap();
    let (addr, url) = (server.addr, server.ws_url());
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
            (all_frames, rest.await.unwrap())
        })
    });
    let loaded = mean_train_secs(&wait_finished(&server, run_id).await);
    training_done.store(true, Ordering::SeqCst);
    let (all_frames, latencies) = load.join().unwrap();
    // Every client must have received the same frames; the first client's are decoded and
    // must hold each epoch once, in order (byte-equal frames hold the same messages).
    let epochs_of = |frames: &[tokio_tungstenite::tungstenite::Bytes]| -> Vec<usize> {
        frames
            .iter()
            .filter_map(|bytes| match decode(bytes) {
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
    Round {
        baseline,
        loaded,
        complete,
        latencies,
    }
}
