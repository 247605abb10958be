//! Shared state handed to every request handler.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actiscope_protocol::{PROTOCOL_VERSION, ServerInfo};
use actiscope_store::Store;
use actiscope_train::nmf::{NmfDeviceChoice, NmfPlacement};

use crate::answers::AnswerCache;
use crate::frontend::Frontend;
use crate::guard::HostPolicy;
use crate::hub::Hub;

/// State shared by all handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    started: Instant,
    hub: Hub,
    frontend: Frontend,
    token: Option<String>,
    host_policy: HostPolicy,
    sockets: Arc<tokio::sync::Semaphore>,
    max_sockets: usize,
    answers: Arc<AnswerCache>,
}

/// Server settings beyond the store and the frontend.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Runs that train at once; more are queued.
    pub concurrent_runs: usize,
    /// Train nothing: runs started here are queued in the store for `actiscope worker`s.
    pub no_train: bool,
    /// Runs that may wait in the queue; more are refused.
    pub max_queued: usize,
    /// When set, API and websocket requests must carry this token.
    pub token: Option<String>,
    /// Which `Host` and `Origin` names requests may carry.
    pub host_policy: HostPolicy,
    /// Websockets open at once; more are closed at once with a reason.
    pub max_sockets: usize,
    /// Where the NMF lens fits.
    pub nmf_device: NmfDeviceChoice,
}

/// Websockets open at once by default.
pub const DEFAULT_MAX_SOCKETS: usize = 256;

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            concurrent_runs: crate::hub::DEFAULT_CONCURRENT_RUNS,
            no_train: false,
            max_queued: crate::hub::DEFAULT_MAX_QUEUED,
            token: None,
            host_policy: HostPolicy::loopback(),
            max_sockets: DEFAULT_MAX_SOCKETS,
            nmf_device: NmfDeviceChoice::Auto,
        }
    }
}

impl AppState {
    /// Builds the state around an open store. `dist_dir` is the frontend build to serve, if any.
    pub fn new(store: Store, dist_dir: Option<PathBuf>) -> Self {
        Self::with_options(store, dist_dir, ServerOptions::default())
    }

    /// As [`new`](Self::new), with explicit [`ServerOptions`].
    pub fn with_options(store: Store, dist_dir: Option<PathBuf>, options: ServerOptions) -> Self {
        let frontend = dist_dir.map_or(Frontend::Missing, Frontend::Dir);
        Self::with_frontend(store, frontend, options)
    }

    /// The state around an open store, serving `frontend`.
    pub fn with_frontend(store: Store, frontend: Frontend, options: ServerOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                started: Instant::now(),
                hub: Hub::with_limits(store, options.concurrent_runs, options.max_queued)
                    .for_workers(options.no_train),
                frontend,
                token: options.token,
                host_policy: options.host_policy,
                sockets: Arc::new(tokio::sync::Semaphore::new(options.max_sockets)),
                max_sockets: options.max_sockets,
                answers: Arc::new(
                    AnswerCache::default()
                        .with_nmf_placement(NmfPlacement::new(options.nmf_device)),
                ),
            }),
        }
    }

    /// The token API requests must carry, if one is configured.
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// Which `Host` and `Origin` names requests may carry.
    pub fn host_policy(&self) -> &HostPolicy {
        &self.inner.host_policy
    }

    /// A permit for one more websocket, or `None` when [`max_sockets`](Self::max_sockets) are
    /// open; the socket holds it until it closes.
    pub fn socket_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.inner.sockets).try_acquire_owned().ok()
    }

    /// Websockets open at once at most.
    pub fn max_sockets(&self) -> usize {
        self.inner.max_sockets
    }

    /// The dashboard this server serves.
    pub fn frontend(&self) -> &Frontend {
        &self.inner.frontend
    }

    /// Cached answers (lenses and stored data) and the permits that bound their computation.
    pub fn answers(&self) -> Arc<AnswerCache> {
        self.inner.answers.clone()
    }

    /// The run hub.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// A snapshot of what the server knows about itself (the run count is read off the
    /// async workers).
    pub async fn info(&self) -> ServerInfo {
        let run_count = self
            .inner
            .hub
            .blocking(|hub| hub.with_store(Store::run_count))
            .await
            .unwrap_or(0);
        ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: PROTOCOL_VERSION,
            uptime_secs: self.inner.started.elapsed().as_secs_f64(),
            build: build_description(),
            run_count,
        }
    }
}

/// Target and profile of this build, e.g. `x86_64-linux (debug)`.
pub fn build_description() -> String {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    format!(
        "{}-{} ({profile})",
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}
