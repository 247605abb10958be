//! Small diagrams and graphs with known layouts, for the tests of this crate and of the
//! dashboard (feature `fixtures`), so both test the same data.

use actiscope_protocol::apd::{Apd, ApdEdge, ApdNode, ApdNodeKind};
use actiscope_protocol::mapper::{MapperEdge, MapperGraph, MapperNode, MapperParams};

/// An APD node with `instances` and no errors.
pub fn apd_node(kind: ApdNodeKind, instances: u32) -> ApdNode {
    ApdNode {
        kind,
        instances,
        errors: 0,
    }
}

/// Two patterns (3 and 1 instances) flowing into one label; instance 3 takes the second
/// pattern, whose link is all errors.
pub fn two_into_one() -> Apd {
    let pattern = |l, p| ApdNodeKind::Pattern {
        layer_idx: l,
        pattern_id: p,
        bits: "1".into(),
    };
    Apd {
        levels: vec![
            vec![apd_node(pattern(0, 0), 3), apd_node(pattern(0, 1), 1)],
            vec![apd_node(ApdNodeKind::Label { label: 0 }, 4)],
        ],
        edges: vec![
            ApdEdge {
                from_level: 0,
                from_node: 0,
                to_node: 0,
                instances: 3,
                errors: 0,
            },
            ApdEdge {
                from_level: 0,
                from_node: 1,
                to_node: 0,
                instances: 1,
                errors: 1,
            },
        ],
        paths: vec![0, 0, 0, 0, 0, 0, 1, 0],
        instance_count: 4,
    }
}

/// A mapper node `id` with `members` (class counts 2 and 1, purity 0.5, errors 25%).
pub fn mapper_node(id: u32, parent: Option<u32>, members: Vec<u32>) -> MapperNode {
    MapperNode {
        id,
        parent,
        members,
        cover_element: 0,
        class_counts: vec![2, 1],
        purity: 0.5,
        error_rate: 0.25,
        mean_norm: 1.0,
        exemplars: vec![],
    }
}

/// `n` nodes of two members each, node `i` joined to node `i + 1`.
pub fn chain(n: u32) -> MapperGraph {
    MapperGraph {
        params: MapperParams::default(),
        instance_count: n * 2,
        nodes: (0..n)
            .map(|i| mapper_node(i, None, vec![2 * i, 2 * i + 1]))
            .collect(),
        edges: (1..n)
            .map(|i| MapperEdge {
                source: i - 1,
                target: i,
                jaccard: 0.5,
            })
            .collect(),
    }
}
