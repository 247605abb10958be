//! `actiscope report` and `GET /api/runs/{id}/figures/…` on a real trained run: every figure
//! in both formats, SVGs that parse, PNGs that decode at the asked size, `report.json`
//! numbers equal to the API's answers, and bad input refused with status 2 and nothing left.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{binary, get_bytes, http, serve};

/// A 4-epoch digits run in `dir/runs.db`.
fn trained(dir: &Path) -> PathBuf {
    let store = dir.join("runs.db");
    let out = Command::new(binary())
        .args(["train", "--epochs", "4", "--probe", "n=300", "--store"])
        .arg(&store)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    store
}

fn report(store: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(binary())
        .args(["report", "--run", "1", "--store"])
        .arg(store)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn check_svg(bytes: &[u8], what: &str) -> usize {
    let text = std::str::from_utf8(bytes).unwrap();
    let doc = roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg", "{what}");
    // Marks: everything drawn but text.
    doc.descendants()
        .filter(|n| {
            matches!(
                n.tag_name().name(),
                "rect" | "polyline" | "polygon" | "circle" | "line"
            )
        })
        .count()
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()))
        .read_info()
        .unwrap();
    (reader.info().width, reader.info().height)
}

/// Numbers compared with a relative tolerance; everything else exactly.
fn same(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                "{at}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                same(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: keys");
            for (k, v) in x {
                same(v, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn a_report_draws_every_figure_and_its_numbers_are_the_apis() {
    let dir = tempfile::tempdir().unwrap();
    let store = trained(dir.path());
    let out_dir = dir.path().join("figures");
    let out = report(&store, &out_dir, &["--epochs", "1,4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    let figures = report["figures"].as_array().unwrap();
    assert_eq!(
        report["skipped"].as_array().unwrap().len(),
        0,
        "{}",
        report["skipped"]
    );
    // 3 whole-run figures (unique patterns, training, RMSE curves, SVCCA over epochs = 4) and
    // 7 per-epoch figures at 2 epochs.
    assert_eq!(figures.len(), 4 + 7 * 2);
    for figure in figures {
        let files = figure["files"].as_array().unwrap();
        assert_eq!(files.len(), 2);
        for file in files {
            let name = file.as_str().unwrap();
            let bytes = std::fs::read(out_dir.join(name)).unwrap();
            if name.ends_with(".svg") {
                assert!(check_svg(&bytes, name) > 1, "{name} draws marks");
            } else {
                assert!(png_size(&bytes).0 >= 600, "{name}");
            }
        }
    }
    let index = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert_eq!(index.matches("<figure").count(), figures.len());
    let names: Vec<&str> = figures
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in [
        "unique-patterns",
        "sankey",
        "flows",
        "nmf-latents",
        "mapper",
        "similarity-epochs",
    ] {
        assert!(names.contains(&name), "{name}");
    }

    // Every source the report names answers the same numbers over HTTP.
    let (mut server, addr) = serve(&store);
    let mut checked = 0;
    for figure in figures {
        for source in figure["sources"].as_array().unwrap() {
            let api = source["api"].as_str().unwrap();
            let (status, body) = http(addr, "GET", api, "");
            assert_eq!(status, 200, "{api}: {body}");
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
            same(&source["data"], &answer, api);
            checked += 1;
        }
    }
    assert!(checked >= figures.len());

    // The same figures over HTTP, at the asked size.
    let (status, head, body) = get_bytes(
        addr,
        "/api/runs/1/figures/sankey.png?epoch=2&width=500&height=300&nodes=8",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/png")
    );
    assert!(head.contains("run1-sankey-epoch2.png"));
    assert_eq!(png_size(&body), (500, 300));
    let (status, head, body) = get_bytes(addr, "/api/runs/1/figures/flows.svg?epoch=3&from=1&to=2");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/svg+xml")
    );
    let (_, _, json) = get_bytes(addr, "/api/runs/1/epochs/3/flows?from=1&to=2");
    let table: actiscope_protocol::apd::FlowTable = serde_json::from_slice(&json).unwrap();
    let cells = table.histogram.instances.len() * table.histogram.strength_lower_edges.len();
    // Background + two grids of cells with their colour bars.
    assert_eq!(
        check_svg(&body, "flows.svg"),
        1 + 2 * (cells + actiscope_report::grids::SCALE_STEPS)
    );
    // Flows at training-set scale: every training instance is in exactly one flow, binned as
    // the paper's figure when asked.
    let (status, body) = http(
        addr,
        "GET",
        "/api/runs/1/epochs/4/flows?from=1&to=2&set=train&binning=paper",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let table: actiscope_protocol::apd::FlowTable = serde_json::from_str(&body).unwrap();
    let members: usize = table.flows.iter().map(|f| f.instances.len()).sum();
    let binned: u32 = table.histogram.instances.iter().flatten().sum();
    assert_eq!(members, 8100, "the built-in digits' training set");
    assert_eq!(binned, 8100);
    assert_eq!(table.histogram.purity_edges, [0.0, 0.2, 0.5, 0.8, 1.0]);
    let strongest = table.flows.iter().map(|f| f.strength).max().unwrap();
    assert_eq!(
        table.histogram.strength_lower_edges,
        actiscope_analysis::flows::log_strength_edges(strongest, 5)
    );
    let (status, body) = http(
        addr,
        "GET",
        "/api/runs/1/epochs/4/flows?from=1&to=2&set=test",
        "",
    );
    assert_eq!(status, 400, "{body}");
    for (path, status) in [
        ("/api/runs/1/figures/pie.svg", 404),
        ("/api/runs/1/figures/sankey.gif", 404),
        ("/api/runs/1/figures/sankey.svg?width=20000", 400),
        ("/api/runs/1/figures/sankey.svg?epoch=99", 404),
        ("/api/runs/9/figures/training.svg", 404),
        ("/api/runs/1/figures/similarity-compare.svg", 400),
    ] {
        let (got, _, body) = get_bytes(addr, path);
        assert_eq!(got, status, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(
            String::from_utf8_lossy(&body).contains("\"error\""),
            "{path}"
        );
    }
    let (status, _, body) = get_bytes(
        addr,
        "/api/runs/1/figures/similarity-compare.svg?compare=1&method=cka",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn bad_input_exits_2_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = trained(dir.path());
    let leftovers = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "runs.db" && !n.starts_with("runs.db-") && n != "keep")
            .collect::<Vec<_>>()
    };
    let out_dir = dir.path().join("out");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--figures", "sankey,pie"], "unknown figure \"pie\""),
        (vec!["--format", "gif"], "unknown format"),
        (vec!["--epochs", "9"], "no epoch 9"),
        (vec!["--figures", "similarity-compare"], "compare=RUN"),
        (vec!["--params", "epoch=2"], "cannot set epoch"),
    ];
    for (extra, message) in cases {
        let out = report(&store, &out_dir, &extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{extra:?}: {:?}",
            leftovers(dir.path())
        );
    }
    // No such run, no such store.
    let out = Command::new(binary())
        .args(["report", "--run", "7", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no run 7"));
    let out = report(&dir.path().join("missing.db"), &out_dir, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !dir.path().join("missing.db").exists(),
        "no store is created"
    );
    // A folder that holds something else is not touched.
    let keep = dir.path().join("keep");
    std::fs::create_dir(&keep).unwrap();
    std::fs::write(keep.join("thesis.tex"), "mine").unwrap();
    let out = report(&store, &keep, &["--figures", "training"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(keep.join("thesis.tex")).unwrap(),
        "mine"
    );
    // An --out under a file cannot be written.
    let file = dir.path().join("keep/thesis.tex/figures");
    let out = report(&store, &file, &["--figures", "training"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    // A previous report is replaced whole.
    let out = report(
        &store,
        &out_dir,
        &["--figures", "training,spectra", "--format", "svg"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = report(
        &store,
        &out_dir,
        &["--figures", "training", "--format", "png"],
    );
    assert!(out.status.success());
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["index.html", "report.json", "training.png"]);
    assert_eq!(leftovers(dir.path()), ["out"]);
}
