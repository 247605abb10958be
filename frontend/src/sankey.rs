//! The APD drawn as a Sankey diagram: one column per hidden layer, then the predicted labels;
//! node height by instances, link width by instances, link colour by the share of errors.

use std::collections::HashSet;

use actiscope_protocol::apd::{Apd, ApdNodeKind};
use leptos::prelude::*;

/// Drawing area, in SVG user units.
pub const WIDTH: f64 = 960.0;
/// Drawing area height.
pub const HEIGHT: f64 = 520.0;
const NODE_WIDTH: f64 = 14.0;
const MARGIN_X: f64 = 60.0;
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

/// A positioned link: a band from one node's right side to the next level's node.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkBand {
    /// Index into `apd.edges`.
    pub edge: usize,
    /// SVG path of the band's centre line.
    pub path: String,
    /// Band thickness.
    pub width: f64,
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
        let mid = (x0 + x1) / 2.0;
        if let Some(slot) = links.get_mut(i) {
            *slot = Some(LinkBand {
                edge: i,
                path: format!("M{x0:.1},{y0:.2}C{mid:.1},{y0:.2} {mid:.1},{y1:.2} {x1:.1},{y1:.2}"),
                width: width.max(0.6),
            });
        }
    }
    Layout {
        nodes,
        links: links.into_iter().flatten().collect(),
    }
}

/// Colour of a link with `errors` of `instances` misclassified: blue (none) to red (all).
pub fn error_colour(errors: u32, instances: u32) -> String {
    let share = if instances == 0 {
        0.0
    } else {
        f64::from(errors) / f64::from(instances)
    };
    let mix = |a: f64, b: f64| (a + (b - a) * share).round() as u8;
    format!(
        "rgb({},{},{})",
        mix(110.0, 214.0),
        mix(160.0, 39.0),
        mix(220.0, 40.0)
    )
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

/// Escapes text for SVG markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole diagram as SVG markup. Built as one string and handed to the browser's parser:
/// with thousands of nodes and links that is several times faster than creating the elements
/// one by one, and events are handled once on the `<svg>` (see [`Sankey`]).
pub fn markup(apd: &Apd, selection: &HashSet<u32>) -> String {
    use std::fmt::Write;
    let geometry = layout(apd);
    let has_selection = !selection.is_empty();
    let levels = apd.levels.len();
    let mut edge_hits = HashSet::<(u32, u32, u32)>::new();
    let mut node_hits = HashSet::<(usize, u32)>::new();
    for &i in selection {
        if let Some(path) = apd.path(i as usize) {
            for (level, pair) in path.windows(2).enumerate() {
                if let [a, b] = *pair {
                    edge_hits.insert((level as u32, a, b));
                }
            }
            for (level, &n) in path.iter().enumerate() {
                node_hits.insert((level, n));
            }
        }
    }
    let mut out = String::with_capacity(256 * (geometry.links.len() + geometry.nodes.len()));
    for level in 0..levels {
        let x = if levels <= 1 {
            MARGIN_X
        } else {
            MARGIN_X + level as f64 * (WIDTH - 2.0 * MARGIN_X - NODE_WIDTH) / (levels - 1) as f64
        };
        let text = if level + 1 == levels {
            "predicted".to_owned()
        } else {
            format!(
                "layer {} ({})",
                level + 1,
                apd.levels.get(level).map_or(0, Vec::len)
            )
        };
        let _ = write!(
            out,
            r#"<text class="column-label" x="{x:.1}" y="14">{text}</text>"#
        );
    }
    out.push_str(r#"<g class="links">"#);
    for band in &geometry.links {
        let Some(edge) = apd.edges.get(band.edge) else {
            continue;
        };
        let hit = edge_hits.contains(&(edge.from_level, edge.from_node, edge.to_node));
        let class = match (has_selection, hit) {
            (false, _) => "apd-link",
            (true, true) => "apd-link hl",
            (true, false) => "apd-link dim",
        };
        let is_flow = edge.from_level as usize + 2 == levels.saturating_sub(1);
        let _ = write!(
            out,
            r#"<path class="{class}" d="{}" stroke="{}" stroke-width="{:.2}" fill="none" data-edge="{}" data-from-level="{}" data-from="{}" data-to="{}" data-instances="{}" data-flow="{is_flow}"></path>"#,
            band.path,
            error_colour(edge.errors, edge.instances),
            band.width,
            band.edge,
            edge.from_level,
            edge.from_node,
            edge.to_node,
            edge.instances,
        );
    }
    out.push_str(r#"</g><g class="nodes">"#);
    let max_instances = apd
        .levels
        .iter()
        .flatten()
        .map(|n| n.instances)
        .max()
        .unwrap_or(1)
        .max(1);
    for b in &geometry.nodes {
        let Some(node) = apd.levels.get(b.level).and_then(|l| l.get(b.node)) else {
            continue;
        };
        let opacity = 0.35 + 0.65 * f64::from(node.instances) / f64::from(max_instances);
        let hit = node_hits.contains(&(b.level, b.node as u32));
        let class = match (has_selection, hit) {
            (false, _) => "apd-node",
            (true, true) => "apd-node hl",
            (true, false) => "apd-node dim",
        };
        let kind = match node.kind {
            ApdNodeKind::Pattern { .. } => "pattern",
            ApdNodeKind::Other { .. } => "other",
            ApdNodeKind::Label { .. } => "label",
        };
        let _ = write!(
            out,
            r#"<rect class="{class}" x="{:.1}" y="{:.2}" width="{NODE_WIDTH}" height="{:.2}" fill-opacity="{opacity:.2}" data-level="{}" data-node="{}" data-kind="{kind}" data-instances="{}"></rect>"#,
            b.x, b.y, b.height, b.level, b.node, node.instances
        );
        if let ApdNodeKind::Label { label } = node.kind {
            let _ = write!(
                out,
                r#"<text class="node-label" x="{:.1}" y="{:.1}">{}</text>"#,
                b.x + NODE_WIDTH + 4.0,
                b.y + b.height / 2.0 + 4.0,
                escape(&label.to_string())
            );
        }
    }
    out.push_str("</g>");
    out
}

/// What an element of the diagram stands for, read back from its data attributes.
fn target_of(event: &web_sys::Event) -> Option<Hovered> {
    use wasm_bindgen::JsCast;
    let element = event.target()?.dyn_into::<web_sys::Element>().ok()?;
    let number = |name: &str| element.get_attribute(name)?.parse::<usize>().ok();
    if let Some(edge) = number("data-edge") {
        return Some(Hovered::Link(edge));
    }
    Some(Hovered::Node(number("data-level")?, number("data-node")?))
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

/// The Sankey view. `on_select` receives a label and the instances of a clicked node or link.
#[component]
pub fn Sankey(
    /// The (possibly merged) APD to draw.
    apd: Memo<Option<Apd>>,
    /// Selected instances, highlighted.
    selection: Signal<Vec<u32>>,
    /// Called with a description and the instances of what was clicked.
    on_select: Callback<(String, Vec<u32>)>,
    /// Milliseconds the last markup build took.
    render_ms: WriteSignal<f64>,
) -> impl IntoView {
    let (hovered, set_hovered) = signal(None::<Hovered>);
    let drawing = move || {
        let started = js_sys::Date::now();
        let Some(apd) = apd.get() else {
            return view! { <p class="empty">"Waiting for the first epoch…"</p> }.into_any();
        };
        let selected: HashSet<u32> = selection.get().into_iter().collect();
        let svg = markup(&apd, &selected);
        let node_count: usize = apd.levels.iter().map(Vec::len).sum();
        render_ms.set(js_sys::Date::now() - started);
        let clicked = std::rc::Rc::new(apd);
        let edges = clicked.edges.len();
        view! {
            <svg
                id="apd-sankey"
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                data-nodes=node_count.to_string()
                data-edges=edges.to_string()
                role="img"
                aria-label="Activation pattern diagram"
                inner_html=svg
                on:click=move |ev| {
                    let chosen = target_of(&ev).and_then(|t| resolve(&clicked, &t));
                    if let Some(choice) = chosen {
                        on_select.run(choice);
                    }
                }
                on:mouseover=move |ev| set_hovered.set(target_of(&ev))
                on:mouseleave=move |_| set_hovered.set(None)
            ></svg>
        }
        .into_any()
    };
    let hover_text = move || {
        let apd = apd.get()?;
        Some(match hovered.get()? {
            Hovered::Node(level, node) => describe_node(&apd, level, node),
            Hovered::Link(index) => {
                let edge = apd.edges.get(index)?;
                format!(
                    "{} → {}: {} instances, {} errors ({:.0}% wrong)",
                    describe_node(&apd, edge.from_level as usize, edge.from_node as usize),
                    describe_node(&apd, edge.from_level as usize + 1, edge.to_node as usize),
                    edge.instances,
                    edge.errors,
                    100.0 * f64::from(edge.errors) / f64::from(edge.instances.max(1))
                )
            }
        })
    };
    view! {
        <div class="sankey">
            {drawing}
            <p id="apd-hover" class="hover">{move || hover_text().unwrap_or_else(|| "Hover a node or a flow for details; click to inspect it.".to_owned())}</p>
            <div class="legend">
                <span>"link colour: share of errors"</span>
                <span class="swatch" style=format!("background:{}", error_colour(0, 1))></span>"0%"
                <span class="swatch" style=format!("background:{}", error_colour(1, 2))></span>"50%"
                <span class="swatch" style=format!("background:{}", error_colour(1, 1))></span>"100%"
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actiscope_protocol::apd::{ApdEdge, ApdNode};

    fn node(kind: ApdNodeKind, instances: u32) -> ApdNode {
        ApdNode {
            kind,
            instances,
            errors: 0,
        }
    }

    #[test]
    fn bands_and_nodes_share_one_scale() {
        let pattern = |l, p| ApdNodeKind::Pattern {
            layer_idx: l,
            pattern_id: p,
            bits: "1".into(),
        };
        let apd = Apd {
            levels: vec![
                vec![node(pattern(0, 0), 3), node(pattern(0, 1), 1)],
                vec![node(ApdNodeKind::Label { label: 0 }, 4)],
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
        };
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
        assert_eq!(error_colour(0, 5), "rgb(110,160,220)");
        assert_eq!(error_colour(5, 5), "rgb(214,39,40)");
        let svg = markup(&apd, &HashSet::from([3]));
        assert_eq!(svg.matches("<rect").count(), 3);
        assert_eq!(svg.matches("<path").count(), 2);
        assert_eq!(
            svg.matches("apd-link hl").count(),
            1,
            "instance 3 runs along edge 1 only"
        );
        assert_eq!(resolve(&apd, &Hovered::Link(1)).map(|r| r.1), Some(vec![3]));
        assert_eq!(
            resolve(&apd, &Hovered::Node(0, 0)).map(|r| r.1),
            Some(vec![0, 1, 2])
        );
    }
}
