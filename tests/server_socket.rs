//! A real server on port 0 and a real websocket client.

// Tests fail by panicking, helpers included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::future::IntoFuture;
use std::time::Duration;

use actiscope_e2e::{TestServer, http_get};
use actiscope_protocol::{
    ClientMessage, ServerInfo, ServerMessage, decode, decode_server_message, encode,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_message(socket: &mut Socket) -> ServerMessage {
    next_message_within(socket, Duration::from_secs(10)).await
}

/// The next frame, within `limit`, decoded.
async fn next_message_within(socket: &mut Socket, limit: Duration) -> ServerMessage {
    let frame = tokio::time::timeout(limit, socket.next())
        .await
        .unwrap_or_else(|_| panic!("a frame within {limit:?}"))
        .expect("the socket stays open")
        .expect("a valid frame");
    match frame {
        Message::Binary(bytes) => {
            let message = decode_server_message(&bytes).expect("server frames decode");
            // The large frames go out deflated, the small ones plain.
            let raw: ServerMessage = decode(&bytes).expect("an envelope");
            let deflated = matches!(raw, ServerMessage::Deflated { .. });
            let large = matches!(
                message,
                ServerMessage::Epoch { .. } | ServerMessage::Images { .. }
            );
            assert_eq!(deflated, large, "wrapping of {message:?}");
            message
        }
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_foreign_page_cannot_open_the_websocket() {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start(None).await.expect("server starts");
    let with_origin = |origin: &str| {
        let mut request = server.ws_url().into_client_request().expect("request");
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
        request
    };
    for origin in [
        "http://evil.example",
        "null",
        "http://127.0.0.1.evil.example",
    ] {
        match tokio_tungstenite::connect_async(with_origin(origin)).await {
            Err(Error::Http(response)) => assert_eq!(response.status(), 403, "{origin}"),
            Err(other) => panic!("{origin}: expected a 403, got {other}"),
            Ok(_) => panic!("{origin}: a foreign page opened the websocket"),
        }
    }
    // The dashboard's own page, from the address it was opened at, gets in.
    let own = format!("http://{}", server.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(with_origin(&own))
        .await
        .expect("the dashboard's own origin connects");
    assert!(matches!(
        next_message(&mut socket).await,
        ServerMessage::Hello(_)
    ));
}

#[tokio::test]
async fn hello_ping_pong_and_garbage_over_a_real_socket() {
    let server = TestServer::start(None).await.expect("server starts");
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("websocket connects");

    match next_message(&mut socket).await {
        ServerMessage::Hello(info) => {
            assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
            assert_eq!(info.protocol_version, actiscope_protocol::PROTOCOL_VERSION);
        }
        other => panic!("expected Hello first, got {other:?}"),
    }
    assert_eq!(next_message(&mut socket).await, ServerMessage::Runs(vec![]));

    let ping = encode(&ClientMessage::Ping { nonce: 42 }).expect("encode");
    socket
        .send(Message::Binary(ping.clone().into()))
        .await
        .expect("send");
    assert_eq!(
        next_message(&mut socket).await,
        ServerMessage::Pong { nonce: 42 }
    );

    // Garbage, a wrong version and text: each answered with an error, the session goes on.
    socket
        .send(Message::Binary(vec![0xff; 64].into()))
        .await
        .expect("send");
    assert!(matches!(
        next_message(&mut socket).await,
        ServerMessage::Error { .. }
    ));
    socket
        .send(Message::Binary(vec![0x09, 0x00].into()))
        .await
        .expect("send");
    match next_message(&mut socket).await {
        ServerMessage::Error { reason } => assert!(reason.contains("version"), "{reason}"),
        other => panic!("expected a version error, got {other:?}"),
    }
    socket
        .send(Message::Text("{\"ping\":1}".into()))
        .await
        .expect("send");
    assert!(matches!(
        next_message(&mut socket).await,
        ServerMessage::Error { .. }
    ));
    socket
        .send(Message::Binary(ping.into()))
        .await
        .expect("send");
    assert_eq!(
        next_message(&mut socket).await,
        ServerMessage::Pong { nonce: 42 }
    );

    // A second client is served while the first is connected.
    let (mut second, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("second websocket connects");
    assert!(matches!(
        next_message(&mut second).await,
        ServerMessage::Hello(_)
    ));
}

#[tokio::test]
async fn sockets_beyond_the_limit_are_closed_with_a_reason() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = actiscope_store::Store::open(&store_dir.path().join("runs.db")).unwrap();
    let server = TestServer::start_with_options(
        store,
        actiscope_server::state::ServerOptions {
            max_sockets: 1,
            ..Default::default()
        },
    )
    .await
    .expect("server starts");
    let url = server.ws_url();
    let (mut first, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connects");
    assert!(matches!(
        next_message(&mut first).await,
        ServerMessage::Hello(_)
    ));
    let (mut second, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("upgrades");
    let end = tokio::time::timeout(Duration::from_secs(10), second.next())
        .await
        .expect("the server answers within 10 s");
    match end {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1013);
            assert!(frame.reason.contains("--max-sockets"), "{}", frame.reason);
        }
        other => panic!("expected a close frame with a reason, got {other:?}"),
    }
    // Once the first one closes, a new one is served.
    first.close(None).await.expect("close");
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (mut third, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("connects");
        match tokio::time::timeout(Duration::from_secs(10), third.next()).await {
            Ok(Some(Ok(Message::Binary(_)))) => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "the freed slot was never reused: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn oversized_frames_close_that_socket_only() {
    let server = TestServer::start(None).await.expect("server starts");
    // A frame just over what a client ever needs (4 KiB) closes the socket.
    let (mut chatty, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connects");
    let _hello = next_message(&mut chatty).await;
    let _runs = next_message(&mut chatty).await;
    let _ = chatty
        .send(Message::Binary(
            vec![0u8; actiscope_server::app::MAX_CLIENT_FRAME_BYTES + 1].into(),
        ))
        .await;
    let end = tokio::time::timeout(Duration::from_secs(10), chatty.next())
        .await
        .expect("the server reacts within 10 s");
    assert!(
        !matches!(end, Some(Ok(Message::Binary(_)))),
        "a frame over the client limit must not be answered: {end:?}"
    );
    let (mut greedy, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connects");
    let _hello = next_message(&mut greedy).await;
    let _runs = next_message(&mut greedy).await;
    let huge = vec![0u8; actiscope_protocol::MAX_FRAME_BYTES + 1024];
    // The server may drop the connection while the frame is still being written.
    let _ = greedy.send(Message::Binary(huge.into())).await;
    let end = tokio::time::timeout(Duration::from_secs(10), greedy.next())
        .await
        .expect("the server reacts within 10 s");
    assert!(
        !matches!(end, Some(Ok(Message::Binary(_)))),
        "an oversized frame must not be answered: {end:?}"
    );

    let (status, body) = http_get(server.addr, "/api/health").await.expect("GET");
    assert_eq!(status, 200, "{body}");
    let info: ServerInfo = serde_json::from_str(&body).expect("health is JSON");
    assert_eq!(info.run_count, 0);
}

/// What the test dist's `index.html` holds: the SPA fallback answers with exactly this.
const TEST_INDEX: &str = "<!doctype html><title>actiscope test dist</title><p>spa-index</p>";
/// What the file beside the dist (outside it) holds: no request may ever answer it.
const SECRET: &str = "TOP-SECRET-5b1e9c outside the dist";

/// A real dist directory to serve: `<tmp>/dist/index.html`, `<tmp>/dist/app.js` and
/// `<tmp>/dist/assets/style.css`, with `<tmp>/secret.txt` beside the dist, outside it.
fn dist_with_a_secret_beside_it() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().expect("temp dir");
    let dist = root.path().join("dist");
    std::fs::create_dir_all(dist.join("assets")).expect("dist dirs");
    std::fs::write(dist.join("index.html"), TEST_INDEX).expect("index.html");
    std::fs::write(dist.join("app.js"), "console.log('app.js served');").expect("app.js");
    std::fs::write(dist.join("assets/style.css"), "body { color: teal; }").expect("style.css");
    std::fs::write(root.path().join("secret.txt"), SECRET).expect("secret");
    (root, dist)
}

/// Unknown paths under `/api` (`/api` and `/api/` themselves are added where used).
const UNKNOWN_API_PATHS: [&str; 5] = [
    "/api/nope",
    "/api/v2/runs",
    "/api/health/extra",
    "/api/runs/1/epochs/1/nope",
    "/api/runs/1/nope?x=1",
];

#[tokio::test]
async fn unknown_api_paths_and_traversal_do_not_escape() {
    let (root, dist) = dist_with_a_secret_beside_it();
    let server = TestServer::start(Some(dist)).await.expect("server starts");

    // The server really serves this directory: its files, and the SPA fallback for routes the
    // dashboard owns. Without these the checks below could pass on a server serving nothing.
    let (status, body) = http_get(server.addr, "/").await.expect("GET /");
    assert_eq!((status, body.as_str()), (200, TEST_INDEX));
    let (status, body) = http_get(server.addr, "/app.js").await.expect("GET /app.js");
    assert_eq!(
        (status, body.as_str()),
        (200, "console.log('app.js served');")
    );
    let (status, body) = http_get(server.addr, "/assets/style.css")
        .await
        .expect("GET css");
    assert_eq!((status, body.as_str()), (200, "body { color: teal; }"));
    let (status, body) = http_get(server.addr, "/runs/3?epoch=2")
        .await
        .expect("GET route");
    assert_eq!((status, body.as_str()), (200, TEST_INDEX), "SPA fallback");
    assert_eq!(
        std::fs::read_to_string(root.path().join("dist/../secret.txt")).expect("the secret"),
        SECRET,
        "the secret is one `..` away from the dist"
    );

    // Every way of spelling "one level up": plain, percent-encoded dots and slashes (either
    // case), double-encoded, backslashes, from a subdirectory, absolute paths.
    let secret_abs = root.path().join("secret.txt");
    let secret_abs = secret_abs.to_str().expect("a UTF-8 temp path");
    let traversals = [
        "/../secret.txt".to_owned(),
        "/../../secret.txt".to_owned(),
        "/./../secret.txt".to_owned(),
        "/%2e%2e/secret.txt".to_owned(),
        "/%2E%2E/secret.txt".to_owned(),
        "/.%2e/secret.txt".to_owned(),
        "/..%2fsecret.txt".to_owned(),
        "/..%2Fsecret.txt".to_owned(),
        "/%2e%2e%2fsecret.txt".to_owned(),
        "/%252e%252e/secret.txt".to_owned(),
        "/%252e%252e%252fsecret.txt".to_owned(),
        "/..%252fsecret.txt".to_owned(),
        "/..%5csecret.txt".to_owned(),
        "/assets/../../secret.txt".to_owned(),
        "/assets/..%2f..%2fsecret.txt".to_owned(),
        "/assets/%2e%2e/%2e%2e/secret.txt".to_owned(),
        "/api/../../secret.txt".to_owned(),
        "/api/runs/..%2f..%2f..%2fsecret.txt".to_owned(),
        format!(
            "/%2f{}",
            secret_abs.trim_start_matches('/').replace('/', "%2f")
        ),
        format!("/{secret_abs}"),
        "/../../../../../../etc/passwd".to_owned(),
        "/%2fetc%2fpasswd".to_owned(),
    ];
    for path in &traversals {
        let (status, body) = http_get(server.addr, path).await.expect("GET");
        assert!(
            !body.contains(SECRET) && !body.contains("root:x:0:0"),
            "GET {path} escaped the dist: {status} {body}"
        );
        // Today a path that leaves the dist gets the SPA index (ServeDir refuses it and falls
        // back); a 4xx would do as well. Anything else is a file it should not have found.
        assert!(
            (status == 200 && body == TEST_INDEX) || (400..500).contains(&status),
            "GET {path}: {status} {body}"
        );
    }

    // Unknown API paths get a JSON 404, not the dashboard's page.
    for path in UNKNOWN_API_PATHS.into_iter().chain(["/api", "/api/"]) {
        assert_json_404(&server, path).await;
    }
}

/// `GET path` answers 404 with a JSON body whose `error` says something.
async fn assert_json_404(server: &TestServer, path: &str) {
    let (status, body) = http_get(server.addr, path).await.expect("GET");
    assert_eq!(status, 404, "GET {path}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: a JSON body, not {body:?} ({e})"));
    assert!(
        json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "GET {path}: {body}"
    );
}

#[tokio::test]
async fn unknown_api_paths_answer_a_json_404_with_or_without_a_dashboard() {
    let (_root, dist) = dist_with_a_secret_beside_it();
    let with_dist = TestServer::start(Some(dist)).await.expect("server starts");
    let without_dist = TestServer::start(None).await.expect("server starts");
    for server in [&with_dist, &without_dist] {
        for path in UNKNOWN_API_PATHS.into_iter().chain(["/api", "/api/"]) {
            assert_json_404(server, path).await;
        }
        // The dashboard's own routes still get a page, and known API routes still answer.
        let (status, body) = http_get(server.addr, "/runs/3").await.expect("GET");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("<title>"), "{body}");
        let (status, body) = http_get(server.addr, "/api/runs").await.expect("GET");
        assert_eq!((status, body.as_str()), (200, "[]"));
    }
}

fn quick_run(epochs: usize) -> actiscope_train::TrainConfig {
    use actiscope_train::data::DatasetSpec;
    use actiscope_train::data::synthetic::Planar;
    use actiscope_train::device::DeviceChoice;
    use actiscope_train::model::{Activation, ModelSpec};
    actiscope_train::TrainConfig {
        dataset: DatasetSpec::Planar(Planar::Moons),
        model: ModelSpec::Mlp {
            hidden: vec![8, 8],
            activation: Activation::Relu,
        },
        optimizer: actiscope_train::OptimizerKind::Adam,
        learning_rate: 0.01,
        batch_size: 64,
        epochs,
        seed: 1,
        probe: actiscope_train::ProbeSpec::parse("n=40").expect("probe"),
        device: DeviceChoice::Flex,
        training: Default::default(),
        checkpoint_every: 1,
    }
}

/// Reads frames until `count` epochs of `run_id` arrived; returns their numbers.
async fn collect_epochs(socket: &mut Socket, run_id: i64, count: usize) -> Vec<u32> {
    let mut epochs = Vec::new();
    while epochs.len() < count {
        match tokio::time::timeout(Duration::from_secs(120), next_message(socket))
            .await
            .expect("epochs keep coming")
        {
            ServerMessage::Epoch {
                run_id: id,
                snapshot,
            } => {
                assert_eq!(id, run_id);
                let apd = &snapshot.apd;
                assert_eq!(apd.instance_count, 40);
                assert_eq!(apd.levels.len(), 3, "two hidden layers and the labels");
                epochs.push(snapshot.metrics.epoch as u32);
            }
            ServerMessage::Error { reason } => panic!("server error: {reason}"),
            _ => {}
        }
    }
    epochs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_mid_run_gets_every_epoch_once_in_order() {
    let epochs_planned = 6;
    let (server, run_id) = TestServer::start_with_run(None, Some(quick_run(epochs_planned)))
        .await
        .expect("server and run start");
    let run_id = run_id.expect("a run id");

    let (mut first, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connects");
    let subscribe = |from_epoch| subscribe(run_id, from_epoch);
    first.send(subscribe(1)).await.expect("subscribe");
    let seen = collect_epochs(&mut first, run_id, 2).await;
    assert_eq!(seen, [1, 2]);
    drop(first);

    // Reconnect asking for what it has not seen; the run goes on meanwhile.
    let (mut second, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("reconnects");
    second.send(subscribe(3)).await.expect("subscribe again");
    let rest = collect_epochs(&mut second, run_id, epochs_planned - 2).await;
    assert_eq!(rest, (3..=epochs_planned as u32).collect::<Vec<_>>());

    // A late client gets the whole history.
    let (mut late, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connects");
    late.send(subscribe(1)).await.expect("subscribe");
    let all = collect_epochs(&mut late, run_id, epochs_planned).await;
    assert_eq!(all, (1..=epochs_planned as u32).collect::<Vec<_>>());

    let (status, body) = http_get(server.addr, &format!("/api/runs/{run_id}/epochs/2"))
        .await
        .expect("GET");
    assert_eq!(status, 200, "{body}");
    let snapshot: actiscope_protocol::EpochSnapshot =
        serde_json::from_str(&body).expect("snapshot JSON");
    assert_eq!(snapshot.metrics.epoch, 2);
}

/// Subscribes a new session to run `run_id` from epoch 1.
async fn subscribed(server: &TestServer, run_id: i64) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connects");
    socket.send(subscribe(run_id, 1)).await.expect("subscribe");
    socket
}

/// The frame that subscribes to run `run_id` from epoch `from_epoch`.
fn subscribe(run_id: i64, from_epoch: u32) -> Message {
    Message::Binary(
        encode(&ClientMessage::Subscribe { run_id, from_epoch })
            .expect("encode")
            .into(),
    )
}

/// Reads `socket` (subscribed to run `run_id`) up to the first epoch and checks the
/// preparation it was told before: steps going forward, all five done at last.
async fn assert_prepared_before_the_first_epoch(socket: &mut Socket, run_id: i64) {
    // A step may take a minute where lavapipe tunes kernels its cache has not seen.
    let mut steps = Vec::new();
    loop {
        match next_message_within(socket, Duration::from_secs(300)).await {
            ServerMessage::Preparing {
                run_id: id,
                steps_done,
                steps_total,
                step,
            } => {
                assert_eq!(id, run_id);
                steps.push((steps_done, steps_total, step));
            }
            ServerMessage::Epoch { snapshot, .. } => {
                assert_eq!(snapshot.metrics.epoch, 1);
                break;
            }
            ServerMessage::Error { reason } => panic!("server error: {reason}"),
            _ => {}
        }
    }
    let last = steps
        .last()
        .expect("the preparation is told before the first epoch");
    assert_eq!(
        (last.0, last.1, last.2.as_str()),
        (5, 5, ""),
        "all five steps done: {steps:?}"
    );
    for (done, total, step) in &steps {
        assert_eq!(*total, 5, "{steps:?}");
        assert_eq!(step.is_empty(), done == total, "{steps:?}");
    }
    for pair in steps.windows(2) {
        assert!(pair[0].0 <= pair[1].0, "steps go forward: {steps:?}");
    }
}

/// Checks that a session subscribing to run `run_id` while it trains on is told how the
/// preparation ended before the stored epochs.
async fn assert_a_late_session_hears_the_preparation_ended(server: &TestServer, run_id: i64) {
    let mut late = subscribed(server, run_id).await;
    loop {
        match next_message(&mut late).await {
            ServerMessage::Preparing {
                steps_done,
                steps_total,
                ..
            } => {
                assert_eq!((steps_done, steps_total), (5, 5));
                break;
            }
            ServerMessage::Epoch { .. } => panic!("an epoch came before the preparation"),
            ServerMessage::Error { reason } => panic!("server error: {reason}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_run_tells_how_its_preparation_goes_before_its_first_epoch() {
    // wgpu on whatever adapter the machine has: lavapipe where there is no GPU.
    let config = actiscope_train::TrainConfig {
        device: actiscope_train::device::DeviceChoice::Wgpu,
        ..quick_run(10)
    };
    let (server, run_id) = TestServer::start_with_run(None, Some(config))
        .await
        .expect("server and run start");
    let run_id = run_id.expect("a run id");
    // However late this session subscribes, it hears of the preparation before epoch 1.
    let mut socket = subscribed(&server, run_id).await;
    assert_prepared_before_the_first_epoch(&mut socket, run_id).await;
    assert_a_late_session_hears_the_preparation_ended(&server, run_id).await;
}

/// An `actiscope worker` process, killed when the test ends, pass or fail.
struct Worker(std::process::Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_s_gpu_run_tells_its_preparation_through_the_store_to_a_server() {
    // A run queued for workers in a SQLite file, a server on that file (which trains none of
    // it), and a worker process training it on wgpu (lavapipe where there is no GPU).
    let dir = tempfile::tempdir().expect("a folder");
    let path = dir.path().join("runs.db");
    let config = actiscope_train::TrainConfig {
        device: actiscope_train::device::DeviceChoice::Wgpu,
        ..quick_run(40)
    };
    let config_json = serde_json::to_string(&config).expect("the configuration as JSON");
    let run_id = actiscope_store::Store::open(&path)
        .and_then(|store| store.queue_for_workers("a worker's GPU run", &config_json))
        .expect("queued");
    let store = actiscope_store::Store::open(&path).expect("the server's store");
    let server = TestServer::start_on(store, None)
        .await
        .expect("server starts");
    let mut socket = subscribed(&server, run_id).await;
    let _worker = Worker(
        std::process::Command::new(actiscope_e2e::actiscope_binary())
            .args(["worker", "--exit-when-idle", "--store"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("actiscope worker starts"),
    );
    // The server hears of the preparation from the store (its watcher may see a few quick
    // steps as one), before the first epoch; a late session too, while the worker trains on.
    assert_prepared_before_the_first_epoch(&mut socket, run_id).await;
    assert_a_late_session_hears_the_preparation_ended(&server, run_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_beyond_the_limit_queue_then_train_and_can_be_stopped_or_deleted() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = actiscope_store::Store::open(&store_dir.path().join("runs.db")).unwrap();
    let state = actiscope_server::state::AppState::with_options(
        store,
        None,
        actiscope_server::state::ServerOptions {
            no_train: false,
            concurrent_runs: 1,
            max_queued: 2,
            ..Default::default()
        },
    );
    let hub = state.hub().clone();
    let first = hub.start_run(quick_run(40)).await.unwrap();
    let second = hub.start_run(quick_run(3)).await.unwrap();
    let third = hub.start_run(quick_run(50)).await.unwrap();
    let status = |id| hub.run(id).unwrap().unwrap().status;
    assert_eq!(status(second), "queued");
    assert_eq!(status(third), "queued");
    // The queue is full: a fourth run is refused over HTTP with 429 and a reason, and nothing
    // of it is stored.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, actiscope_server::app::app(state.clone())).into_future());
    let (code, body) = actiscope_e2e::http_post_json(
        addr,
        "/api/runs",
        r#"{"dataset": "moons", "hidden": "8,8", "epochs": 2, "probe": "n=40", "device": "flex"}"#,
    )
    .await
    .unwrap();
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("queue is full"), "{body}");
    assert_eq!(
        hub.runs().unwrap().len(),
        3,
        "the refused run left no trace"
    );
    assert!(matches!(
        hub.delete_run(second),
        Err(actiscope_server::hub::HubError::Busy(_))
    ));
    // The queued third run is stopped before it starts.
    assert!(hub.stop_run(third));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while status(first) != "completed"
        || status(second) != "completed"
        || status(third) != "stopped"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "runs did not finish: {} {} {}",
            status(first),
            status(second),
            status(third)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hub.run(third).unwrap().unwrap().epochs_stored, 0);
    assert_eq!(hub.run(second).unwrap().unwrap().epochs_stored, 3);
    assert!(hub.delete_run(first).unwrap());
    assert!(hub.run(first).unwrap().is_none());
    assert!(!hub.delete_run(first).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_another_process_writes_to_the_store_streams_live() {
    let server = TestServer::start(None).await.expect("server starts");
    let location = actiscope_store::StoreLocation::File(server.store_path());
    another_writer_streams_live(&server, location).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_another_machine_writes_to_a_postgres_store_streams_live() {
    let pg = actiscope_store::testing::TestPostgres::shared().expect("a test PostgreSQL");
    let location = pg.location(&pg.fresh_database().expect("a database"));
    let store = actiscope_store::Store::connect(&location).expect("the store");
    let server = TestServer::start_on(store, None)
        .await
        .expect("server starts");
    another_writer_streams_live(&server, location).await;
}

/// A websocket client of `server` sees every epoch another connection to its store (at
/// `location`) commits, once, in order, each within 1 s of its commit.
async fn another_writer_streams_live(
    server: &TestServer,
    location: actiscope_store::StoreLocation,
) {
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connects");
    assert!(matches!(
        next_message(&mut socket).await,
        ServerMessage::Hello(_)
    ));
    assert_eq!(next_message(&mut socket).await, ServerMessage::Runs(vec![]));

    // Another writer of the same file (as `actiscope train --store` beside the server): a
    // connection of its own, an epoch every 300 ms; each commit's instant is reported. Eight
    // epochs leave room for a slow start (a test PostgreSQL's initdb may share the two cores
    // while the server notices the run) and still see several commit live.
    let (committed, commits) = std::sync::mpsc::channel::<(usize, std::time::Instant)>();
    let epochs = 8;
    let writer = std::thread::spawn(move || {
        let mut store = actiscope_store::Store::connect(&location).expect("store");
        let mut trainer = actiscope_train::Trainer::new(quick_run(epochs)).expect("trainer");
        let run_id = actiscope_server::runner::record_run(&mut store, &trainer, "another process")
            .expect("record");
        let store = std::sync::Mutex::new(store);
        actiscope_server::runner::run_to_completion(
            &mut trainer,
            &store,
            run_id,
            &std::sync::atomic::AtomicBool::new(false),
            actiscope_server::runner::CaptureMode::Inline,
            &mut |_| {},
            &mut |snapshot| {
                let _ = committed.send((snapshot.metrics.epoch, std::time::Instant::now()));
                std::thread::sleep(Duration::from_millis(300));
            },
        )
        .expect("trains");
        run_id
    });

    // The server notices the new run and lists it.
    let run_id = loop {
        if let ServerMessage::Runs(runs) = next_message(&mut socket).await
            && let Some(run) = runs.first()
        {
            break run.run_id;
        }
    };
    socket.send(subscribe(run_id, 1)).await.expect("subscribe");
    let subscribed = std::time::Instant::now();
    let mut received = Vec::new();
    while received.len() < epochs {
        if let ServerMessage::Epoch { snapshot, .. } = next_message(&mut socket).await {
            received.push((snapshot.metrics.epoch, std::time::Instant::now()));
        }
    }
    assert_eq!(writer.join().expect("writer"), run_id);
    assert_eq!(
        received.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=epochs).collect::<Vec<_>>(),
        "every epoch once, in order"
    );
    let mut live = 0;
    for (epoch, at) in commits.try_iter() {
        let (_, seen) = received[epoch - 1];
        if at > subscribed {
            live += 1;
            let latency = seen.saturating_duration_since(at);
            assert!(
                latency < Duration::from_secs(1),
                "epoch {epoch} reached the client {latency:?} after its commit"
            );
        }
    }
    assert!(
        live >= 2,
        "too few epochs were committed after the client subscribed"
    );
}
