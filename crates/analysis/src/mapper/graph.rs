//! From clusters to the graph: node statistics and the weighted edges between nodes that
//! share members.

use actiscope_protocol::mapper::{MapperEdge, MapperNode};

use super::distance::sq_dist_f64;
use crate::hash::FxHashMap;

/// Exemplars kept per node.
const EXEMPLARS: usize = 3;

/// What the node statistics read for every instance.
pub(crate) struct NodeContext<'a> {
    /// Row-major activations.
    pub data: &'a [f32],
    /// Columns of `data`.
    pub dim: usize,
    /// L2 norm of every instance's activations.
    pub norms: &'a [f64],
    /// True class of every instance (validated `< class_count`).
    pub labels: &'a [u32],
    /// Predicted class of every instance (validated `< class_count`).
    pub predictions: &'a [u32],
    /// Number of classes.
    pub class_count: usize,
}

impl NodeContext<'_> {
    fn row(&self, instance: u32) -> &[f32] {
        let start = instance as usize * self.dim;
        self.data.get(start..start + self.dim).unwrap_or(&[])
    }

    /// A node (id 0, no parent) over `members` (ascending, non-empty) of cover element
    /// `element`.
    pub(crate) fn node(&self, element: u32, members: Vec<u32>) -> MapperNode {
        let size = members.len().max(1) as f64;
        let mut class_counts = vec![0u32; self.class_count];
        let mut predicted = vec![0u32; self.class_count];
        let mut wrong = 0usize;
        let mut norm_sum = 0.0f64;
        let mut centroid = vec![0.0f64; self.dim];
        for &m in &members {
            let i = m as usize;
            let label = self.labels.get(i).copied();
            let prediction = self.predictions.get(i).copied();
            if let Some(c) = label.and_then(|l| class_counts.get_mut(l as usize)) {
                *c += 1;
            }
            if let Some(c) = prediction.and_then(|p| predicted.get_mut(p as usize)) {
                *c += 1;
            }
            if label != prediction {
                wrong += 1;
            }
            norm_sum += self.norms.get(i).copied().unwrap_or(0.0);
            for (c, &x) in centroid.iter_mut().zip(self.row(m)) {
                *c += f64::from(x);
            }
        }
        centroid.iter_mut().for_each(|c| *c /= size);
        let centroid32: Vec<f32> = centroid.iter().map(|&c| c as f32).collect();
        let mut by_distance: Vec<(f64, u32)> = members
            .iter()
            .map(|&m| (sq_dist_f64(self.row(m), &centroid32), m))
            .collect();
        let keep = EXEMPLARS.min(by_distance.len());
        if by_distance.len() > keep && keep > 0 {
            by_distance
                .select_nth_unstable_by(keep - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        by_distance.truncate(keep);
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let top_predicted = predicted.iter().copied().max().unwrap_or(0);
        MapperNode {
            id: 0,
            parent: None,
            cover_element: element,
            class_counts,
            purity: (f64::from(top_predicted) / size) as f32,
            error_rate: (wrong as f64 / size) as f32,
            mean_norm: (norm_sum / size) as f32,
            exemplars: by_distance.into_iter().map(|(_, m)| m).collect(),
            members,
        }
    }
}

/// Edges between nodes sharing at least one member, with their Jaccard weight, keeping those
/// of weight at least `min_weight`, ordered by `(source, target)`.
pub(crate) fn edges(
    nodes: &[MapperNode],
    instance_count: usize,
    min_weight: f32,
) -> Vec<MapperEdge> {
    // Nodes of every instance (ascending, since nodes are visited in order), as CSR.
    let mut offsets = vec![0usize; instance_count + 1];
    for node in nodes {
        for &m in &node.members {
            if let Some(o) = offsets.get_mut(m as usize + 1) {
                *o += 1;
            }
        }
    }
    for i in 0..instance_count {
        let before = offsets.get(i).copied().unwrap_or(0);
        if let Some(o) = offsets.get_mut(i + 1) {
            *o += before;
        }
    }
    let mut fill = offsets.clone();
    let mut node_of = vec![0u32; offsets.last().copied().unwrap_or(0)];
    for (index, node) in nodes.iter().enumerate() {
        for &m in &node.members {
            if let Some(f) = fill.get_mut(m as usize) {
                if let Some(slot) = node_of.get_mut(*f) {
                    *slot = index as u32;
                }
                *f += 1;
            }
        }
    }
    let mut shared: FxHashMap<(u32, u32), u32> = FxHashMap::default();
    for i in 0..instance_count {
        let (Some(&start), Some(&end)) = (offsets.get(i), offsets.get(i + 1)) else {
            continue;
        };
        let list = node_of.get(start..end).unwrap_or(&[]);
        for (a, &source) in list.iter().enumerate() {
            for &target in list.iter().skip(a + 1) {
                *shared.entry((source, target)).or_insert(0) += 1;
            }
        }
    }
    let size = |n: u32| nodes.get(n as usize).map_or(0, |node| node.members.len());
    let mut edges: Vec<MapperEdge> = shared
        .into_iter()
        .filter_map(|((source, target), common)| {
            let union = size(source) + size(target) - common as usize;
            let jaccard = (f64::from(common) / union.max(1) as f64) as f32;
            (jaccard >= min_weight).then_some(MapperEdge {
                source,
                target,
                jaccard,
            })
        })
        .collect();
    edges.sort_by_key(|e| (e.source, e.target));
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(members: Vec<u32>) -> MapperNode {
        MapperNode {
            id: 0,
            parent: None,
            members,
            cover_element: 0,
            class_counts: vec![],
            purity: 0.0,
            error_rate: 0.0,
            mean_norm: 0.0,
            exemplars: vec![],
        }
    }

    #[test]
    fn jaccard_by_hand() {
        // A = {0,1,2,3}, B = {2,3,4}, C = {4,5}, D = {6}, E = {3,4,5,6}.
        let nodes = vec![
            bare(vec![0, 1, 2, 3]),
            bare(vec![2, 3, 4]),
            bare(vec![4, 5]),
            bare(vec![6]),
            bare(vec![3, 4, 5, 6]),
        ];
        let got = edges(&nodes, 7, 0.0);
        let want = [
            (0, 1, 2.0 / 5.0), // {2,3} / {0..4}
            (0, 4, 1.0 / 7.0), // {3} / {0..6}
            (1, 2, 1.0 / 4.0), // {4} / {2,3,4,5}
            (1, 4, 2.0 / 5.0), // {3,4} / {2..6}
            (2, 4, 2.0 / 4.0), // {4,5} / {3..6}
            (3, 4, 1.0 / 4.0), // {6} / {3..6}
        ];
        assert_eq!(got.len(), want.len());
        for (e, (s, t, j)) in got.iter().zip(want) {
            assert_eq!((e.source, e.target), (s, t));
            assert!((e.jaccard - j as f32).abs() < 1e-7, "{e:?}");
        }
        // A threshold drops the light edges (0.25 stays: the bound is inclusive).
        let heavy = edges(&nodes, 7, 0.25);
        assert_eq!(heavy.len(), 5);
        assert!(heavy.iter().all(|e| e.jaccard >= 0.25));
    }

    #[test]
    fn node_statistics_by_hand() {
        // Four instances in 2-D; labels 0,1,1,2 and predictions 0,1,2,2.
        let data = [0.0, 0.0, 3.0, 4.0, 1.0, 0.0, 10.0, 0.0];
        let norms = [0.0, 5.0, 1.0, 10.0];
        let ctx = NodeContext {
            data: &data,
            dim: 2,
            norms: &norms,
            labels: &[0, 1, 1, 2],
            predictions: &[0, 1, 2, 2],
            class_count: 3,
        };
        let node = ctx.node(7, vec![0, 1, 2, 3]);
        assert_eq!(node.cover_element, 7);
        assert_eq!(node.class_counts, vec![1, 2, 1]);
        // Predicted 0,1,2,2: most predicted is 2 with 2 of 4.
        assert_eq!(node.purity, 0.5);
        // Instance 2 is wrong.
        assert_eq!(node.error_rate, 0.25);
        assert_eq!(node.mean_norm, 4.0);
        // Centroid (3.5, 1): squared distances 13.25, 9.25, 7.25, 42.25.
        assert_eq!(node.exemplars, vec![2, 1, 0]);
        let small = ctx.node(0, vec![3]);
        assert_eq!(small.exemplars, vec![3]);
        assert_eq!(small.purity, 1.0);
    }
}
