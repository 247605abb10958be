//! JSON requests to the server's REST API (the lens endpoints and the run form).

use leptos::prelude::{GetValue, LocalStorage, SetValue, StoredValue, UpdateValue};
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// `path` with the access token appended when the server needs one.
pub fn with_token(path: &str, token: Option<&str>) -> String {
    match token {
        Some(t) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}token={t}")
        }
        None => path.to_owned(),
    }
}

/// Sends `request`; returns the body of a 2xx answer, or the server's `error` message.
pub async fn fetch_text(request: &web_sys::Request) -> Result<String, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(request))
        .await
        .map_err(|e| format!("the server did not answer: {e:?}"))?
        .dyn_into()
        .map_err(|_| "not a response".to_owned())?;
    let text = JsFuture::from(response.text().map_err(|e| format!("{e:?}"))?)
        .await
        .ok()
        .and_then(|t| t.as_string())
        .unwrap_or_default();
    if response.ok() {
        Ok(text)
    } else {
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Err(json
            .get("error")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .unwrap_or(text))
    }
}

/// `GET path` and parse the JSON answer.
pub async fn get_json<T: DeserializeOwned>(path: &str, token: Option<&str>) -> Result<T, String> {
    get_json_with(path, token, None).await
}

/// [`get_json`], abortable through `signal`.
pub async fn get_json_with<T: DeserializeOwned>(
    path: &str,
    token: Option<&str>,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<T, String> {
    let init = web_sys::RequestInit::new();
    if let Some(signal) = signal {
        init.set_signal(Some(signal));
    }
    let request = web_sys::Request::new_with_str_and_init(&with_token(path, token), &init)
        .map_err(|e| format!("{e:?}"))?;
    let text = fetch_text(&request).await?;
    serde_json::from_str(&text).map_err(|e| format!("unexpected answer from {path}: {e}"))
}

/// Keeps one request in flight: starting the next aborts the one before, and an answer that
/// arrives after a later request started is dropped. A panel that follows the epoch slider
/// uses it so that, when a user scrubs past epochs, the server drops the answers nobody waits
/// for before it computes them, and a late answer never replaces a newer one.
#[derive(Clone, Copy)]
pub struct LatestOnly {
    controller: StoredValue<Option<web_sys::AbortController>, LocalStorage>,
    generation: StoredValue<u64, LocalStorage>,
}

impl LatestOnly {
    /// No request yet.
    pub fn new() -> Self {
        Self {
            controller: StoredValue::new_local(None),
            generation: StoredValue::new_local(0),
        }
    }

    /// Aborts the request in flight, if any; its `done` is never called.
    pub fn cancel(&self) {
        self.generation.update_value(|g| *g += 1);
        if let Some(previous) = self.controller.try_update_value(Option::take).flatten() {
            previous.abort();
        }
    }

    /// `GET path` as JSON, aborting the previous request; `done` gets the answer unless a
    /// later `get` or a `cancel` came meanwhile.
    pub fn get<T: DeserializeOwned + 'static>(
        &self,
        path: String,
        token: Option<String>,
        done: impl FnOnce(Result<T, String>) + 'static,
    ) {
        let ticket = self.generation.get_value() + 1;
        self.generation.set_value(ticket);
        let signal = web_sys::AbortController::new().ok().map(|controller| {
            let signal = controller.signal();
            if let Some(previous) = self
                .controller
                .try_update_value(|current| current.replace(controller))
                .flatten()
            {
                previous.abort();
            }
            signal
        });
        let generation = self.generation;
        leptos::task::spawn_local(async move {
            let answer = get_json_with::<T>(&path, token.as_deref(), signal.as_ref()).await;
            if generation.get_value() == ticket {
                done(answer);
            }
        });
    }
}

impl Default for LatestOnly {
    fn default() -> Self {
        Self::new()
    }
}
