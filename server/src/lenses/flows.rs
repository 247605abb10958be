//! Flows over any run of consecutive hidden layers of one epoch, with their strength x purity
//! histograms: over the probe set (from its stored activations) or over the whole training
//! set (from its stored pattern ids, the scale of the APD paper's Fig. 3), binned evenly or as
//! the paper's figure is (see `actiscope_analysis::flows`). The stored snapshot holds only the
//! paper's choice of layers, the last two, over the probe set.

use std::sync::Arc;

use actiscope_analysis::LayerPatterns;
use actiscope_analysis::flows::{Binning, flow_table_of_ids};
use bytes::Bytes;

use super::probe::load_probe;
use crate::answers::{AnswerCache, AnswerError, cached, json};
use crate::hub::Hub;
use crate::runner::{TRAIN_PATTERNS_KIND, TrainPatterns};

/// Which instances the flows group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowSet {
    /// The probe set (the default; its flows' instances are probe positions the inspector
    /// shows).
    #[default]
    Probe,
    /// The whole training set (instances are training-set positions).
    Train,
}

impl FlowSet {
    /// `probe` or `train`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "probe" => Ok(Self::Probe),
            "train" => Ok(Self::Train),
            other => Err(format!("unknown set {other:?}: use probe or train")),
        }
    }

    /// The name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Train => "train",
        }
    }
}

/// Parses `even` or `paper`.
pub fn parse_binning(text: &str) -> Result<Binning, String> {
    Binning::parse(text).ok_or_else(|| format!("unknown binning {text:?}: use even or paper"))
}

/// Flows over hidden layers `first..=last` (0-based) of one epoch of `set`, as JSON
/// ([`FlowTable`](actiscope_protocol::apd::FlowTable)).
pub async fn flows_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    epoch: u32,
    (first, last): (u32, u32),
    set: FlowSet,
    binning: Binning,
) -> Result<Bytes, AnswerError> {
    let key = format!("{run_id}/{epoch}/flows/{first}/{last}/{set:?}/{binning:?}");
    cached(&cache, key, move || {
        let table = match set {
            FlowSet::Probe => {
                let probe = load_probe(&hub, run_id, epoch)?;
                check_span(first, last, probe.layers.len())?;
                let patterns: Vec<LayerPatterns> = probe
                    .layers
                    .iter()
                    .map(LayerPatterns::from_preactivations)
                    .collect();
                let ids: Vec<&[u32]> = patterns.iter().map(|p| p.ids.as_slice()).collect();
                flow_table_of_ids(
                    &ids,
                    first as usize,
                    last as usize,
                    &probe.predictions,
                    &probe.labels,
                    binning,
                )
            }
            FlowSet::Train => {
                let train: TrainPatterns = hub
                    .stored_blob(run_id, epoch, TRAIN_PATTERNS_KIND)?
                    .ok_or_else(|| {
                        if matches!(hub.stored_epoch(run_id, epoch), Ok(None)) {
                            AnswerError::no_epoch(run_id, epoch)
                        } else {
                            AnswerError::NotFound(format!(
                                "run {run_id} epoch {epoch} kept no training-set patterns \
                                 (imported runs and runs stored by older versions keep the \
                                 probe set's only); use set=probe"
                            ))
                        }
                    })?;
                check_span(first, last, train.layers.len())?;
                let ids: Vec<&[u32]> = train.layers.iter().map(Vec::as_slice).collect();
                flow_table_of_ids(
                    &ids,
                    first as usize,
                    last as usize,
                    &train.predictions,
                    &train.labels,
                    binning,
                )
            }
        }
        .map_err(|e| AnswerError::BadRequest(e.to_string()))?;
        json(&table)
    })
    .await
}

fn check_span(first: u32, last: u32, count: usize) -> Result<(), AnswerError> {
    if first > last || last as usize >= count {
        return Err(AnswerError::BadRequest(format!(
            "flows need 0 <= from <= to < {count} (hidden layers, 0-based), not {first}..{last}"
        )));
    }
    Ok(())
}
