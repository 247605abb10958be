//! Mapper graphs (TopoAct) of one layer's probe activations, with node identities carried
//! from epoch to epoch: epoch `e`'s graph is matched against epoch `e - 1`'s under the same
//! parameters, so colours and positions persist however a user scrubs.

use std::sync::Arc;

use actiscope_analysis::mapper::{MapperInput, carry_identities, mapper};
use actiscope_protocol::mapper::{MapperGraph, MapperParams};
use bytes::Bytes;

use super::probe::load_probe;
use crate::answers::{AnswerCache, AnswerError, cached, json};
use crate::hub::Hub;

fn mapper_key(run_id: i64, epoch: u32, params: &MapperParams) -> String {
    format!("{run_id}/{epoch}/mapper/{params:?}")
}

fn compute_mapper(
    hub: &Hub,
    run_id: i64,
    epoch: u32,
    params: &MapperParams,
    previous: Option<&MapperGraph>,
) -> Result<MapperGraph, AnswerError> {
    let probe = load_probe(hub, run_id, epoch)?;
    let activations = probe.layer(params.layer_idx)?;
    let input = MapperInput {
        activations,
        labels: &probe.labels,
        predictions: &probe.predictions,
        predicted_scores: probe.scores.as_deref(),
        class_count: probe.class_count(),
    };
    let mut graph = mapper(&input, params).map_err(|e| AnswerError::BadRequest(e.to_string()))?;
    carry_identities(previous, &mut graph);
    Ok(graph)
}

/// Epochs whose graphs one request computes at most; a request that needs more computes
/// that many, keeps them, and answers [`AnswerError::Pending`] so the client asks again.
pub const MAX_EPOCHS_PER_CALL: u32 = 8;

/// The mapper graph of one epoch, as JSON ([`MapperGraph`]), with node identities carried
/// from the graphs of the earlier epochs under the same parameters. When more than
/// [`MAX_EPOCHS_PER_CALL`] earlier graphs are missing, this call computes the first
/// [`MAX_EPOCHS_PER_CALL`] of them and answers [`AnswerError::Pending`] with how far it got;
/// asking again goes on from there, so no single request walks a long run.
pub async fn mapper_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    epoch: u32,
    params: MapperParams,
) -> Result<Bytes, AnswerError> {
    let key = mapper_key(run_id, epoch, &params);
    let worker_cache = cache.clone();
    cached(&cache, key, move || {
        let cache = worker_cache;
        if hub.stored_epoch(run_id, epoch)?.is_none() {
            return Err(AnswerError::no_epoch(run_id, epoch));
        }
        // Walk back to the latest epoch whose graph is cached, then forward, matching each
        // graph to the one before it.
        let mut start = epoch;
        let mut previous: Option<Arc<MapperGraph>> = None;
        while start > 1 {
            if let Some(graph) = cache.mapper(&mapper_key(run_id, start - 1, &params)) {
                previous = Some(graph);
                break;
            }
            start -= 1;
        }
        let last = epoch.min(start.saturating_add(MAX_EPOCHS_PER_CALL - 1));
        let mut answer = None;
        for e in start..=last {
            let next = Arc::new(compute_mapper(
                &hub,
                run_id,
                e,
                &params,
                previous.as_deref(),
            )?);
            let graph_json = json(next.as_ref())?;
            cache.put_mapper(
                mapper_key(run_id, e, &params),
                next.clone(),
                graph_json.clone(),
            );
            previous = Some(next);
            answer = Some(graph_json);
        }
        if last < epoch {
            return Err(AnswerError::Pending {
                done: last,
                needed: epoch,
                message: format!(
                    "mapped epochs up to {last} of {epoch} (node identities are carried \
                     epoch by epoch); ask again to go on"
                ),
            });
        }
        answer.ok_or_else(|| AnswerError::Worker("no epoch to map".to_owned()))
    })
    .await
}
