//! Following what other processes write to the same store: an `actiscope train` or
//! `actiscope import` beside `actiscope serve`, or workers and other servers on other machines
//! sharing a PostgreSQL database, stream live too. A thread waits for another connection's
//! commit ([`Store::wait_for_change`]: SQLite's `data_version` looked at every
//! [`WATCH_INTERVAL`], PostgreSQL's `NOTIFY` as it lands); when one came, it compares the run
//! list with what it saw last and announces new runs, changed statuses, and the preparation
//! steps and new epochs of runs this process does not train itself.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actiscope_protocol::EpochSnapshot;
use actiscope_store::{RunStatus, Store};
use tokio::sync::broadcast;

use crate::hub::{FrameCache, HubEvent, RunsCache, broadcast_epoch, decode_stored};
use crate::preparation::StoredPreparation;
use crate::runner::SNAPSHOT_KIND;

/// How often a SQLite store is checked for other writers' commits (and how long a PostgreSQL
/// watcher waits for a notification before it looks whether the hub is still there).
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// What the watcher needs of the hub, without keeping the hub alive.
pub(crate) struct Watched {
    /// The hub's writing connection: the watcher ends when it is gone.
    pub writer: Weak<Mutex<Store>>,
    pub events: broadcast::Sender<HubEvent>,
    pub frames: Arc<Mutex<FrameCache>>,
    pub runs_cache: Arc<RunsCache>,
    /// Runs this process trains or imports (it announces their epochs itself).
    pub local: Arc<Mutex<HashMap<i64, Arc<AtomicBool>>>>,
    /// The hub's latest `Preparing` frame of each run (see `Hub::preparing_frame`).
    pub preparations: Arc<Mutex<HashMap<i64, bytes::Bytes>>>,
}

/// What the watcher remembers of a run between looks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: String,
    epochs: u32,
    preparation_json: String,
}

/// Watches the store through `connection` (a connection of its own) until the hub is gone.
pub(crate) fn watch(connection: Store, watched: Watched) {
    let mut known: HashMap<i64, Seen> = seen(&connection).unwrap_or_default();
    // Runs other processes were preparing before this one looked: no session to tell yet,
    // but the ones to come will be.
    for (&run_id, run) in &known {
        announce_preparation(&watched, run_id, run);
    }
    loop {
        if watched.writer.upgrade().is_none() {
            return;
        }
        match connection.wait_for_change(WATCH_INTERVAL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(err) => {
                // The next call opens a PostgreSQL connection again; a file is retried.
                tracing::warn!(%err, "cannot follow the store's other writers");
                std::thread::sleep(WATCH_INTERVAL);
                continue;
            }
        }
        let Ok(now) = seen(&connection) else {
            continue;
        };
        let local: HashSet<i64> = watched
            .local
            .lock()
            .map(|runs| runs.keys().copied().collect())
            .unwrap_or_default();
        let mut changed = Vec::new();
        for (&run_id, run) in &now {
            let before = known.get(&run_id);
            let status_changed = before.is_none_or(|b| b.status != run.status);
            if status_changed {
                changed.push(run_id);
            }
            if local.contains(&run_id) {
                continue;
            }
            if before.is_none_or(|b| b.preparation_json != run.preparation_json) {
                announce_preparation(&watched, run_id, run);
            } else if status_changed && run.status != RunStatus::Running.as_str() {
                forget_preparation(&watched, run_id);
            }
            let from = before.map_or(0, |b| b.epochs);
            if run.epochs > from {
                announce_epochs(&connection, &watched, run_id, from + 1);
            }
        }
        for &run_id in known.keys().filter(|id| !now.contains_key(id)) {
            // Deleted.
            forget_preparation(&watched, run_id);
            changed.push(run_id);
        }
        known = now;
        if !changed.is_empty() {
            watched.runs_cache.invalidate();
            for run_id in changed {
                let _ = watched.events.send(HubEvent::RunChanged { run_id });
            }
        }
    }
}

/// Every run's status, stored epochs and preparation.
fn seen(connection: &Store) -> Result<HashMap<i64, Seen>, actiscope_store::StoreError> {
    Ok(connection
        .runs()?
        .into_iter()
        .map(|row| {
            let run = Seen {
                status: row.status,
                epochs: row.epochs_stored,
                preparation_json: row.preparation_json,
            };
            (row.id, run)
        })
        .collect())
}

/// Tells run `run_id`'s sessions the preparation step another process stored (a worker
/// training it on a GPU), and keeps the frame for late sessions while the run is running.
fn announce_preparation(watched: &Watched, run_id: i64, run: &Seen) {
    let Some(frame) = StoredPreparation::from_json(&run.preparation_json)
        .and_then(|preparation| preparation.frame(run_id))
    else {
        return;
    };
    if run.status == RunStatus::Running.as_str() {
        if let Ok(mut kept) = watched.preparations.lock() {
            kept.insert(run_id, frame.clone());
        }
        let _ = watched.events.send(HubEvent::Progress { run_id, frame });
    } else {
        forget_preparation(watched, run_id);
    }
}

/// Drops the kept preparation frame of run `run_id`, which no longer trains.
fn forget_preparation(watched: &Watched, run_id: i64) {
    if let Ok(mut kept) = watched.preparations.lock() {
        kept.remove(&run_id);
    }
}

/// Announces run `run_id`'s stored epochs from `from_epoch` on, in order, as the hub does for
/// the epochs it trains.
fn announce_epochs(connection: &Store, watched: &Watched, run_id: i64, from_epoch: u32) {
    let blobs = match connection.snapshots_from(run_id, SNAPSHOT_KIND, from_epoch) {
        Ok(blobs) => blobs,
        Err(err) => {
            tracing::warn!(run_id, %err, "cannot read another writer's epochs");
            return;
        }
    };
    for (epoch, blob) in blobs {
        match decode_stored::<EpochSnapshot>(&blob, run_id, epoch) {
            Ok(snapshot) => broadcast_epoch(
                &watched.events,
                &watched.frames,
                &watched.runs_cache,
                run_id,
                snapshot,
            ),
            Err(err) => tracing::warn!(%err, "skipping an unreadable epoch"),
        }
    }
}
