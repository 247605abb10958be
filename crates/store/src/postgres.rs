//! The PostgreSQL store: runs shared by servers and workers on several machines.
//!
//! Owns: the PostgreSQL schema (the `actiscope_schema` table and [`MIGRATIONS`], the same steps
//! as SQLite's), its statements, `NOTIFY` after every change a viewer cares about and
//! `LISTEN` to follow them, claims with `FOR UPDATE SKIP LOCKED`, and the database's clock for
//! heartbeats (so machines whose clocks disagree still agree on who is silent). Does not own:
//! the store interface ([`crate::Backend`]) or anything SQLite.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Transaction};

use crate::{Backend, NewRun, RunRow, RunStatus, SCHEMA_VERSION, StoreError};

/// The same migrations as [`crate::sqlite::MIGRATIONS`], step for step, in PostgreSQL's words.
/// Snapshot blobs are stored uncompressed (`STORAGE EXTERNAL`): they are float arrays and
/// codes that compress badly, and compressing them would cost every epoch's write.
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE runs (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        config_json TEXT NOT NULL,
        status TEXT NOT NULL,
        created_unix_secs BIGINT NOT NULL
    );",
    "ALTER TABLE runs ADD COLUMN device TEXT NOT NULL DEFAULT '';
     CREATE TABLE epochs (
        run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch BIGINT NOT NULL,
        metrics_json TEXT NOT NULL,
        PRIMARY KEY (run_id, epoch)
     );
     CREATE TABLE snapshots (
        run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch BIGINT NOT NULL,
        kind TEXT NOT NULL,
        blob BYTEA NOT NULL,
        PRIMARY KEY (run_id, epoch, kind)
     );
     ALTER TABLE snapshots ALTER COLUMN blob SET STORAGE EXTERNAL;",
    "ALTER TABLE runs ADD COLUMN dataset_sha256 TEXT NOT NULL DEFAULT '';",
    "ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
     ALTER TABLE runs ADD COLUMN heartbeat_unix_ms BIGINT NOT NULL DEFAULT 0;",
    "ALTER TABLE runs ADD COLUMN for_workers INTEGER NOT NULL DEFAULT 0;",
    "ALTER TABLE runs ADD COLUMN preparation_json TEXT NOT NULL DEFAULT '';",
];

/// The advisory lock every opener takes while it reads and migrates the schema, so two
/// processes opening a fresh database at once never both migrate it.
const SCHEMA_LOCK: i64 = 0x6163_7469_7363_6f70; // "actiscop"

/// The channel changes are announced on.
const CHANNEL: &str = "actiscope";

/// How long [`Backend::wait_for_change`] goes on reading the notifications of one burst.
const DRAIN: Duration = Duration::from_millis(20);

/// The database's clock, in milliseconds since the Unix epoch.
const CLOCK_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

const RUN_COLUMNS: &str = "r.id, r.name, r.config_json, r.status, r.device, r.created_unix_secs, \
     r.dataset_sha256, (SELECT COUNT(*) FROM epochs e WHERE e.run_id = r.id), r.owner, \
     r.heartbeat_unix_ms, r.preparation_json";

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> Self {
        if err.code() == Some(&postgres::error::SqlState::DISK_FULL) {
            Self::Full(err.to_string())
        } else {
            Self::Postgres(err)
        }
    }
}

fn epoch_of(stored: i64) -> Result<u32, StoreError> {
    u32::try_from(stored).map_err(|_| StoreError::Invalid(format!("epoch {stored}")))
}

fn run_row(row: &postgres::Row) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        config_json: row.try_get(2)?,
        status: row.try_get(3)?,
        device: row.try_get(4)?,
        created_unix_secs: row.try_get(5)?,
        dataset_sha256: row.try_get(6)?,
        epochs_stored: epoch_of(row.try_get(7)?)?,
        owner: row.try_get(8)?,
        heartbeat_unix_ms: row.try_get(9)?,
        preparation_json: row.try_get(10)?,
    })
}

/// Runs `f` where no tokio runtime is being driven. The synchronous client blocks on a
/// runtime of its own, which tokio refuses (with a panic) on a thread that drives another, as
/// the server's request handlers do: there `f` runs on a scoped thread of its own (tens of
/// microseconds, small beside a round trip to the database).
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// One connection to a PostgreSQL database. A connection the server closed (a restart, a
/// network cut) is opened again on the next call.
pub(crate) struct Postgres {
    config: postgres::Config,
    /// Always `Some` but while being dropped (see the `Drop` impl).
    client: RefCell<Option<Client>>,
    /// Whether this connection has said `LISTEN` (a fresh connection has not).
    listening: Cell<bool>,
    /// Whether the last call failed because the connection was lost. The client may not
    /// have noticed the closed socket yet (the server's goodbye arrives before its FIN), so
    /// the next call opens a new connection rather than trusting `is_closed`.
    lost: Cell<bool>,
}

/// Whether `error` means the connection itself is gone (closed, reset, or ended by the
/// server with a FATAL error such as an administrator's `pg_terminate_backend`), rather than
/// one statement failing on a working connection.
fn connection_lost(error: &StoreError) -> bool {
    let StoreError::Postgres(error) = error else {
        return false;
    };
    error.is_closed()
        || error
            .as_db_error()
            .is_some_and(|db| db.severity() == "FATAL" || db.severity() == "PANIC")
        || std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

/// How durably a write transaction commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Waits until the commit is on disk (PostgreSQL's default): claims, statuses, runs.
    Durable,
    /// Returns once the commit is in the WAL buffers (`synchronous_commit = off` for this
    /// transaction only); the WAL writer flushes it within a few hundred milliseconds. A
    /// database crash can lose the last such commits, never part of one, and never one that
    /// precedes a durable commit (WAL is flushed in order). Used for epochs: an epoch and
    /// the checkpoint it carries are written together, so a lost epoch is one the run's
    /// resume trains again from the last checkpoint that survived.
    Lazy,
}

impl Postgres {
    /// Connects and brings the schema up to date.
    pub(crate) fn connect(config: postgres::Config) -> Result<Self, StoreError> {
        let client = off_runtime(|| Self::open_and_migrate(&config))?;
        Ok(Self {
            config,
            client: RefCell::new(Some(client)),
            listening: Cell::new(false),
            lost: Cell::new(false),
        })
    }

    fn open_and_migrate(config: &postgres::Config) -> Result<Client, StoreError> {
        let mut client = config.connect(NoTls)?;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS actiscope_schema (version BIGINT NOT NULL)")?;
        let found: i64 = match tx.query_opt("SELECT version FROM actiscope_schema", &[])? {
            Some(row) => row.try_get(0)?,
            None => {
                tx.execute("INSERT INTO actiscope_schema (version) VALUES (0)", &[])?;
                0
            }
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found });
        }
        for (version, migration) in (1_i64..)
            .zip(MIGRATIONS)
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.batch_execute(migration)?;
            tx.execute("UPDATE actiscope_schema SET version = $1", &[&version])?;
        }
        tx.commit()?;
        Ok(client)
    }

    /// Runs `f` on the connection, opening it again first when the server closed it.
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut slot = self
            .client
            .try_borrow_mut()
            .map_err(|_| StoreError::Invalid("the connection is in use".to_owned()))?;
        let client = slot
            .as_mut()
            .ok_or_else(|| StoreError::Invalid("the connection is closed".to_owned()))?;
        if client.is_closed() || self.lost.get() {
            let config = &self.config;
            *client = off_runtime(|| config.connect(NoTls))?;
            self.listening.set(false);
            self.lost.set(false);
        }
        let result = off_runtime(|| f(client));
        if let Err(error) = &result {
            self.lost.set(connection_lost(error));
        }
        result
    }

    /// Runs `f` in a transaction that announces a change to every listener when it commits
    /// durably.
    fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.write_with(Commit::Durable, f)
    }

    /// [`write`](Self::write) with a chosen durability.
    fn write_with<T: Send>(
        &self,
        commit: Commit,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let finish = match commit {
            Commit::Durable => format!("NOTIFY {CHANNEL}"),
            Commit::Lazy => format!("SET LOCAL synchronous_commit = off; NOTIFY {CHANNEL}"),
        };
        self.with(|client| {
            let mut tx = client.transaction()?;
            let out = f(&mut tx)?;
            tx.batch_execute(&finish)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn put_blobs(
        tx: &mut Transaction<'_>,
        run_id: i64,
        epoch: u32,
        snapshots: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let statement = tx.prepare(
            "INSERT INTO snapshots (run_id, epoch, kind, blob) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run_id, epoch, kind) DO UPDATE SET blob = EXCLUDED.blob",
        )?;
        for (kind, blob) in snapshots {
            tx.execute(&statement, &[&run_id, &i64::from(epoch), kind, blob])?;
        }
        Ok(())
    }
}

impl Backend for Postgres {
    fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|client| {
            Ok(client
                .query_one("SELECT version FROM actiscope_schema", &[])?
                .try_get(0)?)
        })
    }

    fn limit_size(&self, _max_bytes: u64) -> Result<(), StoreError> {
        Err(StoreError::Invalid(
            "a size limit is set on the PostgreSQL server (tablespace, quota), not by actiscope"
                .to_owned(),
        ))
    }

    fn clock_unix_ms(&self) -> Result<i64, StoreError> {
        self.with(|client| {
            Ok(client
                .query_one(&format!("SELECT {CLOCK_MS}"), &[])?
                .try_get(0)?)
        })
    }

    fn create_run(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        self.write(|tx| {
            Ok(tx
                .query_one(
                    &format!(
                        "INSERT INTO runs (name, config_json, status, created_unix_secs) \
                         VALUES ($1, $2, $3, {CLOCK_MS} / 1000) RETURNING id"
                    ),
                    &[&name, &config_json, &RunStatus::Running.as_str()],
                )?
                .try_get(0)?)
        })
    }

    fn record_run(&mut self, run: &NewRun<'_>) -> Result<i64, StoreError> {
        self.write(|tx| {
            let run_id: i64 = tx
                .query_one(
                    &format!(
                        "INSERT INTO runs (name, config_json, status, created_unix_secs, device, \
                         dataset_sha256, owner, heartbeat_unix_ms) \
                         VALUES ($1, $2, $3, {CLOCK_MS} / 1000, $4, $5, $6, {CLOCK_MS}) RETURNING id"
                    ),
                    &[
                        &run.name,
                        &run.config_json,
                        &RunStatus::Running.as_str(),
                        &run.device,
                        &run.dataset_sha256,
                        &run.owner,
                    ],
                )?
                .try_get(0)?;
            Self::put_blobs(tx, run_id, 0, run.snapshots)?;
            Ok(run_id)
        })
    }

    fn set_status(&self, run_id: i64, status: RunStatus) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE runs SET status = $1 WHERE id = $2",
                &[&status.as_str(), &run_id],
            )? == 1)
        })
    }

    fn set_preparation(&self, run_id: i64, preparation_json: &str) -> Result<bool, StoreError> {
        // Progress for people: worth a notification, not a durable commit.
        self.write_with(Commit::Lazy, |tx| {
            Ok(tx.execute(
                "UPDATE runs SET preparation_json = $1 WHERE id = $2",
                &[&preparation_json, &run_id],
            )? == 1)
        })
    }

    fn status(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        self.with(|client| {
            client
                .query_opt("SELECT status FROM runs WHERE id = $1", &[&run_id])?
                .map(|row| row.try_get(0))
                .transpose()
                .map_err(StoreError::from)
        })
    }

    fn set_dataset_sha256(&self, run_id: i64, sha256: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE runs SET dataset_sha256 = $1 WHERE id = $2",
                &[&sha256, &run_id],
            )?;
            Ok(())
        })
    }

    fn put_epoch_keeping_latest(
        &mut self,
        run_id: i64,
        epoch: u32,
        metrics_json: &str,
        snapshots: &[(&str, &[u8])],
        latest_only: &[&str],
    ) -> Result<(), StoreError> {
        let epoch_i64 = i64::from(epoch);
        self.write_with(Commit::Lazy, |tx| {
            for kind in latest_only {
                if snapshots.iter().any(|(k, _)| k == kind) {
                    tx.execute(
                        "DELETE FROM snapshots WHERE run_id = $1 AND kind = $2 AND epoch < $3",
                        &[&run_id, kind, &epoch_i64],
                    )?;
                }
            }
            tx.execute(
                "INSERT INTO epochs (run_id, epoch, metrics_json) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, epoch) DO UPDATE SET metrics_json = EXCLUDED.metrics_json",
                &[&run_id, &epoch_i64, &metrics_json],
            )?;
            Self::put_blobs(tx, run_id, epoch, snapshots)
        })
    }

    fn epochs(&self, run_id: i64) -> Result<Vec<(u32, String)>, StoreError> {
        self.with(|client| {
            client
                .query(
                    "SELECT epoch, metrics_json FROM epochs WHERE run_id = $1 ORDER BY epoch",
                    &[&run_id],
                )?
                .iter()
                .map(|row| Ok((epoch_of(row.try_get(0)?)?, row.try_get(1)?)))
                .collect()
        })
    }

    fn snapshot(&self, run_id: i64, epoch: u32, kind: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|client| {
            client
                .query_opt(
                    "SELECT blob FROM snapshots WHERE run_id = $1 AND epoch = $2 AND kind = $3",
                    &[&run_id, &i64::from(epoch), &kind],
                )?
                .map(|row| row.try_get(0))
                .transpose()
                .map_err(StoreError::from)
        })
    }

    fn delete_run(&mut self, run_id: i64) -> Result<bool, StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM snapshots WHERE run_id = $1", &[&run_id])?;
            tx.execute("DELETE FROM epochs WHERE run_id = $1", &[&run_id])?;
            Ok(tx.execute("DELETE FROM runs WHERE id = $1", &[&run_id])? == 1)
        })
    }

    fn heartbeat(&self, owner: &str) -> Result<usize, StoreError> {
        // No NOTIFY: a heartbeat changes nothing a viewer shows.
        self.with(|client| {
            let updated = client.execute(
                &format!(
                    "UPDATE runs SET heartbeat_unix_ms = {CLOCK_MS} \
                     WHERE owner = $1 AND status IN ('running', 'queued')"
                ),
                &[&owner],
            )?;
            Ok(usize::try_from(updated).unwrap_or(usize::MAX))
        })
    }

    fn update_runs_of_gone_owners(
        &mut self,
        filter: &str,
        set: &str,
        is_gone: &(dyn Fn(&str, i64) -> bool + Sync),
    ) -> Result<Vec<i64>, StoreError> {
        self.write(|tx| {
            // FOR UPDATE: a worker claiming or heartbeating one of these waits for this
            // transaction, and two servers never both act on the same run.
            let candidates = tx.query(
                &format!("SELECT id, owner, heartbeat_unix_ms FROM runs WHERE {filter} FOR UPDATE"),
                &[],
            )?;
            let mut updated = Vec::new();
            for row in candidates {
                let (run_id, owner, heartbeat_unix_ms): (i64, String, i64) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                if is_gone(&owner, heartbeat_unix_ms) {
                    tx.execute(&format!("UPDATE runs SET {set} WHERE id = $1"), &[&run_id])?;
                    updated.push(run_id);
                }
            }
            Ok(updated)
        })
    }

    fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        self.with(|client| {
            client
                .query(
                    &format!("SELECT {RUN_COLUMNS} FROM runs r ORDER BY r.id DESC"),
                    &[],
                )?
                .iter()
                .map(run_row)
                .collect()
        })
    }

    fn run(&self, run_id: i64) -> Result<Option<RunRow>, StoreError> {
        self.with(|client| {
            client
                .query_opt(
                    &format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = $1"),
                    &[&run_id],
                )?
                .as_ref()
                .map(run_row)
                .transpose()
        })
    }

    fn queue_for_workers(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        self.write(|tx| {
            Ok(tx
                .query_one(
                    &format!(
                        "INSERT INTO runs (name, config_json, status, created_unix_secs, owner, \
                         heartbeat_unix_ms, for_workers) \
                         VALUES ($1, $2, 'queued', {CLOCK_MS} / 1000, '', 0, 1) RETURNING id"
                    ),
                    &[&name, &config_json],
                )?
                .try_get(0)?)
        })
    }

    fn queue_again_for_workers(&self, run_id: i64) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE runs SET status = 'queued', owner = '', for_workers = 1 WHERE id = $1",
                &[&run_id],
            )? == 1)
        })
    }

    fn claim_for_worker(&self, owner: &str) -> Result<Option<RunRow>, StoreError> {
        // SKIP LOCKED: a worker passes over a run another worker is claiming this instant
        // instead of waiting for it, so claims never queue behind each other.
        let claimed: Option<i64> = self.write(|tx| {
            tx.query_opt(
                &format!(
                    "UPDATE runs SET status = 'running', owner = $1, heartbeat_unix_ms = {CLOCK_MS} \
                     WHERE id = (SELECT id FROM runs WHERE status = 'queued' AND owner = '' \
                     AND for_workers = 1 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
                ),
                &[&owner],
            )?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(StoreError::from)
        })?;
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
        self.write(|tx| {
            tx.execute(
                "UPDATE runs SET device = $2, dataset_sha256 = $3 WHERE id = $1",
                &[&run_id, &device, &dataset_sha256],
            )?;
            Self::put_blobs(tx, run_id, 0, snapshots)
        })
    }

    fn latest_snapshot(
        &self,
        run_id: i64,
        kind: &str,
    ) -> Result<Option<(u32, Vec<u8>)>, StoreError> {
        self.with(|client| {
            client
                .query_opt(
                    "SELECT epoch, blob FROM snapshots WHERE run_id = $1 AND kind = $2 \
                     ORDER BY epoch DESC LIMIT 1",
                    &[&run_id, &kind],
                )?
                .map(|row| Ok((epoch_of(row.try_get(0)?)?, row.try_get(1)?)))
                .transpose()
        })
    }

    fn delete_epochs_after(&mut self, run_id: i64, epoch: u32) -> Result<usize, StoreError> {
        let epoch = i64::from(epoch);
        self.write(|tx| {
            let gone = tx.execute(
                "DELETE FROM epochs WHERE run_id = $1 AND epoch > $2",
                &[&run_id, &epoch],
            )?;
            tx.execute(
                "DELETE FROM snapshots WHERE run_id = $1 AND epoch > $2",
                &[&run_id, &epoch],
            )?;
            Ok(usize::try_from(gone).unwrap_or(usize::MAX))
        })
    }

    fn take_over(&self, run_id: i64, owner: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                &format!(
                    "UPDATE runs SET owner = $2, status = 'running', \
                     heartbeat_unix_ms = {CLOCK_MS} WHERE id = $1"
                ),
                &[&run_id, &owner],
            )? == 1)
        })
    }

    fn put_snapshot(
        &self,
        run_id: i64,
        epoch: u32,
        kind: &str,
        blob: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|tx| Self::put_blobs(tx, run_id, epoch, &[(kind, blob)]))
    }

    fn snapshots_from(
        &self,
        run_id: i64,
        kind: &str,
        from_epoch: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        self.with(|client| {
            client
                .query(
                    "SELECT epoch, blob FROM snapshots WHERE run_id = $1 AND kind = $2 \
                     AND epoch >= $3 ORDER BY epoch",
                    &[&run_id, &kind, &i64::from(from_epoch)],
                )?
                .iter()
                .map(|row| Ok((epoch_of(row.try_get(0)?)?, row.try_get(1)?)))
                .collect()
        })
    }

    fn wait_for_change(&self, timeout: Duration) -> Result<bool, StoreError> {
        if !self.listening.get() {
            // A fresh (or re-opened) connection may have missed changes: say so.
            self.with(|client| Ok(client.batch_execute(&format!("LISTEN {CHANNEL}"))?))?;
            self.listening.set(true);
            return Ok(true);
        }
        self.with(|client| {
            let mut notifications = client.notifications();
            let changed = notifications.timeout_iter(timeout).next()?.is_some();
            // What has already arrived is the same news (a burst of commits is one change):
            // read it without waiting for more, so the caller hears of a commit at once, and
            // for no longer than DRAIN so a steady stream still wakes the caller.
            if changed {
                let drain_until = std::time::Instant::now() + DRAIN;
                let mut pending = notifications.iter();
                while std::time::Instant::now() < drain_until && pending.next()?.is_some() {}
            }
            drop(notifications);
            if !changed && client.is_closed() {
                return Err(StoreError::Invalid(
                    "the PostgreSQL server closed the connection".to_owned(),
                ));
            }
            Ok(changed)
        })
    }

    fn run_count(&self) -> Result<u64, StoreError> {
        self.with(|client| {
            let count: i64 = client
                .query_one("SELECT COUNT(*) FROM runs", &[])?
                .try_get(0)?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }

    #[cfg(test)]
    fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        self.with(|client| Ok(client.batch_execute(sql)?))
    }
}

impl Drop for Postgres {
    /// Closing the client blocks on its runtime, which must not happen on a thread driving
    /// another: there it closes on a thread of its own.
    fn drop(&mut self) {
        if let Some(client) = self.client.get_mut().take() {
            off_runtime(move || drop(client));
        }
    }
}
