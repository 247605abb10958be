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

/// Restores run `run_id` of `store` from its newest checkpoint for `owner`; `trained_here`
/// says whether this process is training or queueing it right now.
pub fn restore(
    store: &mut Store,
    run_id: i64,
    owner: &str,
    trained_here: bool,
) -> Result<Resumed, ResumeError> {
    let row = store.run(run_id)?.ok_or(ResumeError::Unknown(run_id))?;
    let refuse = |message: String| Err(ResumeError::Refused(message));
    match row.status.as_str() {
        "completed" => return refuse(format!("run {run_id} completed all its epochs")),
        "diverged" => {
            return refuse(format!(
                "run {run_id} diverged (its loss became NaN); resuming it would diverge again"
            ));
        }
        "running" | "queued"
            if trained_here
                || !crate::owner::is_gone(
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
    let Some((checkpoint_epoch, bytes)) = store.latest_snapshot(run_id, CHECKPOINT_KIND)? else {
        return refuse(format!(
            "run {run_id} has no checkpoint (imported runs, runs trained with \
             --checkpoint-every 0 and runs stored by older versions have none)"
        ));
    };
    let checkpoint = Checkpoint::from_bytes(&bytes).map_err(TrainError::from)?;
    if checkpoint.epoch != checkpoint_epoch as usize {
        return refuse(format!(
            "run {run_id}'s checkpoint says epoch {} but is stored at epoch {checkpoint_epoch}",
            checkpoint.epoch
        ));
    }
    let mut trainer = Trainer::new(config)?;
    trainer.resume_from(&checkpoint)?;
    let dropped = store.delete_epochs_after(run_id, checkpoint_epoch)?;
    store.take_over(run_id, owner)?;
    Ok(Resumed {
        row,
        trainer,
        checkpoint_epoch,
        dropped,
    })
}
