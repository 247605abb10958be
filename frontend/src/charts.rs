//! Hand-made SVG charts: unique patterns per layer and the losses over epochs (APD paper
//! Fig. 1), and the strength x purity histograms of the flows (Fig. 3).

use actiscope_layout::colour::SERIES_COLOURS;
use actiscope_protocol::EpochMetrics;
use actiscope_protocol::apd::FlowHistogram;
use leptos::prelude::*;

const W: f64 = 440.0;
const H: f64 = 200.0;
const PAD_L: f64 = 48.0;
const PAD_R: f64 = 10.0;
const PAD_T: f64 = 12.0;
const PAD_B: f64 = 28.0;

/// Points of one series as an SVG `points` attribute, x = epoch (1-based).
pub fn polyline_points(values: &[f64], epochs: usize, max_value: f64) -> String {
    let x_of = |epoch: usize| {
        if epochs <= 1 {
            PAD_L
        } else {
            PAD_L + (epoch - 1) as f64 * (W - PAD_L - PAD_R) / (epochs - 1) as f64
        }
    };
    let y_of = |v: f64| H - PAD_B - (v / max_value.max(f64::MIN_POSITIVE)) * (H - PAD_T - PAD_B);
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, &v)| format!("{:.1},{:.1}", x_of(i + 1), y_of(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line chart of several named series over epochs with a marker at `current` epoch.
#[component]
pub fn LineChart(
    /// Chart id (for tests and styling).
    id: &'static str,
    /// Title.
    title: &'static str,
    /// Named series, one value per epoch.
    series: Signal<Vec<(String, Vec<f64>)>>,
    /// The epoch shown elsewhere, marked with a vertical line.
    current: Signal<Option<usize>>,
) -> impl IntoView {
    // The lines depend on the series only; the marker on the shown epoch only, so scrubbing
    // moves one line instead of redrawing the chart.
    let epochs =
        Memo::new(move |_| series.with(|s| s.iter().map(|(_, v)| v.len()).max().unwrap_or(0)));
    let body = move || {
        let series = series.get();
        let epochs = epochs.get();
        let max_value = series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let lines = series
            .iter()
            .enumerate()
            .map(|(i, (name, values))| {
                let colour = SERIES_COLOURS.get(i % SERIES_COLOURS.len()).copied().unwrap_or("#333");
                let points = polyline_points(values, epochs, max_value);
                let label_y = PAD_T + 12.0 * (i as f64 + 1.0);
                view! {
                    <polyline points=points fill="none" stroke=colour stroke-width="1.8" data-series=name.clone()></polyline>
                    <text x=(W - PAD_R - 4.0).to_string() y=format!("{label_y:.0}") text-anchor="end" fill=colour class="series-label">{name.clone()}</text>
                }
            })
            .collect_view();
        view! {
            <line x1=PAD_L.to_string() x2=PAD_L.to_string() y1=PAD_T.to_string() y2=(H - PAD_B).to_string() class="axis"></line>
            <line x1=PAD_L.to_string() x2=(W - PAD_R).to_string() y1=(H - PAD_B).to_string() y2=(H - PAD_B).to_string() class="axis"></line>
            <text x=(PAD_L - 4.0).to_string() y=(PAD_T + 8.0).to_string() text-anchor="end" class="tick">{format_value(max_value)}</text>
            <text x=(PAD_L - 4.0).to_string() y=(H - PAD_B).to_string() text-anchor="end" class="tick">"0"</text>
            <text x=PAD_L.to_string() y=(H - 8.0).to_string() class="tick">"1"</text>
            <text x=(W - PAD_R).to_string() y=(H - 8.0).to_string() text-anchor="end" class="tick">{format!("epoch {epochs}")}</text>
            {lines}
        }
    };
    let marker_x = move || {
        let epochs = epochs.get();
        let epoch = current.get().filter(|_| epochs > 1)?;
        Some(PAD_L + (epoch.saturating_sub(1)) as f64 * (W - PAD_L - PAD_R) / (epochs - 1) as f64)
    };
    view! {
        <figure class="chart">
            <figcaption>{title}</figcaption>
            <svg id=id viewBox=format!("0 0 {W} {H}")>
                {body}
                <line class="marker" y1=PAD_T.to_string() y2=(H - PAD_B).to_string()
                    x1=move || format!("{:.1}", marker_x().unwrap_or(-10.0))
                    x2=move || format!("{:.1}", marker_x().unwrap_or(-10.0))
                    visibility=move || if marker_x().is_some() { "visible" } else { "hidden" }></line>
            </svg>
        </figure>
    }
}

fn format_value(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Series of the unique-pattern chart from the metrics of every epoch.
pub fn pattern_series(metrics: &[EpochMetrics]) -> Vec<(String, Vec<f64>)> {
    let layers = metrics
        .iter()
        .map(|m| m.unique_patterns.len())
        .max()
        .unwrap_or(0);
    (0..layers)
        .map(|layer| {
            (
                format!("layer {}", layer + 1),
                metrics
                    .iter()
                    .map(|m| m.unique_patterns.get(layer).map_or(f64::NAN, |&u| u as f64))
                    .collect(),
            )
        })
        .collect()
}

/// Series of the loss chart.
pub fn loss_series(metrics: &[EpochMetrics]) -> Vec<(String, Vec<f64>)> {
    vec![
        (
            "train".to_owned(),
            metrics.iter().map(|m| m.train_loss).collect(),
        ),
        (
            "validation".to_owned(),
            metrics.iter().map(|m| m.val_loss).collect(),
        ),
    ]
}

/// One Fig. 3 heatmap: purity bins (rows, 1.0 on top) x log2 strength bins (columns).
#[component]
pub fn FlowHeatmap(
    /// Element id.
    id: &'static str,
    /// Title.
    title: &'static str,
    /// The histogram.
    histogram: Signal<Option<FlowHistogram>>,
    /// Whether to show the error counts instead of all instances.
    errors: bool,
) -> impl IntoView {
    let body = move || {
        let Some(h) = histogram.get() else {
            return ().into_any();
        };
        let grid = if errors { &h.errors } else { &h.instances };
        let rows = grid.len();
        let cols = grid.first().map_or(0, Vec::len);
        let max = grid.iter().flatten().copied().max().unwrap_or(0).max(1);
        let cell_w = (W - PAD_L - PAD_R) / cols.max(1) as f64;
        let cell_h = (H - PAD_T - PAD_B) / rows.max(1) as f64;
        let cells = grid
            .iter()
            .enumerate()
            .flat_map(|(p, row)| {
                row.iter().enumerate().map(move |(s, &count)| (p, s, count))
            })
            .map(|(p, s, count)| {
                let shade = if count == 0 { 0.0 } else { (f64::from(count) + 1.0).ln() / (f64::from(max) + 1.0).ln() };
                let x = PAD_L + s as f64 * cell_w;
                let y = PAD_T + (rows - 1 - p) as f64 * cell_h;
                let fill = if errors {
                    format!("rgba(214,39,40,{shade:.2})")
                } else {
                    format!("rgba(31,119,180,{shade:.2})")
                };
                view! {
                    <rect x=format!("{x:.1}") y=format!("{y:.1}") width=format!("{:.1}", cell_w - 1.0) height=format!("{:.1}", cell_h - 1.0) fill=fill class="cell" data-count=count.to_string()></rect>
                }
            })
            .collect_view();
        let x_ticks = h
            .strength_lower_edges
            .iter()
            .enumerate()
            .map(|(s, edge)| {
                let x = PAD_L + (s as f64 + 0.5) * cell_w;
                view! { <text x=format!("{x:.1}") y=(H - 12.0).to_string() text-anchor="middle" class="tick">{edge.to_string()}</text> }
            })
            .collect_view();
        let y_ticks = h
            .purity_edges
            .iter()
            .take(rows)
            .enumerate()
            .map(|(p, edge)| {
                let y = PAD_T + (rows - 1 - p) as f64 * cell_h + cell_h / 2.0 + 4.0;
                view! { <text x=(PAD_L - 4.0).to_string() y=format!("{y:.1}") text-anchor="end" class="tick">{format!("{edge:.1}")}</text> }
            })
            .collect_view();
        view! {
            {cells}
            {x_ticks}
            {y_ticks}
            <text x=(W / 2.0).to_string() y=(H - 1.0).to_string() text-anchor="middle" class="tick">"strength (flow size, log bins)"</text>
        }
        .into_any()
    };
    view! {
        <figure class="chart">
            <figcaption>{title}</figcaption>
            <svg id=id viewBox=format!("0 0 {W} {H}")>{body}</svg>
        </figure>
    }
}

/// A named series of `(x, y)` points.
pub type XySeries = (String, Vec<(f64, f64)>);

/// Points of `(x, y)` pairs as an SVG `points` attribute over the given ranges; with `log_y`
/// the y axis is base-10 logarithmic (values `<= 0` are left out).
pub fn xy_points(
    points: &[(f64, f64)],
    x_range: (f64, f64),
    y_range: (f64, f64),
    log_y: bool,
) -> String {
    let y_map = |v: f64| if log_y { v.log10() } else { v };
    let (y_lo, y_hi) = (y_map(y_range.0), y_map(y_range.1));
    let x_span = (x_range.1 - x_range.0).max(f64::MIN_POSITIVE);
    let y_span = (y_hi - y_lo).max(f64::MIN_POSITIVE);
    points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
        .map(|&(x, y)| {
            let px = PAD_L + (x - x_range.0) / x_span * (W - PAD_L - PAD_R);
            let py = H - PAD_B - (y_map(y) - y_lo) / y_span * (H - PAD_T - PAD_B);
            format!("{px:.1},{py:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line chart of named `(x, y)` series (e.g. RMSE against rank, singular values against
/// their index), optionally with a logarithmic y axis.
#[component]
pub fn XyChart(
    /// Element id.
    id: &'static str,
    /// Title.
    title: &'static str,
    /// Label of the x axis.
    x_label: &'static str,
    /// Whether the y axis is logarithmic.
    log_y: bool,
    /// Named series.
    series: Signal<Vec<XySeries>>,
) -> impl IntoView {
    let body = move || {
        let series = series.get();
        let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
        let usable = |v: f64| v.is_finite() && (!log_y || v > 0.0);
        let x_lo = all()
            .map(|p| p.0)
            .filter(|v| v.is_finite())
            .fold(f64::INFINITY, f64::min);
        let x_hi = all()
            .map(|p| p.0)
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        let y_hi = all()
            .map(|p| p.1)
            .filter(|v| usable(*v))
            .fold(f64::NEG_INFINITY, f64::max);
        let y_lo = if log_y {
            all()
                .map(|p| p.1)
                .filter(|v| usable(*v))
                .fold(f64::INFINITY, f64::min)
        } else {
            0.0
        };
        if !(x_lo.is_finite() && x_hi.is_finite() && y_hi.is_finite() && y_lo.is_finite()) {
            return view! { <text x=PAD_L.to_string() y=(H / 2.0).to_string() class="tick">"no data yet"</text> }.into_any();
        }
        let lines = series
            .iter()
            .enumerate()
            .map(|(i, (name, points))| {
                let colour = SERIES_COLOURS.get(i % SERIES_COLOURS.len()).copied().unwrap_or("#333");
                let label_y = PAD_T + 12.0 * (i as f64 + 1.0);
                view! {
                    <polyline points=xy_points(points, (x_lo, x_hi), (y_lo, y_hi), log_y) fill="none" stroke=colour stroke-width="1.8" data-series=name.clone()></polyline>
                    <text x=(W - PAD_R - 4.0).to_string() y=format!("{label_y:.0}") text-anchor="end" fill=colour class="series-label">{name.clone()}</text>
                }
            })
            .collect_view();
        view! {
            <line x1=PAD_L.to_string() x2=PAD_L.to_string() y1=PAD_T.to_string() y2=(H - PAD_B).to_string() class="axis"></line>
            <line x1=PAD_L.to_string() x2=(W - PAD_R).to_string() y1=(H - PAD_B).to_string() y2=(H - PAD_B).to_string() class="axis"></line>
            <text x=(PAD_L - 4.0).to_string() y=(PAD_T + 8.0).to_string() text-anchor="end" class="tick">{format_value(y_hi)}</text>
            <text x=(PAD_L - 4.0).to_string() y=(H - PAD_B).to_string() text-anchor="end" class="tick">{format_value(y_lo)}</text>
            <text x=PAD_L.to_string() y=(H - 8.0).to_string() class="tick">{format_value(x_lo)}</text>
            <text x=(W - PAD_R).to_string() y=(H - 8.0).to_string() text-anchor="end" class="tick">{format!("{x_label} {}", format_value(x_hi))}</text>
            {lines}
        }
        .into_any()
    };
    view! {
        <figure class="chart">
            <figcaption>{title}{if log_y { " (log scale)" } else { "" }}</figcaption>
            <svg id=id viewBox=format!("0 0 {W} {H}")>{body}</svg>
        </figure>
    }
}

/// The pointer position of a mouse event in drawing units of the `<svg>` the handler is bound
/// to, whose `viewBox` is `width x height` and keeps its aspect ratio (`xMidYMid meet`, the
/// default).
pub fn svg_point(event: &web_sys::MouseEvent, width: f64, height: f64) -> Option<(f64, f64)> {
    use wasm_bindgen::JsCast;
    let element = event
        .current_target()?
        .dyn_into::<web_sys::Element>()
        .ok()?;
    let rect = element.get_bounding_client_rect();
    // `clientX` is fractional in browsers; web-sys rounds it to an integer.
    let read = |name: &str| js_sys::Reflect::get(event, &name.into()).ok()?.as_f64();
    let (client_x, client_y) = (read("clientX")?, read("clientY")?);
    let scale = (rect.width() / width).min(rect.height() / height);
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let left = rect.left() + (rect.width() - width * scale) / 2.0;
    let top = rect.top() + (rect.height() - height * scale) / 2.0;
    Some(((client_x - left) / scale, (client_y - top) / scale))
}
