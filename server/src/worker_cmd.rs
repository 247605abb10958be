//! `actiscope submit` queues a run in the store; `actiscope worker` claims queued runs and
//! trains them, on as many slots as asked. A worker's runs carry its heartbeat; when a worker
//! dies (its process is gone, or it has been silent for 30 s), any other worker puts its run
//! back in the queue and the next to claim it resumes it from its newest checkpoint, so no
//! epoch is lost or stored twice. `actiscope serve --no-train` queues the runs started from
//! the dashboard or the API the same way and streams what the workers store.
//!
//! The queue lives in the run store, SQLite or PostgreSQL: a claim is one `UPDATE …
//! RETURNING` statement (with `FOR UPDATE SKIP LOCKED` on PostgreSQL), so two workers never
//! take the same run, on one machine or many. On PostgreSQL an idle worker is woken by the
//! `NOTIFY` of a newly queued run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actiscope_store::{RunRow, RunStatus, Store, StoreError};
use actiscope_train::device::DeviceChoice;
use actiscope_train::{TrainConfig, Trainer};
use anyhow::Context;

use crate::runner::{
    CaptureMode, RunError, RunProgress, record_details, run_name, run_to_completion,
};
use crate::train_cmd::{TrainArgs, bad, build_config, open_store};

/// How long an idle worker waits before it looks at the queue again.
const POLL: Duration = Duration::from_millis(200);

/// Arguments of `actiscope worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The run store: a SQLite file (created when missing) or a PostgreSQL database,
    /// `postgres://user@host:port/database` (password in the URL, `PGPASSWORD` or `~/.pgpass`).
    #[arg(long, default_value = "runs.db")]
    pub store: actiscope_store::StoreLocation,
    /// Runs trained at the same time.
    #[arg(long, default_value_t = 1)]
    pub slots: usize,
    /// Train every claimed run on this device (auto, wgpu, vulkan or flex) whatever its
    /// configuration says: a GPU machine's worker says `--device wgpu`. A run resumed here
    /// from another machine's checkpoint continues on this device.
    #[arg(long)]
    pub device: Option<String>,
    /// Exit once the queue is empty and no slot is training (instead of waiting for more).
    #[arg(long)]
    pub exit_when_idle: bool,
}

/// Runs `actiscope submit`: the run's configuration is validated like `train`'s, then queued.
pub fn submit(args: &TrainArgs) -> anyhow::Result<()> {
    let config = build_config(args)?;
    let store = open_store(&args.store)?;
    let config_json = serde_json::to_string(&config).context("encoding the configuration")?;
    let run_id = store.queue_for_workers(&run_name(&config), &config_json)?;
    eprintln!(
        "queued run {run_id} ({}) in {}; `actiscope worker --store {}` trains it",
        run_name(&config),
        args.store,
        args.store
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "run_id": run_id, "status": "queued" })
        );
    }
    Ok(())
}

/// Runs `actiscope worker`.
pub fn worker(args: &WorkerArgs) -> anyhow::Result<()> {
    if args.slots == 0 {
        return Err(bad("--slots must be at least 1"));
    }
    let device = args
        .device
        .as_deref()
        .map(DeviceChoice::parse)
        .transpose()
        .map_err(|err| bad(err.to_string()))?;
    let store = open_store(&args.store)?;
    let owner = crate::owner::this_process();
    let _heartbeat = crate::owner::Heartbeat::start(&store, owner.clone())
        .context("starting the worker's heartbeat")?;
    drop(store);
    let stop = crate::ctrl_c::stop_flag()?;
    eprintln!("worker {owner}: {} slot(s) on {}", args.slots, args.store);
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
        let slots: Vec<_> = (0..args.slots)
            .map(|slot| {
                let (owner, stop) = (owner.as_str(), stop.as_ref());
                scope.spawn(move || serve_slot(args, device, owner, slot, stop))
            })
            .collect();
        slots
            .into_iter()
            .map(|s| {
                s.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker slot panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// One slot: claim, train, repeat, until Ctrl-C (or an empty queue with `exit_when_idle`).
fn serve_slot(
    args: &WorkerArgs,
    device: Option<DeviceChoice>,
    owner: &str,
    slot: usize,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut store = open_store(&args.store)?;
    while !stop.load(Ordering::SeqCst) {
        // A busy or failing store is waited out, not fatal: the slot tries again.
        match crate::owner::requeue_orphans(&mut store, owner) {
            Ok(requeued) => {
                for run_id in requeued {
                    eprintln!(
                        "slot {slot}: run {run_id}'s worker is gone; it goes back in the queue"
                    );
                }
            }
            Err(err) => eprintln!("slot {slot}: cannot check for dead workers: {err}"),
        }
        let claimed = match store.claim_for_worker(owner) {
            Ok(claimed) => claimed,
            Err(err) => {
                eprintln!("slot {slot}: cannot claim a run: {err}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let Some(row) = claimed else {
            if args.exit_when_idle {
                return Ok(());
            }
            // Woken at once by a run queued on PostgreSQL (NOTIFY); SQLite looks again after
            // POLL. Either way, dead workers' runs are looked for at least that often.
            if let Err(err) = store.wait_for_change(POLL) {
                eprintln!("slot {slot}: cannot follow the queue: {err}");
                std::thread::sleep(POLL);
            }
            continue;
        };
        let run_id = row.id;
        store = match train_claimed(store, row, device, slot, stop) {
            Ok(store) => store,
            Err(err) => {
                eprintln!("slot {slot}: run {run_id} failed: {err:#}");
                // The store failing (a database restart, a network cut) is not the run's
                // fault: once the store answers again the run goes back in the queue and is
                // resumed from its checkpoint. Any other failure leaves it interrupted.
                let store_failed = err.chain().any(|cause| {
                    cause.is::<StoreError>()
                        || matches!(cause.downcast_ref::<RunError>(), Some(RunError::Store(_)))
                });
                let store = reconnect(args, slot, stop)?;
                let _ = if store_failed {
                    store.queue_again_for_workers(run_id)
                } else {
                    store.set_status(run_id, RunStatus::Interrupted)
                };
                store
            }
        };
    }
    Ok(())
}

/// A connection to the store, tried every second until it opens (or Ctrl-C).
fn reconnect(args: &WorkerArgs, slot: usize, stop: &AtomicBool) -> anyhow::Result<Store> {
    loop {
        match Store::connect(&args.store) {
            Ok(store) => return Ok(store),
            Err(err) if !stop.load(Ordering::SeqCst) => {
                eprintln!("slot {slot}: waiting for the store {}: {err}", args.store);
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(err) => {
                return Err(err).with_context(|| format!("opening the run store {}", args.store));
            }
        }
    }
}

/// Trains a claimed run to its end: from its newest checkpoint when it has one (dropping the
/// epochs after it), else from the start (dropping anything a dead worker stored). Hands the
/// store connection back.
fn train_claimed(
    mut store: Store,
    row: RunRow,
    device: Option<DeviceChoice>,
    slot: usize,
    stop: &AtomicBool,
) -> anyhow::Result<Store> {
    let run_id = row.id;
    let mut config: TrainConfig =
        serde_json::from_str(&row.config_json).context("reading the run's configuration")?;
    if let Some(device) = device {
        config.device = device;
    }
    let mut trainer = Trainer::new(config).context("preparing the run")?;
    let from = match crate::resume::newest_checkpoint(&store, run_id)? {
        Some((epoch, checkpoint)) => {
            trainer.resume_from(&checkpoint)?;
            epoch
        }
        None => {
            record_details(&mut store, run_id, &trainer)?;
            0
        }
    };
    store.delete_epochs_after(run_id, from)?;
    eprintln!(
        "slot {slot}: run {run_id} ({}) from epoch {} of {} on {}",
        row.name,
        from + 1,
        trainer.config().epochs,
        trainer.device().description
    );
    let store = Mutex::new(store);
    let outcome = run_to_completion(
        &mut trainer,
        &store,
        run_id,
        stop,
        CaptureMode::Beside,
        &mut |progress| match progress {
            RunProgress::Preparing(step) if step.done == 0 => {
                eprintln!(
                    "slot {slot}: run {run_id}: preparing the GPU ({} steps)",
                    step.total
                );
            }
            RunProgress::Preparing(step) if step.done == step.total => eprintln!(
                "slot {slot}: run {run_id}: GPU ready after {:.1} s",
                step.elapsed.as_secs_f64()
            ),
            _ => {}
        },
        &mut |_| {},
    )?;
    eprintln!(
        "slot {slot}: run {run_id} {} after epoch {}",
        outcome.status.as_str(),
        outcome.epochs.last().map_or(from as usize, |m| m.epoch)
    );
    store
        .into_inner()
        .map_err(|_| anyhow::anyhow!("the run store is unavailable after an earlier failure"))
}
