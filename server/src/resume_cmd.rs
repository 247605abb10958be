//! `actiscope resume RUN`: a stopped or interrupted run goes on from its newest checkpoint
//! (weights, optimizer state and batch order; see `actiscope_train::checkpoint`), epochs
//! numbered on, in the same store and under the same run id. Epochs stored after the
//! checkpoint (with `--checkpoint-every` above 1) are deleted first and trained again, so
//! every epoch is stored exactly once. A run that completed, diverged, or is still trained by
//! a live process, and a run without a checkpoint, are refused with status 2.

use crate::resume::{ResumeError, Resumed, restore};
use crate::train_cmd::{Driving, bad, classify, open_store, train_into};

/// Arguments of `actiscope resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    /// The run store that holds the run: a SQLite file or a PostgreSQL database,
    /// `postgres://user@host:port/database` (password in the URL, `PGPASSWORD` or `~/.pgpass`).
    #[arg(long, default_value = "runs.db")]
    pub store: actiscope_store::StoreLocation,
    /// Print one JSON object with the resumed epochs' metrics at the end.
    #[arg(long)]
    pub json: bool,
    /// Capture each epoch before training the next, as `train --capture-inline`.
    #[arg(long)]
    pub capture_inline: bool,
    /// The run to resume.
    pub run: i64,
}

/// Runs `actiscope resume`.
pub fn resume(args: &ResumeArgs) -> anyhow::Result<()> {
    if let Some(path) = args.store.file()
        && !path.is_file()
    {
        return Err(bad(format!("there is no run store at {}", path.display())));
    }
    let mut store = open_store(&args.store)?;
    let owner = crate::owner::this_process();
    let Resumed {
        row,
        mut trainer,
        checkpoint_epoch,
        dropped,
    } = restore(&mut store, args.run, &owner).map_err(|e| match e {
        ResumeError::Unknown(run_id) => bad(format!("there is no run {run_id} in {}", args.store)),
        ResumeError::Refused(message) => bad(message),
        ResumeError::Train(err) => classify(err),
        ResumeError::Store(err) => anyhow::Error::new(err),
    })?;
    eprintln!(
        "resuming run {} ({}) after epoch {checkpoint_epoch} of {}{}, device {}",
        args.run,
        row.name,
        trainer.config().epochs,
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
        args.run,
        &mut trainer,
        &Driving {
            store: &args.store,
            capture_inline: args.capture_inline,
            json: args.json,
        },
    )
}
