//! `actiscope import`: a run directory written by another framework into a run store, once
//! (`DIR` as it is) or following a job that is still writing (`--follow`), with a progress
//! bar and clean Ctrl-C. Bad input exits with status 2 and stores nothing.

use std::path::PathBuf;
use std::sync::Mutex;

use actiscope_import::RunDir;
use actiscope_store::RunStatus;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::importer::{ImportFailure, Mode, check, import_epochs, record};
use crate::train_cmd::{bad, open_store};

/// Arguments of `actiscope import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The run store: a SQLite file (created when missing) or a PostgreSQL database,
    /// `postgres://user@host:port/database` (password in the URL, `PGPASSWORD` or `~/.pgpass`).
    #[arg(long, default_value = "runs.db")]
    pub store: actiscope_store::StoreLocation,
    /// Keep importing epochs as the job writes them, until it writes `finished` (or Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Print one JSON object with the run id and every epoch's metrics at the end.
    #[arg(long)]
    pub json: bool,
    /// The run directory (`run.toml`, `labels.npy`, `epoch-0001.safetensors`, …).
    pub dir: PathBuf,
}

/// Runs `actiscope import`.
pub fn import(args: &ImportArgs) -> anyhow::Result<()> {
    // Everything the headers can say is checked before the store is touched.
    let run = RunDir::open(&args.dir).map_err(bad)?;
    let (entries, units) = check(&run).map_err(bad)?;
    let probe = crate::importer::probe_for(&run, &units).map_err(bad)?;
    if entries.is_empty() && !args.follow {
        return Err(bad(format!(
            "{} holds no epoch yet (epoch-0001.safetensors, epoch-0001.npz or epoch-0001/); \
             use --follow to wait for them",
            args.dir.display()
        )));
    }
    eprintln!(
        "importing {} ({} instances, the first {} kept for the lenses; layers {}) from {}",
        run.spec().name,
        run.instances(),
        probe,
        run.spec().layers.join(", "),
        args.dir.display()
    );
    let mut store = open_store(&args.store)?;
    let owner = crate::owner::this_process();
    let run_id =
        record(&mut store, &run, &units, entries.len(), &owner).context("recording the run")?;
    let _heartbeat =
        crate::owner::Heartbeat::start(&store, owner).context("starting the run's heartbeat")?;
    let store = Mutex::new(store);

    let stop = crate::ctrl_c::stop_flag()?;

    let bar = if args.follow {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::new(entries.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(if args.follow {
            "{spinner} epoch {pos} imported {msg} ({elapsed}; waiting for the job's next epoch)"
        } else {
            "{spinner} epoch {pos}/{len} [{bar:30}] {msg} ({elapsed} elapsed, ETA {eta})"
        })
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mode = if args.follow {
        Mode::Follow { stop: &stop }
    } else {
        Mode::Once { stop: &stop }
    };
    let mut epochs = Vec::new();
    let mut units = units;
    let outcome = import_epochs(&run, &mut units, &store, run_id, &mode, &mut |snapshot| {
        let m = &snapshot.metrics;
        bar.set_position(m.epoch as u64);
        bar.set_message(format!(
            "unique patterns {:?}, accuracy {:.1}%",
            m.unique_patterns,
            100.0 * m.train_accuracy
        ));
        epochs.push(m.clone());
    });
    bar.finish();
    let mut store = store
        .into_inner()
        .map_err(|_| anyhow::anyhow!("the run store is unavailable after an earlier failure"))?;
    match outcome {
        Ok(imported) => {
            let count = imported.epochs;
            let status = if imported.stopped {
                RunStatus::Stopped
            } else {
                RunStatus::Completed
            };
            store
                .set_status(run_id, status)
                .context("recording the run's status")?;
            eprintln!(
                "run {run_id}: {} epochs imported into {}",
                count, args.store
            );
            if args.json {
                let summary = serde_json::json!({
                    "run_id": run_id,
                    "status": status.as_str(),
                    "epochs": epochs,
                });
                println!("{summary}");
            }
            Ok(())
        }
        Err(err) => {
            if args.follow {
                // What was imported stays; the run says it did not finish.
                let _ = store.set_status(run_id, RunStatus::Interrupted);
            } else {
                // All or nothing: nothing of a directory that turned out bad stays stored.
                let _ = store.delete_run(run_id);
            }
            match err {
                ImportFailure::Input(err) => Err(bad(err)),
                ImportFailure::Store(err) => Err(err).context(format!("importing run {run_id}")),
            }
        }
    }
}
