//! The papers' figures of a stored run, for `GET /api/runs/{id}/figures/{name}.{svg|png}` and
//! `actiscope report` alike: each figure's data come from the same lens functions the JSON API
//! answers from (so a figure's numbers are the API's), are decoded into protocol types and
//! handed to `actiscope-report` to draw.
//!
//! A figure's parameters are the query keys of the lens it draws (`layer`, `lens`, … for the
//! mapper; `rank`, `layers`, … for the NMF; `method`, `reference` for similarity) plus
//! `epoch`, `width`, `height`, `nodes` (Sankey nodes per layer), `from`/`to`/`set`/`binning`
//! (flows),
//! `epochs` (the epochs of the RMSE curves), `colour` (the mapper's node colour: `purity`,
//! `errors`, `norm`, `class`) and `compare`/`epoch_b` (a second run).

use std::sync::Arc;

use actiscope_protocol::apd::FlowTable;
use actiscope_protocol::mapper::MapperGraph;
use actiscope_protocol::nmf::{NmfResult, RmseCurve, Spectra};
use actiscope_protocol::similarity::SimilarityGrid;
use actiscope_protocol::{EpochMetrics, EpochSnapshot};
use actiscope_report::grids::{factor_loadings, flow_histogram, similarity};
use actiscope_report::latents::LatentImages;
use actiscope_report::lines;
use actiscope_report::mapper::{MapperFigure, NodeColour};
use actiscope_report::sankey::SankeyFigure;
use actiscope_report::{Figure, FigureName, Panel, ReportError};
use bytes::Bytes;
use serde::Serialize;

use crate::answers::{AnswerCache, AnswerError};
use crate::hub::Hub;
use crate::lenses;
use crate::query_params::{MapperQuery, NmfQuery, SimilarityQuery, numbers};

/// Sankey nodes per hidden layer when `nodes` is not given (the dashboard's default).
pub const DEFAULT_SANKEY_NODES: usize = 40;

/// The keys each lens reads, passed through to its API path in a figure's sources.
const MAPPER_KEYS: &[&str] = &[
    "layer",
    "lens",
    "k",
    "intervals",
    "overlap",
    "clusterer",
    "eps",
    "min_samples",
    "bins",
    "min_edge",
];
const NMF_KEYS: &[&str] = &[
    "rank", "layers", "inputs", "balance", "iters", "tol", "seed",
];
const SIMILARITY_KEYS: &[&str] = &["method"];

/// A figure's query: every key as given, in order.
#[derive(Debug, Clone, Default)]
pub struct FigureQuery {
    pairs: Vec<(String, String)>,
}

impl FigureQuery {
    /// The query from `key=value&…` (percent-decoded).
    pub fn parse(query: &str) -> Result<Self, String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(|pairs| Self { pairs })
            .map_err(|e| format!("cannot read the query string: {e}"))
    }

    /// The query from pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// Adds `key=value` (a later value wins over an earlier one).
    pub fn push(&mut self, key: &str, value: &str) {
        self.pairs.push((key.to_owned(), value.to_owned()));
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` as a number, or why not.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        self.get(key)
            .map(|text| {
                text.parse::<T>()
                    .map_err(|_| format!("{key} must be a whole number, not {text:?}"))
            })
            .transpose()
    }

    /// The pairs whose key is in `keys`, as a query string (empty when none).
    fn subset(&self, keys: &[&str]) -> String {
        // The last value of each key wins, in the order the keys came.
        let pairs: Vec<&(String, String)> = self
            .pairs
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| {
                keys.contains(&k.as_str())
                    && !self.pairs.iter().skip(i + 1).any(|(later, _)| later == k)
            })
            .map(|(_, pair)| pair)
            .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// Deserializes the keys in `keys` into a lens's query type.
    fn lens_query<T: serde::de::DeserializeOwned>(&self, keys: &[&str]) -> Result<T, String> {
        serde_urlencoded::from_str(&self.subset(keys)).map_err(|e| format!("bad query: {e}"))
    }
}

/// One API answer a figure was drawn from: where to ask for it, and what it said.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// The API path (with its query) that answers the same JSON.
    pub api: String,
    /// The answer.
    pub data: serde_json::Value,
}

/// A figure ready to render, with what it was drawn from.
#[derive(Debug, Clone)]
pub struct Drawn {
    /// The drawing (shared, so rendering it in several formats copies none of it).
    pub figure: Arc<Figure>,
    /// The epoch shown, for per-epoch figures.
    pub epoch: Option<u32>,
    /// The answers behind it.
    pub sources: Vec<Source>,
    /// Width and height asked for, or the figure's default.
    pub size: (u32, u32),
}

fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    api: &str,
    bytes: &Bytes,
) -> Result<(T, Source), AnswerError> {
    let data: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| AnswerError::Worker(format!("{api} answered unreadable JSON: {e}")))?;
    let value = serde_json::from_value(data.clone())
        .map_err(|e| AnswerError::Worker(format!("{api} answered an unexpected shape: {e}")))?;
    Ok((
        value,
        Source {
            api: api.to_owned(),
            data,
        },
    ))
}

/// Every stored epoch's metrics of a run, in order (the JSON of `GET /api/runs/{id}/epochs`).
pub async fn metrics(hub: &Hub, run_id: i64) -> Result<Vec<EpochMetrics>, AnswerError> {
    let rows = hub
        .blocking(move |hub| {
            if hub.run(run_id)?.is_none() {
                return Ok(None);
            }
            hub.with_store(|s| s.epochs(run_id)).map(Some)
        })
        .await?
        .ok_or_else(|| AnswerError::NotFound(format!("there is no run {run_id}")))?;
    rows.iter()
        .map(|(epoch, json)| {
            serde_json::from_str(json)
                .map_err(|e| AnswerError::Hub(crate::hub::corrupt(run_id, *epoch, e)))
        })
        .collect()
}

/// Draws figure `name` of run `run_id` with the parameters in `query`.
pub async fn draw(
    hub: &Hub,
    cache: &Arc<AnswerCache>,
    run_id: i64,
    name: FigureName,
    query: &FigureQuery,
) -> Result<Drawn, AnswerError> {
    let bad = AnswerError::BadRequest;
    let (default_w, default_h) = name.default_size();
    let size = (
        query
            .number::<u32>("width")
            .map_err(bad)?
            .unwrap_or(default_w),
        query
            .number::<u32>("height")
            .map_err(bad)?
            .unwrap_or(default_h),
    );
    actiscope_report::canvas::check_size(size.0, size.1)
        .map_err(|e| AnswerError::BadRequest(e.to_string()))?;
    let epoch = match query.number::<u32>("epoch").map_err(bad)? {
        Some(epoch) => epoch,
        None if name.per_epoch() => {
            let hub = hub.clone();
            hub.blocking(move |hub| Ok(lenses::similarity::latest_epoch(hub, run_id)))
                .await??
        }
        None => 0,
    };
    let epoch_path = format!("/api/runs/{run_id}/epochs/{epoch}");
    let (panels, sources) = match name {
        FigureName::UniquePatterns | FigureName::Training => {
            let metrics = metrics(hub, run_id).await?;
            let source = Source {
                api: format!("/api/runs/{run_id}/epochs"),
                data: serde_json::to_value(&metrics)
                    .map_err(|e| AnswerError::Worker(e.to_string()))?,
            };
            let panels = if name == FigureName::UniquePatterns {
                vec![Panel::Lines(lines::unique_patterns(&metrics))]
            } else {
                vec![
                    Panel::Lines(lines::losses(&metrics)),
                    Panel::Lines(lines::accuracies(&metrics)),
                ]
            };
            (panels, vec![source])
        }
        FigureName::Sankey => {
            let nodes = query
                .number::<usize>("nodes")
                .map_err(bad)?
                .unwrap_or(DEFAULT_SANKEY_NODES)
                .max(2);
            let bytes =
                crate::stored::snapshot_json(hub.clone(), cache.clone(), run_id, epoch).await?;
            let (snapshot, source): (EpochSnapshot, _) = decode(&epoch_path, &bytes)?;
            let panel = Panel::Sankey(SankeyFigure {
                title: format!(
                    "Activation patterns of the probe set, epoch {epoch} ({} instances)",
                    snapshot.apd.instance_count
                ),
                apd: snapshot.apd.merge_rare(nodes),
            });
            (vec![panel], vec![source])
        }
        FigureName::Flows => {
            let hidden = hidden_layers(hub, run_id).await?;
            let to = query
                .number::<u32>("to")
                .map_err(bad)?
                .unwrap_or(hidden.saturating_sub(1));
            let from = query
                .number::<u32>("from")
                .map_err(bad)?
                .unwrap_or(to.saturating_sub(1));
            let set =
                lenses::flows::FlowSet::parse(query.get("set").unwrap_or("probe")).map_err(bad)?;
            let bins = query.get("binning").unwrap_or("even");
            let binning = lenses::flows::parse_binning(bins).map_err(bad)?;
            let bytes = lenses::flows_json(
                hub.clone(),
                cache.clone(),
                run_id,
                epoch,
                (from, to),
                set,
                binning,
            )
            .await?;
            let api = format!(
                "{epoch_path}/flows?from={from}&to={to}&set={}&binning={bins}",
                set.as_str()
            );
            let (table, source): (FlowTable, _) = decode(&api, &bytes)?;
            let span = if from == to {
                format!("layer {}", from + 1)
            } else {
                format!("layers {}-{}", from + 1, to + 1)
            };
            let set_name = match set {
                lenses::flows::FlowSet::Probe => "probe set",
                lenses::flows::FlowSet::Train => "training set",
            };
            let panels = vec![
                Panel::Grid(flow_histogram(
                    &table,
                    false,
                    format!(
                        "Instances by flow strength and purity ({span}, {set_name}, epoch {epoch})"
                    ),
                )),
                Panel::Grid(flow_histogram(
                    &table,
                    true,
                    format!("Misclassified instances ({span}, {set_name}, epoch {epoch})"),
                )),
            ];
            (panels, vec![source])
        }
        FigureName::NmfRmse => {
            let nmf_query: NmfQuery = query
                .lens_query(&[NMF_KEYS, &["ranks"]].concat())
                .map_err(bad)?;
            let params = nmf_query.params().map_err(bad)?;
            let ranks = nmf_query.ranks().map_err(bad)?;
            let epochs = match query.get("epochs") {
                Some(text) => numbers(text, "epochs").map_err(bad)?,
                None => {
                    let stored: Vec<u32> = metrics(hub, run_id)
                        .await?
                        .iter()
                        .map(|m| u32::try_from(m.epoch).unwrap_or(u32::MAX))
                        .collect();
                    default_epochs(&stored)
                }
            };
            let sub = query.subset(&[NMF_KEYS, &["ranks"]].concat());
            let mut curves = Vec::new();
            let mut sources = Vec::new();
            for e in epochs {
                let bytes = lenses::rmse_json(
                    hub.clone(),
                    cache.clone(),
                    run_id,
                    e,
                    params.clone(),
                    ranks.clone(),
                )
                .await?;
                let api = with_query(format!("/api/runs/{run_id}/epochs/{e}/nmf/rmse"), &sub);
                let (curve, source): (RmseCurve, _) = decode(&api, &bytes)?;
                curves.push(curve);
                sources.push(source);
            }
            (vec![Panel::Lines(lines::rmse_by_rank(&curves))], sources)
        }
        FigureName::NmfLatents | FigureName::NmfFactors => {
            let nmf_query: NmfQuery = query.lens_query(NMF_KEYS).map_err(bad)?;
            let params = nmf_query.params().map_err(bad)?;
            let bytes = lenses::nmf_json(hub.clone(), cache.clone(), run_id, epoch, params).await?;
            let api = with_query(format!("{epoch_path}/nmf"), &query.subset(NMF_KEYS));
            let (nmf, source): (NmfResult, _) = decode(&api, &bytes)?;
            let panels = if name == FigureName::NmfLatents {
                vec![Panel::Latents(
                    LatentImages::of(&nmf).map_err(|e| AnswerError::BadRequest(e.to_string()))?,
                )]
            } else {
                let grids = factor_loadings(&nmf);
                if grids.is_empty() {
                    return Err(AnswerError::BadRequest(
                        "the factorization has no layer block to draw".to_owned(),
                    ));
                }
                grids.into_iter().map(Panel::Grid).collect()
            };
            (panels, vec![source])
        }
        FigureName::Spectra => {
            let bytes = lenses::spectra_json(hub.clone(), cache.clone(), run_id, epoch).await?;
            let (spectra, source): (Spectra, _) = decode(&format!("{epoch_path}/spectra"), &bytes)?;
            (vec![Panel::Lines(lines::spectra(&spectra))], vec![source])
        }
        FigureName::Mapper => {
            let mapper_query: MapperQuery = query.lens_query(MAPPER_KEYS).map_err(bad)?;
            let params = mapper_query.params().map_err(bad)?;
            let layer_idx = params.layer_idx;
            let bytes =
                lenses::mapper_json(hub.clone(), cache.clone(), run_id, epoch, params).await?;
            let api = with_query(format!("{epoch_path}/mapper"), &query.subset(MAPPER_KEYS));
            let (graph, source): (MapperGraph, _) = decode(&api, &bytes)?;
            let colour = parse_colour(query.get("colour").unwrap_or("purity")).map_err(bad)?;
            let panel = Panel::Mapper(MapperFigure {
                colour,
                title: format!(
                    "Mapper graph of layer {}, epoch {epoch} ({} nodes, {} edges)",
                    layer_idx + 1,
                    graph.nodes.len(),
                    graph.edges.len()
                ),
                graph,
            });
            (vec![panel], vec![source])
        }
        FigureName::SimilarityEpochs
        | FigureName::SimilarityLayers
        | FigureName::SimilarityCompare => {
            let keys: &[&str] = match name {
                FigureName::SimilarityEpochs => &["method", "reference"],
                FigureName::SimilarityCompare => &["method", "epoch_b"],
                _ => SIMILARITY_KEYS,
            };
            let sim: SimilarityQuery = query.lens_query(keys).map_err(bad)?;
            let method = sim.method().map_err(bad)?;
            let (bytes, api) = match name {
                FigureName::SimilarityEpochs => {
                    let reference = sim.reference().map_err(bad)?;
                    let bytes = lenses::similarity::epochs_json(
                        hub.clone(),
                        cache.clone(),
                        run_id,
                        method,
                        reference,
                    )
                    .await?;
                    (
                        bytes,
                        with_query(
                            format!("/api/runs/{run_id}/similarity"),
                            &query.subset(keys),
                        ),
                    )
                }
                FigureName::SimilarityLayers => {
                    let bytes = lenses::similarity::layers_json(
                        hub.clone(),
                        cache.clone(),
                        run_id,
                        epoch,
                        method,
                    )
                    .await?;
                    (
                        bytes,
                        with_query(format!("{epoch_path}/similarity"), &query.subset(keys)),
                    )
                }
                _ => {
                    let other = query
                        .number::<i64>("compare")
                        .map_err(bad)?
                        .ok_or_else(|| {
                            AnswerError::BadRequest(
                                "similarity-compare needs compare=RUN, the run to compare with"
                                    .to_owned(),
                            )
                        })?;
                    let epoch_b = match sim.epoch_b {
                        Some(e) => e,
                        None => {
                            let hub = hub.clone();
                            hub.blocking(move |hub| {
                                Ok(lenses::similarity::latest_epoch(hub, other))
                            })
                            .await??
                        }
                    };
                    let bytes = lenses::similarity::compare_json(
                        hub.clone(),
                        cache.clone(),
                        (run_id, epoch),
                        (other, epoch_b),
                        method,
                    )
                    .await?;
                    let mut sub = query.subset(&["method"]);
                    for (key, value) in [("epoch_a", epoch), ("epoch_b", epoch_b)] {
                        if !sub.is_empty() {
                            sub.push('&');
                        }
                        sub.push_str(&format!("{key}={value}"));
                    }
                    (
                        bytes,
                        with_query(format!("/api/runs/{run_id}/compare/{other}"), &sub),
                    )
                }
            };
            let (grid, source): (SimilarityGrid, _) = decode(&api, &bytes)?;
            let title = match name {
                FigureName::SimilarityEpochs => format!(
                    "{} of each layer against epoch {}",
                    grid.method,
                    grid.reference_epoch.unwrap_or_default()
                ),
                FigureName::SimilarityLayers => {
                    format!("{} between layers, epoch {epoch}", grid.method)
                }
                _ => format!("{} between two runs' layers", grid.method),
            };
            (vec![Panel::Grid(similarity(title, &grid))], vec![source])
        }
    };
    Ok(Drawn {
        figure: Arc::new(Figure { name, panels }),
        epoch: name.per_epoch().then_some(epoch),
        sources,
        size,
    })
}

/// The figure and format a file name asks for: `sankey.svg`, `flows.png`, …
pub fn parse_file(file: &str) -> Result<(FigureName, actiscope_report::Format), String> {
    let (stem, extension) = file.rsplit_once('.').unwrap_or((file, ""));
    let format = actiscope_report::Format::parse(extension)
        .ok_or_else(|| format!("a figure is .svg or .png, not {file:?}"))?;
    let name = FigureName::parse(stem).ok_or_else(|| {
        format!(
            "there is no figure {stem:?}; the figures are {}",
            FigureName::list()
        )
    })?;
    Ok((name, format))
}

/// The file name a figure is saved under: `run3-sankey-epoch5.svg`.
pub fn file_name(run_id: i64, drawn: &Drawn, format: actiscope_report::Format) -> String {
    match drawn.epoch {
        Some(epoch) => format!(
            "run{run_id}-{}-epoch{epoch}.{}",
            drawn.figure.name.as_str(),
            format.extension()
        ),
        None => format!(
            "run{run_id}-{}.{}",
            drawn.figure.name.as_str(),
            format.extension()
        ),
    }
}

/// Renders `figure` at `(width, height)` on the blocking pool.
pub async fn render(
    cache: &AnswerCache,
    figure: Arc<Figure>,
    (width, height): (u32, u32),
    format: actiscope_report::Format,
) -> Result<Vec<u8>, AnswerError> {
    crate::answers::blocking(cache, move || {
        figure.render(format, width, height).map_err(|e| match e {
            // What was asked cannot be drawn.
            ReportError::Size { .. } | ReportError::Data(_) => {
                AnswerError::BadRequest(e.to_string())
            }
            // The drawing or encoding failed: the server's fault.
            ReportError::Draw(_) | ReportError::Png(_) => AnswerError::Worker(e.to_string()),
        })
    })
    .await
}

fn parse_colour(text: &str) -> Result<NodeColour, String> {
    NodeColour::parse(text)
        .ok_or_else(|| format!("unknown colour {text:?}: use purity, errors, norm or class"))
}

/// Every key a figure reads, whatever the figure.
const FIGURE_KEYS: &[&str] = &[
    "epoch",
    "width",
    "height",
    "nodes",
    "from",
    "to",
    "set",
    "binning",
    "epochs",
    "ranks",
    "colour",
    "method",
    "reference",
    "compare",
    "epoch_b",
];

/// Checks every parameter in `query` the way the figures will read it, so a report refuses a
/// bad one before it draws anything (a figure drawn over HTTP reports its own).
pub fn check_query(query: &FigureQuery) -> Result<(), String> {
    for (key, _) in &query.pairs {
        let known = FIGURE_KEYS.contains(&key.as_str())
            || MAPPER_KEYS.contains(&key.as_str())
            || NMF_KEYS.contains(&key.as_str());
        if !known {
            return Err(format!(
                "unknown parameter {key:?}; the figures take {}",
                [FIGURE_KEYS, MAPPER_KEYS, NMF_KEYS].concat().join(", ")
            ));
        }
    }
    for key in [
        "epoch", "width", "height", "from", "to", "compare", "epoch_b", "nodes",
    ] {
        query.number::<u64>(key)?;
    }
    query.lens_query::<MapperQuery>(MAPPER_KEYS)?.params()?;
    let nmf: NmfQuery = query.lens_query(&[NMF_KEYS, &["ranks"]].concat())?;
    nmf.params()?;
    nmf.ranks()?;
    let sim: SimilarityQuery = query.lens_query(&["method", "reference"])?;
    sim.method()?;
    sim.reference()?;
    lenses::flows::FlowSet::parse(query.get("set").unwrap_or("probe"))?;
    lenses::flows::parse_binning(query.get("binning").unwrap_or("even"))?;
    parse_colour(query.get("colour").unwrap_or("purity"))?;
    if let Some(text) = query.get("epochs") {
        numbers(text, "epochs")?;
    }
    Ok(())
}

/// Hidden layers of a run.
async fn hidden_layers(hub: &Hub, run_id: i64) -> Result<u32, AnswerError> {
    hub.blocking(move |hub| hub.run(run_id))
        .await?
        .map(|run| run.hidden_layers)
        .ok_or_else(|| AnswerError::NotFound(format!("there is no run {run_id}")))
}

/// The epochs a report shows when none are asked for: the first, the middle and the last
/// stored epoch (fewer when fewer are stored).
pub fn default_epochs(stored: &[u32]) -> Vec<u32> {
    let (Some(&first), Some(&last)) = (stored.first(), stored.last()) else {
        return Vec::new();
    };
    let middle = stored.get(stored.len() / 2).copied().unwrap_or(first);
    let mut epochs = vec![first, middle, last];
    epochs.dedup();
    epochs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_pass_only_their_lens_keys_on() {
        let q = FigureQuery::parse("epoch=3&layer=1&lens=knn&k=7&rank=5&width=800").unwrap();
        assert_eq!(q.subset(MAPPER_KEYS), "layer=1&lens=knn&k=7");
        assert_eq!(q.subset(NMF_KEYS), "rank=5");
        assert_eq!(q.number::<u32>("width").unwrap(), Some(800));
        assert!(
            FigureQuery::parse("width=wide")
                .unwrap()
                .number::<u32>("width")
                .is_err()
        );
        let mapper: MapperQuery = q.lens_query(MAPPER_KEYS).unwrap();
        assert_eq!(mapper.k, Some(7));
        assert_eq!(default_epochs(&[1, 2, 3, 4, 5]), vec![1, 3, 5]);
        assert_eq!(default_epochs(&[4]), vec![4]);
        assert!(default_epochs(&[]).is_empty());
        assert_eq!(numbers("1, 5,20", "epochs").unwrap(), vec![1, 5, 20]);
        assert_eq!(parse_file("sankey.svg").unwrap().0, FigureName::Sankey);
        assert!(
            parse_file("sankey.gif")
                .unwrap_err()
                .contains(".svg or .png")
        );
        assert!(
            parse_file("pie.png")
                .unwrap_err()
                .contains("unique-patterns")
        );
    }
}
