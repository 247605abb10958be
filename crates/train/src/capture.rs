//! Evaluation passes after an epoch: predictions, losses, bit-packed patterns of every hidden
//! layer, and (for the probe set) the raw pre-activations, all as plain Rust data.

use actiscope_analysis::{Matrix, PatternMatrix};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::data::Dataset;
use crate::model::Network;

/// Instances per forward pass in evaluation; large batches keep capture cheap.
pub const EVAL_BATCH: usize = 4_096;

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

/// Runs `network` (a validation snapshot) over `data` on `device` in batches of
/// [`EVAL_BATCH`], keeping what `keep` asks for.
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
    let mut activation_values: Vec<Vec<f32>> = Vec::new();
    let mut widths: Vec<usize> = Vec::new();
    for start in (0..data.len()).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(data.len());
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
