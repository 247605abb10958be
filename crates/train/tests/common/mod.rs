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
    // Patterns alone (the training set's capture) come packed on the device where it is a
    // GPU; they must be the same bits.
    let bits_only = Keep {
        patterns: true,
        activations: false,
    };
    let bits = evaluate(&network, &tiny_data(), device, bits_only).expect("evaluation");
    assert_eq!(bits.patterns, eval.patterns);
    assert!(bits.pre_activations.is_empty());
}

/// Checks that patterns bit-packed on `device` equal the host's packing bit for bit, over
/// widths on both sides of every word boundary and values that test the rule's edges:
/// zero, negative zero, NaN, infinities and the smallest positive float count as the host
/// counts them (`> 0`, NaN inactive).
pub(crate) fn check_device_packing(device: &Device) {
    use actiscope_analysis::PatternMatrix;
    use actiscope_analysis::rng::SplitMix64;
    use actiscope_train::capture::pack_patterns;
    use burn::tensor::TensorData;

    let edges = [
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
    ];
    let mut rng = SplitMix64::new(16);
    for width in [1, 2, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200] {
        for rows in [1, 7, 33] {
            let values: Vec<f32> = (0..rows * width)
                .map(|_| {
                    let draw = rng.next_u64();
                    if draw.is_multiple_of(5) {
                        edges[(draw / 5) as usize % edges.len()]
                    } else {
                        (draw >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
                    }
                })
                .collect();
            let mut host = PatternMatrix::empty(width);
            host.append_preactivations(&values);
            let tensor = Tensor::<2>::from_data(TensorData::new(values, [rows, width]), device);
            let mut packed = PatternMatrix::empty(width);
            packed.append_packed(&pack_patterns(tensor).expect("packing on the device"));
            assert_eq!(packed.instances(), rows, "width {width}, rows {rows}");
            assert_eq!(packed, host, "width {width}, rows {rows}");
        }
    }
    // Every bit of a word, the sign bit included, and all bits at once.
    let width = 64;
    let mut values = vec![-1.0f32; 65 * width];
    for row in 0..64 {
        values[row * width + row] = 1.0;
    }
    values[64 * width..].fill(1.0);
    let mut host = PatternMatrix::empty(width);
    host.append_preactivations(&values);
    let tensor = Tensor::<2>::from_data(TensorData::new(values, [65, width]), device);
    let mut packed = PatternMatrix::empty(width);
    packed.append_packed(&pack_patterns(tensor).expect("packing on the device"));
    assert_eq!(packed, host);
    assert_eq!(packed.pattern(31), Some([1u64 << 31].as_slice()));
    assert_eq!(packed.pattern(63), Some([1u64 << 63].as_slice()));
    assert_eq!(packed.pattern(64), Some([u64::MAX].as_slice()));
}
