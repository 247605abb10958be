//! The inspector: the selected instances with their images, labels, predictions and losses,
//! and export of the selection as CSV or JSON.

use actiscope_protocol::{EpochSnapshot, ProbeImages};
use leptos::prelude::*;

use crate::images::grey_bmp_data_url;

/// Instances listed at most (the export always holds all of them).
const MAX_LISTED: usize = 240;

/// How an instance is drawn: a small image, or a point of a planar set.
#[derive(Debug, Clone, PartialEq)]
enum Picture {
    Image(String),
    Point(f32, f32),
}

/// One row of the selection.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InstanceRow {
    /// Index in the probe set.
    pub instance: u32,
    /// Index in the probe's source set (test or train).
    pub source_index: u32,
    /// True label.
    pub label: u32,
    /// Predicted label at the shown epoch.
    pub prediction: u32,
    /// Cross-entropy at the shown epoch.
    pub loss: f32,
}

/// Rows of `instances` at `snapshot`.
pub fn rows(snapshot: &EpochSnapshot, instances: &[u32]) -> Vec<InstanceRow> {
    let probe = &snapshot.probe;
    instances
        .iter()
        .filter_map(|&i| {
            let at = i as usize;
            Some(InstanceRow {
                instance: i,
                source_index: *probe.indices.get(at)?,
                label: *probe.labels.get(at)?,
                prediction: *probe.predictions.get(at)?,
                loss: *probe.losses.get(at)?,
            })
        })
        .collect()
}

/// The selection as CSV, header first.
pub fn to_csv(rows: &[InstanceRow]) -> String {
    let mut csv = String::from("instance,source_index,label,prediction,loss\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            r.instance, r.source_index, r.label, r.prediction, r.loss
        ));
    }
    csv
}

fn data_url(mime: &str, text: &str) -> String {
    format!(
        "data:{mime};charset=utf-8,{}",
        js_sys::encode_uri_component(text)
    )
}

/// The inspector panel.
#[component]
pub fn Inspector(
    /// Description of what was clicked.
    label: Signal<String>,
    /// The selected probe instances.
    selection: Signal<Vec<u32>>,
    /// The shown epoch's snapshot.
    snapshot: Signal<Option<std::sync::Arc<EpochSnapshot>>>,
    /// The probe images.
    images: Signal<Option<ProbeImages>>,
    /// Clears the selection.
    on_clear: Callback<()>,
) -> impl IntoView {
    let table = Memo::new(move |_| {
        let selected = selection.get();
        snapshot.with(|s| s.as_ref().map(|s| rows(s, &selected)).unwrap_or_default())
    });
    // Each instance's picture, encoded once per run rather than on every epoch change.
    let pictures = Memo::new(move |_| {
        images.with(|im| {
            let Some(im) = im else { return Vec::new() };
            let (r, c) = (im.rows as usize, im.cols as usize);
            if r == 0 {
                im.points
                    .chunks_exact(2)
                    .map(|xy| {
                        Picture::Point(
                            xy.first().copied().unwrap_or(0.0),
                            xy.get(1).copied().unwrap_or(0.0),
                        )
                    })
                    .collect()
            } else {
                im.pixels
                    .chunks_exact(r * c)
                    .map(|pixels| Picture::Image(grey_bmp_data_url(pixels, r, c)))
                    .collect()
            }
        })
    });
    // Rows are keyed by instance: scrubbing epochs keeps each row and its picture and only
    // rewrites the texts that changed, instead of rebuilding the list.
    let by_instance = Memo::new(move |_| {
        table.with(|t| {
            t.iter()
                .map(|r| (r.instance, r.clone()))
                .collect::<std::collections::HashMap<u32, InstanceRow>>()
        })
    });
    let listed = move || {
        table.with(|t| {
            t.iter()
                .take(MAX_LISTED)
                .map(|r| r.instance)
                .collect::<Vec<u32>>()
        })
    };
    let list = move || {
        view! {
            <For each=listed key=|instance| *instance let:instance>
                {
                    let picture = move || pictures.with(|p| match p.get(instance as usize) {
                        Some(Picture::Point(x, y)) => Some(view! { <span class="point">{format!("({x:.2}, {y:.2})")}</span> }.into_any()),
                        Some(Picture::Image(url)) => Some(view! { <img class="digit" width="28" height="28" alt="instance" src=url.clone() /> }.into_any()),
                        None => None,
                    });
                    let row = move || by_instance.with(|m| m.get(&instance).cloned());
                    view! {
                        <li data-instance=instance.to_string() class:wrong=move || row().is_some_and(|r| r.label != r.prediction)>
                            {picture}
                            <span class="meta">
                                {move || row().map(|r| format!("#{} true {} pred {} loss {:.3}", r.instance, r.label, r.prediction, r.loss)).unwrap_or_default()}
                            </span>
                        </li>
                    }
                }
            </For>
        }
    };
    // The export links get their data when a pointer goes down on them or they are clicked
    // (which also covers the keyboard; the browser follows the link after the handler), so a
    // middle click or the context menu's "save link" gets the data too, and an epoch change
    // does not re-encode the whole selection twice.
    let export = move |ev: web_sys::Event, json: bool| {
        let (mime, text) = table.with(|t| {
            if json {
                (
                    "application/json",
                    serde_json::to_string(t).unwrap_or_else(|_| "[]".to_owned()),
                )
            } else {
                ("text/csv", to_csv(t))
            }
        });
        if let Some(link) = ev
            .current_target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlAnchorElement>(t).ok())
        {
            link.set_href(&data_url(mime, &text));
        }
    };
    view! {
        <section id="inspector" class="panel">
            <h2>"Inspector"</h2>
            <Show
                when=move || !selection.get().is_empty()
                fallback=|| view! { <p class="empty">"Click a node or a flow in the diagram to list its instances."</p> }
            >
                <p id="inspector-label">{move || label.get()}</p>
                <p>
                    <span id="inspector-count">{move || selection.get().len()}</span>" instances · "
                    <span>{move || table.get().iter().filter(|r| r.label != r.prediction).count()}</span>" misclassified · "
                    <a id="export-csv" download="selection.csv" href="#"
                        on:pointerdown=move |ev| export(ev.into(), false)
                        on:click=move |ev| export(ev.into(), false)>"CSV"</a>" · "
                    <a id="export-json" download="selection.json" href="#"
                        on:pointerdown=move |ev| export(ev.into(), true)
                        on:click=move |ev| export(ev.into(), true)>"JSON"</a>" · "
                    <button id="clear-selection" on:click=move |_| on_clear.run(())>"clear"</button>
                </p>
                <ul class="instances">{list}</ul>
            </Show>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_and_one_line_per_row() {
        let rows = vec![InstanceRow {
            instance: 3,
            source_index: 40,
            label: 1,
            prediction: 7,
            loss: 2.5,
        }];
        assert_eq!(
            to_csv(&rows),
            "instance,source_index,label,prediction,loss\n3,40,1,7,2.5\n"
        );
    }
}
