//! The APD Sankey diagram as SVG markup: the links merged into one filled `<path>` per colour
//! and selection state, the nodes into one `<path>` per shade and state, the labels, and the
//! hover outline, all built as strings from a [`Layout`]. Also the link colour scale.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use actiscope_protocol::apd::{Apd, ApdNodeKind};

pub use actiscope_layout::colour::error_colour;
use actiscope_layout::sankey::{Hovered, Layout, LinkBand, MARGIN_X, NODE_WIDTH, NodeBox};

/// Appends the band's outline (top edge left to right, bottom edge back) to `out`.
fn band_outline(band: &LinkBand, out: &mut String) {
    let h = band.width / 2.0;
    let mid = (band.x0 + band.x1) / 2.0;
    let (x0, x1) = (band.x0, band.x1);
    let (t0, t1, b0, b1) = (band.y0 - h, band.y1 - h, band.y0 + h, band.y1 + h);
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

/// Appends the node's rectangle to `out`.
fn node_outline(node: &NodeBox, out: &mut String) {
    path_data(
        out,
        &[
            ('M', node.x),
            (' ', node.y),
            ('h', NODE_WIDTH),
            ('v', node.height),
            ('h', -NODE_WIDTH),
        ],
    );
    out.push('Z');
}

/// Appends each `(separator, number)` to SVG path data, numbers to a tenth of a unit. Written
/// by hand because `format!("{:.1}")` takes the exact (slow) float formatting path, and a
/// thousand-node diagram has tens of thousands of numbers.
fn path_data(out: &mut String, items: &[(char, f64)]) {
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
        band_outline(band, link_groups.entry((order, shade)).or_default());
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
        node_outline(b, node_groups.entry((order, shade)).or_default());
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

/// The outline of a node or link, for the hover overlay.
pub(super) fn hover_outline(geometry: &Layout, target: &Hovered) -> String {
    let mut out = String::new();
    match *target {
        Hovered::Node(level, node) => {
            if let Some(b) = geometry
                .nodes
                .iter()
                .find(|b| b.level == level && b.node == node)
            {
                node_outline(b, &mut out);
            }
        }
        Hovered::Link(edge) => {
            if let Some(band) = geometry.links.iter().find(|b| b.edge == edge) {
                band_outline(band, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actiscope_layout::fixtures::two_into_one;
    use actiscope_layout::sankey::layout;

    #[test]
    fn links_group_by_colour_and_selection_state() {
        let apd = two_into_one();
        let l = layout(&apd);
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
}
