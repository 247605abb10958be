//! `cargo xtask test`: every check the project has, in the order that fails fastest.

use std::time::Instant;

use crate::prereqs::ensure_for_test;
use crate::run::build_dashboard;
use crate::shell::{cargo, repo_root, run};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip the browser tests (for a machine without Chromium).
    #[arg(long)]
    no_browser: bool,
}

/// The wgpu tests open the Vulkan loader, whose window-system probing (libwayland) prints an
/// error on every test when `XDG_RUNTIME_DIR` is unset, as on CI and in containers. Give them
/// an empty private directory instead, so the log shows real errors only.
fn quiet_wayland(command: &mut std::process::Command) -> anyhow::Result<()> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return Ok(());
    }
    let dir = repo_root().join("target/xdg-runtime");
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    command.env("XDG_RUNTIME_DIR", dir);
    Ok(())
}

/// Runs fmt, clippy (host and wasm32), all tests, then the browser tests.
pub fn test(args: &TestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut timings: Vec<(&str, f64)> = Vec::new();
    let mut step = |name: &'static str, f: &mut dyn FnMut() -> anyhow::Result<()>| {
        println!("\n=== {name}");
        let step_started = Instant::now();
        let result = f();
        timings.push((name, step_started.elapsed().as_secs_f64()));
        result
    };

    step("prerequisites", &mut || {
        if args.no_browser {
            crate::prereqs::ensure_for_run()
        } else {
            ensure_for_test()
        }
    })?;
    step("rustfmt", &mut || {
        run(cargo().args(["fmt", "--all", "--check"]))
    })?;
    step("clippy (host)", &mut || {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--exclude",
            "actiscope-frontend",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("clippy (wasm32 frontend)", &mut || {
        run(cargo().args([
            "clippy",
            "--package",
            "actiscope-frontend",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("dashboard build (trunk)", &mut build_dashboard)?;
    step("unit and integration tests", &mut || {
        let mut command = cargo();
        command.args(["test", "--workspace", "--exclude", "actiscope-frontend"]);
        quiet_wayland(&mut command)?;
        run(&mut command)
    })?;
    step(
        "Python writer -> actiscope import (numpy, safetensors from PyPI)",
        &mut || {
            let python =
                crate::bench::bench_python(&[("numpy", "numpy"), ("safetensors", "safetensors")])?;
            run(cargo()
                // Same package set as the tests above, so their build is reused.
                .args(["test", "--workspace", "--exclude", "actiscope-frontend"])
                .args(["--test", "import", "--", "--ignored"])
                .env("ACTISCOPE_PYTHON", python))
        },
    )?;
    step("frontend unit tests (host)", &mut || {
        run(cargo().args(["test", "--package", "actiscope-frontend", "--lib"]))
    })?;
    if !args.no_browser {
        step("browser tests (headless Chromium)", &mut || {
            // The several-machines test starts the `actiscope` binary itself. The test step
            // above built it (Cargo builds a package's binaries for its integration tests);
            // `--no-run` makes sure, with the same package set, so the binary's features unify
            // as the tests' do. (`cargo build -p actiscope-server` would unify them differently
            // and compile burn a second time: 10 minutes of a cold run.)
            run(cargo()
                .args(["test", "--workspace", "--exclude", "actiscope-frontend"])
                .arg("--no-run"))?;
            run(cargo()
                // Same package set as the step above, so Cargo unifies the same features and
                // reuses its build instead of compiling burn a second time.
                .args(["test", "--workspace", "--exclude", "actiscope-frontend"])
                .args(["--test", "browser"])
                .args(["--", "--ignored", "--test-threads", "1"])
                .env("ACTISCOPE_DIST", repo_root().join("dist")))
        })?;
    }

    println!("\n=== summary");
    for (name, secs) in &timings {
        println!("{secs:>8.1} s  {name}");
    }
    println!("{:>8.1} s  total", started.elapsed().as_secs_f64());
    Ok(())
}
