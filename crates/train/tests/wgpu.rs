//! The wgpu path on whatever adapter the machine has: a real GPU, or Mesa's lavapipe on a
//! CPU-only machine (Debian `mesa-vulkan-drivers`, installed by `cargo xtask test`).

// Tests fail by panicking, helpers included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

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
    };
    let mut trainer = Trainer::new(config).expect("trainer on wgpu");
    let mut last = None;
    for _ in 0..2 {
        last = Some(trainer.run_epoch(&mut |_, _| {}).expect("epoch on wgpu"));
    }
    let metrics = last.expect("two epochs").metrics;
    assert!(
        metrics.train_loss.is_finite() && !metrics.diverged,
        "{metrics:?}"
    );
    assert!(metrics.val_accuracy > 0.6, "blobs are easy: {metrics:?}");
}
