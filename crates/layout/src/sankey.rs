//! The geometry of the APD Sankey diagram: where each node and link band lies in the drawing,
//! which of them a point falls on ([`hit_test`], [`anchor`]), and the plain-text facts the
//! view shows about them (descriptions, purity, the strongest flows). Pure Rust on the
//! protocol's [`Apd`], with no browser or Leptos types, so all of it is tested on the host.

use actiscope_protocol::apd::{Apd, ApdNodeKind};

/// Drawing area, in SVG user units.
pub const WIDTH: f64 = 960.0;
/// Drawing area height.
pub const HEIGHT: f64 = 520.0;
/// Width of a node's rectangle.
pub const NODE_WIDTH: f64 = 14.0;
/// Left edge of the first column.
pub const MARGIN_X: f64 = 60.0;
const MARGIN_Y: f64 = 24.0;

/// A positioned node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBox {
    /// Level (column).
    pub level: usize,
    /// Index in the level.
    pub node: usize,
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Height.
    pub height: f64,
}

/// A positioned link: a band from one node's right side to the next level's node. Its centre
/// line is the cubic Bezier `(x0, y0) (mid, y0) (mid, y1) (x1, y1)` with `mid` halfway
/// between `x0` and `x1`; the band spans `width / 2` above and below it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkBand {
    /// Index into `apd.edges`.
    pub edge: usize,
    /// Left end of the centre line.
    pub x0: f64,
    /// Height of the centre line at the left end.
    pub y0: f64,
    /// Right end of the centre line.
    pub x1: f64,
    /// Height of the centre line at the right end.
    pub y1: f64,
    /// Band thickness.
    pub width: f64,
}

impl LinkBand {
    /// The centre line at parameter `t` in `[0, 1]`.
    pub fn at(&self, t: f64) -> (f64, f64) {
        let mid = (self.x0 + self.x1) / 2.0;
        let u = 1.0 - t;
        let x = self.x0 * u * u * u + 3.0 * mid * u * t + self.x1 * t * t * t;
        let y = self.y0 + (self.y1 - self.y0) * t * t * (3.0 - 2.0 * t);
        (x, y)
    }

    /// Height of the centre line at `x`, or `None` left or right of the band. The centre
    /// line's `x` grows with `t`, so bisection finds the `t` for `x`.
    pub fn centre_at(&self, x: f64) -> Option<f64> {
        if !(self.x0..=self.x1).contains(&x) {
            return None;
        }
        let (mut low, mut high) = (0.0f64, 1.0f64);
        for _ in 0..40 {
            let t = (low + high) / 2.0;
            if self.at(t).0 < x {
                low = t;
            } else {
                high = t;
            }
        }
        Some(self.at((low + high) / 2.0).1)
    }

    /// Whether `(x, y)` falls on the band; thin bands are given 1 unit either side so they
    /// can be pointed at.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let half = (self.width / 2.0).max(1.0);
        // The centre line stays between its end heights: most bands are ruled out here.
        if y < self.y0.min(self.y1) - half || y > self.y0.max(self.y1) + half {
            return false;
        }
        self.centre_at(x)
            .is_some_and(|centre| (y - centre).abs() <= half)
    }
}

impl NodeBox {
    /// Whether `(x, y)` falls on the node; short nodes are given 1 unit above and below.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let pad = ((2.0 - self.height) / 2.0).max(0.0);
        (self.x..=self.x + NODE_WIDTH).contains(&x)
            && (self.y - pad..=self.y + self.height + pad).contains(&y)
    }
}

/// Node and link geometry of an APD.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Nodes, level by level.
    pub nodes: Vec<NodeBox>,
    /// Links, in `apd.edges` order.
    pub links: Vec<LinkBand>,
}

/// Lays the APD out in [`WIDTH`] x [`HEIGHT`]: one scale (units per instance) for every
/// column, so band widths agree at both ends.
pub fn layout(apd: &Apd) -> Layout {
    let levels = apd.levels.len();
    let total = f64::from(apd.instance_count.max(1));
    let inner_height = HEIGHT - 2.0 * MARGIN_Y;
    let gap_for = |n: usize| {
        if n > 1 {
            (inner_height * 0.25 / (n - 1) as f64).min(6.0)
        } else {
            0.0
        }
    };
    let scale = apd
        .levels
        .iter()
        .map(|level| {
            (inner_height - gap_for(level.len()) * (level.len().saturating_sub(1)) as f64) / total
        })
        .fold(f64::INFINITY, f64::min)
        .max(0.0);
    let column_x = |level: usize| {
        if levels <= 1 {
            MARGIN_X
        } else {
            MARGIN_X + level as f64 * (WIDTH - 2.0 * MARGIN_X - NODE_WIDTH) / (levels - 1) as f64
        }
    };
    let mut nodes = Vec::new();
    let mut node_index: Vec<Vec<usize>> = Vec::with_capacity(levels);
    for (level_idx, level) in apd.levels.iter().enumerate() {
        let gap = gap_for(level.len());
        let used: f64 = level
            .iter()
            .map(|n| f64::from(n.instances) * scale)
            .sum::<f64>()
            + gap * level.len().saturating_sub(1) as f64;
        let mut y = MARGIN_Y + (inner_height - used).max(0.0) / 2.0;
        let mut indices = Vec::with_capacity(level.len());
        for (node_idx, node) in level.iter().enumerate() {
            let height = (f64::from(node.instances) * scale).max(0.5);
            indices.push(nodes.len());
            nodes.push(NodeBox {
                level: level_idx,
                node: node_idx,
                x: column_x(level_idx),
                y,
                height,
            });
            y += f64::from(node.instances) * scale + gap;
        }
        node_index.push(indices);
    }
    // Stack the bands on each node: outgoing ordered by target position, incoming by source.
    let mut out_offset = vec![0.0f64; nodes.len()];
    let mut in_offset = vec![0.0f64; nodes.len()];
    let lookup = |level: u32, node: u32| {
        node_index
            .get(level as usize)
            .and_then(|l| l.get(node as usize))
            .copied()
    };
    let mut order: Vec<usize> = (0..apd.edges.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| {
            apd.edges
                .get(i)
                .map(|e| (e.from_level, e.from_node, e.to_node))
                .unwrap_or_default()
        };
        key(a).cmp(&key(b))
    });
    let mut links: Vec<Option<LinkBand>> = vec![None; apd.edges.len()];
    for &i in &order {
        let Some(edge) = apd.edges.get(i) else {
            continue;
        };
        let (Some(s), Some(t)) = (
            lookup(edge.from_level, edge.from_node),
            lookup(edge.from_level + 1, edge.to_node),
        ) else {
            continue;
        };
        let (Some(source), Some(target)) = (nodes.get(s), nodes.get(t)) else {
            continue;
        };
        let width = f64::from(edge.instances) * scale;
        let y0 = source.y + out_offset.get(s).copied().unwrap_or(0.0) + width / 2.0;
        let x0 = source.x + NODE_WIDTH;
        let x1 = target.x;
        // Incoming bands stack in source order; the sort by (from_node, to_node) keeps them
        // ordered by source position within each target.
        let y1 = target.y + in_offset.get(t).copied().unwrap_or(0.0) + width / 2.0;
        if let Some(o) = out_offset.get_mut(s) {
            *o += width;
        }
        if let Some(o) = in_offset.get_mut(t) {
            *o += width;
        }
        if let Some(slot) = links.get_mut(i) {
            *slot = Some(LinkBand {
                edge: i,
                x0,
                y0,
                x1,
                y1,
                width: width.max(0.6),
            });
        }
    }
    Layout {
        nodes,
        links: links.into_iter().flatten().collect(),
    }
}

/// A description of a node for the hover panel and the inspector.
pub fn describe_node(apd: &Apd, level: usize, node: usize) -> String {
    let Some(n) = apd.levels.get(level).and_then(|l| l.get(node)) else {
        return String::new();
    };
    let what = match &n.kind {
        ApdNodeKind::Pattern {
            layer_idx,
            pattern_id,
            bits,
        } => format!(
            "layer {} pattern #{pattern_id} (bits {bits})",
            layer_idx + 1
        ),
        ApdNodeKind::Other {
            layer_idx,
            merged_patterns,
        } => format!("layer {} other ({merged_patterns} patterns)", layer_idx + 1),
        ApdNodeKind::Label { label } => format!("predicted {label}"),
    };
    let purity = purity_of(apd, level, node);
    format!(
        "{what}: {} instances, {} errors, purity {:.2}",
        n.instances, n.errors, purity
    )
}

/// Share of the most frequent predicted label among the instances of a node.
pub fn purity_of(apd: &Apd, level: usize, node: usize) -> f64 {
    let last = apd.levels.len().saturating_sub(1);
    let mut counts = std::collections::HashMap::<u32, u32>::new();
    let mut total = 0;
    for i in 0..apd.instance_count as usize {
        if let Some(path) = apd.path(i)
            && path.get(level) == Some(&(node as u32))
        {
            *counts
                .entry(path.get(last).copied().unwrap_or(0))
                .or_default() += 1;
            total += 1;
        }
    }
    let top = counts.values().copied().max().unwrap_or(0);
    if total == 0 {
        0.0
    } else {
        f64::from(top) / f64::from(total)
    }
}

/// What the pointer is over.
#[derive(Debug, Clone, PartialEq)]
pub enum Hovered {
    /// A node.
    Node(usize, usize),
    /// A link (index into `apd.edges`).
    Link(usize),
}

/// What is drawn at `(x, y)` (drawing units): a node if one is there, else the thinnest band
/// there (thin bands cross thick ones, and the thick ones can be pointed at elsewhere).
pub fn hit_test(geometry: &Layout, x: f64, y: f64) -> Option<Hovered> {
    if let Some(node) = geometry.nodes.iter().find(|n| n.contains(x, y)) {
        return Some(Hovered::Node(node.level, node.node));
    }
    geometry
        .links
        .iter()
        .filter(|band| band.contains(x, y))
        .min_by(|a, b| a.width.total_cmp(&b.width))
        .map(|band| Hovered::Link(band.edge))
}

/// A point on link `edge`'s centre line where [`hit_test`] answers that link, if there is one
/// (other bands and nodes can cover a band everywhere).
pub fn anchor(geometry: &Layout, edge: usize) -> Option<(f64, f64)> {
    let band = geometry.links.iter().find(|b| b.edge == edge)?;
    [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9]
        .into_iter()
        .map(|t| band.at(t))
        .find(|&(x, y)| hit_test(geometry, x, y) == Some(Hovered::Link(edge)))
}

/// The instances and a description of a node or link.
pub fn resolve(apd: &Apd, target: &Hovered) -> Option<(String, Vec<u32>)> {
    match *target {
        Hovered::Node(level, node) => Some((
            describe_node(apd, level, node),
            apd.node_instances(level, u32::try_from(node).ok()?),
        )),
        Hovered::Link(index) => {
            let edge = apd.edges.get(index)?;
            let instances =
                apd.edge_instances(edge.from_level as usize, edge.from_node, edge.to_node);
            Some((
                format!(
                    "flow level {}→{}: {}",
                    edge.from_level + 1,
                    edge.from_level + 2,
                    instances.len()
                ),
                instances,
            ))
        }
    }
}

/// The flows (links between the last two hidden layers) with the most instances, most first.
pub fn strongest_flows(apd: &Apd, count: usize) -> Vec<usize> {
    let levels = apd.levels.len();
    let mut flows: Vec<usize> = apd
        .edges
        .iter()
        .enumerate()
        .filter(|(_, e)| e.from_level as usize + 2 == levels.saturating_sub(1))
        .map(|(i, _)| i)
        .collect();
    flows.sort_by_key(|&i| std::cmp::Reverse(apd.edges.get(i).map_or(0, |e| e.instances)));
    flows.truncate(count);
    flows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{apd_node as node, two_into_one};
    use actiscope_protocol::apd::ApdEdge;

    #[test]
    fn bands_and_nodes_share_one_scale() {
        let apd = two_into_one();
        let l = layout(&apd);
        assert_eq!(l.nodes.len(), 3);
        assert_eq!(l.links.len(), 2);
        let label = &l.nodes[2];
        let sum: f64 = l.links.iter().map(|b| b.width).sum();
        assert!(
            (sum - label.height).abs() < 1e-6,
            "{sum} vs {}",
            label.height
        );
        assert!((l.nodes[0].height / l.nodes[1].height - 3.0).abs() < 1e-6);
        assert_eq!(resolve(&apd, &Hovered::Link(1)).map(|r| r.1), Some(vec![3]));
        assert_eq!(
            resolve(&apd, &Hovered::Node(0, 0)).map(|r| r.1),
            Some(vec![0, 1, 2])
        );
    }

    /// Two levels of two nodes with crossing links of different widths.
    fn crossing() -> Apd {
        let pattern = |l, p| ApdNodeKind::Pattern {
            layer_idx: l,
            pattern_id: p,
            bits: "1".into(),
        };
        let edge = |from_node, to_node, instances| ApdEdge {
            from_level: 0,
            from_node,
            to_node,
            instances,
            errors: 0,
        };
        Apd {
            levels: vec![
                vec![node(pattern(0, 0), 10), node(pattern(0, 1), 2)],
                vec![
                    node(ApdNodeKind::Label { label: 0 }, 2),
                    node(ApdNodeKind::Label { label: 1 }, 10),
                ],
            ],
            // 0 -> 1 (wide, downwards) crosses 1 -> 0 (thin, upwards).
            edges: vec![edge(0, 1, 10), edge(1, 0, 2)],
            paths: (0..12)
                .flat_map(|i| if i < 10 { [0, 1] } else { [1, 0] })
                .collect(),
            instance_count: 12,
        }
    }

    #[test]
    fn bands_are_hit_along_their_curve_and_thin_ones_win_crossings() {
        let apd = crossing();
        let l = layout(&apd);
        let wide = l.links.iter().find(|b| b.edge == 0).unwrap();
        let thin = l.links.iter().find(|b| b.edge == 1).unwrap();
        // The centre line meets its ends and is symmetric about its middle.
        assert!((wide.centre_at(wide.x0).unwrap() - wide.y0).abs() < 1e-6);
        assert!((wide.centre_at(wide.x1).unwrap() - wide.y1).abs() < 1e-6);
        let mid_x = (wide.x0 + wide.x1) / 2.0;
        let mid_y = wide.centre_at(mid_x).unwrap();
        assert!((mid_y - (wide.y0 + wide.y1) / 2.0).abs() < 1e-6);
        assert_eq!(wide.centre_at(wide.x0 - 1.0), None);
        // Near the left end each band is alone; in the middle they cross and the thin wins.
        let x = wide.x0 + 1.0;
        assert_eq!(
            hit_test(&l, x, wide.centre_at(x).unwrap()),
            Some(Hovered::Link(0))
        );
        assert_eq!(
            hit_test(&l, x, wide.centre_at(x).unwrap() + wide.width / 2.0 - 0.1),
            Some(Hovered::Link(0)),
            "inside the band's lower edge"
        );
        assert_eq!(
            hit_test(&l, x, thin.centre_at(x).unwrap()),
            Some(Hovered::Link(1))
        );
        let crossing_y = thin.centre_at(mid_x).unwrap();
        assert!(wide.contains(mid_x, crossing_y) && thin.contains(mid_x, crossing_y));
        assert_eq!(hit_test(&l, mid_x, crossing_y), Some(Hovered::Link(1)));
        // Far from both bands nothing is hit; on a node the node is.
        assert_eq!(hit_test(&l, mid_x, 1.0), None);
        let first = &l.nodes[0];
        assert_eq!(
            hit_test(&l, first.x + 1.0, first.y + first.height / 2.0),
            Some(Hovered::Node(0, 0))
        );
        // Each band has a point that answers that band, and it lies on the band.
        for band in &l.links {
            let (x, y) = anchor(&l, band.edge).unwrap();
            assert_eq!(hit_test(&l, x, y), Some(Hovered::Link(band.edge)));
            assert!(band.contains(x, y));
        }
        assert_eq!(
            strongest_flows(&apd, 5),
            Vec::<usize>::new(),
            "no hidden-to-hidden flows here"
        );
    }
}
