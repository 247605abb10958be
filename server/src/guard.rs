//! Who may talk to the server. Every request passes [`guard`]:
//!
//! - `Host` must name this machine: a loopback name (`localhost`, `*.localhost`, `127.0.0.0/8`,
//!   `::1`), the address the server is bound to, or a name given with `--allow-host`. A page
//!   that rebinds its own DNS name to 127.0.0.1 sends its own name, and is refused (403).
//! - `Origin`, when a browser sends one (websocket upgrades, POST, DELETE, cross-origin
//!   fetches), must name such a host too: a foreign page cannot open `/ws` or call the API.
//! - With a token configured, `/api/*` and `/ws` need it: `Authorization: Bearer`, the
//!   `actiscope_token` cookie, or `?token=` (percent-encoded). A page load with a valid
//!   `?token=` gets the cookie (HttpOnly, SameSite=Strict), so the dashboard does not keep the
//!   token in a URL that gets shared. Tokens are compared in constant time.
//!
//! A server bound to every interface (`0.0.0.0`) cannot know the names it is reached by: it
//! needs `--token`, and checks `Host` only when `--allow-host` names them.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Name of the cookie that carries the token.
pub const TOKEN_COOKIE: &str = "actiscope_token";

/// Which `Host` and `Origin` names the server answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// The address the server is bound to, when it is a single one (not `0.0.0.0`).
    pub bound: Option<IpAddr>,
    /// Extra names allowed with `--allow-host` (host names or addresses, no port).
    pub allowed: Vec<String>,
    /// Whether to check at all (off for a server bound to every interface without
    /// `--allow-host`).
    pub check: bool,
}

impl HostPolicy {
    /// The policy of a server bound to `ip` with `allowed` extra names.
    pub fn for_bind(ip: IpAddr, allowed: Vec<String>) -> Self {
        Self {
            bound: (!ip.is_unspecified()).then_some(ip),
            check: !ip.is_unspecified() || !allowed.is_empty(),
            allowed: allowed
                .into_iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
        }
    }

    /// The policy of a loopback server (the default, and the tests').
    pub fn loopback() -> Self {
        Self {
            bound: None,
            allowed: Vec::new(),
            check: true,
        }
    }

    /// Whether `host` (a `Host` header value or an origin's host, port allowed) is this
    /// server's.
    pub fn allows(&self, host: &str) -> bool {
        if !self.check {
            return true;
        }
        let name = strip_port(host).to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        if let Ok(ip) = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            && (ip.is_loopback() || Some(ip) == self.bound)
        {
            return true;
        }
        self.allowed.contains(&name)
    }
}

/// `host` without its `:port` (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest
            .split_once(']')
            .and_then(|(ip, _)| host.get(..ip.len() + 2))
            .unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The host of an `Origin` value (`scheme://host[:port]`), or `None` for `null` and garbage.
fn origin_host(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    matches!(scheme, "http" | "https").then_some(rest.split('/').next().unwrap_or(rest))
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Whether `path` needs the token (the API and the websocket; the dashboard's files do not).
fn guarded_path(path: &str) -> bool {
    path == "/ws" || path == "/api" || path.starts_with("/api/")
}

/// The tokens a request carries: bearer header, cookie, and `from_query` (the `?token=`
/// value, already percent-decoded).
fn offered_tokens(headers: &HeaderMap, from_query: Option<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut tokens = Vec::new();
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        tokens.push(bearer.as_bytes().to_vec());
    }
    for cookies in headers.get_all(header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else {
            continue;
        };
        for pair in cookies.split(';') {
            if let Some(value) = pair
                .trim()
                .strip_prefix(TOKEN_COOKIE)
                .and_then(|v| v.strip_prefix('='))
            {
                tokens.push(percent_decode(value));
            }
        }
    }
    tokens.extend(from_query);
    tokens
}

fn query_token(query: Option<&str>) -> Option<Vec<u8>> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(percent_decode)
}

/// The middleware; see the module doc.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let policy = state.host_policy();
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    if let Some(host) = host
        && !policy.allows(host)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "this server answers only to its own host names (see --allow-host)",
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .ok()
            .and_then(origin_host)
            .is_some_and(|h| policy.allows(h));
        if !allowed {
            return refuse(
                StatusCode::FORBIDDEN,
                "requests from other web pages are refused",
            );
        }
    }
    let Some(expected) = state.token() else {
        return next.run(request).await;
    };
    let from_query = query_token(request.uri().query());
    let set_cookie = from_query
        .as_deref()
        .is_some_and(|given| same_bytes(given, expected.as_bytes()));
    let valid = offered_tokens(request.headers(), from_query)
        .iter()
        .any(|given| same_bytes(given, expected.as_bytes()));
    if guarded_path(request.uri().path()) && !valid {
        return refuse(StatusCode::UNAUTHORIZED, "a valid token is required");
    }
    let mut response = next.run(request).await;
    if set_cookie {
        let cookie = format!(
            "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            percent_encode(expected)
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `text` with every `%XX` escape decoded (a malformed escape is kept as written).
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// `text` with everything but unreserved characters (`A-Z a-z 0-9 - . _ ~`) percent-encoded.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether `a` equals `b`, looking at every byte whatever the first difference (the length
/// of the expected token is not a secret).
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    same_bytes_observed(a, b, &mut |_| {})
}

/// [`same_bytes`], telling `looked_at` the index of every byte it compares (so a test can see
/// that it never stops at the first difference).
fn same_bytes_observed(a: &[u8], b: &[u8], looked_at: &mut impl FnMut(usize)) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        looked_at(i);
        // Opaque to the optimiser, so it cannot turn the loop into an early exit.
        diff = std::hint::black_box(diff | (x ^ y));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_token_is_compared_to_its_last_byte() {
        let expected = b"correct horse battery staple";
        let mut wrong_first = *expected;
        wrong_first[0] ^= 1;
        let mut wrong_last = *expected;
        wrong_last[expected.len() - 1] ^= 1;
        for offered in [&wrong_first, &wrong_last, expected] {
            let mut looked_at = Vec::new();
            let same = same_bytes_observed(offered, expected, &mut |i| looked_at.push(i));
            assert_eq!(same, offered == expected);
            // Every byte, whichever differs: the time does not say where the first
            // difference is.
            assert_eq!(looked_at, (0..expected.len()).collect::<Vec<_>>());
        }
        assert!(!same_bytes(b"short", expected));
    }

    #[test]
    fn percent_escapes_round_trip_and_malformed_ones_stay() {
        assert_eq!(percent_decode("abc%2Fdef%3D"), b"abc/def=");
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
        let token = "a b/c=d+é";
        assert_eq!(percent_decode(&percent_encode(token)), token.as_bytes());
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
    }

    #[test]
    fn hosts_are_this_machines_names_only() {
        let policy = HostPolicy::loopback();
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:80",
            "dash.localhost:1",
            "[::1]:8080",
            "127.1.2.3",
        ] {
            assert!(policy.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "localhost.evil.example",
            "[::2]:80",
        ] {
            assert!(!policy.allows(host), "{host}");
        }
        let lan = HostPolicy::for_bind("192.168.1.5".parse().unwrap(), vec!["Lab-Box".to_owned()]);
        assert!(lan.allows("192.168.1.5:8080") && lan.allows("lab-box:8080"));
        assert!(!lan.allows("192.168.1.6:8080"));
        let everywhere = HostPolicy::for_bind("0.0.0.0".parse().unwrap(), Vec::new());
        assert!(everywhere.allows("anything:1"), "no names to check against");
        let named = HostPolicy::for_bind("0.0.0.0".parse().unwrap(), vec!["lab".to_owned()]);
        assert!(named.allows("lab:8080") && !named.allows("evil:8080"));
    }

    #[test]
    fn origins_give_their_host() {
        assert_eq!(origin_host("http://127.0.0.1:8080"), Some("127.0.0.1:8080"));
        assert_eq!(origin_host("https://evil.example"), Some("evil.example"));
        assert_eq!(origin_host("null"), None);
        assert_eq!(origin_host("file:///x"), None);
    }
}
