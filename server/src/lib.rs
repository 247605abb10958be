//! The actiscope server: HTTP routes, websocket streaming and the command-line tool.
//!
//! Owns: the axum [`Router`](axum::Router) built by [`app::app`], the websocket loop in [`ws`],
//! serving the frontend's `dist/` folder, and the `actiscope` CLI in [`cli`]. Does not own:
//! analysis maths (`actiscope-analysis`), training (`actiscope-train`), storage
//! (`actiscope-store`) or wire formats (`actiscope-protocol`); it glues them together.

pub mod answers;
pub mod app;
pub mod cli;
pub mod ctrl_c;
pub mod devices_cmd;
pub mod figures;
pub mod frontend;
pub mod guard;
pub mod hub;
pub mod import_cmd;
pub mod importer;
pub mod lenses;
pub mod owner;
pub mod preparation;
pub mod query_params;
pub mod report_cmd;
pub mod resume;
pub mod resume_cmd;
pub mod runner;
pub mod state;
pub mod stored;
pub mod train_cmd;
pub mod watch;
pub mod worker_cmd;
pub mod ws;
