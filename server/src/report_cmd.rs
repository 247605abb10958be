//! `actiscope report`: every figure of a stored run written to a folder as SVG and PNG, with
//! an `index.html` that shows them and a `report.json` holding the API answers behind each
//! one. The figures are drawn by [`crate::figures`], the code behind
//! `GET /api/runs/{id}/figures/…`, so a report and the dashboard's downloads agree.
//!
//! Nothing half-written is left: the report is built in a hidden folder beside `--out` and
//! renamed into place at the end; bad input (no such store, run, epoch, figure or format, an
//! `--out` that holds something else) exits with status 2 before anything is written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actiscope_protocol::RunSummary;
use actiscope_report::{FigureName, Format};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::answers::{AnswerCache, AnswerError};
use crate::figures::{self, FigureQuery, Source};
use crate::hub::Hub;
use crate::train_cmd::{bad, open_store};

/// Arguments of `actiscope report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The run store that holds the run: a SQLite file or a PostgreSQL database,
    /// `postgres://user@host:port/database` (password in the URL, `PGPASSWORD` or `~/.pgpass`).
    #[arg(long, default_value = "runs.db")]
    pub store: actiscope_store::StoreLocation,
    /// The run to draw.
    #[arg(long)]
    pub run: i64,
    /// Folder to write the figures, `index.html` and `report.json` into (created; a previous
    /// report there is replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Epochs of the per-epoch figures, comma-separated (default: first, middle and last).
    #[arg(long, value_delimiter = ',')]
    pub epochs: Option<Vec<u32>>,
    /// Formats, comma-separated: svg, png.
    #[arg(long, value_delimiter = ',', default_value = "svg,png")]
    pub format: Vec<String>,
    /// Figures, comma-separated (default: all but similarity-compare); see `GET
    /// /api/runs/{id}/figures/{name}.svg` for the names.
    #[arg(long, value_delimiter = ',')]
    pub figures: Option<Vec<String>>,
    /// Extra figure parameters as a query string, e.g. `layer=1&method=cka&nodes=20`.
    #[arg(long, default_value = "")]
    pub params: String,
}

/// The NMF parameters of the factorization paper's objective: unweighted blocks and a fixed
/// number of rounds, no early stop. A report uses them unless `--params` says otherwise.
pub const PAPER_NMF: &[(&str, &str)] = &[("balance", "false"), ("tol", "0"), ("iters", "200")];

/// Ranks of the report's RMSE curves unless `--params` gives `ranks`.
pub const REPORT_RANKS: &str = "2,5,10,20";

/// The flows as the APD paper's Fig. 3 draws them: the whole training set, its bins. A
/// report uses them unless `--params` says otherwise (runs without stored training-set
/// patterns, such as imports, get the figure skipped with the reason).
pub const PAPER_FLOWS: &[(&str, &str)] = &[("set", "train"), ("binning", "paper")];

/// One figure in `report.json`.
#[derive(Debug, Serialize)]
struct Entry {
    name: &'static str,
    caption: &'static str,
    epoch: Option<u32>,
    files: Vec<String>,
    sources: Vec<Source>,
}

/// A figure that could not be drawn from this run's data.
#[derive(Debug, Serialize)]
struct Skipped {
    name: &'static str,
    epoch: Option<u32>,
    reason: String,
}

#[derive(Debug, Serialize)]
struct ReportJson<'a> {
    run: &'a RunSummary,
    epochs: &'a [u32],
    formats: Vec<&'static str>,
    figures: Vec<Entry>,
    skipped: Vec<Skipped>,
}

/// What the report will draw, checked before anything is written.
struct Plan {
    formats: Vec<Format>,
    names: Vec<FigureName>,
    explicit: bool,
    query: FigureQuery,
}

fn plan(args: &ReportArgs) -> anyhow::Result<Plan> {
    let mut formats = Vec::new();
    for text in &args.format {
        let format = Format::parse(text.trim())
            .ok_or_else(|| bad(format!("unknown format {text:?}: use svg, png or both")))?;
        if !formats.contains(&format) {
            formats.push(format);
        }
    }
    if formats.is_empty() {
        return Err(bad("--format needs svg, png or both"));
    }
    let (names, explicit) = match &args.figures {
        Some(list) => {
            let mut names = Vec::new();
            for text in list {
                let name = FigureName::parse(text.trim()).ok_or_else(|| {
                    bad(format!(
                        "unknown figure {text:?}; the figures are {}",
                        FigureName::list()
                    ))
                })?;
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            (names, true)
        }
        None => (
            FigureName::ALL
                .into_iter()
                .filter(|&n| n != FigureName::SimilarityCompare)
                .collect(),
            false,
        ),
    };
    if names.contains(&FigureName::SimilarityCompare) && !args.params.contains("compare=") {
        return Err(bad(
            "similarity-compare needs the other run: --params compare=RUN",
        ));
    }
    let mut pairs: Vec<(String, String)> = PAPER_NMF
        .iter()
        .chain(PAPER_FLOWS)
        .chain(&[("ranks", REPORT_RANKS)])
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let given = FigureQuery::parse(&args.params).map_err(bad)?;
    for key in ["epoch", "epochs", "width", "height"] {
        if given.get(key).is_some() {
            return Err(bad(format!(
                "--params cannot set {key}; use --epochs (sizes are each figure's own)"
            )));
        }
    }
    pairs.extend(
        serde_urlencoded::from_str::<Vec<(String, String)>>(&args.params)
            .map_err(|e| bad(format!("cannot read --params: {e}")))?,
    );
    let query = FigureQuery::from_pairs(pairs);
    figures::check_query(&query).map_err(|e| bad(format!("--params: {e}")))?;
    Ok(Plan {
        formats,
        names,
        explicit,
        query,
    })
}

/// A hidden folder of this process beside `out`: `what` is `partial` (the report being built)
/// or `old` (the previous report while the new one takes its place).
fn aside_dir(out: &Path, what: &str) -> PathBuf {
    let name = out
        .file_name()
        .map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

/// Whether `dir` holds a report this command wrote: its `report.json` reads as one (a run and
/// a list of figures), not merely a file of that name.
fn is_report(dir: &Path) -> bool {
    std::fs::read(dir.join("report.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|json| {
            json.pointer("/run/run_id")
                .is_some_and(serde_json::Value::is_i64)
                && json.get("figures").is_some_and(serde_json::Value::is_array)
        })
}

/// Checks that `out` is missing, empty, or a previous report.
fn check_out(out: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(out) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) if out.is_file() => Err(bad(format!(
            "--out {} is a file, not a folder ({err})",
            out.display()
        ))),
        Err(err) => Err(bad(format!("cannot read --out {}: {err}", out.display()))),
        Ok(mut entries) => {
            if entries.next().is_none() || is_report(out) {
                Ok(())
            } else {
                Err(bad(format!(
                    "--out {} holds files that are not an actiscope report; choose another folder",
                    out.display()
                )))
            }
        }
    }
}

/// Runs `actiscope report`.
pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let plan = plan(args)?;
    if let Some(path) = args.store.file()
        && !path.is_file()
    {
        return Err(bad(format!("there is no run store at {}", path.display())));
    }
    check_out(&args.out)?;
    let store = open_store(&args.store)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let hub = Hub::new(store);
    let cache = Arc::new(AnswerCache::with_permits(
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ));
    let run_id = args.run;
    let summary = hub
        .run(run_id)
        .context("reading the run list")?
        .ok_or_else(|| bad(format!("there is no run {run_id} in {}", args.store)))?;
    let stored: Vec<u32> = runtime
        .block_on(figures::metrics(&hub, run_id))
        .context("reading the run's epochs")?
        .iter()
        .map(|m| u32::try_from(m.epoch).unwrap_or(u32::MAX))
        .collect();
    if stored.is_empty() {
        return Err(bad(format!("run {run_id} has no stored epoch yet")));
    }
    for key in ["layer", "from", "to"] {
        if let Ok(Some(layer)) = plan.query.number::<u32>(key)
            && layer >= summary.hidden_layers
        {
            return Err(bad(format!(
                "--params: {key}={layer}, but run {run_id} has hidden layers 0 to {}",
                summary.hidden_layers.saturating_sub(1)
            )));
        }
    }
    let epochs = match &args.epochs {
        Some(asked) => {
            for epoch in asked {
                if !stored.contains(epoch) {
                    return Err(bad(format!(
                        "run {run_id} has no epoch {epoch}; it has epochs {}-{}",
                        stored.first().copied().unwrap_or(0),
                        stored.last().copied().unwrap_or(0)
                    )));
                }
            }
            asked.clone()
        }
        None => figures::default_epochs(&stored),
    };
    let staging = aside_dir(&args.out, "partial");
    std::fs::create_dir_all(&staging).map_err(|e| {
        bad(format!(
            "cannot write a report next to {}: {e}",
            args.out.display()
        ))
    })?;
    // Ctrl-C stops after the figure in flight and removes what was written.
    let stop = crate::ctrl_c::stop_flag()?;
    let result = runtime.block_on(write_report(
        &hub, &cache, &summary, &plan, &epochs, &staging, &stop,
    ));
    match result.and_then(|count| {
        replace_dir(&staging, &args.out)?;
        Ok(count)
    }) {
        Ok((written, skipped)) => {
            eprintln!(
                "wrote {written} figures ({} formats) to {}{}; open {}",
                plan.formats.len(),
                args.out.display(),
                if skipped > 0 {
                    format!(", skipped {skipped} (see report.json)")
                } else {
                    String::new()
                },
                args.out.join("index.html").display()
            );
            Ok(())
        }
        Err(err) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(err)
        }
    }
}

/// Moves the finished report into place, replacing a previous one; if the new one cannot take
/// its place, the previous one is put back.
fn replace_dir(staging: &Path, out: &Path) -> anyhow::Result<()> {
    if !out.exists() {
        return std::fs::rename(staging, out)
            .with_context(|| format!("moving the report to {}", out.display()));
    }
    let old = aside_dir(out, "old");
    std::fs::rename(out, &old)
        .with_context(|| format!("moving the previous report {} aside", out.display()))?;
    if let Err(err) = std::fs::rename(staging, out) {
        let _ = std::fs::rename(&old, out);
        return Err(err).with_context(|| format!("moving the report to {}", out.display()));
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Draws until the lens stops answering "pending" (the mapper computes long runs in steps).
async fn draw_fully(
    hub: &Hub,
    cache: &Arc<AnswerCache>,
    run_id: i64,
    name: FigureName,
    query: &FigureQuery,
) -> Result<figures::Drawn, AnswerError> {
    loop {
        match figures::draw(hub, cache, run_id, name, query).await {
            Err(AnswerError::Pending { .. }) => continue,
            other => return other,
        }
    }
}

async fn write_report(
    hub: &Hub,
    cache: &Arc<AnswerCache>,
    summary: &RunSummary,
    plan: &Plan,
    epochs: &[u32],
    dir: &Path,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<(usize, usize)> {
    let jobs: Vec<(FigureName, Option<u32>)> = plan
        .names
        .iter()
        .flat_map(|&name| {
            if name.per_epoch() {
                epochs.iter().map(|&e| (name, Some(e))).collect::<Vec<_>>()
            } else {
                vec![(name, None)]
            }
        })
        .collect();
    let progress = ProgressBar::new(jobs.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    progress.set_prefix(format!("run {}", summary.run_id));
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for (name, epoch) in jobs {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            progress.abandon();
            anyhow::bail!("stopped by Ctrl-C; nothing was written");
        }
        progress.set_message(match epoch {
            Some(e) => format!("{} epoch {e}", name.as_str()),
            None => name.as_str().to_owned(),
        });
        let mut query = plan.query.clone();
        if let Some(e) = epoch {
            query.push("epoch", &e.to_string());
        } else if name == FigureName::NmfRmse {
            query.push(
                "epochs",
                &epochs
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        let drawn = match draw_fully(hub, cache, summary.run_id, name, &query).await {
            Ok(drawn) => drawn,
            Err(AnswerError::BadRequest(reason) | AnswerError::NotFound(reason))
                if !plan.explicit =>
            {
                skipped.push(Skipped {
                    name: name.as_str(),
                    epoch,
                    reason,
                });
                progress.inc(1);
                continue;
            }
            Err(err @ (AnswerError::BadRequest(_) | AnswerError::NotFound(_))) => {
                progress.abandon();
                return Err(bad(format!("{}: {err}", name.as_str())));
            }
            Err(err) => {
                progress.abandon();
                return Err(anyhow::Error::new(err).context(format!("drawing {}", name.as_str())));
            }
        };
        let stem = match epoch {
            Some(e) => format!("{}-epoch{e}", name.as_str()),
            None => name.as_str().to_owned(),
        };
        let mut files = Vec::new();
        for &format in &plan.formats {
            let file = format!("{stem}.{}", format.extension());
            let bytes = figures::render(cache, Arc::clone(&drawn.figure), drawn.size, format)
                .await
                .with_context(|| format!("rendering {file}"))?;
            std::fs::write(dir.join(&file), bytes)
                .map_err(|e| bad(format!("cannot write {file}: {e}")))?;
            files.push(file);
        }
        entries.push(Entry {
            name: name.as_str(),
            caption: name.caption(),
            epoch,
            files,
            sources: drawn.sources,
        });
        progress.inc(1);
    }
    progress.finish_and_clear();
    let written = entries.len();
    let index = index_html(summary, &entries, &skipped);
    let json = ReportJson {
        run: summary,
        epochs,
        formats: plan.formats.iter().map(|f| f.extension()).collect(),
        figures: entries,
        skipped,
    };
    let skipped_count = json.skipped.len();
    std::fs::write(dir.join("index.html"), index)
        .map_err(|e| bad(format!("cannot write index.html: {e}")))?;
    let text = serde_json::to_vec(&json).context("encoding report.json")?;
    std::fs::write(dir.join("report.json"), text)
        .map_err(|e| bad(format!("cannot write report.json: {e}")))?;
    Ok((written, skipped_count))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn index_html(summary: &RunSummary, entries: &[Entry], skipped: &[Skipped]) -> String {
    let mut html = String::new();
    let title = format!(
        "actiscope report: run {} ({})",
        summary.run_id, summary.name
    );
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:2rem;color:#222}}figure{{margin:0 0 2rem}}\
         img{{max-width:100%;border:1px solid #ddd}}figcaption{{color:#555;margin-top:.3rem}}\
         </style></head><body><h1>{t}</h1><p>{} on {}, {}; {} of {} epochs stored, status {}.</p>",
        escape(&summary.model),
        escape(&summary.dataset),
        escape(&summary.device),
        summary.epochs_stored,
        summary.epochs_planned,
        escape(&summary.status),
        t = escape(&title),
    );
    for entry in entries {
        let shown = entry
            .files
            .iter()
            .find(|f| f.ends_with(".svg"))
            .or_else(|| entry.files.first());
        let links: Vec<String> = entry
            .files
            .iter()
            .map(|f| format!("<a href=\"{0}\">{0}</a>", escape(f)))
            .collect();
        let epoch = entry
            .epoch
            .map(|e| format!(", epoch {e}"))
            .unwrap_or_default();
        let _ = write!(
            html,
            "<figure id=\"{id}\"><img src=\"{src}\" alt=\"{cap}\"><figcaption>{cap}{epoch} ({links})</figcaption></figure>",
            id = escape(&entry.files.first().cloned().unwrap_or_default()),
            src = escape(shown.map_or("", String::as_str)),
            cap = escape(entry.caption),
            links = links.join(", "),
        );
    }
    if !skipped.is_empty() {
        html.push_str("<h2>Not drawn</h2><ul>");
        for s in skipped {
            let epoch = s.epoch.map(|e| format!(" (epoch {e})")).unwrap_or_default();
            let _ = write!(html, "<li>{}{epoch}: {}</li>", s.name, escape(&s.reason));
        }
        html.push_str("</ul>");
    }
    html.push_str("</body></html>\n");
    html
}
