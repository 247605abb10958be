//! What the store costs on each engine, SQLite (a WAL file) beside PostgreSQL (a throw-away
//! server from `initdb`, PostgreSQL's default durability, over loopback TCP), same work on
//! both. Run by `cargo xtask bench-workers`.
//!
//! - Per-epoch overhead: the blobs and metrics of epoch 1 of run `RUN` in `SOURCE` (a real
//!   run of the paper MLP) are written as 30 epochs of a new run; each is timed from the
//!   write's start until another connection (a server's watcher) has noticed the commit
//!   (`wait_for_change`: SQLite's `data_version`, PostgreSQL's `NOTIFY`) and read that epoch's
//!   blob back. Median and mean over the 30.
//! - Claims: `N` queued runs (default 1,000) claimed one by one as a worker does.
//!
//! Usage: `store_overhead SOURCE RUN [N]`, or `store_overhead --postgres-server`: start a
//! throw-away server, print a URL of a fresh database on it, and stop it when stdin closes
//! (the sweep of `cargo xtask bench-workers` queues and trains through it).

use std::time::{Duration, Instant};

use actiscope_store::testing::TestPostgres;
use actiscope_store::{Store, StoreLocation};

const EPOCHS: u32 = 30;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Milliseconds per epoch, write to read by another connection, and of those the write's
/// commit alone, for `EPOCHS` epochs.
fn epoch_overhead(
    location: &StoreLocation,
    metrics_json: &str,
    blobs: &[(String, Vec<u8>)],
) -> Result<(Vec<f64>, Vec<f64>), Box<dyn std::error::Error>> {
    let mut writer = Store::connect(location)?;
    let reader = Store::connect(location)?;
    let run_id = writer.create_run("overhead", "{}")?;
    let (epoch_kind, _) = blobs.first().ok_or("the source epoch has no blob")?;
    let wait = match location {
        StoreLocation::File(_) => Duration::ZERO,
        StoreLocation::Postgres(_) => Duration::from_secs(5),
    };
    reader.wait_for_change(Duration::ZERO)?;
    let kinds: Vec<(&str, &[u8])> = blobs
        .iter()
        .map(|(kind, blob)| (kind.as_str(), blob.as_slice()))
        .collect();
    let mut millis = Vec::new();
    let mut write_millis = Vec::new();
    for epoch in 1..=EPOCHS {
        let started = Instant::now();
        writer.put_epoch_keeping_latest(run_id, epoch, metrics_json, &kinds, &["checkpoint"])?;
        write_millis.push(started.elapsed().as_secs_f64() * 1e3);
        if !reader.wait_for_change(wait)? {
            return Err(format!("epoch {epoch}'s commit was not noticed").into());
        }
        let read = reader.snapshots_from(run_id, epoch_kind, epoch)?;
        let stored = reader.runs()?;
        if read.len() != 1 || stored.first().map(|r| r.epochs_stored) != Some(epoch) {
            return Err(format!("epoch {epoch} did not read back").into());
        }
        millis.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok((millis, write_millis))
}

/// Microseconds per claim of `count` queued runs.
fn claims(location: &StoreLocation, count: usize) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let store = Store::connect(location)?;
    for i in 0..count {
        store.queue_for_workers(&format!("run {i}"), "{}")?;
    }
    let mut micros = Vec::with_capacity(count);
    loop {
        let one = Instant::now();
        if store.claim_for_worker("bench/1/1")?.is_none() {
            break;
        }
        micros.push(one.elapsed().as_secs_f64() * 1e6);
    }
    Ok(micros)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let source = args.next().ok_or("usage: store_overhead SOURCE RUN [N]")?;
    if source == "--postgres-server" {
        let postgres = TestPostgres::start(true)?;
        println!("{}", postgres.url(&postgres.fresh_database()?));
        std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
        return Ok(());
    }
    let run: i64 = args
        .next()
        .ok_or("usage: store_overhead SOURCE RUN [N]")?
        .parse()?;
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);

    let source = Store::open(std::path::Path::new(&source))?;
    let (_, metrics_json) = source
        .epochs(run)?
        .into_iter()
        .next()
        .ok_or("the source run has no epoch")?;
    let mut blobs = Vec::new();
    for kind in ["epoch", "train_patterns", "checkpoint"] {
        if let Some(blob) = source.snapshot(run, 1, kind)? {
            blobs.push((kind.to_owned(), blob));
        }
    }
    let bytes: usize = blobs.iter().map(|(_, b)| b.len()).sum();
    let kinds: Vec<String> = blobs
        .iter()
        .map(|(kind, blob)| format!("{kind} {} KB", blob.len() / 1024))
        .collect();
    println!(
        "one epoch of the paper MLP: {} KB of blobs ({})",
        bytes / 1024,
        kinds.join(", ")
    );

    let dir = tempfile::tempdir()?;
    let postgres = TestPostgres::start(true)?;
    let engines = [
        (
            "SQLite (WAL file)",
            StoreLocation::File(dir.path().join("overhead.db")),
        ),
        (
            "PostgreSQL (loopback TCP)",
            postgres.location(&postgres.fresh_database()?),
        ),
    ];
    let mut medians = Vec::new();
    for (name, location) in &engines {
        let (mut millis, mut write_millis) = epoch_overhead(location, &metrics_json, &blobs)?;
        let average = mean(&millis);
        let middle = median(&mut millis);
        medians.push(middle);
        println!(
            "per epoch, write + notify + another connection's read, {EPOCHS} epochs, {name}: \
             median {middle:.2} ms, mean {average:.2} ms (the write's commit alone: median \
             {:.2} ms)",
            median(&mut write_millis)
        );
    }
    if let [sqlite, postgres] = medians[..] {
        println!(
            "PostgreSQL costs {:.2} ms per epoch more than SQLite (goal: under 5 ms)",
            postgres - sqlite
        );
    }
    let engines = [
        (
            "SQLite (WAL file)",
            StoreLocation::File(dir.path().join("claims.db")),
        ),
        (
            "PostgreSQL, SKIP LOCKED",
            postgres.location(&postgres.fresh_database()?),
        ),
    ];
    for (name, location) in &engines {
        let mut micros = claims(location, count)?;
        let average = mean(&micros);
        println!(
            "claims: {} one by one, {name}: mean {average:.1} us, median {:.1} us per claim",
            micros.len(),
            median(&mut micros)
        );
    }
    Ok(())
}
