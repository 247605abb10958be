//! The probe data of one stored epoch as the lenses want them: each hidden layer's ReLU
//! outputs as a matrix, labels, predictions and the predicted classes' scores.

use actiscope_analysis::Matrix;
use actiscope_protocol::WireMatrix;

use crate::answers::AnswerError;
use crate::hub::{Hub, corrupt};
use crate::runner::{PROBE_ACTIVATIONS_KIND, PROBE_SCORES_KIND};

/// The probe data of one stored epoch.
pub struct ProbeData {
    /// ReLU outputs per hidden layer, instances x units.
    pub layers: Vec<Matrix>,
    /// True labels, one per instance.
    pub labels: Vec<u32>,
    /// Predicted labels, one per instance.
    pub predictions: Vec<u32>,
    /// Softmax score of each instance's predicted class, when stored.
    pub scores: Option<Vec<f32>>,
}

impl ProbeData {
    /// Classes seen among labels and predictions (largest id + 1).
    pub fn class_count(&self) -> usize {
        self.labels
            .iter()
            .chain(&self.predictions)
            .max()
            .map_or(0, |&m| m as usize + 1)
    }

    /// Hidden layer `layer_idx` (0-based), or a bad-request error naming the layers there are.
    pub fn layer(&self, layer_idx: u32) -> Result<&Matrix, AnswerError> {
        self.layers.get(layer_idx as usize).ok_or_else(|| {
            AnswerError::BadRequest(format!(
                "layer {layer_idx} does not exist: the network has {} hidden layers (0-based)",
                self.layers.len()
            ))
        })
    }
}

/// Loads the probe data of run `run_id`, epoch `epoch`.
pub fn load_probe(hub: &Hub, run_id: i64, epoch: u32) -> Result<ProbeData, AnswerError> {
    let snapshot = hub
        .stored_epoch(run_id, epoch)?
        .ok_or_else(|| AnswerError::no_epoch(run_id, epoch))?;
    let wire: Vec<WireMatrix> = hub
        .stored_blob(run_id, epoch, PROBE_ACTIVATIONS_KIND)?
        .ok_or_else(|| {
            AnswerError::NotFound(format!(
                "run {run_id} stored no probe activations for epoch {epoch}"
            ))
        })?;
    let layers = wire
        .iter()
        .map(|m| Matrix::from_wire(m).map(|pre| pre.relu()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(run_id, epoch, e))?;
    let scores = hub.stored_blob(run_id, epoch, PROBE_SCORES_KIND)?;
    Ok(ProbeData {
        layers,
        labels: snapshot.probe.labels,
        predictions: snapshot.probe.predictions,
        scores,
    })
}
