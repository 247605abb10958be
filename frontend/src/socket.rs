//! The websocket client: connects to the server's `/ws`, decodes binary protocol frames and
//! reconnects after the server goes away.

use std::cell::RefCell;
use std::rc::Rc;

use actiscope_protocol::{ClientMessage, ServerMessage, decode_server_message, encode};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, MessageEvent, WebSocket};

/// What the dashboard hears from the socket.
#[derive(Debug, Clone)]
pub enum SocketEvent {
    /// The connection opened.
    Open,
    /// A decoded server message.
    Message(ServerMessage),
    /// A frame that could not be decoded.
    BadFrame(String),
    /// The connection closed; a reconnect is scheduled.
    Closed,
}

/// Delay before reconnecting after the socket closed, in milliseconds.
const RECONNECT_DELAY_MS: i32 = 1_000;

/// The `ws://` or `wss://` URL of the server's socket, derived from the page's own location
/// (carrying the access token through [`crate::api::url`], if there is one).
pub fn socket_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let protocol = if location.protocol().ok()? == "https:" {
        "wss:"
    } else {
        "ws:"
    };
    Some(format!(
        "{protocol}//{}{}",
        location.host().ok()?,
        crate::api::url("/ws")
    ))
}

/// Sends one client message on an open socket.
pub fn send(socket: &WebSocket, message: &ClientMessage) -> Result<(), String> {
    let frame = encode(message).map_err(|e| e.to_string())?;
    socket
        .send_with_u8_array(&frame)
        .map_err(|e| format!("{e:?}"))
}

/// The event handlers of one socket. They live until the socket has closed and the reconnect
/// that replaces it fires, then they are dropped (not leaked), however often the server goes
/// away.
struct Handlers {
    _open: Closure<dyn FnMut()>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut()>,
}

/// Opens the socket and keeps it open: every event goes to `on_event`, and a closed socket is
/// reopened after [`RECONNECT_DELAY_MS`]. `on_open` receives the socket to send on.
pub fn connect(
    url: String,
    on_event: impl Fn(SocketEvent) + Clone + 'static,
    on_open: impl Fn(&WebSocket) + Clone + 'static,
) {
    let Ok(socket) = WebSocket::new(&url) else {
        on_event(SocketEvent::Closed);
        schedule_reconnect(url, on_event, on_open, None);
        return;
    };
    socket.set_binary_type(BinaryType::Arraybuffer);

    let events = on_event.clone();
    let opened = socket.clone();
    let open_handler = on_open.clone();
    let onopen = Closure::<dyn FnMut()>::new(move || {
        events(SocketEvent::Open);
        open_handler(&opened);
    });

    let events = on_event.clone();
    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let Ok(buffer) = event.data().dyn_into::<js_sys::ArrayBuffer>() else {
            events(SocketEvent::BadFrame("non-binary frame".to_owned()));
            return;
        };
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        match decode_server_message(&bytes) {
            Ok(message) => events(SocketEvent::Message(message)),
            Err(err) => events(SocketEvent::BadFrame(err.to_string())),
        }
    });

    // The close handler owns the slot holding all three handlers (itself included): it
    // detaches them from the socket and hands them to the reconnect, which drops them once
    // this handler has returned (a closure cannot drop itself while it runs).
    let slot: Rc<RefCell<Option<Handlers>>> = Rc::default();
    let close_slot = Rc::clone(&slot);
    let closed = socket.clone();
    let onclose = Closure::<dyn FnMut()>::new(move || {
        closed.set_onopen(None);
        closed.set_onmessage(None);
        closed.set_onclose(None);
        let spent = close_slot.borrow_mut().take();
        on_event(SocketEvent::Closed);
        schedule_reconnect(url.clone(), on_event.clone(), on_open.clone(), spent);
    });
    socket.set_onopen(Some(onopen.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    socket.set_onclose(Some(onclose.as_ref().unchecked_ref()));
    *slot.borrow_mut() = Some(Handlers {
        _open: onopen,
        _message: onmessage,
        _close: onclose,
    });
}

fn schedule_reconnect(
    url: String,
    on_event: impl Fn(SocketEvent) + Clone + 'static,
    on_open: impl Fn(&WebSocket) + Clone + 'static,
    spent: Option<Handlers>,
) {
    let Some(window) = web_sys::window() else {
        // No window, so nothing runs again; the handlers must not be dropped while the close
        // handler that passed them here is still running.
        std::mem::forget(spent);
        return;
    };
    let retry = Closure::once_into_js(move || {
        drop(spent);
        connect(url, on_event, on_open);
    });
    // A failure here only means no reconnect; the status line already says disconnected.
    let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
        retry.unchecked_ref(),
        RECONNECT_DELAY_MS,
    );
}
