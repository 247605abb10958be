//! The run hub: starts runs on blocking threads, stores every epoch, and fans events out to
//! websocket sessions through one broadcast channel (a slow session lags and catches up from
//! the store; it never slows training).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actiscope_protocol::{EpochSnapshot, ProbeImages, RunSummary};
use actiscope_store::{RunStatus, Store, StoreError};
use actiscope_train::{TrainConfig, TrainError, Trainer};
use tokio::sync::broadcast;

use crate::runner::{
    CaptureMode, IMAGES_KIND, RunError, SNAPSHOT_KIND, record_run, run_to_completion,
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
    /// Progress inside the epoch in flight.
    Progress {
        /// The run.
        run_id: i64,
        /// 1-based epoch.
        epoch: u32,
        /// Batches done.
        batches_done: u32,
        /// Batches in the epoch.
        batches_total: u32,
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
}

/// Runs that train at the same time by default; more are queued.
pub const DEFAULT_CONCURRENT_RUNS: usize = 2;

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    store: Arc<Mutex<Store>>,
    events: broadcast::Sender<HubEvent>,
    stops: Arc<Mutex<HashMap<i64, Arc<AtomicBool>>>>,
    slots: Arc<tokio::sync::Semaphore>,
    frames: Arc<Mutex<FrameCache>>,
}

/// Frames kept by the cache: a few runs' worth of epochs.
const FRAME_CACHE_ENTRIES: usize = 512;

/// Encoded frames of stored epochs (and of each run's images, as epoch 0) that sessions send,
/// oldest evicted first: however many sessions follow a run, each epoch is read, checked and
/// encoded once. A stored epoch never changes; a deleted run's frames are dropped.
#[derive(Default)]
struct FrameCache {
    frames: HashMap<(i64, u32), bytes::Bytes>,
    order: std::collections::VecDeque<(i64, u32)>,
}

impl FrameCache {
    fn put(&mut self, key: (i64, u32), frame: bytes::Bytes) {
        if self.frames.insert(key, frame).is_none() {
            self.order.push_back(key);
            while self.order.len() > FRAME_CACHE_ENTRIES {
                if let Some(old) = self.order.pop_front() {
                    self.frames.remove(&old);
                }
            }
        }
    }

    fn forget_run(&mut self, run_id: i64) {
        self.frames.retain(|(run, _), _| *run != run_id);
        self.order.retain(|(run, _)| *run != run_id);
    }
}

impl Hub {
    /// A hub over an open store, training up to [`DEFAULT_CONCURRENT_RUNS`] runs at once.
    pub fn new(store: Store) -> Self {
        Self::with_limit(store, DEFAULT_CONCURRENT_RUNS)
    }

    /// A hub that trains at most `concurrent_runs` runs at once and queues the others.
    pub fn with_limit(store: Store, concurrent_runs: usize) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            store: Arc::new(Mutex::new(store)),
            events,
            stops: Arc::new(Mutex::new(HashMap::new())),
            slots: Arc::new(tokio::sync::Semaphore::new(concurrent_runs.max(1))),
            frames: Arc::new(Mutex::new(FrameCache::default())),
        }
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
        let deleted = self
            .store
            .lock()
            .map_err(|_| HubError::Poisoned)?
            .delete_run(run_id)?;
        if let Ok(mut frames) = self.frames.lock() {
            frames.forget_run(run_id);
        }
        if deleted {
            let _ = self.events.send(HubEvent::RunChanged { run_id });
        }
        Ok(deleted)
    }

    /// Runs `f` with the store locked.
    pub fn with_store<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, HubError> {
        let store = self.store.lock().map_err(|_| HubError::Poisoned)?;
        Ok(f(&store)?)
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.events.subscribe()
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
    pub async fn start_run(&self, config: TrainConfig) -> Result<i64, HubError> {
        let hub = self.clone();
        let started = tokio::task::spawn_blocking(move || hub.prepare_run(config))
            .await
            .map_err(|_| HubError::Poisoned)??;
        let (run_id, mut trainer, stop) = started;
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                self.set_status(run_id, RunStatus::Queued);
                None
            }
        };
        let hub = self.clone();
        tokio::spawn(async move {
            let permit = match permit {
                Some(permit) => permit,
                None => match Arc::clone(&hub.slots).acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            if stop.load(Ordering::SeqCst) {
                hub.set_status(run_id, RunStatus::Stopped);
                hub.forget(run_id);
                return;
            }
            hub.set_status(run_id, RunStatus::Running);
            let worker = hub.clone();
            let trained = tokio::task::spawn_blocking(move || {
                worker.train(run_id, &mut trainer, &stop);
                drop(permit);
            })
            .await;
            if trained.is_err() {
                tracing::error!(run_id, "the training thread panicked");
                hub.set_status(run_id, RunStatus::Interrupted);
            }
            hub.forget(run_id);
            let _ = hub.events.send(HubEvent::RunChanged { run_id });
        });
        Ok(run_id)
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
            &mut |epoch, done, total| {
                // Progress is best effort: at most every PROGRESS_INTERVAL, and at epoch end.
                if done == total || last_progress.elapsed() >= PROGRESS_INTERVAL {
                    last_progress = std::time::Instant::now();
                    let _ = events.send(HubEvent::Progress {
                        run_id,
                        epoch: u32::try_from(epoch).unwrap_or(u32::MAX),
                        batches_done: u32::try_from(done).unwrap_or(u32::MAX),
                        batches_total: u32::try_from(total).unwrap_or(u32::MAX),
                    });
                }
            },
            &mut |snapshot| {
                let message = actiscope_protocol::ServerMessage::Epoch {
                    run_id,
                    snapshot: Box::new(snapshot.clone()),
                };
                match actiscope_protocol::encode_deflated(&message) {
                    Ok(frame) => {
                        let epoch = u32::try_from(snapshot.metrics.epoch).unwrap_or(u32::MAX);
                        let frame = bytes::Bytes::from(frame);
                        frames.cache_frame(run_id, epoch, frame.clone());
                        let _ = events.send(HubEvent::Epoch {
                            run_id,
                            epoch,
                            frame,
                        });
                    }
                    // Sessions that miss the event catch up from the store.
                    Err(err) => tracing::error!(run_id, %err, "cannot encode an epoch frame"),
                }
            },
        );
        if let Err(err) = result {
            tracing::error!(run_id, %err, "run failed");
            self.set_status(run_id, RunStatus::Interrupted);
        }
    }

    fn prepare_run(
        &self,
        config: TrainConfig,
    ) -> Result<(i64, Trainer, Arc<AtomicBool>), HubError> {
        let trainer = Trainer::new(config.clone())?;
        let run_id = {
            let mut store = self.store.lock().map_err(|_| HubError::Poisoned)?;
            record_run(&mut store, &trainer).map_err(|e| match e {
                RunError::Store(err) => HubError::Store(err),
                other => corrupt(0, 0, other),
            })?
        };
        let stop = Arc::new(AtomicBool::new(false));
        if let Ok(mut stops) = self.stops.lock() {
            stops.insert(run_id, Arc::clone(&stop));
        }
        let _ = self.events.send(HubEvent::RunChanged { run_id });
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

/// A run's summary for the API, from its stored row.
fn summary(row: &actiscope_store::RunRow) -> RunSummary {
    let config: Option<TrainConfig> = serde_json::from_str(&row.config_json).ok();
    RunSummary {
        run_id: row.id,
        name: row.name.clone(),
        dataset: config
            .as_ref()
            .map(|c| c.dataset.name())
            .unwrap_or_default(),
        model: config
            .as_ref()
            .map(|c| c.model.describe())
            .unwrap_or_default(),
        device: row.device.clone(),
        dataset_sha256: row.dataset_sha256.clone(),
        status: row.status.clone(),
        epochs_planned: config
            .as_ref()
            .map(|c| u32::try_from(c.epochs).unwrap_or(u32::MAX))
            .unwrap_or(0),
        epochs_stored: row.epochs_stored,
        hidden_layers: config
            .as_ref()
            .map(|c| match &c.model {
                actiscope_train::model::ModelSpec::Mlp { hidden, .. } => {
                    u32::try_from(hidden.len()).unwrap_or(0)
                }
                actiscope_train::model::ModelSpec::Cnn { .. } => 2,
            })
            .unwrap_or(0),
    }
}
