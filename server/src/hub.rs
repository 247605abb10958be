//! The run hub: starts runs on blocking threads, stores every epoch, and fans events out to
//! websocket sessions through one broadcast channel (a slow session lags and catches up from
//! the store; it never slows training).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use actiscope_import::{ImportError, RunDir};
use actiscope_protocol::{EpochSnapshot, ProbeImages, RunSummary};
use actiscope_store::{RunStatus, Store, StoreError};
use actiscope_train::{TrainConfig, TrainError, Trainer};
use tokio::sync::broadcast;

use crate::preparation::StoredPreparation;
use crate::runner::{
    CaptureMode, IMAGES_KIND, RunError, RunProgress, SNAPSHOT_KIND, record_run, run_to_completion,
};

/// Shortest time between two progress events of a run.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);
/// Events buffered per session before it lags and must catch up from the store.
const EVENT_BUFFER: usize = 256;

/// What happens in the hub, as seen by sessions.
#[derive(Debug, Clone)]
pub enum HubEvent {
    /// A run stored an epoch.
    Epoch {
        /// The run.
        run_id: i64,
        /// 1-based epoch number.
        epoch: u32,
        /// The [`ServerMessage::Epoch`](actiscope_protocol::ServerMessage::Epoch) frame, encoded
        /// once for every session (cloning `Bytes` shares the buffer).
        frame: bytes::Bytes,
    },
    /// Progress of a run before its next epoch is stored: its GPU being prepared, or the
    /// batches of the epoch in flight.
    Progress {
        /// The run.
        run_id: i64,
        /// The [`ServerMessage::Preparing`](actiscope_protocol::ServerMessage::Preparing) or
        /// [`ServerMessage::Progress`](actiscope_protocol::ServerMessage::Progress) frame,
        /// encoded once for every session.
        frame: bytes::Bytes,
    },
    /// A run started, ended or changed status.
    RunChanged {
        /// The run.
        run_id: i64,
    },
}

/// Errors of the hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run could not start (bad configuration or data).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Decoding a stored blob failed (a corrupt store).
    #[error("stored snapshot of run {run_id} epoch {epoch} is unreadable: {reason}")]
    Corrupt {
        /// The run.
        run_id: i64,
        /// The epoch.
        epoch: u32,
        /// Why.
        reason: String,
    },
    /// The store lock was poisoned by a panic.
    #[error("the run store is unavailable after an earlier failure")]
    Poisoned,
    /// The run is queued or training.
    #[error("run {0} is queued or training; stop it first")]
    Busy(i64),
    /// A run directory to import is unreadable or invalid.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// Every training slot is taken and the queue holds as many runs as it may.
    #[error(
        "the run queue is full: {0} runs already wait for a training slot; try again when a \
         run finishes (or stop a running one), or start the server with a larger --max-queued"
    )]
    QueueFull(usize),
    /// As many imports as the server runs at once are running.
    #[error(
        "{0} imports are running, the most at once; stop one (or let its job finish) and \
         import again"
    )]
    TooManyImports(usize),
    /// A run could not resume.
    #[error(transparent)]
    Resume(#[from] crate::resume::ResumeError),
}

/// Runs that train at the same time by default; more are queued.
pub const DEFAULT_CONCURRENT_RUNS: usize = 2;
/// Runs that may wait for a training slot by default; more are refused.
pub const DEFAULT_MAX_QUEUED: usize = 32;
/// Imports (each on a blocking thread while it follows its job) that may run at once.
pub const MAX_IMPORTS: usize = 16;
/// Connections that read the store beside the one that writes it.
const READERS: usize = 4;

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    /// The one connection that writes (training, status, deletes).
    store: Arc<Mutex<Store>>,
    /// Connections that only read, so a long write never holds up a reader (WAL).
    readers: Arc<Vec<Mutex<Store>>>,
    next_reader: Arc<AtomicUsize>,
    /// This process, as the owner of the runs it trains or queued.
    owner: Arc<str>,
    events: broadcast::Sender<HubEvent>,
    stops: Arc<Mutex<HashMap<i64, Arc<AtomicBool>>>>,
    /// The latest [`ServerMessage::Preparing`](actiscope_protocol::ServerMessage::Preparing)
    /// frame of each run training here, or that a worker trains ([`crate::watch`]), kept
    /// until the run ends, so a session that subscribes late still learns how the GPU's
    /// preparation went.
    preparations: Arc<Mutex<HashMap<i64, bytes::Bytes>>>,
    slots: Arc<tokio::sync::Semaphore>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    /// Runs started here are queued in the store for workers instead of trained here.
    for_workers: bool,
    imports: Arc<AtomicUsize>,
    frames: Arc<Mutex<FrameCache>>,
    runs_cache: Arc<RunsCache>,
}

/// The run list and its encoded [`ServerMessage::Runs`](actiscope_protocol::ServerMessage::Runs)
/// frame, read once per change however many sessions ask: every session asks after every
/// [`HubEvent::RunChanged`].
#[derive(Default)]
pub(crate) struct RunsCache {
    /// Bumped on every change; an entry read before a bump is never used after it.
    generation: std::sync::atomic::AtomicU64,
    entry: Mutex<Option<RunsEntry>>,
}

/// The run list as of one generation.
#[derive(Clone)]
pub struct RunsEntry {
    generation: u64,
    /// Every run, newest first.
    pub runs: Arc<Vec<RunSummary>>,
    /// `ServerMessage::Runs` of them, encoded.
    pub frame: bytes::Bytes,
}

impl RunsCache {
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Bytes of encoded frames the cache keeps: a few long runs' worth of epochs.
const FRAME_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Encoded frames of stored epochs (and of each run's images, as epoch 0) that sessions send,
/// oldest evicted first once they hold more than their byte budget: however many sessions
/// follow a run, each epoch is read, checked and encoded once. A stored epoch never changes;
/// a deleted run's frames are dropped.
pub(crate) struct FrameCache {
    frames: HashMap<(i64, u32), bytes::Bytes>,
    order: std::collections::VecDeque<(i64, u32)>,
    bytes: usize,
    budget_bytes: usize,
}

impl FrameCache {
    fn with_budget(budget_bytes: usize) -> Self {
        Self {
            frames: HashMap::new(),
            order: std::collections::VecDeque::new(),
            bytes: 0,
            budget_bytes,
        }
    }

    pub(crate) fn put(&mut self, key: (i64, u32), frame: bytes::Bytes) {
        if frame.len() > self.budget_bytes {
            return;
        }
        let added = frame.len();
        match self.frames.insert(key, frame) {
            Some(old) => self.bytes = self.bytes.saturating_sub(old.len()) + added,
            None => {
                self.bytes += added;
                self.order.push_back(key);
            }
        }
        while self.bytes > self.budget_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(frame) = self.frames.remove(&old) {
                self.bytes = self.bytes.saturating_sub(frame.len());
            }
        }
    }

    fn forget_run(&mut self, run_id: i64) {
        self.frames.retain(|(run, _), _| *run != run_id);
        self.order.retain(|(run, _)| *run != run_id);
        self.bytes = self.frames.values().map(bytes::Bytes::len).sum();
    }
}

/// A place in the run queue (or among the imports running), given back when dropped.
struct QueuePlace(Arc<AtomicUsize>);

impl QueuePlace {
    /// A place, unless `max` runs already wait.
    fn take(queued: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(queued)))
    }
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hub {
    /// A hub over an open store, training up to [`DEFAULT_CONCURRENT_RUNS`] runs at once.
    pub fn new(store: Store) -> Self {
        Self::with_limit(store, DEFAULT_CONCURRENT_RUNS)
    }

    /// A hub that trains at most `concurrent_runs` runs at once and queues up to
    /// [`DEFAULT_MAX_QUEUED`] others.
    pub fn with_limit(store: Store, concurrent_runs: usize) -> Self {
        Self::with_limits(store, concurrent_runs, DEFAULT_MAX_QUEUED)
    }

    /// A hub that trains at most `concurrent_runs` runs at once, queues up to `max_queued`
    /// more and refuses others with [`HubError::QueueFull`]. Reads go to connections of their
    /// own when the store is a file. A thread says every
    /// [`HEARTBEAT_INTERVAL`](crate::owner::HEARTBEAT_INTERVAL) that this process still owns
    /// its runs, and marks interrupted the runs of owners that are gone, for as long as the
    /// hub lives.
    pub fn with_limits(store: Store, concurrent_runs: usize, max_queued: usize) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let readers = (0..READERS)
            .map_while(|_| match store.reopen()? {
                Ok(reader) => Some(Mutex::new(reader)),
                Err(err) => {
                    tracing::warn!(%err, "cannot open a reading connection; reads share the writer's");
                    None
                }
            })
            .collect();
        let hub = Self {
            store: Arc::new(Mutex::new(store)),
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            owner: crate::owner::this_process().into(),
            events,
            stops: Arc::new(Mutex::new(HashMap::new())),
            preparations: Arc::new(Mutex::new(HashMap::new())),
            slots: Arc::new(tokio::sync::Semaphore::new(concurrent_runs.max(1))),
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued,
            for_workers: false,
            imports: Arc::new(AtomicUsize::new(0)),
            frames: Arc::new(Mutex::new(FrameCache::with_budget(FRAME_CACHE_BYTES))),
            runs_cache: Arc::default(),
        };
        let store = Arc::downgrade(&hub.store);
        let (owner, events) = (Arc::clone(&hub.owner), hub.events.clone());
        let runs_cache = Arc::clone(&hub.runs_cache);
        let spawned = std::thread::Builder::new()
            .name("actiscope-heartbeat".to_owned())
            .spawn(move || heartbeat_loop(&store, &owner, &events, &runs_cache));
        if let Err(err) = spawned {
            tracing::error!(%err, "cannot start the heartbeat thread");
        }
        // Other processes writing the same file (`actiscope train` beside `serve`).
        let watcher = hub.store.lock().ok().and_then(|store| store.reopen());
        match watcher {
            Some(Ok(connection)) => {
                let watched = crate::watch::Watched {
                    writer: Arc::downgrade(&hub.store),
                    events: hub.events.clone(),
                    frames: Arc::clone(&hub.frames),
                    runs_cache: Arc::clone(&hub.runs_cache),
                    local: Arc::clone(&hub.stops),
                    preparations: Arc::clone(&hub.preparations),
                };
                let spawned = std::thread::Builder::new()
                    .name("actiscope-watch".to_owned())
                    .spawn(move || crate::watch::watch(connection, watched));
                if let Err(err) = spawned {
                    tracing::error!(%err, "cannot start the store watcher");
                }
            }
            Some(Err(err)) => {
                tracing::warn!(%err, "cannot watch the store for other writers");
            }
            None => {}
        }
        hub
    }

    /// This hub, set to queue the runs started through it in the store for `actiscope
    /// worker`s (`serve --no-train`) when `for_workers` is true.
    pub fn for_workers(mut self, for_workers: bool) -> Self {
        self.for_workers = for_workers;
        self
    }

    /// The id under which this process owns its runs in the store.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs `f` with this hub on the blocking pool: how async handlers reach the store without
    /// holding up the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Hub) -> Result<T, HubError> + Send + 'static,
    ) -> Result<T, HubError> {
        let hub = self.clone();
        tokio::task::spawn_blocking(move || f(&hub))
            .await
            .map_err(|_| HubError::Poisoned)?
    }

    fn cached_frame(&self, run_id: i64, epoch: u32) -> Option<bytes::Bytes> {
        self.frames
            .lock()
            .ok()?
            .frames
            .get(&(run_id, epoch))
            .cloned()
    }

    fn cache_frame(&self, run_id: i64, epoch: u32, frame: bytes::Bytes) {
        if let Ok(mut frames) = self.frames.lock() {
            frames.put((run_id, epoch), frame);
        }
    }

    /// The [`ServerMessage::Epoch`](actiscope_protocol::ServerMessage::Epoch) frames of run
    /// `run_id`'s stored epochs from `from_epoch` on, in order, as `(epoch, frame)`: from the
    /// frame cache, else read, checked and encoded once.
    pub fn epoch_frames(
        &self,
        run_id: i64,
        from_epoch: u32,
    ) -> Result<Vec<(u32, bytes::Bytes)>, HubError> {
        let mut frames = Vec::new();
        let mut epoch = from_epoch.max(1);
        while let Some(frame) = self.cached_frame(run_id, epoch) {
            frames.push((epoch, frame));
            epoch += 1;
        }
        for snapshot in self.stored_epochs(run_id, epoch)? {
            let epoch = u32::try_from(snapshot.metrics.epoch).unwrap_or(u32::MAX);
            let message = actiscope_protocol::ServerMessage::Epoch {
                run_id,
                snapshot: Box::new(snapshot),
            };
            let frame = bytes::Bytes::from(
                actiscope_protocol::encode_deflated(&message)
                    .map_err(|e| corrupt(run_id, epoch, e))?,
            );
            self.cache_frame(run_id, epoch, frame.clone());
            frames.push((epoch, frame));
        }
        Ok(frames)
    }

    /// The [`ServerMessage::Images`](actiscope_protocol::ServerMessage::Images) frame of run
    /// `run_id`, or `None` when it stored no images; cached like the epochs.
    pub fn images_frame(&self, run_id: i64) -> Result<Option<bytes::Bytes>, HubError> {
        if let Some(frame) = self.cached_frame(run_id, 0) {
            return Ok(Some(frame));
        }
        let Some(images) = self.images(run_id)? else {
            return Ok(None);
        };
        let message = actiscope_protocol::ServerMessage::Images { run_id, images };
        let frame = bytes::Bytes::from(
            actiscope_protocol::encode_deflated(&message).map_err(|e| corrupt(run_id, 0, e))?,
        );
        self.cache_frame(run_id, 0, frame.clone());
        Ok(Some(frame))
    }

    fn set_status(&self, run_id: i64, status: RunStatus) {
        if let Ok(store) = self.store.lock()
            && let Err(err) = store.set_status(run_id, status)
        {
            tracing::error!(run_id, %err, "cannot record the run's status");
        }
        self.run_changed(run_id);
    }

    /// Announces that run `run_id` started, ended, changed status or was deleted: the cached
    /// run list is dropped first, so a session that reacts reads the new state.
    fn run_changed(&self, run_id: i64) {
        self.runs_cache.invalidate();
        let _ = self.events.send(HubEvent::RunChanged { run_id });
    }

    /// Deletes a run that is not training; `Ok(false)` when there is no such run.
    pub fn delete_run(&self, run_id: i64) -> Result<bool, HubError> {
        if self
            .stops
            .lock()
            .map_err(|_| HubError::Poisoned)?
            .contains_key(&run_id)
        {
            return Err(HubError::Busy(run_id));
        }
        let deleted = self.with_writer(|store| store.delete_run(run_id))?;
        if let Ok(mut frames) = self.frames.lock() {
            frames.forget_run(run_id);
        }
        if deleted {
            self.run_changed(run_id);
        }
        Ok(deleted)
    }

    /// Runs `f` on a reading connection (the writer's when the store is in memory); blocks,
    /// so call it from blocking code or through [`blocking`](Self::blocking).
    pub fn with_store<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, HubError> {
        let count = self.readers.len();
        if count == 0 {
            let store = self.store.lock().map_err(|_| HubError::Poisoned)?;
            return Ok(f(&store)?);
        }
        let first = self.next_reader.fetch_add(1, Ordering::Relaxed);
        // A free reader if there is one, else wait for the next in turn.
        let free = (0..count)
            .filter_map(|i| self.readers.get((first + i) % count))
            .find_map(|reader| reader.try_lock().ok());
        let store = match free {
            Some(store) => store,
            None => self
                .readers
                .get(first % count)
                .ok_or(HubError::Poisoned)?
                .lock()
                .map_err(|_| HubError::Poisoned)?,
        };
        Ok(f(&store)?)
    }

    /// Runs `f` with the writing connection locked.
    pub fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, HubError> {
        let mut store = self.store.lock().map_err(|_| HubError::Poisoned)?;
        Ok(f(&mut store)?)
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    /// Every run, newest first, with its encoded `Runs` frame: read from the store once per
    /// change (blocking).
    pub fn runs_entry(&self) -> Result<RunsEntry, HubError> {
        // Held while the list is read: the sessions that all ask after the same change wait
        // for the first one's answer instead of each reading the store.
        let mut cached = self
            .runs_cache
            .entry
            .lock()
            .map_err(|_| HubError::Poisoned)?;
        let generation = self.runs_cache.generation.load(Ordering::SeqCst);
        if let Some(entry) = cached.as_ref().filter(|e| e.generation == generation) {
            return Ok(entry.clone());
        }
        let runs = self.runs()?;
        let frame =
            actiscope_protocol::encode(&actiscope_protocol::ServerMessage::Runs(runs.clone()))
                .map_err(|e| corrupt(0, 0, e))?;
        let entry = RunsEntry {
            generation,
            runs: Arc::new(runs),
            frame: frame.into(),
        };
        // Kept only if nothing changed while it was read.
        if self.runs_cache.generation.load(Ordering::SeqCst) == generation {
            *cached = Some(entry.clone());
        }
        Ok(entry)
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunSummary>, HubError> {
        Ok(self.with_store(|s| s.runs())?.iter().map(summary).collect())
    }

    /// One run's summary, or `None` for an unknown id.
    pub fn run(&self, run_id: i64) -> Result<Option<RunSummary>, HubError> {
        Ok(self.with_store(|s| s.run(run_id))?.as_ref().map(summary))
    }

    /// The stored snapshots of `run_id` for epochs `from_epoch..`, in order.
    pub fn stored_epochs(
        &self,
        run_id: i64,
        from_epoch: u32,
    ) -> Result<Vec<EpochSnapshot>, HubError> {
        let blobs = self.with_store(|s| s.snapshots_from(run_id, SNAPSHOT_KIND, from_epoch))?;
        blobs
            .into_iter()
            .map(|(epoch, blob)| decode_stored(&blob, run_id, epoch))
            .collect()
    }

    /// The stored blob of `kind` for run `run_id`, epoch `epoch` (0 for what a run stores
    /// once), decoded; `None` when there is none, [`HubError::Corrupt`] naming the run and
    /// epoch when it cannot be decoded.
    pub fn stored_blob<T: serde::de::DeserializeOwned>(
        &self,
        run_id: i64,
        epoch: u32,
        kind: &str,
    ) -> Result<Option<T>, HubError> {
        self.with_store(|s| s.snapshot(run_id, epoch, kind))?
            .map(|blob| decode_stored(&blob, run_id, epoch))
            .transpose()
    }

    /// One stored snapshot, or `None` when the run has no such epoch.
    pub fn stored_epoch(&self, run_id: i64, epoch: u32) -> Result<Option<EpochSnapshot>, HubError> {
        self.stored_blob(run_id, epoch, SNAPSHOT_KIND)
    }

    /// The probe images of a run, when stored.
    pub fn images(&self, run_id: i64) -> Result<Option<ProbeImages>, HubError> {
        self.stored_blob(run_id, 0, IMAGES_KIND)
    }

    /// Validates `config`, loads its data, records the run and trains it on a blocking
    /// thread. Returns the new run's id once it is recorded.
    /// Refused with [`HubError::QueueFull`] when every slot is taken and the queue is full.
    pub async fn start_run(&self, config: TrainConfig) -> Result<i64, HubError> {
        if self.for_workers {
            return self
                .blocking(move |hub| {
                    let config_json =
                        serde_json::to_string(&config).map_err(|e| corrupt(0, 0, e))?;
                    let name = crate::runner::run_name(&config);
                    let run_id =
                        hub.with_writer(|store| store.queue_for_workers(&name, &config_json))?;
                    hub.run_changed(run_id);
                    Ok(run_id)
                })
                .await;
        }
        self.launch(move |hub| hub.prepare_run(config)).await
    }

    /// Restores a stopped or interrupted run from its newest checkpoint (see
    /// [`crate::resume`]) and trains its remaining epochs like a started run: at once when a
    /// slot is free, else queued; on a hub for workers, puts it in their queue instead.
    /// Epochs stored after the checkpoint are dropped first (and their cached frames), so
    /// each epoch is stored and sent once.
    pub async fn resume_run(&self, run_id: i64) -> Result<i64, HubError> {
        if self.for_workers {
            // `serve --no-train`: checked here, resumed by the next worker that claims it.
            return self
                .blocking(move |hub| {
                    let trained_here = hub
                        .stops
                        .lock()
                        .map_err(|_| HubError::Poisoned)?
                        .contains_key(&run_id);
                    {
                        let store = hub.store.lock().map_err(|_| HubError::Poisoned)?;
                        crate::resume::check(&store, run_id, trained_here)?;
                        store.queue_again_for_workers(run_id)?;
                    }
                    hub.run_changed(run_id);
                    Ok(run_id)
                })
                .await;
        }
        self.launch(move |hub| hub.prepare_resume(run_id)).await
    }

    /// Prepares a run with `prepare` on a blocking thread (recording or restoring it), then
    /// trains it on a blocking thread once a slot is free; returns its id once prepared.
    /// Refused with [`HubError::QueueFull`] when every slot is taken and the queue is full.
    async fn launch(
        &self,
        prepare: impl FnOnce(&Hub) -> Result<(i64, Trainer, Arc<AtomicBool>), HubError> + Send + 'static,
    ) -> Result<i64, HubError> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok();
        let place = match permit {
            Some(_) => None,
            None => Some(
                QueuePlace::take(&self.queued, self.max_queued)
                    .ok_or(HubError::QueueFull(self.max_queued))?,
            ),
        };
        let queued = permit.is_none();
        let started = self
            .blocking(move |hub| {
                let started = prepare(hub)?;
                if queued {
                    hub.set_status(started.0, RunStatus::Queued);
                }
                Ok(started)
            })
            .await?;
        let (run_id, mut trainer, stop) = started;
        let hub = self.clone();
        tokio::spawn(async move {
            let permit = match permit {
                Some(permit) => permit,
                None => match Arc::clone(&hub.slots).acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            drop(place);
            let worker = hub.clone();
            let trained = tokio::task::spawn_blocking(move || {
                if stop.load(Ordering::SeqCst) {
                    worker.set_status(run_id, RunStatus::Stopped);
                } else {
                    worker.set_status(run_id, RunStatus::Running);
                    worker.train(run_id, &mut trainer, &stop);
                }
                drop(permit);
            })
            .await;
            hub.finish(run_id, trained.is_err(), "training").await;
        });
        Ok(run_id)
    }

    /// After run `run_id`'s training or import thread (`what`) ended: marks the run
    /// interrupted when that thread `panicked`, forgets its stop flag and announces it.
    async fn finish(&self, run_id: i64, panicked: bool, what: &str) {
        if panicked {
            tracing::error!(run_id, "the {what} thread panicked");
            let _ = self
                .blocking(move |hub| {
                    hub.set_status(run_id, RunStatus::Interrupted);
                    Ok(())
                })
                .await;
        }
        self.forget(run_id);
        self.run_changed(run_id);
    }

    fn forget(&self, run_id: i64) {
        if let Ok(mut stops) = self.stops.lock() {
            stops.remove(&run_id);
        }
    }

    /// Trains on the current (blocking) thread, broadcasting progress and epochs.
    fn train(&self, run_id: i64, trainer: &mut Trainer, stop: &AtomicBool) {
        let events = self.events.clone();
        let frames = self.clone();
        let mut last_progress = std::time::Instant::now();
        let result = run_to_completion(
            trainer,
            &self.store,
            run_id,
            stop,
            CaptureMode::Beside,
            &mut |progress| {
                let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                let (frame, keep) = match progress {
                    // A handful of steps, each worth telling, and the latest kept.
                    RunProgress::Preparing(step) => {
                        (StoredPreparation::of(step).frame(run_id), true)
                    }
                    // Batches are best effort, at most every PROGRESS_INTERVAL: the epoch's
                    // own frame says when it ended, so short epochs cost every session one
                    // frame each.
                    RunProgress::Batches { epoch, done, total } => {
                        if last_progress.elapsed() < PROGRESS_INTERVAL {
                            return;
                        }
                        last_progress = std::time::Instant::now();
                        let message = actiscope_protocol::ServerMessage::Progress {
                            run_id,
                            epoch: count(epoch),
                            batches_done: count(done),
                            batches_total: count(total),
                        };
                        let frame = actiscope_protocol::encode(&message).ok();
                        (frame.map(bytes::Bytes::from), false)
                    }
                };
                let Some(frame) = frame else {
                    return;
                };
                if keep && let Ok(mut kept) = self.preparations.lock() {
                    kept.insert(run_id, frame.clone());
                }
                let _ = events.send(HubEvent::Progress { run_id, frame });
            },
            &mut |snapshot| frames.announce_epoch(run_id, snapshot),
        );
        if let Ok(mut kept) = self.preparations.lock() {
            kept.remove(&run_id);
        }
        if let Err(err) = result {
            tracing::error!(run_id, %err, "run failed");
            self.set_status(run_id, RunStatus::Interrupted);
        }
    }

    /// The latest [`ServerMessage::Preparing`](actiscope_protocol::ServerMessage::Preparing)
    /// frame of run `run_id` while it trains on a GPU, here or in a worker: during the
    /// preparation and after.
    pub fn preparing_frame(&self, run_id: i64) -> Option<bytes::Bytes> {
        self.preparations.lock().ok()?.get(&run_id).cloned()
    }

    /// Tells every session that run `run_id` stored `snapshot`: the epoch's frame is encoded
    /// (deflated) once, cached and broadcast.
    fn announce_epoch(&self, run_id: i64, snapshot: &EpochSnapshot) {
        broadcast_epoch(
            &self.events,
            &self.frames,
            &self.runs_cache,
            run_id,
            snapshot.clone(),
        );
    }

    /// Imports the run directory `dir` (see [`crate::importer`]) on a blocking thread,
    /// streaming each epoch to the sessions as it is stored; with `follow`, keeps importing
    /// the epochs a job is still writing until it writes `finished` or the run is stopped.
    /// Returns the new run's id once it is recorded; a directory that cannot be imported is
    /// refused before anything is stored ([`HubError::Import`]).
    pub async fn start_import(&self, dir: PathBuf, follow: bool) -> Result<i64, HubError> {
        // A place among the imports running, given back when this one ends (or fails to start).
        let place = QueuePlace::take(&self.imports, MAX_IMPORTS)
            .ok_or(HubError::TooManyImports(MAX_IMPORTS))?;
        let (run_id, run, mut units, stop) = self
            .blocking(move |hub| {
                let run = RunDir::open(&dir)?;
                let (entries, units) = crate::importer::check(&run)?;
                // A probe too large for one stored epoch is refused now, not after the run
                // is recorded.
                crate::importer::probe_for(&run, &units)?;
                if entries.is_empty() && !follow {
                    return Err(HubError::Import(ImportError::invalid(
                        &dir,
                        None,
                        "holds no epoch yet; follow it to wait for them",
                    )));
                }
                let run_id = {
                    let mut store = hub.store.lock().map_err(|_| HubError::Poisoned)?;
                    crate::importer::record(&mut store, &run, &units, entries.len(), &hub.owner)
                        .map_err(|e| match e {
                            RunError::Store(err) => HubError::Store(err),
                            other => corrupt(0, 0, other),
                        })?
                };
                let stop = Arc::new(AtomicBool::new(false));
                if let Ok(mut stops) = hub.stops.lock() {
                    stops.insert(run_id, Arc::clone(&stop));
                }
                hub.run_changed(run_id);
                Ok((run_id, run, units, stop))
            })
            .await?;
        let hub = self.clone();
        tokio::spawn(async move {
            let worker = hub.clone();
            let imported = tokio::task::spawn_blocking(move || {
                let mode = if follow {
                    crate::importer::Mode::Follow { stop: &stop }
                } else {
                    crate::importer::Mode::Once { stop: &stop }
                };
                let result = crate::importer::import_epochs(
                    &run,
                    &mut units,
                    &worker.store,
                    run_id,
                    &mode,
                    &mut |snapshot| worker.announce_epoch(run_id, snapshot),
                );
                let status = match result {
                    Ok(imported) if imported.stopped => RunStatus::Stopped,
                    Ok(_) => RunStatus::Completed,
                    Err(err) => {
                        tracing::error!(run_id, %err, "import failed");
                        RunStatus::Interrupted
                    }
                };
                worker.set_status(run_id, status);
            })
            .await;
            hub.finish(run_id, imported.is_err(), "import").await;
            drop(place);
        });
        Ok(run_id)
    }

    fn prepare_run(
        &self,
        config: TrainConfig,
    ) -> Result<(i64, Trainer, Arc<AtomicBool>), HubError> {
        let trainer = Trainer::new(config.clone())?;
        let run_id = {
            let mut store = self.store.lock().map_err(|_| HubError::Poisoned)?;
            record_run(&mut store, &trainer, &self.owner).map_err(|e| match e {
                RunError::Store(err) => HubError::Store(err),
                other => corrupt(0, 0, other),
            })?
        };
        let stop = Arc::new(AtomicBool::new(false));
        if let Ok(mut stops) = self.stops.lock() {
            stops.insert(run_id, Arc::clone(&stop));
        }
        self.run_changed(run_id);
        Ok((run_id, trainer, stop))
    }

    /// Restores run `run_id` for this hub's process and registers its stop flag. The flag is
    /// registered first, so a second resume, a delete or a stop sees the run as busy while its
    /// data load and checkpoint run outside the store's lock.
    fn prepare_resume(&self, run_id: i64) -> Result<(i64, Trainer, Arc<AtomicBool>), HubError> {
        let stop = Arc::new(AtomicBool::new(false));
        // Checked and claimed under one lock; the store is locked only after it is released.
        let busy = {
            let mut stops = self.stops.lock().map_err(|_| HubError::Poisoned)?;
            let busy = stops.contains_key(&run_id);
            if !busy {
                stops.insert(run_id, Arc::clone(&stop));
            }
            busy
        };
        if busy {
            let store = self.store.lock().map_err(|_| HubError::Poisoned)?;
            return Err(match crate::resume::check(&store, run_id, true) {
                Err(err) => err.into(),
                Ok(_) => HubError::Busy(run_id),
            });
        }
        let prepared = (|| {
            let plan = {
                let store = self.store.lock().map_err(|_| HubError::Poisoned)?;
                crate::resume::check(&store, run_id, false)?
            };
            let trainer = crate::resume::build(&plan)?;
            let mut store = self.store.lock().map_err(|_| HubError::Poisoned)?;
            let dropped =
                crate::resume::commit(&mut store, run_id, plan.checkpoint_epoch, &self.owner)?;
            Ok::<_, HubError>((trainer, dropped))
        })();
        let (trainer, dropped) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                self.forget(run_id);
                return Err(err);
            }
        };
        if dropped > 0
            && let Ok(mut frames) = self.frames.lock()
        {
            frames.forget_run(run_id);
        }
        self.run_changed(run_id);
        Ok((run_id, trainer, stop))
    }

    /// Asks a running run to stop after its epoch in flight; returns whether it was running.
    pub fn stop_run(&self, run_id: i64) -> bool {
        self.stops
            .lock()
            .ok()
            .and_then(|stops| {
                stops
                    .get(&run_id)
                    .map(|flag| flag.store(true, Ordering::SeqCst))
            })
            .is_some()
    }
}

/// Announces that run `run_id` stored `snapshot`: the run list goes stale, and the epoch's
/// frame is encoded (deflated) once, cached and broadcast. The one way epochs reach sessions,
/// whether this process stored them or another did ([`crate::watch`]).
pub(crate) fn broadcast_epoch(
    events: &broadcast::Sender<HubEvent>,
    frames: &Mutex<FrameCache>,
    runs_cache: &RunsCache,
    run_id: i64,
    snapshot: EpochSnapshot,
) {
    runs_cache.invalidate();
    let epoch = u32::try_from(snapshot.metrics.epoch).unwrap_or(u32::MAX);
    let message = actiscope_protocol::ServerMessage::Epoch {
        run_id,
        snapshot: Box::new(snapshot),
    };
    match actiscope_protocol::encode_deflated(&message) {
        Ok(frame) => {
            let frame = bytes::Bytes::from(frame);
            if let Ok(mut frames) = frames.lock() {
                frames.put((run_id, epoch), frame.clone());
            }
            let _ = events.send(HubEvent::Epoch {
                run_id,
                epoch,
                frame,
            });
        }
        // Sessions that miss the event catch up from the store.
        Err(err) => tracing::error!(run_id, %err, "cannot encode an epoch frame"),
    }
}

/// Until the hub's store is dropped: says every heartbeat interval that `owner` is alive, and
/// marks interrupted the runs of owners that are gone (a `train` process killed beside the
/// server), announcing each.
fn heartbeat_loop(
    store: &Weak<Mutex<Store>>,
    owner: &str,
    events: &broadcast::Sender<HubEvent>,
    runs_cache: &RunsCache,
) {
    loop {
        std::thread::sleep(crate::owner::HEARTBEAT_INTERVAL);
        let Some(store) = store.upgrade() else {
            return;
        };
        let Ok(mut store) = store.lock() else {
            tracing::error!(
                "the run store failed earlier: this server's runs get no more heartbeats and \
                 will look interrupted to other processes"
            );
            return;
        };
        if let Err(err) = store.heartbeat(owner) {
            tracing::warn!(%err, "cannot record this server's heartbeat");
        }
        match crate::owner::mark_orphans(&mut store, owner) {
            Ok(marked) => {
                for run_id in marked {
                    tracing::warn!(run_id, "its process is gone: marked interrupted");
                    runs_cache.invalidate();
                    let _ = events.send(HubEvent::RunChanged { run_id });
                }
            }
            Err(err) => tracing::warn!(%err, "cannot check for runs of processes that are gone"),
        }
        // A dead worker's run waits for the next worker, and says so.
        match crate::owner::requeue_orphans(&mut store, owner) {
            Ok(requeued) => {
                for run_id in requeued {
                    tracing::warn!(run_id, "its worker is gone: back in the queue");
                    runs_cache.invalidate();
                    let _ = events.send(HubEvent::RunChanged { run_id });
                }
            }
            Err(err) => tracing::warn!(%err, "cannot check for runs of workers that are gone"),
        }
    }
}

/// A [`HubError::Corrupt`] for run `run_id`, epoch `epoch`.
pub fn corrupt(run_id: i64, epoch: u32, reason: impl ToString) -> HubError {
    HubError::Corrupt {
        run_id,
        epoch,
        reason: reason.to_string(),
    }
}

/// Decodes a blob stored for run `run_id`, epoch `epoch`; the one place where an unreadable
/// blob becomes [`HubError::Corrupt`].
pub fn decode_stored<T: serde::de::DeserializeOwned>(
    blob: &[u8],
    run_id: i64,
    epoch: u32,
) -> Result<T, HubError> {
    actiscope_protocol::decode(blob).map_err(|e| corrupt(run_id, epoch, e))
}

/// A run's summary for the API, from its stored row: a trained run's configuration, or an
/// imported run's.
fn summary(row: &actiscope_store::RunRow) -> RunSummary {
    let config: Option<TrainConfig> = serde_json::from_str(&row.config_json).ok();
    let imported: Option<crate::importer::ImportedConfig> = config
        .is_none()
        .then(|| serde_json::from_str(&row.config_json).ok())
        .flatten();
    let (dataset, model, epochs_planned, hidden_layers) = match (&config, &imported) {
        (Some(c), _) => (
            c.dataset.name(),
            c.model.describe(),
            u32::try_from(c.epochs).unwrap_or(u32::MAX),
            match &c.model {
                actiscope_train::model::ModelSpec::Mlp { hidden, .. } => {
                    u32::try_from(hidden.len()).unwrap_or(0)
                }
                actiscope_train::model::ModelSpec::Cnn { .. } => 2,
            },
        ),
        (None, Some(i)) => (
            format!(
                "{} instances from {}",
                i.imported.instances, i.imported.directory
            ),
            i.imported.describe(),
            // An import knows no plan: what it found, or what it has stored since.
            u32::try_from(i.imported.epochs_found)
                .unwrap_or(u32::MAX)
                .max(row.epochs_stored),
            u32::try_from(i.imported.layers.len()).unwrap_or(0),
        ),
        (None, None) => (String::new(), String::new(), 0, 0),
    };
    RunSummary {
        run_id: row.id,
        name: row.name.clone(),
        dataset,
        model,
        device: row.device.clone(),
        dataset_sha256: row.dataset_sha256.clone(),
        status: row.status.clone(),
        epochs_planned,
        epochs_stored: row.epochs_stored,
        hidden_layers,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn reads_go_on_while_the_writer_is_busy() {
        let dir = tempfile::tempdir().expect("dir");
        let hub = Hub::new(Store::open(&dir.path().join("runs.db")).expect("store"));
        let (held, is_held) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let writer = hub.clone();
        // A long write (a DELETE of a large run) holds the writing connection.
        let busy = std::thread::spawn(move || {
            writer.with_writer(|_| {
                let _ = held.send(());
                let _ = released.recv();
                Ok(())
            })
        });
        is_held.recv().expect("the writer is held");
        let (answered, answer) = mpsc::channel();
        let reader = hub.clone();
        std::thread::spawn(move || {
            let _ = answered.send(reader.runs().map(|runs| runs.len()));
        });
        let read = answer.recv_timeout(Duration::from_secs(5));
        let _ = release.send(());
        busy.join().expect("writer").expect("write");
        assert_eq!(
            read.expect("the read did not wait for the writer")
                .expect("read"),
            0
        );
    }

    #[test]
    fn frames_are_kept_within_their_byte_budget_oldest_out_first() {
        let mut cache = FrameCache::with_budget(1000);
        let frame = |n: usize| bytes::Bytes::from(vec![0u8; n]);
        for epoch in 1..=5 {
            cache.put((1, epoch), frame(300));
            assert!(cache.bytes <= 1000);
        }
        assert_eq!(cache.bytes, 900);
        assert!(!cache.frames.contains_key(&(1, 2)));
        assert!(cache.frames.contains_key(&(1, 5)));
        cache.put((2, 1), frame(2000));
        assert!(
            !cache.frames.contains_key(&(2, 1)),
            "larger than the budget"
        );
        cache.forget_run(1);
        assert_eq!(cache.bytes, 0);
    }
}
