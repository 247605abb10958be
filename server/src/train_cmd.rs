//! `actiscope train`: headless training into a run store, with a progress bar, clean Ctrl-C
//! and an optional JSON summary.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use actiscope_store::{RunStatus, Store};
use actiscope_train::config::{ProbeSpec, parse_widths};
use actiscope_train::data::DatasetSpec;
use actiscope_train::device::DeviceChoice;
use actiscope_train::model::{Activation, ModelSpec};
use actiscope_train::{OptimizerKind, TrainConfig, TrainError, Trainer};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::runner::{CaptureMode, RunOutcome, record_run, run_to_completion};

/// Bad input from the user: the binary exits with status 2 and this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Arguments of `actiscope train`; each overrides the same key of `--config`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrainArgs {
    /// SQLite file to store the run in (created when missing).
    #[arg(long, default_value = "runs.db")]
    pub store: PathBuf,
    /// A TOML file with any of the keys below (dataset, hidden, model, activation, optimizer,
    /// lr, batch, epochs, seed, probe, device).
    #[arg(long)]
    pub config: Option<PathBuf>,
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
    /// Print one JSON object with every epoch's metrics at the end.
    #[arg(long)]
    pub json: bool,
    /// Capture each epoch before training the next, instead of beside it (slower; for
    /// comparing the two).
    #[arg(long)]
    pub capture_inline: bool,
}

/// Hidden widths as a list (`[40, 40]`) or as text (`"40,40"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Widths {
    /// `[40, 40, 40]`.
    List(Vec<i64>),
    /// `"40,40,40"`.
    Text(String),
}

/// The keys of a run's settings, shared by a `--config` TOML file and the body of
/// `POST /api/runs`; command-line flags override them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    dataset: Option<String>,
    hidden: Option<Widths>,
    model: Option<String>,
    activation: Option<String>,
    optimizer: Option<String>,
    lr: Option<f64>,
    batch: Option<i64>,
    epochs: Option<i64>,
    seed: Option<u64>,
    probe: Option<String>,
    device: Option<String>,
}

fn bad(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

/// Builds and validates the run's configuration from the `--config` file and the flags.
pub fn build_config(args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let file: RunSettings = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
            toml::from_str(&text).map_err(|e| bad(format!("{}: {e}", path.display())))?
        }
        None => RunSettings::default(),
    };
    config_from(args, &file)
}

/// Builds and validates a configuration from `settings`, overridden by the flags in `args`.
pub fn config_from(args: &TrainArgs, file: &RunSettings) -> anyhow::Result<TrainConfig> {
    let mut config = TrainConfig::default();
    if let Some(name) = args.dataset.as_ref().or(file.dataset.as_ref()) {
        config.dataset = DatasetSpec::parse(name).map_err(|e| bad(e.to_string()))?;
    }
    let activation = match args
        .activation
        .as_ref()
        .or(file.activation.as_ref())
        .map(String::as_str)
    {
        None | Some("relu") => Activation::Relu,
        Some("leaky-relu") => Activation::LeakyRelu {
            negative_slope: 0.01,
        },
        Some(other) => {
            return Err(bad(format!(
                "unknown activation `{other}`: use relu or leaky-relu"
            )));
        }
    };
    let hidden = match (&args.hidden, &file.hidden) {
        (Some(text), _) => Some(parse_widths(text).map_err(|e| bad(e.to_string()))?),
        (None, Some(Widths::Text(text))) => {
            Some(parse_widths(text).map_err(|e| bad(e.to_string()))?)
        }
        (None, Some(Widths::List(list))) => {
            let text: Vec<String> = list.iter().map(i64::to_string).collect();
            Some(parse_widths(&text.join(",")).map_err(|e| bad(e.to_string()))?)
        }
        (None, None) => None,
    };
    config.model = match args
        .model
        .as_ref()
        .or(file.model.as_ref())
        .map(String::as_str)
    {
        Some("cnn") => ModelSpec::Cnn { activation },
        None | Some("mlp") => ModelSpec::Mlp {
            hidden: hidden.unwrap_or_else(|| vec![40, 40, 40]),
            activation,
        },
        Some(other) => return Err(bad(format!("unknown model `{other}`: use mlp or cnn"))),
    };
    if let Some(name) = args.optimizer.as_ref().or(file.optimizer.as_ref()) {
        config.optimizer = OptimizerKind::parse(name).map_err(|e| bad(e.to_string()))?;
    }
    if let Some(lr) = args.lr.or(file.lr) {
        config.learning_rate = lr;
    }
    let positive = |name: &str, value: i64| {
        usize::try_from(value).map_err(|_| {
            bad(format!(
                "invalid configuration: {name} must be positive, got {value}"
            ))
        })
    };
    if let Some(batch) = args.batch.or(file.batch) {
        config.batch_size = positive("batch size", batch)?;
    }
    if let Some(epochs) = args.epochs.or(file.epochs) {
        config.epochs = positive("epochs", epochs)?;
    }
    if let Some(seed) = args.seed.or(file.seed) {
        config.seed = seed;
    }
    if let Some(probe) = args.probe.as_ref().or(file.probe.as_ref()) {
        config.probe = ProbeSpec::parse(probe).map_err(|e| bad(e.to_string()))?;
    }
    if let Some(device) = args.device.as_ref().or(file.device.as_ref()) {
        config.device = DeviceChoice::parse(device).map_err(|e| bad(e.to_string()))?;
    }
    config.validate().map_err(|e| bad(e.to_string()))?;
    Ok(config)
}

/// Maps trainer errors caused by the input to [`BadInput`].
fn classify(err: TrainError) -> anyhow::Error {
    match err {
        TrainError::Config(_)
        | TrainError::Data(_)
        | TrainError::Device(_)
        | TrainError::EmptyProbe(_)
        | TrainError::Incompatible(_) => bad(err.to_string()),
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
        "training {} on {} ({} train / {} validation / {} test), device {device}",
        config.model.describe(),
        config.dataset.name(),
        trainer.splits().train.len(),
        trainer.splits().validation.len(),
        trainer.splits().test.len(),
    );
    let store = Store::open(&args.store)
        .with_context(|| format!("opening the run store {}", args.store.display()))?;
    let run_id = record_run(&store, &trainer).context("recording the run")?;
    let store = Mutex::new(store);

    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = Arc::clone(&stop);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nCtrl-C: stopping after the epoch in flight (press again to abort)");
            handler_stop.store(true, Ordering::SeqCst);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let _signals = std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));

    let bar = ProgressBar::new(config.epochs as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} epoch {pos}/{len} [{bar:30}] {msg} ({elapsed} elapsed, ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mode = if args.capture_inline {
        CaptureMode::Inline
    } else {
        CaptureMode::Beside
    };
    let outcome = run_to_completion(
        &mut trainer,
        &store,
        run_id,
        &stop,
        mode,
        &mut |epoch, done, total| {
            if done == 1 || done == total || done % 32 == 0 {
                bar.set_message(format!("epoch {epoch}: batch {done}/{total}"));
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
        args.store.display()
    );
    if args.json {
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
