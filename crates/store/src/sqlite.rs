//! The SQLite store: one file in WAL mode, the embedded default.
//!
//! Owns: the SQLite schema (`PRAGMA user_version` and [`MIGRATIONS`]), its statements, and
//! noticing other connections' commits through `PRAGMA data_version`. Does not own: the store
//! interface ([`crate::Backend`]) or anything PostgreSQL.

use std::cell::Cell;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{Backend, NewRun, RunRow, RunStatus, SCHEMA_VERSION, StoreError, now_unix_ms};

/// How long an opener waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema migrations, applied in order; entry `i` moves the schema from version `i` to `i + 1`.
/// [`crate::postgres::MIGRATIONS`] makes the same steps in PostgreSQL's words.
pub(crate) const MIGRATIONS: &[&str] = &[
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
    "ALTER TABLE runs ADD COLUMN preparation_json TEXT NOT NULL DEFAULT '';",
];

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
            Self::Full(err.to_string())
        } else {
            Self::Sqlite(err)
        }
    }
}

const RUN_COLUMNS: &str = "r.id, r.name, r.config_json, r.status, r.device, r.created_unix_secs, r.dataset_sha256, \
     (SELECT COUNT(*) FROM epochs e WHERE e.run_id = r.id), r.owner, r.heartbeat_unix_ms, \
     r.preparation_json";

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
        preparation_json: row.get(10)?,
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
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return Ok(other?),
        }
    }
}

/// One connection to a store file.
pub(crate) struct Sqlite {
    pub(crate) conn: Connection,
    /// The `data_version` [`Backend::wait_for_change`] saw last; `None` before its first call.
    seen_version: Cell<Option<i64>>,
}

impl Sqlite {
    /// Opens (creating if needed) the file at `path` and brings its schema up to date.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?)
    }

    /// A private in-memory store.
    pub(crate) fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
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
        Ok(Self {
            conn,
            seen_version: Cell::new(None),
        })
    }

    /// SQLite's `data_version`: it changes whenever another connection committed since this
    /// one last looked.
    pub(crate) fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |row| row.get(0))?)
    }

    fn put_blobs(
        tx: &rusqlite::Transaction<'_>,
        run_id: i64,
        epoch: u32,
        snapshots: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        for (kind, blob) in snapshots {
            tx.execute(
                "INSERT OR REPLACE INTO snapshots (run_id, epoch, kind, blob) VALUES (?1, ?2, ?3, ?4)",
                params![run_id, epoch, kind, blob],
            )?;
        }
        Ok(())
    }
}

impl Backend for Sqlite {
    fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))?)
    }

    fn limit_size(&self, max_bytes: u64) -> Result<(), StoreError> {
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

    fn clock_unix_ms(&self) -> Result<i64, StoreError> {
        Ok(now_unix_ms())
    }

    fn create_run(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO runs (name, config_json, status, created_unix_secs) VALUES (?1, ?2, ?3, ?4)",
            params![name, config_json, RunStatus::Running.as_str(), now_unix_ms() / 1000],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn record_run(&mut self, run: &NewRun<'_>) -> Result<i64, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO runs (name, config_json, status, created_unix_secs, device, \
             dataset_sha256, owner, heartbeat_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                run.name,
                run.config_json,
                RunStatus::Running.as_str(),
                now_unix_ms() / 1000,
                run.device,
                run.dataset_sha256,
                run.owner,
                now_unix_ms()
            ],
        )?;
        let run_id = tx.last_insert_rowid();
        Self::put_blobs(&tx, run_id, 0, run.snapshots)?;
        tx.commit()?;
        Ok(run_id)
    }

    fn set_status(&self, run_id: i64, status: RunStatus) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE runs SET status = ?1 WHERE id = ?2",
            params![status.as_str(), run_id],
        )?;
        Ok(changed == 1)
    }

    fn set_preparation(&self, run_id: i64, preparation_json: &str) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE runs SET preparation_json = ?1 WHERE id = ?2",
            params![preparation_json, run_id],
        )?;
        Ok(changed == 1)
    }

    fn status(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT status FROM runs WHERE id = ?1")?
            .query_row([run_id], |row| row.get(0))
            .optional()?)
    }

    fn set_dataset_sha256(&self, run_id: i64, sha256: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET dataset_sha256 = ?1 WHERE id = ?2",
            params![sha256, run_id],
        )?;
        Ok(())
    }

    fn put_epoch_keeping_latest(
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
        Self::put_blobs(&tx, run_id, epoch, snapshots)?;
        tx.commit()?;
        Ok(())
    }

    fn epochs(&self, run_id: i64) -> Result<Vec<(u32, String)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT epoch, metrics_json FROM epochs WHERE run_id = ?1 ORDER BY epoch",
        )?;
        let rows = statement.query_map([run_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn snapshot(&self, run_id: i64, epoch: u32, kind: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT blob FROM snapshots WHERE run_id = ?1 AND epoch = ?2 AND kind = ?3",
            )?
            .query_row(params![run_id, epoch, kind], |row| row.get(0))
            .optional()?)
    }

    fn delete_run(&mut self, run_id: i64) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM snapshots WHERE run_id = ?1", [run_id])?;
        tx.execute("DELETE FROM epochs WHERE run_id = ?1", [run_id])?;
        let deleted = tx.execute("DELETE FROM runs WHERE id = ?1", [run_id])?;
        tx.commit()?;
        Ok(deleted == 1)
    }

    fn heartbeat(&self, owner: &str) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE runs SET heartbeat_unix_ms = ?1 \
             WHERE owner = ?2 AND status IN ('running', 'queued')",
            params![now_unix_ms(), owner],
        )?)
    }

    fn update_runs_of_gone_owners(
        &mut self,
        filter: &str,
        set: &str,
        is_gone: &(dyn Fn(&str, i64) -> bool + Sync),
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

    fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r ORDER BY r.id DESC"
        ))?;
        let rows = statement.query_map([], run_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn run(&self, run_id: i64) -> Result<Option<RunRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = ?1"))?
            .query_row([run_id], run_row)
            .optional()?)
    }

    fn queue_for_workers(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO runs (name, config_json, status, created_unix_secs, owner, \
             heartbeat_unix_ms, for_workers) VALUES (?1, ?2, 'queued', ?3, '', 0, 1)",
            params![name, config_json, now_unix_ms() / 1000],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn queue_again_for_workers(&self, run_id: i64) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE runs SET status = 'queued', owner = '', for_workers = 1 WHERE id = ?1",
            [run_id],
        )?;
        Ok(changed == 1)
    }

    fn claim_for_worker(&self, owner: &str) -> Result<Option<RunRow>, StoreError> {
        // One statement: SQLite runs it under the file's single write lock, so two workers
        // never take the same run.
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

    fn set_run_details(
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
        Self::put_blobs(&tx, run_id, 0, snapshots)?;
        tx.commit()?;
        Ok(())
    }

    fn latest_snapshot(
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

    fn delete_epochs_after(&mut self, run_id: i64, epoch: u32) -> Result<usize, StoreError> {
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

    fn take_over(&self, run_id: i64, owner: &str) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE runs SET owner = ?2, status = 'running', heartbeat_unix_ms = ?3 WHERE id = ?1",
            params![run_id, owner, now_unix_ms()],
        )?;
        Ok(changed == 1)
    }

    fn put_snapshot(
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

    fn snapshots_from(
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

    fn wait_for_change(&self, timeout: Duration) -> Result<bool, StoreError> {
        if self.seen_version.get().is_some() {
            std::thread::sleep(timeout);
        }
        let now = self.data_version()?;
        Ok(self.seen_version.replace(Some(now)) != Some(now))
    }

    fn run_count(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM runs")?
            .query_row([], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    #[cfg(test)]
    fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch(sql)?)
    }
}
