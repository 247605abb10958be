//! `actiscope resume RUN`: a stopped or interrupted run goes on from its newest checkpoint
//! (weights, optimizer state and batch order; see `actiscope_train::checkpoint`), epochs
//! numbered on, in the same store and under the same run id. Epochs stored after the
//! checkpoint (with `--checkpoint-every` above 1) are deleted first and trained again, so
//! every epoch is stored exactly once. A run that completed, diverged, or is still trained by
//! a live process, and a run without a checkpoint, are refused with status 2.

use std::path::PathBuf;

use actiscope_store::Store;
use actiscope_train::checkpoint::Checkpoint;
use actiscope_train::{TrainConfig, Trainer};
use anyhow::Context;

use crate::runner::CHECKPOINT_KIND;
use crate::train_cmd::{BadInput, Driving, classify, train_into};

/// Arguments of `actiscope resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    /// SQLite file that holds the run.
    #[arg(long, default_value = "runs.db")]
    pub store: PathBuf,
    /// Print one JSON object with the resumed epochs' metrics at the end.
    #[arg(long)]
    pub json: bool,
    /// Capture each epoch before training the next, as `train --capture-inline`.
    #[arg(long)]
    pub capture_inline: bool,
    /// The run to resume.
    pub run: i64,
}

fn bad(message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.to_string()))
}

/// Runs `actiscope resume`.
pub fn resume(args: &ResumeArgs) -> anyhow::Result<()> {
    if !args.store.is_file() {
        return Err(bad(format!(
            "there is no run store at {}",
            args.store.display()
        )));
    }
    let mut store = Store::open(&args.store)
        .with_context(|| format!("opening the run store {}", args.store.display()))?;
    let run_id = args.run;
    let row = store.run(run_id)?.ok_or_else(|| {
        bad(format!(
            "there is no run {run_id} in {}",
            args.store.display()
        ))
    })?;
    match row.status.as_str() {
        "completed" => return Err(bad(format!("run {run_id} completed all its epochs"))),
        "diverged" => {
            return Err(bad(format!(
                "run {run_id} diverged (its loss became NaN); resuming it would diverge again"
            )));
        }
        "running" | "queued"
            if !crate::owner::is_gone(
                &row.owner,
                row.heartbeat_unix_ms,
                actiscope_store::now_unix_ms(),
            ) =>
        {
            return Err(bad(format!(
                "run {run_id} is {} by a live process ({}); stop it first",
                row.status, row.owner
            )));
        }
        _ => {}
    }
    let config: TrainConfig = serde_json::from_str(&row.config_json).map_err(|e| {
        bad(format!(
            "run {run_id}'s stored configuration is unreadable: {e}"
        ))
    })?;
    let (epoch, bytes) = store
        .latest_snapshot(run_id, CHECKPOINT_KIND)?
        .ok_or_else(|| {
            bad(format!(
                "run {run_id} has no checkpoint (imported runs, runs trained with \
             --checkpoint-every 0 and runs stored by older versions have none)"
            ))
        })?;
    let checkpoint = Checkpoint::from_bytes(&bytes).map_err(bad)?;
    if checkpoint.epoch != epoch as usize {
        return Err(bad(format!(
            "run {run_id}'s checkpoint says epoch {} but is stored at epoch {epoch}",
            checkpoint.epoch
        )));
    }
    // Everything that can be wrong is checked before the store changes.
    let mut trainer = Trainer::new(config.clone()).map_err(classify)?;
    trainer.resume_from(&checkpoint).map_err(classify)?;
    let dropped = store.delete_epochs_after(run_id, epoch)?;
    let owner = crate::owner::this_process();
    store.take_over(run_id, &owner)?;
    eprintln!(
        "resuming run {run_id} ({}) after epoch {epoch} of {}{}, device {}",
        row.name,
        config.epochs,
        if dropped > 0 {
            format!(" ({dropped} later epochs without a checkpoint are trained again)")
        } else {
            String::new()
        },
        trainer.device().description
    );
    train_into(
        store,
        owner,
        run_id,
        &mut trainer,
        &Driving {
            store_path: &args.store,
            capture_inline: args.capture_inline,
            json: args.json,
        },
    )
}
