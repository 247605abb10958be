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
    store_dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts the real router on port 0, serving `dist` when given.
    pub async fn start(dist: Option<PathBuf>) -> std::io::Result<Self> {
        Self::start_with_run(dist, None)
            .await
            .map(|(server, _)| server)
    }

    /// [`start`](Self::start) over `store` (e.g. a PostgreSQL database) instead of a file of
    /// its own; [`store_path`](Self::store_path) then names nothing.
    pub async fn start_on(
        store: actiscope_store::Store,
        dist: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        let (state, _) = state_with_run(store, dist, None).await?;
        Self::serve(state).await
    }

    /// A server over `store` with `options`, no dashboard; [`store_path`](Self::store_path)
    /// names nothing.
    pub async fn start_with_options(
        store: actiscope_store::Store,
        options: actiscope_server::state::ServerOptions,
    ) -> std::io::Result<Self> {
        Self::serve(AppState::with_options(store, None, options)).await
    }

    /// Serves `state` on a free loopback port.
    async fn serve(state: AppState) -> std::io::Result<Self> {
        Self::serve_in(state, tempfile::tempdir()?).await
    }

    /// Serves `state` on a free loopback port, keeping `store_dir` (the store's folder, if it
    /// is a file there) until the server is dropped.
    async fn serve_in(state: AppState, store_dir: tempfile::TempDir) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = app(state);
        let task = tokio::spawn(async move {
            // The test that owns the server fails on its own if serving stops early.
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            addr,
            task,
            store_dir,
        })
    }

    /// As [`start`](Self::start), then starts a run of `config` when given; returns its id.
    pub async fn start_with_run(
        dist: Option<PathBuf>,
        config: Option<actiscope_train::TrainConfig>,
    ) -> std::io::Result<(Self, Option<i64>)> {
        let store_dir = tempfile::tempdir()?;
        let store = actiscope_store::Store::open(&store_dir.path().join("runs.db"))
            .map_err(std::io::Error::other)?;
        let (state, run_id) = state_with_run(store, dist, config).await?;
        let server = Self::serve_in(state, store_dir).await?;
        Ok((server, run_id))
    }

    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://127.0.0.1:<port>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The SQLite file the server stores its runs in. Tests open it beside the server to
    /// change what is stored behind its back (e.g. to prove an answer came from a cache).
    pub fn store_path(&self) -> PathBuf {
        self.store_dir.path().join("runs.db")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server's state over `store`, with a run of `config` started when given.
async fn state_with_run(
    store: actiscope_store::Store,
    dist: Option<PathBuf>,
    config: Option<actiscope_train::TrainConfig>,
) -> std::io::Result<(AppState, Option<i64>)> {
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
    Ok((state, run_id))
}

/// A server on a runtime of its own, so that [`crash`](Self::crash) drops every connection at
/// once, as a killed process would, and [`restart`](Self::restart) serves the same store on the
/// same port again.
pub struct CrashableServer {
    /// Where it listens (the same after a restart).
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    store_dir: tempfile::TempDir,
    dist: Option<PathBuf>,
}

impl CrashableServer {
    /// Starts the real router on a free port with a fresh store, then a run of `config` when
    /// given; returns its id.
    pub async fn start(
        dist: Option<PathBuf>,
        config: Option<actiscope_train::TrainConfig>,
    ) -> std::io::Result<(Self, Option<i64>)> {
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            runtime: None,
            store_dir: tempfile::tempdir()?,
            dist,
        };
        let run_id = server.serve(config).await?;
        Ok((server, run_id))
    }

    /// Drops the runtime with every task on it: the listener and all connections close.
    pub fn crash(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Serves the same store on the same port again (after [`crash`](Self::crash)).
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.crash();
        self.serve(None).await.map(|_| ())
    }

    async fn serve(
        &mut self,
        config: Option<actiscope_train::TrainConfig>,
    ) -> std::io::Result<Option<i64>> {
        // The old listener closes in the background: retry the bind for a while.
        let mut attempts = 0;
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(_) if attempts < 50 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err),
            }
        };
        listener.set_nonblocking(true)?;
        self.addr = listener.local_addr()?;
        let store = actiscope_store::Store::open(&self.store_dir.path().join("runs.db"))
            .map_err(std::io::Error::other)?;
        let dist = self.dist.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let started = runtime.spawn(async move {
            let (state, run_id) = state_with_run(store, dist, config).await?;
            let listener = TcpListener::from_std(listener)?;
            tokio::spawn(async move {
                // The test that owns the server fails on its own if serving stops early.
                let _ = axum::serve(listener, app(state)).await;
            });
            Ok::<_, std::io::Error>(run_id)
        });
        self.runtime = Some(runtime);
        started.await.map_err(std::io::Error::other)?
    }
}

impl Drop for CrashableServer {
    fn drop(&mut self) {
        self.crash();
    }
}

/// A plain HTTP/1.1 POST of a JSON `body` over a fresh loopback connection: (status code,
/// body).
pub async fn http_post_json(
    addr: SocketAddr,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(split_response(&response))
}

/// (status code, body) of a raw HTTP/1.1 response.
fn split_response(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A plain HTTP/1.1 GET over a fresh loopback connection: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(split_response(&response))
}

/// The `actiscope` binary of this build (`<target>/debug/actiscope`, beside `deps/` where
/// the test runs), built by the workspace's tests (`cargo xtask test`) before this one.
pub fn actiscope_binary() -> PathBuf {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("actiscope")))
        .unwrap_or_default();
    assert!(
        binary.is_file(),
        "{} is missing; run `cargo xtask test` (it builds it first)",
        binary.display()
    );
    binary
}
