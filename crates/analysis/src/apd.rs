//! The Activation Pattern Diagram (APD paper, section 2): a DAG whose level-`l` nodes are the
//! unique patterns of hidden layer `l` over the chosen instances, edges
//! `(A*_{l-1}(x), A*_l(x))` for every instance, extended with a level of predicted labels.

use actiscope_protocol::apd::{Apd, ApdEdge, ApdNode, ApdNodeKind};

use crate::hash::FxHashMap;
use crate::patterns::LayerPatterns;

/// Errors building an APD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApdError {
    /// The inputs disagree on the number of instances.
    #[error("layer {layer_idx} has {found} instances but the predictions cover {expected}")]
    InstanceCount {
        /// Offending layer (or `usize::MAX` for the true labels).
        layer_idx: usize,
        /// Its instance count.
        found: usize,
        /// The predictions' count.
        expected: usize,
    },
    /// No hidden layer was given.
    #[error("an APD needs at least one hidden layer")]
    NoLayers,
}

/// Options of [`build_apd`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApdOptions {
    /// Keep at most this many nodes per layer: the most shared patterns stay, the rest merge
    /// into one "other (n patterns)" node, which counts towards the limit. `None` keeps all.
    pub max_nodes_per_layer: Option<usize>,
}

/// Builds the APD of a set of instances from each hidden layer's patterns over that set, the
/// predicted labels and the true labels (an instance is misclassified when they differ).
pub fn build_apd(
    layers: &[LayerPatterns],
    predictions: &[u32],
    labels: &[u32],
    options: ApdOptions,
) -> Result<Apd, ApdError> {
    if layers.is_empty() {
        return Err(ApdError::NoLayers);
    }
    let instance_count = predictions.len();
    for (layer_idx, layer) in layers.iter().enumerate() {
        if layer.ids.len() != instance_count {
            return Err(ApdError::InstanceCount {
                layer_idx,
                found: layer.ids.len(),
                expected: instance_count,
            });
        }
    }
    if labels.len() != instance_count {
        return Err(ApdError::InstanceCount {
            layer_idx: usize::MAX,
            found: labels.len(),
            expected: instance_count,
        });
    }

    let level_count = layers.len() + 1;
    let mut levels: Vec<Vec<ApdNode>> = (0u32..)
        .zip(layers)
        .map(|(layer_idx, layer)| layer_nodes(layer_idx, layer))
        .collect();
    let mut label_values: Vec<u32> = predictions.to_vec();
    label_values.sort_unstable();
    label_values.dedup();
    levels.push(
        label_values
            .iter()
            .map(|&label| ApdNode {
                kind: ApdNodeKind::Label { label },
                instances: 0,
                errors: 0,
            })
            .collect(),
    );

    let mut paths = Vec::with_capacity(instance_count * level_count);
    let mut edge_counts: FxHashMap<(u32, u32, u32), (u32, u32)> = FxHashMap::default();
    for (instance, (&prediction, &label)) in predictions.iter().zip(labels).enumerate() {
        let error = u32::from(prediction != label);
        let path_start = paths.len();
        for layer in layers {
            paths.push(layer.ids.get(instance).copied().unwrap_or(0));
        }
        let label_node = label_values.binary_search(&prediction).unwrap_or(0);
        paths.push(u32::try_from(label_node).unwrap_or(u32::MAX));
        let path = paths.get(path_start..).unwrap_or(&[]);
        for (level, &node) in levels.iter_mut().zip(path) {
            if let Some(n) = level.get_mut(node as usize) {
                n.instances += 1;
                n.errors += error;
            }
        }
        for (from_level, pair) in (0u32..).zip(path.windows(2)) {
            if let [from, to] = *pair {
                let entry = edge_counts.entry((from_level, from, to)).or_insert((0, 0));
                entry.0 += 1;
                entry.1 += error;
            }
        }
    }
    let mut edges: Vec<ApdEdge> = edge_counts
        .into_iter()
        .map(|(key, counts)| ApdEdge::from_counts(key, counts))
        .collect();
    edges.sort_by_key(|e| (e.from_level, e.from_node, e.to_node));
    let apd = Apd {
        levels,
        edges,
        paths,
        instance_count: u32::try_from(instance_count).unwrap_or(u32::MAX),
    };
    Ok(match options.max_nodes_per_layer {
        Some(max) => apd.merge_rare(max),
        None => apd,
    })
}

/// The nodes of one layer (one per pattern id, in id order, so node index = pattern id).
fn layer_nodes(layer_idx: u32, layer: &LayerPatterns) -> Vec<ApdNode> {
    (0u32..)
        .take(layer.unique_count())
        .map(|pattern_id| ApdNode {
            kind: ApdNodeKind::Pattern {
                layer_idx,
                pattern_id,
                bits: layer.bit_string(pattern_id).unwrap_or_default(),
            },
            instances: 0,
            errors: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::PatternMatrix;
    use proptest::prelude::*;

    fn layer(bits: &[Vec<bool>]) -> LayerPatterns {
        LayerPatterns::from_patterns(&PatternMatrix::from_bits(bits).unwrap())
    }

    /// The paper's Example 1: L = 2, n1 = n2 = 2, one instance x0 with
    /// A*_1(x0) = (1, [0, 0]), A*_2(x0) = (2, [1, 0]) and prediction y0. Then
    /// V = {(1, [0, 0]), (2, [1, 0]), y0} and E = {((1,[0,0]), (2,[1,0])), ((2,[1,0]), y0)}.
    #[test]
    fn reproduces_example_1_of_the_apd_paper() {
        let y0 = 3;
        let apd = build_apd(
            &[layer(&[vec![false, false]]), layer(&[vec![true, false]])],
            &[y0],
            &[y0],
            ApdOptions::default(),
        )
        .unwrap();
        let node = |kind| ApdNode {
            kind,
            instances: 1,
            errors: 0,
        };
        assert_eq!(
            apd.levels,
            vec![
                vec![node(ApdNodeKind::Pattern {
                    layer_idx: 0,
                    pattern_id: 0,
                    bits: "00".into()
                })],
                vec![node(ApdNodeKind::Pattern {
                    layer_idx: 1,
                    pattern_id: 0,
                    bits: "10".into()
                })],
                vec![node(ApdNodeKind::Label { label: y0 })],
            ]
        );
        let edge = |from_level| ApdEdge {
            from_level,
            from_node: 0,
            to_node: 0,
            instances: 1,
            errors: 0,
        };
        assert_eq!(apd.edges, vec![edge(0), edge(1)]);
        assert_eq!(apd.path(0), Some([0, 0, 0].as_slice()));
        assert_eq!(apd.instance_count, 1);
    }

    #[test]
    fn errors_and_counts_on_a_small_hand_made_case() {
        // Four instances; layer 0 patterns a,a,b,b; layer 1 c,d,d,d; predictions 1,1,2,1.
        let l0 = layer(&[vec![true], vec![true], vec![false], vec![false]]);
        let l1 = layer(&[
            vec![true, true],
            vec![false, true],
            vec![false, true],
            vec![false, true],
        ]);
        let apd = build_apd(
            &[l0, l1],
            &[1, 1, 2, 1],
            &[1, 0, 2, 2],
            ApdOptions::default(),
        )
        .unwrap();
        assert_eq!(apd.levels[2].len(), 2);
        // Errors: instance 1 (pred 1, true 0) and instance 3 (pred 1, true 2).
        let total_errors: u32 = apd.levels[2].iter().map(|n| n.errors).sum();
        assert_eq!(total_errors, 2);
        // Layer 1 node 0 is pattern "01" (3 instances: 1, 2, 3).
        assert_eq!(apd.levels[1][0].instances, 3);
        assert_eq!(apd.node_instances(1, 0), [1, 2, 3]);
        // Edge layer-1 "01" -> label 1 carries instances 1 and 3, both wrong.
        let edge = apd
            .edges
            .iter()
            .find(|e| e.from_level == 1 && e.from_node == 0 && e.to_node == 0)
            .unwrap();
        assert_eq!((edge.instances, edge.errors), (2, 2));
        assert_eq!(apd.edge_instances(1, 0, 0), [1, 3]);
    }

    #[test]
    fn mismatched_inputs_are_refused() {
        let l0 = layer(&[vec![true], vec![false]]);
        assert!(matches!(
            build_apd(std::slice::from_ref(&l0), &[1], &[1], ApdOptions::default()),
            Err(ApdError::InstanceCount { .. })
        ));
        assert!(build_apd(&[l0], &[1, 1], &[1], ApdOptions::default()).is_err());
        assert_eq!(
            build_apd(&[], &[], &[], ApdOptions::default()),
            Err(ApdError::NoLayers)
        );
    }

    fn arb_case() -> impl Strategy<Value = (Vec<Vec<Vec<bool>>>, Vec<u32>, Vec<u32>)> {
        (1usize..60, 1usize..4).prop_flat_map(|(n, depth)| {
            (
                prop::collection::vec(
                    prop::collection::vec(prop::collection::vec(any::<bool>(), 3), n),
                    depth,
                ),
                prop::collection::vec(0u32..4, n),
                prop::collection::vec(0u32..4, n),
            )
        })
    }

    proptest! {
        #[test]
        fn every_instance_follows_exactly_one_path_and_totals_hold(
            (layers_bits, predictions, labels) in arb_case(),
            max_nodes in prop::option::of(1usize..5),
        ) {
            let layers: Vec<LayerPatterns> = layers_bits.iter().map(|b| layer(b)).collect();
            let options = ApdOptions { max_nodes_per_layer: max_nodes };
            let apd = build_apd(&layers, &predictions, &labels, options).unwrap();
            let n = predictions.len() as u32;
            let wrong = predictions.iter().zip(&labels).filter(|(p, l)| p != l).count() as u32;
            for (level_idx, level) in apd.levels.iter().enumerate() {
                prop_assert_eq!(level.iter().map(|x| x.instances).sum::<u32>(), n);
                prop_assert_eq!(level.iter().map(|x| x.errors).sum::<u32>(), wrong);
                if let (Some(max), true) = (max_nodes, level_idx < layers.len()) {
                    prop_assert!(level.len() <= max.max(1));
                    let merged: u32 = level.iter().map(|x| match x.kind {
                        ApdNodeKind::Other { merged_patterns, .. } => merged_patterns,
                        _ => 1,
                    }).sum();
                    prop_assert_eq!(merged as usize, layers[level_idx].unique_count());
                }
            }
            for from_level in 0..apd.levels.len() - 1 {
                let edges = apd.edges.iter().filter(|e| e.from_level as usize == from_level);
                prop_assert_eq!(edges.map(|e| e.instances).sum::<u32>(), n);
            }
            for i in 0..predictions.len() {
                let path = apd.path(i).unwrap();
                prop_assert_eq!(path.len(), apd.levels.len());
                for (l, &node) in path.iter().enumerate() {
                    prop_assert!((node as usize) < apd.levels[l].len());
                }
            }
            for e in &apd.edges {
                prop_assert_eq!(
                    apd.edge_instances(e.from_level as usize, e.from_node, e.to_node).len() as u32,
                    e.instances
                );
                prop_assert!(e.errors <= e.instances);
            }
        }
    }
}
