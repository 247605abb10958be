//! Run persistence for actiscope.
//!
//! Owns: the SQLite database file (WAL mode), its schema and migrations, and the typed reads
//! and writes of runs. Does not own: training, analysis or any network code; it stores what the
//! server and the `train` command hand it, as opaque but versioned blobs where needed.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Version of the schema this build writes. Each entry of [`MIGRATIONS`] raises it by one.
pub const SCHEMA_VERSION: i64 = 5;

/// How long an opener waits for another connection's lock before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Schema migrations, applied in order; entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        config_json TEXT NOT NULL,
        status TEXT NOT NULL,
        created_unix_secs INTEGER NOT NULL
    );",
    "ALTER TABLE runs ADD COLUMN device TEXT NOT NULL DEFAULT '';
     CREATE TABLE epochs (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        metrics_json TEXT NOT NULL,
        PRIMARY KEY (run_id, epoch)
     );
     CREATE TABLE snapshots (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        kind TEXT NOT NULL,
        blob BLOB NOT NULL,
        PRIMARY KEY (run_id, epoch, kind)
     );",
    "ALTER TABLE runs ADD COLUMN dataset_sha256 TEXT NOT NULL DEFAULT '';",
    "ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
     ALTER TABLE runs ADD COLUMN heartbeat_unix_ms INTEGER NOT NULL DEFAULT 0;",
    "ALTER TABLE runs ADD COLUMN for_workers INTEGER NOT NULL DEFAULT 0;",
];

/// Errors of the run store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The store cannot grow: the disk, or the process's file size limit, is full. What was
    /// committed before is intact.
    #[error(
        "the run store cannot grow (disk or file size limit full: {0}); everything stored \
         before is intact, free some space and start again"
    )]
    Full(rusqlite::Error),
    /// The file was written by a newer actiscope whose schema this build does not know.
    #[error("the store has schema version {found}, newer than this build's {SCHEMA_VERSION}")]
    NewerSchema {
        /// Version found in the file.
        found: i64,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        // SQLite reports ENOSPC as SQLITE_FULL, and a write refused for another reason (EFBIG
        // past `ulimit -f`, EDQUOT) as an I/O error of the write or of the file's growth.
        let full = match &err {
            rusqlite::Error::SqliteFailure(failure, _) => {
                failure.code == rusqlite::ErrorCode::DiskFull
                    || [
                        rusqlite::ffi::SQLITE_IOERR_WRITE,
                        rusqlite::ffi::SQLITE_IOERR_TRUNCATE,
                    ]
                    .contains(&failure.extended_code)
            }
            _ => false,
        };
        if full {
            Self::Full(err)
        } else {
            Self::Sqlite(err)
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
}

const RUN_COLUMNS: &str = "r.id, r.name, r.config_json, r.status, r.device, r.created_unix_secs, r.dataset_sha256, \
     (SELECT COUNT(*) FROM epochs e WHERE e.run_id = r.id), r.owner, r.heartbeat_unix_ms";

fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: row.get(0)?,
        name: row.get(1)?,
        config_json: row.get(2)?,
        status: row.get(3)?,
        device: row.get(4)?,
        created_unix_secs: row.get(5)?,
        dataset_sha256: row.get(6)?,
        epochs_stored: row.get(7)?,
        owner: row.get(8)?,
        heartbeat_unix_ms: row.get(9)?,
    })
}

/// Switches `conn` to write-ahead logging. SQLite does not call the busy handler for a
/// journal-mode change that races another connection's, so this retries by hand, within
/// [`BUSY_TIMEOUT`].
fn enable_wal(conn: &Connection) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return Ok(other?),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A handle on one store file.
pub struct Store {
    conn: Connection,
    path: Option<std::path::PathBuf>,
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

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn, Some(path.to_path_buf()))
    }

    /// Opens a private in-memory store, for tests and throw-away runs.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    /// Another connection to the same file, for reading beside this one's writes (WAL lets
    /// readers go on while a writer holds its lock); `None` for an in-memory store, which
    /// only its one connection can see.
    pub fn reopen(&self) -> Option<Result<Self, StoreError>> {
        self.path.as_deref().map(Self::open)
    }

    /// The file this store lives in; `None` when it is in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Limits the file to about `max_bytes` (SQLite's `max_page_count`): a write past it fails
    /// with [`StoreError::Full`] as on a full disk. For tests of that path, and for users who
    /// want a cap.
    pub fn limit_size(&self, max_bytes: u64) -> Result<(), StoreError> {
        let page_size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |row| row.get(0))?;
        let pages = max_bytes / u64::try_from(page_size.max(512)).unwrap_or(4096);
        self.conn.pragma_update(
            None,
            "max_page_count",
            i64::try_from(pages).unwrap_or(i64::MAX),
        )?;
        Ok(())
    }

    fn init(mut conn: Connection, path: Option<std::path::PathBuf>) -> Result<Self, StoreError> {
        // Another process (a trainer, a server, a test polling the file) may open the same
        // file at the same moment: wait for its locks instead of failing.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        enable_wal(&conn)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // IMMEDIATE takes the write lock before reading the version, so two openers of a
        // fresh file never both decide to run the same migration.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found });
        }
        for (version, migration) in (1..)
            .zip(MIGRATIONS)
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", version)?;
        }
        tx.commit()?;
        Ok(Self { conn, path })
    }

    /// Schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))?)
    }

    /// Records a new run and returns its id.
    pub fn create_run(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        let now_unix_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.conn.execute(
            "INSERT INTO runs (name, config_json, status, created_unix_secs) VALUES (?1, ?2, ?3, ?4)",
            params![name, config_json, RunStatus::Running.as_str(), now_unix_secs],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a new run with everything known before its first epoch (its device, the
    /// SHA-256 of its data and its run-wide blobs, stored as epoch 0) in one transaction: a
    /// process killed meanwhile leaves no half-recorded run. Returns its id.
    pub fn record_run(&mut self, run: &NewRun<'_>) -> Result<i64, StoreError> {
        let now_unix_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO runs (name, config_json, status, created_unix_secs, device, \
             dataset_sha256, owner, heartbeat_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                run.name,
                run.config_json,
                RunStatus::Running.as_str(),
                now_unix_secs,
                run.device,
                run.dataset_sha256,
                run.owner,
                now_unix_ms()
            ],
        )?;
        let run_id = tx.last_insert_rowid();
        for (kind, blob) in run.snapshots {
            tx.execute(
                "INSERT OR REPLACE INTO snapshots (run_id, epoch, kind, blob) VALUES (?1, 0, ?2, ?3)",
                params![run_id, kind, blob],
            )?;
        }
        tx.commit()?;
        Ok(run_id)
    }

    /// Sets the status of a run; returns whether the run exists.
    pub fn set_status(&self, run_id: i64, status: RunStatus) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE runs SET status = ?1 WHERE id = ?2",
            params![status.as_str(), run_id],
        )?;
        Ok(changed == 1)
    }

    /// The status of a run, or `None` when no run has that id.
    pub fn status(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT status FROM runs WHERE id = ?1")?
            .query_row([run_id], |row| row.get(0))
            .optional()?)
    }

    /// Records the SHA-256 of the data run `run_id` saw.
    pub fn set_dataset_sha256(&self, run_id: i64, sha256: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET dataset_sha256 = ?1 WHERE id = ?2",
            params![sha256, run_id],
        )?;
        Ok(())
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
        let tx = self.conn.transaction()?;
        for kind in latest_only {
            if snapshots.iter().any(|(k, _)| k == kind) {
                tx.execute(
                    "DELETE FROM snapshots WHERE run_id = ?1 AND kind = ?2 AND epoch < ?3",
                    params![run_id, kind, epoch],
                )?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO epochs (run_id, epoch, metrics_json) VALUES (?1, ?2, ?3)",
            params![run_id, epoch, metrics_json],
        )?;
        for (kind, blob) in snapshots {
            tx.execute(
                "INSERT OR REPLACE INTO snapshots (run_id, epoch, kind, blob) VALUES (?1, ?2, ?3, ?4)",
                params![run_id, epoch, kind, blob],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The metrics JSON of every stored epoch of a run, in epoch order.
    pub fn epochs(&self, run_id: i64) -> Result<Vec<(u32, String)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT epoch, metrics_json FROM epochs WHERE run_id = ?1 ORDER BY epoch",
        )?;
        let rows = statement.query_map([run_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One snapshot blob, or `None` when absent.
    pub fn snapshot(
        &self,
        run_id: i64,
        epoch: u32,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT blob FROM snapshots WHERE run_id = ?1 AND epoch = ?2 AND kind = ?3",
            )?
            .query_row(params![run_id, epoch, kind], |row| row.get(0))
            .optional()?)
    }

    /// Deletes a run with its epochs and snapshots; returns whether it existed.
    pub fn delete_run(&mut self, run_id: i64) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM snapshots WHERE run_id = ?1", [run_id])?;
        tx.execute("DELETE FROM epochs WHERE run_id = ?1", [run_id])?;
        let deleted = tx.execute("DELETE FROM runs WHERE id = ?1", [run_id])?;
        tx.commit()?;
        Ok(deleted == 1)
    }

    /// Says that `owner` is alive: the heartbeat of every run it trains or queued becomes
    /// now. Returns how many runs it owns.
    pub fn heartbeat(&self, owner: &str) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE runs SET heartbeat_unix_ms = ?1 \
             WHERE owner = ?2 AND status IN ('running', 'queued')",
            params![now_unix_ms(), owner],
        )?)
    }

    /// Marks `interrupted` every `running` or `queued` run whose owner `is_gone` says is gone,
    /// given the owner and its last heartbeat (ms since the Unix epoch), in one transaction.
    /// Returns the ids marked.
    pub fn mark_orphans_interrupted(
        &mut self,
        is_gone: impl Fn(&str, i64) -> bool,
    ) -> Result<Vec<i64>, StoreError> {
        self.update_runs_of_gone_owners(
            "status IN ('running', 'queued') AND for_workers = 0",
            "status = 'interrupted'",
            is_gone,
        )
    }

    /// In one transaction, applies `set` (an SQL `SET` list) to every run matching `filter`
    /// (an SQL condition on `runs`) whose owner `is_gone` says is gone, given the owner and its
    /// last heartbeat; returns their ids. Both arguments are constants of this file.
    fn update_runs_of_gone_owners(
        &mut self,
        filter: &str,
        set: &str,
        is_gone: impl Fn(&str, i64) -> bool,
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let candidates: Vec<(i64, String, i64)> = {
            let mut statement = tx.prepare(&format!(
                "SELECT id, owner, heartbeat_unix_ms FROM runs WHERE {filter}"
            ))?;
            let rows =
                statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut updated = Vec::new();
        for (run_id, owner, heartbeat_unix_ms) in candidates {
            if is_gone(&owner, heartbeat_unix_ms) {
                tx.execute(&format!("UPDATE runs SET {set} WHERE id = ?1"), [run_id])?;
                updated.push(run_id);
            }
        }
        tx.commit()?;
        Ok(updated)
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r ORDER BY r.id DESC"
        ))?;
        let rows = statement.query_map([], run_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One run, or `None` for an unknown id.
    pub fn run(&self, run_id: i64) -> Result<Option<RunRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = ?1"))?
            .query_row([run_id], run_row)
            .optional()?)
    }

    /// Queues a run for any worker (`actiscope worker`) to claim: status `queued`, no owner,
    /// nothing stored yet (its worker stores the device, the data's hash and the probe images
    /// when it starts). Returns its id.
    pub fn queue_for_workers(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        let now_unix_secs = now_unix_ms() / 1000;
        self.conn.execute(
            "INSERT INTO runs (name, config_json, status, created_unix_secs, owner, \
             heartbeat_unix_ms, for_workers) VALUES (?1, ?2, 'queued', ?3, '', 0, 1)",
            params![name, config_json, now_unix_secs],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Puts a stopped or interrupted run in the workers' queue (status `queued`, no owner), so
    /// the next worker resumes it from its checkpoint.
    pub fn queue_again_for_workers(&self, run_id: i64) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE runs SET status = 'queued', owner = '', for_workers = 1 WHERE id = ?1",
            [run_id],
        )?;
        Ok(changed == 1)
    }

    /// Claims the oldest run queued for workers for `owner`, in one statement (two workers
    /// never claim the same run): it becomes `running`, owned by `owner`, with a fresh
    /// heartbeat. `None` when none waits.
    pub fn claim_for_worker(&self, owner: &str) -> Result<Option<RunRow>, StoreError> {
        let claimed: Option<i64> = self
            .conn
            .prepare_cached(
                "UPDATE runs SET status = 'running', owner = ?1, heartbeat_unix_ms = ?2 \
                 WHERE id = (SELECT id FROM runs WHERE status = 'queued' AND owner = '' \
                 AND for_workers = 1 ORDER BY id LIMIT 1) RETURNING id",
            )?
            .query_row(params![owner, now_unix_ms()], |row| row.get(0))
            .optional()?;
        match claimed {
            Some(run_id) => self.run(run_id),
            None => Ok(None),
        }
    }

    /// Puts back in the queue every run a worker was training whose owner `is_gone` says is
    /// gone (given the owner and its last heartbeat), in one transaction, so another worker
    /// resumes it from its checkpoint. Returns their ids.
    pub fn requeue_gone_workers(
        &mut self,
        is_gone: impl Fn(&str, i64) -> bool,
    ) -> Result<Vec<i64>, StoreError> {
        self.update_runs_of_gone_owners(
            "status = 'running' AND for_workers = 1",
            "status = 'queued', owner = ''",
            is_gone,
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
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE runs SET device = ?2, dataset_sha256 = ?3 WHERE id = ?1",
            params![run_id, device, dataset_sha256],
        )?;
        for (kind, blob) in snapshots {
            tx.execute(
                "INSERT OR REPLACE INTO snapshots (run_id, epoch, kind, blob) VALUES (?1, 0, ?2, ?3)",
                params![run_id, kind, blob],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The newest blob of `kind` of a run with its epoch, or `None` when it has none.
    pub fn latest_snapshot(
        &self,
        run_id: i64,
        kind: &str,
    ) -> Result<Option<(u32, Vec<u8>)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT epoch, blob FROM snapshots WHERE run_id = ?1 AND kind = ?2 \
                 ORDER BY epoch DESC LIMIT 1",
            )?
            .query_row(params![run_id, kind], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?)
    }

    /// Deletes every epoch of a run after `epoch` (metrics and blobs) in one transaction, so a
    /// run resumed from a checkpoint at `epoch` stores each later epoch once; returns how many
    /// epochs went.
    pub fn delete_epochs_after(&mut self, run_id: i64, epoch: u32) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let gone = tx.execute(
            "DELETE FROM epochs WHERE run_id = ?1 AND epoch > ?2",
            params![run_id, epoch],
        )?;
        tx.execute(
            "DELETE FROM snapshots WHERE run_id = ?1 AND epoch > ?2",
            params![run_id, epoch],
        )?;
        tx.commit()?;
        Ok(gone)
    }

    /// Hands a run to `owner` (a process resuming it) with status `running` and a fresh
    /// heartbeat.
    pub fn take_over(&self, run_id: i64, owner: &str) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE runs SET owner = ?2, status = 'running', heartbeat_unix_ms = ?3 WHERE id = ?1",
            params![run_id, owner, now_unix_ms()],
        )?;
        Ok(changed == 1)
    }

    /// Stores one snapshot blob outside an epoch's metrics (e.g. a run's probe images).
    pub fn put_snapshot(
        &self,
        run_id: i64,
        epoch: u32,
        kind: &str,
        blob: &[u8],
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO snapshots (run_id, epoch, kind, blob) VALUES (?1, ?2, ?3, ?4)",
            params![run_id, epoch, kind, blob],
        )?;
        Ok(())
    }

    /// The blobs of `kind` for epochs `from_epoch..` of a run, in epoch order.
    pub fn snapshots_from(
        &self,
        run_id: i64,
        kind: &str,
        from_epoch: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT epoch, blob FROM snapshots WHERE run_id = ?1 AND kind = ?2 AND epoch >= ?3 \
             ORDER BY epoch",
        )?;
        let rows = statement.query_map(params![run_id, kind, from_epoch], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A number that changes whenever another connection (in this process or another) has
    /// committed to the file since this connection last looked (SQLite's `data_version`): a
    /// cheap way to notice other writers.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |row| row.get(0))?)
    }

    /// Number of runs stored.
    pub fn run_count(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM runs")?
            .query_row([], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_processes_opening_a_fresh_file_at_once_all_succeed()
    -> Result<(), Box<dyn std::error::Error>> {
        // A trainer creating the store while a watcher polls it: the schema migration and the
        // switch to WAL must not fail with "database is locked" for either side.
        for round in 0..20 {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("runs.db");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        Store::open(&path).and_then(|s| s.schema_version())
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

    #[test]
    fn runs_survive_reopening() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runs.db");
        let run_id = {
            let store = Store::open(&path)?;
            assert_eq!(store.schema_version()?, SCHEMA_VERSION);
            let run_id = store.create_run("first", "{}")?;
            assert!(store.set_status(run_id, RunStatus::Completed)?);
            run_id
        };
        let store = Store::open(&path)?;
        assert_eq!(store.run_count()?, 1);
        assert_eq!(store.status(run_id)?.as_deref(), Some("completed"));
        assert_eq!(store.status(run_id + 1)?, None);
        assert!(!store.set_status(run_id + 1, RunStatus::Running)?);
        Ok(())
    }

    #[test]
    fn epochs_and_snapshots_round_trip_and_replace() -> Result<(), Box<dyn std::error::Error>> {
        let mut store = Store::open_in_memory()?;
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
        assert_eq!(store.mark_orphans_interrupted(|_, _| true)?, vec![run]);
        assert_eq!(store.status(run)?.as_deref(), Some("interrupted"));
        assert!(store.delete_run(run)?);
        assert!(!store.delete_run(run)?);
        assert_eq!(store.epochs(run)?, vec![]);
        assert_eq!(store.snapshot(run, 1, "apd")?, None);
        Ok(())
    }

    #[test]
    fn a_run_is_recorded_whole_or_not_at_all() -> Result<(), Box<dyn std::error::Error>> {
        let mut store = Store::open_in_memory()?;
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
        store.conn.execute_batch(
            "CREATE TEMP TRIGGER no_room BEFORE INSERT ON snapshots \
             BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )?;
        assert!(store.record_run(&new_run).is_err());
        assert_eq!(store.run_count()?, 1, "no half-recorded run");
        Ok(())
    }

    #[test]
    fn a_checkpoint_kind_keeps_only_the_newest_and_resuming_drops_later_epochs()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut store = Store::open_in_memory()?;
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

    #[test]
    fn workers_claim_each_queued_run_once_and_runs_of_gone_workers_go_back()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runs.db");
        let mut store = Store::open(&path)?;
        let first = store.queue_for_workers("a", "{}")?;
        let second = store.queue_for_workers("b", "{}")?;
        // Servers never mark a queued worker run interrupted: it has no owner yet.
        assert!(store.mark_orphans_interrupted(|_, _| true)?.is_empty());
        // Two workers on their own connections claim at once: each run exactly once.
        let claims: Vec<Option<i64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|w| {
                    let path = path.clone();
                    scope.spawn(move || {
                        Store::open(&path)
                            .and_then(|s| s.claim_for_worker(&format!("w{w}")))
                            .map(|row| row.map(|r| r.id))
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
        assert_eq!(claimed, [first, second]);
        let row = store.run(first)?.ok_or("run")?;
        assert_eq!(row.status, "running");
        assert!(row.owner.starts_with('w'));
        // The owner of `first` is gone: back in the queue, claimable again.
        let gone = row.owner.clone();
        assert_eq!(
            store.requeue_gone_workers(|owner, _| owner == gone)?,
            [first]
        );
        assert_eq!(store.claim_for_worker("w9")?.map(|r| r.id), Some(first));
        assert_eq!(store.claim_for_worker("w9")?, None);
        store.set_run_details(first, "flex", "abc", &[("images", &[1, 2])])?;
        let row = store.run(first)?.ok_or("run")?;
        assert_eq!(
            (row.device.as_str(), row.dataset_sha256.as_str()),
            ("flex", "abc")
        );
        assert_eq!(store.snapshot(first, 0, "images")?, Some(vec![1, 2]));
        Ok(())
    }

    #[test]
    fn only_runs_of_gone_owners_are_marked_interrupted() -> Result<(), Box<dyn std::error::Error>> {
        let mut store = Store::open_in_memory()?;
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
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(store.heartbeat("alive")?, 1);
        let after = store.run(alive)?.ok_or("run")?;
        assert!(after.heartbeat_unix_ms > before, "the heartbeat moved");
        assert_eq!(after.owner, "alive");
        let seen = std::cell::RefCell::new(Vec::new());
        let marked = store.mark_orphans_interrupted(|owner, heartbeat_unix_ms| {
            seen.borrow_mut()
                .push((owner.to_owned(), heartbeat_unix_ms > 0));
            owner == "dead"
        })?;
        assert_eq!(marked, vec![dead], "only the gone owner's live run");
        assert_eq!(
            seen.borrow().len(),
            2,
            "finished runs are not even looked at"
        );
        assert_eq!(store.status(alive)?.as_deref(), Some("running"));
        assert_eq!(store.status(dead)?.as_deref(), Some("interrupted"));
        assert_eq!(store.status(finished)?.as_deref(), Some("completed"));
        Ok(())
    }

    #[test]
    fn a_full_store_is_a_clear_error_and_keeps_what_was_stored()
    -> Result<(), Box<dyn std::error::Error>> {
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
    fn a_reader_sees_commits_and_reads_while_a_writer_holds_its_lock()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut writer = Store::open(&dir.path().join("runs.db"))?;
        let reader = writer.reopen().ok_or("a file store reopens")??;
        let run = writer.create_run("r", "{}")?;
        assert_eq!(reader.run_count()?, 1);
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM runs WHERE id = ?1", [run])?;
        // The delete is not committed and holds the write lock; the reader is not blocked.
        assert_eq!(reader.run_count()?, 1);
        let version = reader.data_version()?;
        tx.commit()?;
        assert_eq!(reader.run_count()?, 0);
        assert_ne!(
            reader.data_version()?,
            version,
            "another connection's commit shows"
        );
        let version = reader.data_version()?;
        assert_eq!(reader.data_version()?, version, "nothing new, no change");
        assert!(Store::open_in_memory()?.reopen().is_none());
        Ok(())
    }

    #[test]
    fn a_version_1_file_is_migrated() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runs.db");
        {
            let conn = Connection::open(&path)?;
            conn.execute_batch(MIGRATIONS[0])?;
            conn.pragma_update(None, "user_version", 1)?;
            conn.execute(
                "INSERT INTO runs (name, config_json, status, created_unix_secs) VALUES ('old', '{}', 'completed', 0)",
                [],
            )?;
        }
        let store = Store::open(&path)?;
        assert_eq!(store.schema_version()?, SCHEMA_VERSION);
        assert_eq!(store.run_count()?, 1);
        assert_eq!(store.epochs(1)?, vec![]);
        // Columns added later read as empty for old runs and can be filled in.
        let old = store.run(1)?.ok_or("run 1")?;
        assert_eq!((old.device.as_str(), old.dataset_sha256.as_str()), ("", ""));
        store.set_dataset_sha256(1, "abc")?;
        assert_eq!(store.run(1)?.ok_or("run 1")?.dataset_sha256, "abc");
        Ok(())
    }

    #[test]
    fn refuses_a_newer_schema() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runs.db");
        {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)?;
        }
        match Store::open(&path) {
            Err(StoreError::NewerSchema { found }) => assert_eq!(found, SCHEMA_VERSION + 1),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a newer schema must be refused"),
        }
        Ok(())
    }

    #[test]
    fn corrupt_file_is_a_clear_error() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runs.db");
        std::fs::write(&path, b"this is not a sqlite database, just some bytes....")?;
        assert!(Store::open(&path).is_err());
        Ok(())
    }
}
