//! Stored data as the API serves it: an epoch's snapshot as JSON, the probe images as JSON and
//! an epoch's probe instances as CSV. Nothing here computes an analysis; everything is read
//! and encoded on the blocking pool ([`crate::answers`]), and the JSON is cached because a
//! stored epoch never changes (a deleted run's entries are forgotten).

use std::sync::Arc;

use bytes::Bytes;

use crate::answers::{AnswerCache, AnswerError, blocking, cached, json};
use crate::hub::Hub;

/// One stored epoch's snapshot as JSON: clients that poll snapshots must not keep the async
/// workers busy.
pub async fn snapshot_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    epoch: u32,
) -> Result<Bytes, AnswerError> {
    let key = format!("{run_id}/{epoch}/snapshot");
    cached(&cache, key, move || {
        let snapshot = hub
            .stored_epoch(run_id, epoch)?
            .ok_or_else(|| AnswerError::no_epoch(run_id, epoch))?;
        json(&snapshot)
    })
    .await
}

/// One epoch's probe instances as CSV (position in the probe set, index in the source set,
/// true label, prediction, loss).
pub async fn probe_csv(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    epoch: u32,
) -> Result<String, AnswerError> {
    blocking(&cache, move || {
        let snapshot = hub
            .stored_epoch(run_id, epoch)?
            .ok_or_else(|| AnswerError::no_epoch(run_id, epoch))?;
        let probe = &snapshot.probe;
        let count = probe.indices.len();
        if [
            probe.labels.len(),
            probe.predictions.len(),
            probe.losses.len(),
        ] != [count; 3]
        {
            return Err(AnswerError::Hub(crate::hub::corrupt(
                run_id,
                epoch,
                "the probe's indices, labels, predictions and losses differ in length",
            )));
        }
        let mut csv = String::from("instance,source_index,label,prediction,loss\n");
        for (i, (((index, label), prediction), loss)) in probe
            .indices
            .iter()
            .zip(&probe.labels)
            .zip(&probe.predictions)
            .zip(&probe.losses)
            .enumerate()
        {
            csv.push_str(&format!("{i},{index},{label},{prediction},{loss}\n"));
        }
        Ok(csv)
    })
    .await
}

/// The run's probe images as JSON ([`ProbeImages`](actiscope_protocol::ProbeImages)).
pub async fn images_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
) -> Result<Bytes, AnswerError> {
    let key = format!("{run_id}/images");
    cached(&cache, key, move || {
        let images = hub.images(run_id)?.ok_or_else(|| {
            AnswerError::NotFound(format!("run {run_id} has no stored probe images"))
        })?;
        json(&images)
    })
    .await
}
