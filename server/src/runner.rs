//! Drives a [`Trainer`] epoch by epoch: analyses each epoch, stores it atomically, and stops on
//! request, on divergence or at the last epoch. Shared by `actiscope train` and the server.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use actiscope_analysis::apd::{ApdOptions, build_apd};
use actiscope_analysis::flows::flow_table;
use actiscope_analysis::{LayerPatterns, PatternMatrix};
use actiscope_protocol::{EpochMetrics, EpochSnapshot, ProbeImages, ProbeInstances, WireMatrix};
use actiscope_store::{RunStatus, Store};
use actiscope_train::{EpochReport, TrainError, Trainer};

/// Kind under which the epoch snapshot blob is stored.
pub const SNAPSHOT_KIND: &str = "epoch";
/// Kind under which the probe set's raw activations are stored.
pub const PROBE_ACTIVATIONS_KIND: &str = "probe_activations";
/// Kind under which the probe set's images (or planar points) are stored, at epoch 0.
pub const IMAGES_KIND: &str = "probe_images";
/// Kind under which the probe set's predicted-class probabilities (`Vec<f32>`) are stored.
pub const PROBE_SCORES_KIND: &str = "probe_scores";

/// Errors that end a run early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Storing failed.
    #[error(transparent)]
    Store(#[from] actiscope_store::StoreError),
    /// An analysis failed (a bug: the inputs come from the trainer).
    #[error("analysis failed: {0}")]
    Analysis(String),
    /// Encoding a snapshot failed.
    #[error(transparent)]
    Encode(#[from] actiscope_protocol::ProtocolError),
    /// The store's lock was poisoned by a panic elsewhere.
    #[error("the run store is unavailable after an earlier failure")]
    Poisoned,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// Final status (completed, stopped or diverged).
    pub status: RunStatus,
    /// Metrics of every stored epoch.
    pub epochs: Vec<EpochMetrics>,
}

/// Records a new run of `trainer` in `store`: its name, configuration, device, the SHA-256
/// of its data and its probe images (epoch 0). Returns the run id. Used by the server and by `actiscope train`, so a
/// run looks the same in the dashboard whichever started it.
pub fn record_run(store: &Store, trainer: &Trainer) -> Result<i64, RunError> {
    let config = trainer.config();
    let config_json =
        serde_json::to_string(config).map_err(|e| RunError::Analysis(e.to_string()))?;
    let name = format!("{} on {}", config.model.describe(), config.dataset.name());
    let images_blob = actiscope_protocol::encode(&probe_images(trainer))?;
    let run_id = store.create_run(&name, &config_json)?;
    store.set_device(run_id, &trainer.device().description)?;
    store.set_dataset_sha256(run_id, &trainer.splits().sha256_hex())?;
    store.put_snapshot(run_id, 0, IMAGES_KIND, &images_blob)?;
    Ok(run_id)
}

/// The probe set's inputs: bytes of the images, or the planar points.
fn probe_images(trainer: &Trainer) -> ProbeImages {
    let splits = trainer.splits();
    let source = match trainer.config().probe.source {
        actiscope_train::ProbeSource::Test => &splits.test,
        actiscope_train::ProbeSource::Train => &splits.train,
    };
    let rows_of = |i: usize| source.row(i).unwrap_or(&[]);
    match source.image_shape {
        Some((rows, cols)) => ProbeImages {
            rows: u32::try_from(rows).unwrap_or(0),
            cols: u32::try_from(cols).unwrap_or(0),
            pixels: trainer
                .probe_indices()
                .iter()
                .flat_map(|&i| {
                    rows_of(i)
                        .iter()
                        .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                })
                .collect(),
            points: Vec::new(),
        },
        None => ProbeImages {
            rows: 0,
            cols: 0,
            pixels: Vec::new(),
            points: trainer
                .probe_indices()
                .iter()
                .flat_map(|&i| rows_of(i).iter().copied())
                .collect(),
        },
    }
}

/// Builds the stored snapshot of one epoch from the trainer's report.
pub fn snapshot(report: &EpochReport) -> Result<EpochSnapshot, RunError> {
    let layers: Vec<LayerPatterns> = report
        .probe
        .pre_activations
        .iter()
        .map(|m| LayerPatterns::from_patterns(&PatternMatrix::from_preactivations(m)))
        .collect();
    let apd = build_apd(
        &layers,
        &report.probe.predictions,
        &report.probe.labels,
        ApdOptions::default(),
    )
    .map_err(|e| RunError::Analysis(e.to_string()))?;
    let last = layers.len().saturating_sub(1);
    let first = last.saturating_sub(1);
    let flows = flow_table(
        &layers,
        first,
        last,
        &report.probe.predictions,
        &report.probe.labels,
    )
    .map_err(|e| RunError::Analysis(e.to_string()))?;
    Ok(EpochSnapshot {
        metrics: report.metrics.clone(),
        apd,
        flows,
        probe: ProbeInstances {
            indices: report
                .probe
                .indices
                .iter()
                .map(|&i| u32::try_from(i).unwrap_or(u32::MAX))
                .collect(),
            labels: report.probe.labels.clone(),
            predictions: report.probe.predictions.clone(),
            losses: report.probe.losses.clone(),
        },
    })
}

/// Trains the remaining epochs of `trainer` into run `run_id` of `store`. Each epoch is stored
/// in one transaction before the next starts, so a killed process loses only the epoch in
/// flight. `stop` is checked between epochs.
pub fn run_to_completion(
    trainer: &mut Trainer,
    store: &Mutex<Store>,
    run_id: i64,
    stop: &AtomicBool,
    on_batch: &mut dyn FnMut(usize, usize, usize),
    on_epoch: &mut dyn FnMut(&EpochSnapshot),
) -> Result<RunOutcome, RunError> {
    let total_epochs = trainer.config().epochs;
    let mut epochs = Vec::new();
    let mut status = RunStatus::Completed;
    while trainer.epochs_done() < total_epochs {
        if stop.load(Ordering::SeqCst) {
            status = RunStatus::Stopped;
            break;
        }
        let epoch = trainer.epochs_done() + 1;
        let report = trainer.run_epoch(&mut |done, total| on_batch(epoch, done, total))?;
        let snap = snapshot(&report)?;
        let metrics_json = serde_json::to_string(&report.metrics)
            .map_err(|e| RunError::Analysis(e.to_string()))?;
        let activations: Vec<WireMatrix> = report
            .probe
            .pre_activations
            .iter()
            .map(|m| WireMatrix {
                rows: u32::try_from(m.rows()).unwrap_or(u32::MAX),
                cols: u32::try_from(m.cols()).unwrap_or(u32::MAX),
                values: m.as_slice().to_vec(),
            })
            .collect();
        let snapshot_blob = actiscope_protocol::encode(&snap)?;
        let activations_blob = actiscope_protocol::encode(&activations)?;
        let scores_blob = actiscope_protocol::encode(&report.probe.scores)?;
        store.lock().map_err(|_| RunError::Poisoned)?.put_epoch(
            run_id,
            u32::try_from(epoch).unwrap_or(u32::MAX),
            &metrics_json,
            &[
                (SNAPSHOT_KIND, &snapshot_blob),
                (PROBE_ACTIVATIONS_KIND, &activations_blob),
                (PROBE_SCORES_KIND, &scores_blob),
            ],
        )?;
        on_epoch(&snap);
        let diverged = report.metrics.diverged;
        epochs.push(report.metrics);
        if diverged {
            status = RunStatus::Diverged;
            break;
        }
    }
    store
        .lock()
        .map_err(|_| RunError::Poisoned)?
        .set_status(run_id, status)?;
    Ok(RunOutcome { status, epochs })
}
