//! TopoAct-style mapper graphs of one layer's activation vectors (see
//! `../shared/papers/topoact-abstract.txt` and `DESIGN.md`, "Mapper").
//!
//! The pipeline: a lens maps every activation vector to the line or the plane
//! ([`lens_values`]); a cover of overlapping intervals (KeplerMapper's `Cover(n_cubes,
//! perc_overlap)`, a product of two for a 2-D lens) is laid over the lens range; the
//! instances of every cover element are clustered (DBSCAN with scikit-learn's semantics,
//! noise dropped as KeplerMapper does, or single linkage cut at the first histogram gap);
//! every cluster is a node, and nodes sharing members are joined by an edge weighted by the
//! Jaccard index of their member sets. [`carry_identities`] keeps node ids stable across
//! epochs. Everything is single-threaded and deterministic.
//!
//! Distances are Euclidean. The neighbour searches inside an element (DBSCAN's radius
//! queries, the k-th neighbour distances of the automatic `eps` and of the k-NN lens) run on
//! a projection tree of the element's points: leaf pairs that a projection shows to be too
//! far apart are skipped, the rest are `f32` Gram blocks (faer), and every comparison that
//! rounding could flip is re-decided with the exact `f64` distance, so results equal those
//! of a plain double-precision computation. DBSCAN also skips leaf pairs whose core points
//! are already connected.
//!
//! Modules: `lens` (lenses, PCA), `cover` (intervals), `distance` (point sets and kernels),
//! `tree` (the projection tree), `radius` (radius queries), `knn` (k-th neighbour
//! distances), `cluster` (DBSCAN, automatic `eps`, single linkage), `graph` (node statistics
//! and edges), `identity` (ids across epochs).

mod cluster;
mod cover;
mod distance;
mod graph;
mod identity;
mod knn;
mod lens;
mod radius;
mod tree;

#[cfg(test)]
mod tests;

use actiscope_protocol::mapper::{
    MapperClusterer, MapperGraph, MapperLens, MapperNode, MapperParams,
};

pub use identity::carry_identities;
pub use lens::{LensValues, lens_values};

use crate::Matrix;
use cluster::{auto_eps, dbscan_in, single_linkage};
use cover::cover_elements;
use distance::PointSet;
use graph::{NodeContext, edges};
use tree::Tree;

/// Most intervals per lens dimension (a 2-D cover's element index must fit a `u32`).
pub const MAX_INTERVALS: u32 = 65_535;

/// The data a mapper graph is built from: one layer's activations over the probe set.
#[derive(Debug, Clone, Copy)]
pub struct MapperInput<'a> {
    /// Activations, `N x d`: one row per probe instance (ReLU outputs).
    pub activations: &'a Matrix,
    /// True class of every instance (`N` values, each `< class_count`).
    pub labels: &'a [u32],
    /// Predicted class of every instance (`N` values, each `< class_count`).
    pub predictions: &'a [u32],
    /// Softmax score of the predicted class, per instance; needed only by
    /// [`MapperLens::PredictedScore`].
    pub predicted_scores: Option<&'a [f32]>,
    /// Number of classes (length of every node's `class_counts`).
    pub class_count: usize,
}

/// Why a mapper graph cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapperError {
    /// A per-instance input does not have one value per activation row.
    #[error("{what}: {found} values for {expected} instances")]
    Length {
        /// Which input.
        what: &'static str,
        /// Instances (activation rows).
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// A label or prediction is not below `class_count`.
    #[error("{what} of instance {instance} is class {class}, but there are {class_count} classes")]
    ClassOutOfRange {
        /// `"label"` or `"prediction"`.
        what: &'static str,
        /// Position of the instance.
        instance: usize,
        /// The class found.
        class: u32,
        /// Classes declared.
        class_count: usize,
    },
    /// More instances than a `u32` member id can name.
    #[error("{0} instances exceed the mapper's limit of 2^32 - 1")]
    TooManyInstances(usize),
    /// `intervals` is 0 or above [`MAX_INTERVALS`].
    #[error("the cover needs between 1 and {MAX_INTERVALS} intervals, not {0}")]
    Intervals(u32),
    /// `overlap_pct` is not a number in `[0, 100)`.
    #[error("the overlap must be a percentage in [0, 100), not {0}")]
    Overlap(f32),
    /// DBSCAN's `min_samples` is 0.
    #[error("DBSCAN needs min_samples >= 1")]
    MinSamples,
    /// DBSCAN's explicit `eps` is negative or not finite.
    #[error("DBSCAN's eps must be a finite number >= 0, not {0}")]
    Eps(f32),
    /// Single linkage with 0 histogram bins.
    #[error("single linkage needs at least one histogram bin")]
    Bins,
    /// `min_edge_weight` is not a number in `[0, 1]`.
    #[error("the minimum edge weight must be in [0, 1], not {0}")]
    EdgeWeight(f32),
    /// The neighbour rank of [`MapperLens::KnnDistance`] is 0 or not below the instance
    /// count.
    #[error("the k-th neighbour distance needs 1 <= k < {instances}, not k = {k}")]
    NeighbourRank {
        /// The rank asked for.
        k: usize,
        /// Instances available.
        instances: usize,
    },
    /// [`MapperLens::PredictedScore`] without scores.
    #[error("the predicted-score lens needs the predicted scores")]
    MissingScores,
    /// An activation or score is NaN or infinite.
    #[error("activations and scores must be finite")]
    NonFinite,
    /// The principal components could not be computed.
    #[error("the eigendecomposition of the covariance failed")]
    Decomposition,
}

/// Builds the mapper graph of `input` under `params`.
///
/// Nodes are ordered by cover element, then by size (largest first), then by first member;
/// their ids are `0..n` in that order, without parents (see [`carry_identities`] to carry
/// ids over from the previous epoch). Members are ascending probe positions. Purity is the
/// share of members predicted as the node's most predicted class, the error rate the share
/// whose prediction differs from the label, `mean_norm` the mean L2 norm of the members'
/// activations, and the exemplars the (up to) three members nearest the node's centroid,
/// nearest first (ties by position). Edges join nodes sharing at least one member, weighted
/// by the Jaccard index, dropping those below `min_edge_weight`; `source < target`, sorted.
///
/// With DBSCAN, elements with fewer instances than `min_samples` produce no node and noise
/// points belong to no node (as in KeplerMapper); `eps: None` picks `eps` per element at the
/// knee of the sorted `max(min_samples - 1, 1)`-th nearest-neighbour distances (the point
/// of the curve, scaled to the unit square, furthest from its chord). Single linkage cuts
/// the minimum spanning tree at the first empty bin of a `bins`-bin histogram of its edge
/// lengths (no empty bin: one cluster). An empty probe set gives an empty graph.
pub fn mapper(input: &MapperInput<'_>, params: &MapperParams) -> Result<MapperGraph, MapperError> {
    validate(input, params)?;
    let n = input.activations.rows();
    let dim = input.activations.cols();
    let data = input.activations.as_slice();
    let lens = lens_values(input, params.lens)?;
    let overlap = f64::from(params.overlap_pct) / 100.0;
    let elements = cover_elements(&lens, params.intervals as usize, overlap);

    let norms: Vec<f64> = (0..n)
        .map(|i| {
            data.get(i * dim..(i + 1) * dim).map_or(0.0, |row| {
                row.iter()
                    .map(|&x| f64::from(x) * f64::from(x))
                    .sum::<f64>()
                    .sqrt()
            })
        })
        .collect();
    let context = NodeContext {
        data,
        dim,
        norms: &norms,
        labels: input.labels,
        predictions: input.predictions,
        class_count: input.class_count,
    };
    let mut nodes: Vec<MapperNode> = Vec::new();
    for (element, members) in elements {
        let mut clusters = cluster_element(data, dim, &members, params.clusterer);
        clusters.sort_by(|a, b| b.len().cmp(&a.len()).then(a.first().cmp(&b.first())));
        nodes.extend(
            clusters
                .into_iter()
                .map(|cluster| context.node(element, cluster)),
        );
    }
    let edges = edges(&nodes, n, params.min_edge_weight);
    let mut graph = MapperGraph {
        params: *params,
        instance_count: u32::try_from(n).map_err(|_| MapperError::TooManyInstances(n))?,
        nodes,
        edges,
    };
    carry_identities(None, &mut graph);
    Ok(graph)
}

/// Clusters the instances `members` (ascending) of one cover element; clusters come back as
/// ascending instance positions.
fn cluster_element(
    data: &[f32],
    dim: usize,
    members: &[u32],
    clusterer: MapperClusterer,
) -> Vec<Vec<u32>> {
    let local = match clusterer {
        MapperClusterer::Dbscan { eps, min_samples } => {
            let min_samples = min_samples as usize;
            if members.len() < min_samples {
                return Vec::new();
            }
            let points = PointSet::gather(data, dim, members);
            let tree = Tree::new(&points);
            let eps = eps.unwrap_or_else(|| auto_eps(&points, &tree, min_samples));
            dbscan_in(&points, &tree, eps, min_samples)
        }
        MapperClusterer::SingleLinkage { bins } => {
            single_linkage(&PointSet::gather(data, dim, members), bins as usize)
        }
    };
    local
        .into_iter()
        .map(|cluster| {
            cluster
                .into_iter()
                .filter_map(|i| members.get(i as usize).copied())
                .collect()
        })
        .collect()
}

/// Checks shapes, classes and parameters (the lens checks its own inputs).
fn validate(input: &MapperInput<'_>, params: &MapperParams) -> Result<(), MapperError> {
    let n = input.activations.rows();
    if u32::try_from(n).is_err() {
        return Err(MapperError::TooManyInstances(n));
    }
    for (what, values) in [("labels", input.labels), ("predictions", input.predictions)] {
        if values.len() != n {
            return Err(MapperError::Length {
                what,
                expected: n,
                found: values.len(),
            });
        }
    }
    for (what, values) in [("label", input.labels), ("prediction", input.predictions)] {
        if let Some((instance, &class)) = values
            .iter()
            .enumerate()
            .find(|(_, c)| **c as usize >= input.class_count)
        {
            return Err(MapperError::ClassOutOfRange {
                what,
                instance,
                class,
                class_count: input.class_count,
            });
        }
    }
    if params.intervals == 0 || params.intervals > MAX_INTERVALS {
        return Err(MapperError::Intervals(params.intervals));
    }
    if !(params.overlap_pct >= 0.0 && params.overlap_pct < 100.0) {
        return Err(MapperError::Overlap(params.overlap_pct));
    }
    if !(params.min_edge_weight >= 0.0 && params.min_edge_weight <= 1.0) {
        return Err(MapperError::EdgeWeight(params.min_edge_weight));
    }
    match params.clusterer {
        MapperClusterer::Dbscan { min_samples: 0, .. } => return Err(MapperError::MinSamples),
        MapperClusterer::Dbscan { eps: Some(eps), .. } if !(eps >= 0.0 && eps.is_finite()) => {
            return Err(MapperError::Eps(eps));
        }
        MapperClusterer::SingleLinkage { bins: 0 } => return Err(MapperError::Bins),
        _ => {}
    }
    if let MapperLens::KnnDistance { k } = params.lens
        && (k == 0 || k as usize >= n)
    {
        return Err(MapperError::NeighbourRank {
            k: k as usize,
            instances: n,
        });
    }
    Ok(())
}
