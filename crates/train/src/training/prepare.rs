//! Preparing a GPU before a process trains its first epoch: each kind of work the run will
//! do there (the training set staged, training steps at the run's batch sizes, a capture of
//! each set) done once, up front and with progress, so that the GPU compiles and autotunes
//! its kernels here and not silently inside the first epochs. The run's weights, optimizer
//! state and batch order are left exactly as they were. On flex there is nothing to prepare.

use std::time::{Duration, Instant};

use burn::module::Module;

use super::{EpochSteps, Staged, TrainError, Trainer, new_optimizer};
use crate::capture::{Keep, evaluate};
use crate::device::DeviceChoice;
use crate::model::Network;

/// Where [`Trainer::prepare_device`] is, told before each step and once at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preparation {
    /// Steps finished.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// The step now running, for people (`training steps of 64 and 36 instances`); empty once
    /// every step is done.
    pub step: String,
    /// Time since the preparation started.
    pub elapsed: Duration,
}

/// One piece of the preparation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The training set uploaded to the training device (kept: the first epoch uses it).
    Stage,
    /// An epoch's first training steps (two when the set holds two batches: the second
    /// one adds to the loss sum and finds the optimizer's state), then its last, shorter
    /// one if the batch size does not divide the set, and the epoch's one loss read-back;
    /// twice over (see [`Trainer::training_steps`]).
    Train,
    /// Evaluation passes over the training set, keeping patterns: with the weights as a
    /// capture finds them right after an epoch, and as it finds them later.
    CaptureTrain,
    /// An evaluation pass over the validation set.
    CaptureValidation,
    /// An evaluation pass over the probe set, keeping activations.
    CaptureProbe,
}

impl Trainer {
    /// Whether [`prepare_device`](Self::prepare_device) has anything to do: the run trains
    /// on a GPU (wgpu), whose kernels are compiled and tuned on first use.
    pub fn device_needs_preparing(&self) -> bool {
        self.chosen.backend != DeviceChoice::Flex
    }

    /// Runs, once each, the kinds of work the run's epochs do on its device, telling
    /// `on_step` before each step and when all are done; returns how long it took. A
    /// training step runs on a copy of the network with a fresh optimizer, so nothing the
    /// run trains changes: a prepared run's epochs are bit-identical to an unprepared
    /// one's. Callers do this before the first epoch a process trains, when
    /// [`device_needs_preparing`](Self::device_needs_preparing); on flex it only costs
    /// time.
    pub fn prepare_device(
        &mut self,
        on_step: &mut dyn FnMut(&Preparation),
    ) -> Result<Duration, TrainError> {
        let started = Instant::now();
        let steps = [
            Step::Stage,
            Step::Train,
            Step::CaptureTrain,
            Step::CaptureValidation,
            Step::CaptureProbe,
        ];
        let mut trained = None;
        for (done, step) in steps.iter().enumerate() {
            on_step(&Preparation {
                done,
                total: steps.len(),
                step: self.describe(*step),
                elapsed: started.elapsed(),
            });
            self.run_step(*step, &mut trained)?;
        }
        on_step(&Preparation {
            done: steps.len(),
            total: steps.len(),
            step: String::new(),
            elapsed: started.elapsed(),
        });
        Ok(started.elapsed())
    }

    /// What `step` does, for people.
    fn describe(&self, step: Step) -> String {
        let instances = self.train_set().len();
        let batch = self.config.batch_size.min(instances.max(1));
        match step {
            Step::Stage => format!("staging the {instances} training instances"),
            Step::Train => match instances % batch {
                0 => format!("training steps of {batch} instances"),
                tail => format!("training steps of {batch} and {tail} instances"),
            },
            Step::CaptureTrain => format!("capturing the training set ({instances} instances)"),
            Step::CaptureValidation => format!(
                "capturing the validation set ({} instances)",
                self.splits.validation.len()
            ),
            Step::CaptureProbe => {
                format!("capturing the probe set ({} instances)", self.probe.len())
            }
        }
    }

    /// Runs `step`. `trained` is the copy [`Step::Train`] trained, its last weight update
    /// still pending on the device, as the run's weights are when an epoch's capture starts.
    fn run_step(&mut self, step: Step, trained: &mut Option<Network>) -> Result<(), TrainError> {
        let lost = || TrainError::Incompatible("the network was lost".to_owned());
        let keep = |patterns, activations| Keep {
            patterns,
            activations,
        };
        let device = &self.chosen.device;
        match step {
            Step::Stage => self.stage(),
            Step::Train => *trained = Some(self.training_steps()?),
            Step::CaptureTrain => {
                // A GPU fuses pending work into its first consumer: after an epoch, the
                // capture meets the last update still pending when it starts before the next
                // epoch, and finished weights when the next epoch came first. Both, here.
                let pending = trained.as_ref().ok_or_else(lost)?;
                evaluate(
                    &pending.valid(),
                    self.train_set(),
                    device,
                    keep(true, false),
                )?;
                let finished = self.network.as_ref().ok_or_else(lost)?;
                evaluate(
                    &finished.valid(),
                    self.train_set(),
                    device,
                    keep(true, false),
                )?;
            }
            Step::CaptureValidation => {
                let network = trained.as_ref().ok_or_else(lost)?;
                evaluate(
                    &network.valid(),
                    &self.splits.validation,
                    device,
                    keep(false, false),
                )?;
            }
            Step::CaptureProbe => {
                let network = trained.as_ref().ok_or_else(lost)?;
                evaluate(&network.valid(), &self.probe, device, keep(false, true))?;
            }
        }
        Ok(())
    }

    /// Uploads the training set to the training device unless it is there already.
    pub(super) fn stage(&mut self) {
        if self.staged.is_none() {
            self.staged = Some(Staged::upload(self.train_set(), &self.train_device));
        }
    }

    /// The start and the end of an epoch, as [`Trainer::train_one_epoch`] runs them (same
    /// tensors, same operations), twice, on a copy of the network with a fresh optimizer:
    /// the second time, the first step meets the last update still pending, as the next
    /// epoch does when it starts before the capture. Returns the copy, its last update
    /// pending; the optimizer is dropped.
    fn training_steps(&mut self) -> Result<Network, TrainError> {
        let instances = self.train_set().len();
        let batch = self.config.batch_size;
        let mut network = self
            .network
            .clone()
            .ok_or_else(|| TrainError::Incompatible("the network was lost".to_owned()))?;
        if instances == 0 || batch == 0 {
            return Ok(network);
        }
        self.stage();
        let staged = self.staged.as_ref().ok_or_else(|| {
            TrainError::Incompatible("the training set was not staged".to_owned())
        })?;
        let mut optimizer = new_optimizer(self.config.optimizer);
        let mut steps =
            EpochSteps::new(staged, (0..instances as i64).collect(), &self.train_device);
        // Batch starts: the first, the second, and the last when it is shorter.
        let mut starts = vec![0];
        if instances >= 2 * batch {
            starts.push(batch);
        }
        let last = (instances - 1) / batch * batch;
        if !instances.is_multiple_of(batch) && !starts.contains(&last) {
            starts.push(last);
        }
        for _ in 0..2 {
            for &start in &starts {
                network = steps.step(
                    network,
                    &mut optimizer,
                    self.config.learning_rate,
                    start..(start + batch).min(instances),
                );
            }
            steps.take_loss_sum()?;
        }
        Ok(network)
    }
}
