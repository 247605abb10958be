//! Evaluation passes after an epoch: predictions, losses, bit-packed patterns of every hidden
//! layer, and (for the probe set) the raw pre-activations, all as plain Rust data.

use actiscope_analysis::{Matrix, PatternMatrix};
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use burn::tensor::{Int, TensorData};

use crate::data::Dataset;
use crate::model::Network;

/// Instances per forward pass in evaluation on a GPU: large batches mean few kernel launches.
pub const GPU_EVAL_BATCH: usize = 4_096;

/// Instances per forward pass in evaluation on flex (the CPU): a batch whose activations
/// stay in cache. `actiscope train --capture-inline` on the built-in digits, 2 cores, capture
/// seconds per epoch at 4,096 / 1,024 / 256 / 64 instances per pass: the CNN 0.88 / 0.67 /
/// 0.65 / 0.63, a 1024x3 MLP 0.56 / 0.49 / 0.51 / 0.61, the paper's MLP about 0.01 at
/// every size.
pub const CPU_EVAL_BATCH: usize = 512;

/// Instances per forward pass when evaluating on `device`.
pub fn eval_batch(device: &Device) -> usize {
    if *device == Device::flex() {
        CPU_EVAL_BATCH
    } else {
        GPU_EVAL_BATCH
    }
}

/// What to keep from an evaluation pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Bit-packed patterns of each hidden layer.
    pub patterns: bool,
    /// Raw pre-activations of each hidden layer.
    pub activations: bool,
}

/// The result of running the network over a dataset without gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Predicted label of each instance (argmax of the logits, smallest index on ties).
    pub predictions: Vec<u32>,
    /// Cross-entropy loss of each instance.
    pub losses: Vec<f32>,
    /// Softmax probability of each instance's predicted class.
    pub scores: Vec<f32>,
    /// Per hidden layer, when asked for.
    pub patterns: Vec<PatternMatrix>,
    /// Per hidden layer (instances x units), when asked for.
    pub pre_activations: Vec<Matrix>,
}

impl Evaluation {
    /// Mean loss.
    pub fn mean_loss(&self) -> f64 {
        if self.losses.is_empty() {
            return f64::NAN;
        }
        self.losses.iter().map(|&l| f64::from(l)).sum::<f64>() / self.losses.len() as f64
    }

    /// Share of correct predictions.
    pub fn accuracy(&self, labels: &[u32]) -> f64 {
        if labels.is_empty() {
            return 0.0;
        }
        let correct = self
            .predictions
            .iter()
            .zip(labels)
            .filter(|(p, l)| p == l)
            .count();
        correct as f64 / labels.len() as f64
    }
}

/// Errors reading results back from the device.
#[derive(Debug, thiserror::Error)]
#[error("reading results back from the device failed: {0}")]
pub struct ReadbackError(pub String);

/// Reads a tensor of any rank back to the host as `f32` values (row-major).
pub fn to_vec<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, ReadbackError> {
    tensor
        .try_into_data()
        .map_err(|e| ReadbackError(format!("{e:?}")))?
        .try_into_vec::<f32>()
        .map_err(|e| ReadbackError(format!("{e:?}")))
}

/// Activation patterns of `pre_activations` (`[rows, width]`), computed and bit-packed on
/// the tensor's device: bit set iff the value is `> 0` (NaN inactive), exactly as
/// [`PatternMatrix::append_preactivations`] does on the host. Only `rows * ceil(width / 32)`
/// 32-bit words come back from the device instead of `rows * width` floats. Returns
/// [`PatternMatrix`]'s layout: `ceil(width / 64)` words per row, neuron `i` at bit `i % 64`
/// of word `i / 64`.
///
/// Each row is padded with zeros to whole 64-bit words, viewed as `[rows, words * 2, 32]`
/// bits, and each group of 32 bits is summed against the weights `2^0 .. 2^30, -2^31`: every
/// subset sum of those fits an `i32` (the two's-complement word), so no backend overflows.
pub fn pack_patterns(pre_activations: Tensor<2>) -> Result<Vec<u64>, ReadbackError> {
    let [rows, width] = pre_activations.dims();
    if rows == 0 || width == 0 {
        return Ok(Vec::new());
    }
    let words_per_row = width.div_ceil(64);
    let padded_width = words_per_row * 64;
    let device = pre_activations.device();
    let padded = if padded_width > width {
        pre_activations.pad([(0, padded_width - width)], PadMode::Constant(0.0))
    } else {
        pre_activations
    };
    let weights: Vec<i32> = (0..32u32).map(|bit| 1i32.wrapping_shl(bit)).collect();
    let weights =
        Tensor::<1, Int>::from_data(TensorData::new(weights, [32]), &device).reshape([1, 1, 32]);
    let halves = padded
        .greater_elem(0.0)
        .int()
        .reshape([rows, words_per_row * 2, 32])
        .mul(weights)
        .sum_dim(2);
    let halves = halves
        .try_into_data()
        .map_err(|e| ReadbackError(format!("{e:?}")))?
        .try_into_vec_as::<i64>()
        .map_err(|e| ReadbackError(format!("{e:?}")))?;
    // Each value is a 32-bit word in two's complement; its low 32 bits are the word.
    let word = |value: i64| value.cast_unsigned() & u64::from(u32::MAX);
    Ok(halves
        .chunks_exact(2)
        .map(|pair| match pair {
            [low, high] => word(*low) | (word(*high) << 32),
            _ => 0,
        })
        .collect())
}

/// Runs `network` (a validation snapshot) over `data` on `device` in batches of
/// [`eval_batch`], keeping what `keep` asks for.
pub fn evaluate(
    network: &Network,
    data: &Dataset,
    device: &Device,
    keep: Keep,
) -> Result<Evaluation, ReadbackError> {
    let mut out = Evaluation {
        predictions: Vec::with_capacity(data.len()),
        losses: Vec::with_capacity(data.len()),
        scores: Vec::with_capacity(data.len()),
        patterns: Vec::new(),
        pre_activations: Vec::new(),
    };
    // A GPU packs the patterns itself and sends back only bits. On the CPU (flex) reading
    // the floats is a copy in the same memory, and one pass of the host's packing is cheaper
    // than the tensor operations of packing them there.
    let pack_on_device = *device != Device::flex();
    let mut activation_values: Vec<Vec<f32>> = Vec::new();
    let mut widths: Vec<usize> = Vec::new();
    let batch = eval_batch(device);
    for start in (0..data.len()).step_by(batch) {
        let end = (start + batch).min(data.len());
        let rows = end - start;
        let features = data
            .features
            .get(start * data.dim..end * data.dim)
            .unwrap_or(&[])
            .to_vec();
        let input = Tensor::<2>::from_data(TensorData::new(features, [rows, data.dim]), device);
        let output = network.forward(input);
        let [_, classes] = output.logits.dims();
        let logits = to_vec(output.logits)?;
        for (row, &label) in logits
            .chunks_exact(classes.max(1))
            .zip(data.labels.get(start..end).unwrap_or(&[]))
        {
            let scored = score_logits(row, label);
            out.predictions.push(scored.prediction);
            out.losses.push(scored.loss);
            out.scores.push(scored.score);
        }
        for (layer_idx, pre) in output.pre_activations.into_iter().enumerate() {
            let [_, width] = pre.dims();
            if widths.len() <= layer_idx {
                widths.push(width);
                out.patterns.push(PatternMatrix::empty(width));
                activation_values.push(Vec::new());
            }
            if !(keep.patterns || keep.activations) {
                continue;
            }
            if keep.activations || !pack_on_device {
                let values = to_vec(pre)?;
                if keep.patterns
                    && let Some(p) = out.patterns.get_mut(layer_idx)
                {
                    p.append_preactivations(&values);
                }
                if keep.activations
                    && let Some(v) = activation_values.get_mut(layer_idx)
                {
                    v.extend_from_slice(&values);
                }
            } else if keep.patterns
                && let Some(p) = out.patterns.get_mut(layer_idx)
            {
                // Only bits come back from the device, 32 times less than the floats.
                p.append_packed(&pack_patterns(pre)?);
            }
        }
    }
    if !keep.patterns {
        out.patterns.clear();
    }
    if keep.activations {
        out.pre_activations = activation_values
            .into_iter()
            .zip(&widths)
            .filter_map(|(values, &width)| Matrix::new(data.len(), width, values).ok())
            .collect();
    }
    Ok(out)
}

/// Argmax (first maximum), cross-entropy and predicted-class probability of one row of
/// logits, computed stably.
pub fn score_logits(logits: &[f32], label: u32) -> Scored {
    let mut best = 0usize;
    let mut max = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > max {
            max = v;
            best = i;
        }
    }
    let log_sum: f32 = logits.iter().map(|&v| (v - max).exp()).sum::<f32>().ln() + max;
    let target = logits.get(label as usize).copied().unwrap_or(f32::NAN);
    Scored {
        prediction: u32::try_from(best).unwrap_or(0),
        loss: log_sum - target,
        score: (max - log_sum).exp(),
    }
}

/// What [`score_logits`] reads from one row of logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Argmax of the logits (smallest index on ties).
    pub prediction: u32,
    /// Cross-entropy against the label.
    pub loss: f32,
    /// Softmax probability of the predicted class.
    pub score: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_and_cross_entropy_by_hand() {
        let scored = score_logits(&[1.0, 3.0, 2.0], 1);
        assert_eq!(scored.prediction, 1);
        let sum = 1f32.exp() + 3f32.exp() + 2f32.exp();
        assert!((scored.loss - (sum.ln() - 3.0)).abs() < 1e-6);
        assert!((scored.score - 3f32.exp() / sum).abs() < 1e-6);
        assert_eq!(
            score_logits(&[2.0, 2.0], 1).prediction,
            0,
            "ties go to the first"
        );
        assert!(score_logits(&[f32::NAN, 1.0], 0).loss.is_nan());
        // Large logits do not overflow.
        let loss = score_logits(&[1000.0, 0.0], 0).loss;
        assert!(loss.abs() < 1e-6);
    }
}
