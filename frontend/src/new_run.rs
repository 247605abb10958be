//! The "New run" form: a preset, then dataset, model widths, optimiser, learning rate, batch
//! size, epochs, probe filter and device, checked here for obvious mistakes and then by the
//! server, whose message is shown as is. Choosing a preset fills the fields with its values
//! (the server's presets in `actiscope-train`'s `request` module; the body names the preset
//! too, so any key the form leaves out comes from the same place).

use leptos::prelude::*;

/// The presets the form offers: name, label.
pub const PRESETS: [(&str, &str); 2] = [
    (
        "default",
        "default: the paper's MLP with Adam (learns in a few epochs)",
    ),
    (
        "apd-paper",
        "apd-paper: the APD paper's setting, SGD at lr 0.001",
    ),
];

/// Form fields, as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunForm {
    /// `default` or `apd-paper`.
    pub preset: String,
    /// Dataset name or directory.
    pub dataset: String,
    /// Hidden widths, e.g. `40,40,40`, or `cnn`.
    pub hidden: String,
    /// `sgd` or `adam`.
    pub optimizer: String,
    /// Learning rate.
    pub lr: String,
    /// Batch size.
    pub batch: String,
    /// Epochs.
    pub epochs: String,
    /// Probe filter, e.g. `label=1,n=500`.
    pub probe: String,
    /// `auto`, `wgpu`, `vulkan` or `flex`.
    pub device: String,
    /// Share of the training set that trains, e.g. `0.25` (the factorization paper's case I).
    pub fraction: String,
    /// Classes that train, e.g. `0,1,2`; empty for all (case II).
    pub classes: String,
    /// `shuffled` or `by-class` (case III).
    pub order: String,
}

impl Default for RunForm {
    fn default() -> Self {
        Self::preset("default")
    }
}

impl RunForm {
    /// The form filled with a preset's values (the default preset for an unknown name).
    pub fn preset(name: &str) -> Self {
        let (preset, optimizer) = match name {
            "apd-paper" => ("apd-paper", "sgd"),
            _ => ("default", "adam"),
        };
        Self {
            preset: preset.to_owned(),
            dataset: "digits".to_owned(),
            hidden: "40,40,40".to_owned(),
            optimizer: optimizer.to_owned(),
            lr: "0.001".to_owned(),
            batch: "64".to_owned(),
            epochs: "20".to_owned(),
            probe: "n=500".to_owned(),
            device: "auto".to_owned(),
            fraction: "1".to_owned(),
            classes: String::new(),
            order: "shuffled".to_owned(),
        }
    }

    /// The JSON body of `POST /api/runs`, or the first obvious mistake.
    pub fn to_request(&self) -> Result<serde_json::Value, String> {
        let lr: f64 = self
            .lr
            .trim()
            .parse()
            .map_err(|_| format!("learning rate `{}` is not a number", self.lr))?;
        if !(lr.is_finite() && lr > 0.0) {
            return Err("the learning rate must be > 0".to_owned());
        }
        let positive = |name: &str, text: &str| -> Result<i64, String> {
            match text.trim().parse::<i64>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(format!("{name} must be a whole number > 0, got `{text}`")),
            }
        };
        let batch = positive("batch size", &self.batch)?;
        let epochs = positive("epochs", &self.epochs)?;
        let mut body = serde_json::Map::new();
        body.insert("preset".to_owned(), self.preset.as_str().into());
        body.insert("dataset".to_owned(), self.dataset.trim().into());
        body.insert("optimizer".to_owned(), self.optimizer.as_str().into());
        body.insert("lr".to_owned(), lr.into());
        body.insert("batch".to_owned(), batch.into());
        body.insert("epochs".to_owned(), epochs.into());
        body.insert("probe".to_owned(), self.probe.trim().into());
        body.insert("device".to_owned(), self.device.as_str().into());
        let fraction: f64 = self
            .fraction
            .trim()
            .parse()
            .map_err(|_| format!("fraction `{}` is not a number", self.fraction))?;
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(format!(
                "the fraction must be in (0, 1], got `{}`",
                self.fraction
            ));
        }
        if fraction < 1.0 {
            body.insert("fraction".to_owned(), fraction.into());
        }
        if !self.classes.trim().is_empty() {
            body.insert("classes".to_owned(), self.classes.trim().into());
        }
        if self.order != "shuffled" {
            body.insert("order".to_owned(), self.order.trim().into());
        }
        if self.hidden.trim() == "cnn" {
            body.insert("model".to_owned(), "cnn".into());
        } else {
            body.insert("hidden".to_owned(), self.hidden.trim().into());
        }
        let body = serde_json::Value::Object(body);
        Ok(body)
    }
}

/// The body of `POST /api/imports` for the run directory `dir`, or why not.
pub fn import_request(dir: &str, follow: bool) -> Result<serde_json::Value, String> {
    let dir = dir.trim();
    if dir.is_empty() {
        return Err("name the run directory to import (a path on the server's machine)".to_owned());
    }
    Ok(serde_json::json!({ "dir": dir, "follow": follow }))
}

/// Posts `body` to `path` (`/api/runs` or `/api/imports`); returns the new run's id or the
/// server's message.
async fn post_run(path: &str, body: String) -> Result<i64, String> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&wasm_bindgen::JsValue::from_str(&body));
    let url = crate::api::url(path);
    let request =
        web_sys::Request::new_with_str_and_init(&url, &init).map_err(|e| format!("{e:?}"))?;
    request
        .headers()
        .set("content-type", "application/json")
        .map_err(|e| format!("{e:?}"))?;
    let text = crate::api::fetch_text(&request).await?;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    json.get("run_id")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| format!("unexpected answer: {text}"))
}

/// The form. `on_started` receives the id of a run the server accepted.
#[component]
pub fn NewRun(
    /// Called with the new run's id.
    on_started: Callback<i64>,
) -> impl IntoView {
    let form = RwSignal::new(RunForm::default());
    let (message, set_message) = signal(None::<String>);
    let (open, set_open) = signal(false);
    let field = move |label: &'static str,
                      id: &'static str,
                      get: fn(&RunForm) -> String,
                      set: fn(&mut RunForm, String)| {
        view! {
            <label>
                {label}
                <input id=id prop:value=move || form.with(get) on:input=move |ev| {
                    let value = event_target_value(&ev);
                    form.update(|f| set(f, value));
                } />
            </label>
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match form.get_untracked().to_request() {
            Err(problem) => set_message.set(Some(problem)),
            Ok(body) => {
                set_message.set(Some("starting…".to_owned()));
                leptos::task::spawn_local(async move {
                    match post_run("/api/runs", body.to_string()).await {
                        Ok(run_id) => {
                            set_message.set(Some(format!("run {run_id} started")));
                            set_open.set(false);
                            on_started.run(run_id);
                        }
                        Err(problem) => set_message.set(Some(problem)),
                    }
                });
            }
        }
    };
    let import_dir = RwSignal::new(String::new());
    let import_follow = RwSignal::new(true);
    let submit_import = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match import_request(&import_dir.get_untracked(), import_follow.get_untracked()) {
            Err(problem) => set_message.set(Some(problem)),
            Ok(body) => {
                set_message.set(Some("importing…".to_owned()));
                leptos::task::spawn_local(async move {
                    match post_run("/api/imports", body.to_string()).await {
                        Ok(run_id) => {
                            set_message.set(Some(format!("run {run_id} imported")));
                            set_open.set(false);
                            on_started.run(run_id);
                        }
                        Err(problem) => set_message.set(Some(problem)),
                    }
                });
            }
        }
    };
    view! {
        <div class="new-run">
            <button id="new-run-toggle" on:click=move |_| set_open.update(|o| *o = !*o)>"New run"</button>
            <Show when=move || open.get()>
                <form id="new-run-form" on:submit=submit>
                    <label>
                        "preset "
                        <select id="nr-preset" on:change=move |ev| {
                            form.set(RunForm::preset(&event_target_value(&ev)));
                        }>
                            {PRESETS
                                .into_iter()
                                .map(|(name, label)| {
                                    view! {
                                        <option value=name selected=move || form.with(|f| f.preset == name)>
                                            {label}
                                        </option>
                                    }
                                })
                                .collect_view()}
                        </select>
                    </label>
                    {field("dataset ", "nr-dataset", |f| f.dataset.clone(), |f, v| f.dataset = v)}
                    {field("hidden widths (or cnn) ", "nr-hidden", |f| f.hidden.clone(), |f, v| f.hidden = v)}
                    {field("optimizer ", "nr-optimizer", |f| f.optimizer.clone(), |f, v| f.optimizer = v)}
                    {field("learning rate ", "nr-lr", |f| f.lr.clone(), |f, v| f.lr = v)}
                    {field("batch ", "nr-batch", |f| f.batch.clone(), |f, v| f.batch = v)}
                    {field("epochs ", "nr-epochs", |f| f.epochs.clone(), |f, v| f.epochs = v)}
                    {field("probe ", "nr-probe", |f| f.probe.clone(), |f, v| f.probe = v)}
                    {field("device ", "nr-device", |f| f.device.clone(), |f, v| f.device = v)}
                    {field("fraction of the training set ", "nr-fraction", |f| f.fraction.clone(), |f, v| f.fraction = v)}
                    {field("only classes ", "nr-classes", |f| f.classes.clone(), |f, v| f.classes = v)}
                    {field("order (shuffled or by-class) ", "nr-order", |f| f.order.clone(), |f, v| f.order = v)}
                    <button type="submit" id="nr-submit">"Start"</button>
                </form>
                <form id="import-form" on:submit=submit_import>
                    <label>
                        "or import a run directory written by PyTorch or any framework "
                        <input id="import-dir" placeholder="/path/to/run" prop:value=move || import_dir.get()
                            on:input=move |ev| import_dir.set(event_target_value(&ev)) />
                    </label>
                    <label>
                        <input type="checkbox" id="import-follow" prop:checked=move || import_follow.get()
                            on:change=move |ev| import_follow.set(event_target_checked(&ev)) />
                        " follow the job as it writes"
                    </label>
                    <button type="submit" id="import-submit">"Import"</button>
                </form>
            </Show>
            <span id="new-run-message" class="note">{move || message.get()}</span>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obvious_mistakes_are_caught_before_sending() {
        assert!(RunForm::default().to_request().is_ok());
        let bad = |edit: fn(&mut RunForm)| {
            let mut f = RunForm::default();
            edit(&mut f);
            f.to_request().unwrap_err()
        };
        assert!(bad(|f| f.lr = "-1".into()).contains("learning rate"));
        assert!(bad(|f| f.lr = "abc".into()).contains("not a number"));
        assert!(bad(|f| f.epochs = "0".into()).contains("epochs"));
        assert!(bad(|f| f.batch = "2.5".into()).contains("batch"));
        let cnn = RunForm {
            hidden: "cnn".into(),
            ..RunForm::default()
        };
        assert_eq!(cnn.to_request().unwrap()["model"], "cnn");
        assert!(bad(|f| f.fraction = "0".into()).contains("fraction"));
        assert!(bad(|f| f.fraction = "half".into()).contains("not a number"));
        // The whole set, shuffled, sends none of the three keys; a cut sends each.
        let whole = RunForm::default().to_request().unwrap();
        assert!(whole.get("fraction").is_none() && whole.get("classes").is_none());
        let cut = RunForm {
            fraction: "0.25".into(),
            classes: " 9,0 ".into(),
            order: "by-class".into(),
            ..RunForm::default()
        }
        .to_request()
        .unwrap();
        assert_eq!(cut["fraction"], 0.25);
        assert_eq!(cut["classes"], "9,0");
        assert_eq!(cut["order"], "by-class");
    }

    #[test]
    fn an_import_names_its_directory() {
        assert!(import_request("  ", true).is_err());
        assert_eq!(
            import_request(" /data/run ", false).unwrap(),
            serde_json::json!({"dir": "/data/run", "follow": false})
        );
    }

    #[test]
    fn presets_fill_the_form_and_name_themselves_in_the_request() {
        let default = RunForm::default().to_request().unwrap();
        assert_eq!(default["preset"], "default");
        assert_eq!(default["optimizer"], "adam");
        let paper = RunForm::preset("apd-paper").to_request().unwrap();
        assert_eq!(paper["preset"], "apd-paper");
        assert_eq!(paper["optimizer"], "sgd");
        assert_eq!(paper["lr"], 0.001);
        assert_eq!(paper["hidden"], "40,40,40");
        assert_eq!(paper["batch"], 64);
        assert!(
            PRESETS
                .iter()
                .all(|(name, _)| RunForm::preset(name).preset == *name)
        );
    }
}
