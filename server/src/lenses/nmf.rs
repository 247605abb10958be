//! The coupled NMF of one epoch's probe inputs and hidden layers, and RMSE against rank: which
//! blocks take part, their weights, the limits on what a request may ask for, and each fit
//! run where the cache's [`NmfPlacement`] puts it (the cores, or a GPU), falling back to the
//! cores when the GPU fails.

use std::sync::Arc;

use actiscope_analysis::Matrix;
use actiscope_analysis::nmf::{
    NmfBlockInput, NmfFit, NmfOptions, block_weights, coupled_nmf, image_block, root_mean_square,
};
use actiscope_protocol::nmf::{NmfBlock, NmfParams, NmfResult, RmseCurve};
use actiscope_train::nmf::{
    DeviceNmfError, MeasuredRounds, NmfPlace, NmfPlacement, coupled_nmf_on_device,
};
use bytes::Bytes;

use super::probe::load_probe;
use crate::answers::{AnswerCache, AnswerError, Permits, cached_permits, cached_threads, json};
use crate::hub::Hub;

/// Most factors an NMF request may ask for.
pub const MAX_RANK: u32 = 200;
/// Most update rounds an NMF request may ask for.
pub const MAX_ITERS: u32 = 5000;
/// Most ranks one RMSE curve may ask for.
pub const MAX_CURVE_RANKS: usize = 12;

/// The blocks of an NMF request: inputs first when asked for, then the chosen layers.
struct NmfData {
    names: Vec<String>,
    layer_ids: Vec<Option<u32>>,
    matrices: Vec<Matrix>,
    weights: Vec<f32>,
    image_shape: Option<(u32, u32)>,
}

impl NmfData {
    fn blocks(&self) -> Vec<NmfBlockInput<'_>> {
        self.names
            .iter()
            .zip(&self.matrices)
            .zip(&self.weights)
            .map(|((name, data), &weight)| NmfBlockInput { name, data, weight })
            .collect()
    }
}

fn bad_request(err: impl ToString) -> AnswerError {
    AnswerError::BadRequest(err.to_string())
}

fn nmf_data(
    hub: &Hub,
    run_id: i64,
    epoch: u32,
    params: &NmfParams,
) -> Result<NmfData, AnswerError> {
    let probe = load_probe(hub, run_id, epoch)?;
    let layers: Vec<u32> = if params.layers.is_empty() {
        (0..u32::try_from(probe.layers.len()).unwrap_or(0)).collect()
    } else {
        params.layers.clone()
    };
    let mut data = NmfData {
        names: Vec::new(),
        layer_ids: Vec::new(),
        matrices: Vec::new(),
        weights: Vec::new(),
        image_shape: None,
    };
    if params.include_inputs {
        let images = hub
            .images(run_id)?
            .ok_or_else(|| AnswerError::NotFound(format!("run {run_id} stored no probe images")))?;
        let block = image_block(&images).map_err(bad_request)?;
        data.names.push("inputs".to_owned());
        data.layer_ids.push(None);
        data.matrices.push(block.matrix);
        data.image_shape = Some(block.shape);
    }
    for layer_idx in layers {
        let matrix = probe.layer(layer_idx)?.clone();
        data.names.push(format!("layer {}", layer_idx + 1));
        data.layer_ids.push(Some(layer_idx));
        data.matrices.push(matrix);
    }
    if data.matrices.is_empty() {
        return Err(AnswerError::BadRequest(
            "nothing to factorize: choose the inputs or at least one layer".to_owned(),
        ));
    }
    data.weights = block_weights(&data.matrices, params.balance_blocks);
    Ok(data)
}

fn check_nmf_params(params: &NmfParams) -> Result<(), AnswerError> {
    if params.rank == 0 || params.rank > MAX_RANK {
        return Err(AnswerError::BadRequest(format!(
            "rank {} is outside 1..={MAX_RANK}",
            params.rank
        )));
    }
    if params.max_iters == 0 || params.max_iters > MAX_ITERS {
        return Err(AnswerError::BadRequest(format!(
            "iters {} is outside 1..={MAX_ITERS}",
            params.max_iters
        )));
    }
    let mut layers = params.layers.clone();
    layers.sort_unstable();
    if let Some(pair) = layers.windows(2).find(|pair| pair.first() == pair.get(1)) {
        return Err(AnswerError::BadRequest(format!(
            "layers lists layer {} twice: name each layer once",
            pair.first().copied().unwrap_or_default()
        )));
    }
    if !(params.tolerance.is_finite() && params.tolerance >= 0.0) {
        return Err(AnswerError::BadRequest(format!(
            "tol {} must be a finite number >= 0",
            params.tolerance
        )));
    }
    Ok(())
}

/// The fit's options, on `threads` threads (the permits the request holds).
fn options(params: &NmfParams, threads: usize) -> NmfOptions {
    NmfOptions {
        rank: params.rank as usize,
        max_iters: params.max_iters as usize,
        tolerance: params.tolerance,
        seed: params.seed,
        threads,
        ..NmfOptions::default()
    }
}

/// The fit of `blocks`, where `placement` puts it; a GPU that fails hands this fit and every
/// later one to the cores (logged once here, and said in each description). Returns the fit
/// and where it ran and why. With `permits`, a fit placed on the GPU gives all but one back
/// to the cache while it runs (a fit that then falls back to the cores runs on one thread).
fn placed_fit(
    placement: &NmfPlacement,
    blocks: &[NmfBlockInput<'_>],
    options: &NmfOptions,
    permits: Option<&mut Permits>,
) -> Result<(NmfFit, String), AnswerError> {
    let place = placement.place(blocks, options, &MeasuredRounds);
    let mut options = *options;
    let failed = match &place {
        NmfPlace::Cpu { .. } => None,
        NmfPlace::Device { device, .. } => {
            if let Some(permits) = permits {
                permits.keep_one();
                options.threads = 1;
            }
            match coupled_nmf_on_device(blocks, &options, &device.device) {
                Ok(fit) => return Ok((fit, place.describe())),
                // Refused input is the request's fault, not the GPU's: the CPU refuses it too.
                Err(DeviceNmfError::Nmf(error)) => return Err(bad_request(error)),
                Err(error) => {
                    let why = format!("{} failed ({error})", device.description);
                    placement.gpu_failed(why.clone());
                    Some(why)
                }
            }
        }
    };
    let fit = coupled_nmf(blocks, &options).map_err(bad_request)?;
    Ok(match failed {
        None => (fit, place.describe()),
        Some(why) => {
            tracing::warn!("NMF fit moved to the CPU: {why}");
            (fit, format!("CPU; {why}"))
        }
    })
}

fn nmf_result(
    epoch: u32,
    params: NmfParams,
    data: &NmfData,
    (fit, fitted_on): (NmfFit, String),
) -> NmfResult {
    let blocks = data
        .names
        .iter()
        .zip(&data.layer_ids)
        .zip(fit.loadings.iter().zip(&fit.block_rmse))
        .map(|((name, layer_idx), (loadings, rmse))| NmfBlock {
            name: name.clone(),
            layer_idx: *layer_idx,
            loadings: loadings.to_wire(),
            rmse: *rmse,
        })
        .collect();
    NmfResult {
        params,
        epoch,
        blocks,
        top_instances: fit.top_instances(16),
        instance_weights: fit.instance_weights.to_wire(),
        objective: fit.objective,
        rmse: fit.rmse,
        image_shape: data.image_shape,
        fitted_on,
    }
}

/// The coupled NMF of one epoch, as JSON ([`NmfResult`]).
pub async fn nmf_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    epoch: u32,
    params: NmfParams,
) -> Result<Bytes, AnswerError> {
    check_nmf_params(&params)?;
    let key = format!("{run_id}/{epoch}/nmf/{params:?}");
    // The fit runs on as many threads as the cache has permits, and takes them all (a fit
    // placed on a GPU gives all but one back).
    let threads = cache.permits();
    let placement = cache.nmf_placement();
    cached_permits(&cache, key, threads, move |permits| {
        let data = nmf_data(&hub, run_id, epoch, &params)?;
        let fit = placed_fit(
            &placement,
            &data.blocks(),
            &options(&params, threads),
            Some(permits),
        )?;
        json(&nmf_result(epoch, params, &data, fit))
    })
    .await
}

/// RMSE against rank for one epoch, as JSON ([`RmseCurve`]).
pub async fn rmse_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    epoch: u32,
    params: NmfParams,
    ranks: Vec<u32>,
) -> Result<Bytes, AnswerError> {
    if ranks.is_empty() || ranks.len() > MAX_CURVE_RANKS {
        return Err(AnswerError::BadRequest(format!(
            "ask for 1 to {MAX_CURVE_RANKS} ranks, not {}",
            ranks.len()
        )));
    }
    for &rank in &ranks {
        check_nmf_params(&NmfParams {
            rank,
            ..params.clone()
        })?;
    }
    let key = format!("{run_id}/{epoch}/rmse/{ranks:?}/{params:?}");
    let threads = cache.permits();
    let placement = cache.nmf_placement();
    cached_threads(&cache, key, threads, move || {
        let data = nmf_data(&hub, run_id, epoch, &params)?;
        let blocks = data.blocks();
        let points = ranks
            .iter()
            .map(|&rank| {
                let options = options(
                    &NmfParams {
                        rank,
                        ..params.clone()
                    },
                    threads,
                );
                // Each rank may go elsewhere, so the curve keeps its permits throughout.
                let (fit, _) = placed_fit(&placement, &blocks, &options, None)?;
                Ok((rank, fit.rmse))
            })
            .collect::<Result<Vec<_>, AnswerError>>()?;
        json(&RmseCurve {
            epoch,
            points,
            data_rms: root_mean_square(&data.matrices),
        })
    })
    .await
}
