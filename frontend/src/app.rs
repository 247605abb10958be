//! The root component: connection, run header, epoch slider, and the views that follow it.

use std::sync::Arc;

use actiscope_protocol::apd::{Apd, FlowHistogram, FlowTable};
use actiscope_protocol::{
    ClientMessage, EpochMetrics, EpochSnapshot, ProbeImages, RunSummary, ServerInfo, ServerMessage,
};
use leptos::prelude::*;
use web_sys::WebSocket;

use crate::charts::{FlowHeatmap, LineChart, loss_series, pattern_series};
use crate::downloads::{FigureLinks, FigureRef};
use crate::factors::FactorPanel;
use crate::inspector::Inspector;
use crate::mapper_view::MapperPanels;
use crate::new_run::NewRun;
use crate::sankey::Sankey;
use crate::similarity::SimilarityPanel;
use crate::socket::{SocketEvent, connect, send, socket_url};
use crate::url_state::UrlState;

/// State of the link to the server, as shown in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting for the socket to open.
    Connecting,
    /// The socket is open.
    Connected,
    /// The socket closed; reconnecting.
    Disconnected,
}

impl LinkState {
    fn label(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
        }
    }
}

/// The run and epoch the views other than the APD show, always changed together so that no
/// view pairs a run with an epoch of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settled {
    run_id: i64,
    epoch: u32,
    /// Latest epoch held of that run.
    latest_epoch: u32,
}

/// Default most nodes per APD layer (the rest merge into "other").
pub const DEFAULT_MAX_NODES: usize = 40;

/// The single source of truth of the dashboard.
#[derive(Clone, Copy)]
struct Dashboard {
    link: RwSignal<LinkState>,
    info: RwSignal<Option<ServerInfo>>,
    runs: RwSignal<Vec<RunSummary>>,
    run: RwSignal<Option<RunSummary>>,
    /// Run the user picked (from the URL or the run list); `None` follows the newest.
    chosen_run: RwSignal<Option<i64>>,
    images: RwSignal<Option<ProbeImages>>,
    /// Snapshots of the subscribed run, `epochs[e - 1]` for epoch `e`.
    epochs: RwSignal<Vec<Arc<EpochSnapshot>>>,
    /// Epoch the user picked; `None` follows the latest.
    chosen_epoch: RwSignal<Option<u32>>,
    /// The run and epoch the views other than the APD show: they follow the subscribed run
    /// and [`Dashboard::shown_epoch`] together, once the browser has painted the APD for them
    /// (see [`follow_after_paint`]).
    settled: RwSignal<Option<Settled>>,
    max_nodes: RwSignal<usize>,
    selection: RwSignal<Vec<u32>>,
    /// Layer of each mapper panel.
    mapper_layers: RwSignal<Vec<u32>>,
    /// Method of the similarity panel.
    similarity_method: RwSignal<String>,
    /// Run the similarity panel compares with.
    compare_with: RwSignal<Option<i64>>,
    selection_label: RwSignal<String>,
    progress: RwSignal<Option<(u32, u32, u32)>>,
    /// The subscribed run's GPU preparation: steps done, steps in all, the step running.
    preparing: RwSignal<Option<(u32, u32, String)>>,
    playing: RwSignal<bool>,
    last_error: RwSignal<Option<String>>,
    round_trip_ms: RwSignal<Option<f64>>,
    socket: StoredValue<Option<WebSocket>, LocalStorage>,
}

impl Dashboard {
    fn new(url: &UrlState) -> Self {
        Self {
            link: RwSignal::new(LinkState::Connecting),
            info: RwSignal::new(None),
            runs: RwSignal::new(Vec::new()),
            run: RwSignal::new(None),
            chosen_run: RwSignal::new(url.run),
            images: RwSignal::new(None),
            epochs: RwSignal::new(Vec::new()),
            chosen_epoch: RwSignal::new(url.epoch),
            settled: RwSignal::new(None),
            max_nodes: RwSignal::new(url.max_nodes.unwrap_or(DEFAULT_MAX_NODES)),
            selection: RwSignal::new(url.selection.clone()),
            mapper_layers: RwSignal::new(url.mapper_layers.clone().unwrap_or_else(|| vec![0])),
            similarity_method: RwSignal::new(
                url.similarity_method
                    .clone()
                    .unwrap_or_else(|| crate::similarity::DEFAULT_METHOD.to_owned()),
            ),
            compare_with: RwSignal::new(url.compare_with),
            selection_label: RwSignal::new(if url.selection.is_empty() {
                String::new()
            } else {
                "shared selection".to_owned()
            }),
            progress: RwSignal::new(None),
            preparing: RwSignal::new(None),
            playing: RwSignal::new(false),
            last_error: RwSignal::new(None),
            round_trip_ms: RwSignal::new(None),
            socket: StoredValue::new_local(None),
        }
    }

    /// The epoch on screen: the chosen one, or the latest.
    fn shown_epoch(&self) -> Option<u32> {
        let stored = self.epochs.with(Vec::len) as u32;
        match self.chosen_epoch.get() {
            Some(e) if e >= 1 && e <= stored => Some(e),
            _ if stored > 0 => Some(stored),
            _ => None,
        }
    }

    fn subscribe(&self, run_id: i64) {
        self.epochs.set(Vec::new());
        self.images.set(None);
        self.progress.set(None);
        self.preparing.set(None);
        self.socket.with_value(|socket| {
            if let Some(socket) = socket {
                let _ = send(
                    socket,
                    &ClientMessage::Subscribe {
                        run_id,
                        from_epoch: 1,
                    },
                );
            }
        });
    }

    fn on_message(&self, message: ServerMessage) {
        match message {
            // `socket` inflates these before they get here (`decode_server_message`).
            ServerMessage::Deflated { .. } => {}
            ServerMessage::Hello(server) => self.info.set(Some(server)),
            ServerMessage::Pong { nonce } => {
                self.round_trip_ms
                    .set(Some(js_sys::Date::now() - nonce as f64));
            }
            ServerMessage::Error { reason } => self.last_error.set(Some(reason)),
            ServerMessage::Runs(runs) => {
                let target = self
                    .chosen_run
                    .get_untracked()
                    .or_else(|| runs.first().map(|r| r.run_id));
                let current = self.run.get_untracked().map(|r| r.run_id);
                self.runs.set(runs);
                if let Some(run_id) = target
                    && current != Some(run_id)
                {
                    // Following the newest run onto another one: the old selection's probe
                    // positions would point at other instances. A shared link's selection
                    // (no run held yet) is kept.
                    if current.is_some() {
                        self.selection.set(Vec::new());
                        self.selection_label.set(String::new());
                    }
                    self.subscribe(run_id);
                }
            }
            ServerMessage::Run(summary) => self.run.set(Some(summary)),
            ServerMessage::Images { images, .. } => self.images.set(Some(images)),
            ServerMessage::Epoch { snapshot, .. } => {
                let epoch = snapshot.metrics.epoch;
                self.epochs.update(|epochs| {
                    if epoch == epochs.len() + 1 {
                        epochs.push(Arc::from(snapshot));
                    }
                });
            }
            ServerMessage::Preparing {
                steps_done,
                steps_total,
                step,
                ..
            } => self.preparing.set(Some((steps_done, steps_total, step))),
            ServerMessage::Progress {
                epoch,
                batches_done,
                batches_total,
                ..
            } => self
                .progress
                .set(Some((epoch, batches_done, batches_total))),
        }
    }
}

/// Makes `target` follow `source`, one paint later: the latest value is applied in a task
/// queued from the next animation frame, so the browser paints what reacted to `source` first.
///
/// An epoch change redraws the APD at once and lets the inspector, the mapper and factor
/// panels, the charts and the URL catch up after that paint, instead of sharing its frame.
/// The work is the same; only its order changes. At most one frame callback is pending: any
/// number of changes before it runs (scrubbing, a held arrow key, epochs arriving while the
/// tab is hidden and frames do not run) end in one update to the last value.
fn follow_after_paint<T>(source: impl Fn() -> T + 'static, target: RwSignal<T>)
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    // `Some` while a frame callback is scheduled: the value it will apply.
    let pending = StoredValue::new_local(None::<T>);
    Effect::new(move |_| {
        let value = source();
        let scheduled = pending.with_value(Option::is_some);
        pending.set_value(Some(value));
        if scheduled {
            return;
        }
        request_animation_frame(move || {
            set_timeout(
                move || {
                    let Some(value) = pending.try_update_value(Option::take).flatten() else {
                        return;
                    };
                    if target.with_untracked(|t| t != &value) {
                        target.set(value);
                    }
                },
                std::time::Duration::ZERO,
            );
        });
    });
}

/// The dashboard root.
#[component]
pub fn App() -> impl IntoView {
    let initial = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .map(|q| UrlState::parse(&q))
        .unwrap_or_default();
    crate::api::set_token(initial.token.as_deref());
    let dash = Dashboard::new(&initial);

    // The websocket: every message goes through `Dashboard::on_message`.
    if let Some(url) = socket_url() {
        let on_event = move |event: SocketEvent| match event {
            SocketEvent::Open => dash.link.set(LinkState::Connected),
            SocketEvent::Closed => dash.link.set(LinkState::Disconnected),
            SocketEvent::BadFrame(reason) => dash.last_error.set(Some(reason)),
            SocketEvent::Message(message) => dash.on_message(message),
        };
        let on_open = move |socket: &WebSocket| {
            dash.socket.set_value(Some(socket.clone()));
            let nonce = js_sys::Date::now() as u64;
            let _ = send(socket, &ClientMessage::Ping { nonce });
            // After a reconnect, resume the run from the epoch after the last one held.
            if let Some(run) = dash.run.get_untracked() {
                let from_epoch = dash.epochs.with_untracked(Vec::len) as u32 + 1;
                let _ = send(
                    socket,
                    &ClientMessage::Subscribe {
                        run_id: run.run_id,
                        from_epoch,
                    },
                );
            }
        };
        connect(url, on_event, on_open);
    }

    // Mirror the shareable state in the URL, once the views have been painted. The token is
    // not written back: the server set a cookie when the page loaded with it, and the API
    // module keeps it for this page's requests, so a URL that gets shared carries no secret.
    let query = Memo::new(move |_| {
        UrlState {
            run: dash.run.get().map(|r| r.run_id),
            epoch: dash.chosen_epoch.get(),
            max_nodes: Some(dash.max_nodes.get()).filter(|&n| n != DEFAULT_MAX_NODES),
            selection: dash.selection.get(),
            mapper_layers: Some(dash.mapper_layers.get()).filter(|l| l != &[0]),
            similarity_method: Some(dash.similarity_method.get())
                .filter(|m| m != crate::similarity::DEFAULT_METHOD),
            compare_with: dash.compare_with.get(),
            token: None,
        }
        .to_query()
    });
    let written_query = RwSignal::new(None::<String>);
    follow_after_paint(move || Some(query.get()), written_query);
    Effect::new(move |_| {
        let Some(query) = written_query.get() else {
            return;
        };
        if let Some(window) = web_sys::window()
            && let Ok(history) = window.history()
        {
            let path = window
                .location()
                .pathname()
                .unwrap_or_else(|_| "/".to_owned());
            let _ = history.replace_state_with_url(
                &wasm_bindgen::JsValue::NULL,
                "",
                Some(&format!("{path}{query}")),
            );
        }
    });

    // Keyboard: arrows step through epochs, space plays and pauses.
    let step = move |delta: i64| {
        let stored = dash.epochs.with(Vec::len) as i64;
        if stored == 0 {
            return;
        }
        let current = i64::from(dash.shown_epoch().unwrap_or(1));
        let next = (current + delta).clamp(1, stored);
        dash.chosen_epoch.set(Some(next as u32));
    };
    let _keys = window_event_listener(leptos::ev::keydown, move |event| {
        let in_input = event
            .target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlInputElement>(t).ok())
            .is_some_and(|input| input.type_() != "range");
        if in_input {
            return;
        }
        match event.key().as_str() {
            "ArrowLeft" => {
                event.prevent_default();
                step(-1);
            }
            "ArrowRight" => {
                event.prevent_default();
                step(1);
            }
            _ => {}
        }
    });
    // Play: advance one epoch every 700 ms, stop at the last one.
    let _player = set_interval_with_handle(
        move || {
            if dash.playing.get_untracked() {
                let stored = dash.epochs.with_untracked(Vec::len) as u32;
                let current = dash.shown_epoch().unwrap_or(1);
                if current >= stored {
                    dash.playing.set(false);
                } else {
                    dash.chosen_epoch.set(Some(current + 1));
                }
            }
        },
        std::time::Duration::from_millis(700),
    );

    // The APD follows the slider at once; every other view follows `settled`.
    follow_after_paint(
        move || {
            let run_id = dash.run.get()?.run_id;
            Some(Settled {
                run_id,
                epoch: dash.shown_epoch()?,
                latest_epoch: dash.epochs.with(Vec::len) as u32,
            })
        },
        dash.settled,
    );
    let settled_run = move || dash.settled.get().map(|s| s.run_id);
    let settled_epoch = move || dash.settled.get().map(|s| s.epoch);
    let snapshot_at = move |epoch: Option<u32>| {
        let epoch = epoch?;
        dash.epochs
            .with(|e| e.get((epoch as usize).checked_sub(1)?).cloned())
    };
    let snapshot = Memo::new(move |_| snapshot_at(dash.shown_epoch()));
    // Only while the held epochs are the settled run's (a run switch refills them first).
    let settled_snapshot = Memo::new(move |_| {
        let settled = dash.settled.get()?;
        let held_run = dash.run.with(|r| r.as_ref().map(|r| r.run_id));
        (held_run == Some(settled.run_id))
            .then(|| snapshot_at(Some(settled.epoch)))
            .flatten()
    });
    let apd = Memo::new(move |_| -> Option<Apd> {
        let max = dash.max_nodes.get();
        snapshot.with(|s| {
            s.as_ref().map(|s| {
                if max == 0 {
                    s.apd.clone()
                } else {
                    s.apd.merge_rare(max)
                }
            })
        })
    });
    let metrics = Memo::new(move |_| -> Vec<EpochMetrics> {
        dash.epochs
            .with(|e| e.iter().map(|s| s.metrics.clone()).collect())
    });
    // Which hidden layers define the flows: the stored snapshot has the last two (the paper's
    // choice); any other span is asked from the server for the epoch on screen.
    let flow_span = RwSignal::new(None::<(u32, u32)>);
    let fetched_flows = RwSignal::new(None::<FlowHistogram>);
    let flow_note = RwSignal::new(String::new());
    let hidden_layers = move || dash.run.get().map_or(1, |r| r.hidden_layers.max(1));
    let shown_span = move || {
        flow_span.get().unwrap_or_else(|| {
            settled_snapshot.with(|s| {
                s.as_ref()
                    .map_or((0, 0), |s| (s.flows.first_layer, s.flows.last_layer))
            })
        })
    };
    // Another run may have other layers: back to the stored span.
    Effect::new(move |previous: Option<Option<i64>>| {
        let run_id = dash.run.get().map(|r| r.run_id);
        if previous.is_some_and(|p| p != run_id) {
            flow_span.set(None);
        }
        run_id
    });
    // Over the probe set (stored) or the whole training set, binned evenly or as the paper's
    // Fig. 3 (both asked from the server).
    let flow_set = RwSignal::new("probe");
    let flow_bins = RwSignal::new("even");
    let flows_in_flight = crate::api::LatestOnly::new();
    Effect::new(move |_| {
        let asked =
            flow_span.get().is_some() || flow_set.get() != "probe" || flow_bins.get() != "even";
        let (Some(run_id), Some(epoch), true) = (settled_run(), settled_epoch(), asked) else {
            flows_in_flight.cancel();
            fetched_flows.set(None);
            flow_note.set(String::new());
            return;
        };
        let (from, to) = shown_span();
        let path = format!(
            "/api/runs/{run_id}/epochs/{epoch}/flows?from={from}&to={to}&set={}&binning={}",
            flow_set.get(),
            flow_bins.get()
        );
        flow_note.set("computing…".to_owned());
        flows_in_flight.get::<FlowTable>(path, move |answer| match answer {
            Ok(table) => {
                fetched_flows.set(Some(table.histogram));
                flow_note.set(format!("{} flows", table.flows.len()));
            }
            Err(e) => flow_note.set(format!("could not compute the flows: {e}")),
        });
    });
    let flow_histogram = Signal::derive(move || {
        fetched_flows
            .get()
            .or_else(|| settled_snapshot.with(|s| s.as_ref().map(|s| s.flows.histogram.clone())))
    });
    let (render_ms, set_render_ms) = signal(0.0f64);
    let on_select = Callback::new(move |(label, instances): (String, Vec<u32>)| {
        dash.selection_label.set(label);
        dash.selection.set(instances);
    });
    let on_started = Callback::new(move |run_id: i64| {
        dash.chosen_run.set(Some(run_id));
        dash.chosen_epoch.set(None);
        dash.selection.set(Vec::new());
        dash.subscribe(run_id);
    });
    let on_clear = Callback::new(move |()| {
        dash.selection.set(Vec::new());
        dash.selection_label.set(String::new());
    });

    view! {
        <header>
            <h1>"actiscope"</h1>
            <RunHeader dash=dash />
            <span class="status" id="link-state" data-state=move || dash.link.get().label()>
                {move || dash.link.get().label()}
            </span>
        </header>
        <main data-settled-epoch=move || settled_epoch().map(|e| e.to_string()).unwrap_or_default()>
            <section class="controls panel">
                <label>
                    "run "
                    <select id="run-select" on:change=move |ev| {
                        if let Ok(run_id) = event_target_value(&ev).parse::<i64>() {
                            dash.chosen_run.set(Some(run_id));
                            dash.chosen_epoch.set(None);
                            dash.selection.set(Vec::new());
                            dash.subscribe(run_id);
                        }
                    }>
                        {move || dash.runs.get().into_iter().map(|r| {
                            let selected = dash.run.get().is_some_and(|x| x.run_id == r.run_id);
                            view! { <option value=r.run_id.to_string() selected=selected>{format!("#{} {} ({})", r.run_id, r.name, r.status)}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <NewRun on_started=on_started />
                <button id="play" on:click=move |_| dash.playing.update(|p| *p = !*p)>
                    {move || if dash.playing.get() { "pause" } else { "play" }}
                </button>
                <input
                    id="epoch-slider"
                    type="range"
                    min="1"
                    max=move || dash.epochs.with(Vec::len).max(1).to_string()
                    prop:value=move || dash.shown_epoch().unwrap_or(1).to_string()
                    on:input=move |ev| {
                        if let Ok(epoch) = event_target_value(&ev).parse::<u32>() {
                            dash.chosen_epoch.set(Some(epoch));
                        }
                    }
                />
                <span id="epoch-label">
                    {move || match dash.shown_epoch() {
                        Some(e) => format!("epoch {e} of {}", dash.epochs.with(Vec::len)),
                        None => "no epoch yet".to_owned(),
                    }}
                </span>
                <button id="follow-live" on:click=move |_| dash.chosen_epoch.set(None)
                    disabled=move || dash.chosen_epoch.get().is_none()>"follow live"</button>
                <label>
                    " nodes per layer "
                    <select id="max-nodes" on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).parse::<usize>() {
                            dash.max_nodes.set(n);
                        }
                    }>
                        {[10usize, 20, 40, 80, 0].into_iter().map(|n| {
                            let text = if n == 0 { "all".to_owned() } else { n.to_string() };
                            view! { <option value=n.to_string() selected=move || dash.max_nodes.get() == n>{text}</option> }
                        }).collect_view()}
                    </select>
                </label>
            </section>
            <section class="panel">
                <h2>"Activation pattern diagram of the probe set"
                    <FigureLinks id="fig-sankey" figure=Signal::derive(move || {
                        let (run_id, epoch) = (settled_run()?, settled_epoch()?);
                        // "all" nodes: no merging, as the panel draws it.
                        let nodes = match dash.max_nodes.get() { 0 => u32::MAX as usize, n => n };
                        Some(FigureRef { run_id, name: "sankey", query: format!("epoch={epoch}&nodes={nodes}") })
                    }) />
                </h2>
                <Sankey apd=apd selection=dash.selection.into() on_select=on_select render_ms=set_render_ms />
                <p class="note" id="render-ms" data-ms=move || format!("{:.1}", render_ms.get())>
                    {move || format!("drawn in {:.1} ms", render_ms.get())}
                </p>
            </section>
            <Inspector
                label=dash.selection_label.into()
                selection=dash.selection.into()
                snapshot=settled_snapshot.into()
                images=dash.images.into()
                on_clear=on_clear
            />
            <MapperPanels
                run_id=Signal::derive(settled_run)
                epoch=Signal::derive(settled_epoch)
                hidden_layers=Signal::derive(move || dash.run.get().map_or(1, |r| r.hidden_layers.max(1)))
                layers=dash.mapper_layers
                selection=dash.selection.into()
                on_select=on_select
            />
            <FactorPanel
                run_id=Signal::derive(settled_run)
                epoch=Signal::derive(settled_epoch)
                latest_epoch=Signal::derive(move || dash.settled.get().map_or(0, |s| s.latest_epoch))
                has_images=Signal::derive(move || dash.images.with(|i| i.as_ref().is_some_and(|i| i.rows > 0)))
                on_select=on_select
            />
            <SimilarityPanel
                run_id=Signal::derive(settled_run)
                epoch=Signal::derive(settled_epoch)
                latest_epoch=Signal::derive(move || dash.settled.get().map_or(0, |s| s.latest_epoch))
                runs=dash.runs.into()
                method=dash.similarity_method
                compare_with=dash.compare_with
                on_epoch=Callback::new(move |epoch: u32| dash.chosen_epoch.set(Some(epoch)))
            />
            <section class="panel charts">
                <p class="figure-row">
                    "Figures: unique patterns " <FigureLinks id="fig-patterns" figure=Signal::derive(move || {
                        settled_run().map(|run_id| FigureRef { run_id, name: "unique-patterns", query: String::new() })
                    }) />
                    " · loss and accuracy " <FigureLinks id="fig-training" figure=Signal::derive(move || {
                        settled_run().map(|run_id| FigureRef { run_id, name: "training", query: String::new() })
                    }) />
                    " · flow histograms " <FigureLinks id="fig-flows" figure=Signal::derive(move || {
                        let (run_id, epoch) = (settled_run()?, settled_epoch()?);
                        let (from, to) = shown_span();
                        Some(FigureRef { run_id, name: "flows", query: format!("epoch={epoch}&from={from}&to={to}&set={}&binning={}", flow_set.get(), flow_bins.get()) })
                    }) />
                </p>
                <LineChart id="chart-patterns" title="Unique activation patterns per layer (training set)"
                    series=Signal::derive(move || pattern_series(&metrics.get()))
                    current=Signal::derive(move || settled_epoch().map(|e| e as usize)) />
                <LineChart id="chart-loss" title="Loss"
                    series=Signal::derive(move || loss_series(&metrics.get()))
                    current=Signal::derive(move || settled_epoch().map(|e| e as usize)) />
                <div class="flow-span">
                    "flows over hidden layers "
                    <select id="flow-from" on:change=move |ev| {
                        if let Ok(from) = event_target_value(&ev).parse::<u32>() {
                            let (_, to) = shown_span();
                            flow_span.set(Some((from, to.max(from))));
                        }
                    }>
                        {move || (0..hidden_layers()).map(|l| view! {
                            <option value=l.to_string() selected=move || shown_span().0 == l>{(l + 1).to_string()}</option>
                        }).collect_view()}
                    </select>
                    " to "
                    <select id="flow-to" on:change=move |ev| {
                        if let Ok(to) = event_target_value(&ev).parse::<u32>() {
                            let (from, _) = shown_span();
                            flow_span.set(Some((from.min(to), to)));
                        }
                    }>
                        {move || (0..hidden_layers()).map(|l| view! {
                            <option value=l.to_string() selected=move || shown_span().1 == l>{(l + 1).to_string()}</option>
                        }).collect_view()}
                    </select>
                    " over the "
                    <select id="flow-set" on:change=move |ev| {
                        flow_set.set(if event_target_value(&ev) == "train" { "train" } else { "probe" });
                    }>
                        <option value="probe" selected=move || flow_set.get() == "probe">"probe set"</option>
                        <option value="train" selected=move || flow_set.get() == "train">"training set"</option>
                    </select>
                    " bins "
                    <select id="flow-bins" on:change=move |ev| {
                        flow_bins.set(if event_target_value(&ev) == "paper" { "paper" } else { "even" });
                    }>
                        <option value="even" selected=move || flow_bins.get() == "even">"even (powers of two)"</option>
                        <option value="paper" selected=move || flow_bins.get() == "paper">"as the paper (log, data-dependent)"</option>
                    </select>
                    <span class="note" id="flow-span-state">{move || flow_note.get()}</span>
                </div>
                <FlowHeatmap id="hist-errors" title="Flows: misclassified instances by strength and purity"
                    histogram=flow_histogram errors=true />
                <FlowHeatmap id="hist-all" title="Flows: all instances by strength and purity"
                    histogram=flow_histogram errors=false />
            </section>
            <Show when=move || dash.last_error.get().is_some()>
                <p id="last-error" class="status" data-state="disconnected">
                    {move || dash.last_error.get().unwrap_or_default()}
                </p>
            </Show>
            <ServerFacts info=dash.info.into() round_trip_ms=dash.round_trip_ms.into() />
        </main>
    }
}

/// The header's device: a queued worker run has none yet.
fn device_text(device: &str, status: &str) -> String {
    match (device.is_empty(), status) {
        (false, _) => format!("device {device}"),
        (true, "queued") => "waiting for a worker".to_owned(),
        (true, _) => "device unknown".to_owned(),
    }
}

/// The header's line while the run's GPU is prepared (`None` once it is ready).
fn preparing_text(done: u32, total: u32, step: &str) -> Option<String> {
    (done < total).then(|| format!("preparing the GPU: step {} of {total}, {step}", done + 1))
}

/// "Resume" for a stopped or interrupted run: `POST /api/runs/{id}/resume`, then the run is
/// taken afresh from the socket.
#[component]
fn ResumeButton(dash: Dashboard, run_id: i64, status: String) -> impl IntoView {
    let message = RwSignal::new(String::new());
    let resumable = matches!(status.as_str(), "stopped" | "interrupted");
    let resume = move |_| {
        message.set("resuming…".to_owned());
        leptos::task::spawn_local(async move {
            match crate::api::post(&format!("/api/runs/{run_id}/resume")).await {
                Ok(_) => {
                    message.set(String::new());
                    // Epochs after the checkpoint may be trained again: take the run afresh.
                    dash.subscribe(run_id);
                }
                Err(e) => message.set(e),
            }
        });
    };
    view! {
        <Show when=move || resumable>
            <button id="run-resume" title="go on from the newest checkpoint" on:click=resume>"Resume"</button>
            <span class="note" id="run-resume-message">{move || message.get()}</span>
        </Show>
    }
}

/// Dataset, model, device, epoch, losses, accuracy and progress of the subscribed run.
#[component]
fn RunHeader(dash: Dashboard) -> impl IntoView {
    let latest = move || {
        let epoch = dash.shown_epoch()?;
        dash.epochs
            .with(|e| e.get(epoch as usize - 1).map(|s| s.metrics.clone()))
    };
    let progress_value = move || {
        let run = dash.run.get()?;
        let planned = f64::from(run.epochs_planned.max(1));
        let stored = dash.epochs.with(Vec::len) as f64;
        let partial = dash
            .progress
            .get()
            .filter(|(epoch, _, _)| f64::from(*epoch) > stored)
            .map(|(_, done, total)| f64::from(done) / f64::from(total.max(1)))
            .unwrap_or(0.0);
        Some(((stored + partial) / planned).min(1.0))
    };
    view! {
        <div class="run-header" id="run-header">
            {move || match dash.run.get() {
                None => view! { <span>"no run yet"</span> }.into_any(),
                Some(run) => view! {
                    <span id="run-name">{run.name.clone()}</span>
                    <span id="run-dataset" title=format!("SHA-256 of the data: {}", run.dataset_sha256)>
                        {format!("data {} {}", run.dataset, run.dataset_sha256.get(..8).map(|h| format!("({h}…)")).unwrap_or_default())}
                    </span>
                    <span id="run-device">{device_text(&run.device, &run.status)}</span>
                    <span id="run-status">{run.status.clone()}</span>
                    <ResumeButton dash=dash run_id=run.run_id status=run.status.clone() />
                }.into_any(),
            }}
            <span id="run-metrics">
                {move || latest().map(|m| format!(
                    "epoch {}: loss {:.3} / val {:.3} · accuracy {:.1}% / val {:.1}%",
                    m.epoch, m.train_loss, m.val_loss, 100.0 * m.train_accuracy, 100.0 * m.val_accuracy
                ))}
            </span>
            // While the run is running and has not trained a batch since this page subscribed
            // (a resumed run prepares again after its stored epochs): a stale step never
            // outlives the training it preceded, nor a run that failed while preparing.
            {move || dash.preparing.get().filter(|_| dash.progress.with(Option::is_none) && dash.run.with(|r| r.as_ref().is_some_and(|r| r.status == "running"))).and_then(|(done, total, step)| preparing_text(done, total, &step)).map(|text| view! {
                <span id="run-preparing" title="kernels are compiled and tuned once per process, before the first epoch">{text}</span>
            })}
            <progress id="run-progress" max="1" value=move || progress_value().unwrap_or(0.0).to_string()></progress>
        </div>
    }
}

/// What the server said about itself in its `Hello`.
#[component]
fn ServerFacts(
    info: Signal<Option<ServerInfo>>,
    round_trip_ms: Signal<Option<f64>>,
) -> impl IntoView {
    let field = move |pick: fn(&ServerInfo) -> String| {
        move || {
            info.get()
                .map(|i| pick(&i))
                .unwrap_or_else(|| "…".to_owned())
        }
    };
    view! {
        <footer class="facts">
            "server " <span id="server-version">{field(|i| i.version.clone())}</span>
            " · protocol " <span id="protocol-version">{field(|i| i.protocol_version.to_string())}</span>
            " · " <span id="server-build">{field(|i| i.build.clone())}</span>
            " · " <span id="run-count">{field(|i| i.run_count.to_string())}</span> " runs stored · "
            <span id="round-trip">
                {move || match round_trip_ms.get() {
                    Some(ms) => format!("pong after {ms:.0} ms"),
                    None => "waiting".to_owned(),
                }}
            </span>
        </footer>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_worker_run_says_it_waits_for_a_worker() {
        assert_eq!(device_text("flex (CPU)", "running"), "device flex (CPU)");
        assert_eq!(device_text("", "queued"), "waiting for a worker");
        assert_eq!(device_text("", "stopped"), "device unknown");
    }

    #[test]
    fn the_gpu_preparation_is_told_step_by_step_and_hidden_once_done() {
        assert_eq!(
            preparing_text(0, 5, "staging the 8100 training instances").as_deref(),
            Some("preparing the GPU: step 1 of 5, staging the 8100 training instances")
        );
        assert_eq!(
            preparing_text(4, 5, "capturing the probe set (500 instances)").as_deref(),
            Some("preparing the GPU: step 5 of 5, capturing the probe set (500 instances)")
        );
        assert_eq!(preparing_text(5, 5, ""), None);
    }
}
