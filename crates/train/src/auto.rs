//! `--device auto` for a model: time a few of its training steps on the CPU (flex) and on
//! the GPU, and train where a step is faster. A tiny MLP is launch-bound on any GPU (each
//! step is a few dozen kernel launches on a few thousand numbers) and trains faster on the
//! CPU; a wide MLP or a CNN at a large batch is the GPU's. The choice and the timings that made
//! it go into the device's description, which the dashboard's header and `--json` show.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};

use crate::config::TrainConfig;
use crate::device::{ChosenDevice, DeviceChoice, choose};
use crate::model::Network;
use crate::training::{EpochSteps, Staged, TrainError, new_optimizer, with_init_lock};

/// How long one training step of a model takes on a device: measured, or told (tests).
pub trait StepTimer {
    /// Seconds per training step of `config`'s model and optimizer at its batch size on
    /// `device`, for inputs of `dim` features and `classes` classes.
    fn secs_per_step(
        &self,
        device: &ChosenDevice,
        config: &TrainConfig,
        dim: usize,
        classes: usize,
    ) -> Result<f64, TrainError>;
}

/// Times real steps (the training loop's own, [`EpochSteps`]): a freshly initialised copy
/// of the model trains on a constant batch of the configured size, `warmup` steps untimed (kernel compilation, allocation), then
/// `timed` steps, with the device synchronised before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasuredSteps {
    /// Steps run before the clock starts.
    pub warmup: usize,
    /// Steps timed.
    pub timed: usize,
}

impl Default for MeasuredSteps {
    fn default() -> Self {
        Self {
            warmup: 3,
            timed: 10,
        }
    }
}

impl StepTimer for MeasuredSteps {
    fn secs_per_step(
        &self,
        device: &ChosenDevice,
        config: &TrainConfig,
        dim: usize,
        classes: usize,
    ) -> Result<f64, TrainError> {
        let train_device = device.device.clone().autodiff();
        let mut network = with_init_lock(|| {
            let network = Network::init(&config.model, dim, classes, &train_device);
            let _ = network.forward(Tensor::<2>::zeros([1, dim], &train_device));
            network
        });
        let mut optimizer = new_optimizer(config.optimizer);
        let batch = config.batch_size.max(1);
        let labels: Vec<i64> = (0..batch).map(|i| (i % classes.max(1)) as i64).collect();
        let staged = Staged::new(
            Tensor::<2>::zeros([batch, dim], &train_device),
            Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &train_device),
        );
        let mut steps = EpochSteps::new(&staged, (0..batch as i64).collect(), &train_device);
        let sync = |what: &str| {
            train_device
                .sync()
                .map_err(|e| TrainError::Incompatible(format!("timing {what}: {e:?}")))
        };
        let mut started = Instant::now();
        for step in 0..self.warmup + self.timed {
            if step == self.warmup {
                sync(&device.description)?;
                started = Instant::now();
            }
            network = steps.step(network, &mut optimizer, config.learning_rate, 0..batch);
        }
        sync(&device.description)?;
        Ok(started.elapsed().as_secs_f64() / self.timed.max(1) as f64)
    }
}

/// The device `--device auto` trains `config`'s model on: flex when there is no GPU, else
/// whichever of flex and the GPU timed the faster step (see [`pick`]).
pub fn choose_for_model(
    config: &TrainConfig,
    dim: usize,
    classes: usize,
    timer: &dyn StepTimer,
) -> Result<ChosenDevice, TrainError> {
    let candidate = choose(DeviceChoice::Auto)?;
    if candidate.backend == DeviceChoice::Flex {
        return Ok(candidate);
    }
    pick(
        choose(DeviceChoice::Flex)?,
        candidate,
        config,
        dim,
        classes,
        timer,
    )
}

/// Of the CPU (`flex`) and a GPU (`gpu`), the one whose training step for `config`'s model
/// `timer` finds faster; the description says which, and the two timings. A GPU that fails to
/// run the step is passed over for the CPU, and the description says why.
pub fn pick(
    flex: ChosenDevice,
    gpu: ChosenDevice,
    config: &TrainConfig,
    dim: usize,
    classes: usize,
    timer: &dyn StepTimer,
) -> Result<ChosenDevice, TrainError> {
    let gpu_secs = match timer.secs_per_step(&gpu, config, dim, classes) {
        Ok(secs) => secs,
        Err(error) => {
            return Ok(ChosenDevice {
                description: format!(
                    "{}; auto: {} failed a training step ({error})",
                    flex.description, gpu.description
                ),
                ..flex
            });
        }
    };
    let flex_secs = timer.secs_per_step(&flex, config, dim, classes)?;
    // The faster device, its time, the other's time and the other's name.
    let (chosen, chosen_secs, other_secs, other) = if gpu_secs < flex_secs {
        (gpu, gpu_secs, flex_secs, flex.description)
    } else {
        (flex, flex_secs, gpu_secs, gpu.description)
    };
    Ok(ChosenDevice {
        description: format!(
            "{}; auto: a training step at batch {} takes {:.2} ms here against {:.2} ms on \
             {other}",
            chosen.description,
            config.batch_size,
            chosen_secs * 1e3,
            other_secs * 1e3
        ),
        ..chosen
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProbeSpec;
    use crate::data::DatasetSpec;
    use crate::model::{Activation, ModelSpec};

    fn tiny_mlp() -> TrainConfig {
        TrainConfig {
            dataset: DatasetSpec::Digits,
            model: ModelSpec::Mlp {
                hidden: vec![40, 40, 40],
                activation: Activation::Relu,
            },
            optimizer: crate::OptimizerKind::Sgd,
            learning_rate: 0.001,
            batch_size: 64,
            epochs: 1,
            seed: 0,
            probe: ProbeSpec::parse("n=10").unwrap(),
            device: DeviceChoice::Auto,
            training: Default::default(),
            checkpoint_every: 1,
        }
    }

    /// Step times told rather than measured, in milliseconds; `None` fails the step.
    struct Told {
        flex_ms: f64,
        gpu_ms: Option<f64>,
    }

    impl StepTimer for Told {
        fn secs_per_step(
            &self,
            device: &ChosenDevice,
            _: &TrainConfig,
            _: usize,
            _: usize,
        ) -> Result<f64, TrainError> {
            let ms = if device.backend == DeviceChoice::Flex {
                Some(self.flex_ms)
            } else {
                self.gpu_ms
            };
            ms.map(|ms| ms / 1e3)
                .ok_or_else(|| TrainError::Incompatible("out of device memory".to_owned()))
        }
    }

    fn candidates() -> (ChosenDevice, ChosenDevice) {
        let flex = choose(DeviceChoice::Flex).unwrap();
        // A stand-in GPU: only its backend and description matter to `pick`.
        let gpu = ChosenDevice {
            device: Device::flex(),
            description: "wgpu: NVIDIA H200 (Vulkan)".to_owned(),
            backend: DeviceChoice::Wgpu,
        };
        (flex, gpu)
    }

    #[test]
    fn a_tiny_mlp_goes_to_flex_when_told_the_gpu_is_slower() {
        let (flex, gpu) = candidates();
        let told = Told {
            flex_ms: 0.21,
            gpu_ms: Some(0.84),
        };
        let chosen = pick(flex, gpu, &tiny_mlp(), 784, 10, &told).unwrap();
        assert_eq!(chosen.backend, DeviceChoice::Flex);
        let why = &chosen.description;
        assert!(why.starts_with("flex (CPU); auto:"), "{why}");
        assert!(
            why.contains("0.21 ms") && why.contains("0.84 ms") && why.contains("H200"),
            "{why}"
        );
    }

    #[test]
    fn the_gpu_is_chosen_when_told_it_is_faster_and_passed_over_when_it_fails() {
        let (flex, gpu) = candidates();
        let told = Told {
            flex_ms: 2.4,
            gpu_ms: Some(0.05),
        };
        let chosen = pick(flex.clone(), gpu.clone(), &tiny_mlp(), 784, 10, &told).unwrap();
        assert_eq!(chosen.backend, DeviceChoice::Wgpu);
        assert!(
            chosen
                .description
                .starts_with("wgpu: NVIDIA H200 (Vulkan); auto:")
                && chosen.description.contains("2.40 ms on flex"),
            "{}",
            chosen.description
        );
        let failing = Told {
            flex_ms: 2.4,
            gpu_ms: None,
        };
        let chosen = pick(flex, gpu, &tiny_mlp(), 784, 10, &failing).unwrap();
        assert_eq!(chosen.backend, DeviceChoice::Flex);
        assert!(
            chosen.description.contains("failed a training step")
                && chosen.description.contains("out of device memory"),
            "{}",
            chosen.description
        );
    }

    #[test]
    fn real_steps_are_timed_on_flex() {
        let flex = choose(DeviceChoice::Flex).unwrap();
        let timer = MeasuredSteps {
            warmup: 1,
            timed: 3,
        };
        let secs = timer.secs_per_step(&flex, &tiny_mlp(), 784, 10).unwrap();
        assert!(secs.is_finite() && secs > 0.0 && secs < 5.0, "{secs}");
    }

    #[test]
    fn without_a_gpu_auto_trains_on_flex_and_says_why() {
        if crate::device::adapters().iter().any(|a| a.is_gpu) {
            return;
        }
        let told = Told {
            flex_ms: 1.0,
            gpu_ms: Some(0.0),
        };
        let chosen = choose_for_model(&tiny_mlp(), 784, 10, &told).unwrap();
        assert_eq!(chosen.backend, DeviceChoice::Flex);
        assert!(
            chosen.description.contains("no GPU"),
            "{}",
            chosen.description
        );
    }
}
