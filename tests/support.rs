//! Helpers shared by the end-to-end tests: a real actiscope server on a free loopback port.
//!
//! Owns: starting and stopping servers for tests. Does not own: any product behaviour.

use std::net::SocketAddr;
use std::path::PathBuf;

use actiscope_server::app::app;
use actiscope_server::state::AppState;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A server running on `127.0.0.1:<free port>` with its own temporary store.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    _store_dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts the real router on port 0, serving `dist` when given.
    pub async fn start(dist: Option<PathBuf>) -> std::io::Result<Self> {
        Self::start_with_run(dist, None)
            .await
            .map(|(server, _)| server)
    }

    /// As [`start`](Self::start), then starts a run of `config` when given; returns its id.
    pub async fn start_with_run(
        dist: Option<PathBuf>,
        config: Option<actiscope_train::TrainConfig>,
    ) -> std::io::Result<(Self, Option<i64>)> {
        let store_dir = tempfile::tempdir()?;
        let store = actiscope_store::Store::open(&store_dir.path().join("runs.db"))
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = AppState::new(store, dist);
        let run_id = match config {
            Some(config) => Some(
                state
                    .hub()
                    .start_run(config)
                    .await
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        };
        let router = app(state);
        let task = tokio::spawn(async move {
            // The test that owns the server fails on its own if serving stops early.
            let _ = axum::serve(listener, router).await;
        });
        Ok((
            Self {
                addr,
                task,
                _store_dir: store_dir,
            },
            run_id,
        ))
    }

    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://127.0.0.1:<port>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain HTTP/1.1 GET over a fresh loopback connection: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
