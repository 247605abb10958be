//! The APD drawn as a Sankey diagram: one column per hidden layer, then the predicted labels;
//! node height by instances, link width by instances, link colour by the share of errors.
//!
//! Speed: an APD of the whole probe set has a thousand nodes and more links. One SVG element
//! per node and link made the browser parse and lay out thousands of elements on every epoch
//! change (70-200 ms measured in Chromium). Here the links are filled bands merged into one
//! `<path>` per colour and state, the nodes into one `<path>` per shade and state, so the
//! browser sees a few dozen elements; hover and click are resolved by [`hit_test`] against the
//! geometry in Rust.

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
    fn at(&self, t: f64) -> (f64, f64) {
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

    /// Appends the band's outline (top edge left to right, bottom edge back) to `out`.
    fn outline(&self, out: &mut String) {
        let h = self.width / 2.0;
        let mid = (self.x0 + self.x1) / 2.0;
        let (x0, x1) = (self.x0, self.x1);
        let (t0, t1, b0, b1) = (self.y0 - h, self.y1 - h, self.y0 + h, self.y1 + h);
        path_data(
            out,
            &[
                ('M', x0),
                (' ', t0),
                ('C', mid),
                (' ', t0),
                (' ', mid),
                (' ', t1),
                (' ', x1),
                (' ', t1),
                ('L', x1),
                (' ', b1),
                ('C', mid),
                (' ', b1),
                (' ', mid),
                (' ', b0),
                (' ', x0),
                (' ', b0),
            ],
        );
        out.push('Z');
    }
}

/// Appends each `(separator, number)` to SVG path data, numbers to a tenth of a unit. Written
/// by hand because `format!("{:.1}")` takes the exact (slow) float formatting path, and a
/// thousand-node diagram has tens of thousands of numbers.
fn path_data(out: &mut String, items: &[(char, f64)]) {
    use std::fmt::Write;
    for &(separator, value) in items {
        out.push(separator);
        let tenths = (value * 10.0).round();
        let tenths = if tenths.is_finite() { tenths as i64 } else { 0 };
        if tenths < 0 {
            out.push('-');
        }
        let tenths = tenths.unsigned_abs();
        let _ = write!(out, "{}", tenths / 10);
        if tenths % 10 != 0 {
            out.push('.');
            out.push(char::from(b'0' + (tenths % 10) as u8));
        }
    }
}

impl NodeBox {
    /// Whether `(x, y)` falls on the node; short nodes are given 1 unit above and below.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let pad = ((2.0 - self.height) / 2.0).max(0.0);
        (self.x..=self.x + NODE_WIDTH).contains(&x)
            && (self.y - pad..=self.y + self.height + pad).contains(&y)
    }

    /// Appends the node's rectangle to `out`.
    fn outline(&self, out: &mut String) {
        path_data(
            out,
            &[
                ('M', self.x),
                (' ', self.y),
                ('h', NODE_WIDTH),
                ('v', self.height),
                ('h', -NODE_WIDTH),
            ],
        );
        out.push('Z');
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

/// Steps of the link colour scale: the share of errors rounded to tenths.
const ERROR_SHADES: u32 = 10;
/// Steps of the node shade (instance count relative to the biggest node).
const NODE_SHADES: u32 = 8;

/// How an item is drawn given the selection.
fn state_class(has_selection: bool, hit: bool) -> &'static str {
    match (has_selection, hit) {
        (false, _) => "",
        (true, true) => " hl",
        (true, false) => " dim",
    }
}

/// The whole diagram as SVG markup: column labels, the links merged into one filled `<path>`
/// per colour and selection state (highlighted ones last, on top), the nodes into one
/// `<path>` per shade and state, and the label names. `geometry` is `layout(apd)`.
pub fn markup(apd: &Apd, geometry: &Layout, selection: &HashSet<u32>) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write;
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
    let mut out = String::with_capacity(64 * (geometry.links.len() + geometry.nodes.len()));
    for level in 0..levels {
        let x = geometry
            .nodes
            .iter()
            .find(|n| n.level == level)
            .map_or(MARGIN_X, |n| n.x);
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
    // (draw order: plain, dimmed, highlighted; then colour) -> outlines
    let mut link_groups = BTreeMap::<(u8, u32), String>::new();
    for band in &geometry.links {
        let Some(edge) = apd.edges.get(band.edge) else {
            continue;
        };
        let hit = edge_hits.contains(&(edge.from_level, edge.from_node, edge.to_node));
        let order = match (has_selection, hit) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        let shade = (f64::from(ERROR_SHADES) * f64::from(edge.errors)
            / f64::from(edge.instances.max(1)))
        .round() as u32;
        band.outline(link_groups.entry((order, shade)).or_default());
    }
    out.push_str(r#"<g class="links">"#);
    for ((order, shade), d) in &link_groups {
        let _ = write!(
            out,
            r#"<path class="apd-link{}" fill="{}" d="{d}"></path>"#,
            state_class(has_selection, *order == 2),
            error_colour(*shade, ERROR_SHADES),
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
    let mut node_groups = BTreeMap::<(u8, u32), String>::new();
    let mut labels = String::new();
    for b in &geometry.nodes {
        let Some(node) = apd.levels.get(b.level).and_then(|l| l.get(b.node)) else {
            continue;
        };
        let hit = node_hits.contains(&(b.level, b.node as u32));
        let order = match (has_selection, hit) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        let shade = (f64::from(NODE_SHADES - 1) * f64::from(node.instances)
            / f64::from(max_instances))
        .round() as u32;
        b.outline(node_groups.entry((order, shade)).or_default());
        if let ApdNodeKind::Label { label } = node.kind {
            let _ = write!(
                labels,
                r#"<text class="node-label" x="{:.1}" y="{:.1}">{}</text>"#,
                b.x + NODE_WIDTH + 4.0,
                b.y + b.height / 2.0 + 4.0,
                escape(&label.to_string())
            );
        }
    }
    for ((order, shade), d) in &node_groups {
        let opacity = 0.35 + 0.65 * f64::from(*shade) / f64::from(NODE_SHADES - 1);
        let _ = write!(
            out,
            r#"<path class="apd-node{}" fill-opacity="{opacity:.2}" d="{d}"></path>"#,
            state_class(has_selection, *order == 2),
        );
    }
    out.push_str(&labels);
    out.push_str("</g>");
    out
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

/// The outline of a node or link, for the hover overlay.
fn hover_outline(geometry: &Layout, target: &Hovered) -> String {
    let mut out = String::new();
    match *target {
        Hovered::Node(level, node) => {
            if let Some(b) = geometry
                .nodes
                .iter()
                .find(|b| b.level == level && b.node == node)
            {
                b.outline(&mut out);
            }
        }
        Hovered::Link(edge) => {
            if let Some(band) = geometry.links.iter().find(|b| b.edge == edge) {
                band.outline(&mut out);
            }
        }
    }
    out
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

/// Rows of the strongest-flows table.
const FLOW_ROWS: usize = 8;

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

/// The Sankey view and, under it, a table of the strongest flows. `on_select` receives a
/// label and the instances of a clicked node, link or table row.
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
    let geometry = Memo::new(move |_| apd.with(|a| a.as_ref().map(layout)));
    let hit = move |ev: &web_sys::MouseEvent| {
        let (x, y) = crate::charts::svg_point(ev, WIDTH, HEIGHT)?;
        geometry.with_untracked(|g| hit_test(g.as_ref()?, x, y))
    };
    let select = move |target: &Hovered| {
        if let Some(choice) = apd.with_untracked(|a| resolve(a.as_ref()?, target)) {
            on_select.run(choice);
        }
    };
    let drawing = move || {
        let started = js_sys::Date::now();
        let selected: HashSet<u32> = selection.get().into_iter().collect();
        let drawn = apd.with(|apd| {
            geometry.with(|geometry| {
                let (apd, geometry) = (apd.as_ref()?, geometry.as_ref()?);
                let nodes: usize = apd.levels.iter().map(Vec::len).sum();
                Some((markup(apd, geometry, &selected), nodes, apd.edges.len()))
            })
        });
        let Some((svg, node_count, edge_count)) = drawn else {
            return view! { <p class="empty">"Waiting for the first epoch…"</p> }.into_any();
        };
        render_ms.set(js_sys::Date::now() - started);
        view! {
            <svg
                id="apd-sankey"
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                data-nodes=node_count.to_string()
                data-edges=edge_count.to_string()
                role="img"
                aria-label="Activation pattern diagram"
                on:click=move |ev| {
                    if let Some(target) = hit(&ev) {
                        select(&target);
                    }
                }
                on:mousemove=move |ev| {
                    let now = hit(&ev);
                    if hovered.with_untracked(|h| *h != now) {
                        set_hovered.set(now);
                    }
                }
                on:mouseleave=move |_| set_hovered.set(None)
            >
                <g inner_html=svg></g>
                <path class="apd-hover" d=move || {
                    let target = hovered.get()?;
                    geometry.with(|g| Some(hover_outline(g.as_ref()?, &target)))
                }></path>
            </svg>
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
    let flow_rows = move || {
        apd.with(|apd| {
            let apd = apd.as_ref()?;
            let rows = geometry.with(|geometry| {
                let geometry = geometry.as_ref()?;
                Some(
                    strongest_flows(apd, FLOW_ROWS)
                        .into_iter()
                        .filter_map(|i| {
                            let edge = apd.edges.get(i)?.clone();
                            let point = anchor(geometry, i);
                            Some((i, edge, point))
                        })
                        .collect::<Vec<_>>(),
                )
            })?;
            let short = |level: u32, node: u32| match apd
                .levels
                .get(level as usize)
                .and_then(|l| l.get(node as usize))
                .map(|n| &n.kind)
            {
                Some(ApdNodeKind::Pattern { pattern_id, .. }) => format!("#{pattern_id}"),
                Some(ApdNodeKind::Other {
                    merged_patterns, ..
                }) => format!("other ({merged_patterns})"),
                Some(ApdNodeKind::Label { label }) => format!("label {label}"),
                None => String::new(),
            };
            Some(
                rows.into_iter()
                    .map(|(i, edge, point)| {
                        let (x, y) = point.map_or((String::new(), String::new()), |(x, y)| {
                            (format!("{x:.2}"), format!("{y:.2}"))
                        });
                        let target = Hovered::Link(i);
                        let wrong =
                            100.0 * f64::from(edge.errors) / f64::from(edge.instances.max(1));
                        view! {
                            <tr class="flow-row" data-edge=i.to_string()
                                data-from-level=edge.from_level.to_string()
                                data-from=edge.from_node.to_string() data-to=edge.to_node.to_string()
                                data-instances=edge.instances.to_string() data-x=x data-y=y
                                on:click=move |_| select(&target)
                                on:mouseenter=move |_| set_hovered.set(Some(Hovered::Link(i)))
                                on:mouseleave=move |_| set_hovered.set(None)>
                                <td>{format!("layer {} {}", edge.from_level + 1, short(edge.from_level, edge.from_node))}</td>
                                <td>{format!("layer {} {}", edge.from_level + 2, short(edge.from_level + 1, edge.to_node))}</td>
                                <td class="num">{edge.instances}</td>
                                <td class="num">{format!("{wrong:.0}%")}</td>
                            </tr>
                        }
                    })
                    .collect_view(),
            )
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
            <table id="apd-flows" class="flows">
                <caption>"Strongest flows between the last two hidden layers (click to inspect)"</caption>
                <thead><tr><th>"from"</th><th>"to"</th><th>"instances"</th><th>"wrong"</th></tr></thead>
                <tbody>{flow_rows}</tbody>
            </table>
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
        let svg = markup(&apd, &l, &HashSet::from([3]));
        // Edge 0 (no errors) dimmed, edge 1 (all wrong) highlighted: two link groups; nodes:
        // pattern 1 and the label are lit, pattern 0 dimmed.
        assert_eq!(svg.matches("<path class=\"apd-link").count(), 2);
        assert_eq!(
            svg.matches("apd-link hl").count(),
            1,
            "instance 3 runs along edge 1 only"
        );
        assert!(svg.contains(&format!(
            r#"class="apd-link hl" fill="{}""#,
            error_colour(1, 1)
        )));
        assert_eq!(svg.matches("apd-node hl").count(), 2, "{svg}");
        assert_eq!(svg.matches("apd-node dim").count(), 1);
        assert_eq!(svg.matches('Z').count(), 5, "two bands and three nodes");
        let plain = markup(&apd, &l, &HashSet::new());
        assert!(!plain.contains(" hl") && !plain.contains(" dim"));
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
    fn path_numbers_are_written_to_a_tenth() {
        let mut out = String::new();
        path_data(
            &mut out,
            &[
                ('M', 12.34),
                (' ', -0.06),
                ('L', 7.0),
                (' ', -3.25),
                ('h', 0.04),
            ],
        );
        assert_eq!(out, "M12.3 -0.1L7 -3.3h0");
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
