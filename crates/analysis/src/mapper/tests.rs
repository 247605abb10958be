//! End-to-end tests of the mapper: shapes with a known topology, hand-computed graphs,
//! identities across epochs, errors, and properties over random inputs.

use std::collections::BTreeSet;

use actiscope_protocol::mapper::{
    MapperClusterer, MapperGraph, MapperLens, MapperNode, MapperParams,
};
use proptest::prelude::*;

use super::cluster::dbscan_in;
use super::distance::PointSet;
use super::tree::Tree;
use super::*;
use crate::rng::{SplitMix64, relu_blobs};

/// Deterministic uniform values in `[0, 1)` (the crate's SplitMix64).
fn uniform(seed: u64, count: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..count).map(|_| rng.next_unit_f32()).collect()
}

fn params(
    lens: MapperLens,
    intervals: u32,
    overlap_pct: f32,
    clusterer: MapperClusterer,
) -> MapperParams {
    MapperParams {
        layer_idx: 0,
        lens,
        intervals,
        overlap_pct,
        clusterer,
        min_edge_weight: 0.0,
    }
}

fn dbscan_params(eps: f32, min_samples: u32) -> MapperClusterer {
    MapperClusterer::Dbscan {
        eps: Some(eps),
        min_samples,
    }
}

fn run(m: &Matrix, p: &MapperParams) -> Result<MapperGraph, MapperError> {
    let zeros = vec![0u32; m.rows()];
    mapper(
        &MapperInput {
            activations: m,
            labels: &zeros,
            predictions: &zeros,
            predicted_scores: None,
            class_count: 1,
        },
        p,
    )
}

fn degrees(graph: &MapperGraph) -> Vec<usize> {
    let mut degree = vec![0; graph.nodes.len()];
    for e in &graph.edges {
        degree[e.source as usize] += 1;
        degree[e.target as usize] += 1;
    }
    degree
}

fn components(graph: &MapperGraph) -> usize {
    let mut parent: Vec<usize> = (0..graph.nodes.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for e in &graph.edges {
        let (a, b) = (
            find(&mut parent, e.source as usize),
            find(&mut parent, e.target as usize),
        );
        parent[a.max(b)] = a.min(b);
    }
    (0..graph.nodes.len())
        .filter(|&i| find(&mut parent, i) == i)
        .count()
}

/// An ellipse (semi-axes 2 and 1, so the first principal component is well defined)
/// embedded in R^5 by an orthonormal 2-frame and shifted off the origin.
fn ellipse_in_r5(points: usize) -> Matrix {
    let u = [0.5f32, 0.5, 0.5, 0.5, 0.0];
    let v = [0.5f32, -0.5, 0.5, -0.5, 0.0];
    let rows: Vec<Vec<f32>> = (0..points)
        .map(|i| {
            let t = std::f32::consts::TAU * i as f32 / points as f32;
            let (a, b) = (2.0 * t.cos(), t.sin());
            (0..5).map(|c| 3.0 + a * u[c] + b * v[c]).collect()
        })
        .collect();
    Matrix::from_rows(&rows).unwrap()
}

fn two_blobs(per_blob: usize, seed: u64) -> Matrix {
    let noise = uniform(seed, per_blob * 2 * 3);
    let rows: Vec<Vec<f32>> = (0..per_blob * 2)
        .map(|i| {
            let centre = if i % 2 == 0 { 0.0 } else { 10.0 };
            (0..3).map(|c| centre + noise[i * 3 + c] * 0.6).collect()
        })
        .collect();
    Matrix::from_rows(&rows).unwrap()
}

#[test]
fn circle_gives_a_cycle() {
    let m = ellipse_in_r5(200);
    let graph = run(
        &m,
        &params(MapperLens::Pca1, 8, 30.0, dbscan_params(0.15, 2)),
    )
    .unwrap();
    // Two end elements hold one arc each; the six inner ones two arcs each.
    assert_eq!(graph.nodes.len(), 14);
    assert_eq!(graph.edges.len(), graph.nodes.len());
    assert!(
        degrees(&graph).iter().all(|&d| d == 2),
        "{:?}",
        degrees(&graph)
    );
    assert_eq!(components(&graph), 1);
    // Every point is in some node (no noise at this density).
    let covered: BTreeSet<u32> = graph.nodes.iter().flat_map(|n| n.members.clone()).collect();
    assert_eq!(covered.len(), 200);
    // Single linkage finds the same cycle.
    let graph = run(
        &m,
        &params(
            MapperLens::Pca1,
            8,
            30.0,
            MapperClusterer::SingleLinkage { bins: 10 },
        ),
    )
    .unwrap();
    assert_eq!(graph.nodes.len(), 14);
    assert!(degrees(&graph).iter().all(|&d| d == 2));
    assert_eq!(components(&graph), 1);
}

#[test]
fn two_blobs_give_two_components() {
    let m = two_blobs(100, 7);
    for clusterer in [
        dbscan_params(1.5, 1),
        dbscan_params(1.0, 4),
        MapperClusterer::Dbscan {
            eps: None,
            min_samples: 3,
        },
        MapperClusterer::SingleLinkage { bins: 10 },
    ] {
        for lens in [MapperLens::Pca1, MapperLens::Pca2, MapperLens::L2Norm] {
            let graph = run(&m, &params(lens, 3, 50.0, clusterer)).unwrap();
            assert!(!graph.nodes.is_empty());
            if matches!(clusterer, MapperClusterer::Dbscan { eps: Some(_), .. }) {
                assert_eq!(components(&graph), 2, "{clusterer:?} {lens:?}");
            }
            // No node mixes the blobs.
            for node in &graph.nodes {
                let parity: BTreeSet<u32> = node.members.iter().map(|m| m % 2).collect();
                assert_eq!(parity.len(), 1);
            }
        }
    }
}

#[test]
fn hand_computed_graph() {
    // 1-D activations 0,1,2,3,6,7,8,9,10; lens = L2 norm = the value. Two intervals with 50%
    // overlap over [0, 10]: [-2.5, 7.5] and [2.5, 12.5]. DBSCAN eps 1, min_samples 1:
    // element 0 = {0,1,2,3 | 6,7} -> clusters {0,1,2,3}, {6,7} (positions 0-3, 4-5);
    // element 1 = {3 | 6,7,8,9,10} -> clusters {6..10} (positions 4-8), {3} (position 3).
    let values = [0.0f32, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0];
    let m = Matrix::new(values.len(), 1, values.to_vec()).unwrap();
    let labels = [0, 0, 0, 1, 1, 1, 1, 1, 1];
    let predictions = [0, 0, 1, 1, 1, 1, 0, 1, 1];
    let mut p = params(MapperLens::L2Norm, 2, 50.0, dbscan_params(1.0, 1));
    let graph = mapper(
        &MapperInput {
            activations: &m,
            labels: &labels,
            predictions: &predictions,
            predicted_scores: None,
            class_count: 2,
        },
        &p,
    )
    .unwrap();
    let members: Vec<Vec<u32>> = graph.nodes.iter().map(|n| n.members.clone()).collect();
    assert_eq!(
        members,
        vec![vec![0, 1, 2, 3], vec![4, 5], vec![4, 5, 6, 7, 8], vec![3]]
    );
    let elements: Vec<u32> = graph.nodes.iter().map(|n| n.cover_element).collect();
    assert_eq!(elements, vec![0, 0, 1, 1]);
    let ids: Vec<u32> = graph.nodes.iter().map(|n| n.id).collect();
    assert_eq!(ids, vec![0, 1, 2, 3]);
    assert!(graph.nodes.iter().all(|n| n.parent.is_none()));
    let edges: Vec<(u32, u32, f32)> = graph
        .edges
        .iter()
        .map(|e| (e.source, e.target, e.jaccard))
        .collect();
    assert_eq!(edges, vec![(0, 3, 0.25), (1, 2, 0.4)]);
    assert_eq!(graph.instance_count, 9);
    // Node 0: labels 0,0,0,1; predictions 0,0,1,1; wrong: position 2.
    let n0 = &graph.nodes[0];
    assert_eq!(n0.class_counts, vec![3, 1]);
    assert_eq!(n0.purity, 0.5);
    assert_eq!(n0.error_rate, 0.25);
    assert_eq!(n0.mean_norm, 1.5);
    // Centroid 1.5: positions 1 and 2 tie at 0.5 (lower position first), then 0 and 3.
    assert_eq!(n0.exemplars, vec![1, 2, 0]);
    // Node 2 ({6..10}): predictions 1,1,0,1,1 -> purity 0.8, one error (position 6).
    assert_eq!(graph.nodes[2].purity, 0.8);
    assert_eq!(graph.nodes[2].error_rate, 0.2);
    assert_eq!(graph.nodes[2].exemplars, vec![6, 5, 7]);

    // A minimum weight of 0.3 drops the first edge.
    p.min_edge_weight = 0.3;
    let graph = run(&m, &p).unwrap();
    assert_eq!(graph.edges.len(), 1);
    assert_eq!((graph.edges[0].source, graph.edges[0].target), (1, 2));
}

#[test]
fn noise_is_not_a_node_and_small_elements_are_skipped() {
    // Same data, min_samples 3: element 0's {6,7} and element 1's {3} are noise.
    let values = [0.0f32, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0];
    let m = Matrix::new(values.len(), 1, values.to_vec()).unwrap();
    let graph = run(
        &m,
        &params(MapperLens::L2Norm, 2, 50.0, dbscan_params(1.0, 3)),
    )
    .unwrap();
    let members: Vec<Vec<u32>> = graph.nodes.iter().map(|n| n.members.clone()).collect();
    assert_eq!(members, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7, 8]]);
    assert!(graph.edges.is_empty());
    // An element smaller than min_samples produces nothing.
    let graph = run(
        &m,
        &params(MapperLens::L2Norm, 2, 50.0, dbscan_params(100.0, 8)),
    )
    .unwrap();
    assert!(graph.nodes.is_empty());
}

#[test]
fn degenerate_lens_is_one_element() {
    // All L2 norms are 5: a single cover element.
    let m = Matrix::from_rows(&[[3.0, 4.0], [4.0, 3.0], [0.0, 5.0], [5.0, 0.0]]).unwrap();
    let graph = run(
        &m,
        &params(MapperLens::L2Norm, 10, 30.0, dbscan_params(1.5, 1)),
    )
    .unwrap();
    // Norms all 5: one element; (3,4)-(4,3) at sqrt(2) <= 1.5, the others apart.
    assert!(graph.nodes.iter().all(|n| n.cover_element == 0));
    let members: Vec<Vec<u32>> = graph.nodes.iter().map(|n| n.members.clone()).collect();
    assert_eq!(members, vec![vec![0, 1], vec![2], vec![3]]);
    // Empty input: empty graph.
    let empty = Matrix::new(0, 3, vec![]).unwrap();
    let graph = run(&empty, &MapperParams::default()).unwrap();
    assert!(graph.nodes.is_empty() && graph.edges.is_empty());
}

#[test]
fn translation_keeps_the_graph_and_the_ids() {
    let m = ellipse_in_r5(200);
    let p = params(MapperLens::Pca1, 8, 30.0, dbscan_params(0.15, 2));
    let mut first = run(&m, &p).unwrap();
    // Give the first epoch's nodes arbitrary ids, as if they had been carried for a while.
    for (i, node) in first.nodes.iter_mut().enumerate() {
        node.id = 100 + 3 * i as u32;
    }
    let shifted = Matrix::new(
        m.rows(),
        m.cols(),
        m.as_slice().iter().map(|x| x + 0.01).collect(),
    )
    .unwrap();
    let mut second = run(&shifted, &p).unwrap();
    let before: Vec<Vec<u32>> = first.nodes.iter().map(|n| n.members.clone()).collect();
    let after: Vec<Vec<u32>> = second.nodes.iter().map(|n| n.members.clone()).collect();
    assert_eq!(before, after);
    // Present the nodes in another order: ids follow the members, not the positions.
    second.nodes.reverse();
    carry_identities(Some(&first), &mut second);
    for node in &second.nodes {
        let twin = first
            .nodes
            .iter()
            .find(|n| n.members == node.members)
            .unwrap();
        assert_eq!(node.id, twin.id);
        assert_eq!(node.parent, Some(twin.id));
    }
}

fn node(members: Vec<u32>, id: u32) -> MapperNode {
    MapperNode {
        id,
        parent: None,
        members,
        cover_element: 0,
        class_counts: vec![],
        purity: 1.0,
        error_rate: 0.0,
        mean_norm: 0.0,
        exemplars: vec![],
    }
}

fn graph_of(nodes: Vec<MapperNode>) -> MapperGraph {
    MapperGraph {
        params: MapperParams::default(),
        instance_count: 40,
        nodes,
        edges: vec![],
    }
}

#[test]
fn identities_without_previous() {
    let mut g = graph_of(vec![node(vec![0], 9), node(vec![1], 9)]);
    g.nodes[1].parent = Some(4);
    carry_identities(None, &mut g);
    assert_eq!(g.nodes.iter().map(|n| n.id).collect::<Vec<_>>(), vec![0, 1]);
    assert!(g.nodes.iter().all(|n| n.parent.is_none()));
}

#[test]
fn split_node_keeps_one_id_and_parents_the_other() {
    let previous = graph_of(vec![
        node((0..10).collect(), 5),
        node((10..20).collect(), 2),
        node((30..35).collect(), 7),
    ]);
    let mut next = graph_of(vec![
        node((10..20).collect(), 0),
        node((0..5).collect(), 0),
        node((5..10).collect(), 0),
        node((20..25).collect(), 0),
        node((33..38).collect(), 0),
    ]);
    carry_identities(Some(&previous), &mut next);
    let got: Vec<(u32, Option<u32>)> = next.nodes.iter().map(|n| (n.id, n.parent)).collect();
    assert_eq!(
        got,
        vec![
            (2, Some(2)), // unchanged
            (5, Some(5)), // first half of the split: ties go to the earlier node
            (8, Some(5)), // second half: fresh id (max previous 7 + 1), parent 5
            (9, None),    // new, overlaps nothing
            (7, Some(7)), // partial overlap still matches
        ]
    );
}

#[test]
fn identity_matching_prefers_the_larger_overlap() {
    // Previous {0..10} id 1. Next {0..3} (J 0.3) and {0..8} (J 0.8): the larger overlap
    // inherits even though it comes second; the other is its child.
    let previous = graph_of(vec![node((0..10).collect(), 1)]);
    let mut next = graph_of(vec![node((0..3).collect(), 0), node((0..8).collect(), 0)]);
    carry_identities(Some(&previous), &mut next);
    let got: Vec<(u32, Option<u32>)> = next.nodes.iter().map(|n| (n.id, n.parent)).collect();
    assert_eq!(got, vec![(2, Some(1)), (1, Some(1))]);
}

#[test]
fn errors() {
    let m = Matrix::from_rows(&[[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]]).unwrap();
    let ok = [0u32, 1, 0];
    let base = MapperParams::default();
    let call = |labels: &[u32], predictions: &[u32], scores: Option<&[f32]>, p: MapperParams| {
        mapper(
            &MapperInput {
                activations: &m,
                labels,
                predictions,
                predicted_scores: scores,
                class_count: 2,
            },
            &p,
        )
    };
    assert!(call(&ok, &ok, None, base).is_ok());
    assert_eq!(
        call(&ok[..2], &ok, None, base),
        Err(MapperError::Length {
            what: "labels",
            expected: 3,
            found: 2
        })
    );
    assert!(matches!(
        call(&ok, &[0, 1], None, base),
        Err(MapperError::Length {
            what: "predictions",
            ..
        })
    ));
    assert_eq!(
        call(&[0, 2, 0], &ok, None, base),
        Err(MapperError::ClassOutOfRange {
            what: "label",
            instance: 1,
            class: 2,
            class_count: 2
        })
    );
    assert!(matches!(
        call(&ok, &[0, 0, 5], None, base),
        Err(MapperError::ClassOutOfRange {
            what: "prediction",
            ..
        })
    ));
    let with = |f: &dyn Fn(&mut MapperParams)| {
        let mut p = base;
        f(&mut p);
        p
    };
    assert_eq!(
        call(&ok, &ok, None, with(&|p| p.intervals = 0)),
        Err(MapperError::Intervals(0))
    );
    assert_eq!(
        call(&ok, &ok, None, with(&|p| p.intervals = MAX_INTERVALS + 1)),
        Err(MapperError::Intervals(MAX_INTERVALS + 1))
    );
    for overlap in [100.0, -1.0, f32::NAN, 250.0] {
        assert!(matches!(
            call(&ok, &ok, None, with(&|p| p.overlap_pct = overlap)),
            Err(MapperError::Overlap(_))
        ));
    }
    assert!(call(&ok, &ok, None, with(&|p| p.overlap_pct = 99.9)).is_ok());
    assert_eq!(
        call(
            &ok,
            &ok,
            None,
            with(&|p| p.clusterer = dbscan_params(1.0, 0))
        ),
        Err(MapperError::MinSamples)
    );
    for eps in [-0.5, f32::INFINITY, f32::NAN] {
        assert!(matches!(
            call(
                &ok,
                &ok,
                None,
                with(&|p| p.clusterer = dbscan_params(eps, 2))
            ),
            Err(MapperError::Eps(_))
        ));
    }
    assert_eq!(
        call(
            &ok,
            &ok,
            None,
            with(&|p| p.clusterer = MapperClusterer::SingleLinkage { bins: 0 })
        ),
        Err(MapperError::Bins)
    );
    for weight in [1.5, -0.1, f32::NAN] {
        assert!(matches!(
            call(&ok, &ok, None, with(&|p| p.min_edge_weight = weight)),
            Err(MapperError::EdgeWeight(_))
        ));
    }
    assert_eq!(
        call(
            &ok,
            &ok,
            None,
            with(&|p| p.lens = MapperLens::KnnDistance { k: 3 })
        ),
        Err(MapperError::NeighbourRank { k: 3, instances: 3 })
    );
    assert!(
        call(
            &ok,
            &ok,
            None,
            with(&|p| p.lens = MapperLens::KnnDistance { k: 2 })
        )
        .is_ok()
    );
    assert_eq!(
        call(
            &ok,
            &ok,
            None,
            with(&|p| p.lens = MapperLens::PredictedScore)
        ),
        Err(MapperError::MissingScores)
    );
    assert!(
        call(
            &ok,
            &ok,
            Some(&[0.5, 0.9, 0.7]),
            with(&|p| p.lens = MapperLens::PredictedScore)
        )
        .is_ok()
    );
    let nan = Matrix::from_rows(&[[1.0], [f32::NAN], [2.0]]).unwrap();
    assert_eq!(
        mapper(
            &MapperInput {
                activations: &nan,
                labels: &ok,
                predictions: &ok,
                predicted_scores: None,
                class_count: 2
            },
            &base
        ),
        Err(MapperError::NonFinite)
    );
    // Errors read as sentences.
    assert!(MapperError::Intervals(0).to_string().contains("intervals"));
}

/// scikit-learn's DBSCAN, literally (neighbourhoods, then a depth-first scan in index order),
/// on exact `f64` distances: the reference for the blocked implementation.
fn reference_dbscan(rows: &[Vec<f32>], eps: f32, min_samples: usize) -> Vec<Option<usize>> {
    let n = rows.len();
    let eps = f64::from(eps);
    let neighbours: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| {
                    let d2: f64 = rows[i]
                        .iter()
                        .zip(&rows[j])
                        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                        .sum();
                    d2 <= eps * eps
                })
                .collect()
        })
        .collect();
    let core: Vec<bool> = neighbours
        .iter()
        .map(|nb| nb.len() >= min_samples)
        .collect();
    let mut labels: Vec<Option<usize>> = vec![None; n];
    let mut label = 0;
    for start in 0..n {
        if labels[start].is_some() || !core[start] {
            continue;
        }
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if labels[i].is_some() {
                continue;
            }
            labels[i] = Some(label);
            if core[i] {
                stack.extend(neighbours[i].iter().filter(|&&j| labels[j].is_none()));
            }
        }
        label += 1;
    }
    labels
}

#[test]
fn dbscan_matches_the_reference_on_relu_blobs() {
    // Enough points for many tree leaves, so skipped, partial and full blocks all occur. Six
    // ReLU'd Gaussian blobs of spread 0.4: across the radii below the reference finds six
    // clusters with a little noise, two blobs merged, dozens of fragments with much noise,
    // and everything in one cluster.
    let (n, dim) = (1500, 8);
    let data = relu_blobs(n, dim, 6, 0.4, 11);
    let rows: Vec<Vec<f32>> = data.chunks(dim).map(<[f32]>::to_vec).collect();
    let points = PointSet::from_rows(data, dim, n);
    for (eps, min_samples, leaf) in [
        (0.8f32, 5usize, 128usize),
        (1.2, 10, 128),
        (0.5, 2, 128),
        (2.0, 30, 128),
        (0.8, 5, 7),
        (1.2, 10, 16),
        (2.0, 30, 32),
    ] {
        let clusters = dbscan_in(
            &points,
            &Tree::with_leaf_size(&points, leaf),
            eps,
            min_samples,
        );
        let mut labels: Vec<Option<usize>> = vec![None; n];
        for (c, members) in clusters.iter().enumerate() {
            for &m in members {
                labels[m as usize] = Some(c);
            }
        }
        assert_eq!(
            labels,
            reference_dbscan(&rows, eps, min_samples),
            "eps {eps} min {min_samples}"
        );
    }
}

fn node_invariants(graph: &MapperGraph, lens: &LensValues, p: &MapperParams, n: usize) {
    let dims = lens.dims();
    let overlap = f64::from(p.overlap_pct) / 100.0;
    let spans: Vec<f64> = (0..dims)
        .map(|d| {
            let (lo, hi) = lens
                .column(d)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
            (hi - lo) / (f64::from(p.intervals) * (1.0 - overlap))
        })
        .collect();
    for (i, node) in graph.nodes.iter().enumerate() {
        assert!(!node.members.is_empty());
        assert!(node.members.windows(2).all(|w| w[0] < w[1]));
        assert!(node.members.iter().all(|&m| (m as usize) < n));
        assert_eq!(node.id, i as u32);
        assert_eq!(
            node.class_counts.iter().sum::<u32>() as usize,
            node.members.len()
        );
        assert!((0.0..=1.0).contains(&node.purity) && node.purity > 0.0);
        assert!((0.0..=1.0).contains(&node.error_rate));
        assert!(node.exemplars.len() == node.members.len().min(3));
        assert!(node.exemplars.iter().all(|e| node.members.contains(e)));
        // Members lie within one cover element: their lens values span at most one
        // interval length per dimension.
        for (d, span) in spans.iter().enumerate() {
            let values: Vec<f64> = node
                .members
                .iter()
                .map(|&m| lens.get(m as usize).unwrap()[d])
                .collect();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert!(
                hi - lo <= span * (1.0 + 1e-9) + 1e-12,
                "{hi} - {lo} > {span}"
            );
        }
        let limit = if dims == 2 {
            p.intervals * p.intervals
        } else {
            p.intervals
        };
        assert!(node.cover_element < limit);
    }
    // Order: by element, then size descending, then first member.
    for w in graph.nodes.windows(2) {
        let key = |n: &MapperNode| {
            (
                n.cover_element,
                std::cmp::Reverse(n.members.len()),
                n.members[0],
            )
        };
        assert!(key(&w[0]) < key(&w[1]));
    }
    // Nodes of one element are disjoint.
    for a in 0..graph.nodes.len() {
        for b in a + 1..graph.nodes.len() {
            let (na, nb) = (&graph.nodes[a], &graph.nodes[b]);
            let common = na.members.iter().filter(|m| nb.members.contains(m)).count();
            if na.cover_element == nb.cover_element {
                assert_eq!(common, 0);
            }
            // Every pair sharing members has exactly the edge with the right weight.
            let edge = graph
                .edges
                .iter()
                .find(|e| (e.source, e.target) == (a as u32, b as u32));
            if common == 0 {
                assert!(edge.is_none());
            } else {
                let union = na.members.len() + nb.members.len() - common;
                let jaccard = (common as f64 / union as f64) as f32;
                assert_eq!(edge.map(|e| e.jaccard), Some(jaccard));
                assert!(jaccard > 0.0 && jaccard <= 1.0);
            }
        }
    }
    assert!(
        graph
            .edges
            .windows(2)
            .all(|w| (w[0].source, w[0].target) < (w[1].source, w[1].target))
    );
    assert!(graph.edges.iter().all(|e| e.source < e.target));
}

fn arb_params() -> impl Strategy<Value = MapperParams> {
    let lens = prop_oneof![
        Just(MapperLens::Pca1),
        Just(MapperLens::Pca2),
        Just(MapperLens::L2Norm),
        (1u32..4).prop_map(|k| MapperLens::KnnDistance { k }),
    ];
    let clusterer = prop_oneof![
        (0.0f32..3.0, 1u32..5).prop_map(|(eps, m)| dbscan_params(eps, m)),
        (1u32..5).prop_map(|m| MapperClusterer::Dbscan {
            eps: None,
            min_samples: m
        }),
        (1u32..12).prop_map(|bins| MapperClusterer::SingleLinkage { bins }),
    ];
    (lens, 1u32..7, 0.0f32..70.0, clusterer).prop_map(|(lens, intervals, overlap, clusterer)| {
        params(lens, intervals, overlap, clusterer)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn graph_invariants(
        n in 5usize..60,
        dim in 1usize..5,
        seed in any::<u64>(),
        p in arb_params(),
    ) {
        // Quantised values so duplicates and ties occur.
        let data: Vec<f32> = uniform(seed, n * dim).iter().map(|v| (v * 8.0).floor() * 0.5).collect();
        let m = Matrix::new(n, dim, data).unwrap();
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
        let predictions: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 3).collect();
        let input = MapperInput {
            activations: &m,
            labels: &labels,
            predictions: &predictions,
            predicted_scores: None,
            class_count: 3,
        };
        let graph = mapper(&input, &p).unwrap();
        let lens = lens_values(&input, p.lens).unwrap();
        node_invariants(&graph, &lens, &p, n);
        // Deterministic.
        prop_assert_eq!(&mapper(&input, &p).unwrap(), &graph);
        // Partitioning clusterers leave nobody out.
        let covers_all = match p.clusterer {
            MapperClusterer::SingleLinkage { .. } => true,
            MapperClusterer::Dbscan { min_samples, .. } => min_samples == 1,
        };
        if covers_all {
            let covered: BTreeSet<u32> = graph.nodes.iter().flat_map(|n| n.members.clone()).collect();
            prop_assert_eq!(covered.len(), n);
        }
        // Carrying a graph's ids onto itself keeps them.
        let mut again = graph.clone();
        carry_identities(Some(&graph), &mut again);
        for (a, b) in again.nodes.iter().zip(&graph.nodes) {
            prop_assert_eq!(a.id, b.id);
            prop_assert_eq!(a.parent, Some(b.id));
        }
    }

    #[test]
    fn dbscan_matches_the_reference(
        n in 1usize..400,
        dim in 1usize..6,
        seed in any::<u64>(),
        eps in 0.0f32..2.0,
        min_samples in 1usize..6,
        offset in -50.0f32..50.0,
        leaf in prop_oneof![Just(2usize), Just(5), Just(16), Just(128)],
    ) {
        // Quantised values (ties, duplicates, exact-eps pairs) around a few centres, so the
        // projection tree has leaves to prune.
        let noise = uniform(seed, n * dim);
        let data: Vec<f32> = noise
            .iter()
            .enumerate()
            .map(|(k, v)| offset + ((k / dim) % 3) as f32 * 6.0 + (v * 16.0).floor() * 0.25)
            .collect();
        let rows: Vec<Vec<f32>> = data.chunks(dim).map(<[f32]>::to_vec).collect();
        let points = PointSet::from_rows(data.clone(), dim, n);
        let tree = Tree::with_leaf_size(&points, leaf);
        let clusters = dbscan_in(&points, &tree, eps, min_samples);
        let mut labels: Vec<Option<usize>> = vec![None; n];
        for (c, members) in clusters.iter().enumerate() {
            for &m in members {
                prop_assert!(labels[m as usize].is_none());
                labels[m as usize] = Some(c);
            }
        }
        prop_assert_eq!(labels, reference_dbscan(&rows, eps, min_samples));
    }
}
