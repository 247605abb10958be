//! `actiscope train`: headless training into a run store, with a progress bar, clean Ctrl-C
//! and an optional JSON summary.

use std::path::PathBuf;
use std::sync::Mutex;

use actiscope_store::{RunStatus, Store};
use actiscope_train::request::{Classes, RunRequest, Widths};
use actiscope_train::{TrainConfig, TrainError, Trainer};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::runner::{CaptureMode, RunOutcome, RunProgress, record_run, run_to_completion};

/// Bad input from the user: the binary exits with status 2 and this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Arguments of `actiscope train`; each overrides the same key of `--config`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// The run store: a SQLite file (created when missing) or a PostgreSQL database,
    /// `postgres://user@host:port/database` (password in the URL, `PGPASSWORD` or `~/.pgpass`).
    #[arg(long, default_value = "runs.db")]
    pub store: actiscope_store::StoreLocation,
    /// A TOML file with any of the keys below (preset, dataset, hidden, model, activation,
    /// optimizer, lr, batch, epochs, seed, probe, device).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the settings left out come from: `default` (the paper's MLP with Adam, which
    /// learns in a few epochs) or `apd-paper` (the APD paper's exact setting: SGD, lr 0.001).
    #[arg(long)]
    pub preset: Option<String>,
    /// digits, fashion-mnist, moons, circles, spirals, xor, blobs, or a directory with the
    /// four IDX files (plain or .gz).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Hidden widths of the MLP, e.g. 40,40,40.
    #[arg(long, conflicts_with = "model")]
    pub hidden: Option<String>,
    /// `cnn` for the factorization paper's CNN (default: an MLP).
    #[arg(long)]
    pub model: Option<String>,
    /// relu or leaky-relu.
    #[arg(long)]
    pub activation: Option<String>,
    /// sgd or adam.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Learning rate.
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Batch size.
    #[arg(long, allow_negative_numbers = true)]
    pub batch: Option<i64>,
    /// Epochs.
    #[arg(long, allow_negative_numbers = true)]
    pub epochs: Option<i64>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Probe set, e.g. "label=1,n=500" (optionally ",from=train").
    #[arg(long)]
    pub probe: Option<String>,
    /// auto, wgpu, vulkan or flex.
    #[arg(long)]
    pub device: Option<String>,
    /// Train on this share of the (shuffled) training set, in (0, 1] (the factorization
    /// paper's case I).
    #[arg(long)]
    pub fraction: Option<f64>,
    /// Train on these classes only, e.g. 0,1,2 (case II).
    #[arg(long)]
    pub classes: Option<String>,
    /// `shuffled` (default) or `by-class`: class by class, unshuffled, in the order of
    /// --classes (case III).
    #[arg(long)]
    pub order: Option<String>,
    /// Store a checkpoint (weights and optimizer state, for `actiscope resume`) every this
    /// many epochs and after the last; 0 stores none. Default: every epoch.
    #[arg(long)]
    pub checkpoint_every: Option<i64>,
    /// Print one JSON object with every epoch's metrics at the end.
    #[arg(long)]
    pub json: bool,
    /// Capture each epoch before training the next, instead of beside it (slower; for
    /// comparing the two).
    #[arg(long)]
    pub capture_inline: bool,
}

/// Bad input, for every command: the binary exits with status 2 and `message`.
pub(crate) fn bad(message: impl std::fmt::Display) -> anyhow::Error {
    BadInput(message.to_string()).into()
}

impl TrainArgs {
    /// The run settings given as flags (each overrides the same key of `--config`).
    pub fn request(&self) -> RunRequest {
        RunRequest {
            preset: self.preset.clone(),
            dataset: self.dataset.clone(),
            hidden: self.hidden.clone().map(Widths::Text),
            model: self.model.clone(),
            activation: self.activation.clone(),
            optimizer: self.optimizer.clone(),
            lr: self.lr,
            batch: self.batch,
            epochs: self.epochs,
            seed: self.seed,
            probe: self.probe.clone(),
            device: self.device.clone(),
            fraction: self.fraction,
            classes: self.classes.clone().map(Classes::Text),
            order: self.order.clone(),
            checkpoint_every: self.checkpoint_every,
        }
    }
}

/// Builds and validates the run's configuration from the `--config` file and the flags.
pub fn build_config(args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let file: RunRequest = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
            parse_config_file(&text, path)?
        }
        None => RunRequest::default(),
    };
    args.request()
        .or(file)
        .to_config()
        .map_err(|e| bad(e.to_string()))
}

/// The run request written in the `--config` file at `path`, whose text is `text`; a TOML
/// error names the file, the line and the key.
pub fn parse_config_file(text: &str, path: &std::path::Path) -> anyhow::Result<RunRequest> {
    toml::from_str(text).map_err(|e| bad(format!("{}: {e}", path.display())))
}

/// Maps trainer errors caused by the input to [`BadInput`].
pub(crate) fn classify(err: TrainError) -> anyhow::Error {
    match err {
        TrainError::Config(_)
        | TrainError::Data(_)
        | TrainError::Device(_)
        | TrainError::EmptyProbe(_)
        | TrainError::Incompatible(_) => bad(err.to_string()),
        TrainError::Checkpoint(_) => bad(err.to_string()),
        TrainError::Readback(_) | TrainError::CaptureThread(_) => anyhow::Error::new(err),
    }
}

/// Runs `actiscope train`.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let config = build_config(args)?;
    // Everything that can be wrong with the input fails here, before the store is touched.
    let mut trainer = Trainer::new(config.clone()).map_err(classify)?;
    let device = trainer.device().description.clone();
    eprintln!(
        "training {} on {}{} ({} train / {} validation / {} test), device {device}",
        config.model.describe(),
        config.dataset.name(),
        config
            .training
            .describe()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default(),
        trainer.train_set().len(),
        trainer.splits().validation.len(),
        trainer.splits().test.len(),
    );
    let mut store = open_store(&args.store)?;
    let owner = crate::owner::this_process();
    let run_id = record_run(&mut store, &trainer, &owner).context("recording the run")?;
    train_into(
        store,
        owner,
        run_id,
        &mut trainer,
        &Driving {
            store: &args.store,
            capture_inline: args.capture_inline,
            json: args.json,
        },
    )
}

/// Opens the run store at `location` for a command, saying which store failed.
pub(crate) fn open_store(location: &actiscope_store::StoreLocation) -> anyhow::Result<Store> {
    Store::connect(location).with_context(|| format!("opening the run store {location}"))
}

/// How [`train_into`] reports and captures.
pub(crate) struct Driving<'a> {
    /// Where the store lives, for messages.
    pub store: &'a actiscope_store::StoreLocation,
    /// Capture each epoch before training the next.
    pub capture_inline: bool,
    /// Print the `--json` summary at the end.
    pub json: bool,
}

/// Trains `trainer`'s remaining epochs into run `run_id` of `store`, owned by `owner`
/// (heartbeat, Ctrl-C, progress bar, the summary): the rest of `actiscope train`, and all of
/// what `actiscope resume` does once the run is restored.
pub(crate) fn train_into(
    store: Store,
    owner: String,
    run_id: i64,
    trainer: &mut Trainer,
    driving: &Driving<'_>,
) -> anyhow::Result<()> {
    let config = trainer.config().clone();
    let device = trainer.device().description.clone();
    // A server beside this process leaves the run alone while this beats.
    let _heartbeat =
        crate::owner::Heartbeat::start(&store, owner).context("starting the run's heartbeat")?;
    let store = Mutex::new(store);

    let stop = crate::ctrl_c::stop_flag()?;

    let bar = ProgressBar::new(config.epochs as u64);
    bar.set_position(trainer.epochs_done() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} epoch {pos}/{len} [{bar:30}] {msg} ({elapsed} elapsed, ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mode = if driving.capture_inline {
        CaptureMode::Inline
    } else {
        CaptureMode::Beside
    };
    let outcome = run_to_completion(
        trainer,
        &store,
        run_id,
        &stop,
        mode,
        &mut |progress| match progress {
            RunProgress::Preparing(step) if step.done < step.total => bar.set_message(format!(
                "preparing the GPU: {} of {}, {}",
                step.done + 1,
                step.total,
                step.step
            )),
            RunProgress::Preparing(step) => bar.set_message(format!(
                "GPU ready after {:.1} s",
                step.elapsed.as_secs_f64()
            )),
            RunProgress::Batches { epoch, done, total } => {
                if done == 1 || done == total || done % 32 == 0 {
                    bar.set_message(format!("epoch {epoch}: batch {done}/{total}"));
                }
            }
        },
        &mut |snapshot| {
            let m = &snapshot.metrics;
            bar.set_position(m.epoch as u64);
            bar.set_message(format!(
                "loss {:.4} val {:.4}, acc {:.1}% val {:.1}%",
                m.train_loss,
                m.val_loss,
                100.0 * m.train_accuracy,
                100.0 * m.val_accuracy
            ));
        },
    );
    bar.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            if let Ok(store) = store.lock() {
                // The run keeps its stored epochs; its status says it did not finish.
                let _ = store.set_status(run_id, RunStatus::Interrupted);
            }
            return Err(err).context(format!("run {run_id} failed"));
        }
    };
    eprintln!(
        "run {run_id}: {} after {} epochs, stored in {}",
        outcome.status.as_str(),
        outcome.epochs.len(),
        driving.store
    );
    if driving.json {
        let summary = serde_json::json!({
            "run_id": run_id,
            "device": device,
            "status": outcome.status.as_str(),
            "config": config,
            "epochs": epochs_json(&outcome),
        });
        println!("{summary}");
    }
    if outcome.status == RunStatus::Diverged {
        anyhow::bail!("run {run_id} diverged (the loss became NaN); its epochs are kept");
    }
    Ok(())
}

/// The `epochs` of `--json`: each epoch's metrics plus `capture_wait_secs`, the seconds
/// training waited on capture after that epoch.
fn epochs_json(outcome: &RunOutcome) -> Vec<serde_json::Value> {
    outcome
        .epochs
        .iter()
        .enumerate()
        .map(|(i, metrics)| {
            let mut value = serde_json::to_value(metrics).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                let wait = outcome.capture_wait_secs.get(i).copied().unwrap_or(0.0);
                object.insert("capture_wait_secs".to_owned(), wait.into());
            }
            value
        })
        .collect()
}
