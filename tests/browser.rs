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
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actiscope_e2e::{CrashableServer, TestServer, actiscope_binary};
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
        // The driver leads a process group of its own, which the browser it started shares:
        // end the group, or a test that fails before closing its session leaves a Chromium
        // running (and taking CPU from the tests after it).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
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
        .process_group(0)
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

/// Waits until the page's URL (written a paint after a change) satisfies `accept`; returns it.
async fn wait_for_url(client: &Client, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = client.current_url().await.expect("url").to_string();
        if accept(&url) {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "the URL never became what was expected: {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

#[tokio::test]
#[ignore = "needs Chromium and the Trunk build; run by `cargo xtask test`"]
async fn dashboard_reconnects_after_the_server_dies_and_follows_a_new_run() {
    let epochs = 2;
    let (mut server, run_id) = CrashableServer::start(Some(dist_dir()), Some(digits_run(epochs)))
        .await
        .expect("server starts");
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client
        .goto(&format!("http://{}/", server.addr))
        .await
        .expect("page loads");
    let full = format!("epoch {epochs} of {epochs}");
    wait_for_text(&client, "#epoch-label", Duration::from_secs(300), |t| {
        t == full
    })
    .await;
    wait_for_text(&client, "#run-status", Duration::from_secs(60), |t| {
        t == "completed"
    })
    .await;

    // Every connection drops at once, as when the process is killed.
    server.crash();
    wait_for_text(&client, "#link-state", Duration::from_secs(30), |t| {
        t == "disconnected"
    })
    .await;
    // What was received stays on screen.
    assert_eq!(
        js(
            &client,
            "return document.getElementById('epoch-label').textContent;"
        )
        .await,
        serde_json::json!(full)
    );

    // Back on the same port with the same store: the page reconnects by itself and resumes
    // the run after the epochs it holds, so nothing is repeated.
    server.restart().await.expect("server restarts");
    wait_for_text(&client, "#link-state", Duration::from_secs(30), |t| {
        t == "connected"
    })
    .await;
    wait_for_text(&client, "#run-count", Duration::from_secs(30), |t| t == "1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        js(
            &client,
            "return document.getElementById('epoch-label').textContent;"
        )
        .await,
        serde_json::json!(full),
        "the resumed run neither lost nor repeated an epoch"
    );

    // A run started on the restarted server streams to the page, which follows the newest.
    let (status, body) = actiscope_e2e::http_post_json(
        server.addr,
        "/api/runs",
        r#"{"epochs":1,"probe":"n=200","device":"flex"}"#,
    )
    .await
    .expect("POST /api/runs");
    assert_eq!(status, 201, "{body}");
    let new_run: serde_json::Value = serde_json::from_str(&body).expect("run summary");
    assert_ne!(new_run["run_id"].as_i64(), run_id);
    wait_for_text(&client, "#epoch-label", Duration::from_secs(300), |t| {
        t == "epoch 1 of 1"
    })
    .await;
    assert_eq!(
        js(
            &client,
            "return document.querySelectorAll('#run-select option').length;"
        )
        .await,
        serde_json::json!(2),
        "the run list holds both runs"
    );

    // A stopped run goes on from its checkpoint with the Resume button.
    let (status, body) = actiscope_e2e::http_post_json(
        server.addr,
        "/api/runs",
        r#"{"epochs":60,"probe":"n=200","device":"flex"}"#,
    )
    .await
    .expect("POST /api/runs");
    assert_eq!(status, 201, "{body}");
    let stopped: serde_json::Value = serde_json::from_str(&body).expect("run summary");
    let stopped_id = stopped["run_id"].as_i64().expect("run id");
    // As soon as it has a checkpoint: its epochs take milliseconds.
    loop {
        let (_, body) = actiscope_e2e::http_get(server.addr, &format!("/api/runs/{stopped_id}"))
            .await
            .expect("GET run");
        let run: serde_json::Value = serde_json::from_str(&body).expect("run");
        if run["epochs_stored"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) =
        actiscope_e2e::http_post_json(server.addr, &format!("/api/runs/{stopped_id}/stop"), "")
            .await
            .expect("POST stop");
    assert_eq!(status, 200, "stopped mid-run: {body}");
    wait_for_text(&client, "#run-status", Duration::from_secs(120), |t| {
        t == "stopped"
    })
    .await;
    // Clicked in the page: the header re-renders as run lists arrive, so a WebDriver handle to
    // the button could go stale between finding and clicking it.
    let clicked = js(
        &client,
        "const b = document.getElementById('run-resume'); if (b) { b.click(); } return !!b;",
    )
    .await;
    assert_eq!(
        clicked,
        serde_json::json!(true),
        "a Resume button on a stopped run"
    );
    wait_for_text(&client, "#run-status", Duration::from_secs(300), |t| {
        t == "completed"
    })
    .await;
    wait_for_text(&client, "#epoch-label", Duration::from_secs(60), |t| {
        t == "epoch 60 of 60"
    })
    .await;
    let (_, body) = actiscope_e2e::http_get(server.addr, &format!("/api/runs/{stopped_id}/epochs"))
        .await
        .expect("GET epochs");
    let epochs: Vec<serde_json::Value> = serde_json::from_str(&body).expect("epochs");
    let numbers: Vec<u64> = epochs.iter().filter_map(|e| e["epoch"].as_u64()).collect();
    assert_eq!(numbers, (1..=60).collect::<Vec<u64>>(), "every epoch once");
    client.close().await.expect("close session");
}

/// Runs a JavaScript snippet and returns its JSON result.
async fn js(client: &Client, script: &str) -> serde_json::Value {
    client.execute(script, vec![]).await.expect("script runs")
}

/// The instances the inspector lists, in its order.
async fn inspector_instances(client: &Client) -> Vec<u32> {
    serde_json::from_value(
        js(client, "return Array.from(document.querySelectorAll('#inspector li[data-instance]')).map(li => Number(li.dataset.instance));").await,
    )
    .expect("instance list")
}

/// Clicks the Sankey where the strongest flow is drawn: the flows table lists the flows
/// between the last two hidden layers, strongest first, each with a point (drawing units) on
/// its band; the script checks the order, turns the point into client coordinates of the
/// `<svg>` (viewBox, aspect kept) and clicks there. Returns `[from_level, from, to,
/// instances]` of that flow.
const CLICK_STRONGEST_FLOW: &str = "const rows = Array.from(document.querySelectorAll('#apd-flows tr.flow-row')); \
     if (rows.length === 0) throw new Error('no flows listed'); \
     const sizes = rows.map(r => Number(r.dataset.instances)); \
     if (sizes.some((n, i) => i > 0 && n > sizes[i - 1])) throw new Error('flows not strongest first: ' + sizes); \
     const f = rows[0]; const svg = document.getElementById('apd-sankey'); \
     const box = svg.viewBox.baseVal; const r = svg.getBoundingClientRect(); \
     const scale = Math.min(r.width / box.width, r.height / box.height); \
     const x = r.left + (r.width - box.width * scale) / 2 + Number(f.dataset.x) * scale; \
     const y = r.top + (r.height - box.height * scale) / 2 + Number(f.dataset.y) * scale; \
     svg.dispatchEvent(new MouseEvent('click', {bubbles: true, clientX: x, clientY: y})); \
     return [Number(f.dataset.fromLevel), Number(f.dataset.from), Number(f.dataset.to), Number(f.dataset.instances)];";

/// A signature of what the Sankey currently draws.
async fn sankey_signature(client: &Client) -> String {
    js(
        client,
        "const s = document.getElementById('apd-sankey'); if (!s) return ''; \
         return s.dataset.nodes + '/' + s.dataset.edges + '/' + \
         Array.from(s.querySelectorAll('path.apd-link')).map(p => p.getAttribute('d')).join(';');",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

/// The paper's MLP on the built-in digits with SGD at 0.05, every field spelled out rather than
/// taken from the defaults: the Sankey's size (1,000+ nodes for 600 digits) and the flows the
/// tests click depend on them (with Adam, the default since the presets came, 600 digits made
/// 411 nodes).
fn digits_run(epochs: usize) -> actiscope_train::TrainConfig {
    actiscope_train::TrainConfig {
        dataset: actiscope_train::data::DatasetSpec::Digits,
        model: actiscope_train::model::ModelSpec::paper_mlp(),
        epochs,
        probe: actiscope_train::ProbeSpec::parse("n=600").expect("probe"),
        device: actiscope_train::device::DeviceChoice::Flex,
        optimizer: actiscope_train::OptimizerKind::Sgd,
        learning_rate: 0.05,
        batch_size: 64,
        seed: 0,
        training: Default::default(),
        checkpoint_every: 1,
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
    wait_for_url(&client, |url| url.contains("epoch=1")).await;

    // Click the largest flow (an edge between the last two hidden layers).
    let clicked = js(&client, CLICK_STRONGEST_FLOW).await;
    let picked: Vec<u32> = serde_json::from_value(clicked).expect("link coordinates");
    let (level, from, to, size) = (picked[0] as usize, picked[1], picked[2], picked[3] as usize);
    let count = wait_for_text(&client, "#inspector-count", Duration::from_secs(10), |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(count, size.to_string());
    let listed = inspector_instances(&client).await;

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
    // The APD panel's SVG button downloads the panel's figure at the shown epoch: the server's
    // drawing of the same merged diagram, one band per link.
    let figure = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             const a = document.getElementById('fig-sankey-svg'); \
             const png = document.getElementById('fig-sankey-png'); \
             fetch(a.href).then(r => r.text().then(t => done([r.status, r.headers.get('content-type'), \
               a.getAttribute('download'), a.href, png.href, t])));",
            vec![],
        )
        .await
        .expect("the figure downloads");
    let figure = figure.as_array().expect("an array");
    assert_eq!(figure[0], 200, "{}", figure[5]);
    assert_eq!(figure[1], "image/svg+xml");
    assert_eq!(figure[2], format!("run{run_id}-sankey-epoch1.svg"));
    let href = figure[3].as_str().expect("href");
    assert!(
        href.contains(&format!(
            "/api/runs/{run_id}/figures/sankey.svg?epoch=1&nodes=40"
        )),
        "{href}"
    );
    assert_eq!(
        figure[4].as_str().expect("png href"),
        href.replace(".svg?", ".png?")
    );
    let svg_text = figure[5].as_str().expect("svg text");
    let doc = roxmltree::Document::parse(svg_text).expect("the download is valid SVG");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("polygon"))
            .count(),
        shown.edges.len(),
        "one band per link of the diagram on screen"
    );
    assert!(
        doc.descendants()
            .filter_map(|n| n.text())
            .any(|t| t.contains("epoch 1 (")),
        "the figure is of the shown epoch"
    );
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
    // The CSV export holds every selected instance with the server's labels and predictions
    // (the link gets its data when clicked; the test keeps the browser from downloading it).
    let csv = js(
        &client,
        "document.addEventListener('click', e => e.preventDefault(), {capture: true, once: true}); \
         const a = document.getElementById('export-csv'); a.click(); \
         return decodeURIComponent(a.href.split(',').slice(1).join(','));",
    )
    .await;
    let csv = csv.as_str().expect("csv text").to_owned();
    let mut csv_lines = csv.lines();
    assert_eq!(
        csv_lines.next(),
        Some("instance,source_index,label,prediction,loss")
    );
    let exported: Vec<(u32, u32, u32)> = csv_lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (
                cells[0].parse().expect("instance"),
                cells[2].parse().expect("label"),
                cells[3].parse().expect("prediction"),
            )
        })
        .collect();
    let expected_rows: Vec<(u32, u32, u32)> = expected
        .iter()
        .map(|&i| {
            let at = i as usize;
            (i, snapshot.probe.labels[at], snapshot.probe.predictions[at])
        })
        .collect();
    assert_eq!(exported, expected_rows, "the CSV export is the selection");
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
    let url = wait_for_url(&client, |url| url.contains("sel=")).await;
    client.goto(&url).await.expect("reload");
    let restored = wait_for_text(&client, "#inspector-count", Duration::from_secs(60), |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(restored, size.to_string());
    wait_for_text(&client, "#epoch-label", Duration::from_secs(30), |t| {
        t == format!("epoch 1 of {epochs}")
    })
    .await;

    // Rendering cost of an epoch change with every pattern drawn (no merging). A first pass
    // over the epochs lets the server compute and cache the mapper and NMF answers the panels
    // ask for on each epoch (on these 2 cores that work would compete with the browser), and
    // each timed change starts from a settled page.
    js(&client, "const m = document.getElementById('max-nodes'); m.value = '0'; m.dispatchEvent(new Event('change', {bubbles: true})); return 0;").await;
    // The script below runs for about 15 s, and for up to a minute when the page does not
    // follow the slider: give it time to report that instead of hitting the 30 s default.
    client
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(Duration::from_secs(120)),
            None,
            None,
        ))
        .await
        .expect("script timeout");
    let timing = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             const slider = document.getElementById('epoch-slider'); \
             const svg = () => document.getElementById('apd-sankey'); \
             const sig = () => { const s = svg(); if (!s) return ''; const p = s.querySelector('path.apd-link'); \
               return s.dataset.nodes + ':' + s.dataset.edges + ':' + (p ? p.getAttribute('d') : ''); }; \
             const settle = () => new Promise(r => setTimeout(r, 1500)); \
             (async () => { const times = []; const parts = []; const settled = []; const stuck = []; let nodes = 0; \
               for (const e of ['2', '3', '1']) { slider.value = e; slider.dispatchEvent(new Event('input', {bubbles: true})); await settle(); } \
               for (const e of ['2', '3', '1', '2']) { await settle(); const before = sig(); const t0 = performance.now(); \
                 slider.value = e; slider.dispatchEvent(new Event('input', {bubbles: true})); \
                 while (sig() === before && performance.now() - t0 < 5000) { await new Promise(r => setTimeout(r, 0)); } \
                 if (sig() === before) { const label = document.getElementById('epoch-label'); \
                   stuck.push(e + ' (the page says ' + JSON.stringify(label ? label.textContent : null) + ')'); break; } \
                 const t1 = performance.now(); svg().getBBox(); times.push(performance.now() - t0); \
                 parts.push([t1 - t0, Number(document.getElementById('render-ms').dataset.ms)]); \
                 const main = document.querySelector('main'); \
                 while (main.dataset.settledEpoch !== e && performance.now() - t0 < 5000) { await new Promise(r => setTimeout(r, 0)); } \
                 main.getBoundingClientRect(); settled.push(performance.now() - t0); \
                 nodes = Math.max(nodes, Number(svg().dataset.nodes)); } \
               done({times: times, nodes: nodes, parts: parts, settled: settled, stuck: stuck}); })();",
            vec![],
        )
        .await
        .expect("timing script");
    let nodes = timing["nodes"].as_u64().unwrap_or(0);
    let times: Vec<f64> = serde_json::from_value(timing["times"].clone()).expect("times");
    let stuck: Vec<String> = serde_json::from_value(timing["stuck"].clone()).expect("stuck");
    let worst = times.iter().copied().fold(0.0, f64::max);
    let median = median_ms(&times);
    println!(
        "sankey re-render on an epoch change: {nodes} nodes, {times:?} ms (median {median:.1} ms, \
         worst {worst:.1} ms); [until the DOM changed, markup build] per change: {}; every other \
         view followed after {} ms",
        timing["parts"], timing["settled"]
    );
    std::fs::write(
        artifacts_dir().join("sankey-render.json"),
        serde_json::json!({
            "nodes": nodes,
            "epoch_change_ms": times,
            "median_ms": median,
            "goal_ms": SANKEY_GOAL_MS,
            "changes_never_drawn": stuck,
            "dom_changed_and_markup_ms": timing["parts"],
            "other_views_followed_ms": timing["settled"],
        })
        .to_string(),
    )
    .expect("save timing");
    assert!(
        stuck.is_empty(),
        "the Sankey never re-rendered within 5 s of moving the slider to epoch(s) {stuck:?}: \
         its signature (node and edge counts and the first link's path) did not change"
    );
    assert_eq!(times.len(), 4, "four timed epoch changes: {times:?}");
    assert!(
        nodes >= 1000,
        "the unmerged APD of 600 digits has the issue's 1,000 nodes or more: {nodes}"
    );
    // The goal is checked on the median of the four timed changes, not on each: on 2 shared
    // cores one change now and then takes longer for reasons outside the page (a build, the
    // server's lens work), and the worst of seven runs was 26 ms against a median of 17.
    // A slow renderer moves the median; one noisy sample does not.
    assert!(
        median < SANKEY_GOAL_MS,
        "the Sankey's re-render on an epoch change takes a median {median:.1} ms over {times:?}, \
         above the goal of {SANKEY_GOAL_MS} ms for {nodes} nodes"
    );
    let followed: Vec<f64> = serde_json::from_value(timing["settled"].clone()).expect("settled");
    assert!(
        followed.len() == 4 && followed.iter().all(|&ms| ms < 5000.0),
        "the views other than the APD follow every epoch change: {followed:?}"
    );
    client.close().await.expect("close session");
}

/// The goal for redrawing the APD Sankey of 1,000 nodes or more after an epoch change, in ms.
const SANKEY_GOAL_MS: f64 = 50.0;

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
fn median_ms(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match (
        sorted.len() % 2,
        sorted.get(mid),
        mid.checked_sub(1).and_then(|m| sorted.get(m)),
    ) {
        (1, Some(&m), _) => m,
        (0, Some(&hi), Some(&lo)) => f64::midpoint(lo, hi),
        _ => f64::NAN,
    }
}

#[test]
fn the_sankey_goal_is_checked_on_the_median() {
    assert_eq!(median_ms(&[9.0, 80.0, 12.0, 10.0]), 11.0, "one slow sample");
    assert_eq!(median_ms(&[60.0, 9.0, 70.0]), 60.0);
    assert!(median_ms(&[]).is_nan(), "no samples never pass");
}

/// Clicks the element matched by `selector` (the first, or the one `pick` chooses in JS).
async fn click_js(client: &Client, script: &str) -> serde_json::Value {
    js(client, script).await
}

/// Indices (`data-node`) of the mapper circles of panel 0 with class `hit`.
async fn mapper_hits(client: &Client) -> Vec<usize> {
    serde_json::from_value(
        js(
            client,
            "return Array.from(document.querySelectorAll('#mapper-svg-0 circle.hit')).map(c => Number(c.dataset.node));",
        )
        .await,
    )
    .expect("hit list")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the Trunk build; run by `cargo xtask test`"]
async fn mapper_and_factors_link_with_the_apd_and_the_inspector() {
    let epochs = 2;
    let config = actiscope_train::TrainConfig {
        probe: actiscope_train::ProbeSpec::parse("n=200").expect("probe"),
        ..digits_run(epochs)
    };
    let (server, run_id) = TestServer::start_with_run(Some(dist_dir()), Some(config))
        .await
        .expect("server and run start");
    let run_id = run_id.expect("run id");
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&server.url("/")).await.expect("page loads");
    wait_for_text(&client, "#epoch-label", Duration::from_secs(240), |t| {
        t == format!("epoch {epochs} of {epochs}")
    })
    .await;

    // The mapper panel draws the graph the server computes for its default settings.
    let deadline = Instant::now() + Duration::from_secs(60);
    let graph: actiscope_protocol::mapper::MapperGraph = {
        let (status, body) = actiscope_e2e::http_get(
            server.addr,
            &format!(
                "/api/runs/{run_id}/epochs/{epochs}/mapper?layer=0&lens=pca1&intervals=10&overlap=30&clusterer=dbscan&eps=auto"
            ),
        )
        .await
        .expect("GET mapper");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("graph")
    };
    loop {
        let drawn = js(&client, "const s = document.getElementById('mapper-svg-0'); return s ? Number(s.dataset.nodes) : 0;").await;
        if drawn.as_u64() == Some(graph.nodes.len() as u64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mapper panel shows {drawn} nodes, server has {}",
            graph.nodes.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Click the biggest node: the inspector lists its members, the APD highlights them.
    let (biggest, node) = graph
        .nodes
        .iter()
        .enumerate()
        .max_by_key(|(_, n)| n.members.len())
        .expect("a node");
    click_js(
        &client,
        &format!(
            "document.querySelector('#mapper-svg-0 circle[data-node=\"{biggest}\"]').dispatchEvent(new MouseEvent('click', {{bubbles: true}})); return 0;"
        ),
    )
    .await;
    let count = wait_for_text(&client, "#inspector-count", Duration::from_secs(10), |t| {
        t == node.members.len().to_string()
    })
    .await;
    assert_eq!(count, node.members.len().to_string());
    let listed = inspector_instances(&client).await;
    let (_, body) =
        actiscope_e2e::http_get(server.addr, &format!("/api/runs/{run_id}/epochs/{epochs}"))
            .await
            .expect("GET snapshot");
    let snapshot: actiscope_protocol::EpochSnapshot =
        serde_json::from_str(&body).expect("snapshot");
    // The inspector lists probe positions, as the mapper's members are.
    let expected: Vec<u32> = node.members.clone();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort_unstable();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_unstable();
    assert_eq!(
        listed_sorted, expected_sorted,
        "the inspector lists the node's members"
    );
    let highlighted = js(
        &client,
        "return document.querySelectorAll('#apd-sankey .hl').length;",
    )
    .await;
    assert!(
        highlighted.as_u64().unwrap_or(0) > 0,
        "the APD highlights the node's instances"
    );
    let hits = mapper_hits(&client).await;
    assert!(hits.contains(&biggest), "the clicked node is lit: {hits:?}");

    // Click the largest APD flow: exactly the mapper nodes holding its instances light up.
    let flow: Vec<u32> =
        serde_json::from_value(click_js(&client, CLICK_STRONGEST_FLOW).await).expect("flow");
    let flow_instances: std::collections::HashSet<u32> = snapshot
        .apd
        .merge_rare(40)
        .edge_instances(flow[0] as usize, flow[1], flow[2])
        .into_iter()
        .collect();
    let mut expected_hits: Vec<usize> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.members.iter().any(|m| flow_instances.contains(m)))
        .map(|(i, _)| i)
        .collect();
    expected_hits.sort_unstable();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut hits = mapper_hits(&client).await;
        hits.sort_unstable();
        if hits == expected_hits {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mapper hits {hits:?}, expected {expected_hits:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The factorization lens: latent images, heatmaps, spectra; a factor selects its top
    // instances.
    let status = wait_for_text(&client, "#nmf-status", Duration::from_secs(60), |t| {
        t.contains("rmse")
    })
    .await;
    assert!(status.contains(&format!("epoch {epochs}")), "{status}");
    // Where the fit ran: the device in the line, the reason in its tooltip.
    assert!(status.contains("rounds on CPU;"), "{status}");
    let fitted_on = js(
        &client,
        "return document.querySelector('#nmf-status').getAttribute('title');",
    )
    .await;
    assert!(
        fitted_on
            .as_str()
            .is_some_and(|t| t.starts_with("fitted on CPU; ")),
        "{fitted_on:?}"
    );
    let latents = js(
        &client,
        "return document.querySelectorAll('#latent-grid figure.latent').length;",
    )
    .await;
    assert_eq!(
        latents.as_u64(),
        Some(10),
        "one latent image per factor at rank 10"
    );
    let heatmaps = js(
        &client,
        "return document.querySelectorAll('#factor-heatmaps svg.factor-heatmap').length;",
    )
    .await;
    assert_eq!(heatmaps.as_u64(), Some(3), "one heatmap per hidden layer");
    let (_, body) = actiscope_e2e::http_get(
        server.addr,
        &format!("/api/runs/{run_id}/epochs/{epochs}/nmf?rank=10&inputs=true&balance=true"),
    )
    .await
    .expect("GET nmf");
    let nmf: actiscope_protocol::nmf::NmfResult = serde_json::from_str(&body).expect("nmf");
    click_js(
        &client,
        "document.querySelector('#latent-grid figure[data-factor=\"2\"] img').dispatchEvent(new MouseEvent('click', {bubbles: true})); return 0;",
    )
    .await;
    let top = &nmf.top_instances[2];
    wait_for_text(&client, "#inspector-label", Duration::from_secs(10), |t| {
        t.starts_with("NMF factor 3")
    })
    .await;
    let listed = inspector_instances(&client).await;
    let mut expected: Vec<u32> = top.clone();
    expected.sort_unstable();
    let mut listed_sorted = listed;
    listed_sorted.sort_unstable();
    assert_eq!(
        listed_sorted, expected,
        "a factor selects its top instances"
    );
    let spectra_lines = js(
        &client,
        "return document.querySelectorAll('#chart-spectra polyline').length;",
    )
    .await;
    assert_eq!(
        spectra_lines.as_u64(),
        Some(2),
        "epochs 1 and 2 on the spectra chart"
    );
    std::fs::write(
        artifacts_dir().join("mapper-and-factors.png"),
        client.screenshot().await.expect("png"),
    )
    .expect("save screenshot");

    // Flows over another span of layers: the histograms follow the server's table.
    js(&client, "const s = document.getElementById('flow-from'); s.value = '0'; s.dispatchEvent(new Event('change', {bubbles: true})); \
                 const t = document.getElementById('flow-to'); t.value = '0'; t.dispatchEvent(new Event('change', {bubbles: true})); return 0;").await;
    let (_, body) = actiscope_e2e::http_get(
        server.addr,
        &format!("/api/runs/{run_id}/epochs/{epochs}/flows?from=0&to=0"),
    )
    .await
    .expect("GET flows");
    let table: actiscope_protocol::apd::FlowTable = serde_json::from_str(&body).expect("flows");
    let note = wait_for_text(&client, "#flow-span-state", Duration::from_secs(30), |t| {
        t.ends_with(" flows")
    })
    .await;
    assert_eq!(note, format!("{} flows", table.flows.len()));
    let drawn: u64 = js(&client, "return Array.from(document.querySelectorAll('#hist-all rect.cell')).reduce((a, r) => a + Number(r.dataset.count), 0);")
        .await
        .as_u64()
        .unwrap_or(0);
    let expected: u32 = table.histogram.instances.iter().flatten().sum();
    assert_eq!(drawn, u64::from(expected));
    assert_eq!(expected, 200, "every probe instance is in one flow");

    // The New-run form starts a run on the server and the dashboard switches to it.
    click_js(
        &client,
        "document.getElementById('new-run-toggle').click(); return 0;",
    )
    .await;
    let fill = "const set = (id, v) => { const e = document.getElementById(id); e.value = v; \
                e.dispatchEvent(new Event('input', {bubbles: true})); }; \
                set('nr-dataset', 'moons'); set('nr-hidden', '6,6'); set('nr-optimizer', 'adam'); \
                set('nr-lr', '0.01'); set('nr-epochs', '2'); set('nr-device', 'flex'); set('nr-probe', 'n=50'); \
                return 0;";
    js(&client, fill).await;
    // A bad value is refused with the server's or the form's message first.
    js(&client, "const e = document.getElementById('nr-lr'); e.value = 'fast'; e.dispatchEvent(new Event('input', {bubbles: true})); document.getElementById('nr-submit').click(); return 0;").await;
    wait_for_text(&client, "#new-run-message", Duration::from_secs(10), |t| {
        t.contains("learning rate")
    })
    .await;
    js(&client, "const e = document.getElementById('nr-lr'); e.value = '0.01'; e.dispatchEvent(new Event('input', {bubbles: true})); document.getElementById('nr-submit').click(); return 0;").await;
    let header = wait_for_text(&client, "#run-header", Duration::from_secs(60), |t| {
        t.contains("moons")
    })
    .await;
    assert!(header.contains("moons"), "{header}");
    let (_, body) = actiscope_e2e::http_get(server.addr, "/api/runs")
        .await
        .expect("GET runs");
    let runs: Vec<actiscope_protocol::RunSummary> = serde_json::from_str(&body).expect("runs");
    assert_eq!(runs.len(), 2, "{body}");
    assert!(runs.iter().any(|r| r.dataset == "moons"), "{body}");
    let new_id = runs.iter().map(|r| r.run_id).max().expect("id");
    wait_for_url(&client, |url| url.contains(&format!("run={new_id}"))).await;
    client.close().await.expect("close session");
}

/// `[layer, epoch, value, title]` of every cell of the layers x epochs similarity grid.
async fn similarity_cells(client: &Client) -> Vec<(u32, u32, String, String)> {
    serde_json::from_value(
        js(
            client,
            "const s = document.getElementById('similarity-epochs'); if (!s) return []; \
             return Array.from(s.querySelectorAll('rect.sim-cell')).map(r => [Number(r.dataset.layer), \
             Number(r.dataset.epoch), r.dataset.value, r.querySelector('title').textContent]);",
        )
        .await,
    )
    .expect("similarity cells")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the Trunk build; run by `cargo xtask test`"]
async fn similarity_grid_follows_the_run_and_moves_the_slider() {
    let epochs = 3u32;
    let config = actiscope_train::TrainConfig {
        probe: actiscope_train::ProbeSpec::parse("n=200").expect("probe"),
        ..digits_run(epochs as usize)
    };
    let (server, run_id) = TestServer::start_with_run(Some(dist_dir()), Some(config))
        .await
        .expect("server and run start");
    let run_id = run_id.expect("run id");
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&server.url("/")).await.expect("page loads");
    wait_for_text(&client, "#epoch-label", Duration::from_secs(240), |t| {
        t == format!("epoch {epochs} of {epochs}")
    })
    .await;
    let (status, body) = actiscope_e2e::http_get(server.addr, &format!("/api/runs/{run_id}"))
        .await
        .expect("GET run");
    assert_eq!(status, 200, "{body}");
    let run: actiscope_protocol::RunSummary = serde_json::from_str(&body).expect("run summary");
    let layers = run.hidden_layers;
    assert!(layers > 0);

    // One cell per (hidden layer, stored epoch), once every epoch has arrived.
    let mut expected: Vec<(u32, u32)> = (0..layers)
        .flat_map(|l| (1..=epochs).map(move |e| (l, e)))
        .collect();
    expected.sort_unstable();
    let deadline = Instant::now() + Duration::from_secs(60);
    let cells = loop {
        let cells = similarity_cells(&client).await;
        let mut drawn: Vec<(u32, u32)> = cells.iter().map(|c| (c.0, c.1)).collect();
        drawn.sort_unstable();
        if drawn == expected {
            break cells;
        }
        assert!(
            Instant::now() < deadline,
            "the similarity grid has cells {drawn:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        cells.iter().all(|c| !c.3.is_empty()),
        "every cell has a title"
    );
    let current: Vec<u32> = serde_json::from_value(
        js(
            &client,
            "return Array.from(document.querySelectorAll('#similarity-epochs rect.sim-current')).map(r => Number(r.dataset.epoch));",
        )
        .await,
    )
    .expect("current cells");
    assert_eq!(
        current,
        vec![epochs; layers as usize],
        "the shown epoch's column is marked"
    );

    // Clicking a cell of epoch 1 moves the slider, and the URL follows.
    click_js(
        &client,
        "document.querySelector('#similarity-epochs rect.sim-cell[data-epoch=\"1\"]').dispatchEvent(new MouseEvent('click', {bubbles: true})); return 0;",
    )
    .await;
    wait_for_text(&client, "#epoch-label", Duration::from_secs(10), |t| {
        t == format!("epoch 1 of {epochs}")
    })
    .await;
    let slider = js(
        &client,
        "return document.getElementById('epoch-slider').value;",
    )
    .await;
    assert_eq!(slider.as_str(), Some("1"));
    wait_for_url(&client, |url| url.contains("epoch=1")).await;

    // Another method draws other values.
    let before: Vec<String> = cells.iter().map(|c| c.2.clone()).collect();
    js(
        &client,
        "const s = document.getElementById('similarity-method'); s.value = 'cka'; \
         s.dispatchEvent(new Event('change', {bubbles: true})); return 0;",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let method = js(
            &client,
            "const s = document.getElementById('similarity-epochs'); return s ? s.dataset.method : '';",
        )
        .await;
        if method.as_str() == Some("cka") {
            break;
        }
        assert!(Instant::now() < deadline, "the grid never showed cka");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = similarity_cells(&client).await;
    assert_eq!(after.len(), cells.len());
    let mut after_sorted = after.clone();
    after_sorted.sort_by_key(|c| (c.0, c.1));
    let mut before_sorted = cells.clone();
    before_sorted.sort_by_key(|c| (c.0, c.1));
    assert!(
        before_sorted
            .iter()
            .zip(&after_sorted)
            .any(|(b, a)| b.2 != a.2),
        "svcca and cka drew the same values: {before:?}"
    );
    // The method is in the shareable URL: opened again, the page shows it.
    let url = wait_for_url(&client, |url| url.contains("sim=cka")).await;
    client.goto(&url).await.expect("reload");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = js(
            &client,
            "const g = document.getElementById('similarity-epochs'); \
             const s = document.getElementById('similarity-method'); \
             return (g ? g.dataset.method : '') + '/' + (s ? s.value : '');",
        )
        .await;
        if shown.as_str() == Some("cka/cka") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reloaded page shows {shown} instead of cka"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // That URL also pins run and epoch; the page opened bare follows the newest run again.
    client.goto(&server.url("/")).await.expect("page loads");

    // Runs probing the same 200 digits and 100 others: the page follows each newest run, and
    // comparing it with the first draws what the compare route answers, a grid or (other
    // instances) its 409 text.
    for (probe, expected_status) in [("n=200", 200), ("n=100", 409)] {
        let (status, body) = actiscope_e2e::http_post_json(
            server.addr,
            "/api/runs",
            &format!(r#"{{"epochs":1,"probe":"{probe}","device":"flex"}}"#),
        )
        .await
        .expect("POST /api/runs");
        assert_eq!(status, 201, "{body}");
        let newer: actiscope_protocol::RunSummary =
            serde_json::from_str(&body).expect("run summary");
        wait_for_text(&client, "#run-name", Duration::from_secs(30), |t| {
            t == newer.name
        })
        .await;
        wait_for_text(&client, "#epoch-label", Duration::from_secs(240), |t| {
            t == "epoch 1 of 1"
        })
        .await;
        // The panel follows the new run a paint later; choosing before that would be undone.
        let deadline = Instant::now() + Duration::from_secs(30);
        while js(
            &client,
            "return document.getElementById('similarity-section').dataset.run;",
        )
        .await
            != serde_json::json!(newer.run_id.to_string())
        {
            assert!(
                Instant::now() < deadline,
                "the similarity panel never followed run {}",
                newer.run_id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while js(
            &client,
            &format!(
                "return document.querySelector('#similarity-compare option[value=\"{run_id}\"]') !== null;"
            ),
        )
        .await
            != serde_json::json!(true)
        {
            assert!(
                Instant::now() < deadline,
                "run {run_id} is not offered for comparison"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        js(
            &client,
            &format!(
                "const s = document.getElementById('similarity-compare'); s.value = '{run_id}'; \
                 s.dispatchEvent(new Event('change', {{bubbles: true}})); return 0;"
            ),
        )
        .await;
        let (status, body) = actiscope_e2e::http_get(
            server.addr,
            &format!("/api/runs/{}/compare/{run_id}?method=cka", newer.run_id),
        )
        .await
        .expect("GET compare");
        assert_eq!(status, expected_status, "{probe}: {body}");
        if status == 200 {
            wait_for_url(&client, |url| url.contains(&format!("compare={run_id}"))).await;
            let grid: actiscope_protocol::similarity::SimilarityGrid =
                serde_json::from_str(&body).expect("grid");
            let cells = grid.row_labels.len() * grid.col_labels.len();
            assert!(cells > 0);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let drawn = js(
                    &client,
                    "return document.querySelectorAll('#similarity-compare-grid rect.sim-cell').length;",
                )
                .await;
                if drawn == serde_json::json!(cells) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the compare grid has {drawn} cells, the server {cells}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            let error: serde_json::Value = serde_json::from_str(&body).expect("error JSON");
            let text = error["error"].as_str().expect("error text").to_owned();
            wait_for_text(
                &client,
                "#similarity-message",
                Duration::from_secs(30),
                |t| t == text,
            )
            .await;
            let grids = js(
                &client,
                "return document.querySelectorAll('#similarity-compare-grid').length;",
            )
            .await;
            assert_eq!(grids, serde_json::json!(0), "no grid beside the error");
        }
    }
    let _ = client.close().await;
}

/// A run directory of 4 instances and 2 epochs (layers fc1 and fc2, 6 units each) made of the
/// import crate's fixtures, as another framework would write it, finished.
fn imported_run_dir(root: &std::path::Path) -> PathBuf {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/import/tests/fixtures");
    let dir = root.join("run");
    std::fs::create_dir(&dir).expect("run dir");
    std::fs::write(
        dir.join("run.toml"),
        "name = \"imported toy\"\nlayers = [\"fc1\", \"fc2\"]\nclasses = [\"a\", \"b\", \"c\"]\n",
    )
    .expect("run.toml");
    std::fs::copy(fixtures.join("labels_i64_big.npy"), dir.join("labels.npy")).expect("labels");
    std::fs::copy(
        fixtures.join("epoch.safetensors"),
        dir.join("epoch-0001.safetensors"),
    )
    .expect("epoch 1");
    let folder = dir.join("epoch-0002");
    std::fs::create_dir(&folder).expect("epoch 2");
    std::fs::copy(fixtures.join("f16_v3.npy"), folder.join("fc1.npy")).expect("fc1");
    std::fs::copy(
        fixtures.join("f64_big_fortran_v2.npy"),
        folder.join("fc2.npy"),
    )
    .expect("fc2");
    std::fs::write(dir.join("finished"), b"").expect("finished");
    dir
}

#[tokio::test]
#[ignore = "needs chromium, chromedriver and a Trunk build; run by `cargo xtask test`"]
async fn an_imported_run_opens_from_the_form_and_its_flows_click() {
    let server = TestServer::start(Some(dist_dir()))
        .await
        .expect("server starts");
    let root = tempfile::tempdir().expect("temp dir");
    let run_dir = imported_run_dir(root.path());
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&server.url("/")).await.expect("page loads");
    wait_for_text(&client, "#run-count", Duration::from_secs(30), |t| t == "0").await;

    // The New-run form's import: the directory, following the job (it has finished).
    client
        .find(Locator::Css("#new-run-toggle"))
        .await
        .expect("toggle")
        .click()
        .await
        .expect("open the form");
    let dir = run_dir.display().to_string();
    js(
        &client,
        &format!(
            "const i = document.getElementById('import-dir'); i.value = {}; \
             i.dispatchEvent(new Event('input', {{bubbles: true}})); return 0;",
            serde_json::json!(dir)
        ),
    )
    .await;
    client
        .find(Locator::Css("#import-submit"))
        .await
        .expect("import button")
        .click()
        .await
        .expect("import");
    wait_for_text(&client, "#run-name", Duration::from_secs(30), |t| {
        t == "imported toy"
    })
    .await;
    wait_for_text(&client, "#epoch-label", Duration::from_secs(30), |t| {
        t == "epoch 2 of 2"
    })
    .await;
    let header = wait_for_text(&client, "#run-header", Duration::from_secs(5), |t| {
        t.contains("imported")
    })
    .await;
    assert!(header.contains("4 instances from"), "{header}");

    // Its flows list and click like a trained run's: the inspector lists the flow's instances.
    let clicked = js(&client, CLICK_STRONGEST_FLOW).await;
    let picked: Vec<u32> = serde_json::from_value(clicked).expect("link coordinates");
    let size = picked[3] as usize;
    let count = wait_for_text(&client, "#inspector-count", Duration::from_secs(10), |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(count, size.to_string());
    assert_eq!(inspector_instances(&client).await.len(), size);

    // A directory that is not a run: the form shows the server's reason.
    js(
        &client,
        "document.getElementById('new-run-toggle').click(); return 0;",
    )
    .await;
    let missing = root.path().join("nothing-here").display().to_string();
    js(
        &client,
        &format!(
            "const i = document.getElementById('import-dir'); i.value = {}; \
             i.dispatchEvent(new Event('input', {{bubbles: true}})); \
             document.getElementById('import-submit').click(); return 0;",
            serde_json::json!(missing)
        ),
    )
    .await;
    let message = wait_for_text(&client, "#new-run-message", Duration::from_secs(10), |t| {
        t.contains("run.toml")
    })
    .await;
    assert!(message.contains("nothing-here"), "{message}");
}

/// The header of a run a worker on another machine trains tells how the worker's GPU
/// preparation goes, step by step, from what the worker stores with the run (here written
/// into the store as a worker does; `server_socket.rs` has a real worker on lavapipe), and
/// says nothing more once the preparation is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the Trunk build; run by `cargo xtask test`"]
async fn a_worker_s_gpu_preparation_shows_in_the_header() {
    let dir = tempfile::tempdir().expect("a folder");
    let path = dir.path().join("runs.db");
    let config = actiscope_train::TrainConfig {
        dataset: actiscope_train::data::DatasetSpec::Planar(
            actiscope_train::data::synthetic::Planar::Moons,
        ),
        device: actiscope_train::device::DeviceChoice::Wgpu,
        epochs: 5,
        ..actiscope_train::TrainConfig::default()
    };
    let config = serde_json::to_string(&config).expect("the configuration as JSON");
    let writer = actiscope_store::Store::open(&path).expect("the worker's store");
    let run_id = writer
        .queue_for_workers("on another machine", &config)
        .expect("queued");
    let server = TestServer::start_on(
        actiscope_store::Store::open(&path).expect("the server's store"),
        Some(dist_dir()),
    )
    .await
    .expect("server starts");
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client
        .goto(&server.url(&format!("/?run={run_id}")))
        .await
        .expect("page loads");
    wait_for_text(&client, "#run-status", Duration::from_secs(30), |t| {
        t == "queued"
    })
    .await;

    // A worker elsewhere (alive by its heartbeat) claims the run and prepares its GPU.
    let claimed = writer
        .claim_for_worker("another-machine/4242/1")
        .expect("claims")
        .expect("the queued run");
    assert_eq!(claimed.id, run_id);
    let step = |done: u32, step: &str| {
        let told = format!(r#"{{"steps_done":{done},"steps_total":5,"step":"{step}"}}"#);
        assert!(writer.set_preparation(run_id, &told).expect("stored"));
    };
    step(0, "staging the 1800 training instances");
    wait_for_text(&client, "#run-status", Duration::from_secs(10), |t| {
        t == "running"
    })
    .await;
    wait_for_text(&client, "#run-preparing", Duration::from_secs(10), |t| {
        t == "preparing the GPU: step 1 of 5, staging the 1800 training instances"
    })
    .await;
    step(2, "capturing the training set (1800 instances)");
    wait_for_text(&client, "#run-preparing", Duration::from_secs(10), |t| {
        t == "preparing the GPU: step 3 of 5, capturing the training set (1800 instances)"
    })
    .await;
    // Done: the line goes.
    step(5, "");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.find(Locator::Css("#run-preparing")).await.is_ok() {
        assert!(Instant::now() < deadline, "the preparation line stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child process killed when the test ends, pass or fail.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `actiscope serve --no-train` on a free port over `store`, serving the dashboard.
fn serve_no_train(store: &str) -> (Process, String) {
    use std::io::BufRead;
    let mut child = Command::new(actiscope_binary())
        .args([
            "serve",
            "--no-train",
            "--port",
            "0",
            "--store",
            store,
            "--dist",
        ])
        .arg(dist_dir())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("actiscope serve starts");
    let stdout = child.stdout.take().expect("its stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server prints its URL")
            .expect("a line");
        if let Some(url) = line.strip_prefix("actiscope listening on ") {
            break url.trim().trim_end_matches('/').to_owned();
        }
    };
    (Process(child), url)
}

fn start_worker(store: &str) -> Process {
    Process(
        Command::new(actiscope_binary())
            .args(["worker", "--store", store])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("actiscope worker starts"),
    )
}

/// The several-machines set-up on loopback: one PostgreSQL, two servers that train nothing,
/// three workers. A run queued through server A's API is trained by the workers and streams
/// live into a dashboard open on server B; the worker training it is killed with SIGKILL, and
/// the dashboard goes on to the last epoch as another worker resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium, PostgreSQL and the Trunk build; run by `cargo xtask test`"]
async fn a_run_queued_on_one_server_streams_live_from_another_through_a_killed_worker() {
    let pg = actiscope_store::testing::TestPostgres::shared().expect("a test PostgreSQL");
    let store = pg.url(&pg.fresh_database().expect("a database"));
    let (_server_a, url_a) = serve_no_train(&store);
    let (_server_b, url_b) = serve_no_train(&store);
    let epochs = 400;
    let addr: std::net::SocketAddr = url_a
        .trim_start_matches("http://")
        .parse()
        .expect("server A's address");
    let body = format!(
        r#"{{"dataset":"moons","hidden":"16,16","probe":"n=100","device":"flex","seed":3,"epochs":{epochs}}}"#
    );
    let (status, answer) = actiscope_e2e::http_post_json(addr, "/api/runs", &body)
        .await
        .expect("POST to server A");
    assert_eq!(status, 201, "{answer}");
    // Server B's dashboard opens the run queued on A, before any worker trains it.
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client
        .goto(&format!("{url_b}/?run=1"))
        .await
        .expect("page loads");
    wait_for_text(&client, "#link-state", Duration::from_secs(30), |t| {
        t == "connected"
    })
    .await;
    wait_for_text(&client, "#run-status", Duration::from_secs(10), |t| {
        t == "queued"
    })
    .await;
    let mut workers: Vec<Process> = (0..3).map(|_| start_worker(&store)).collect();

    let epoch_shown = |label: &str| -> Option<usize> {
        label
            .strip_prefix("epoch ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    // Live: the dashboard on B shows the run part-way, then further on.
    let first = wait_for_text(&client, "#epoch-label", Duration::from_secs(120), |t| {
        epoch_shown(t).is_some_and(|e| e >= 5 && e < epochs / 4)
    })
    .await;
    let first = epoch_shown(&first).unwrap_or(0);

    // Kill the worker that trains it (its pid is in the run's owner), mid-run.
    let row = actiscope_store::Store::connect(&store.parse().expect("the URL"))
        .and_then(|s| s.run(1))
        .expect("the run")
        .expect("run 1");
    assert_eq!(row.status, "running", "killed mid-run");
    assert!((row.epochs_stored as usize) < epochs, "killed mid-run");
    let owner = row.owner;
    let pid: u32 = owner
        .rsplit('/')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("a pid in the owner");
    let index = workers
        .iter()
        .position(|w| w.0.id() == pid)
        .expect("one of ours trains it");
    let mut killed = workers.swap_remove(index);
    killed.0.kill().expect("SIGKILL");
    killed.0.wait().expect("reaped");

    let label = format!("epoch {epochs} of {epochs}");
    wait_for_text(&client, "#epoch-label", Duration::from_secs(180), |t| {
        epoch_shown(t).is_some_and(|e| e > first)
    })
    .await;
    wait_for_text(&client, "#epoch-label", Duration::from_secs(300), |t| {
        t == label
    })
    .await;
    wait_for_text(&client, "#run-status", Duration::from_secs(60), |t| {
        t == "completed"
    })
    .await;
    let stored = actiscope_store::Store::connect(&store.parse().expect("the URL"))
        .and_then(|s| s.epochs(1))
        .expect("the epochs");
    let numbers: Vec<u32> = stored.iter().map(|(epoch, _)| *epoch).collect();
    assert_eq!(
        numbers,
        (1..=epochs as u32).collect::<Vec<_>>(),
        "every epoch once"
    );
    let _ = client.close().await;
}
