//! Flows over any run of consecutive hidden layers of one epoch's probe set, with their
//! strength x purity histograms (the stored snapshot holds only the paper's choice, the last
//! two layers).

use std::sync::Arc;

use actiscope_analysis::LayerPatterns;
use actiscope_analysis::flows::flow_table;
use bytes::Bytes;

use super::probe::load_probe;
use crate::answers::{AnswerCache, AnswerError, cached, json};
use crate::hub::Hub;

/// Flows over hidden layers `first..=last` (0-based) of one epoch's probe set, as JSON
/// ([`FlowTable`](actiscope_protocol::apd::FlowTable)).
pub async fn flows_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    epoch: u32,
    first: u32,
    last: u32,
) -> Result<Bytes, AnswerError> {
    let key = format!("{run_id}/{epoch}/flows/{first}/{last}");
    cached(&cache, key, move || {
        let probe = load_probe(&hub, run_id, epoch)?;
        let count = probe.layers.len();
        if first > last || last as usize >= count {
            return Err(AnswerError::BadRequest(format!(
                "flows need 0 <= from <= to < {count} (hidden layers, 0-based), not {first}..{last}"
            )));
        }
        let patterns: Vec<LayerPatterns> = probe
            .layers
            .iter()
            .map(LayerPatterns::from_preactivations)
            .collect();
        let table = flow_table(
            &patterns,
            first as usize,
            last as usize,
            &probe.predictions,
            &probe.labels,
        )
        .map_err(|e| AnswerError::BadRequest(e.to_string()))?;
        json(&table)
    })
    .await
}
