//! Activation Pattern Diagrams and flows as sent to the dashboard (built by
//! `actiscope-analysis`; definitions in the APD paper and ../shared/DESIGN.md).

use serde::{Deserialize, Serialize};

/// What an APD node stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApdNodeKind {
    /// One activation pattern of hidden layer `layer_idx` (0-based).
    Pattern {
        /// Hidden layer, 0-based.
        layer_idx: u32,
        /// Pattern id within the layer for this epoch (0 = most shared).
        pattern_id: u32,
        /// Which neurons fire, `'1'`/`'0'`, neuron 0 first.
        bits: String,
    },
    /// The rarest patterns of a layer merged into one node.
    Other {
        /// Hidden layer, 0-based.
        layer_idx: u32,
        /// How many patterns were merged.
        merged_patterns: u32,
    },
    /// A predicted label (the last level).
    Label {
        /// The predicted class.
        label: u32,
    },
}

/// A node: a pattern (or merged patterns) of a layer, or a predicted label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApdNode {
    /// What it stands for.
    pub kind: ApdNodeKind,
    /// Instances through this node.
    pub instances: u32,
    /// Misclassified instances among them.
    pub errors: u32,
}

/// An edge between consecutive levels, carrying the instances that pass both nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApdEdge {
    /// Level of the source node; the target is on `from_level + 1`.
    pub from_level: u32,
    /// Index of the source node in its level.
    pub from_node: u32,
    /// Index of the target node in the next level.
    pub to_node: u32,
    /// Instances along the edge.
    pub instances: u32,
    /// Misclassified instances among them.
    pub errors: u32,
}

impl ApdEdge {
    /// An edge from its `(from_level, from_node, to_node)` key and `(instances, errors)`.
    pub fn from_counts(key: (u32, u32, u32), counts: (u32, u32)) -> Self {
        let ((from_level, from_node, to_node), (instances, errors)) = (key, counts);
        Self {
            from_level,
            from_node,
            to_node,
            instances,
            errors,
        }
    }
}

/// The extended APD: one level per hidden layer, then a level of predicted labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Apd {
    /// `levels[l]` holds the nodes of level `l`; the last level holds the labels.
    pub levels: Vec<Vec<ApdNode>>,
    /// All edges, sorted by (level, source, target).
    pub edges: Vec<ApdEdge>,
    /// Node index of every instance at every level, instance-major:
    /// `paths[i * levels.len() + l]`. Resolves any node or edge back to its instances.
    pub paths: Vec<u32>,
    /// Number of instances in the diagram.
    pub instance_count: u32,
}

impl Apd {
    /// The node indices of instance `instance`, one per level.
    pub fn path(&self, instance: usize) -> Option<&[u32]> {
        let levels = self.levels.len();
        self.paths.get(instance * levels..(instance + 1) * levels)
    }

    /// Instances through node `node` of level `level`.
    pub fn node_instances(&self, level: usize, node: u32) -> Vec<u32> {
        (0..self.instance_count)
            .filter(|&i| {
                self.path(i as usize)
                    .and_then(|p| p.get(level))
                    .is_some_and(|&n| n == node)
            })
            .collect()
    }

    /// Instances along the edge from `from_node` (level `from_level`) to `to_node`.
    pub fn edge_instances(&self, from_level: usize, from_node: u32, to_node: u32) -> Vec<u32> {
        (0..self.instance_count)
            .filter(|&i| {
                self.path(i as usize).is_some_and(|p| {
                    p.get(from_level) == Some(&from_node) && p.get(from_level + 1) == Some(&to_node)
                })
            })
            .collect()
    }
}

impl Apd {
    /// A copy in which every pattern level keeps at most `max_nodes_per_layer` nodes: the
    /// ones with the most instances stay, the rest merge into one "other (n patterns)" node
    /// (which counts towards the limit). Instance totals, error totals and every instance's
    /// path are preserved; edges are re-aggregated. The label level is never merged.
    pub fn merge_rare(&self, max_nodes_per_layer: usize) -> Self {
        let max = max_nodes_per_layer.max(1);
        let level_count = self.levels.len();
        let mut remaps: Vec<Vec<u32>> = Vec::with_capacity(level_count);
        let mut levels = Vec::with_capacity(level_count);
        for (level_idx, level) in self.levels.iter().enumerate() {
            let is_label_level = level_idx + 1 == level_count;
            if is_label_level || level.len() <= max {
                remaps.push((0..u32::try_from(level.len()).unwrap_or(u32::MAX)).collect());
                levels.push(level.clone());
                continue;
            }
            let mut order: Vec<usize> = (0..level.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(level.get(i).map_or(0, |n| n.instances)));
            let kept = max - 1;
            let mut remap = vec![0u32; level.len()];
            let mut nodes = Vec::with_capacity(max);
            let mut other = ApdNode {
                kind: ApdNodeKind::Other {
                    layer_idx: u32::try_from(level_idx).unwrap_or(u32::MAX),
                    merged_patterns: 0,
                },
                instances: 0,
                errors: 0,
            };
            let kept_u32 = u32::try_from(kept).unwrap_or(u32::MAX);
            for (rank, &old) in order.iter().enumerate() {
                let Some(node) = level.get(old) else { continue };
                if rank < kept {
                    if let Some(slot) = remap.get_mut(old) {
                        *slot = u32::try_from(rank).unwrap_or(u32::MAX);
                    }
                    nodes.push(node.clone());
                } else {
                    if let Some(slot) = remap.get_mut(old) {
                        *slot = kept_u32;
                    }
                    other.instances += node.instances;
                    other.errors += node.errors;
                    let merged = match node.kind {
                        ApdNodeKind::Other {
                            merged_patterns, ..
                        } => merged_patterns,
                        _ => 1,
                    };
                    if let ApdNodeKind::Other {
                        merged_patterns, ..
                    } = &mut other.kind
                    {
                        *merged_patterns += merged;
                    }
                }
            }
            nodes.push(other);
            remaps.push(remap);
            levels.push(nodes);
        }
        let paths: Vec<u32> = self
            .paths
            .iter()
            .enumerate()
            .map(|(i, &node)| {
                remaps
                    .get(i % level_count.max(1))
                    .and_then(|r| r.get(node as usize))
                    .copied()
                    .unwrap_or(node)
            })
            .collect();
        let mut edge_map: std::collections::BTreeMap<(u32, u32, u32), (u32, u32)> =
            std::collections::BTreeMap::new();
        for edge in &self.edges {
            let remap = |level: u32, node: u32| {
                remaps
                    .get(level as usize)
                    .and_then(|r| r.get(node as usize))
                    .copied()
                    .unwrap_or(node)
            };
            let key = (
                edge.from_level,
                remap(edge.from_level, edge.from_node),
                remap(edge.from_level + 1, edge.to_node),
            );
            let entry = edge_map.entry(key).or_insert((0, 0));
            entry.0 += edge.instances;
            entry.1 += edge.errors;
        }
        let edges = edge_map
            .into_iter()
            .map(|(key, counts)| ApdEdge::from_counts(key, counts))
            .collect();
        Self {
            levels,
            edges,
            paths,
            instance_count: self.instance_count,
        }
    }
}

/// A flow: the instances that share the patterns of a run of consecutive layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// Pattern id in each layer of the run.
    pub pattern_ids: Vec<u32>,
    /// Member instances (indices into the analysed set), ascending.
    pub instances: Vec<u32>,
    /// Size of the flow.
    pub strength: u32,
    /// Share of the most frequent predicted label, in (0, 1].
    pub purity: f32,
    /// The most frequent predicted label (smallest on ties).
    pub majority_prediction: u32,
    /// Misclassified members.
    pub errors: u32,
}

/// The flows over layers `first_layer..=last_layer` and their Fig. 3 histograms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowTable {
    /// First hidden layer of the run, 0-based.
    pub first_layer: u32,
    /// Last hidden layer of the run, 0-based, inclusive.
    pub last_layer: u32,
    /// Flows by descending strength.
    pub flows: Vec<Flow>,
    /// Log-binned strength x purity histograms.
    pub histogram: FlowHistogram,
}

/// Paper Fig. 3: instances (and misclassified instances) by the strength and purity of
/// their flow. Cell `[p][s]` is purity bin `p`, strength bin `s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowHistogram {
    /// Lower edges of the strength bins (powers of two: 1, 2, 4, ...); the last is open.
    pub strength_lower_edges: Vec<u32>,
    /// Edges of the purity bins, `purity_edges.len() - 1` bins, the last one closed.
    pub purity_edges: Vec<f32>,
    /// All instances per cell.
    pub instances: Vec<Vec<u32>>,
    /// Misclassified instances per cell.
    pub errors: Vec<Vec<u32>>,
}
