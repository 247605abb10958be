//! `cargo xtask run`: build the dashboard and the server, then serve.

use anyhow::Context;

use crate::prereqs::ensure_for_run;
use crate::shell::{cargo, repo_root, run as run_command};

/// Options of `cargo xtask run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Port to serve on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// SQLite file that holds the runs.
    #[arg(long, default_value = "runs.db")]
    store: String,
}

/// Builds everything and runs `actiscope serve` in the foreground.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    ensure_for_run()?;
    build_dashboard()?;
    // Only the binary it serves: a newcomer's first `run` compiles no test and no test-only
    // dependency. Cargo unifies features per selection, so a later `cargo xtask test` (whose
    // dev-dependencies turn on more features of shared crates) compiles the dependencies once
    // more; the README gives both times.
    run_command(cargo().args([
        "build",
        "--package",
        "actiscope-server",
        "--bin",
        "actiscope",
    ]))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let binary = target_dir.join("debug/actiscope");
    println!("starting the server on http://127.0.0.1:{}/", args.port);
    run_command(
        std::process::Command::new(&binary)
            .current_dir(repo_root())
            .args([
                "serve",
                "--port",
                &args.port.to_string(),
                "--store",
                &args.store,
            ])
            .args(["--dist", "dist", "--default-run"]),
    )
    .with_context(|| format!("running {}", binary.display()))
}

/// Builds the dashboard with Trunk into `dist/` (release: the Sankey redraws on every epoch
/// change), offline: every tool is already installed.
pub fn build_dashboard() -> anyhow::Result<()> {
    run_command(
        std::process::Command::new("trunk")
            .current_dir(repo_root())
            .args(["build", "--release", "--offline"]),
    )
}
