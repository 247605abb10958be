//! The factorization lens: coupled NMF of the probe set's inputs and activations at the epoch
//! on screen (latent images, neurons x factors heatmaps), the reconstruction error against
//! rank and the singular-value spectra of each layer, with the first, shown and last epochs on
//! one chart. Clicking a factor selects its top instances (inspector, APD and mapper follow).

use actiscope_protocol::WireMatrix;
use actiscope_protocol::nmf::{NmfResult, RmseCurve, Spectra};
use leptos::prelude::*;

use crate::charts::XyChart;
use crate::downloads::{FigureLinks, FigureRef};
use crate::images::{grey_bmp_data_url, palette_bmp_data_url};
use actiscope_layout::colour::ramp_rgb;

/// Column `factor` of a loadings matrix scaled to bytes (largest value = 255).
pub fn latent_image(loadings: &WireMatrix, factor: usize) -> Vec<u8> {
    let cols = loadings.cols as usize;
    let column: Vec<f32> = loadings
        .values
        .chunks_exact(cols.max(1))
        .map(|row| row.get(factor).copied().unwrap_or(0.0))
        .collect();
    let max = column.iter().copied().fold(0.0f32, f32::max);
    column
        .iter()
        .map(|v| {
            if max > 0.0 {
                (v / max * 255.0).round().clamp(0.0, 255.0) as u8
            } else {
                0
            }
        })
        .collect()
}

/// Size of a heatmap cell, in SVG units (and CSS pixels at scale 1).
pub const CELL: f64 = 10.0;

/// A `neurons x factors` heatmap as an image: one pixel per loading (scaled up without
/// smoothing by the `<svg>` that shows it), the colour on [`ramp`] relative to the block's
/// largest loading. One image instead of an element per cell keeps an epoch change cheap.
/// Returns the data URL and the drawing's width and height.
pub fn heatmap_image(loadings: &WireMatrix) -> (String, f64, f64) {
    let (rows, cols) = (loadings.rows as usize, loadings.cols as usize);
    let max = loadings.values.iter().copied().fold(0.0f32, f32::max);
    let pixels: Vec<u8> = loadings
        .values
        .iter()
        .map(|&v| {
            let t = if max > 0.0 { v / max } else { 0.0 };
            (255.0 * t.clamp(0.0, 1.0)).round() as u8
        })
        .collect();
    let palette: Vec<[u8; 3]> = (0..=255u8)
        .map(|level| ramp_rgb(f64::from(level) / 255.0))
        .collect();
    (
        palette_bmp_data_url(&pixels, rows, cols, &palette),
        cols as f64 * CELL,
        rows as f64 * CELL,
    )
}

/// The loading under drawing point `(x, y)` of a heatmap: `(neuron, factor, value)`.
pub fn heatmap_cell(loadings: &WireMatrix, x: f64, y: f64) -> Option<(usize, usize, f32)> {
    if x < 0.0 || y < 0.0 {
        return None;
    }
    let (row, col) = ((y / CELL) as usize, (x / CELL) as usize);
    let cols = loadings.cols as usize;
    if col >= cols || row >= loadings.rows as usize {
        return None;
    }
    Some((row, col, *loadings.values.get(row * cols + col)?))
}

/// Epochs compared on the charts: the first, the one on screen and the latest, without repeats.
pub fn compared_epochs(shown: u32, latest: u32) -> Vec<u32> {
    let mut epochs = vec![1, shown, latest];
    epochs.retain(|&e| e >= 1);
    epochs.sort_unstable();
    epochs.dedup();
    epochs
}

fn nmf_query(rank: u32, inputs: bool) -> String {
    format!("rank={rank}&inputs={inputs}&balance=true")
}

fn factor_of(ev: &leptos::ev::MouseEvent) -> Option<usize> {
    use wasm_bindgen::JsCast;
    let element = ev.target()?.dyn_into::<web_sys::Element>().ok()?;
    let holder = element.closest("[data-factor]").ok()??;
    holder.get_attribute("data-factor")?.parse().ok()
}

/// The factorization panel.
#[component]
pub fn FactorPanel(
    /// Subscribed run.
    run_id: Signal<Option<i64>>,
    /// Epoch on screen.
    epoch: Signal<Option<u32>>,
    /// Latest stored epoch.
    latest_epoch: Signal<u32>,
    /// Whether the run's inputs are images (only then can they join the factorization).
    has_images: Signal<bool>,
    /// Called with a label and the top instances of a clicked factor.
    on_select: Callback<(String, Vec<u32>)>,
) -> impl IntoView {
    let rank = RwSignal::new(10u32);
    let with_inputs = RwSignal::new(true);
    let result = RwSignal::new(None::<std::sync::Arc<NmfResult>>);
    let error = RwSignal::new(None::<String>);
    let loading = RwSignal::new(false);
    let chosen = RwSignal::new(None::<usize>);
    let spectra = RwSignal::new(Vec::<Spectra>::new());
    let spectra_layer = RwSignal::new(0usize);
    let curves = RwSignal::new(Vec::<RmseCurve>::new());
    let curves_state = RwSignal::new(String::new());
    let in_flight = crate::api::LatestOnly::new();

    Effect::new(move |_| {
        let (Some(run_id), Some(epoch)) = (run_id.get(), epoch.get()) else {
            return;
        };
        let inputs = with_inputs.get() && has_images.get();
        let path = format!(
            "/api/runs/{run_id}/epochs/{epoch}/nmf?{}",
            nmf_query(rank.get(), inputs)
        );
        loading.set(true);
        in_flight.get::<NmfResult>(path, move |answer| {
            loading.set(false);
            match answer {
                Ok(r) => {
                    error.set(None);
                    result.set(Some(std::sync::Arc::new(r)));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    });

    // Spectra of a stored epoch never change: each is kept once fetched, so scrubbing only
    // asks for the newly shown epoch (two changes in quick succession may both ask for it).
    // A newer epoch or run change drops an older one's answer.
    let spectra_cache =
        StoredValue::new_local(std::collections::HashMap::<(i64, u32), Spectra>::new());
    let spectra_generation = StoredValue::new_local(0u64);
    // The run `spectra` shows.
    let spectra_run = StoredValue::new_local(None::<i64>);
    Effect::new(move |_| {
        // Whatever happens next, answers for the previous epoch or run are stale now.
        spectra_generation.update_value(|g| *g += 1);
        let generation = spectra_generation.get_value();
        let (Some(run_id), Some(epoch)) = (run_id.get(), epoch.get()) else {
            spectra_run.set_value(None);
            spectra.set(Vec::new());
            return;
        };
        if spectra_run.get_value() != Some(run_id) {
            spectra_run.set_value(Some(run_id));
            spectra.set(Vec::new());
        }
        let epochs = compared_epochs(epoch, latest_epoch.get());
        spectra_cache.update_value(|c| c.retain(|&(run, _), _| run == run_id));
        leptos::task::spawn_local(async move {
            let mut all = Vec::new();
            for e in epochs {
                let cached = spectra_cache.with_value(|c| c.get(&(run_id, e)).cloned());
                let fetched = match cached {
                    Some(s) => Some(s),
                    None => {
                        let path = format!("/api/runs/{run_id}/epochs/{e}/spectra");
                        let answer = crate::api::get_json::<Spectra>(&path).await;
                        answer.ok().inspect(|s| {
                            spectra_cache.update_value(|c| {
                                c.insert((run_id, e), s.clone());
                            });
                        })
                    }
                };
                if spectra_generation.get_value() != generation {
                    return;
                }
                all.extend(fetched);
            }
            spectra.set(all);
        });
    });

    let compute_curves = move |_| {
        let (Some(run_id), Some(epoch)) = (run_id.get_untracked(), epoch.get_untracked()) else {
            return;
        };
        let inputs = with_inputs.get_untracked() && has_images.get_untracked();
        let epochs = compared_epochs(epoch, latest_epoch.get_untracked());
        curves_state.set("computing…".to_owned());
        leptos::task::spawn_local(async move {
            let mut all = Vec::new();
            for (done, e) in epochs.iter().enumerate() {
                curves_state.set(format!(
                    "computing epoch {e} ({} of {})…",
                    done + 1,
                    epochs.len()
                ));
                let path = format!(
                    "/api/runs/{run_id}/epochs/{e}/nmf/rmse?ranks=10,20,30,40,50&{}",
                    nmf_query(10, inputs)
                );
                match crate::api::get_json::<RmseCurve>(&path).await {
                    Ok(c) => all.push(c),
                    Err(err) => {
                        curves_state.set(format!("failed: {err}"));
                        return;
                    }
                }
            }
            curves.set(all);
            curves_state.set(String::new());
        });
    };

    let pick_factor = move |factor: usize| {
        let Some(r) = result.get_untracked() else {
            return;
        };
        chosen.set(Some(factor));
        let instances = r.top_instances.get(factor).cloned().unwrap_or_default();
        on_select.run((
            format!(
                "NMF factor {} (top {} instances)",
                factor + 1,
                instances.len()
            ),
            instances,
        ));
    };
    let pick = move |ev: leptos::ev::MouseEvent| {
        if let Some(factor) = factor_of(&ev) {
            pick_factor(factor);
        }
    };

    let latent_grid = move || {
        let r = result.get()?;
        let (rows, cols) = r.image_shape?;
        let block = r.blocks.iter().find(|b| b.layer_idx.is_none())?;
        let chosen = chosen.get();
        Some(
            (0..block.loadings.cols as usize)
                .map(|k| {
                    let url = grey_bmp_data_url(&latent_image(&block.loadings, k), rows as usize, cols as usize);
                    let class = if chosen == Some(k) { "latent chosen" } else { "latent" };
                    view! {
                        <figure class=class data-factor=k.to_string()>
                            <img src=url alt=format!("latent image of factor {}", k + 1) width="56" height="56" />
                            <figcaption>{format!("factor {}", k + 1)}</figcaption>
                        </figure>
                    }
                })
                .collect_view(),
        )
    };
    let heatmaps = move || {
        let r = result.get()?;
        let chosen = chosen.get();
        Some(
            r.blocks
                .iter()
                .filter(|b| b.layer_idx.is_some())
                .map(|b| {
                    let (url, w, h) = heatmap_image(&b.loadings);
                    let loadings = b.loadings.clone();
                    let readout = RwSignal::new(String::new());
                    let outline = chosen
                        .filter(|&c| c < b.loadings.cols as usize)
                        .map(|c| view! {
                            <rect class="factor-chosen" x=(c as f64 * CELL).to_string() y="0"
                                width=CELL.to_string() height=h.to_string()></rect>
                        });
                    let cell_at = move |ev: &leptos::ev::MouseEvent| {
                        let (x, y) = crate::charts::svg_point(ev, w, h)?;
                        heatmap_cell(&loadings, x, y)
                    };
                    let hover_cell = cell_at.clone();
                    view! {
                        <figure class="heatmap">
                            <figcaption>{format!("{}: neurons × factors (rmse {:.4})", b.name, b.rmse)}</figcaption>
                            <svg class="factor-heatmap" viewBox=format!("0 0 {w} {h}") width=w.to_string() height=h.to_string()
                                on:click=move |ev| {
                                    if let Some((_, factor, _)) = cell_at(&ev) {
                                        pick_factor(factor);
                                    }
                                }
                                on:mousemove=move |ev| readout.set(hover_cell(&ev).map_or_else(String::new, |(n, f, v)| {
                                    format!("neuron {}, factor {}: {v:.3}", n + 1, f + 1)
                                }))
                                on:mouseleave=move |_| readout.set(String::new())>
                                <image href=url x="0" y="0" width=w.to_string() height=h.to_string()
                                    preserveAspectRatio="none" style="image-rendering: pixelated"></image>
                                {outline}
                            </svg>
                            <figcaption class="readout">{move || readout.get()}</figcaption>
                        </figure>
                    }
                })
                .collect_view(),
        )
    };
    let spectra_series = Signal::derive(move || {
        let layer = spectra_layer.get();
        spectra
            .get()
            .iter()
            .map(|s| {
                let values = s.layers.get(layer).cloned().unwrap_or_default();
                (
                    format!("epoch {}", s.epoch),
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| ((i + 1) as f64, f64::from(v)))
                        .collect(),
                )
            })
            .collect()
    });
    let curve_series = Signal::derive(move || {
        curves
            .get()
            .iter()
            .map(|c| {
                (
                    format!("epoch {}", c.epoch),
                    c.points.iter().map(|&(r, e)| (f64::from(r), e)).collect(),
                )
            })
            .collect()
    });
    let layer_count = move || spectra.with(|s| s.first().map_or(0, |s| s.layers.len()));
    // The figure of the factorization on screen.
    let nmf_figure = move |name: &'static str| {
        let (run_id, epoch) = (run_id.get()?, epoch.get()?);
        let inputs = with_inputs.get() && has_images.get();
        Some(FigureRef {
            run_id,
            name,
            query: format!("epoch={epoch}&{}", nmf_query(rank.get(), inputs)),
        })
    };
    view! {
        <section class="panel" id="factor-section">
            <h2>"Factorization lens: coupled NMF of inputs and activations"</h2>
            <p class="figure-row">
                "Figures: latent images " <FigureLinks id="fig-latents" figure=Signal::derive(move || nmf_figure("nmf-latents"))
                    /> " · neurons × factors " <FigureLinks id="fig-factors" figure=Signal::derive(move || nmf_figure("nmf-factors"))
                    /> " · singular values " <FigureLinks id="fig-spectra" figure=Signal::derive(move || {
                        let (run_id, epoch) = (run_id.get()?, epoch.get()?);
                        Some(FigureRef { run_id, name: "spectra", query: format!("epoch={epoch}") })
                    }) /> " · RMSE against rank " <FigureLinks id="fig-rmse" figure=Signal::derive(move || {
                        let (run_id, epoch) = (run_id.get()?, epoch.get()?);
                        let epochs: Vec<String> = compared_epochs(epoch, latest_epoch.get()).iter().map(u32::to_string).collect();
                        let inputs = with_inputs.get() && has_images.get();
                        Some(FigureRef { run_id, name: "nmf-rmse", query: format!("epochs={}&ranks=10,20,30,40,50&{}", epochs.join(","), nmf_query(10, inputs)) })
                    }) />
            </p>
            <div class="factor-controls">
                <label>"rank "
                    <select id="nmf-rank" on:change=move |ev| { if let Ok(r) = event_target_value(&ev).parse::<u32>() { chosen.set(None); rank.set(r); } }>
                        {[5u32, 10, 20, 30, 50].into_iter().map(|r| view! { <option value=r.to_string() selected=move || rank.get() == r>{r.to_string()}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    <input id="nmf-inputs" type="checkbox" prop:checked=move || with_inputs.get() && has_images.get()
                        disabled=move || !has_images.get()
                        on:change=move |ev| with_inputs.set(event_target_checked(&ev)) />
                    " include input pixels"
                </label>
                <span id="nmf-status" class="note" data-loading=move || loading.get().to_string()
                    title=move || result.get().filter(|r| !r.fitted_on.is_empty()).map(|r| format!("fitted on {}", r.fitted_on)).unwrap_or_default()>
                    {move || match (error.get(), result.get()) {
                        (Some(e), _) => format!("could not factorize: {e}"),
                        (None, Some(r)) => format!("epoch {}: rmse {:.4} after {} rounds{}; click a factor to select its top instances", r.epoch, r.rmse, r.objective.len(), fitted_where(&r.fitted_on)),
                        (None, None) => "waiting for the first epoch…".to_owned(),
                    }}
                </span>
            </div>
            <div class="latent-grid" id="latent-grid" on:click=pick>{latent_grid}</div>
            <div class="heatmaps" id="factor-heatmaps">{heatmaps}</div>
            <div class="charts">
                <div>
                    <XyChart id="chart-spectra" title="Singular values of the layer's activations" x_label="index" log_y=true series=spectra_series />
                    <label>"layer "
                        <select id="spectra-layer" on:change=move |ev| { if let Ok(l) = event_target_value(&ev).parse::<usize>() { spectra_layer.set(l); } }>
                            {move || (0..layer_count()).map(|l| view! { <option value=l.to_string() selected=move || spectra_layer.get() == l>{(l + 1).to_string()}</option> }).collect_view()}
                        </select>
                    </label>
                </div>
                <div>
                    <XyChart id="chart-rmse" title="NMF reconstruction error against rank" x_label="rank" log_y=false series=curve_series />
                    <button id="rmse-compute" on:click=compute_curves>"compute RMSE vs rank"</button>
                    <span class="note" id="rmse-state">{move || curves_state.get()}</span>
                </div>
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actiscope_layout::colour::ramp;

    #[test]
    fn latent_images_scale_each_factor_to_its_maximum() {
        // 3 pixels x 2 factors.
        let loadings = WireMatrix {
            rows: 3,
            cols: 2,
            values: vec![0.0, 1.0, 0.5, 2.0, 1.0, 0.0],
        };
        assert_eq!(latent_image(&loadings, 0), vec![0, 128, 255]);
        assert_eq!(latent_image(&loadings, 1), vec![128, 255, 0]);
        assert_eq!(latent_image(&loadings, 5), vec![0, 0, 0]);
    }

    #[test]
    fn heatmap_is_one_pixel_per_loading_and_cells_are_found_by_position() {
        let loadings = WireMatrix {
            rows: 2,
            cols: 3,
            values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        };
        let (url, w, h) = heatmap_image(&loadings);
        assert!(url.starts_with("data:image/bmp;base64,"));
        assert_eq!((w, h), (30.0, 20.0));
        assert_eq!(heatmap_cell(&loadings, 25.0, 5.0), Some((0, 2, 2.0)));
        assert_eq!(heatmap_cell(&loadings, 0.0, 19.9), Some((1, 0, 3.0)));
        assert_eq!(heatmap_cell(&loadings, 30.0, 5.0), None);
        assert_eq!(heatmap_cell(&loadings, -1.0, 5.0), None);
        assert_eq!(ramp_rgb(0.0), [198, 219, 239]);
        assert_eq!(ramp(1.0), format!("rgb({},{},{})", 165, 15, 21));
    }

    #[test]
    fn compared_epochs_are_unique_and_sorted() {
        assert_eq!(compared_epochs(5, 9), vec![1, 5, 9]);
        assert_eq!(compared_epochs(1, 1), vec![1]);
        assert_eq!(compared_epochs(9, 9), vec![1, 9]);
    }
}

/// " on DEVICE" from a result's `fitted_on` (the device before its reason), or nothing from
/// a server that did not say.
fn fitted_where(fitted_on: &str) -> String {
    match fitted_on.split(';').next().map(str::trim) {
        Some(device) if !device.is_empty() => format!(" on {device}"),
        _ => String::new(),
    }
}
