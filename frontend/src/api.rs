//! JSON requests to the server's REST API (the lens endpoints and the run form).

use leptos::prelude::{LocalStorage, StoredValue, UpdateValue};
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

/// Keeps one request in flight: starting the next aborts the one before. A panel that follows
/// the epoch slider uses it so that, when a user scrubs past epochs, the server drops the
/// answers nobody waits for before it computes them.
#[derive(Clone, Copy)]
pub struct LatestOnly(StoredValue<Option<web_sys::AbortController>, LocalStorage>);

impl LatestOnly {
    /// No request yet.
    pub fn new() -> Self {
        Self(StoredValue::new_local(None))
    }

    /// Aborts the previous request, if any, and returns the signal of the next.
    pub fn next(&self) -> Option<web_sys::AbortSignal> {
        let controller = web_sys::AbortController::new().ok()?;
        let signal = controller.signal();
        if let Some(previous) = self
            .0
            .try_update_value(|current| current.replace(controller))
            .flatten()
        {
            previous.abort();
        }
        Some(signal)
    }
}

impl Default for LatestOnly {
    fn default() -> Self {
        Self::new()
    }
}
