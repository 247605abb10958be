//! The layering of ../shared/DESIGN.md, checked with `cargo tree`: the frontend never pulls in
//! tokio, axum or burn, and the analysis core and the protocol know nothing of burn, axum or
//! tokio.

// Tests fail by panicking, helpers included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::Command;

fn dependencies(package: &str, target: Option<&str>) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args([
        "tree",
        "--package",
        package,
        "--edges",
        "normal",
        "--prefix",
        "none",
    ]);
    command.args(["--format", "{p}"]);
    if let Some(target) = target {
        command.args(["--target", target]);
    }
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let output = command.output().expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn assert_free_of(package: &str, target: Option<&str>, forbidden: &[&str]) {
    let deps = dependencies(package, target);
    assert!(
        deps.len() > 1,
        "{package} should have dependencies: {deps:?}"
    );
    let found: Vec<&String> = deps
        .iter()
        .filter(|dep| {
            forbidden
                .iter()
                .any(|f| *dep == f || dep.starts_with(&format!("{f}-")))
        })
        .collect();
    assert!(found.is_empty(), "{package} must not depend on {found:?}");
}

#[test]
fn frontend_never_depends_on_tokio_axum_or_burn() {
    assert_free_of(
        "actiscope-frontend",
        Some("wasm32-unknown-unknown"),
        &["tokio", "axum", "burn"],
    );
}

#[test]
fn analysis_and_protocol_stay_pure() {
    for package in ["actiscope-analysis", "actiscope-protocol"] {
        assert_free_of(package, None, &["tokio", "axum", "burn", "rusqlite"]);
    }
}

#[test]
fn the_check_itself_sees_forbidden_crates() {
    // Guards the test above against passing vacuously: the server does depend on all three.
    let deps = dependencies("actiscope-server", None);
    for expected in ["tokio", "axum", "burn"] {
        assert!(
            deps.iter().any(|d| d == expected),
            "{expected} missing from {deps:?}"
        );
    }
}
