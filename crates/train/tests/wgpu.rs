//! The wgpu path on whatever adapter the machine has: a real GPU, or Mesa's lavapipe on a
//! CPU-only machine (Debian `mesa-vulkan-drivers`, installed by `cargo xtask test`).

// Tests fail by panicking, helpers included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use actiscope_train::auto::{MeasuredSteps, StepTimer};
use actiscope_train::data::DatasetSpec;
use actiscope_train::data::synthetic::Planar;
use actiscope_train::device::{DeviceChoice, adapters, choose};
use actiscope_train::model::{Activation, ModelSpec};
use actiscope_train::{OptimizerKind, ProbeSpec, TrainConfig, Trainer};

mod common;

#[test]
fn wgpu_captures_the_hand_computed_network_and_trains() {
    let found = adapters();
    assert!(
        !found.is_empty(),
        "wgpu sees no adapter; install mesa-vulkan-drivers (cargo xtask test does)"
    );
    let chosen = choose(DeviceChoice::Wgpu).expect("a wgpu device");
    eprintln!("testing wgpu on {}", chosen.description);
    common::check_tiny_capture(&chosen.device);
    common::check_device_packing(&chosen.device);

    let config = TrainConfig {
        dataset: DatasetSpec::Planar(Planar::Blobs),
        model: ModelSpec::Mlp {
            hidden: vec![8],
            activation: Activation::Relu,
        },
        optimizer: OptimizerKind::Adam,
        learning_rate: 0.02,
        batch_size: 256,
        epochs: 2,
        seed: 3,
        probe: ProbeSpec::parse("n=20").expect("probe"),
        device: DeviceChoice::Wgpu,
        training: Default::default(),
        checkpoint_every: 1,
    };
    // `--device auto` times real steps on the GPU it considers: they run here too.
    let timer = MeasuredSteps {
        warmup: 1,
        timed: 2,
    };
    let secs = timer
        .secs_per_step(&chosen, &config, 2, 3)
        .expect("timing steps on wgpu");
    assert!(secs.is_finite() && secs > 0.0, "{secs}");
    let mut trainer = Trainer::new(config).expect("trainer on wgpu");
    // Epoch 1's capture runs while epoch 2 trains on the same device.
    let first = trainer
        .train_epoch(&mut |_, _| {})
        .expect("epoch 1 on wgpu");
    let second = trainer
        .train_epoch(&mut |_, _| {})
        .expect("epoch 2 on wgpu");
    let first = first.wait().expect("capture of epoch 1");
    assert_eq!(first.metrics.epoch, 1);
    assert!(first.metrics.train_loss.is_finite(), "{:?}", first.metrics);
    let metrics = second.wait().expect("capture of epoch 2").metrics;
    assert_eq!(metrics.epoch, 2);
    assert!(
        metrics.train_loss.is_finite() && !metrics.diverged,
        "{metrics:?}"
    );
    assert!(metrics.val_accuracy > 0.6, "blobs are easy: {metrics:?}");
}
