//! The mapper panels: one TopoAct-style graph per chosen layer, side by side.
//!
//! The server computes each graph (`GET …/epochs/{e}/mapper`) with node identities carried
//! across epochs; this module lays the graph out with a force-directed layout that starts from
//! the positions the same node ids had in the previous drawing (new nodes start next to their
//! parent), so scrubbing epochs moves nodes instead of reshuffling them. Nodes are sized by
//! members and coloured by a chosen statistic; clicking a node selects its members (inspector
//! and APD follow); selected instances light up the nodes that hold them.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use actiscope_protocol::mapper::{MapperGraph, MapperNode};

use crate::downloads::{FigureLinks, FigureRef};
use leptos::prelude::*;

use actiscope_layout::colour::{class_colour, ramp};
use actiscope_layout::mapper::{HEIGHT, WIDTH, layout, radius};

/// What colours the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourBy {
    /// Share of members predicted as the node's most predicted label.
    Purity,
    /// Share of members misclassified.
    ErrorRate,
    /// Mean L2 norm of the members' activations.
    MeanNorm,
    /// Most frequent true class.
    MajorityClass,
}

impl ColourBy {
    /// All choices with their labels, for the select box.
    pub const ALL: [(Self, &'static str, &'static str); 4] = [
        (Self::Purity, "purity", "predicted-label purity"),
        (Self::ErrorRate, "errors", "error rate"),
        (Self::MeanNorm, "norm", "mean activation norm"),
        (Self::MajorityClass, "class", "majority class"),
    ];

    fn parse(key: &str) -> Self {
        Self::ALL
            .iter()
            .find(|(_, k, _)| *k == key)
            .map_or(Self::Purity, |(c, _, _)| *c)
    }
}

/// The fill of `node` under `colour_by`; `max_norm` scales the norm.
pub fn node_colour(node: &MapperNode, colour_by: ColourBy, max_norm: f32) -> String {
    match colour_by {
        ColourBy::Purity => ramp(f64::from(node.purity)),
        ColourBy::ErrorRate => ramp(f64::from(node.error_rate)),
        ColourBy::MeanNorm => ramp(f64::from(node.mean_norm / max_norm.max(f32::MIN_POSITIVE))),
        ColourBy::MajorityClass => node
            .majority_class()
            .map_or_else(|| "#999".to_owned(), class_colour),
    }
}

/// One line describing a node, for the hover text and the inspector label.
pub fn describe(node: &MapperNode) -> String {
    let exemplars: Vec<String> = node.exemplars.iter().map(|e| format!("#{e}")).collect();
    format!(
        "node {}: {} instances, majority class {}, purity {:.0}%, errors {:.0}%, mean norm {:.2}, exemplars {}",
        node.id,
        node.members.len(),
        node.majority_class()
            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        100.0 * node.purity,
        100.0 * node.error_rate,
        node.mean_norm,
        if exemplars.is_empty() {
            "-".to_owned()
        } else {
            exemplars.join(" ")
        }
    )
}

/// The SVG body of a graph: edges (width by Jaccard), then nodes (size by members, fill by
/// `colour_by`); nodes holding a selected instance get class `hit`, the others `dim` while
/// something is selected.
pub fn markup(
    graph: &MapperGraph,
    positions: &[(f64, f64)],
    colour_by: ColourBy,
    selection: &HashSet<u32>,
) -> String {
    let mut svg = String::new();
    let max_size = graph
        .nodes
        .iter()
        .map(|n| n.members.len())
        .max()
        .unwrap_or(1);
    let max_norm = graph
        .nodes
        .iter()
        .map(|n| n.mean_norm)
        .fold(0.0f32, f32::max);
    for edge in &graph.edges {
        let (Some(a), Some(b)) = (
            positions.get(edge.source as usize),
            positions.get(edge.target as usize),
        ) else {
            continue;
        };
        let _ = write!(
            svg,
            r#"<line class="mapper-edge" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke-width="{:.2}"><title>Jaccard {:.2}</title></line>"#,
            a.0,
            a.1,
            b.0,
            b.1,
            0.6 + 4.0 * edge.jaccard,
            edge.jaccard
        );
    }
    for (index, (node, p)) in graph.nodes.iter().zip(positions).enumerate() {
        let class = if selection.is_empty() {
            "mapper-node"
        } else if node.members.iter().any(|m| selection.contains(m)) {
            "mapper-node hit"
        } else {
            "mapper-node dim"
        };
        let _ = write!(
            svg,
            r#"<circle class="{class}" data-node="{index}" data-id="{}" cx="{:.1}" cy="{:.1}" r="{:.1}" fill="{}"><title>{}</title></circle>"#,
            node.id,
            p.0,
            p.1,
            radius(node.members.len(), max_size),
            node_colour(node, colour_by, max_norm),
            describe(node)
        );
    }
    svg
}

/// The mapper request for a panel, as a URL path with query.
pub fn mapper_path(run_id: i64, epoch: u32, settings: &PanelSettings) -> String {
    let mut path = format!(
        "/api/runs/{run_id}/epochs/{epoch}/mapper?layer={}&lens={}&intervals={}&overlap={}&clusterer={}",
        settings.layer_idx,
        settings.lens,
        settings.intervals,
        settings.overlap_pct,
        settings.clusterer
    );
    if settings.clusterer == "dbscan" {
        let _ = write!(path, "&eps={}", settings.eps);
    }
    if settings.lens == "knn" {
        let _ = write!(path, "&k={}", settings.k);
    }
    if settings.min_edge_pct > 0 {
        let _ = write!(
            path,
            "&min_edge={}",
            f64::from(settings.min_edge_pct) / 100.0
        );
    }
    path
}

/// The controls of one panel.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelSettings {
    /// Hidden layer, 0-based.
    pub layer_idx: u32,
    /// `pca1`, `pca2`, `norm`, `knn` or `score`.
    pub lens: String,
    /// Cover intervals.
    pub intervals: u32,
    /// Overlap percent.
    pub overlap_pct: u32,
    /// `dbscan` or `single`.
    pub clusterer: String,
    /// DBSCAN radius or `auto`.
    pub eps: String,
    /// Neighbour of the k-NN distance lens.
    pub k: u32,
    /// Smallest Jaccard weight drawn, in percent.
    pub min_edge_pct: u32,
}

impl PanelSettings {
    fn for_layer(layer_idx: u32) -> Self {
        Self {
            layer_idx,
            lens: "pca1".to_owned(),
            intervals: 10,
            overlap_pct: 30,
            clusterer: "dbscan".to_owned(),
            eps: "auto".to_owned(),
            k: 5,
            min_edge_pct: 0,
        }
    }
}

/// Zoom and pan of one panel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct View {
    scale: f64,
    tx: f64,
    ty: f64,
}

/// The row of mapper panels. `layers` lists the layer of each panel (URL state).
#[component]
pub fn MapperPanels(
    /// Subscribed run.
    run_id: Signal<Option<i64>>,
    /// Epoch on screen.
    epoch: Signal<Option<u32>>,
    /// Hidden layers of the run.
    hidden_layers: Signal<u32>,
    /// Layer of each panel.
    layers: RwSignal<Vec<u32>>,
    /// Selected instances.
    selection: Signal<Vec<u32>>,
    /// Called with a label and the members of a clicked node.
    on_select: Callback<(String, Vec<u32>)>,
) -> impl IntoView {
    let add = move |_| {
        layers.update(|l| {
            let next = l.last().map_or(0, |x| x + 1);
            l.push(next.min(hidden_layers.get_untracked().saturating_sub(1)));
        });
    };
    view! {
        <section class="panel" id="mapper-section">
            <h2>"Mapper graphs of the probe set's activations"</h2>
            <div class="mapper-row">
                <For
                    each={move || { let all: Vec<(usize, u32)> = layers.get().into_iter().enumerate().collect(); all }}
                    key=|(panel_idx, layer)| (*panel_idx, *layer)
                    children=move |(panel_idx, layer)| {
                        view! {
                            <MapperPanel panel_idx=panel_idx initial_layer=layer run_id=run_id epoch=epoch
                                hidden_layers=hidden_layers layers=layers selection=selection
                                on_select=on_select />
                        }
                    }
                />
            </div>
            <button id="mapper-add" on:click=add>"add a mapper panel"</button>
        </section>
    }
}

/// One mapper panel with its own controls.
#[component]
fn MapperPanel(
    panel_idx: usize,
    initial_layer: u32,
    run_id: Signal<Option<i64>>,
    epoch: Signal<Option<u32>>,
    hidden_layers: Signal<u32>,
    layers: RwSignal<Vec<u32>>,
    selection: Signal<Vec<u32>>,
    on_select: Callback<(String, Vec<u32>)>,
) -> impl IntoView {
    let settings = RwSignal::new(PanelSettings::for_layer(initial_layer));
    let colour_by = RwSignal::new(ColourBy::Purity);
    let graph = RwSignal::new(None::<std::sync::Arc<MapperGraph>>);
    let error = RwSignal::new(None::<String>);
    let loading = RwSignal::new(false);
    let positions = StoredValue::new_local(HashMap::<u32, (f64, f64)>::new());
    let view_box = RwSignal::new(View {
        scale: 1.0,
        tx: 0.0,
        ty: 0.0,
    });
    let drag = StoredValue::new_local(None::<(f64, f64)>);

    // Fetch whenever the run, the epoch or the settings change; a late answer for an older
    // request is dropped.
    let in_flight = crate::api::LatestOnly::new();
    Effect::new(move |_| {
        let (Some(run_id), Some(epoch)) = (run_id.get(), epoch.get()) else {
            return;
        };
        let path = mapper_path(run_id, epoch, &settings.get());
        loading.set(true);
        in_flight.get::<MapperGraph>(path, move |answer| {
            loading.set(false);
            match answer {
                Ok(g) => {
                    error.set(None);
                    graph.set(Some(std::sync::Arc::new(g)));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    });

    let drawn = Memo::new(move |_| {
        let g = graph.get()?;
        let previous = positions.get_value();
        let pos = layout(&g, &previous);
        positions.set_value(g.nodes.iter().zip(&pos).map(|(n, p)| (n.id, *p)).collect());
        Some((g, std::sync::Arc::new(pos)))
    });
    let body = move || {
        let (g, pos) = drawn.get()?;
        let selected: HashSet<u32> = selection.get().into_iter().collect();
        Some(markup(&g, &pos, colour_by.get(), &selected))
    };
    let set = move |f: &dyn Fn(&mut PanelSettings)| settings.update(|s| f(s));
    let on_click = move |ev: leptos::ev::MouseEvent| {
        use wasm_bindgen::JsCast;
        let index = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|e| e.get_attribute("data-node"))
            .and_then(|v| v.parse::<usize>().ok());
        if let (Some(index), Some((g, _))) = (index, drawn.get_untracked())
            && let Some(node) = g.nodes.get(index)
        {
            let layer = settings.get_untracked().layer_idx + 1;
            on_select.run((
                format!("mapper layer {layer}, {}", describe(node)),
                node.members.clone(),
            ));
        }
    };
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        ev.prevent_default();
        let factor = if ev.delta_y() < 0.0 { 1.15 } else { 1.0 / 1.15 };
        view_box.update(|v| {
            let scale = (v.scale * factor).clamp(0.3, 12.0);
            // Zoom about the centre of the drawing.
            let (cx, cy) = (WIDTH / 2.0, HEIGHT / 2.0);
            v.tx = cx - (cx - v.tx) * scale / v.scale;
            v.ty = cy - (cy - v.ty) * scale / v.scale;
            v.scale = scale;
        });
    };
    let svg_id = format!("mapper-svg-{panel_idx}");
    view! {
        <div class="mapper-panel" id=format!("mapper-panel-{panel_idx}")>
            <div class="mapper-controls">
                <FigureLinks id=format!("fig-mapper-{panel_idx}") figure=Signal::derive(move || {
                    let (run_id, epoch) = (run_id.get()?, epoch.get()?);
                    let lens_path = mapper_path(run_id, epoch, &settings.get());
                    let lens_query = lens_path.split_once('?').map_or("", |(_, q)| q).to_owned();
                    let shown = colour_by.get();
                    let colour = ColourBy::ALL.iter().find(|(c, _, _)| *c == shown).map_or("purity", |(_, key, _)| *key);
                    Some(FigureRef { run_id, name: "mapper", query: format!("epoch={epoch}&{lens_query}&colour={colour}") })
                }) />
                <label>"layer "
                    <select class="mapper-layer" on:change=move |ev| {
                        if let Ok(l) = event_target_value(&ev).parse::<u32>() {
                            set(&|s| s.layer_idx = l);
                            layers.update(|all| if let Some(x) = all.get_mut(panel_idx) { *x = l });
                        }
                    }>
                        {move || (0..hidden_layers.get()).map(|l| view! {
                            <option value=l.to_string() selected=move || settings.get().layer_idx == l>{(l + 1).to_string()}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label>" lens "
                    <select class="mapper-lens" on:change=move |ev| { let v = event_target_value(&ev); set(&|s| s.lens = v.clone()); }>
                        {[("pca1", "PCA 1"), ("pca2", "PCA 1+2"), ("norm", "L2 norm"), ("knn", "k-NN distance"), ("score", "predicted score")]
                            .into_iter().map(|(k, t)| view! { <option value=k selected=move || settings.get().lens == k>{t}</option> }).collect_view()}
                    </select>
                </label>
                <label>" intervals "
                    <input class="mapper-intervals" type="number" min="1" max="100" prop:value=move || settings.get().intervals.to_string()
                        on:change=move |ev| { if let Ok(n) = event_target_value(&ev).parse::<u32>() { set(&|s| s.intervals = n.clamp(1, 100)); } } />
                </label>
                <label>" overlap % "
                    <input class="mapper-overlap" type="number" min="0" max="90" prop:value=move || settings.get().overlap_pct.to_string()
                        on:change=move |ev| { if let Ok(n) = event_target_value(&ev).parse::<u32>() { set(&|s| s.overlap_pct = n.min(90)); } } />
                </label>
                <label>" clusterer "
                    <select class="mapper-clusterer" on:change=move |ev| { let v = event_target_value(&ev); set(&|s| s.clusterer = v.clone()); }>
                        <option value="dbscan" selected=move || settings.get().clusterer == "dbscan">"DBSCAN"</option>
                        <option value="single" selected=move || settings.get().clusterer == "single">"single linkage"</option>
                    </select>
                </label>
                <label>" eps "
                    <input class="mapper-eps" type="text" size="5" prop:value=move || settings.get().eps
                        on:change=move |ev| { let v = event_target_value(&ev); set(&|s| s.eps = if v.trim().is_empty() { "auto".to_owned() } else { v.trim().to_owned() }); } />
                </label>
                <Show when=move || settings.get().lens == "knn">
                    <label>" k "
                        <input class="mapper-k" type="number" min="1" max="50" prop:value=move || settings.get().k.to_string()
                            on:change=move |ev| { if let Ok(n) = event_target_value(&ev).parse::<u32>() { set(&|s| s.k = n.clamp(1, 50)); } } />
                    </label>
                </Show>
                <label>" min edge % "
                    <input class="mapper-min-edge" type="number" min="0" max="100" prop:value=move || settings.get().min_edge_pct.to_string()
                        on:change=move |ev| { if let Ok(n) = event_target_value(&ev).parse::<u32>() { set(&|s| s.min_edge_pct = n.min(100)); } } />
                </label>
                <label>" colour "
                    <select class="mapper-colour" on:change=move |ev| colour_by.set(ColourBy::parse(&event_target_value(&ev)))>
                        {ColourBy::ALL.into_iter().map(|(c, k, t)| view! { <option value=k selected=move || colour_by.get() == c>{t}</option> }).collect_view()}
                    </select>
                </label>
                <button class="mapper-reset" on:click=move |_| view_box.set(View { scale: 1.0, tx: 0.0, ty: 0.0 })>"reset view"</button>
                <button class="mapper-remove" on:click=move |_| layers.update(|all| { if panel_idx < all.len() { all.remove(panel_idx); } })>"remove"</button>
            </div>
            <svg
                id=svg_id
                class="mapper-graph"
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                data-nodes=move || drawn.get().map_or(0, |(g, _)| g.nodes.len()).to_string()
                data-edges=move || drawn.get().map_or(0, |(g, _)| g.edges.len()).to_string()
                data-loading=move || loading.get().to_string()
                on:click=on_click
                on:wheel=on_wheel
                on:mousedown=move |ev| drag.set_value(Some((f64::from(ev.client_x()), f64::from(ev.client_y()))))
                on:mousemove=move |ev| {
                    if let Some((x, y)) = drag.get_value() {
                        let (nx, ny) = (f64::from(ev.client_x()), f64::from(ev.client_y()));
                        drag.set_value(Some((nx, ny)));
                        view_box.update(|v| { v.tx += nx - x; v.ty += ny - y; });
                    }
                }
                on:mouseup=move |_| drag.set_value(None)
                on:mouseleave=move |_| drag.set_value(None)
            >
                <g transform=move || { let v = view_box.get(); format!("translate({:.1},{:.1}) scale({:.3})", v.tx, v.ty, v.scale) }
                    inner_html=move || body().unwrap_or_default()></g>
            </svg>
            <p class="note mapper-status">
                {move || match (error.get(), drawn.get()) {
                    (Some(e), _) => format!("could not map: {e}"),
                    (None, Some((g, _))) => format!("{} nodes, {} edges over {} instances · scroll to zoom, drag to pan, click a node to select its instances", g.nodes.len(), g.edges.len(), g.instance_count),
                    (None, None) => "waiting for the first epoch…".to_owned(),
                }}
            </p>
            <div class="legend">
                {move || match colour_by.get() {
                    ColourBy::MajorityClass => (0..10u32).map(|c| view! {
                        <span class="swatch" style=format!("background:{}", class_colour(c))></span>{c.to_string()}
                    }).collect_view().into_any(),
                    other => {
                        let label = ColourBy::ALL.iter().find(|(c, _, _)| *c == other).map_or("", |(_, _, t)| *t);
                        view! {
                            <span>{format!("{label}: ")}</span>
                            <span class="swatch" style=format!("background:{}", ramp(0.0))></span>"low"
                            <span class="swatch" style=format!("background:{}", ramp(0.5))></span>
                            <span class="swatch" style=format!("background:{}", ramp(1.0))></span>"high"
                        }.into_any()
                    }
                }}
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actiscope_layout::fixtures::{chain, mapper_node as node};

    #[test]
    fn markup_marks_selected_nodes() {
        let graph = chain(3);
        let pos = layout(&graph, &HashMap::new());
        let svg = markup(&graph, &pos, ColourBy::Purity, &HashSet::from([3]));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches("<line").count(), 2);
        assert_eq!(svg.matches("mapper-node hit").count(), 1);
        assert_eq!(svg.matches("mapper-node dim").count(), 2);
        assert!(svg.contains(r#"data-node="1" data-id="1""#));
        let none = markup(&graph, &pos, ColourBy::MajorityClass, &HashSet::new());
        assert_eq!(none.matches("mapper-node\"").count(), 3);
        assert!(none.contains(&class_colour(0)));
    }

    #[test]
    fn paths_carry_the_settings() {
        let mut s = PanelSettings::for_layer(1);
        assert_eq!(
            mapper_path(3, 7, &s),
            "/api/runs/3/epochs/7/mapper?layer=1&lens=pca1&intervals=10&overlap=30&clusterer=dbscan&eps=auto"
        );
        s.clusterer = "single".into();
        assert!(!mapper_path(3, 7, &s).contains("eps"));
        s.lens = "knn".into();
        s.k = 9;
        s.min_edge_pct = 25;
        assert!(mapper_path(3, 7, &s).ends_with("&k=9&min_edge=0.25"));
        let mut n = node(4, None, vec![1, 2]);
        assert!(describe(&n).ends_with("exemplars -"));
        n.exemplars = vec![2, 1];
        assert!(
            describe(&n).ends_with("exemplars #2 #1"),
            "{}",
            describe(&n)
        );
        assert!(describe(&n).contains("majority class 0"));
    }
}
