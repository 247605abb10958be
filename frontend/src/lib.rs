//! The actiscope browser dashboard, a Leptos client-side app built by Trunk.
//!
//! Owns: the components, the websocket client and the browser-side state (one source of
//! truth for the selected run, epoch, node limit and selection, mirrored in the URL). Does not
//! own: any analysis, training or storage; it only renders what the server sends, in the
//! shapes of `actiscope-protocol`. It must never depend on tokio, axum or burn (a test checks).

pub mod api;
pub mod app;
pub mod charts;
pub mod downloads;
pub mod factors;
pub mod images;
pub mod inspector;
pub mod mapper_view;
pub mod new_run;
pub mod sankey;
pub mod similarity;
pub mod socket;
pub mod url_state;
