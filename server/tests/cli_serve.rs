//! `actiscope serve` as a process: refuses to expose itself without a token, and a server
//! killed with SIGKILL in the middle of a run loses nothing but the epoch in flight.

// Tests fail by panicking, helpers included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actiscope_store::Store;

fn serve(store: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_actiscope"))
        .args(["serve", "--port", "0", "--store"])
        .arg(store)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("the server prints its URL").unwrap();
        if let Some(url) = line.strip_prefix("actiscope listening on ") {
            break url.trim().to_owned();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn stored(path: &Path) -> Vec<(u32, Vec<u8>)> {
    Store::open(path)
        .and_then(|s| s.snapshots_from(1, "epoch", 1))
        .unwrap_or_default()
}

#[test]
fn binding_beyond_loopback_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_actiscope"))
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--store"])
        .arg(dir.path().join("runs.db"))
        .env_remove("ACTISCOPE_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("--token"), "{message}");
}

/// The status line and body of `GET path` from the server at `url` (`http://host:port/...`),
/// with extra request headers.
fn get(url: &str, path: &str, headers: &str) -> (String, String) {
    use std::io::{Read, Write};
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&authority).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_owned(), body.to_owned())
}

#[test]
fn the_token_comes_from_a_file_or_the_environment_and_the_printed_url_carries_it() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from file/=\n").unwrap();
    let from_file = dir.path().join("file.db");
    let (mut server, url) = serve(&from_file, &["--token-file", token_file.to_str().unwrap()]);
    assert!(url.ends_with("/?token=from%20file%2F%3D"), "{url}");
    let (head, _) = get(&url, "/api/health", "");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (head, body) = get(&url, "/api/health?token=from%20file%2F%3D", "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("protocol_version"), "{body}");
    let (head, _) = get(&url, "/api/health", "Authorization: Bearer from file/=\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Another site's page is refused even with the token.
    let (head, _) = get(
        &url,
        "/api/health?token=from%20file%2F%3D",
        "Origin: http://evil.example\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    server.kill().unwrap();
    server.wait().unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_actiscope"))
        .args(["serve", "--port", "0", "--store"])
        .arg(dir.path().join("env.db"))
        .env("ACTISCOPE_TOKEN", "from-env")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find(|l| l.starts_with("actiscope listening on "))
        .expect("the URL");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.ends_with("/?token=from-env"), "{line}");
}

#[test]
fn sigkill_mid_run_keeps_every_stored_epoch_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.db");
    let (mut server, _url) = serve(&store, &["--default-run", "--default-epochs", "1000"]);
    let deadline = Instant::now() + Duration::from_secs(300);
    while stored(&store).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no two epochs stored within 300 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let before = stored(&store);
    assert!(before.len() >= 2);

    let (mut restarted, _url) = serve(&store, &[]);
    let store_handle = Store::open(&store).unwrap();
    assert_eq!(
        store_handle.status(1).unwrap().as_deref(),
        Some("interrupted")
    );
    let after = stored(&store);
    assert_eq!(
        after, before,
        "every stored epoch reads back byte-identical"
    );
    assert_eq!(store_handle.epochs(1).unwrap().len(), before.len());
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}
