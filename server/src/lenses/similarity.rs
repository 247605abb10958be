//! Representation similarity (SVCCA, PWCCA, linear CKA) from stored probe activations: each
//! layer at every stored epoch against the same layer at a reference epoch (the SVCCA paper's
//! convergence picture), every pair of layers at one epoch (the inputs included), and the
//! layers of two runs that saw the same probe instances. The maths is
//! `actiscope_analysis::similarity` (`similarity_grid`, which reduces each layer once however
//! many cells it is in); a pair that cannot be compared (say, too few instances for the
//! directions SVCCA keeps) leaves its cell empty with the reason beside the grid.

use std::sync::Arc;

use actiscope_analysis::Matrix;
use actiscope_analysis::nmf::image_block;
use actiscope_analysis::similarity::{Method, SimilarityError, similarity_grid};
use actiscope_protocol::similarity::SimilarityGrid;
use bytes::Bytes;

use super::probe::load_probe;
use crate::answers::{AnswerCache, AnswerError, blocking_threads, cached_threads, json};
use crate::hub::Hub;

/// Threads one similarity answer may use: CKA's products and CCA's decompositions run two
/// halves side by side (`actiscope_analysis::similarity`), so each answer holds two permits.
const SIMILARITY_THREADS: usize = 2;

/// The epoch every column of a layers x epochs grid is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// The latest stored epoch.
    Final,
    /// A given epoch.
    Epoch(u32),
}

impl Reference {
    /// Parses `final` or an epoch number.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "final" => Ok(Self::Final),
            number => number.parse().map(Self::Epoch).map_err(|_| {
                format!("reference must be `final` or an epoch number, not `{number}`")
            }),
        }
    }
}

/// Parses a method name, with a message listing the choices.
pub fn parse_method(text: &str) -> Result<Method, String> {
    Method::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        format!("unknown method `{text}`: use {}", names.join(", "))
    })
}

/// Fills a grid cell by cell, keeping each distinct reason for an empty one.
struct GridBuilder {
    values: Vec<Option<f64>>,
    problems: Vec<String>,
}

impl GridBuilder {
    fn new() -> Self {
        Self {
            values: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn push(&mut self, cell: Result<f64, SimilarityError>) {
        match cell {
            Ok(value) => self.values.push(Some(value)),
            Err(err) => {
                let reason = err.to_string();
                if !self.problems.contains(&reason) {
                    self.problems.push(reason);
                }
                self.values.push(None);
            }
        }
    }

    /// Every row matrix against every column matrix, row by row.
    fn extend(&mut self, method: Method, rows: &[&Matrix], cols: &[&Matrix]) {
        for cell in similarity_grid(method, rows, cols) {
            self.push(cell);
        }
    }
}

/// The stored epochs of a run, in order.
fn stored_epochs(hub: &Hub, run_id: i64) -> Result<Vec<u32>, AnswerError> {
    let epochs: Vec<u32> = hub
        .with_store(|s| s.epochs(run_id))?
        .into_iter()
        .map(|(epoch, _)| epoch)
        .collect();
    if epochs.is_empty() {
        return Err(AnswerError::NotFound(format!(
            "run {run_id} has no stored epoch"
        )));
    }
    Ok(epochs)
}

/// The latest stored epoch of a run.
pub fn latest_epoch(hub: &Hub, run_id: i64) -> Result<u32, AnswerError> {
    stored_epochs(hub, run_id).map(|epochs| epochs.last().copied().unwrap_or_default())
}

fn layer_label(layer_idx: usize) -> String {
    format!("layer {}", layer_idx + 1)
}

/// Each hidden layer at every stored epoch against itself at `reference`, as JSON
/// ([`SimilarityGrid`]: rows are layers, columns epochs).
pub async fn epochs_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    method: Method,
    reference: Reference,
) -> Result<Bytes, AnswerError> {
    // The grid grows with the run: the key names the epochs it covers.
    let epochs = {
        let hub = hub.clone();
        tokio::task::spawn_blocking(move || stored_epochs(&hub, run_id))
            .await
            .map_err(|e| AnswerError::Worker(e.to_string()))??
    };
    let key = format!(
        "{run_id}/similarity/{}/{reference:?}/{}-{}",
        method.name(),
        epochs.len(),
        epochs.last().copied().unwrap_or_default()
    );
    cached_threads(&cache, key, SIMILARITY_THREADS, move || {
        let reference_epoch = match reference {
            Reference::Final => epochs.last().copied().unwrap_or_default(),
            Reference::Epoch(epoch) if epochs.contains(&epoch) => epoch,
            Reference::Epoch(epoch) => return Err(AnswerError::no_epoch(run_id, epoch)),
        };
        let reference_layers = load_probe(&hub, run_id, reference_epoch)?.layers;
        let mut columns = Vec::with_capacity(epochs.len());
        for &epoch in &epochs {
            columns.push(load_probe(&hub, run_id, epoch)?.layers);
        }
        let mut grid = GridBuilder::new();
        for (layer_idx, reference) in reference_layers.iter().enumerate() {
            // One grid call per layer, so the reference is reduced once.
            let present: Vec<&Matrix> = columns.iter().filter_map(|l| l.get(layer_idx)).collect();
            let mut cells = similarity_grid(method, &present, &[reference]).into_iter();
            for layers in &columns {
                match layers.get(layer_idx).and_then(|_| cells.next()) {
                    Some(cell) => grid.push(cell),
                    None => grid.values.push(None),
                }
            }
        }
        json(&SimilarityGrid {
            method: method.name().to_owned(),
            row_labels: (0..reference_layers.len()).map(layer_label).collect(),
            col_labels: epochs.iter().map(|e| format!("epoch {e}")).collect(),
            values: grid.values,
            problems: grid.problems,
            reference_epoch: Some(reference_epoch),
            epochs,
        })
    })
    .await
}

/// The probe inputs of a run as a matrix: pixels scaled to `[0, 1]`, or the planar points.
fn input_matrix(hub: &Hub, run_id: i64) -> Result<Matrix, AnswerError> {
    let images = hub
        .images(run_id)?
        .ok_or_else(|| AnswerError::NotFound(format!("run {run_id} stored no probe inputs")))?;
    if images.rows > 0 && images.cols > 0 {
        return image_block(&images)
            .map(|block| block.matrix)
            .map_err(|e| AnswerError::BadRequest(e.to_string()));
    }
    let count = images.points.len() / 2;
    Matrix::new(count, 2, images.points).map_err(|e| AnswerError::BadRequest(e.to_string()))
}

/// Every pair of the inputs and the hidden layers at one epoch, as JSON
/// ([`SimilarityGrid`]: rows and columns are `input`, `layer 1`, …).
pub async fn layers_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    run_id: i64,
    epoch: u32,
    method: Method,
) -> Result<Bytes, AnswerError> {
    let key = format!("{run_id}/{epoch}/similarity/{}", method.name());
    cached_threads(&cache, key, SIMILARITY_THREADS, move || {
        let probe = load_probe(&hub, run_id, epoch)?;
        let mut blocks = vec![input_matrix(&hub, run_id)?];
        blocks.extend(probe.layers);
        let labels: Vec<String> = std::iter::once("input".to_owned())
            .chain((0..blocks.len() - 1).map(layer_label))
            .collect();
        let mut grid = GridBuilder::new();
        let blocks: Vec<&Matrix> = blocks.iter().collect();
        grid.extend(method, &blocks, &blocks);
        json(&SimilarityGrid {
            method: method.name().to_owned(),
            row_labels: labels.clone(),
            col_labels: labels,
            values: grid.values,
            problems: grid.problems,
            reference_epoch: None,
            epochs: vec![epoch],
        })
    })
    .await
}

/// What makes two runs' probe sets differ, if anything. Two runs compare when they probed the
/// same instances: the same positions in their source sets and the same input values. That
/// holds for runs of the same data with different seeds (the probe comes from the fixed test
/// split by default), while the SHA-256 of everything a run saw differs between them.
fn probe_difference(
    hub: &Hub,
    a: (i64, u32),
    b: (i64, u32),
) -> Result<Option<String>, AnswerError> {
    let instances = |(run_id, epoch): (i64, u32)| -> Result<Vec<u32>, AnswerError> {
        Ok(hub
            .stored_epoch(run_id, epoch)?
            .ok_or_else(|| AnswerError::no_epoch(run_id, epoch))?
            .probe
            .indices)
    };
    let (probe_a, probe_b) = (instances(a)?, instances(b)?);
    if probe_a != probe_b {
        return Ok(Some(format!(
            "runs {} and {} probe different instances ({} and {} of them, first {:?} and {:?}): \
             start both with the same --probe",
            a.0,
            b.0,
            probe_a.len(),
            probe_b.len(),
            probe_a.first(),
            probe_b.first()
        )));
    }
    if hub.images(a.0)? != hub.images(b.0)? {
        return Ok(Some(format!(
            "runs {} and {} probe the same positions of different data (their probe inputs \
             differ): compare runs of the same dataset",
            a.0, b.0
        )));
    }
    Ok(None)
}

/// The hidden layers of run `a` at `epoch_a` against those of run `b` at `epoch_b`, as JSON
/// ([`SimilarityGrid`]: rows are `a`'s layers, columns `b`'s). Refused with
/// [`AnswerError::Conflict`] unless both runs probed the same instances.
/// Computed on every request, never cached.
pub async fn compare_json(
    hub: Hub,
    cache: Arc<AnswerCache>,
    a: (i64, u32),
    b: (i64, u32),
    method: Method,
) -> Result<Bytes, AnswerError> {
    // Not cached: a comparison is asked for once, and a cached one would outlive run `b`.
    blocking_threads(&cache, SIMILARITY_THREADS, move || {
        if let Some(difference) = probe_difference(&hub, a, b)? {
            return Err(AnswerError::Conflict(difference));
        }
        let layers_a = load_probe(&hub, a.0, a.1)?.layers;
        let layers_b = load_probe(&hub, b.0, b.1)?.layers;
        let mut grid = GridBuilder::new();
        grid.extend(
            method,
            &layers_a.iter().collect::<Vec<_>>(),
            &layers_b.iter().collect::<Vec<_>>(),
        );
        json(&SimilarityGrid {
            method: method.name().to_owned(),
            row_labels: (0..layers_a.len())
                .map(|l| format!("run {} {}", a.0, layer_label(l)))
                .collect(),
            col_labels: (0..layers_b.len())
                .map(|l| format!("run {} {}", b.0, layer_label(l)))
                .collect(),
            values: grid.values,
            problems: grid.problems,
            reference_epoch: None,
            epochs: vec![a.1, b.1],
        })
    })
    .await
}
