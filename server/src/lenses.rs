//! On-demand analyses of stored epochs: mapper graphs, the coupled NMF, RMSE against rank and
//! singular-value spectra.
//!
//! Each request loads the stored probe data of one epoch (activations, labels, predictions,
//! scores, images), runs the pure analysis from `actiscope-analysis` and caches the JSON
//! answer per (run, epoch, parameters), so scrubbing back and forth costs one computation per
//! epoch. Mapper node identities are carried from epoch to epoch (epoch `e`'s graph is matched
//! against epoch `e - 1`'s with the same parameters), so colours and positions persist.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use actiscope_analysis::flows::flow_table;
use actiscope_analysis::mapper::{MapperInput, carry_identities, mapper};
use actiscope_analysis::nmf::{
    NmfBlockInput, NmfFit, NmfOptions, coupled_nmf, rmse_by_rank, singular_values,
};
use actiscope_analysis::{LayerPatterns, Matrix, PatternMatrix};
use actiscope_protocol::mapper::{MapperGraph, MapperParams};
use actiscope_protocol::nmf::{NmfBlock, NmfParams, NmfResult, RmseCurve, Spectra};
use actiscope_protocol::{ProbeImages, WireMatrix};
use bytes::Bytes;

use crate::hub::{Hub, HubError};
use crate::runner::{PROBE_ACTIVATIONS_KIND, PROBE_SCORES_KIND};

/// Cached answers kept at most.
const CACHE_ENTRIES: usize = 512;
/// Most factors an NMF request may ask for.
pub const MAX_RANK: u32 = 200;
/// Most update rounds an NMF request may ask for.
pub const MAX_ITERS: u32 = 5000;
/// Most ranks one RMSE curve may ask for.
pub const MAX_CURVE_RANKS: usize = 12;

/// Why a lens could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum LensError {
    /// The run or epoch is not stored.
    #[error("{0}")]
    NotFound(String),
    /// The parameters do not fit the data.
    #[error("{0}")]
    BadRequest(String),
    /// Reading the store failed, or a stored blob is corrupt.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The worker thread failed.
    #[error("the analysis worker failed: {0}")]
    Worker(String),
}

/// Answers kept per (run, epoch, parameters), oldest evicted first, and the permits that
/// bound how many are computed at once.
pub struct LensCache {
    inner: Mutex<CacheInner>,
    /// One per core: a computation starts only with a permit, so requests beyond that wait,
    /// and a request whose client gave up while waiting (a user scrubbing past an epoch) never
    /// starts its work.
    workers: Arc<tokio::sync::Semaphore>,
}

impl Default for LensCache {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            inner: Mutex::default(),
            workers: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }
}

#[derive(Default)]
struct CacheInner {
    answers: HashMap<String, Bytes>,
    mappers: HashMap<String, Arc<MapperGraph>>,
    order: VecDeque<String>,
}

impl CacheInner {
    fn remember(&mut self, key: String) {
        self.order.push_back(key);
        while self.order.len() > CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
                self.mappers.remove(&old);
            }
        }
    }
}

impl LensCache {
    fn answer(&self, key: &str) -> Option<Bytes> {
        self.inner.lock().ok()?.answers.get(key).cloned()
    }

    fn put_answer(&self, key: String, value: Bytes) {
        if let Ok(mut inner) = self.inner.lock()
            && inner.answers.insert(key.clone(), value).is_none()
        {
            inner.remember(key);
        }
    }

    fn mapper(&self, key: &str) -> Option<Arc<MapperGraph>> {
        self.inner.lock().ok()?.mappers.get(key).cloned()
    }

    fn put_mapper(&self, key: String, graph: Arc<MapperGraph>) {
        if let Ok(mut inner) = self.inner.lock()
            && inner.mappers.insert(key.clone(), graph).is_none()
        {
            inner.remember(key);
        }
    }

    /// Forgets everything about `run_id` (after it is deleted).
    pub fn forget_run(&self, run_id: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            let prefix = format!("{run_id}/");
            inner.answers.retain(|k, _| !k.starts_with(&prefix));
            inner.mappers.retain(|k, _| !k.starts_with(&prefix));
            inner.order.retain(|k| !k.starts_with(&prefix));
        }
    }
}

/// The probe data of one stored epoch, as the analyses want them.
struct ProbeData {
    /// ReLU outputs per hidden layer, instances x units.
    layers: Vec<Matrix>,
    labels: Vec<u32>,
    predictions: Vec<u32>,
    scores: Option<Vec<f32>>,
}

impl ProbeData {
    fn class_count(&self) -> usize {
        self.labels
            .iter()
            .chain(&self.predictions)
            .max()
            .map_or(0, |&m| m as usize + 1)
    }

    fn layer(&self, layer_idx: u32) -> Result<&Matrix, LensError> {
        self.layers.get(layer_idx as usize).ok_or_else(|| {
            LensError::BadRequest(format!(
                "layer {layer_idx} does not exist: the network has {} hidden layers (0-based)",
                self.layers.len()
            ))
        })
    }
}

/// The ReLU outputs of stored pre-activations.
fn relu(matrix: &WireMatrix) -> Result<Matrix, actiscope_analysis::MatrixError> {
    Matrix::new(
        matrix.rows as usize,
        matrix.cols as usize,
        matrix.values.iter().map(|v| v.max(0.0)).collect(),
    )
}

fn corrupt(run_id: i64, epoch: u32, reason: impl ToString) -> LensError {
    LensError::Hub(HubError::Corrupt {
        run_id,
        epoch,
        reason: reason.to_string(),
    })
}

fn load_probe(hub: &Hub, run_id: i64, epoch: u32) -> Result<ProbeData, LensError> {
    let snapshot = hub
        .stored_epoch(run_id, epoch)?
        .ok_or_else(|| LensError::NotFound(format!("run {run_id} has no stored epoch {epoch}")))?;
    let blob = hub
        .with_store(|s| s.snapshot(run_id, epoch, PROBE_ACTIVATIONS_KIND))?
        .ok_or_else(|| {
            LensError::NotFound(format!(
                "run {run_id} stored no probe activations for epoch {epoch}"
            ))
        })?;
    let wire: Vec<WireMatrix> =
        actiscope_protocol::decode(&blob).map_err(|e| corrupt(run_id, epoch, e))?;
    let layers = wire
        .iter()
        .map(relu)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(run_id, epoch, e))?;
    let scores = match hub.with_store(|s| s.snapshot(run_id, epoch, PROBE_SCORES_KIND))? {
        Some(blob) => Some(
            actiscope_protocol::decode::<Vec<f32>>(&blob).map_err(|e| corrupt(run_id, epoch, e))?,
        ),
        None => None,
    };
    Ok(ProbeData {
        layers,
        labels: snapshot.probe.labels,
        predictions: snapshot.probe.predictions,
        scores,
    })
}

/// The probe inputs as a non-negative `instances x pixels` block, with the image shape.
fn input_block(images: &ProbeImages) -> Result<(Matrix, (u32, u32)), LensError> {
    let pixels_per_image = (images.rows as usize) * (images.cols as usize);
    if pixels_per_image == 0 {
        return Err(LensError::BadRequest(
            "this run's data are planar points, not images: their coordinates can be negative, \
             so the input block cannot join a non-negative factorization (set inputs=false)"
                .to_owned(),
        ));
    }
    let count = images.pixels.len() / pixels_per_image;
    let values = images
        .pixels
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let matrix = Matrix::new(count, pixels_per_image, values)
        .map_err(|e| LensError::BadRequest(e.to_string()))?;
    Ok((matrix, (images.rows, images.cols)))
}

fn to_wire(matrix: &Matrix) -> WireMatrix {
    WireMatrix {
        rows: u32::try_from(matrix.rows()).unwrap_or(u32::MAX),
        cols: u32::try_from(matrix.cols()).unwrap_or(u32::MAX),
        values: matrix.as_slice().to_vec(),
    }
}

fn frobenius(matrix: &Matrix) -> f32 {
    matrix.as_slice().iter().map(|v| v * v).sum::<f32>().sqrt()
}

fn json(value: &impl serde::Serialize) -> Result<Bytes, LensError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| LensError::Worker(e.to_string()))
}

/// Runs `work` on the blocking pool once one of `cache`'s permits is free; the permit is held
/// until the work is done, even if the caller stops waiting. Dropped before it gets a permit,
/// the future runs nothing.
async fn blocking<T: Send + 'static>(
    cache: &LensCache,
    work: impl FnOnce() -> Result<T, LensError> + Send + 'static,
) -> Result<T, LensError> {
    let permit = Arc::clone(&cache.workers)
        .acquire_owned()
        .await
        .map_err(|e| LensError::Worker(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| LensError::Worker(e.to_string()))?
}

/// The cached answer under `key`, or else `work`'s, computed as [`blocking`] computes and then
/// cached under `key`.
async fn cached(
    cache: &LensCache,
    key: String,
    work: impl FnOnce() -> Result<Bytes, LensError> + Send + 'static,
) -> Result<Bytes, LensError> {
    if let Some(hit) = cache.answer(&key) {
        return Ok(hit);
    }
    let answer = blocking(cache, work).await?;
    cache.put_answer(key, answer.clone());
    Ok(answer)
}

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

fn nmf_data(hub: &Hub, run_id: i64, epoch: u32, params: &NmfParams) -> Result<NmfData, LensError> {
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
            .ok_or_else(|| LensError::NotFound(format!("run {run_id} stored no probe images")))?;
        let (matrix, shape) = input_block(&images)?;
        data.names.push("inputs".to_owned());
        data.layer_ids.push(None);
        data.matrices.push(matrix);
        data.image_shape = Some(shape);
    }
    for layer_idx in layers {
        let matrix = probe.layer(layer_idx)?.clone();
        data.names.push(format!("layer {}", layer_idx + 1));
        data.layer_ids.push(Some(layer_idx));
        data.matrices.push(matrix);
    }
    if data.matrices.is_empty() {
        return Err(LensError::BadRequest(
            "nothing to factorize: choose the inputs or at least one layer".to_owned(),
        ));
    }
    data.weights = data
        .matrices
        .iter()
        .map(|m| {
            let norm = frobenius(m);
            if params.balance_blocks && norm > 0.0 {
                1.0 / norm
            } else {
                1.0
            }
        })
        .collect();
    Ok(data)
}

fn check_nmf_params(params: &NmfParams) -> Result<(), LensError> {
    if params.rank == 0 || params.rank > MAX_RANK {
        return Err(LensError::BadRequest(format!(
            "rank {} is outside 1..={MAX_RANK}",
            params.rank
        )));
    }
    if params.max_iters == 0 || params.max_iters > MAX_ITERS {
        return Err(LensError::BadRequest(format!(
            "iters {} is outside 1..={MAX_ITERS}",
            params.max_iters
        )));
    }
    if !(params.tolerance.is_finite() && params.tolerance >= 0.0) {
        return Err(LensError::BadRequest(format!(
            "tol {} must be a finite number >= 0",
            params.tolerance
        )));
    }
    Ok(())
}

fn options(params: &NmfParams) -> NmfOptions {
    NmfOptions {
        rank: params.rank as usize,
        max_iters: params.max_iters as usize,
        tolerance: params.tolerance,
        seed: params.seed,
        ..NmfOptions::default()
    }
}

fn nmf_result(epoch: u32, params: NmfParams, data: &NmfData, fit: NmfFit) -> NmfResult {
    let blocks = data
        .names
        .iter()
        .zip(&data.layer_ids)
        .zip(fit.loadings.iter().zip(&fit.block_rmse))
        .map(|((name, layer_idx), (loadings, rmse))| NmfBlock {
            name: name.clone(),
            layer_idx: *layer_idx,
            loadings: to_wire(loadings),
            rmse: *rmse,
        })
        .collect();
    NmfResult {
        params,
        epoch,
        blocks,
        top_instances: fit.top_instances(16),
        instance_weights: to_wire(&fit.instance_weights),
        objective: fit.objective,
        rmse: fit.rmse,
        image_shape: data.image_shape,
    }
}

/// The coupled NMF of one epoch, as JSON ([`NmfResult`]).
pub async fn nmf_json(
    hub: Hub,
    cache: Arc<LensCache>,
    run_id: i64,
    epoch: u32,
    params: NmfParams,
) -> Result<Bytes, LensError> {
    check_nmf_params(&params)?;
    let key = format!("{run_id}/{epoch}/nmf/{params:?}");
    cached(&cache, key, move || {
        let data = nmf_data(&hub, run_id, epoch, &params)?;
        let fit = coupled_nmf(&data.blocks(), &options(&params))
            .map_err(|e| LensError::BadRequest(e.to_string()))?;
        json(&nmf_result(epoch, params, &data, fit))
    })
    .await
}

/// RMSE against rank for one epoch, as JSON ([`RmseCurve`]).
pub async fn rmse_json(
    hub: Hub,
    cache: Arc<LensCache>,
    run_id: i64,
    epoch: u32,
    params: NmfParams,
    ranks: Vec<u32>,
) -> Result<Bytes, LensError> {
    if ranks.is_empty() || ranks.len() > MAX_CURVE_RANKS {
        return Err(LensError::BadRequest(format!(
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
    cached(&cache, key, move || {
        let data = nmf_data(&hub, run_id, epoch, &params)?;
        let ranks_usize: Vec<usize> = ranks.iter().map(|&r| r as usize).collect();
        let points = rmse_by_rank(&data.blocks(), &ranks_usize, &options(&params))
            .map_err(|e| LensError::BadRequest(e.to_string()))?
            .into_iter()
            .map(|(rank, rmse)| (u32::try_from(rank).unwrap_or(u32::MAX), rmse))
            .collect();
        let (sum_sq, count) = data.matrices.iter().fold((0.0f64, 0usize), |(s, c), m| {
            let block: f64 = m.as_slice().iter().map(|v| f64::from(*v).powi(2)).sum();
            (s + block, c + m.as_slice().len())
        });
        let data_rms = (sum_sq / count.max(1) as f64).sqrt();
        json(&RmseCurve {
            epoch,
            points,
            data_rms,
        })
    })
    .await
}

/// Singular values of each layer's activations at one epoch, as JSON ([`Spectra`]).
pub async fn spectra_json(
    hub: Hub,
    cache: Arc<LensCache>,
    run_id: i64,
    epoch: u32,
) -> Result<Bytes, LensError> {
    let key = format!("{run_id}/{epoch}/spectra");
    cached(&cache, key, move || {
        let probe = load_probe(&hub, run_id, epoch)?;
        let layers = probe
            .layers
            .iter()
            .map(singular_values)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LensError::Worker(e.to_string()))?;
        json(&Spectra { epoch, layers })
    })
    .await
}

/// One stored epoch's snapshot as JSON, read and encoded on the blocking pool once and then
/// served from the cache: a stored epoch never changes (a deleted run's entries are
/// forgotten), and clients that poll snapshots must not keep the async workers busy.
pub async fn snapshot_json(
    hub: Hub,
    cache: Arc<LensCache>,
    run_id: i64,
    epoch: u32,
) -> Result<Bytes, LensError> {
    let key = format!("{run_id}/{epoch}/snapshot");
    cached(&cache, key, move || {
        let snapshot = hub.stored_epoch(run_id, epoch)?.ok_or_else(|| {
            LensError::NotFound(format!("run {run_id} has no stored epoch {epoch}"))
        })?;
        json(&snapshot)
    })
    .await
}

/// One epoch's probe instances as CSV (position in the probe set, index in the source set,
/// true label, prediction, loss), built on the blocking pool.
pub async fn probe_csv(
    hub: Hub,
    cache: Arc<LensCache>,
    run_id: i64,
    epoch: u32,
) -> Result<String, LensError> {
    blocking(&cache, move || {
        let snapshot = hub.stored_epoch(run_id, epoch)?.ok_or_else(|| {
            LensError::NotFound(format!("run {run_id} has no stored epoch {epoch}"))
        })?;
        let probe = &snapshot.probe;
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

/// The run's probe images as JSON ([`ProbeImages`](actiscope_protocol::ProbeImages)), built
/// on the blocking pool and cached.
pub async fn images_json(hub: Hub, cache: Arc<LensCache>, run_id: i64) -> Result<Bytes, LensError> {
    let key = format!("{run_id}/images");
    cached(&cache, key, move || {
        let images = hub.images(run_id)?.ok_or_else(|| {
            LensError::NotFound(format!("run {run_id} has no stored probe images"))
        })?;
        json(&images)
    })
    .await
}

/// Flows over hidden layers `first..=last` (0-based) of one epoch's probe set, as JSON
/// ([`FlowTable`](actiscope_protocol::apd::FlowTable)); the stored snapshot holds the paper's
/// choice, the last two layers.
pub async fn flows_json(
    hub: Hub,
    cache: Arc<LensCache>,
    run_id: i64,
    epoch: u32,
    first: u32,
    last: u32,
) -> Result<Bytes, LensError> {
    let key = format!("{run_id}/{epoch}/flows/{first}/{last}");
    cached(&cache, key, move || {
        let probe = load_probe(&hub, run_id, epoch)?;
        let count = probe.layers.len();
        if first > last || last as usize >= count {
            return Err(LensError::BadRequest(format!(
                "flows need 0 <= from <= to < {count} (hidden layers, 0-based), not {first}..{last}"
            )));
        }
        let patterns: Vec<LayerPatterns> = probe
            .layers
            .iter()
            .map(|m| LayerPatterns::from_patterns(&PatternMatrix::from_preactivations(m)))
            .collect();
        let table = flow_table(
            &patterns,
            first as usize,
            last as usize,
            &probe.predictions,
            &probe.labels,
        )
        .map_err(|e| LensError::BadRequest(e.to_string()))?;
        json(&table)
    })
    .await
}

fn mapper_key(run_id: i64, epoch: u32, params: &MapperParams) -> String {
    format!("{run_id}/{epoch}/mapper/{params:?}")
}

fn compute_mapper(
    hub: &Hub,
    run_id: i64,
    epoch: u32,
    params: &MapperParams,
    previous: Option<&MapperGraph>,
) -> Result<MapperGraph, LensError> {
    let probe = load_probe(hub, run_id, epoch)?;
    let activations = probe.layer(params.layer_idx)?;
    let input = MapperInput {
        activations,
        labels: &probe.labels,
        predictions: &probe.predictions,
        predicted_scores: probe.scores.as_deref(),
        class_count: probe.class_count(),
    };
    let mut graph = mapper(&input, params).map_err(|e| LensError::BadRequest(e.to_string()))?;
    carry_identities(previous, &mut graph);
    Ok(graph)
}

/// The mapper graph of one epoch, as JSON ([`MapperGraph`]), with node identities carried
/// from the graphs of the earlier epochs under the same parameters.
pub async fn mapper_json(
    hub: Hub,
    cache: Arc<LensCache>,
    run_id: i64,
    epoch: u32,
    params: MapperParams,
) -> Result<Bytes, LensError> {
    let key = mapper_key(run_id, epoch, &params);
    let worker_cache = cache.clone();
    cached(&cache, key, move || {
        let cache = worker_cache;
        if hub.stored_epoch(run_id, epoch)?.is_none() {
            return Err(LensError::NotFound(format!(
                "run {run_id} has no stored epoch {epoch}"
            )));
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
        let mut graph = None;
        for e in start..=epoch {
            let next = Arc::new(compute_mapper(
                &hub,
                run_id,
                e,
                &params,
                previous.as_deref(),
            )?);
            cache.put_mapper(mapper_key(run_id, e, &params), next.clone());
            previous = Some(next.clone());
            graph = Some(next);
        }
        let graph = graph.ok_or_else(|| LensError::Worker("no epoch to map".to_owned()))?;
        json(graph.as_ref())
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    fn cache_with(permits: usize) -> LensCache {
        LensCache {
            inner: Mutex::default(),
            workers: Arc::new(tokio::sync::Semaphore::new(permits)),
        }
    }

    #[tokio::test]
    async fn work_that_waited_for_a_permit_never_runs_once_its_request_is_gone() {
        let cache = cache_with(1);
        let busy = Arc::clone(&cache.workers).acquire_owned().await.unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let waiting = blocking(&cache, move || {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        // The client gives up while the only permit is taken.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiting)
                .await
                .is_err()
        );
        drop(busy);
        // The next request gets the permit and runs; the abandoned one never does.
        assert_eq!(blocking(&cache, || Ok(7)).await.unwrap(), 7);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn started_work_keeps_its_permit_until_it_is_done() {
        let cache = cache_with(1);
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let started = blocking(&cache, move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        // The client gives up after the work started.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), started)
                .await
                .is_err()
        );
        assert_eq!(cache.workers.available_permits(), 0, "still computing");
        let next = blocking(&cache, || Ok(())).await;
        assert!(next.is_ok());
        assert!(done.load(Ordering::SeqCst), "the next one waited for it");
    }
}
