//! The similarity lens: SVCCA, PWCCA or linear CKA between layers, as heatmaps (the SVCCA
//! paper's pictures): each hidden layer at every stored epoch against itself at the final one,
//! every layer against every other at the epoch on screen, and the hidden layers of this run
//! against another run's. Clicking a cell of the layers x epochs grid moves the epoch slider.
//!
//! The pure parts (colours, titles, cell geometry) sit at the top and are host-tested; the
//! component below only fetches through [`crate::api::LatestOnly`] and draws SVG.

use actiscope_protocol::RunSummary;
use actiscope_protocol::similarity::SimilarityGrid;
use leptos::prelude::*;

use actiscope_layout::colour::ramp;

use crate::downloads::{FigureLinks, FigureRef};

/// The methods the server knows, in the switch's order.
pub const METHODS: [&str; 4] = ["cka", "cka-debiased", "svcca", "pwcca"];

/// The method shown first.
pub const DEFAULT_METHOD: &str = "svcca";

/// Side of a heatmap cell, in SVG units.
pub const SIM_CELL: f64 = 22.0;

/// Room left of the cells for the row labels, in SVG units.
pub const LABEL_W: f64 = 64.0;

/// Room above the cells for the column labels, in SVG units.
pub const LABEL_H: f64 = 18.0;

/// Fill of an empty cell.
pub const EMPTY_FILL: &str = "#bbbbbb";

/// The fill of a cell: grey when empty, else its value on the 0..1 ramp (debiased CKA below
/// 0 is drawn as 0).
pub fn cell_fill(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => ramp(v.clamp(0.0, 1.0)),
        _ => EMPTY_FILL.to_owned(),
    }
}

/// A value as the titles and `data-value` attributes write it; empty for an empty cell.
pub fn value_text(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => String::new(),
    }
}

/// The hover title of a cell: its row and column and the value, or why it is empty.
pub fn cell_title(row: &str, col: &str, value: Option<f64>, problems: &[String]) -> String {
    let text = value_text(value);
    if text.is_empty() {
        let why = if problems.is_empty() {
            "no value".to_owned()
        } else {
            problems.join("; ")
        };
        format!("{row}, {col}: empty ({why})")
    } else {
        format!("{row}, {col}: {text}")
    }
}

/// Top-left corner of cell (`row`, `col`) in the drawing.
pub fn cell_origin(row: usize, col: usize) -> (f64, f64) {
    (
        LABEL_W + col as f64 * SIM_CELL,
        LABEL_H + row as f64 * SIM_CELL,
    )
}

/// Width and height of the drawing of a `rows x cols` grid.
pub fn grid_size(rows: usize, cols: usize) -> (f64, f64) {
    (
        LABEL_W + cols as f64 * SIM_CELL + 2.0,
        LABEL_H + rows as f64 * SIM_CELL + 2.0,
    )
}

/// A short column label: `epoch 3` becomes `3`, `layer 2` becomes `L2`, `input` becomes `in`.
pub fn short_label(label: &str) -> String {
    if let Some(epoch) = label.strip_prefix("epoch ") {
        epoch.to_owned()
    } else if let Some(layer) = label.strip_prefix("layer ") {
        format!("L{layer}")
    } else if label == "input" {
        "in".to_owned()
    } else {
        label.to_owned()
    }
}

/// The query of a layers x epochs request.
pub fn epochs_path(run_id: i64, method: &str) -> String {
    format!("/api/runs/{run_id}/similarity?method={method}&reference=final")
}

/// How cells are tagged: the layers x epochs grid says which layer and epoch, the others which
/// row and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tagging {
    LayerEpoch,
    RowCol,
}

/// One heatmap as SVG: a `rect.sim-cell` per cell with a `<title>`, labels on both sides;
/// `current` marks the cells of one column with `sim-current`.
fn heatmap(
    id: &'static str,
    grid: &SimilarityGrid,
    tagging: Tagging,
    current: Option<usize>,
    on_cell: Option<Callback<usize>>,
    readout: RwSignal<String>,
) -> impl IntoView + use<> {
    let (rows, cols) = (grid.row_labels.len(), grid.col_labels.len());
    let (w, h) = grid_size(rows, cols);
    let problems = grid.problems.clone();
    let mut cells = Vec::with_capacity(rows * cols);
    for (r, row_label) in grid.row_labels.iter().enumerate() {
        for (c, col_label) in grid.col_labels.iter().enumerate() {
            let value = grid.get(r, c);
            let (x, y) = cell_origin(r, c);
            let title = cell_title(row_label, col_label, value, &problems);
            let hover = title.clone();
            let class = if current == Some(c) {
                "sim-cell sim-current"
            } else {
                "sim-cell"
            };
            let by_epoch = tagging == Tagging::LayerEpoch;
            let layer = by_epoch.then(|| r.to_string());
            let epoch =
                by_epoch.then(|| grid.epochs.get(c).map(u32::to_string).unwrap_or_default());
            let row = (!by_epoch).then(|| r.to_string());
            let col = (!by_epoch).then(|| c.to_string());
            let rect = view! {
                <rect class=class x=x.to_string() y=y.to_string()
                    width=(SIM_CELL - 1.0).to_string() height=(SIM_CELL - 1.0).to_string()
                    fill=cell_fill(value) data-value=value_text(value)
                    data-layer=layer data-epoch=epoch data-row=row data-col=col
                    on:mouseenter=move |_| readout.set(hover.clone())
                    on:click=move |_| { if let Some(f) = on_cell { f.run(c); } }>
                    <title>{title}</title>
                </rect>
            };
            cells.push(rect);
        }
    }
    let row_labels = grid
        .row_labels
        .iter()
        .enumerate()
        .map(|(r, label)| {
            let (_, y) = cell_origin(r, 0);
            view! {
                <text class="sim-label" x=(LABEL_W - 4.0).to_string() y=(y + SIM_CELL * 0.65).to_string()
                    text-anchor="end">{label.clone()}</text>
            }
        })
        .collect_view();
    let col_labels = grid
        .col_labels
        .iter()
        .enumerate()
        .map(|(c, label)| {
            let (x, _) = cell_origin(0, c);
            view! {
                <text class="sim-label" x=(x + SIM_CELL / 2.0).to_string() y=(LABEL_H - 5.0).to_string()
                    text-anchor="middle">{short_label(label)}</text>
            }
        })
        .collect_view();
    let outline = current.filter(|&c| c < cols).map(|c| {
        let (x, y) = cell_origin(0, c);
        view! {
            <rect class="sim-current-outline" x=(x - 1.0).to_string() y=(y - 1.0).to_string()
                width=(SIM_CELL + 1.0).to_string() height=(rows as f64 * SIM_CELL + 1.0).to_string()
                fill="none" stroke="#222" stroke-width="2" pointer-events="none"></rect>
        }
    });
    view! {
        <svg id=id class="sim-heatmap" viewBox=format!("0 0 {w} {h}") width=w.to_string() height=h.to_string()
            data-rows=rows.to_string() data-cols=cols.to_string() data-method=grid.method.clone()
            on:mouseleave=move |_| readout.set(String::new())>
            {row_labels}
            {col_labels}
            {cells}
            {outline}
        </svg>
    }
}

/// The similarity panel.
#[component]
pub fn SimilarityPanel(
    /// Subscribed run.
    run_id: Signal<Option<i64>>,
    /// Epoch on screen.
    epoch: Signal<Option<u32>>,
    /// Latest stored epoch.
    latest_epoch: Signal<u32>,
    /// Every run the server lists.
    runs: Signal<Vec<RunSummary>>,
    /// The method shown (mirrored in the URL as `sim`).
    method: RwSignal<String>,
    /// The run compared with, if any (mirrored in the URL as `compare`).
    compare_with: RwSignal<Option<i64>>,
    /// Called with the epoch of a clicked layers x epochs cell.
    on_epoch: Callback<u32>,
) -> impl IntoView {
    let over_epochs = RwSignal::new(None::<SimilarityGrid>);
    let over_layers = RwSignal::new(None::<SimilarityGrid>);
    let compared = RwSignal::new(None::<SimilarityGrid>);
    let message = RwSignal::new(String::new());
    let readout = RwSignal::new(String::new());
    let epochs_in_flight = crate::api::LatestOnly::new();
    let layers_in_flight = crate::api::LatestOnly::new();
    let compare_in_flight = crate::api::LatestOnly::new();

    // Layers x epochs: again when the run, the method or the latest epoch changes.
    Effect::new(move |_| {
        let (Some(run_id), latest) = (run_id.get(), latest_epoch.get()) else {
            return;
        };
        let method = method.get();
        if latest == 0 {
            epochs_in_flight.cancel();
            over_epochs.set(None);
            return;
        }
        epochs_in_flight.get::<SimilarityGrid>(epochs_path(run_id, &method), move |answer| {
            match answer {
                Ok(grid) => over_epochs.set(Some(grid)),
                Err(e) => {
                    over_epochs.set(None);
                    message.set(format!("could not compare epochs: {e}"));
                }
            }
        });
    });
    // Layers x layers of the epoch on screen.
    Effect::new(move |_| {
        let (Some(run_id), Some(epoch)) = (run_id.get(), epoch.get()) else {
            layers_in_flight.cancel();
            over_layers.set(None);
            return;
        };
        let method = method.get();
        layers_in_flight.get::<SimilarityGrid>(
            format!("/api/runs/{run_id}/epochs/{epoch}/similarity?method={method}"),
            move |answer| match answer {
                Ok(grid) => over_layers.set(Some(grid)),
                Err(e) => {
                    over_layers.set(None);
                    message.set(format!("could not compare layers: {e}"));
                }
            },
        );
    });
    // Another run changes the choices: forget the comparison.
    Effect::new(move |previous: Option<Option<i64>>| {
        let current = run_id.get();
        // From no run to the first (a page load) keeps the comparison the URL asked for.
        if previous.flatten().is_some_and(|p| Some(p) != current) {
            compare_with.set(None);
            over_epochs.set(None);
        }
        current
    });
    // This run's hidden layers against the chosen run's, latest epochs of both.
    Effect::new(move |_| {
        let (Some(run_id), Some(other)) = (run_id.get(), compare_with.get()) else {
            compare_in_flight.cancel();
            compared.set(None);
            message.set(String::new());
            return;
        };
        // Again when this run gets a new epoch.
        let _ = latest_epoch.get();
        let method = method.get();
        message.set("comparing…".to_owned());
        compare_in_flight.get::<SimilarityGrid>(
            format!("/api/runs/{run_id}/compare/{other}?method={method}"),
            move |answer| match answer {
                Ok(grid) => {
                    message.set(String::new());
                    compared.set(Some(grid));
                }
                Err(e) => {
                    compared.set(None);
                    message.set(e);
                }
            },
        );
    });

    let pick_epoch = Callback::new(move |col: usize| {
        let epoch =
            over_epochs.with_untracked(|g| g.as_ref().and_then(|g| g.epochs.get(col).copied()));
        if let Some(epoch) = epoch {
            on_epoch.run(epoch);
        }
    });
    let epochs_view = move || {
        over_epochs.with(|grid| {
            grid.as_ref().map(|grid| {
                let shown = epoch.get();
                let current = grid.epochs.iter().position(|&e| Some(e) == shown);
                heatmap(
                    "similarity-epochs",
                    grid,
                    Tagging::LayerEpoch,
                    current,
                    Some(pick_epoch),
                    readout,
                )
            })
        })
    };
    let layers_view = move || {
        over_layers.with(|grid| {
            grid.as_ref().map(|grid| {
                heatmap(
                    "similarity-layers",
                    grid,
                    Tagging::RowCol,
                    None,
                    None,
                    readout,
                )
            })
        })
    };
    let compare_view = move || {
        compared.with(|grid| {
            grid.as_ref().map(|grid| {
                heatmap(
                    "similarity-compare-grid",
                    grid,
                    Tagging::RowCol,
                    None,
                    None,
                    readout,
                )
            })
        })
    };
    let reference_note = move || {
        over_epochs.with(|g| {
            g.as_ref()
                .and_then(|g| g.reference_epoch)
                .map(|e| format!(" (against epoch {e})"))
                .unwrap_or_default()
        })
    };

    view! {
        <section class="panel" id="similarity-section"
            data-run=move || run_id.get().map(|r| r.to_string()).unwrap_or_default()>
            <h2>"Similarity lens: how layers compare across epochs, layers and runs"</h2>
            <div class="similarity-controls">
                <label>"method "
                    <select id="similarity-method" on:change=move |ev| method.set(event_target_value(&ev))>
                        {METHODS.into_iter().map(|m| view! {
                            <option value=m selected=move || method.with(|x| x == m)>{m}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label>" compare with run "
                    <select id="similarity-compare" on:change=move |ev| {
                        compare_with.set(event_target_value(&ev).parse::<i64>().ok());
                    }>
                        <option value="" selected=move || compare_with.get().is_none()>"—"</option>
                        {move || {
                            let own = run_id.get();
                            runs.get().into_iter().filter(|r| Some(r.run_id) != own).map(|r| {
                                let id = r.run_id;
                                view! {
                                    <option value=id.to_string() selected=move || compare_with.get() == Some(id)>
                                        {format!("#{} {}", r.run_id, r.name)}
                                    </option>
                                }
                            }).collect_view()
                        }}
                    </select>
                </label>
                <span class="note" id="similarity-message">{move || message.get()}</span>
            </div>
            <div class="heatmaps">
                <figure class="heatmap">
                    <figcaption>{move || format!("hidden layers × epochs{}; click a cell to show its epoch", reference_note())}
                        <FigureLinks id="fig-similarity-epochs" figure=Signal::derive(move || {
                            run_id.get().map(|run_id| FigureRef { run_id, name: "similarity-epochs", query: format!("method={}&reference=final", method.get()) })
                        }) />
                    </figcaption>
                    {epochs_view}
                </figure>
                <figure class="heatmap">
                    <figcaption>{move || epoch.get().map(|e| format!("layers × layers at epoch {e}")).unwrap_or_default()}
                        <FigureLinks id="fig-similarity-layers" figure=Signal::derive(move || {
                            let (run_id, epoch) = (run_id.get()?, epoch.get()?);
                            Some(FigureRef { run_id, name: "similarity-layers", query: format!("epoch={epoch}&method={}", method.get()) })
                        }) />
                    </figcaption>
                    {layers_view}
                </figure>
                <figure class="heatmap">
                    <figcaption>{move || compare_with.get().map(|o| format!("this run's layers × run #{o}'s (latest epochs)")).unwrap_or_default()}
                        <FigureLinks id="fig-similarity-compare" figure=Signal::derive(move || {
                            let (run_id, other) = (run_id.get()?, compare_with.get()?);
                            Some(FigureRef { run_id, name: "similarity-compare", query: format!("compare={other}&method={}", method.get()) })
                        }) />
                    </figcaption>
                    {compare_view}
                </figure>
            </div>
            <p class="note readout" id="similarity-readout">{move || readout.get()}</p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cells_are_grey_and_values_follow_the_ramp() {
        assert_eq!(cell_fill(None), EMPTY_FILL);
        assert_eq!(cell_fill(Some(f64::NAN)), EMPTY_FILL);
        assert_eq!(cell_fill(Some(0.0)), ramp(0.0));
        assert_eq!(cell_fill(Some(1.0)), ramp(1.0));
        assert_eq!(cell_fill(Some(-0.2)), ramp(0.0), "debiased CKA below 0");
        assert_eq!(cell_fill(Some(1.5)), ramp(1.0));
    }

    #[test]
    fn titles_give_the_value_or_why_the_cell_is_empty() {
        assert_eq!(value_text(Some(0.12345)), "0.123");
        assert_eq!(value_text(None), "");
        assert_eq!(
            cell_title("layer 1", "epoch 2", Some(0.5), &[]),
            "layer 1, epoch 2: 0.500"
        );
        let problems = vec!["too few instances".to_owned(), "constant layer".to_owned()];
        assert_eq!(
            cell_title("layer 2", "epoch 1", None, &problems),
            "layer 2, epoch 1: empty (too few instances; constant layer)"
        );
        assert_eq!(
            cell_title("input", "layer 1", None, &[]),
            "input, layer 1: empty (no value)"
        );
    }

    #[test]
    fn cells_tile_the_drawing_after_the_labels() {
        assert_eq!(cell_origin(0, 0), (LABEL_W, LABEL_H));
        assert_eq!(
            cell_origin(2, 3),
            (LABEL_W + 3.0 * SIM_CELL, LABEL_H + 2.0 * SIM_CELL)
        );
        let (w, h) = grid_size(3, 4);
        let (x, y) = cell_origin(2, 3);
        assert!(x + SIM_CELL <= w && y + SIM_CELL <= h);
        assert_eq!(short_label("epoch 12"), "12");
        assert_eq!(short_label("layer 3"), "L3");
        assert_eq!(short_label("input"), "in");
        assert_eq!(
            epochs_path(7, "pwcca"),
            "/api/runs/7/similarity?method=pwcca&reference=final"
        );
        assert!(METHODS.contains(&DEFAULT_METHOD));
    }
}
