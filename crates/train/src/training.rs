//! The training loop: [`Trainer::train_epoch`] trains an epoch and starts capturing what
//! every layer does to the data afterwards; the capture runs beside the next epoch's
//! training (see [`PendingEpoch`]). [`Trainer::run_epoch`] does both and waits. Before a
//! process's first epoch on a GPU, [`Trainer::prepare_device`] (`prepare`) runs each kind of
//! work once, so kernels compile and tune up front, with progress.

mod prepare;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use actiscope_analysis::patterns::count_unique;
use actiscope_analysis::rng::SplitMix64;
use actiscope_analysis::{Matrix, PatternMatrix};
use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::{Int, TensorData};

use crate::auto::{MeasuredSteps, choose_for_model};
use crate::capture::{Evaluation, Keep, ReadbackError, evaluate};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::config::{ConfigError, OptimizerKind, ProbeSource, TrainConfig};
use crate::data::{DataError, Dataset, Splits, load_splits};
use crate::device::{ChosenDevice, DeviceChoice, DeviceError, choose};
use crate::model::{ModelSpec, Network};
pub use actiscope_protocol::EpochMetrics;
pub use prepare::Preparation;

/// Errors that stop a run from starting or going on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data could not be loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// No usable device.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The device failed while reading results.
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    /// The probe filter selects nothing.
    #[error("the probe filter {0} matches no instance")]
    EmptyProbe(String),
    /// The model does not fit the data.
    #[error("{0}")]
    Incompatible(String),
    /// The thread that captures epochs could not start or stopped without an answer.
    #[error("the capture thread failed: {0}")]
    CaptureThread(String),
    /// A checkpoint could not be written, read or applied.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// A fresh optimizer of `kind`.
pub(crate) fn new_optimizer(kind: OptimizerKind) -> ModuleOptimizer {
    match kind {
        OptimizerKind::Sgd => SgdConfig::new().init(),
        OptimizerKind::Adam => AdamConfig::new().init(),
    }
}

/// Held while a network is seeded and initialised.
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` (seeding and initialising a network) holding [`INIT_LOCK`]: backends may seed
/// one process-wide generator, so two networks initialised together must not interleave
/// their random draws.
pub(crate) fn with_init_lock<T>(f: impl FnOnce() -> T) -> T {
    let _only_us = INIT_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f()
}

/// Seed of the order in which probe instances are drawn: fixed, so every run of a dataset
/// probes the same instances.
const PROBE_ORDER_SEED: u64 = 0x0070_70be;

/// What the probe set looked like after an epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeCapture {
    /// Index of each probe instance in its source set.
    pub indices: Vec<usize>,
    /// True labels.
    pub labels: Vec<u32>,
    /// Predicted labels.
    pub predictions: Vec<u32>,
    /// Per-instance cross-entropy.
    pub losses: Vec<f32>,
    /// Softmax probability of each instance's predicted class.
    pub scores: Vec<f32>,
    /// Pre-activations of every hidden layer (instances x units).
    pub pre_activations: Vec<Matrix>,
}

/// Everything one epoch produced.
#[derive(Debug, Clone)]
pub struct EpochReport {
    /// The metrics.
    pub metrics: EpochMetrics,
    /// Patterns of every hidden layer over the training set.
    pub train_patterns: Vec<PatternMatrix>,
    /// Predictions over the training set.
    pub train_predictions: Vec<u32>,
    /// The probe set's capture.
    pub probe: ProbeCapture,
    /// The weights, optimizer state and batch order after the epoch, when the configuration
    /// asks for a checkpoint at this epoch.
    pub checkpoint: Option<Checkpoint>,
}

/// A run in progress.
pub struct Trainer {
    config: TrainConfig,
    splits: Arc<Splits>,
    /// The instances that train the network when `config.training` keeps only part of
    /// `splits.train` or reorders it, in the order an epoch visits them before its shuffle;
    /// `None` when they are `splits.train` itself (no copy).
    train: Option<Arc<Dataset>>,
    chosen: ChosenDevice,
    train_device: Device,
    network: Option<Network>,
    optimizer: ModuleOptimizer,
    probe_indices: Arc<Vec<usize>>,
    probe: Arc<Dataset>,
    order_rng: SplitMix64,
    epochs_done: usize,
    /// Where captures run: all cores but one, so the next epoch's training (one thread at the
    /// paper's batch sizes) keeps a core to itself.
    capture_pool: Arc<rayon::ThreadPool>,
    /// The training instances on the training device, uploaded before the first epoch.
    staged: Option<Staged>,
}

/// The training instances on the training device, uploaded once: each batch is gathered
/// there through a slice of the epoch's order (one index tensor per epoch), so a training
/// step sends nothing from the host and waits for nothing.
pub(crate) struct Staged {
    /// `[instances, features]`.
    features: Tensor<2>,
    /// `[instances]`, class indices.
    labels: Tensor<1, Int>,
}

impl Staged {
    /// Instances already on the device: `features` `[instances, features]`, `labels`
    /// `[instances]` (class indices).
    pub(crate) fn new(features: Tensor<2>, labels: Tensor<1, Int>) -> Self {
        Self { features, labels }
    }

    fn upload(train: &Dataset, device: &Device) -> Self {
        let labels: Vec<i64> = train.labels.iter().map(|&l| i64::from(l)).collect();
        Self {
            features: Tensor::<2>::from_data(
                TensorData::new(train.features.clone(), [train.len(), train.dim]),
                device,
            ),
            labels: Tensor::<1, Int>::from_data(TensorData::new(labels, [train.len()]), device),
        }
    }
}

/// An epoch whose training is done and whose capture (evaluation of the training,
/// validation and probe sets with the weights at the end of the epoch) runs on the capture
/// threads, beside whatever the caller does next, typically training the next epoch.
#[must_use = "the epoch's report comes from `wait`"]
pub struct PendingEpoch {
    epoch: usize,
    answer: Receiver<Result<EpochReport, TrainError>>,
}

impl PendingEpoch {
    /// The 1-based epoch.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Waits for the capture and returns the epoch's report.
    pub fn wait(self) -> Result<EpochReport, TrainError> {
        self.answer
            .recv()
            .map_err(|_| TrainError::CaptureThread(format!("epoch {} got no answer", self.epoch)))?
    }
}

/// What a capture needs, owned, so it can run on another thread.
struct CaptureJob {
    epoch: usize,
    network: Network,
    device: Device,
    splits: Arc<Splits>,
    train: Option<Arc<Dataset>>,
    probe: Arc<Dataset>,
    probe_indices: Arc<Vec<usize>>,
    minibatch_loss: f64,
    train_secs: f64,
    /// The batch-order state and the optimizer's state after the epoch, when it checkpoints
    /// (the weights come from `network`).
    checkpoint: Option<(u64, Vec<u8>)>,
}

impl CaptureJob {
    /// Evaluates the training set (patterns kept), the validation set and the probe set
    /// (activations kept) and assembles the epoch's report.
    fn run(self) -> Result<EpochReport, TrainError> {
        let capture_started = Instant::now();
        let (network, device) = (&self.network, &self.device);
        let train_eval = evaluate(
            network,
            self.train.as_deref().unwrap_or(&self.splits.train),
            device,
            Keep {
                patterns: true,
                activations: false,
            },
        )?;
        let unique_patterns: Vec<usize> = train_eval.patterns.iter().map(count_unique).collect();
        let validation = evaluate(
            network,
            &self.splits.validation,
            device,
            Keep {
                patterns: false,
                activations: false,
            },
        )?;
        let probe_eval = evaluate(
            network,
            &self.probe,
            device,
            Keep {
                patterns: false,
                activations: true,
            },
        )?;
        let capture_secs = capture_started.elapsed().as_secs_f64();
        let train_loss = train_eval.mean_loss();
        let metrics = EpochMetrics {
            epoch: self.epoch,
            train_loss,
            val_loss: validation.mean_loss(),
            train_accuracy: train_eval
                .accuracy(&self.train.as_deref().unwrap_or(&self.splits.train).labels),
            val_accuracy: validation.accuracy(&self.splits.validation.labels),
            minibatch_loss: self.minibatch_loss,
            unique_patterns,
            train_secs: self.train_secs,
            capture_secs,
            diverged: !(train_loss.is_finite() && self.minibatch_loss.is_finite()),
        };
        let Evaluation {
            predictions,
            losses,
            scores,
            pre_activations,
            ..
        } = probe_eval;
        let checkpoint = self
            .checkpoint
            .map(|(order_state, optimizer)| {
                let weights = self
                    .network
                    .clone()
                    .into_record()
                    .into_bytes()
                    .map_err(|e| CheckpointError(format!("cannot write the weights: {e}")))?;
                Ok::<_, CheckpointError>(Checkpoint {
                    epoch: self.epoch,
                    order_state,
                    weights: weights.to_vec(),
                    optimizer,
                })
            })
            .transpose()?;
        Ok(EpochReport {
            checkpoint,
            metrics,
            train_patterns: train_eval.patterns,
            train_predictions: train_eval.predictions,
            probe: ProbeCapture {
                indices: self.probe_indices.as_ref().clone(),
                labels: self.probe.labels.clone(),
                predictions,
                losses,
                scores,
                pre_activations,
            },
        })
    }
}

impl Trainer {
    /// Validates the config, loads the data, picks the device and initialises the network.
    pub fn new(config: TrainConfig) -> Result<Self, TrainError> {
        config.validate()?;
        let splits = load_splits(&config.dataset, config.seed)?;
        let chosen = match config.device {
            DeviceChoice::Auto => choose_for_model(
                &config,
                splits.train.dim,
                splits.classes,
                &MeasuredSteps::default(),
            )?,
            other => choose(other)?,
        };
        Self::with_device(config, splits, chosen)
    }

    /// As [`new`](Self::new) with data and device already chosen (tests, benchmarks).
    pub fn with_device(
        config: TrainConfig,
        splits: Splits,
        chosen: ChosenDevice,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        if let ModelSpec::Cnn { .. } = config.model {
            match splits.train.image_shape {
                Some((rows, cols)) if rows == cols && rows >= 12 => {}
                _ => {
                    return Err(TrainError::Incompatible(format!(
                        "the CNN needs square images of at least 12x12; {} has none",
                        splits.spec.name()
                    )));
                }
            }
        }
        let source = match config.probe.source {
            ProbeSource::Test => &splits.test,
            ProbeSource::Train => &splits.train,
        };
        // A fixed shuffle (the same for every run) so "the first n" spans every label even
        // when the source set is ordered by label, as the built-in digits are.
        let mut order: Vec<usize> = (0..source.len()).collect();
        SplitMix64::new(PROBE_ORDER_SEED).shuffle(&mut order);
        let mut probe_indices: Vec<usize> = order
            .into_iter()
            .filter(|&i| {
                config
                    .probe
                    .label
                    .is_none_or(|l| source.labels.get(i) == Some(&l))
            })
            .take(config.probe.count)
            .collect();
        probe_indices.sort_unstable();
        if probe_indices.is_empty() {
            return Err(TrainError::EmptyProbe(format!("{:?}", config.probe)));
        }
        check_size(&config, &splits, probe_indices.len())?;
        let probe = source.subset(&probe_indices);
        let kept = config
            .training
            .select(&splits.train.labels, splits.classes, config.seed)
            .map_err(|e| TrainError::Incompatible(e.to_string()))?;
        let whole =
            kept.len() == splits.train.len() && kept.iter().enumerate().all(|(i, &k)| i == k);
        let train = (!whole).then(|| Arc::new(splits.train.subset(&kept)));
        let train_device = chosen.device.clone().autodiff();
        let network = with_init_lock(|| {
            train_device.seed(config.seed);
            let network = Network::init(
                &config.model,
                splits.train.dim,
                splits.classes,
                &train_device,
            );
            // Parameters are initialised lazily, on first use: use them all now, under the lock.
            let _ = network.forward(Tensor::<2>::zeros([1, splits.train.dim], &train_device));
            network
        });
        let optimizer = new_optimizer(config.optimizer);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let capture_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cores.saturating_sub(1).max(1))
            .thread_name(|i| format!("actiscope-capture-{i}"))
            .build()
            .map_err(|e| TrainError::CaptureThread(e.to_string()))?;
        Ok(Self {
            order_rng: SplitMix64::new(config.seed ^ 0xba7c_0de5),
            config,
            splits: Arc::new(splits),
            train,
            chosen,
            train_device,
            network: Some(network),
            optimizer,
            probe_indices: Arc::new(probe_indices),
            probe: Arc::new(probe),
            epochs_done: 0,
            capture_pool: Arc::new(capture_pool),
            staged: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The data.
    pub fn splits(&self) -> &Splits {
        &self.splits
    }

    /// The instances that train the network: the whole training set unless the
    /// configuration keeps a fraction or some classes of it.
    pub fn train_set(&self) -> &Dataset {
        self.train.as_deref().unwrap_or(&self.splits.train)
    }

    /// The device in use, described for people.
    pub fn device(&self) -> &ChosenDevice {
        &self.chosen
    }

    /// Epochs trained so far.
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Goes on from `checkpoint`: its weights, optimizer state and batch order, with
    /// `checkpoint.epoch` epochs done. The checkpoint must come from a run of the same
    /// configuration; one that does not fit the network is refused and changes nothing.
    pub fn resume_from(&mut self, checkpoint: &Checkpoint) -> Result<(), TrainError> {
        if checkpoint.epoch > self.config.epochs {
            return Err(CheckpointError(format!(
                "it is after epoch {}, but the run has {} epochs",
                checkpoint.epoch, self.config.epochs
            ))
            .into());
        }
        let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(
            checkpoint.weights.clone(),
        ))
        .map_err(|e| CheckpointError(format!("cannot read the weights: {e}")))?;
        let network = self
            .network
            .clone()
            .ok_or_else(|| TrainError::Incompatible("the network was lost".to_owned()))?
            .try_load_record(record)
            .map_err(|e| CheckpointError(format!("the weights do not fit this network: {e}")))?;
        let optimizer = new_optimizer(self.config.optimizer)
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(
                checkpoint.optimizer.clone(),
            ))
            .map_err(|e| CheckpointError(format!("cannot read the optimizer state: {e}")))?;
        self.network = Some(network);
        self.optimizer = optimizer;
        self.order_rng = SplitMix64::new(checkpoint.order_state);
        self.epochs_done = checkpoint.epoch;
        Ok(())
    }

    /// The probe instances (their indices in the probe's source set).
    pub fn probe_indices(&self) -> &[usize] {
        self.probe_indices.as_slice()
    }

    /// Trains one epoch (reporting `(batches_done, batches_total)` to `on_batch`) and starts
    /// its capture on the capture threads with a copy of the weights as they are now; returns
    /// as soon as training is done. Training the next epoch does not change what this one
    /// captures.
    pub fn train_epoch(
        &mut self,
        on_batch: &mut dyn FnMut(usize, usize),
    ) -> Result<PendingEpoch, TrainError> {
        let train_started = Instant::now();
        let minibatch_loss = self.train_one_epoch(on_batch)?;
        let train_secs = train_started.elapsed().as_secs_f64();
        let network = self
            .network
            .as_ref()
            .ok_or_else(|| TrainError::Incompatible("the network was lost".to_owned()))?
            .valid();
        self.epochs_done += 1;
        let every = self.config.checkpoint_every;
        let due = every > 0
            && (self.epochs_done.is_multiple_of(every) || self.epochs_done == self.config.epochs);
        let checkpoint = if due {
            let optimizer = self
                .optimizer
                .into_bytes()
                .map_err(|e| CheckpointError(format!("cannot write the optimizer state: {e}")))?;
            Some((self.order_rng.state(), optimizer.to_vec()))
        } else {
            None
        };
        let job = CaptureJob {
            checkpoint,
            epoch: self.epochs_done,
            network,
            device: self.chosen.device.clone(),
            splits: Arc::clone(&self.splits),
            train: self.train.clone(),
            probe: Arc::clone(&self.probe),
            probe_indices: Arc::clone(&self.probe_indices),
            minibatch_loss,
            train_secs,
        };
        let (answer, receiver) = sync_channel(1);
        self.capture_pool.spawn(move || {
            // The receiver may be gone (the run was abandoned); nobody needs the answer then.
            let _ = answer.send(job.run());
        });
        Ok(PendingEpoch {
            epoch: self.epochs_done,
            answer: receiver,
        })
    }

    /// Trains one epoch and waits for its capture: [`train_epoch`](Self::train_epoch) then
    /// [`PendingEpoch::wait`].
    pub fn run_epoch(
        &mut self,
        on_batch: &mut dyn FnMut(usize, usize),
    ) -> Result<EpochReport, TrainError> {
        self.train_epoch(on_batch)?.wait()
    }

    /// One pass over the training instances, shuffled unless the configuration orders them
    /// class by class; returns the mean minibatch loss.
    fn train_one_epoch(
        &mut self,
        on_batch: &mut dyn FnMut(usize, usize),
    ) -> Result<f64, TrainError> {
        let splits = Arc::clone(&self.splits);
        let train = self.train.clone();
        let train = train.as_deref().unwrap_or(&splits.train);
        let mut order: Vec<usize> = (0..train.len()).collect();
        if self.config.training.order == crate::config::TrainOrder::Shuffled {
            self.order_rng.shuffle(&mut order);
        }
        let batch = self.config.batch_size;
        let total = order.len().div_ceil(batch);
        let staged = self
            .staged
            .get_or_insert_with(|| Staged::upload(train, &self.train_device));
        let order: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let mut steps = EpochSteps::new(staged, order, &self.train_device);
        let mut network = self
            .network
            .take()
            .ok_or_else(|| TrainError::Incompatible("the network was lost".to_owned()))?;
        let instances = steps.instances();
        for (done, start) in (0..instances).step_by(batch).enumerate() {
            network = steps.step(
                network,
                &mut self.optimizer,
                self.config.learning_rate,
                start..(start + batch).min(instances),
            );
            on_batch(done + 1, total);
        }
        self.network = Some(network);
        Ok(steps
            .take_loss_sum()?
            .map_or(f64::NAN, |sum| f64::from(sum) / total.max(1) as f64))
    }
}

/// An epoch's training steps on the staged training set, in a given order: the same tensors
/// and operations whoever runs them, [`Trainer::train_one_epoch`], the GPU's preparation
/// (which must meet the kernels an epoch meets) or `--device auto`'s timing.
pub(crate) struct EpochSteps<'a> {
    staged: &'a Staged,
    /// `[instances]`: the staged instances in the epoch's order.
    order: Tensor<1, Int>,
    loss_fn: CrossEntropyLoss,
    /// The steps' losses, summed and detached on the device since the last read.
    loss_sum: Option<Tensor<1>>,
}

impl<'a> EpochSteps<'a> {
    /// Steps over `staged` in `order` (indices into it), on `device`: one index tensor sent.
    pub(crate) fn new(staged: &'a Staged, order: Vec<i64>, device: &Device) -> Self {
        let len = order.len();
        Self {
            staged,
            order: Tensor::<1, Int>::from_data(TensorData::new(order, [len]), device),
            loss_fn: CrossEntropyLossConfig::new().init(device),
            loss_sum: None,
        }
    }

    /// Instances in the order.
    fn instances(&self) -> usize {
        let [instances] = self.order.dims();
        instances
    }

    /// One step on the instances at `positions` of the order: forward, loss (added to the
    /// sum, detached), backward and `optimizer`'s update; returns the updated network.
    pub(crate) fn step(
        &mut self,
        network: Network,
        optimizer: &mut ModuleOptimizer,
        learning_rate: f64,
        positions: std::ops::Range<usize>,
    ) -> Network {
        let indices = self
            .order
            .clone()
            .narrow(0, positions.start, positions.len());
        let input = self.staged.features.clone().select(0, indices.clone());
        let targets = self.staged.labels.clone().select(0, indices);
        let output = network.forward(input);
        let loss = self.loss_fn.forward(output.logits, targets);
        self.loss_sum = Some(match self.loss_sum.take() {
            Some(sum) => sum + loss.clone().detach(),
            None => loss.clone().detach(),
        });
        let grads = GradientsParams::from_grads(loss.backward(), &network);
        optimizer.step(learning_rate, network, grads)
    }

    /// The sum of the losses since the last call, read back (the one sync of an epoch);
    /// `None` when no step ran.
    fn take_loss_sum(&mut self) -> Result<Option<f32>, ReadbackError> {
        self.loss_sum
            .take()
            .map(|sum| {
                sum.try_into_scalar::<f32>()
                    .map_err(|e| ReadbackError(format!("{e:?}")))
            })
            .transpose()
    }
}

/// Most parameters a network may have: 100 million `f32`s are 400 MB, 1.6 GB with the
/// gradients and Adam's two moments, which is what a run on a laptop can take.
pub const MAX_PARAMETERS: usize = 100_000_000;

/// Hidden units per instance the capture stores for the probe set, and the parameter count,
/// of `model` on `input_dim` features (images `side x side` for the CNN) and `classes`
/// classes.
pub fn network_size(
    model: &ModelSpec,
    input_dim: usize,
    side: usize,
    classes: usize,
) -> (usize, usize) {
    match model {
        ModelSpec::Mlp { hidden, .. } => {
            let mut parameters = 0usize;
            let mut previous = input_dim;
            for &width in hidden.iter().chain(std::iter::once(&classes)) {
                parameters = parameters.saturating_add((previous + 1).saturating_mul(width));
                previous = width;
            }
            (hidden.iter().sum(), parameters)
        }
        ModelSpec::Cnn { .. } => {
            // conv 1->10 5x5, pool 2, conv 10->20 5x5, pool 2, fc -> classes.
            let first = side.saturating_sub(4) / 2;
            let second = first.saturating_sub(4) / 2;
            let units = 10 * first * first + 20 * second * second;
            let parameters =
                (25 + 1) * 10 + (10 * 25 + 1) * 20 + (20 * second * second + 1) * classes;
            (units, parameters)
        }
    }
}

/// Refuses, before anything is trained or stored, a network over [`MAX_PARAMETERS`] and a
/// probe whose activations would not fit in one stored epoch (a blob over the protocol's
/// frame limit could be written but never read back), each with the numbers and the fix.
fn check_size(
    config: &TrainConfig,
    splits: &Splits,
    probe_count: usize,
) -> Result<(), ConfigError> {
    let classes = splits
        .train
        .labels
        .iter()
        .max()
        .map_or(1, |&m| m as usize + 1);
    let side = splits.train.image_shape.map_or(0, |(rows, _)| rows);
    let (units, parameters) = network_size(&config.model, splits.train.dim, side, classes);
    if parameters > MAX_PARAMETERS {
        return Err(ConfigError::Invalid(format!(
            "the network has {parameters} parameters, over the budget of {MAX_PARAMETERS} \
             (about {:.1} GB with gradients and Adam's state): use narrower or fewer layers",
            parameters as f64 * 16.0 / 1e9
        )));
    }
    // Postcard writes each f32 in 4 bytes; a little room for the matrices' headers.
    let budget = actiscope_protocol::MAX_FRAME_BYTES - 64 * 1024;
    let bytes = probe_count.saturating_mul(units).saturating_mul(4);
    if bytes > budget {
        let fits = budget / units.max(1) / 4;
        return Err(ConfigError::Invalid(format!(
            "the probe's activations would take {:.1} MiB per epoch ({probe_count} instances x \
             {units} hidden units x 4 bytes), over the {} MiB one stored epoch may hold: \
             shrink the probe to at most {fits} instances (--probe n={fits})",
            bytes as f64 / (1024.0 * 1024.0),
            actiscope_protocol::MAX_FRAME_BYTES / (1024 * 1024)
        )));
    }
    Ok(())
}
