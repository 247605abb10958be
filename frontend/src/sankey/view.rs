//! The Leptos side of the APD Sankey: the [`Sankey`] component, which puts the SVG of
//! [`markup`] on the page, turns pointer positions into nodes and links with [`hit_test`],
//! outlines what the pointer is over, shows its description, and lists the strongest flows
//! in a table.

use std::collections::HashSet;

use actiscope_protocol::apd::{Apd, ApdNodeKind};
use leptos::prelude::*;

use super::markup::{error_colour, hover_outline, markup};
use actiscope_layout::sankey::{
    HEIGHT, Hovered, WIDTH, anchor, describe_node, hit_test, layout, resolve, strongest_flows,
};

/// Rows of the strongest-flows table.
const FLOW_ROWS: usize = 8;

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
