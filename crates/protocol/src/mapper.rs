//! TopoAct-style mapper graphs of one layer's activation vectors, as sent to the dashboard
//! (built by `actiscope-analysis::mapper`; see ../shared/papers/topoact-abstract.txt).

use serde::{Deserialize, Serialize};

/// The filter ("lens") that maps each activation vector to the line or the plane the cover
/// is laid over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MapperLens {
    /// Projection on the first principal component (1-D cover).
    Pca1,
    /// Projection on the first two principal components (2-D cover: `intervals` x `intervals`
    /// overlapping rectangles).
    Pca2,
    /// L2 norm of the activation vector.
    L2Norm,
    /// Distance to the `k`-th nearest other instance (a density estimate).
    KnnDistance {
        /// Which neighbour, 1-based.
        k: u32,
    },
    /// The network's softmax score for its predicted class.
    PredictedScore,
}

/// How the members of one cover element are split into clusters (the mapper's nodes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MapperClusterer {
    /// DBSCAN with Euclidean distance.
    Dbscan {
        /// Neighbourhood radius; `None` picks one per cover element from its k-distance
        /// distribution (the knee of the sorted `min_samples`-th neighbour distances).
        eps: Option<f32>,
        /// Points (counting itself) a core point needs within `eps`.
        min_samples: u32,
    },
    /// Single-linkage clustering cut at the first gap of a histogram of merge distances
    /// (the original mapper paper's rule).
    SingleLinkage {
        /// Histogram bins for the gap search.
        bins: u32,
    },
}

/// Everything that determines a mapper graph besides the data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MapperParams {
    /// Hidden layer, 0-based.
    pub layer_idx: u32,
    /// The filter.
    pub lens: MapperLens,
    /// Cover intervals per lens dimension.
    pub intervals: u32,
    /// Overlap of neighbouring intervals, in percent of an interval's length (0..100).
    pub overlap_pct: f32,
    /// The clusterer.
    pub clusterer: MapperClusterer,
    /// Edges whose Jaccard weight is below this are dropped.
    pub min_edge_weight: f32,
}

impl Default for MapperParams {
    fn default() -> Self {
        Self {
            layer_idx: 0,
            lens: MapperLens::Pca1,
            intervals: 10,
            overlap_pct: 30.0,
            clusterer: MapperClusterer::Dbscan {
                eps: None,
                min_samples: 3,
            },
            min_edge_weight: 0.0,
        }
    }
}

/// One node: a cluster inside one cover element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapperNode {
    /// Identity that persists across epochs (matched by member overlap).
    pub id: u32,
    /// Identity of the previous epoch's node this one shares most members with, if any; a
    /// new node is drawn next to it.
    pub parent: Option<u32>,
    /// Members, as positions in the probe set (ascending).
    pub members: Vec<u32>,
    /// Index of the cover element the node came from (row-major for 2-D covers).
    pub cover_element: u32,
    /// Members per true class (`class_counts[c]`).
    pub class_counts: Vec<u32>,
    /// Share of members predicted as the node's most predicted label.
    pub purity: f32,
    /// Share of members the network gets wrong.
    pub error_rate: f32,
    /// Mean L2 norm of the members' activation vectors.
    pub mean_norm: f32,
    /// Up to three members closest to the node's centroid, nearest first.
    pub exemplars: Vec<u32>,
}

impl MapperNode {
    /// The most frequent true class among the members (lowest class on ties).
    pub fn majority_class(&self) -> Option<u32> {
        let (class, count) = self
            .class_counts
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
        (*count > 0).then(|| u32::try_from(class).unwrap_or(u32::MAX))
    }
}

/// An edge between two nodes that share members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapperEdge {
    /// Position of one end in [`MapperGraph::nodes`].
    pub source: u32,
    /// Position of the other end (`source < target`).
    pub target: u32,
    /// `|A ∩ B| / |A ∪ B|` of the two member sets.
    pub jaccard: f32,
}

/// A mapper graph of one layer at one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapperGraph {
    /// The parameters that built it.
    pub params: MapperParams,
    /// Instances the graph covers.
    pub instance_count: u32,
    /// Nodes, ordered by cover element, then by size (largest first).
    pub nodes: Vec<MapperNode>,
    /// Edges, ordered by `(source, target)`.
    pub edges: Vec<MapperEdge>,
}
