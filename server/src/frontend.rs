//! Serving the dashboard: a Trunk build folder given with `--dist`, the build embedded in a
//! release binary (see `build.rs`), or, with neither, a page that says how to get one. Paths
//! the build does not hold get `index.html`, so the dashboard's own routes load the app.

use std::path::PathBuf;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_dist.rs"));
}

/// Page served at `/` when no frontend build is available.
const NO_FRONTEND_PAGE: &str = "<!doctype html><html><head><title>actiscope</title></head><body>\
<h1>actiscope server</h1><p>The dashboard has not been built. Run <code>cargo xtask run</code> \
from the repository, or pass <code>--dist DIR</code> with a Trunk build.</p>\
<p>API: <a href=\"/api/health\">/api/health</a></p></body></html>";

/// Which dashboard the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frontend {
    /// A Trunk build folder (the one holding `index.html`).
    Dir(PathBuf),
    /// The build compiled into this binary.
    Embedded,
    /// None: `/` explains how to build one.
    Missing,
}

impl Frontend {
    /// `--dist` when given, else the embedded build when this binary has one, else none.
    pub fn choose(dist: Option<PathBuf>) -> Self {
        match dist {
            Some(dir) => Self::Dir(dir),
            None if has_embedded() => Self::Embedded,
            None => Self::Missing,
        }
    }

    /// The frontend's routes, as the fallback of `api`.
    pub fn serve<S: Clone + Send + Sync + 'static>(&self, api: Router<S>) -> Router<S> {
        match self {
            Self::Dir(dist) => {
                let index = ServeFile::new(dist.join("index.html"));
                api.fallback_service(ServeDir::new(dist).fallback(index))
            }
            Self::Embedded => api.fallback(get(embedded_file)),
            Self::Missing => api.fallback(get(|| async { Html(NO_FRONTEND_PAGE) })),
        }
    }
}

/// Whether this binary carries a dashboard build.
pub fn has_embedded() -> bool {
    embedded_lookup("index.html").is_some()
}

fn embedded_lookup(path: &str) -> Option<&'static [u8]> {
    embedded::FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

/// The media type of a dashboard file, from its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

async fn embedded_file(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let (name, bytes) = match embedded_lookup(path) {
        Some(bytes) if !path.is_empty() => (path, bytes),
        _ => match embedded_lookup("index.html") {
            Some(bytes) => ("index.html", bytes),
            None => return (StatusCode::NOT_FOUND, "no dashboard").into_response(),
        },
    };
    ([(header::CONTENT_TYPE, content_type(name))], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_files_get_their_media_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("actiscope-frontend_bg.wasm"),
            "application/wasm"
        );
        assert_eq!(content_type("a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn a_given_folder_wins_over_the_embedded_build() {
        let dir = PathBuf::from("/some/dist");
        assert_eq!(Frontend::choose(Some(dir.clone())), Frontend::Dir(dir));
        let without = Frontend::choose(None);
        assert_eq!(without == Frontend::Embedded, has_embedded());
    }
}
