//! A stored run restored from its newest checkpoint, ready to train on: shared by
//! `actiscope resume` and `POST /api/runs/{id}/resume`. The checks come first (the run
//! exists, it is stopped or interrupted and nobody alive trains it, it has a checkpoint that
//! fits its configuration); only then does the store change (epochs after the checkpoint are
//! dropped, the run is handed to its new owner).

use actiscope_store::{RunRow, Store, StoreError};
use actiscope_train::checkpoint::Checkpoint;
use actiscope_train::{TrainConfig, TrainError, Trainer};

use crate::runner::CHECKPOINT_KIND;

/// Why a run cannot resume.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// No such run.
    #[error("there is no run {0}")]
    Unknown(i64),
    /// The run is in no state to resume, or has nothing to resume from.
    #[error("{0}")]
    Refused(String),
    /// Its configuration, data or checkpoint do not make a trainer.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A run restored and handed to its new owner.
pub struct Resumed {
    /// The run as it was before.
    pub row: RunRow,
    /// The trainer, `checkpoint_epoch` epochs done.
    pub trainer: Trainer,
    /// The epoch of the checkpoint.
    pub checkpoint_epoch: u32,
    /// Epochs stored after the checkpoint, dropped to be trained again.
    pub dropped: usize,
}

/// What a resume starts from, read and checked, nothing changed yet.
pub struct Plan {
    /// The run as it is.
    pub row: RunRow,
    /// Its configuration.
    pub config: TrainConfig,
    /// Its newest checkpoint.
    pub checkpoint: Checkpoint,
    /// The epoch the checkpoint is stored at.
    pub checkpoint_epoch: u32,
}

/// Checks that run `run_id` can resume and reads what it resumes from; `trained_here` says
/// whether this process is training, queueing or finishing it right now. Changes nothing.
pub fn check(store: &Store, run_id: i64, trained_here: bool) -> Result<Plan, ResumeError> {
    let row = store.run(run_id)?.ok_or(ResumeError::Unknown(run_id))?;
    let refuse = |message: String| Err(ResumeError::Refused(message));
    if trained_here {
        return refuse(format!(
            "run {run_id} is training or finishing in this server; try again once it is {}",
            "stopped"
        ));
    }
    match row.status.as_str() {
        "completed" => return refuse(format!("run {run_id} completed all its epochs")),
        "diverged" => {
            return refuse(format!(
                "run {run_id} diverged (its loss became NaN); resuming it would diverge again"
            ));
        }
        "running" | "queued"
            if !crate::owner::is_gone(
                &row.owner,
                row.heartbeat_unix_ms,
                actiscope_store::now_unix_ms(),
            ) =>
        {
            return refuse(format!(
                "run {run_id} is {} by a live process ({}); stop it first",
                row.status, row.owner
            ));
        }
        _ => {}
    }
    let config: TrainConfig = serde_json::from_str(&row.config_json).map_err(|e| {
        ResumeError::Refused(format!(
            "run {run_id}'s stored configuration is unreadable: {e}"
        ))
    })?;
    let Some((checkpoint_epoch, checkpoint)) = newest_checkpoint(store, run_id)? else {
        return refuse(format!(
            "run {run_id} has no checkpoint (imported runs, runs trained with \
             --checkpoint-every 0 and runs stored by older versions have none)"
        ));
    };
    Ok(Plan {
        row,
        config,
        checkpoint,
        checkpoint_epoch,
    })
}

/// Run `run_id`'s newest checkpoint, read and checked against the epoch it is stored at;
/// `None` when it has none. What `actiscope resume`, the hub and a worker resume from.
pub fn newest_checkpoint(
    store: &Store,
    run_id: i64,
) -> Result<Option<(u32, Checkpoint)>, ResumeError> {
    let Some((epoch, bytes)) = store.latest_snapshot(run_id, CHECKPOINT_KIND)? else {
        return Ok(None);
    };
    let checkpoint = Checkpoint::from_bytes(&bytes).map_err(TrainError::from)?;
    if checkpoint.epoch != epoch as usize {
        return Err(ResumeError::Refused(format!(
            "run {run_id}'s checkpoint says epoch {} but is stored at epoch {epoch}",
            checkpoint.epoch
        )));
    }
    Ok(Some((epoch, checkpoint)))
}

/// The trainer `plan` resumes: its data loaded, its device chosen, the checkpoint applied.
/// Touches no store (it can take seconds).
pub fn build(plan: &Plan) -> Result<Trainer, ResumeError> {
    let mut trainer = Trainer::new(plan.config.clone())?;
    trainer.resume_from(&plan.checkpoint)?;
    Ok(trainer)
}

/// Drops the epochs after the checkpoint and hands the run to `owner`; returns how many
/// epochs were dropped.
pub fn commit(
    store: &mut Store,
    run_id: i64,
    checkpoint_epoch: u32,
    owner: &str,
) -> Result<usize, ResumeError> {
    let dropped = store.delete_epochs_after(run_id, checkpoint_epoch)?;
    store.take_over(run_id, owner)?;
    Ok(dropped)
}

/// [`check`], [`build`] and [`commit`] in one go, for a process that owns the store alone
/// (`actiscope resume`).
pub fn restore(store: &mut Store, run_id: i64, owner: &str) -> Result<Resumed, ResumeError> {
    let plan = check(store, run_id, false)?;
    let trainer = build(&plan)?;
    let dropped = commit(store, run_id, plan.checkpoint_epoch, owner)?;
    Ok(Resumed {
        row: plan.row,
        trainer,
        checkpoint_epoch: plan.checkpoint_epoch,
        dropped,
    })
}
