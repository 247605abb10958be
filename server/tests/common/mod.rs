//! What the tests of the real `actiscope` binary share: the binary, a blocking HTTP client,
//! a server process on a free port, and what a run has stored, read through a connection of
//! the test's own.

// Each test binary uses part of this module.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A store as tests name it: a SQLite file's path, or a PostgreSQL URL (with its password,
/// which a parsed `StoreLocation` would hide).
pub trait StoreArg {
    /// What `--store` gets.
    fn arg(&self) -> OsString;
    /// A connection of the test's own.
    fn open(&self) -> Result<actiscope_store::Store, actiscope_store::StoreError>;
    /// How long to wait between two looks at what is stored.
    fn poll(&self) -> Duration {
        Duration::from_millis(1)
    }
}

impl StoreArg for Path {
    fn arg(&self) -> OsString {
        self.as_os_str().to_owned()
    }
    fn open(&self) -> Result<actiscope_store::Store, actiscope_store::StoreError> {
        actiscope_store::Store::open(self)
    }
}

impl StoreArg for PathBuf {
    fn arg(&self) -> OsString {
        self.as_os_str().to_owned()
    }
    fn open(&self) -> Result<actiscope_store::Store, actiscope_store::StoreError> {
        actiscope_store::Store::open(self)
    }
}

impl StoreArg for str {
    fn arg(&self) -> OsString {
        self.into()
    }
    fn open(&self) -> Result<actiscope_store::Store, actiscope_store::StoreError> {
        let location = self.parse().map_err(|e: actiscope_store::LocationError| {
            actiscope_store::StoreError::Invalid(e.to_string())
        })?;
        actiscope_store::Store::connect(&location)
    }
    fn poll(&self) -> Duration {
        // Each look opens a connection (a password login) to the server.
        Duration::from_millis(20)
    }
}

/// The `actiscope` binary Cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_actiscope")
}

/// A blocking HTTP/1.1 request on a fresh connection: (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Bodies of these answers are small and sent whole or chunked once.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split_once("\r\n")
            .map_or("", |(_, rest)| rest)
            .rsplit_once("\r\n0\r\n")
            .map_or(body, |(data, _)| data)
            .to_owned()
    } else {
        body.to_owned()
    };
    (status, body)
}

/// `actiscope serve` on a free port over `store`; returns the process and its address.
pub fn serve(store: &(impl StoreArg + ?Sized)) -> (Child, SocketAddr) {
    serve_with(store, &[])
}

/// [`serve`] with extra flags (`--no-train`, ...).
pub fn serve_with(store: &(impl StoreArg + ?Sized), extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(binary())
        .args(["serve", "--port", "0", "--store"])
        .arg(store.arg())
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the server prints its URL").unwrap();
        if let Some(url) = line.strip_prefix("actiscope listening on http://") {
            break url.trim().trim_end_matches('/').parse().unwrap();
        }
    };
    (child, addr)
}

/// A blocking GET whose body is bytes (images): (status, head, body). The answer must carry a
/// Content-Length, as whole bodies from axum do.
pub fn get_bytes(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, response[split + 4..].to_vec())
}

/// Every stored epoch's metrics of run `run_id`, in order (none while the file cannot be read).
pub fn metrics(
    store: &(impl StoreArg + ?Sized),
    run_id: i64,
) -> Vec<actiscope_protocol::EpochMetrics> {
    store
        .open()
        .and_then(|s| s.epochs(run_id))
        .unwrap_or_default()
        .iter()
        .map(|(_, json)| serde_json::from_str(json).unwrap())
        .collect()
}

/// Epochs stored for run `run_id`.
pub fn stored_epochs(store: &(impl StoreArg + ?Sized), run_id: i64) -> usize {
    store
        .open()
        .and_then(|s| s.epochs(run_id))
        .map_or(0, |e| e.len())
}

/// Polls every millisecond until run `run_id` has at least `count` epochs stored; fails after
/// two minutes.
pub fn wait_for_epochs(store: &(impl StoreArg + ?Sized), run_id: i64, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while stored_epochs(store, run_id) < count {
        assert!(
            std::time::Instant::now() < deadline,
            "run {run_id}: no epoch {count}"
        );
        std::thread::sleep(store.poll());
    }
}
