//! The singular values of each hidden layer's probe activations at one epoch (the
//! factorization paper's spectra).

use std::sync::Arc;

use actiscope_analysis::spectra::singular_values;
use actiscope_protocol::nmf::Spectra;
use bytes::Bytes;

use super::probe::load_probe;
use crate::answers::{AnswerCache, AnswerError, cached, json};
use crate::hub::Hub;

/// Singular values of each layer's activations at one epoch, as JSON ([`Spectra`]).
pub async fn spectra_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    epoch: u32,
) -> Result<Bytes, AnswerError> {
    let key = format!("{run_id}/{epoch}/spectra");
    cached(&cache, key, move || {
        let probe = load_probe(&hub, run_id, epoch)?;
        let layers = probe
            .layers
            .iter()
            .map(singular_values)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AnswerError::Worker(e.to_string()))?;
        json(&Spectra { epoch, layers })
    })
    .await
}
