//! Where the mapper graph's nodes go: a force-directed layout that starts from the positions
//! the same node ids had in the previous drawing, so scrubbing epochs moves nodes instead of
//! reshuffling them, and the radius of a node by its members.

use std::collections::HashMap;

use actiscope_protocol::mapper::MapperGraph;

/// Drawing width in SVG units.
pub const WIDTH: f64 = 420.0;
/// Drawing height in SVG units.
pub const HEIGHT: f64 = 320.0;
/// Nodes stay this far from the edges.
pub const MARGIN: f64 = 16.0;

/// A deterministic point in `[0, 1)^2` for a node id (FNV-style mixing).
fn scatter(id: u32) -> (f64, f64) {
    let mut h = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD6E8_FEB8_6659_FD93;
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let x = (h & 0xFFFF) as f64 / 65536.0;
    let y = ((h >> 16) & 0xFFFF) as f64 / 65536.0;
    (x, y)
}

/// Positions of `graph`'s nodes (by position in `graph.nodes`), starting from `previous` (node
/// id → position of the last drawing): known ids keep their place, new nodes start next to
/// their parent, others at a fixed pseudo-random spot; then Fruchterman–Reingold rounds with a
/// pull to the centre (fewer when most positions are carried over).
pub fn layout(graph: &MapperGraph, previous: &HashMap<u32, (f64, f64)>) -> Vec<(f64, f64)> {
    let n = graph.nodes.len();
    let (w, h) = (WIDTH - 2.0 * MARGIN, HEIGHT - 2.0 * MARGIN);
    let mut carried = 0;
    let mut pos: Vec<(f64, f64)> = graph
        .nodes
        .iter()
        .map(|node| {
            let (jx, jy) = scatter(node.id);
            if let Some(&p) = previous.get(&node.id) {
                carried += 1;
                p
            } else if let Some(&(px, py)) = node.parent.and_then(|p| previous.get(&p)) {
                (px + (jx - 0.5) * 24.0, py + (jy - 0.5) * 24.0)
            } else {
                (MARGIN + jx * w, MARGIN + jy * h)
            }
        })
        .collect();
    if n < 2 {
        return pos
            .into_iter()
            .map(|_| (WIDTH / 2.0, HEIGHT / 2.0))
            .collect();
    }
    // Mostly carried over: a short, cool run that settles the newcomers without moving the
    // rest far. Otherwise a long run from a hot start.
    let rounds = if carried * 2 >= n { 40 } else { 400 };
    let k = (w * h / n as f64).sqrt() * 0.45;
    let mut temperature = if carried * 2 >= n { w / 100.0 } else { w / 8.0 };
    let cooling = temperature / rounds as f64;
    let mut shift = vec![(0.0f64, 0.0f64); n];
    for _ in 0..rounds {
        shift.fill((0.0, 0.0));
        for i in 0..n {
            for j in (i + 1)..n {
                let (Some(&a), Some(&b)) = (pos.get(i), pos.get(j)) else {
                    continue;
                };
                let (mut dx, mut dy) = (a.0 - b.0, a.1 - b.1);
                let mut d2 = dx * dx + dy * dy;
                if d2 < 1e-6 {
                    let (jx, jy) = scatter(u32::try_from(i * 31 + j).unwrap_or(0));
                    dx = jx - 0.5;
                    dy = jy - 0.5;
                    d2 = dx * dx + dy * dy + 1e-6;
                }
                let force = k * k / d2;
                if let Some(s) = shift.get_mut(i) {
                    s.0 += dx * force;
                    s.1 += dy * force;
                }
                if let Some(s) = shift.get_mut(j) {
                    s.0 -= dx * force;
                    s.1 -= dy * force;
                }
            }
        }
        for edge in &graph.edges {
            let (i, j) = (edge.source as usize, edge.target as usize);
            let (Some(&a), Some(&b)) = (pos.get(i), pos.get(j)) else {
                continue;
            };
            let (dx, dy) = (a.0 - b.0, a.1 - b.1);
            let d = (dx * dx + dy * dy).sqrt();
            let force = d * (0.5 + f64::from(edge.jaccard)) / k;
            if let Some(s) = shift.get_mut(i) {
                s.0 -= dx * force;
                s.1 -= dy * force;
            }
            if let Some(s) = shift.get_mut(j) {
                s.0 += dx * force;
                s.1 += dy * force;
            }
        }
        for (p, s) in pos.iter_mut().zip(&shift) {
            // A weak pull to the centre keeps separate components on screen.
            let sx = s.0 + (WIDTH / 2.0 - p.0) * 0.05;
            let sy = s.1 + (HEIGHT / 2.0 - p.1) * 0.05;
            let len = (sx * sx + sy * sy).sqrt().max(1e-9);
            let step = len.min(temperature);
            p.0 = (p.0 + sx / len * step).clamp(MARGIN, WIDTH - MARGIN);
            p.1 = (p.1 + sy / len * step).clamp(MARGIN, HEIGHT - MARGIN);
        }
        temperature = (temperature - cooling).max(0.2);
    }
    pos
}

/// Radius of a node with `size` members when the largest node has `max_size`.
pub fn radius(size: usize, max_size: usize) -> f64 {
    3.0 + 9.0 * (size as f64 / max_size.max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{chain, mapper_node as node};
    use actiscope_protocol::mapper::MapperEdge;

    #[test]
    fn layout_stays_in_the_box_and_keeps_carried_nodes_near() {
        let graph = chain(8);
        let first = layout(&graph, &HashMap::new());
        assert_eq!(first.len(), 8);
        for &(x, y) in &first {
            assert!((MARGIN..=WIDTH - MARGIN).contains(&x));
            assert!((MARGIN..=HEIGHT - MARGIN).contains(&y));
        }
        // Neighbours along the chain end up closer than the chain's ends.
        let d = |a: (f64, f64), b: (f64, f64)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
        assert!(d(first[0], first[1]) < d(first[0], first[7]));
        // Drawn again from its own positions, the layout barely moves.
        let previous: HashMap<u32, (f64, f64)> = graph
            .nodes
            .iter()
            .map(|n| n.id)
            .zip(first.iter().copied())
            .collect();
        let second = layout(&graph, &previous);
        let moved: f64 = first
            .iter()
            .zip(&second)
            .map(|(a, b)| d(*a, *b))
            .sum::<f64>()
            / 8.0;
        assert!(moved < 30.0, "mean move {moved}");
        // A new node with a parent starts next to it.
        let mut grown = graph.clone();
        grown.nodes.push(node(100, Some(3), vec![7, 99]));
        grown.edges.push(MapperEdge {
            source: 3,
            target: 8,
            jaccard: 0.3,
        });
        let third = layout(&grown, &previous);
        let nearest = (0..8)
            .min_by(|&a, &b| d(third[8], third[a]).total_cmp(&d(third[8], third[b])))
            .unwrap();
        assert!(
            (2..=4).contains(&nearest),
            "the newcomer lands by node {nearest}, not by its parent 3"
        );
    }
}
