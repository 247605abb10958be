//! Load on one live run, from loopback: N websocket clients follow the run while a bounded
//! REST loop fetches snapshots. Reports REST p50/p99 latency, whether every client got every
//! epoch in order, and training speed against the same run with no clients, measured in the
//! same process. Run with `cargo xtask bench-serve`.

// A benchmark reports by printing and stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

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
    let epochs = arg("--epochs", 5);

    // Baseline: the same run, nobody watching.
    let (quiet, run_id) = TestServer::start_with_run(None, Some(config(epochs)))
        .await
        .unwrap();
    let baseline = mean_train_secs(&wait_finished(&quiet, run_id.unwrap()).await);
    drop(quiet);

    // Loaded: N websocket clients plus a REST loop.
    let (server, run_id) = TestServer::start_with_run(None, Some(config(epochs)))
        .await
        .unwrap();
    let run_id = run_id.unwrap();
    let mut followers = Vec::new();
    for _ in 0..clients {
        let url = server.ws_url();
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
            let mut seen = Vec::new();
            while seen.len() < epochs {
                let Some(Ok(Message::Binary(bytes))) = socket.next().await else {
                    break;
                };
                if let Ok(ServerMessage::Epoch { snapshot, .. }) = decode(&bytes) {
                    seen.push(snapshot.metrics.epoch);
                }
            }
            seen
        }));
    }
    let addr = server.addr;
    let rest = tokio::spawn(async move {
        let mut latencies_ms = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3_600);
        while Instant::now() < deadline {
            let started = Instant::now();
            let (_, body) = http_get(addr, &format!("/api/runs/{run_id}"))
                .await
                .unwrap();
            let run: serde_json::Value = serde_json::from_str(&body).unwrap();
            let stored = run["epochs_stored"].as_u64().unwrap_or(0);
            if stored > 0 {
                let (status, _) = http_get(addr, &format!("/api/runs/{run_id}/epochs/{stored}"))
                    .await
                    .unwrap();
                assert_eq!(status, 200);
            }
            latencies_ms.push(started.elapsed().as_secs_f64() * 1e3);
            if run["status"] != "running" && run["status"] != "queued" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies_ms
    });
    let loaded = mean_train_secs(&wait_finished(&server, run_id).await);
    let mut complete = 0;
    for follower in followers {
        let seen = follower.await.unwrap();
        if seen == (1..=epochs).collect::<Vec<_>>() {
            complete += 1;
        }
    }
    let mut latencies = rest.await.unwrap();
    latencies.sort_by(f64::total_cmp);
    println!(
        "clients following the run: {clients}; got every epoch once, in order: {complete}/{clients}"
    );
    println!(
        "REST (run + latest snapshot), {} requests: p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!(
        "training: {baseline:.3} s/epoch alone, {loaded:.3} s/epoch under load: {:+.1}% (goal: at most +10%)",
        100.0 * (loaded / baseline - 1.0)
    );
}
