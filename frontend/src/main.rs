//! Mounts the dashboard; everything else lives in the library.

fn main() {
    leptos::mount::mount_to_body(actiscope_frontend::app::App);
}
