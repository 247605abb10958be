//! Run persistence for actiscope.
//!
//! Owns: the one store interface the rest of actiscope uses ([`Store`]), over two engines with
//! the same schema version and migrations: a SQLite file in WAL mode (the embedded default,
//! `sqlite`) and a PostgreSQL database shared by several machines (`postgres`); where a store
//! lives (`location`); typed reads and writes of runs, the workers' queue, and noticing other
//! processes' commits. Does not own: training, analysis or any network code; it stores what the
//! server and the commands hand it, as opaque but versioned blobs where needed.

use std::path::Path;
use std::time::Duration;

mod location;
mod postgres;
mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use location::{LocationError, PostgresUrl, StoreLocation};

/// Version of the schema this build writes. Each migration (of either engine) raises it by one.
pub const SCHEMA_VERSION: i64 = 6;

/// Errors of the run store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// PostgreSQL refused an operation, or could not be reached.
    #[error("PostgreSQL: {}", postgres_message(.0))]
    Postgres(::postgres::Error),
    /// The store cannot grow: the disk, or the process's file size limit, is full. What was
    /// committed before is intact.
    #[error(
        "the run store cannot grow (disk or file size limit full: {0}); everything stored \
         before is intact, free some space and start again"
    )]
    Full(String),
    /// The store was written by a newer actiscope whose schema this build does not know.
    #[error("the store has schema version {found}, newer than this build's {SCHEMA_VERSION}")]
    NewerSchema {
        /// Version found in the store.
        found: i64,
    },
    /// A value the store holds, or a request of it, makes no sense here.
    #[error("{0}")]
    Invalid(String),
}

/// A PostgreSQL error with the server's detail and hint, which its `Display` leaves out.
fn postgres_message(err: &::postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut message = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                message.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!("; {hint}"));
            }
            message
        }
        None => {
            let mut message = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            message
        }
    }
}

/// Lifecycle state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Training is in progress.
    Running,
    /// All epochs finished.
    Completed,
    /// Stopped on request (Ctrl-C, or the stop button) after a whole epoch.
    Stopped,
    /// The loss became NaN or infinite.
    Diverged,
    /// The process died while the run was in progress.
    Interrupted,
    /// Waiting for a free training slot.
    Queued,
}

impl RunStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Stopped => "stopped",
            Self::Diverged => "diverged",
            Self::Interrupted => "interrupted",
            Self::Queued => "queued",
        }
    }
}

/// One row of the runs table, with the number of stored epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Configuration as JSON.
    pub config_json: String,
    /// Status name.
    pub status: String,
    /// Device description.
    pub device: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix_secs: i64,
    /// Epochs stored.
    pub epochs_stored: u32,
    /// SHA-256 of the data the run saw (empty for runs stored before schema version 3).
    pub dataset_sha256: String,
    /// The process that trains (or queued) the run, as its [`NewRun::owner`] named it (empty
    /// for runs stored before schema version 4).
    pub owner: String,
    /// When that process last said it was alive, milliseconds since the Unix epoch.
    pub heartbeat_unix_ms: i64,
    /// How the preparation of the run's device goes, as its trainer last told
    /// [`Store::set_preparation`] (JSON of the trainer's choosing; empty when never told, and
    /// for runs stored before schema version 6), so that other processes can show it.
    pub preparation_json: String,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What [`Store::record_run`] records.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    /// A name for people.
    pub name: &'a str,
    /// The run's configuration as JSON.
    pub config_json: &'a str,
    /// The device it trains on, described for people.
    pub device: &'a str,
    /// SHA-256 (hex) of the data it sees.
    pub dataset_sha256: &'a str,
    /// Who trains it: an id of the process, kept alive by [`Store::heartbeat`], so that only
    /// a run whose owner is gone is ever marked interrupted.
    pub owner: &'a str,
    /// Run-wide blobs (kind, bytes), stored as epoch 0.
    pub snapshots: &'a [(&'a str, &'a [u8])],
}

/// What each engine implements; [`Store`] is this interface with its documentation.
pub(crate) trait Backend: Send {
    fn schema_version(&self) -> Result<i64, StoreError>;
    fn limit_size(&self, max_bytes: u64) -> Result<(), StoreError>;
    fn clock_unix_ms(&self) -> Result<i64, StoreError>;
    fn create_run(&self, name: &str, config_json: &str) -> Result<i64, StoreError>;
    fn record_run(&mut self, run: &NewRun<'_>) -> Result<i64, StoreError>;
    fn set_status(&self, run_id: i64, status: RunStatus) -> Result<bool, StoreError>;
    fn status(&self, run_id: i64) -> Result<Option<String>, StoreError>;
    fn set_preparation(&self, run_id: i64, preparation_json: &str) -> Result<bool, StoreError>;
    fn set_dataset_sha256(&self, run_id: i64, sha256: &str) -> Result<(), StoreError>;
    fn put_epoch_keeping_latest(
        &mut self,
        run_id: i64,
        epoch: u32,
        metrics_json: &str,
        snapshots: &[(&str, &[u8])],
        latest_only: &[&str],
    ) -> Result<(), StoreError>;
    fn epochs(&self, run_id: i64) -> Result<Vec<(u32, String)>, StoreError>;
    fn snapshot(&self, run_id: i64, epoch: u32, kind: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn delete_run(&mut self, run_id: i64) -> Result<bool, StoreError>;
    fn heartbeat(&self, owner: &str) -> Result<usize, StoreError>;
    /// In one transaction, applies `set` (an SQL `SET` list) to every run matching `filter`
    /// (an SQL condition on `runs`) whose owner `is_gone` says is gone, given the owner and its
    /// last heartbeat; returns their ids. Both SQL arguments are constants of this crate.
    fn update_runs_of_gone_owners(
        &mut self,
        filter: &str,
        set: &str,
        is_gone: &(dyn Fn(&str, i64) -> bool + Sync),
    ) -> Result<Vec<i64>, StoreError>;
    fn runs(&self) -> Result<Vec<RunRow>, StoreError>;
    fn run(&self, run_id: i64) -> Result<Option<RunRow>, StoreError>;
    fn queue_for_workers(&self, name: &str, config_json: &str) -> Result<i64, StoreError>;
    fn queue_again_for_workers(&self, run_id: i64) -> Result<bool, StoreError>;
    fn claim_for_worker(&self, owner: &str) -> Result<Option<RunRow>, StoreError>;
    fn set_run_details(
        &mut self,
        run_id: i64,
        device: &str,
        dataset_sha256: &str,
        snapshots: &[(&str, &[u8])],
    ) -> Result<(), StoreError>;
    fn latest_snapshot(
        &self,
        run_id: i64,
        kind: &str,
    ) -> Result<Option<(u32, Vec<u8>)>, StoreError>;
    fn delete_epochs_after(&mut self, run_id: i64, epoch: u32) -> Result<usize, StoreError>;
    fn take_over(&self, run_id: i64, owner: &str) -> Result<bool, StoreError>;
    fn put_snapshot(
        &self,
        run_id: i64,
        epoch: u32,
        kind: &str,
        blob: &[u8],
    ) -> Result<(), StoreError>;
    fn snapshots_from(
        &self,
        run_id: i64,
        kind: &str,
        from_epoch: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, StoreError>;
    fn wait_for_change(&self, timeout: Duration) -> Result<bool, StoreError>;
    fn run_count(&self) -> Result<u64, StoreError>;
    #[cfg(test)]
    fn execute_batch(&self, sql: &str) -> Result<(), StoreError>;
}

/// A handle on one store: one connection to its file or database. Not shared between threads:
/// each thread opens its own with [`reopen`](Self::reopen).
pub struct Store {
    backend: Box<dyn Backend>,
    /// Where it lives; `None` when it is a private in-memory store.
    location: Option<StoreLocation>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(location) => write!(f, "Store({location})"),
            None => write!(f, "Store(in memory)"),
        }
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Box::new(sqlite::Sqlite::open(path)?),
            location: Some(StoreLocation::File(path.to_path_buf())),
        })
    }

    /// Opens the store at `location` (a SQLite file, created if needed, or a PostgreSQL
    /// database) and brings its schema up to date.
    pub fn connect(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::File(path) => Self::open(path),
            StoreLocation::Postgres(url) => Ok(Self {
                backend: Box::new(postgres::Postgres::connect(url.config())?),
                location: Some(location.clone()),
            }),
        }
    }

    /// Opens a private in-memory SQLite store, for tests and throw-away runs.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            backend: Box::new(sqlite::Sqlite::open_in_memory()?),
            location: None,
        })
    }

    /// Another connection to the same store, for reading beside this one's writes (SQLite's
    /// WAL and PostgreSQL both let readers go on while a writer works); `None` for an
    /// in-memory store, which only its one connection can see.
    pub fn reopen(&self) -> Option<Result<Self, StoreError>> {
        self.location.as_ref().map(Self::connect)
    }

    /// Where this store lives; `None` when it is in memory.
    pub fn location(&self) -> Option<&StoreLocation> {
        self.location.as_ref()
    }

    /// The SQLite file this store lives in; `None` when it is in memory or in PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        self.location.as_ref().and_then(StoreLocation::file)
    }

    /// Limits a SQLite file to about `max_bytes` (`max_page_count`): a write past it fails
    /// with [`StoreError::Full`] as on a full disk. For tests of that path, and for users who
    /// want a cap. PostgreSQL's limits are set on its server: there this is an error.
    pub fn limit_size(&self, max_bytes: u64) -> Result<(), StoreError> {
        self.backend.limit_size(max_bytes)
    }

    /// Schema version of the open store.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.backend.schema_version()
    }

    /// Now, in milliseconds since the Unix epoch, by the clock heartbeats are stamped with:
    /// this machine's for SQLite, the database server's for PostgreSQL (so that machines
    /// whose clocks disagree still agree on who has gone silent).
    pub fn clock_unix_ms(&self) -> Result<i64, StoreError> {
        self.backend.clock_unix_ms()
    }

    /// Records a new run and returns its id.
    pub fn create_run(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        self.backend.create_run(name, config_json)
    }

    /// Records a new run with everything known before its first epoch (its device, the
    /// SHA-256 of its data and its run-wide blobs, stored as epoch 0) in one transaction: a
    /// process killed meanwhile leaves no half-recorded run. Returns its id.
    pub fn record_run(&mut self, run: &NewRun<'_>) -> Result<i64, StoreError> {
        self.backend.record_run(run)
    }

    /// Sets the status of a run; returns whether the run exists.
    pub fn set_status(&self, run_id: i64, status: RunStatus) -> Result<bool, StoreError> {
        self.backend.set_status(run_id, status)
    }

    /// The status of a run, or `None` when no run has that id.
    pub fn status(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        self.backend.status(run_id)
    }

    /// Records how the preparation of run `run_id`'s device goes (see
    /// [`RunRow::preparation_json`]), for processes that show the run but do not train it;
    /// returns whether the run exists. A commit of its own, so a watcher hears of it at once.
    pub fn set_preparation(&self, run_id: i64, preparation_json: &str) -> Result<bool, StoreError> {
        self.backend.set_preparation(run_id, preparation_json)
    }

    /// Records the SHA-256 of the data run `run_id` saw.
    pub fn set_dataset_sha256(&self, run_id: i64, sha256: &str) -> Result<(), StoreError> {
        self.backend.set_dataset_sha256(run_id, sha256)
    }

    /// Stores one epoch: its metrics (JSON) and its snapshot blobs, all or nothing.
    pub fn put_epoch(
        &mut self,
        run_id: i64,
        epoch: u32,
        metrics_json: &str,
        snapshots: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        self.put_epoch_keeping_latest(run_id, epoch, metrics_json, snapshots, &[])
    }

    /// [`put_epoch`](Self::put_epoch), where the blobs of the kinds in `latest_only` (e.g. a
    /// run's checkpoint) replace, in the same transaction, those of earlier epochs: a run keeps
    /// only its newest.
    pub fn put_epoch_keeping_latest(
        &mut self,
        run_id: i64,
        epoch: u32,
        metrics_json: &str,
        snapshots: &[(&str, &[u8])],
        latest_only: &[&str],
    ) -> Result<(), StoreError> {
        self.backend
            .put_epoch_keeping_latest(run_id, epoch, metrics_json, snapshots, latest_only)
    }

    /// The metrics JSON of every stored epoch of a run, in epoch order.
    pub fn epochs(&self, run_id: i64) -> Result<Vec<(u32, String)>, StoreError> {
        self.backend.epochs(run_id)
    }

    /// One snapshot blob, or `None` when absent.
    pub fn snapshot(
        &self,
        run_id: i64,
        epoch: u32,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.snapshot(run_id, epoch, kind)
    }

    /// Deletes a run with its epochs and snapshots; returns whether it existed.
    pub fn delete_run(&mut self, run_id: i64) -> Result<bool, StoreError> {
        self.backend.delete_run(run_id)
    }

    /// Says that `owner` is alive: the heartbeat of every run it trains or queued becomes
    /// now (by [`clock_unix_ms`](Self::clock_unix_ms)'s clock). Returns how many runs it owns.
    pub fn heartbeat(&self, owner: &str) -> Result<usize, StoreError> {
        self.backend.heartbeat(owner)
    }

    /// Marks `interrupted` every `running` or `queued` run (not one queued for workers) whose
    /// owner `is_gone` says is gone, given the owner and its last heartbeat (ms since the Unix
    /// epoch), in one transaction. Returns the ids marked.
    pub fn mark_orphans_interrupted(
        &mut self,
        is_gone: impl Fn(&str, i64) -> bool + Sync,
    ) -> Result<Vec<i64>, StoreError> {
        self.backend.update_runs_of_gone_owners(
            "status IN ('running', 'queued') AND for_workers = 0",
            "status = 'interrupted'",
            &is_gone,
        )
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        self.backend.runs()
    }

    /// One run, or `None` for an unknown id.
    pub fn run(&self, run_id: i64) -> Result<Option<RunRow>, StoreError> {
        self.backend.run(run_id)
    }

    /// Queues a run for any worker (`actiscope worker`) to claim: status `queued`, no owner,
    /// nothing stored yet (its worker stores the device, the data's hash and the probe images
    /// when it starts). Returns its id.
    pub fn queue_for_workers(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        self.backend.queue_for_workers(name, config_json)
    }

    /// Puts a stopped or interrupted run in the workers' queue (status `queued`, no owner), so
    /// the next worker resumes it from its checkpoint.
    pub fn queue_again_for_workers(&self, run_id: i64) -> Result<bool, StoreError> {
        self.backend.queue_again_for_workers(run_id)
    }

    /// Claims the oldest run queued for workers for `owner`, in one statement (two workers
    /// never claim the same run; on PostgreSQL, `FOR UPDATE SKIP LOCKED`, so they never wait
    /// for each other either): it becomes `running`, owned by `owner`, with a fresh
    /// heartbeat. `None` when none waits.
    pub fn claim_for_worker(&self, owner: &str) -> Result<Option<RunRow>, StoreError> {
        self.backend.claim_for_worker(owner)
    }

    /// Puts back in the queue every run a worker was training whose owner `is_gone` says is
    /// gone (given the owner and its last heartbeat), in one transaction, so another worker
    /// resumes it from its checkpoint. Returns their ids.
    pub fn requeue_gone_workers(
        &mut self,
        is_gone: impl Fn(&str, i64) -> bool + Sync,
    ) -> Result<Vec<i64>, StoreError> {
        self.backend.update_runs_of_gone_owners(
            "status = 'running' AND for_workers = 1",
            "status = 'queued', owner = ''",
            &is_gone,
        )
    }

    /// Records what a run's worker found when it started: the device, the data's hash and the
    /// run's blobs of epoch 0 (the probe images).
    pub fn set_run_details(
        &mut self,
        run_id: i64,
        device: &str,
        dataset_sha256: &str,
        snapshots: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        self.backend
            .set_run_details(run_id, device, dataset_sha256, snapshots)
    }

    /// The newest blob of `kind` of a run with its epoch, or `None` when it has none.
    pub fn latest_snapshot(
        &self,
        run_id: i64,
        kind: &str,
    ) -> Result<Option<(u32, Vec<u8>)>, StoreError> {
        self.backend.latest_snapshot(run_id, kind)
    }

    /// Deletes every epoch of a run after `epoch` (metrics and blobs) in one transaction, so a
    /// run resumed from a checkpoint at `epoch` stores each later epoch once; returns how many
    /// epochs went.
    pub fn delete_epochs_after(&mut self, run_id: i64, epoch: u32) -> Result<usize, StoreError> {
        self.backend.delete_epochs_after(run_id, epoch)
    }

    /// Hands a run to `owner` (a process resuming it) with status `running` and a fresh
    /// heartbeat.
    pub fn take_over(&self, run_id: i64, owner: &str) -> Result<bool, StoreError> {
        self.backend.take_over(run_id, owner)
    }

    /// Stores one snapshot blob outside an epoch's metrics (e.g. a run's probe images).
    pub fn put_snapshot(
        &self,
        run_id: i64,
        epoch: u32,
        kind: &str,
        blob: &[u8],
    ) -> Result<(), StoreError> {
        self.backend.put_snapshot(run_id, epoch, kind, blob)
    }

    /// The blobs of `kind` for epochs `from_epoch..` of a run, in epoch order.
    pub fn snapshots_from(
        &self,
        run_id: i64,
        kind: &str,
        from_epoch: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        self.backend.snapshots_from(run_id, kind, from_epoch)
    }

    /// Waits up to `timeout` for a change another connection (in this process or any other,
    /// on any machine) commits, and says whether one came. The first call says `true` (what
    /// came before it is unknown) and starts following. SQLite: `data_version`, looked at once
    /// after `timeout` (a heartbeat counts); PostgreSQL: `LISTEN`, woken by the writer's
    /// `NOTIFY` as it commits (a heartbeat does not notify).
    pub fn wait_for_change(&self, timeout: Duration) -> Result<bool, StoreError> {
        self.backend.wait_for_change(timeout)
    }

    /// Number of runs stored.
    pub fn run_count(&self) -> Result<u64, StoreError> {
        self.backend.run_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The engine a test of the shared suite runs on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Engine {
        Sqlite,
        Postgres,
    }

    /// A fresh, empty store of `engine`: a file in a temporary folder (kept alive by the
    /// returned guard) or a new database on this process's test PostgreSQL server.
    fn fresh(
        engine: Engine,
    ) -> Result<(StoreLocation, Option<tempfile::TempDir>), Box<dyn std::error::Error>> {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir()?;
                Ok((StoreLocation::File(dir.path().join("runs.db")), Some(dir)))
            }
            Engine::Postgres => {
                let server = testing::TestPostgres::shared()?;
                Ok((server.location(&server.fresh_database()?), None))
            }
        }
    }

    /// Each named test of the suite below, once on SQLite and once on PostgreSQL.
    macro_rules! on_both_engines {
        ($($name:ident),* $(,)?) => {
            mod on_sqlite {
                $(#[test]
                fn $name() -> super::TestResult {
                    super::$name(super::Engine::Sqlite)
                })*
            }
            mod on_postgres {
                $(#[test]
                fn $name() -> super::TestResult {
                    super::$name(super::Engine::Postgres)
                })*
            }
        };
    }

    on_both_engines!(
        many_openers_of_a_fresh_store_all_succeed,
        runs_survive_reopening,
        epochs_and_snapshots_round_trip_and_replace,
        a_run_is_recorded_whole_or_not_at_all,
        a_checkpoint_kind_keeps_only_the_newest_and_resuming_drops_later_epochs,
        workers_claim_each_queued_run_once_and_runs_of_gone_workers_go_back,
        only_runs_of_gone_owners_are_marked_interrupted,
        another_connection_s_commits_are_noticed,
        a_version_1_store_is_migrated,
        refuses_a_newer_schema,
    );

    #[test]
    fn both_engines_have_the_same_migrations() {
        assert_eq!(sqlite::MIGRATIONS.len(), postgres::MIGRATIONS.len());
        assert_eq!(
            i64::try_from(sqlite::MIGRATIONS.len()).ok(),
            Some(SCHEMA_VERSION)
        );
    }

    fn many_openers_of_a_fresh_store_all_succeed(engine: Engine) -> TestResult {
        // A trainer creating the store while a watcher polls it: the schema migration (and on
        // SQLite the switch to WAL) must not fail with "database is locked" for either side.
        let rounds = if engine == Engine::Sqlite { 20 } else { 5 };
        for round in 0..rounds {
            let (location, _dir) = fresh(engine)?;
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let location = location.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        Store::connect(&location).and_then(|s| s.schema_version())
                    })
                })
                .collect();
            for handle in handles {
                let version = handle.join().map_err(|_| "opener panicked")?;
                assert_eq!(version?, SCHEMA_VERSION, "round {round}");
            }
        }
        Ok(())
    }

    fn runs_survive_reopening(engine: Engine) -> TestResult {
        let (location, _dir) = fresh(engine)?;
        let run_id = {
            let store = Store::connect(&location)?;
            assert_eq!(store.schema_version()?, SCHEMA_VERSION);
            let run_id = store.create_run("first", "{}")?;
            assert!(store.set_status(run_id, RunStatus::Completed)?);
            run_id
        };
        let store = Store::connect(&location)?;
        assert_eq!(store.run_count()?, 1);
        assert_eq!(store.status(run_id)?.as_deref(), Some("completed"));
        assert_eq!(store.status(run_id + 1)?, None);
        assert!(!store.set_status(run_id + 1, RunStatus::Running)?);
        let row = store.run(run_id)?.ok_or("the run")?;
        assert!(
            (row.created_unix_secs - now_unix_ms() / 1000).abs() < 60,
            "{row:?}"
        );
        Ok(())
    }

    fn epochs_and_snapshots_round_trip_and_replace(engine: Engine) -> TestResult {
        let (location, _dir) = fresh(engine)?;
        let mut store = Store::connect(&location)?;
        let run = store.create_run("r", "{}")?;
        store.put_epoch(run, 1, "{\"loss\":1}", &[("apd", &[1, 2, 3])])?;
        store.put_epoch(run, 2, "{\"loss\":0.5}", &[("apd", &[4]), ("flows", &[5])])?;
        store.put_epoch(run, 2, "{\"loss\":0.4}", &[("apd", &[6])])?;
        assert_eq!(
            store.epochs(run)?,
            vec![
                (1, "{\"loss\":1}".to_owned()),
                (2, "{\"loss\":0.4}".to_owned())
            ]
        );
        assert_eq!(store.snapshot(run, 1, "apd")?, Some(vec![1, 2, 3]));
        assert_eq!(store.snapshot(run, 2, "apd")?, Some(vec![6]));
        assert_eq!(store.snapshot(run, 2, "flows")?, Some(vec![5]));
        assert_eq!(store.snapshot(run, 3, "apd")?, None);
        assert_eq!(store.runs()?.first().map(|r| r.epochs_stored), Some(2));
        store.put_snapshot(run, 2, "extra", &[9; 70_000])?;
        assert_eq!(
            store.snapshots_from(run, "extra", 2)?,
            vec![(2, vec![9; 70_000])]
        );
        assert_eq!(store.mark_orphans_interrupted(|_, _| true)?, vec![run]);
        assert_eq!(store.status(run)?.as_deref(), Some("interrupted"));
        assert!(store.delete_run(run)?);
        assert!(!store.delete_run(run)?);
        assert_eq!(store.epochs(run)?, vec![]);
        assert_eq!(store.snapshot(run, 1, "apd")?, None);
        Ok(())
    }

    fn a_run_is_recorded_whole_or_not_at_all(engine: Engine) -> TestResult {
        let (location, _dir) = fresh(engine)?;
        let mut store = Store::connect(&location)?;
        let new_run = NewRun {
            name: "mlp on digits",
            config_json: "{}",
            device: "flex (CPU)",
            dataset_sha256: "f00d",
            owner: "host/1/2",
            snapshots: &[("images", &[7, 8, 9])],
        };
        let run_id = store.record_run(&new_run)?;
        let row = store.run(run_id)?.ok_or("the run")?;
        assert_eq!(
            (
                row.name.as_str(),
                row.device.as_str(),
                row.dataset_sha256.as_str()
            ),
            ("mlp on digits", "flex (CPU)", "f00d")
        );
        assert_eq!(store.snapshot(run_id, 0, "images")?, Some(vec![7, 8, 9]));
        // The blob cannot be written (as on a full disk): nothing of the run stays.
        store.backend.execute_batch(match engine {
            Engine::Sqlite => {
                "CREATE TEMP TRIGGER no_room BEFORE INSERT ON snapshots \
                 BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
            }
            Engine::Postgres => {
                "CREATE FUNCTION no_room() RETURNS trigger AS \
                 $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER no_room BEFORE INSERT ON snapshots \
                 FOR EACH ROW EXECUTE FUNCTION no_room();"
            }
        })?;
        assert!(store.record_run(&new_run).is_err());
        assert_eq!(store.run_count()?, 1, "no half-recorded run");
        Ok(())
    }

    fn a_checkpoint_kind_keeps_only_the_newest_and_resuming_drops_later_epochs(
        engine: Engine,
    ) -> TestResult {
        let (location, _dir) = fresh(engine)?;
        let mut store = Store::connect(&location)?;
        let run_id = store.record_run(&NewRun {
            name: "r",
            config_json: "{}",
            device: "cpu",
            dataset_sha256: "",
            owner: "old",
            snapshots: &[],
        })?;
        for epoch in 1..=5u32 {
            let checkpoint = [epoch as u8; 3];
            let mut blobs: Vec<(&str, &[u8])> = vec![("epoch", &[1, 2])];
            // Epochs 1, 3 and 5 checkpoint.
            if epoch % 2 == 1 {
                blobs.push(("checkpoint", &checkpoint));
            }
            store.put_epoch_keeping_latest(run_id, epoch, "{}", &blobs, &["checkpoint"])?;
        }
        assert_eq!(
            store.latest_snapshot(run_id, "checkpoint")?,
            Some((5, vec![5, 5, 5]))
        );
        assert_eq!(
            store.snapshots_from(run_id, "checkpoint", 0)?.len(),
            1,
            "the older ones went in the same transaction"
        );
        assert_eq!(store.snapshots_from(run_id, "epoch", 0)?.len(), 5);
        assert_eq!(store.latest_snapshot(run_id, "nothing")?, None);
        // Resuming from epoch 3 drops epochs 4 and 5, metrics and blobs.
        assert_eq!(store.delete_epochs_after(run_id, 3)?, 2);
        assert_eq!(store.epochs(run_id)?.len(), 3);
        assert_eq!(store.snapshot(run_id, 5, "checkpoint")?, None);
        assert_eq!(store.snapshots_from(run_id, "epoch", 0)?.len(), 3);
        store.set_status(run_id, RunStatus::Interrupted)?;
        assert!(store.take_over(run_id, "new")?);
        let row = store.run(run_id)?.ok_or("run")?;
        assert_eq!(
            (row.owner.as_str(), row.status.as_str()),
            ("new", "running")
        );
        assert!(!store.take_over(run_id + 1, "new")?);
        Ok(())
    }

    fn workers_claim_each_queued_run_once_and_runs_of_gone_workers_go_back(
        engine: Engine,
    ) -> TestResult {
        let (location, _dir) = fresh(engine)?;
        let mut store = Store::connect(&location)?;
        let queued: Vec<i64> = (0..12)
            .map(|i| store.queue_for_workers(&format!("run {i}"), "{}"))
            .collect::<Result<_, _>>()?;
        // Servers never mark a queued worker run interrupted: it has no owner yet.
        assert!(store.mark_orphans_interrupted(|_, _| true)?.is_empty());
        // Six workers on their own connections claim until the queue is empty, all at once:
        // each run exactly once.
        let barrier = std::sync::Barrier::new(6);
        let claims: Vec<Vec<i64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|w| {
                    let (location, barrier) = (&location, &barrier);
                    scope.spawn(move || -> Result<Vec<i64>, StoreError> {
                        let worker = Store::connect(location)?;
                        barrier.wait();
                        let mut mine = Vec::new();
                        while let Some(row) = worker.claim_for_worker(&format!("w{w}"))? {
                            assert_eq!(row.owner, format!("w{w}"));
                            mine.push(row.id);
                        }
                        Ok(mine)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| "panicked")
                        .and_then(|r| r.map_err(|_| "failed"))
                })
                .collect::<Result<_, _>>()
        })?;
        let mut claimed: Vec<i64> = claims.into_iter().flatten().collect();
        claimed.sort_unstable();
        assert_eq!(claimed, queued);
        let first = queued.first().copied().ok_or("a run")?;
        let row = store.run(first)?.ok_or("run")?;
        assert_eq!(row.status, "running");
        assert!(row.owner.starts_with('w'));
        let clock = store.clock_unix_ms()?;
        assert!(
            (row.heartbeat_unix_ms - clock).abs() < 60_000,
            "{row:?} {clock}"
        );
        // The owner of `first` is gone: back in the queue, claimable again.
        let gone = row.owner.clone();
        let requeued = store.requeue_gone_workers(|owner, _| owner == gone)?;
        assert!(requeued.contains(&first));
        for _ in &requeued {
            assert!(store.claim_for_worker("w9")?.is_some());
        }
        assert_eq!(store.claim_for_worker("w9")?, None);
        store.set_run_details(first, "flex", "abc", &[("images", &[1, 2])])?;
        let row = store.run(first)?.ok_or("run")?;
        assert_eq!(
            (row.device.as_str(), row.dataset_sha256.as_str()),
            ("flex", "abc")
        );
        assert_eq!(store.snapshot(first, 0, "images")?, Some(vec![1, 2]));
        assert!(store.set_status(first, RunStatus::Stopped)?);
        assert!(store.queue_again_for_workers(first)?);
        assert_eq!(store.claim_for_worker("w10")?.map(|r| r.id), Some(first));
        Ok(())
    }

    fn only_runs_of_gone_owners_are_marked_interrupted(engine: Engine) -> TestResult {
        let (location, _dir) = fresh(engine)?;
        let mut store = Store::connect(&location)?;
        let run = |owner| NewRun {
            name: "r",
            config_json: "{}",
            device: "cpu",
            dataset_sha256: "",
            owner,
            snapshots: &[],
        };
        let alive = store.record_run(&run("alive"))?;
        let dead = store.record_run(&run("dead"))?;
        let finished = store.record_run(&run("dead"))?;
        store.set_status(finished, RunStatus::Completed)?;
        let before = store.run(alive)?.ok_or("run")?.heartbeat_unix_ms;
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.heartbeat("alive")?, 1);
        let after = store.run(alive)?.ok_or("run")?;
        assert!(after.heartbeat_unix_ms > before, "the heartbeat moved");
        assert_eq!(after.owner, "alive");
        let seen = std::sync::Mutex::new(Vec::new());
        let marked = store.mark_orphans_interrupted(|owner, heartbeat_unix_ms| {
            seen.lock()
                .unwrap()
                .push((owner.to_owned(), heartbeat_unix_ms > 0));
            owner == "dead"
        })?;
        assert_eq!(marked, vec![dead], "only the gone owner's live run");
        assert_eq!(
            seen.lock().unwrap().len(),
            2,
            "finished runs are not even looked at"
        );
        assert_eq!(store.status(alive)?.as_deref(), Some("running"));
        assert_eq!(store.status(dead)?.as_deref(), Some("interrupted"));
        assert_eq!(store.status(finished)?.as_deref(), Some("completed"));
        Ok(())
    }

    fn another_connection_s_commits_are_noticed(engine: Engine) -> TestResult {
        let (location, _dir) = fresh(engine)?;
        let mut writer = Store::connect(&location)?;
        let watcher = writer.reopen().ok_or("a stored store reopens")??;
        let wait = Duration::from_millis(300);
        assert!(watcher.wait_for_change(wait)?, "the first look says yes");
        assert!(!watcher.wait_for_change(wait)?, "nothing new, no change");
        let run = writer.create_run("r", "{}")?;
        assert!(watcher.wait_for_change(wait)?, "a new run");
        assert!(!watcher.wait_for_change(wait)?);
        writer.put_epoch(run, 1, "{}", &[("apd", &[1])])?;
        // Several commits before the next look are one change (once their notifications
        // have reached the watcher's connection: the look does not wait for stragglers).
        writer.set_status(run, RunStatus::Completed)?;
        std::thread::sleep(Duration::from_millis(50));
        assert!(watcher.wait_for_change(wait)?, "an epoch and a status");
        assert!(!watcher.wait_for_change(wait)?);
        writer.set_preparation(run, "{}")?;
        assert!(watcher.wait_for_change(wait)?, "a preparation step");
        assert_eq!(watcher.run(run)?.ok_or("the run")?.preparation_json, "{}");
        assert!(!watcher.wait_for_change(wait)?);
        if engine == Engine::Postgres {
            writer.heartbeat("nobody")?;
            assert!(!watcher.wait_for_change(wait)?, "a heartbeat is not news");
            // Woken as the commit lands, not at the end of the wait.
            let started = std::time::Instant::now();
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    writer.set_status(run, RunStatus::Stopped)
                });
                let changed = watcher.wait_for_change(Duration::from_secs(5));
                assert!(matches!(changed, Ok(true)), "{changed:?}");
            });
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        assert!(Store::open_in_memory()?.reopen().is_none());
        Ok(())
    }

    fn a_version_1_store_is_migrated(engine: Engine) -> TestResult {
        let (location, _dir) = fresh(engine)?;
        match &location {
            StoreLocation::File(path) => {
                let conn = rusqlite::Connection::open(path)?;
                conn.execute_batch(sqlite::MIGRATIONS.first().ok_or("migration 1")?)?;
                conn.pragma_update(None, "user_version", 1)?;
                conn.execute(
                    "INSERT INTO runs (name, config_json, status, created_unix_secs) \
                     VALUES ('old', '{}', 'completed', 0)",
                    [],
                )?;
            }
            StoreLocation::Postgres(url) => {
                let mut client = url.config().connect(::postgres::NoTls)?;
                client.batch_execute(postgres::MIGRATIONS.first().ok_or("migration 1")?)?;
                client.batch_execute(
                    "CREATE TABLE actiscope_schema (version BIGINT NOT NULL); \
                     INSERT INTO actiscope_schema VALUES (1); \
                     INSERT INTO runs (name, config_json, status, created_unix_secs) \
                     VALUES ('old', '{}', 'completed', 0);",
                )?;
            }
        }
        let store = Store::connect(&location)?;
        assert_eq!(store.schema_version()?, SCHEMA_VERSION);
        assert_eq!(store.run_count()?, 1);
        assert_eq!(store.epochs(1)?, vec![]);
        // Columns added later read as empty for old runs and can be filled in.
        let old = store.run(1)?.ok_or("run 1")?;
        assert_eq!((old.device.as_str(), old.dataset_sha256.as_str()), ("", ""));
        store.set_dataset_sha256(1, "abc")?;
        assert_eq!(store.run(1)?.ok_or("run 1")?.dataset_sha256, "abc");
        assert_eq!(old.preparation_json, "");
        assert!(store.set_preparation(1, r#"{"done":1}"#)?);
        assert!(!store.set_preparation(2, "{}")?, "no run 2");
        let runs = store.runs()?;
        assert_eq!(
            runs.first().map(|r| r.preparation_json.as_str()),
            Some(r#"{"done":1}"#)
        );
        Ok(())
    }

    fn refuses_a_newer_schema(engine: Engine) -> TestResult {
        let (location, _dir) = fresh(engine)?;
        match &location {
            StoreLocation::File(path) => {
                rusqlite::Connection::open(path)?.pragma_update(
                    None,
                    "user_version",
                    SCHEMA_VERSION + 1,
                )?;
            }
            StoreLocation::Postgres(url) => {
                url.config()
                    .connect(::postgres::NoTls)?
                    .batch_execute(&format!(
                        "CREATE TABLE actiscope_schema (version BIGINT NOT NULL); \
                     INSERT INTO actiscope_schema VALUES ({});",
                        SCHEMA_VERSION + 1
                    ))?;
            }
        }
        match Store::connect(&location) {
            Err(StoreError::NewerSchema { found }) => assert_eq!(found, SCHEMA_VERSION + 1),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a newer schema must be refused"),
        }
        Ok(())
    }

    #[test]
    fn a_full_sqlite_store_is_a_clear_error_and_keeps_what_was_stored() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runs.db");
        let mut store = Store::open(&path)?;
        let run = store.create_run("r", "{}")?;
        store.limit_size(256 * 1024)?;
        let blob = vec![7u8; 40 * 1024];
        let mut stored = 0;
        let err = loop {
            match store.put_epoch(run, stored + 1, "{}", &[("apd", &blob)]) {
                Ok(()) => stored += 1,
                Err(err) => break err,
            }
            assert!(stored < 100, "the limit never bit");
        };
        assert!(matches!(err, StoreError::Full(_)), "{err:?}");
        assert!(err.to_string().contains("cannot grow"), "{err}");
        assert!(stored >= 2, "some epochs fit before the limit");
        drop(store);
        let store = Store::open(&path)?;
        assert_eq!(store.epochs(run)?.len(), stored as usize);
        for epoch in 1..=stored {
            assert_eq!(
                store.snapshot(run, epoch, "apd")?.as_deref(),
                Some(&blob[..])
            );
        }
        Ok(())
    }

    #[test]
    fn a_sqlite_reader_reads_while_a_writer_holds_its_lock() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runs.db");
        let mut writer = sqlite::Sqlite::open(&path)?;
        let reader = Store::open(&path)?;
        let run = writer.create_run("r", "{}")?;
        assert_eq!(reader.run_count()?, 1);
        let tx = writer
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM runs WHERE id = ?1", [run])?;
        // The delete is not committed and holds the write lock; the reader is not blocked.
        assert_eq!(reader.run_count()?, 1);
        tx.commit()?;
        assert_eq!(reader.run_count()?, 0);
        Ok(())
    }

    #[test]
    fn a_corrupt_sqlite_file_is_a_clear_error() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runs.db");
        std::fs::write(&path, b"this is not a sqlite database, just some bytes....")?;
        assert!(Store::open(&path).is_err());
        Ok(())
    }

    #[test]
    fn a_wrong_postgres_password_is_a_clear_error_that_does_not_show_it() -> TestResult {
        let server = testing::TestPostgres::shared()?;
        let url = format!(
            "postgres://{}:not-the-password@127.0.0.1:{}/postgres",
            testing::USER,
            server.port()
        );
        let err = Store::connect(&url.parse()?)
            .err()
            .ok_or("a wrong password connected")?;
        let message = err.to_string();
        assert!(
            message.contains("password authentication failed"),
            "{message}"
        );
        assert!(!message.contains("not-the-password"), "{message}");
        // Nobody listens on port 1: a clear error, quickly.
        let started = std::time::Instant::now();
        let err = Store::connect(&"postgres://x@127.0.0.1:1/db".parse()?)
            .err()
            .ok_or("port 1 answered")?;
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(11));
        Ok(())
    }

    #[test]
    fn a_postgres_store_opens_works_and_closes_on_threads_that_drive_a_runtime() -> TestResult {
        // The server's handlers run on tokio's threads; the synchronous client must not try
        // to start its own runtime there (tokio panics at that).
        let (location, _dir) = fresh(Engine::Postgres)?;
        for runtime in [
            tokio::runtime::Builder::new_current_thread().build()?,
            tokio::runtime::Builder::new_multi_thread().build()?,
        ] {
            let count = runtime.block_on(async {
                let store = Store::connect(&location)?;
                store.create_run("r", "{}")?;
                let count = store.run_count()?;
                drop(store);
                Ok::<_, StoreError>(count)
            })?;
            assert!(count >= 1);
        }
        Ok(())
    }

    #[test]
    fn a_postgres_connection_the_server_closed_is_opened_again() -> TestResult {
        let (location, _dir) = fresh(Engine::Postgres)?;
        let store = Store::connect(&location)?;
        let run = store.create_run("r", "{}")?;
        let StoreLocation::Postgres(url) = &location else {
            return Err("not PostgreSQL".into());
        };
        // An administrator (or a server restart) ends every other session of the database.
        let mut admin = url.config().connect(::postgres::NoTls)?;
        admin.batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )?;
        // The first call may fail as it finds the connection gone; the next one reconnects.
        let status = store.status(run).or_else(|_| store.status(run))?;
        assert_eq!(status.as_deref(), Some("running"));
        Ok(())
    }
}
