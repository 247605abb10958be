//! Real headless Chromium against the real server serving the Trunk build.
//!
//! Ignored by a plain `cargo test`: it needs the dashboard built into `dist/` and Debian's
//! `chromium` + `chromium-driver`. `cargo xtask test` installs both, builds the dashboard and
//! runs these with `--ignored`, setting `ACTISCOPE_DIST`.

// Tests fail by panicking, helpers included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actiscope_e2e::TestServer;
use fantoccini::{Client, ClientBuilder, Locator};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Kills the driver (and with it the browser) when the test ends, pass or fail.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}); run `cargo xtask test`"));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start listening"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let profile = tempfile::tempdir().expect("profile dir").keep();
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic",
                "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object literal");
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn dist_dir() -> PathBuf {
    let dist = std::env::var_os("ACTISCOPE_DIST")
        .map(PathBuf::from)
        .expect("ACTISCOPE_DIST must name the Trunk build; run `cargo xtask test`");
    assert!(
        dist.join("index.html").is_file(),
        "{} has no index.html",
        dist.display()
    );
    dist
}

/// Polls the text of `selector` until `accept` takes it, or fails after `timeout`.
async fn wait_for_text(
    client: &Client,
    selector: &str,
    timeout: Duration,
    accept: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = client.find(Locator::Css(selector)).await
            && let Ok(text) = element.text().await
        {
            if accept(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{selector} never matched within {timeout:?}; last text {last:?}");
}

fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/artifacts"));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[tokio::test]
#[ignore = "needs Chromium and the Trunk build; run by `cargo xtask test`"]
async fn dashboard_renders_what_the_websocket_delivered() {
    let server = TestServer::start(Some(dist_dir()))
        .await
        .expect("server starts");
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&server.url("/")).await.expect("page loads");

    // Rendered by the Leptos app from the Hello frame and the ping round trip.
    let version = wait_for_text(&client, "#server-version", Duration::from_secs(30), |t| {
        t != "…"
    })
    .await;
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let round_trip = wait_for_text(&client, "#round-trip", Duration::from_secs(30), |t| {
        t.starts_with("pong")
    })
    .await;
    assert!(round_trip.contains(" after "), "{round_trip}");
    let runs = wait_for_text(&client, "#run-count", Duration::from_secs(5), |t| t == "0").await;
    assert_eq!(runs, "0");
    let link = wait_for_text(&client, "#link-state", Duration::from_secs(5), |t| {
        t == "connected"
    })
    .await;
    assert_eq!(link, "connected");
    assert_eq!(
        client
            .find(Locator::Css("#protocol-version"))
            .await
            .expect("protocol cell")
            .text()
            .await
            .expect("text"),
        actiscope_protocol::PROTOCOL_VERSION.to_string()
    );

    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(artifacts_dir().join("dashboard.png"), png).expect("save screenshot");
    client.close().await.expect("close session");
}

/// Runs a JavaScript snippet and returns its JSON result.
async fn js(client: &Client, script: &str) -> serde_json::Value {
    client.execute(script, vec![]).await.expect("script runs")
}

/// A signature of what the Sankey currently draws.
async fn sankey_signature(client: &Client) -> String {
    js(
        client,
        "const s = document.getElementById('apd-sankey'); if (!s) return ''; \
         return s.dataset.nodes + '/' + s.dataset.edges + '/' + \
         Array.from(s.querySelectorAll('path.apd-link')).map(p => p.getAttribute('d') + p.getAttribute('stroke-width')).join(';');",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

fn digits_run(epochs: usize) -> actiscope_train::TrainConfig {
    actiscope_train::TrainConfig {
        epochs,
        probe: actiscope_train::ProbeSpec::parse("n=500").expect("probe"),
        device: actiscope_train::device::DeviceChoice::Flex,
        learning_rate: 0.05,
        ..actiscope_train::TrainConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the Trunk build; run by `cargo xtask test`"]
async fn apd_streams_scrubs_and_inspects_a_flow() {
    let epochs = 3;
    let (server, run_id) = TestServer::start_with_run(Some(dist_dir()), Some(digits_run(epochs)))
        .await
        .expect("server and run start");
    let run_id = run_id.expect("run id");
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&server.url("/")).await.expect("page loads");

    // Epochs stream in live; the view follows the latest.
    let last = format!("epoch {epochs} of {epochs}");
    wait_for_text(&client, "#epoch-label", Duration::from_secs(240), |t| {
        t == last
    })
    .await;
    let header = wait_for_text(&client, "#run-header", Duration::from_secs(5), |t| {
        t.contains("device")
    })
    .await;
    assert!(
        header.contains("digits") && header.contains("flex"),
        "{header}"
    );
    let at_last = sankey_signature(&client).await;
    assert!(!at_last.is_empty());

    // Scrub back with the keyboard: every view follows.
    for _ in 1..epochs {
        client
            .find(Locator::Css("#epoch-slider"))
            .await
            .expect("slider")
            .send_keys("\u{E012}") // ArrowLeft
            .await
            .expect("key");
    }
    wait_for_text(&client, "#epoch-label", Duration::from_secs(10), |t| {
        t == format!("epoch 1 of {epochs}")
    })
    .await;
    let at_first = sankey_signature(&client).await;
    assert_ne!(at_first, at_last, "the Sankey must change with the epoch");
    let url = client.current_url().await.expect("url");
    assert!(url.as_str().contains("epoch=1"), "{url}");

    // Click the largest flow (an edge between the last two hidden layers).
    let clicked = js(
        &client,
        "const flows = Array.from(document.querySelectorAll('path.apd-link[data-flow=\"true\"]')); \
         flows.sort((a, b) => b.dataset.instances - a.dataset.instances); \
         const f = flows[0]; f.dispatchEvent(new MouseEvent('click', {bubbles: true})); \
         return [Number(f.dataset.fromLevel), Number(f.dataset.from), Number(f.dataset.to), Number(f.dataset.instances)];",
    )
    .await;
    let picked: Vec<u32> = serde_json::from_value(clicked).expect("link coordinates");
    let (level, from, to, size) = (picked[0] as usize, picked[1], picked[2], picked[3] as usize);
    let count = wait_for_text(&client, "#inspector-count", Duration::from_secs(10), |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(count, size.to_string());
    let listed: Vec<u32> = serde_json::from_value(
        js(&client, "return Array.from(document.querySelectorAll('#inspector li[data-instance]')).map(li => Number(li.dataset.instance));").await,
    )
    .expect("instance list");

    // What the server says belongs to that flow.
    let (status, body) =
        actiscope_e2e::http_get(server.addr, &format!("/api/runs/{run_id}/epochs/1"))
            .await
            .expect("GET snapshot");
    assert_eq!(status, 200);
    let snapshot: actiscope_protocol::EpochSnapshot =
        serde_json::from_str(&body).expect("snapshot");
    let shown = snapshot.apd.merge_rare(40);
    let expected = shown.edge_instances(level, from, to);
    assert_eq!(
        listed, expected,
        "the inspector must list exactly the flow's instances"
    );
    // When both ends are single patterns, it is exactly one row of the server's flow table.
    use actiscope_protocol::apd::ApdNodeKind;
    let pattern = |lvl: usize, node: u32| match shown.levels[lvl][node as usize].kind {
        ApdNodeKind::Pattern { pattern_id, .. } => Some(pattern_id),
        _ => None,
    };
    if let (Some(a), Some(b)) = (pattern(level, from), pattern(level + 1, to)) {
        let flow = snapshot
            .flows
            .flows
            .iter()
            .find(|f| f.pattern_ids == [a, b])
            .expect("the flow is in the server's table");
        assert_eq!(flow.instances, expected);
    }
    let images = js(
        &client,
        "return document.querySelectorAll('#inspector img.digit').length;",
    )
    .await;
    assert_eq!(
        images.as_u64(),
        Some(listed.len().min(240) as u64),
        "each instance shows its digit"
    );
    std::fs::write(
        artifacts_dir().join("apd-flow-selected.png"),
        client.screenshot().await.expect("png"),
    )
    .expect("save screenshot");

    // The selection is in the URL: reloading the shared view restores it.
    let url = client.current_url().await.expect("url");
    assert!(url.as_str().contains("sel="), "{url}");
    client.goto(url.as_str()).await.expect("reload");
    let restored = wait_for_text(&client, "#inspector-count", Duration::from_secs(60), |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(restored, size.to_string());
    wait_for_text(&client, "#epoch-label", Duration::from_secs(30), |t| {
        t == format!("epoch 1 of {epochs}")
    })
    .await;

    // Rendering cost of an epoch change with every pattern drawn (no merging).
    js(&client, "const m = document.getElementById('max-nodes'); m.value = '0'; m.dispatchEvent(new Event('change', {bubbles: true})); return 0;").await;
    let timing = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             const slider = document.getElementById('epoch-slider'); \
             const svg = () => document.getElementById('apd-sankey'); \
             const sig = () => { const s = svg(); if (!s) return ''; const p = s.querySelector('path.apd-link'); \
               return s.dataset.nodes + ':' + s.dataset.edges + ':' + (p ? p.getAttribute('d') : ''); }; \
             (async () => { const times = []; const parts = []; let nodes = 0; \
               for (const e of ['2', '3', '1', '2']) { const before = sig(); const t0 = performance.now(); \
                 slider.value = e; slider.dispatchEvent(new Event('input', {bubbles: true})); \
                 while (sig() === before && performance.now() - t0 < 5000) { await new Promise(r => setTimeout(r, 0)); } \
                 const t1 = performance.now(); svg().getBBox(); times.push(performance.now() - t0); \
                 parts.push([t1 - t0, Number(document.getElementById('render-ms').dataset.ms)]); \
                 nodes = Math.max(nodes, Number(svg().dataset.nodes)); } \
               done({times: times, nodes: nodes, parts: parts}); })();",
            vec![],
        )
        .await
        .expect("timing script");
    let nodes = timing["nodes"].as_u64().unwrap_or(0);
    let times: Vec<f64> = serde_json::from_value(timing["times"].clone()).expect("times");
    let worst = times.iter().copied().fold(0.0, f64::max);
    println!(
        "sankey re-render on an epoch change: {nodes} nodes, {times:?} ms (worst {worst:.1} ms); \
         [until the DOM changed, markup build] per change: {}",
        timing["parts"]
    );
    std::fs::write(
        artifacts_dir().join("sankey-render.json"),
        serde_json::json!({
            "nodes": nodes,
            "epoch_change_ms": times,
            "dom_changed_and_markup_ms": timing["parts"],
        })
        .to_string(),
    )
    .expect("save timing");
    assert!(
        nodes > 100,
        "the unmerged APD of 500 digits has many nodes: {nodes}"
    );
    client.close().await.expect("close session");
}
