//! Drives a [`Trainer`] epoch by epoch: analyses each epoch, stores it atomically, and stops on
//! request, on divergence or at the last epoch. Shared by `actiscope train` and the server.
//!
//! By default an epoch's capture, analysis and storing run beside the next epoch's training
//! ([`CaptureMode::Beside`]): a recorder thread takes the epochs in order, one at a time, while
//! the training thread goes on; it is never more than one epoch ahead.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use actiscope_analysis::LayerPatterns;
use actiscope_analysis::apd::{ApdOptions, build_apd};
use actiscope_analysis::flows::flow_table;
use actiscope_protocol::{EpochMetrics, EpochSnapshot, ProbeImages, ProbeInstances, WireMatrix};
use actiscope_store::{RunStatus, Store};
use actiscope_train::checkpoint::Checkpoint;
use actiscope_train::{EpochReport, PendingEpoch, Preparation, TrainConfig, TrainError, Trainer};

/// Kind under which the epoch snapshot blob is stored.
pub const SNAPSHOT_KIND: &str = "epoch";
/// Kind under which the probe set's raw activations are stored.
pub const PROBE_ACTIVATIONS_KIND: &str = "probe_activations";
/// Kind under which the probe set's images (or planar points) are stored, at epoch 0.
pub const IMAGES_KIND: &str = "probe_images";
/// Kind under which the probe set's predicted-class probabilities (`Vec<f32>`) are stored.
pub const PROBE_SCORES_KIND: &str = "probe_scores";
/// Kind under which the training set's pattern ids ([`TrainPatterns`]) are stored.
pub const TRAIN_PATTERNS_KIND: &str = "train_patterns";
/// Kind under which a run's newest checkpoint is stored (bytes of
/// [`Checkpoint`](actiscope_train::checkpoint::Checkpoint)); storing one drops the older.
pub const CHECKPOINT_KIND: &str = "checkpoint";

/// What an epoch stores besides its metrics, snapshot and probe data, when there is any.
#[derive(Debug, Default)]
pub struct EpochExtras<'a> {
    /// The training set's pattern ids.
    pub train: Option<&'a TrainPatterns>,
    /// The checkpoint after the epoch, as bytes.
    pub checkpoint: Option<Vec<u8>>,
}

/// The training set as the flows need it at training-set scale (the APD paper's Fig. 3):
/// each hidden layer's pattern id per instance (ids equal exactly when the patterns are),
/// with the labels and predictions. A few bytes per instance and layer, where the patterns
/// themselves would be one bit per neuron.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainPatterns {
    /// True labels.
    pub labels: Vec<u32>,
    /// Predicted labels after the epoch.
    pub predictions: Vec<u32>,
    /// One pattern id per instance, per hidden layer.
    pub layers: Vec<Vec<u32>>,
}

impl TrainPatterns {
    /// The training set's patterns of a trainer's report; `labels` are the training set's.
    pub fn of(report: &EpochReport, labels: &[u32]) -> Self {
        Self {
            labels: labels.to_vec(),
            predictions: report.train_predictions.clone(),
            layers: report
                .train_patterns
                .iter()
                .map(|matrix| LayerPatterns::from_patterns(matrix).ids)
                .collect(),
        }
    }
}

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
    /// For each stored epoch, seconds the training thread waited after training it before it
    /// could go on: for the previous epoch's capture and storing to finish, or (the last
    /// epoch, and every epoch in [`CaptureMode::Inline`]) for its own. This, not
    /// `capture_secs`, is what capture adds to a run's time.
    pub capture_wait_secs: Vec<f64>,
}

/// Where each epoch's capture runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// Beside the next epoch's training (the default).
    #[default]
    Beside,
    /// Before the next epoch's training starts (for comparisons).
    Inline,
}

/// Records a new run of `trainer` in `store`, owned by `owner` (see [`crate::owner`]): its
/// name, configuration, device, the SHA-256 of its data and its probe images (epoch 0), in
/// one transaction. Returns the run id. Used
/// by the server and by `actiscope train`, so a
/// run looks the same in the dashboard whichever started it.
pub fn record_run(store: &mut Store, trainer: &Trainer, owner: &str) -> Result<i64, RunError> {
    let config = trainer.config();
    let config_json =
        serde_json::to_string(config).map_err(|e| RunError::Analysis(e.to_string()))?;
    let images_blob = actiscope_protocol::encode(&probe_images(trainer))?;
    let run_id = store.record_run(&actiscope_store::NewRun {
        name: &run_name(config),
        config_json: &config_json,
        device: &trainer.device().description,
        dataset_sha256: &trainer.splits().sha256_hex(),
        owner,
        snapshots: &[(IMAGES_KIND, &images_blob)],
    })?;
    Ok(run_id)
}

/// A run's name: the model, the data and how the training set was cut, e.g.
/// `mlp 40-40-40 relu on digits (25% of the training set)`.
pub fn run_name(config: &TrainConfig) -> String {
    match config.training.describe() {
        Some(part) => format!(
            "{} on {} ({part})",
            config.model.describe(),
            config.dataset.name()
        ),
        None => format!("{} on {}", config.model.describe(), config.dataset.name()),
    }
}

/// Records what a worker's `trainer` found for a queued run (device, the data's hash, the
/// probe images), as [`record_run`] does for a run it creates.
pub fn record_details(store: &mut Store, run_id: i64, trainer: &Trainer) -> Result<(), RunError> {
    let images_blob = actiscope_protocol::encode(&probe_images(trainer))?;
    store.set_run_details(
        run_id,
        &trainer.device().description,
        &trainer.splits().sha256_hex(),
        &[(IMAGES_KIND, &images_blob)],
    )?;
    Ok(())
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

/// One epoch's probe instances, from wherever the epoch came (the trainer or an import).
pub struct ProbeParts<'a> {
    /// Index of each probe instance in its source set.
    pub indices: Vec<u32>,
    /// True labels.
    pub labels: &'a [u32],
    /// Predicted labels.
    pub predictions: &'a [u32],
    /// Per-instance losses.
    pub losses: &'a [f32],
    /// Per hidden layer, probe instances x units; a unit is active when its value is `> 0`.
    pub pre_activations: &'a [actiscope_analysis::Matrix],
    /// Predicted-class probabilities, when known.
    pub scores: Option<&'a [f32]>,
}

/// Builds the stored snapshot of one epoch: patterns, APD and flows of its probe instances.
pub fn epoch_snapshot(
    metrics: &EpochMetrics,
    probe: &ProbeParts<'_>,
) -> Result<EpochSnapshot, RunError> {
    let layers: Vec<LayerPatterns> = probe
        .pre_activations
        .iter()
        .map(LayerPatterns::from_preactivations)
        .collect();
    let apd = build_apd(
        &layers,
        probe.predictions,
        probe.labels,
        ApdOptions::default(),
    )
    .map_err(|e| RunError::Analysis(e.to_string()))?;
    let last = layers.len().saturating_sub(1);
    let first = last.saturating_sub(1);
    let flows = flow_table(&layers, first, last, probe.predictions, probe.labels)
        .map_err(|e| RunError::Analysis(e.to_string()))?;
    Ok(EpochSnapshot {
        metrics: metrics.clone(),
        apd,
        flows,
        probe: ProbeInstances {
            indices: probe.indices.clone(),
            labels: probe.labels.to_vec(),
            predictions: probe.predictions.to_vec(),
            losses: probe.losses.to_vec(),
        },
    })
}

/// The probe parts of a trainer's report.
fn report_probe(report: &EpochReport) -> ProbeParts<'_> {
    ProbeParts {
        indices: report
            .probe
            .indices
            .iter()
            .map(|&i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect(),
        labels: &report.probe.labels,
        predictions: &report.probe.predictions,
        losses: &report.probe.losses,
        pre_activations: &report.probe.pre_activations,
        scores: Some(&report.probe.scores),
    }
}

/// Builds the stored snapshot of one epoch from the trainer's report.
pub fn snapshot(report: &EpochReport) -> Result<EpochSnapshot, RunError> {
    epoch_snapshot(&report.metrics, &report_probe(report))
}

/// Stores one epoch: its metrics, its snapshot (built here), its probe activations (and
/// scores, when known) and its `extras` (the training set's pattern ids, the checkpoint) in
/// one transaction, so a checkpoint is never ahead or behind its epoch; returns the snapshot.
pub fn store_epoch(
    store: &Mutex<Store>,
    run_id: i64,
    metrics: &EpochMetrics,
    probe: &ProbeParts<'_>,
    extras: &EpochExtras<'_>,
) -> Result<EpochSnapshot, RunError> {
    let snap = epoch_snapshot(metrics, probe)?;
    let metrics_json =
        serde_json::to_string(metrics).map_err(|e| RunError::Analysis(e.to_string()))?;
    let activations: Vec<WireMatrix> = probe
        .pre_activations
        .iter()
        .map(actiscope_analysis::Matrix::to_wire)
        .collect();
    let snapshot_blob = actiscope_protocol::encode(&snap)?;
    let activations_blob = actiscope_protocol::encode(&activations)?;
    // A slice encodes as the `Vec<f32>` the lenses decode.
    let scores_blob = probe
        .scores
        .map(|scores| actiscope_protocol::encode(&scores))
        .transpose()?;
    let mut blobs: Vec<(&str, &[u8])> = vec![
        (SNAPSHOT_KIND, &snapshot_blob),
        (PROBE_ACTIVATIONS_KIND, &activations_blob),
    ];
    if let Some(scores) = &scores_blob {
        blobs.push((PROBE_SCORES_KIND, scores));
    }
    let train_blob = extras.train.map(actiscope_protocol::encode).transpose()?;
    if let Some(train) = &train_blob {
        blobs.push((TRAIN_PATTERNS_KIND, train));
    }
    if let Some(checkpoint) = &extras.checkpoint {
        blobs.push((CHECKPOINT_KIND, checkpoint));
    }
    store
        .lock()
        .map_err(|_| RunError::Poisoned)?
        .put_epoch_keeping_latest(
            run_id,
            u32::try_from(metrics.epoch).unwrap_or(u32::MAX),
            &metrics_json,
            &blobs,
            &[CHECKPOINT_KIND],
        )?;
    Ok(snap)
}

/// Stores one captured epoch (metrics, snapshot, probe activations and scores in one
/// transaction) and hands its snapshot to `on_epoch`. Returns its metrics.
fn record_epoch(
    store: &Mutex<Store>,
    run_id: i64,
    report: &EpochReport,
    train_labels: &[u32],
    on_epoch: &mut (dyn FnMut(&EpochSnapshot) + Send),
) -> Result<EpochMetrics, RunError> {
    let train = TrainPatterns::of(report, train_labels);
    let extras = EpochExtras {
        train: Some(&train),
        checkpoint: report.checkpoint.as_ref().map(Checkpoint::to_bytes),
    };
    let snap = store_epoch(
        store,
        run_id,
        &report.metrics,
        &report_probe(report),
        &extras,
    )?;
    on_epoch(&snap);
    Ok(report.metrics.clone())
}

/// What [`run_to_completion`] reports while it works.
#[derive(Debug, Clone, Copy)]
pub enum RunProgress<'a> {
    /// The GPU is being prepared ([`Trainer::prepare_device`]) before the first epoch this
    /// process trains.
    Preparing(&'a Preparation),
    /// Batches done in the epoch in flight.
    Batches {
        /// 1-based epoch.
        epoch: usize,
        /// Batches done.
        done: usize,
        /// Batches in the epoch.
        total: usize,
    },
}

/// Trains the remaining epochs of `trainer` into run `run_id` of `store`. Each epoch is stored
/// in one transaction, in order; a killed process loses only the epochs not yet stored (with
/// [`CaptureMode::Beside`], the one in training and the one being captured). `stop` is
/// checked between epochs; a stop or a diverged epoch ends the run after the epochs already
/// trained are stored (a diverged epoch is the last stored).
pub fn run_to_completion(
    trainer: &mut Trainer,
    store: &Mutex<Store>,
    run_id: i64,
    stop: &AtomicBool,
    mode: CaptureMode,
    on_progress: &mut dyn FnMut(RunProgress<'_>),
    on_epoch: &mut (dyn FnMut(&EpochSnapshot) + Send),
) -> Result<RunOutcome, RunError> {
    let total_epochs = trainer.config().epochs;
    if trainer.device_needs_preparing()
        && trainer.epochs_done() < total_epochs
        && !stop.load(Ordering::SeqCst)
    {
        let took = trainer.prepare_device(&mut |step| {
            // For the servers that show the run without training it (see `preparation`).
            if let Err(err) = crate::preparation::store_step(store, run_id, step) {
                tracing::warn!(run_id, %err, "cannot store the preparation step");
            }
            on_progress(RunProgress::Preparing(step));
        })?;
        tracing::info!(
            run_id,
            secs = took.as_secs_f64(),
            "device prepared: kernels compiled and tuned"
        );
    }
    let train_labels = trainer.train_set().labels.clone();
    // Capacity 0: handing an epoch over waits until the recorder has finished the one before.
    let (hand_over, epochs_to_record) = sync_channel::<PendingEpoch>(0);
    let mut waits = Vec::new();
    let mut stopped = false;
    // The recorder says when each epoch is stored; only the inline mode waits for that.
    let (stored_one, stored_acks) = std::sync::mpsc::channel::<()>();
    let (trained, recorded) = std::thread::scope(|scope| {
        let recorder = scope.spawn(move || {
            let mut stored = Vec::new();
            for pending in epochs_to_record {
                let metrics =
                    record_epoch(store, run_id, &pending.wait()?, &train_labels, on_epoch)?;
                let diverged = metrics.diverged;
                stored.push(metrics);
                let _ = stored_one.send(());
                if diverged {
                    // Dropping the receiver tells the training thread to stop.
                    break;
                }
            }
            Ok::<_, RunError>(stored)
        });
        let trained = (|| {
            while trainer.epochs_done() < total_epochs {
                if stop.load(Ordering::SeqCst) {
                    stopped = true;
                    break;
                }
                let epoch = trainer.epochs_done() + 1;
                let pending = trainer.train_epoch(&mut |done, total| {
                    on_progress(RunProgress::Batches { epoch, done, total });
                })?;
                let waiting = Instant::now();
                if hand_over.send(pending).is_err() {
                    // The recorder stopped: a diverged epoch, or an error it reports.
                    break;
                }
                if mode == CaptureMode::Inline && stored_acks.recv().is_err() {
                    break;
                }
                waits.push(waiting.elapsed().as_secs_f64());
            }
            Ok::<_, RunError>(())
        })();
        drop(hand_over);
        let waiting = Instant::now();
        let recorded = recorder.join().unwrap_or_else(|_| {
            Err(RunError::Analysis(
                "the recorder thread panicked".to_owned(),
            ))
        });
        if let Some(last) = waits.last_mut() {
            *last += waiting.elapsed().as_secs_f64();
        }
        (trained, recorded)
    });
    trained?;
    let epochs = recorded?;
    let diverged = epochs.last().is_some_and(|m| m.diverged);
    let status = if diverged {
        RunStatus::Diverged
    } else if stopped {
        RunStatus::Stopped
    } else {
        RunStatus::Completed
    };
    store
        .lock()
        .map_err(|_| RunError::Poisoned)?
        .set_status(run_id, status)?;
    waits.truncate(epochs.len());
    Ok(RunOutcome {
        status,
        epochs,
        capture_wait_secs: waits,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use actiscope_train::data::synthetic::Planar;
    use actiscope_train::data::{DatasetSpec, load_splits};
    use actiscope_train::device::{DeviceChoice, choose};
    use actiscope_train::model::{Activation, ModelSpec};
    use actiscope_train::{OptimizerKind, ProbeSpec, TrainConfig};

    use super::*;

    fn moons(epochs: usize) -> TrainConfig {
        TrainConfig {
            dataset: DatasetSpec::Planar(Planar::Moons),
            model: ModelSpec::Mlp {
                hidden: vec![12, 12],
                activation: Activation::Relu,
            },
            optimizer: OptimizerKind::Adam,
            learning_rate: 0.01,
            batch_size: 64,
            epochs,
            seed: 2,
            probe: ProbeSpec::parse("n=40").unwrap(),
            device: DeviceChoice::Flex,
            training: Default::default(),
            checkpoint_every: 1,
        }
    }

    /// Runs `trainer` into a fresh in-memory store; `stop_after` sets the stop flag when that
    /// epoch is stored. Returns the outcome and the stored snapshots.
    fn record(
        mut trainer: Trainer,
        mode: CaptureMode,
        stop_after: Option<usize>,
    ) -> (RunOutcome, Vec<EpochSnapshot>) {
        let store = Mutex::new(Store::open_in_memory().unwrap());
        let run_id = record_run(&mut store.lock().unwrap(), &trainer, "test").unwrap();
        let stop = AtomicBool::new(false);
        let outcome = run_to_completion(
            &mut trainer,
            &store,
            run_id,
            &stop,
            mode,
            &mut |_| {},
            &mut |snapshot| {
                if stop_after == Some(snapshot.metrics.epoch) {
                    stop.store(true, Ordering::SeqCst);
                }
            },
        )
        .unwrap();
        let stored = store
            .lock()
            .unwrap()
            .snapshots_from(run_id, SNAPSHOT_KIND, 1)
            .unwrap()
            .into_iter()
            .map(|(_, blob)| actiscope_protocol::decode::<EpochSnapshot>(&blob).unwrap())
            .collect();
        (outcome, stored)
    }

    #[test]
    fn capture_beside_and_inline_store_the_same_epochs_in_order() {
        let (beside, beside_stored) =
            record(Trainer::new(moons(4)).unwrap(), CaptureMode::Beside, None);
        let (inline, inline_stored) =
            record(Trainer::new(moons(4)).unwrap(), CaptureMode::Inline, None);
        assert_eq!(beside.status, RunStatus::Completed);
        assert_eq!(inline.status, RunStatus::Completed);
        assert_eq!(beside.capture_wait_secs.len(), 4);
        assert_eq!(inline.capture_wait_secs.len(), 4);
        assert_eq!(
            beside_stored
                .iter()
                .map(|s| s.metrics.epoch)
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        for (a, b) in beside_stored.iter().zip(&inline_stored) {
            assert_eq!(a.metrics.train_loss, b.metrics.train_loss);
            assert_eq!(a.metrics.unique_patterns, b.metrics.unique_patterns);
            assert_eq!(a.apd, b.apd);
            assert_eq!(a.flows, b.flows);
            assert_eq!(a.probe, b.probe);
        }
        assert_eq!(beside.epochs.len(), beside_stored.len());
    }

    #[test]
    fn a_diverged_epoch_is_the_last_stored() {
        let config = moons(5);
        let mut splits = load_splits(&config.dataset, config.seed).unwrap();
        splits.train.features[3] = f32::NAN;
        let trainer =
            Trainer::with_device(config, splits, choose(DeviceChoice::Flex).unwrap()).unwrap();
        let (outcome, stored) = record(trainer, CaptureMode::Beside, None);
        assert_eq!(outcome.status, RunStatus::Diverged);
        assert_eq!(
            stored.len(),
            1,
            "nothing after the diverged epoch is stored"
        );
        assert!(stored[0].metrics.diverged);
        assert_eq!(outcome.epochs.len(), 1);
    }

    #[test]
    fn a_stop_keeps_every_epoch_already_trained() {
        let (outcome, stored) = record(
            Trainer::new(moons(6)).unwrap(),
            CaptureMode::Beside,
            Some(1),
        );
        assert_eq!(outcome.status, RunStatus::Stopped);
        // Epoch 2 may have been training when epoch 1 was stored; it is kept, nothing after.
        assert!((1..=2).contains(&stored.len()), "{}", stored.len());
        assert_eq!(
            stored.iter().map(|s| s.metrics.epoch).collect::<Vec<_>>(),
            (1..=stored.len()).collect::<Vec<_>>()
        );
        assert_eq!(outcome.epochs.len(), stored.len());
    }
}
