//! Helpers shared by the engine tests: a network small enough to compute by hand.

use actiscope_train::capture::{Keep, evaluate};
use actiscope_train::data::Dataset;
use actiscope_train::model::{Mlp, Network};
use burn::prelude::*;

/// 2 inputs -> 2 hidden ReLU units -> 2 logits, weights chosen so every number is easy by hand.
pub(crate) fn tiny_network(device: &Device) -> Network {
    let hidden = (vec![vec![1.0, -1.0], vec![0.0, 1.0]], vec![0.0, 0.5]);
    let output = (vec![vec![1.0, 0.0], vec![0.0, 1.0]], vec![0.0, 0.0]);
    Network::Mlp(Mlp::from_weights(&[hidden, output], 0.0, device).expect("shapes chain"))
}

pub(crate) fn tiny_data() -> Dataset {
    Dataset {
        dim: 2,
        features: vec![1.0, 2.0, -1.0, 0.0, 2.0, -3.0],
        labels: vec![1, 0, 0],
        image_shape: None,
    }
}

/// Checks an evaluation of [`tiny_network`] on [`tiny_data`] against the hand computation:
/// pre-activations x W1 + b1 = [1, 1.5], [-1, 1.5], [2, -4.5]; logits are their ReLU.
pub(crate) fn check_tiny_capture(device: &Device) {
    let network = tiny_network(device);
    let keep = Keep {
        patterns: true,
        activations: true,
    };
    let eval = evaluate(&network, &tiny_data(), device, keep).expect("evaluation");
    let expected_pre = [1.0, 1.5, -1.0, 1.5, 2.0, -4.5];
    let got = eval.pre_activations[0].as_slice();
    assert_eq!(got.len(), expected_pre.len(), "pre-activations {got:?}");
    for (g, e) in got.iter().zip(expected_pre) {
        assert!((g - e).abs() < 1e-5, "pre-activations {got:?}");
    }
    assert_eq!(eval.predictions, [1, 1, 0]);
    let ce =
        |logits: [f32; 2], target: usize| (logits[0].exp() + logits[1].exp()).ln() - logits[target];
    let expected_losses = [ce([1.0, 1.5], 1), ce([0.0, 1.5], 0), ce([2.0, 0.0], 0)];
    assert_eq!(
        eval.losses.len(),
        expected_losses.len(),
        "{:?}",
        eval.losses
    );
    for (g, e) in eval.losses.iter().zip(expected_losses) {
        assert!((g - e).abs() < 1e-5, "losses {:?}", eval.losses);
    }
    let patterns = &eval.patterns[0];
    // Bit i = neuron i fires: [1, 1.5] -> 0b11, [-1, 1.5] -> 0b10, [2, -4.5] -> 0b01.
    assert_eq!(patterns.pattern(0), Some([0b11u64].as_slice()));
    assert_eq!(patterns.pattern(1), Some([0b10u64].as_slice()));
    assert_eq!(patterns.pattern(2), Some([0b01u64].as_slice()));
    assert!((eval.accuracy(&[1, 0, 0]) - 2.0 / 3.0).abs() < 1e-9);
}
