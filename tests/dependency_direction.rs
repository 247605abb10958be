//! The layering of ARCHITECTURE.md, checked with `cargo tree`: its "Dependency rules" table
//! names, for every workspace crate, exactly which workspace crates it depends on (the arrows)
//! and which outside crates it must never pull in, even indirectly. The test reads the table
//! itself, so the document and the check cannot drift apart, and it fails when a workspace
//! crate is missing from the table.

// Tests fail by panicking, helpers included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::process::Command;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// One row of the table.
#[derive(Debug)]
struct Rule {
    package: String,
    target: Option<String>,
    depends_on: BTreeSet<String>,
    never: Vec<String>,
}

fn names(cell: &str) -> Vec<String> {
    cell.split(',')
        .map(|name| name.trim().trim_matches('`').to_owned())
        .filter(|name| !name.is_empty() && name != "—" && name != "-")
        .collect()
}

/// The rows of ARCHITECTURE.md's "Dependency rules" table.
fn rules() -> Vec<Rule> {
    let text = std::fs::read_to_string(format!("{WORKSPACE}/ARCHITECTURE.md")).unwrap();
    let section = text
        .split("## Dependency rules")
        .nth(1)
        .expect("ARCHITECTURE.md has a \"Dependency rules\" section");
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 4, "a rule has four cells: {line}");
            let target = names(cells[1]).into_iter().next();
            Rule {
                package: cells[0].trim_matches('`').to_owned(),
                target,
                depends_on: names(cells[2]).into_iter().collect(),
                never: names(cells[3]),
            }
        })
        .collect()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.current_dir(WORKSPACE);
    command
}

/// Every package `package` depends on through normal edges (itself included), by name;
/// only its direct ones when `direct`.
fn dependencies(package: &str, target: Option<&str>, direct: bool) -> Vec<String> {
    let mut command = cargo();
    command.args([
        "tree",
        "--package",
        package,
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    if direct {
        command.args(["--depth", "1"]);
    }
    if let Some(target) = target {
        command.args(["--target", target]);
    }
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

/// The workspace's members, by name.
fn members() -> BTreeSet<String> {
    let output = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success());
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The direct workspace dependencies of `rule`'s package that break it, and the forbidden
/// crates it pulls in.
fn violations(rule: &Rule, members: &BTreeSet<String>) -> Vec<String> {
    let target = rule.target.as_deref();
    let direct: BTreeSet<String> = dependencies(&rule.package, target, true)
        .into_iter()
        .filter(|dep| members.contains(dep) && *dep != rule.package)
        .collect();
    let mut found = Vec::new();
    if direct != rule.depends_on {
        found.push(format!(
            "{} depends on {direct:?}, the table says {:?}",
            rule.package, rule.depends_on
        ));
    }
    for dep in dependencies(&rule.package, target, false) {
        if rule
            .never
            .iter()
            .any(|f| dep == *f || dep.starts_with(&format!("{f}-")))
        {
            found.push(format!("{} pulls in {dep}", rule.package));
        }
    }
    found
}

#[test]
fn every_crate_follows_the_dependency_rules_of_architecture_md() {
    let rules = rules();
    let members = members();
    let listed: BTreeSet<String> = rules.iter().map(|r| r.package.clone()).collect();
    assert_eq!(
        listed, members,
        "every workspace crate has exactly one rule"
    );
    let broken: Vec<String> = rules
        .iter()
        .flat_map(|rule| violations(rule, &members))
        .collect();
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_check_itself_sees_broken_rules() {
    // Guards the test above against passing vacuously: the server does depend on the other
    // crates and on tokio, axum and burn, so a rule that says otherwise must be reported.
    let members = members();
    let wrong = Rule {
        package: "actiscope-server".to_owned(),
        target: None,
        depends_on: BTreeSet::from(["actiscope-protocol".to_owned()]),
        never: vec!["tokio".to_owned(), "axum".to_owned(), "burn".to_owned()],
    };
    let found = violations(&wrong, &members);
    assert!(found.iter().any(|v| v.contains("depends on")), "{found:?}");
    for name in ["tokio", "axum", "burn"] {
        assert!(
            found
                .iter()
                .any(|v| v.ends_with(&format!("pulls in {name}"))),
            "{name} not seen: {found:?}"
        );
    }
}
