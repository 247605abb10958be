//! `cargo xtask paper apd` and `cargo xtask paper nmf`: train what a seed paper describes on
//! the built-in digits (or `--dataset fashion-mnist`, where Debian's package is installed) with
//! the release `actiscope`, draw its figures with `actiscope report`,
//! check each of its measurable claims against the numbers in the report's `report.json` (the
//! API's answers), and write the figures and a markdown table (claim, what the paper says,
//! what was measured, whether it holds) into `docs/papers/`.
//!
//! Nothing is tuned to make a claim hold: the settings are the paper's where it states them
//! and actiscope's defaults where it does not, and both are written into the markdown.

// `Value[...]` gives `Null` for a missing key instead of panicking, and a developer command may
// stop on a malformed report of its own making; request paths never index.
#![allow(clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bench::{build_release_cli, release_dir};
use crate::shell::repo_root;

/// Options of `cargo xtask paper`.
#[derive(Debug, clap::Args)]
pub struct PaperArgs {
    /// `apd` (Activation Pattern Diagrams) or `nmf` (the factorization lens).
    which: String,
    /// Epochs of the APD run (the paper trains 500).
    #[arg(long, default_value_t = 500)]
    epochs: usize,
    /// Folder for the markdown and the figures.
    #[arg(long, default_value = "docs/papers")]
    out: PathBuf,
    /// `digits` (built in) or `fashion-mnist` (Debian's `dataset-fashion-mnist`, where
    /// installed); another dataset writes its files with its name appended
    /// (`apd-fashion-mnist.md`).
    #[arg(long, default_value = "digits")]
    dataset: String,
}

/// The data a paper is reproduced on, as the markdown describes it.
struct Data {
    /// The `--dataset` name.
    name: String,
    /// Appended to file and folder names: empty for the built-in digits.
    suffix: String,
    /// What it is, for the setup paragraph.
    description: &'static str,
}

impl Data {
    fn of(name: &str) -> anyhow::Result<Self> {
        let description = match name {
            "digits" => {
                "actiscope's built-in digits (8,100 training and 900 validation images of MNIST)"
            }
            "fashion-mnist" => {
                "Fashion-MNIST from Debian's `dataset-fashion-mnist` (54,000 training and 6,000 validation images)"
            }
            other => bail!("the papers are reproduced on digits or fashion-mnist, not {other:?}"),
        };
        Ok(Self {
            name: name.to_owned(),
            suffix: if name == "digits" {
                String::new()
            } else {
                format!("-{name}")
            },
            description,
        })
    }
}

/// One row of a claims table.
struct Claim {
    claim: String,
    paper: String,
    measured: String,
    holds: bool,
}

impl Claim {
    fn new(claim: &str, paper: &str, measured: String, holds: bool) -> Self {
        Self {
            claim: claim.to_owned(),
            paper: paper.to_owned(),
            measured,
            holds,
        }
    }
}

fn table(claims: &[Claim]) -> String {
    let mut md =
        String::from("| claim | the paper | measured here | holds |\n| --- | --- | --- | --- |\n");
    for c in claims {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.claim,
            c.paper,
            c.measured,
            if c.holds { "yes" } else { "no" }
        );
    }
    md
}

/// Runs the chosen paper.
pub fn paper(args: &PaperArgs) -> anyhow::Result<()> {
    build_release_cli()?;
    let binary = release_dir().join("actiscope");
    let out = repo_root().join(&args.out);
    std::fs::create_dir_all(&out)?;
    let work = repo_root().join("target/paper");
    std::fs::create_dir_all(&work)?;
    match args.which.as_str() {
        "apd" => apd(&binary, &work, &out, args.epochs, &Data::of(&args.dataset)?),
        "nmf" => nmf(&binary, &work, &out, &Data::of(&args.dataset)?),
        other => bail!("unknown paper {other:?}: use apd or nmf"),
    }
}

/// A fresh store file under `work`.
fn fresh_store(work: &Path, name: &str) -> PathBuf {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(work.join(format!("{name}{suffix}")));
    }
    work.join(name)
}

/// `actiscope train --json` with `flags`; returns its summary (`run_id`, `epochs`).
fn train(binary: &Path, store: &Path, flags: &[&str]) -> anyhow::Result<Value> {
    println!("actiscope train {}", flags.join(" "));
    let output = Command::new(binary)
        .arg("train")
        .args(flags)
        .arg("--json")
        .arg("--store")
        .arg(store)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting actiscope train")?;
    if !output.status.success() {
        bail!(
            "actiscope train {} failed: {}",
            flags.join(" "),
            output.status
        );
    }
    serde_json::from_slice(&output.stdout).context("reading actiscope train --json")
}

/// `actiscope report` of `run_id` into `out`; returns its `report.json`.
fn report(
    binary: &Path,
    store: &Path,
    run_id: i64,
    out: &Path,
    extra: &[&str],
) -> anyhow::Result<Value> {
    let status = Command::new(binary)
        .args(["report", "--run", &run_id.to_string(), "--store"])
        .arg(store)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("RUST_LOG", "warn")
        .status()
        .context("starting actiscope report")?;
    if !status.success() {
        bail!("actiscope report of run {run_id} failed: {status}");
    }
    let text = std::fs::read(out.join("report.json"))?;
    // The docs keep the figures and the tables; the API answers behind them are megabytes
    // and any rerun prints them again.
    for bulky in ["report.json", "index.html"] {
        let _ = std::fs::remove_file(out.join(bulky));
    }
    Ok(serde_json::from_slice(&text)?)
}

/// The data of the first source of figure `name` (at `epoch`, for per-epoch figures).
fn source<'a>(report: &'a Value, name: &str, epoch: Option<u64>) -> anyhow::Result<&'a Value> {
    report["figures"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == name && f["epoch"].as_u64() == epoch)
        .and_then(|f| f["sources"].get(0))
        .map(|s| &s["data"])
        .with_context(|| format!("the report has no {name} figure for epoch {epoch:?}"))
}

/// Spearman's rank correlation of `x` and `y` (no ties expected beyond a few; ties share
/// their mean rank).
fn spearman(x: &[f64], y: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut ranks = vec![0.0; v.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
                j += 1;
            }
            for k in i..=j {
                ranks[order[k]] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        ranks
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

fn date() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The APD paper: its MLP, SGD at lr 0.001, the training set's unique patterns (Fig. 1), the
/// Sankey of 500 instances of label 1 (Fig. 2) and the training set's flows (Fig. 3).
fn apd(binary: &Path, work: &Path, out: &Path, epochs: usize, data: &Data) -> anyhow::Result<()> {
    let store = fresh_store(work, &format!("apd{}.db", data.suffix));
    let epochs_text = epochs.to_string();
    let flags = [
        "--dataset",
        &data.name,
        "--preset",
        "apd-paper",
        "--epochs",
        &epochs_text,
        "--probe",
        "label=1,n=500,from=train",
    ];
    let summary = train(binary, &store, &flags)?;
    let run_id = summary["run_id"].as_i64().context("run id")?;
    let shown: Vec<usize> = [10, 50, 150, 300, epochs]
        .into_iter()
        .filter(|&e| e <= epochs)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let shown_text = shown
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let folder = format!("apd{}", data.suffix);
    let figures = out.join(&folder);
    // This command owns the folder: its figures are replaced whole.
    let _ = std::fs::remove_dir_all(&figures);
    let report = report(
        binary,
        &store,
        run_id,
        &figures,
        &[
            "--figures",
            "unique-patterns,training,sankey,flows",
            "--format",
            "png",
            "--epochs",
            &shown_text,
            "--params",
            "nodes=40",
        ],
    )?;
    let metrics = source(&report, "unique-patterns", None)?
        .as_array()
        .context("metrics")?
        .clone();
    let counts: Vec<Vec<f64>> = metrics
        .iter()
        .map(|m| {
            m["unique_patterns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect()
        })
        .collect();
    let layers = counts.first().map_or(0, Vec::len);
    // The training set's size: every training instance is in one flow.
    let n_train: f64 = source(&report, "flows", shown.last().map(|&e| e as u64))?["flows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["strength"].as_f64())
        .sum();
    let mut claims = Vec::new();
    // Fig. 1: every layer's count grows.
    let epoch_axis: Vec<f64> = (1..=counts.len()).map(|e| e as f64).collect();
    let mut grows = Vec::new();
    let mut all_grow = true;
    for l in 0..layers {
        let series: Vec<f64> = counts.iter().map(|c| c[l]).collect();
        let rho = spearman(&epoch_axis, &series);
        let (first, last) = (series[0], series[series.len() - 1]);
        all_grow &= last > first && rho > 0.0;
        // Where the count bottoms out, and what it does after (reported, not judged).
        let (low_at, low) = series
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or((1, 0.0), |(i, &v)| (i + 1, v));
        let after = spearman(&epoch_axis[low_at - 1..], &series[low_at - 1..]);
        grows.push(format!(
            "layer {}: {first:.0} -> {last:.0} (Spearman {rho:.2}; lowest {low:.0} at epoch \
             {low_at}, Spearman {after:.2} from there)",
            l + 1
        ));
    }
    claims.push(Claim::new(
        "Every layer's unique patterns over the training set grow during training (Fig. 1)",
        "\"all the layers steadily increase the number of activation patterns\"",
        grows.join("; "),
        all_grow,
    ));
    let ordered = counts
        .iter()
        .filter(|c| c.windows(2).all(|w| w[0] > w[1]))
        .count();
    claims.push(Claim::new(
        "Deeper layers have fewer unique patterns at every epoch",
        "the count \"decreases with the layer's depth\"",
        format!(
            "layer 1 > layer 2 > layer 3 at {ordered} of {} epochs",
            counts.len()
        ),
        ordered == counts.len(),
    ));
    let last = counts.last().cloned().unwrap_or_default();
    let ratio = last[0] / last[1].max(1.0);
    claims.push(Claim::new(
        "The first layer has about 4 times the patterns of the second (last epoch; judged as 3 to 5 times)",
        "\"the first layer has 4 times the number of activation patterns of the second layer\"",
        format!("{ratio:.2} times ({:.0} / {:.0})", last[0], last[1]),
        (3.0..=5.0).contains(&ratio),
    ));
    let most = counts.iter().flatten().copied().fold(0.0, f64::max);
    claims.push(Claim::new(
        "Patterns are shared: every layer has fewer unique patterns than training instances",
        "every count is \"less than the 54 000 training instances\"",
        format!("at most {most:.0} of {n_train:.0}"),
        most < n_train,
    ));
    let third_cap = counts.iter().map(|c| c[layers - 1]).fold(0.0, f64::max) / n_train;
    claims.push(Claim::new(
        "The last layer stays far below one pattern per instance (paper: under 4,000 of 54,000, 7.4%)",
        "the third layer \"doesn't reach more than 4 000\"",
        format!("at most {:.1}% of the training set", 100.0 * third_cap),
        third_cap <= 0.074,
    ));
    // Fig. 2: 500 instances of label 1 share patterns more in deeper layers.
    let mut fig2 = Vec::new();
    let mut fig2_holds = true;
    for &e in &shown {
        let snapshot = source(&report, "sankey", Some(e as u64))?;
        let nodes: Vec<usize> = snapshot["apd"]["levels"]
            .as_array()
            .context("levels")?
            .iter()
            .take(layers)
            .map(|l| l.as_array().map_or(0, Vec::len))
            .collect();
        fig2_holds &= nodes.windows(2).all(|w| w[0] >= w[1]);
        fig2.push(format!(
            "epoch {e}: {}",
            nodes
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    claims.push(Claim::new(
        "On 500 instances of label 1, deeper layers use fewer distinct patterns (Fig. 2)",
        "\"activation patterns are shared more in deeper layers\"",
        format!("distinct patterns per layer: {}", fig2.join("; ")),
        fig2_holds,
    ));
    // Fig. 3 over the training set: errors sit in weak or impure flows; strong pure flows
    // are almost always right.
    let mut weak_share = Vec::new();
    let mut strong_rate = Vec::new();
    let (mut fig3_weak, mut fig3_strong) = (true, true);
    for &e in shown.iter().filter(|&&e| e >= 150.min(epochs)) {
        let table = source(&report, "flows", Some(e as u64))?;
        let flows = table["flows"].as_array().context("flows")?;
        let (mut errors, mut weak_errors, mut strong, mut strong_errors) = (0.0, 0.0, 0.0, 0.0);
        for f in flows {
            let (s, p, err) = (
                f["strength"].as_f64().unwrap_or(0.0),
                f["purity"].as_f64().unwrap_or(0.0),
                f["errors"].as_f64().unwrap_or(0.0),
            );
            errors += err;
            if s < 20.0 || p < 0.8 {
                weak_errors += err;
            }
            if s >= 54.0 && p >= 0.8 {
                strong += s;
                strong_errors += err;
            }
        }
        let share = weak_errors / errors.max(1.0);
        let rate = strong_errors / strong.max(1.0);
        fig3_weak &= share > 0.5;
        fig3_strong &= strong > 0.0 && rate < 0.01;
        weak_share.push(format!("epoch {e}: {:.0}% of {errors:.0}", 100.0 * share));
        strong_rate.push(format!("epoch {e}: {:.2}% of {strong:.0}", 100.0 * rate));
    }
    claims.push(Claim::new(
        "Most misclassified training instances are in weak (strength < 20) or impure (purity < 0.8) flows (Fig. 3)",
        "errors \"usually belong to small clusters or clusters with low purity\"",
        weak_share.join("; "),
        fig3_weak,
    ));
    claims.push(Claim::new(
        "Instances in strong (strength >= 54), pure (purity >= 0.8) flows are almost always right (judged: under 1% errors)",
        "they \"are almost always correct from epoch 150\"",
        strong_rate.join("; "),
        fig3_strong,
    ));
    let best = metrics
        .iter()
        .min_by(|a, b| {
            a["val_loss"]
                .as_f64()
                .unwrap_or(f64::MAX)
                .total_cmp(&b["val_loss"].as_f64().unwrap_or(f64::MAX))
        })
        .and_then(|m| m["epoch"].as_u64())
        .unwrap_or(0);
    let final_acc = metrics
        .last()
        .and_then(|m| m["val_accuracy"].as_f64())
        .unwrap_or(0.0);
    let mut md = String::new();
    let _ = write!(
        md,
        "# The APD paper, reproduced\n\n\
         Craighero et al., *Activation Pattern Diagrams* (`../shared/papers/apd-activation-pattern-diagrams.txt`).\n\
         Written by `cargo xtask paper apd` on {date}; rerun it to refresh every number and figure here.\n\n\
         **Setup.** The paper's network: 784-40-40-40-10 MLP, ReLU, SGD at a fixed learning rate of 0.001, \
         batch 64 (the paper does not state its batch), {epochs} epochs (the paper: 500), on \
         {data} (the paper: 54,000 and 6,000 of MNIST). Unique patterns (Fig. 1) and flows (Fig. 3, flows over hidden layers 2 and 3, binned as \
         the paper's figure) are over the whole training set; the Sankey (Fig. 2) is over 500 training \
         instances of label 1. Lowest validation loss at epoch {best} (the paper: 309); final validation \
         accuracy {acc:.1}%.\n\n\
         The thresholds marked *judged* are this reproduction's reading of words the paper gives no \
         number for. Counts on {n_train:.0} training instances compare with the paper's on 54,000 \
         through ratios and orderings, not as absolute numbers.\n\n{table}\n\
         ## Figures\n\n\
         ![Fig. 1]({folder}/unique-patterns.png)\n\n![Loss]({folder}/training.png)\n\n",
        data = data.description,
        date = date(),
        acc = 100.0 * final_acc,
        table = table(&claims),
    );
    for &e in &shown {
        let _ = write!(
            md,
            "Epoch {e}: ![Sankey, epoch {e}]({folder}/sankey-epoch{e}.png) ![Flows, epoch {e}]({folder}/flows-epoch{e}.png)\n\n"
        );
    }
    let page = out.join(format!("{folder}.md"));
    std::fs::write(&page, &md)?;
    println!("{}", table(&claims));
    println!("wrote {} and {}", page.display(), figures.display());
    Ok(())
}

/// One network of the factorization paper's case studies.
struct Case {
    name: &'static str,
    label: &'static str,
    flags: &'static [&'static str],
}

const CASES: [Case; 8] = [
    Case {
        name: "fraction-25",
        label: "I: 25% of the training set",
        flags: &["--fraction", "0.25"],
    },
    Case {
        name: "fraction-50",
        label: "I: 50%",
        flags: &["--fraction", "0.5"],
    },
    Case {
        name: "fraction-75",
        label: "I: 75%",
        flags: &["--fraction", "0.75"],
    },
    Case {
        name: "all",
        label: "I and II: all of it, every class",
        flags: &[],
    },
    Case {
        name: "classes-0",
        label: "II: class 0 only",
        flags: &["--classes", "0"],
    },
    Case {
        name: "classes-0-4",
        label: "II: classes 0-4",
        flags: &["--classes", "0,1,2,3,4"],
    },
    Case {
        name: "classes-5-9",
        label: "II: classes 5-9",
        flags: &["--classes", "5,6,7,8,9"],
    },
    Case {
        name: "by-class",
        label: "III: class by class, 9 first",
        flags: &["--order", "by-class", "--classes", "9,0,1,2,3,4,5,6,7,8"],
    },
];

/// Ranks of the paper's RMSE curves.
const NMF_RANKS: [u64; 5] = [10, 20, 30, 40, 50];

/// What one case measured.
struct Measured {
    accuracy: f64,
    rmse: Vec<f64>,
    top_prediction_share: (u64, f64),
}

/// The factorization paper: its CNN trained one epoch per case study, the coupled NMF of the
/// test images and both conv layers' activations at ranks 10-50 (unweighted blocks, 200
/// rounds, no early stop), spectra and latent images.
fn nmf(binary: &Path, work: &Path, out: &Path, data: &Data) -> anyhow::Result<()> {
    let store = fresh_store(work, &format!("nmf{}.db", data.suffix));
    let folder = format!("nmf{}", data.suffix);
    let figures = out.join(&folder);
    let _ = std::fs::remove_dir_all(&figures);
    std::fs::create_dir_all(&figures)?;
    let ranks_text = NMF_RANKS.map(|r| r.to_string()).join(",");
    let mut measured = Vec::new();
    for case in &CASES {
        let mut flags = vec![
            "--dataset",
            &data.name,
            "--model",
            "cnn",
            "--epochs",
            "1",
            "--probe",
            "n=1000",
        ];
        flags.extend_from_slice(case.flags);
        let summary = train(binary, &store, &flags)?;
        let run_id = summary["run_id"].as_i64().context("run id")?;
        let accuracy = summary["epochs"][0]["val_accuracy"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let params = format!("ranks={ranks_text}&rank=10");
        let report = report(
            binary,
            &store,
            run_id,
            &figures.join(case.name),
            &[
                "--figures",
                "nmf-rmse,nmf-latents,nmf-factors,spectra,sankey",
                "--format",
                "png",
                "--epochs",
                "1",
                "--params",
                &params,
            ],
        )?;
        let curve = source(&report, "nmf-rmse", None)?;
        let rmse: Vec<f64> = curve["points"]
            .as_array()
            .context("points")?
            .iter()
            .filter_map(|p| p[1].as_f64())
            .collect();
        let predicted = source(&report, "sankey", Some(1))?;
        let labels = predicted["apd"]["levels"]
            .as_array()
            .and_then(|l| l.last())
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total: f64 = labels.iter().filter_map(|n| n["instances"].as_f64()).sum();
        let top = labels
            .iter()
            .max_by(|a, b| {
                a["instances"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b["instances"].as_f64().unwrap_or(0.0))
            })
            .map(|n| {
                (
                    n["kind"]["Label"]["label"].as_u64().unwrap_or(0),
                    n["instances"].as_f64().unwrap_or(0.0) / total.max(1.0),
                )
            })
            .unwrap_or((0, 0.0));
        measured.push(Measured {
            accuracy,
            rmse,
            top_prediction_share: top,
        });
    }
    let by = |name: &str| -> &Measured {
        let i = CASES.iter().position(|c| c.name == name).unwrap_or(0);
        &measured[i]
    };
    let fmt_rmse = |m: &Measured| {
        m.rmse
            .iter()
            .map(|r| format!("{r:.4}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let mut claims = Vec::new();
    let fractions = ["fraction-25", "fraction-50", "fraction-75", "all"];
    let accs: Vec<f64> = fractions.iter().map(|n| by(n).accuracy).collect();
    claims.push(Claim::new(
        "Case I: accuracy rises with the share of the training set",
        "83 / 89 / 93 / 95% for 25 / 50 / 75 / 100%",
        accs.iter()
            .map(|a| format!("{:.1}%", 100.0 * a))
            .collect::<Vec<_>>()
            .join(" / "),
        accs.windows(2).all(|w| w[0] <= w[1]),
    ));
    let small_lower = (0..NMF_RANKS.len()).all(|k| by("fraction-25").rmse[k] < by("all").rmse[k]);
    claims.push(Claim::new(
        "Case I: the network trained on 25% has a lower NMF RMSE than the full one at every rank 10-50",
        "\"lower RMSE for smaller datasets over all latent dimension values\"",
        format!("25%: {}; 100%: {}", fmt_rmse(by("fraction-25")), fmt_rmse(by("all"))),
        small_lower,
    ));
    let ordered_ranks = (0..NMF_RANKS.len())
        .filter(|&k| {
            fractions
                .windows(2)
                .all(|w| by(w[0]).rmse[k] < by(w[1]).rmse[k])
        })
        .count();
    claims.push(Claim::new(
        "Case I: RMSE ordered 25% < 50% < 75% < 100% at each rank",
        "the curves are ordered by training size",
        format!("at {ordered_ranks} of {} ranks", NMF_RANKS.len()),
        ordered_ranks == NMF_RANKS.len(),
    ));
    let (zero, low, high) = (by("classes-0"), by("classes-0-4"), by("classes-5-9"));
    claims.push(Claim::new(
        "Case II: one class gives chance accuracy, half the classes about half (judged: under 20%, and 35-60%)",
        "9% / 50% / 47% for {0} / {0-4} / {5-9}",
        format!("{:.1}% / {:.1}% / {:.1}%", 100.0 * zero.accuracy, 100.0 * low.accuracy, 100.0 * high.accuracy),
        zero.accuracy < 0.2 && [low.accuracy, high.accuracy].iter().all(|a| (0.35..=0.6).contains(a)),
    ));
    let subsets_lower = ["classes-0", "classes-0-4", "classes-5-9"]
        .iter()
        .all(|n| (0..NMF_RANKS.len()).all(|k| by(n).rmse[k] < by("all").rmse[k]));
    claims.push(Claim::new(
        "Case II: every class-subset network has a lower RMSE than the all-class one at every rank",
        "class-subset training gives \"lower RMSE\"",
        format!(
            "{{0}}: {}; {{0-4}}: {}; {{5-9}}: {}; all: {}",
            fmt_rmse(zero),
            fmt_rmse(low),
            fmt_rmse(high),
            fmt_rmse(by("all"))
        ),
        subsets_lower,
    ));
    let third = by("by-class");
    claims.push(Claim::new(
        "Case III: class-by-class training is near chance and predicts mostly the class it saw first (judged: under 20%, over half the probe predicted 9)",
        "\"9%\", \"only good at recognizing the first class\" (9)",
        format!(
            "{:.1}%; {:.0}% of the probe predicted {}",
            100.0 * third.accuracy,
            100.0 * third.top_prediction_share.1,
            third.top_prediction_share.0
        ),
        third.accuracy < 0.2 && third.top_prediction_share.0 == 9 && third.top_prediction_share.1 > 0.5,
    ));
    let falling = measured
        .iter()
        .filter(|m| m.rmse.windows(2).all(|w| w[1] < w[0]))
        .count();
    claims.push(Claim::new(
        "RMSE falls as the rank grows, for every network",
        "every RMSE curve falls with rank",
        format!("{falling} of {} networks", measured.len()),
        falling == measured.len(),
    ));
    let accuracy: Vec<f64> = measured.iter().map(|m| m.accuracy).collect();
    let at_20: Vec<f64> = measured
        .iter()
        .map(|m| m.rmse.get(1).copied().unwrap_or(f64::NAN))
        .collect();
    let rho = spearman(&accuracy, &at_20);
    claims.push(Claim::new(
        "The poorer the training, the lower the rank: accuracy and RMSE at rank 20 rise together across the 8 networks",
        "\"the poorer the training, the lower the rank\"",
        format!("Spearman correlation {rho:.2}"),
        rho > 0.0,
    ));
    let mut md = String::new();
    let _ = write!(
        md,
        "# The factorization paper, reproduced\n\n\
         Saini and Papalexakis, *A Factorization Lens* (`../shared/papers/nmf-factorization-lens.txt`).\n\
         Written by `cargo xtask paper nmf` on {date}; rerun it to refresh every number and figure here.\n\n\
         **Setup.** The paper's CNN (conv 1->10 5x5, pool, ReLU, conv 10->20 5x5, pool, ReLU, dense \
         softmax), one epoch per network as in the paper, Adam at lr 0.001 and batch 64 (the paper \
         states neither), on {data} (the paper: 60,000 of MNIST). Accuracy is over the validation \
         images (every class). The coupled NMF \
         factorizes 1,000 test images' pixels and both conv layers' activations together, with the \
         paper's objective: unweighted blocks, 200 multiplicative-update rounds, no early stop, \
         uniform random start (seed 0); RMSE is over all blocks, in their own units. Case III orders \
         the training set class by class, 9 first, unshuffled.\n\n{table}\n## Networks\n\n\
         | case | validation accuracy | RMSE at rank 10 / 20 / 30 / 40 / 50 | figures |\n| --- | --- | --- | --- |\n",
        data = data.description,
        date = date(),
        table = table(&claims),
    );
    for (case, m) in CASES.iter().zip(&measured) {
        let _ = writeln!(
            md,
            "| {} | {:.1}% | {} | [RMSE]({folder}/{n}/nmf-rmse.png), [latent images]({folder}/{n}/nmf-latents-epoch1.png), [neurons x factors]({folder}/{n}/nmf-factors-epoch1.png), [spectra]({folder}/{n}/spectra-epoch1.png) |",
            case.label,
            100.0 * m.accuracy,
            fmt_rmse(m),
            n = case.name,
        );
    }
    let _ = write!(
        md,
        "\n![Latent images, all data]({folder}/all/nmf-latents-epoch1.png)\n\n\
         ![Latent images, case III]({folder}/by-class/nmf-latents-epoch1.png)\n"
    );
    let page = out.join(format!("{folder}.md"));
    std::fs::write(&page, &md)?;
    println!("{}", table(&claims));
    println!("wrote {} and {}", page.display(), figures.display());
    Ok(())
}
