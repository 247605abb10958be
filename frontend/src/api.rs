//! Talking to the server: JSON requests to its REST API (the lens endpoints and the run
//! form), and the access token every request and the websocket carry.
//!
//! The token (from a server started with `--token`) is read once from the page URL at start-up
//! ([`set_token`]) and kept here; every URL the dashboard asks the server for is built by
//! [`url`], which appends it. No component handles the token.

use std::cell::OnceCell;

use leptos::prelude::{GetValue, LocalStorage, SetValue, StoredValue, UpdateValue};
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

thread_local! {
    /// The access token, once set (inner `None`: the server needs none). The dashboard runs on
    /// the browser's one thread, so this is the one holder.
    static TOKEN: OnceCell<Option<String>> = const { OnceCell::new() };
}

/// Remembers the access token for every later request. `from_url` is the page URL's `token`
/// value as written there (percent-encoded); it is decoded once here. Called once at start-up;
/// later calls change nothing.
pub fn set_token(from_url: Option<&str>) {
    let token = from_url.map(decode_component);
    TOKEN.with(|holder| {
        // Already set: the first call wins, so the token cannot change under running requests.
        let _ = holder.set(token);
    });
}

/// `path` (which may already have a query) with the access token appended as a
/// percent-encoded `token` parameter, when there is one: the one place that attaches it.
pub fn url(path: &str) -> String {
    TOKEN.with(|holder| with_token(path, holder.get().and_then(Option::as_deref)))
}

/// `path` with `token`, percent-encoded, appended as the `token` query parameter.
fn with_token(path: &str, token: Option<&str>) -> String {
    match token {
        Some(t) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}token={}", encode_component(t))
        }
        None => path.to_owned(),
    }
}

/// Percent-encodes `text` as JavaScript's `encodeURIComponent` does: every UTF-8 byte except
/// ASCII letters, digits and `-_.!~*'()` becomes `%XX`.
fn encode_component(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            for nibble in [byte >> 4, byte & 0x0f] {
                out.push(HEX.get(usize::from(nibble)).map_or('0', |&h| char::from(h)));
            }
        }
    }
    out
}

/// Decodes the `%XX` sequences of a URL component (as `decodeURIComponent` does; `+` stays
/// `+`). Text that does not decode to UTF-8 is kept as it is.
fn decode_component(text: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = match (byte, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&high), Some(&low)) => hex(high).zip(hex(low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// Sends `request`; returns the body of a 2xx answer, or the server's `error` message.
pub async fn fetch_text(request: &web_sys::Request) -> Result<String, String> {
    fetch_answer(request).await.map(|(_, text)| text)
}

/// `POST path` without a body; the answer's text, or the server's `error` message.
pub async fn post(path: &str) -> Result<String, String> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let request =
        web_sys::Request::new_with_str_and_init(&url(path), &init).map_err(|e| format!("{e:?}"))?;
    fetch_text(&request).await
}

/// Most times one [`get_json_with`] asks again after a `202 Accepted` (each answer does a
/// bounded part of the work, e.g. eight epochs of mapper graphs).
const MAX_PENDING_ROUNDS: usize = 10_000;

/// Sends `request`; returns the status and body of a 2xx answer, or the server's `error`
/// message.
async fn fetch_answer(request: &web_sys::Request) -> Result<(u16, String), String> {
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
        Ok((response.status(), text))
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
pub async fn get_json<T: DeserializeOwned>(path: &str) -> Result<T, String> {
    get_json_with(path, None).await
}

/// [`get_json`], abortable through `signal`.
pub async fn get_json_with<T: DeserializeOwned>(
    path: &str,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<T, String> {
    let init = web_sys::RequestInit::new();
    if let Some(signal) = signal {
        init.set_signal(Some(signal));
    }
    // 202 Accepted: the server did part of the work and kept it; asking again goes on.
    for _ in 0..MAX_PENDING_ROUNDS {
        let request = web_sys::Request::new_with_str_and_init(&url(path), &init)
            .map_err(|e| format!("{e:?}"))?;
        let (status, text) = fetch_answer(&request).await?;
        if status != 202 {
            return serde_json::from_str(&text)
                .map_err(|e| format!("unexpected answer from {path}: {e}"));
        }
        if signal.is_some_and(web_sys::AbortSignal::aborted) {
            return Err("aborted".to_owned());
        }
    }
    Err(format!("{path} kept answering that it is still working"))
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
            let answer = get_json_with::<T>(&path, signal.as_ref()).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_appended_percent_encoded() {
        assert_eq!(with_token("/api/runs", None), "/api/runs");
        assert_eq!(with_token("/ws", Some("s3cret")), "/ws?token=s3cret");
        assert_eq!(
            with_token("/api/x?from=1&to=2", Some("a b&c=d/é")),
            "/api/x?from=1&to=2&token=a%20b%26c%3Dd%2F%C3%A9"
        );
        assert_eq!(
            encode_component("AZaz09-_.!~*'()+%"),
            "AZaz09-_.!~*'()%2B%25"
        );
    }

    #[test]
    fn the_page_token_is_decoded_once_and_set_once() {
        for text in ["s3cret", "a b&c=d/é+%", "x%2"] {
            assert_eq!(decode_component(&encode_component(text)), text);
        }
        assert_eq!(decode_component("a%2Bb+c%zz%"), "a+b+c%zz%");
        assert_eq!(decode_component("%FF"), "%FF", "not UTF-8: kept");
        set_token(Some("a%20b"));
        set_token(Some("other"));
        assert_eq!(url("/api/runs"), "/api/runs?token=a%20b");
    }
}
