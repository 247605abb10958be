//! Query strings of the lens endpoints, turned into analysis parameters with clear errors.
//!
//! `GET …/mapper?layer=1&lens=pca1&intervals=10&overlap=30&clusterer=dbscan&eps=auto&min_samples=3`
//! and `GET …/nmf?rank=10&layers=0,1&inputs=true&balance=true&iters=200&tol=0.0001&seed=0`
//! (`…/nmf/rmse` adds `ranks=10,20,30`). Every key is optional; see the README's API table.

use actiscope_protocol::mapper::{MapperClusterer, MapperLens, MapperParams};
use actiscope_protocol::nmf::NmfParams;
use serde::Deserialize;

/// Most cover intervals per lens dimension.
pub const MAX_INTERVALS: u32 = 100;

/// Query of `GET /api/runs/{id}/epochs/{e}/mapper`.
#[derive(Debug, Default, Deserialize)]
pub struct MapperQuery {
    /// Hidden layer, 0-based.
    pub layer: Option<u32>,
    /// `pca1`, `pca2`, `norm`, `knn` or `score`.
    pub lens: Option<String>,
    /// Neighbour of the `knn` lens.
    pub k: Option<u32>,
    /// Cover intervals per lens dimension.
    pub intervals: Option<u32>,
    /// Overlap in percent.
    pub overlap: Option<f32>,
    /// `dbscan` or `single`.
    pub clusterer: Option<String>,
    /// DBSCAN radius, or `auto`.
    pub eps: Option<String>,
    /// DBSCAN core size.
    pub min_samples: Option<u32>,
    /// Histogram bins of single linkage.
    pub bins: Option<u32>,
    /// Smallest Jaccard weight kept.
    pub min_edge: Option<f32>,
}

impl MapperQuery {
    /// The parameters, defaults filled in, or why they are wrong.
    pub fn params(&self) -> Result<MapperParams, String> {
        let defaults = MapperParams::default();
        let lens = match self.lens.as_deref().unwrap_or("pca1") {
            "pca1" => MapperLens::Pca1,
            "pca2" => MapperLens::Pca2,
            "norm" => MapperLens::L2Norm,
            "knn" => MapperLens::KnnDistance {
                k: self.k.unwrap_or(5),
            },
            "score" => MapperLens::PredictedScore,
            other => {
                return Err(format!(
                    "unknown lens {other:?}: use pca1, pca2, norm, knn or score"
                ));
            }
        };
        let clusterer = match self.clusterer.as_deref().unwrap_or("dbscan") {
            "dbscan" => {
                let eps = match self.eps.as_deref().unwrap_or("auto") {
                    "auto" => None,
                    text => Some(
                        text.parse::<f32>()
                            .ok()
                            .filter(|e| e.is_finite() && *e > 0.0)
                            .ok_or_else(|| {
                                format!("eps {text:?} must be a number > 0 or \"auto\"")
                            })?,
                    ),
                };
                MapperClusterer::Dbscan {
                    eps,
                    min_samples: self.min_samples.unwrap_or(3).max(1),
                }
            }
            "single" => MapperClusterer::SingleLinkage {
                bins: self.bins.unwrap_or(10).clamp(2, 1000),
            },
            other => return Err(format!("unknown clusterer {other:?}: use dbscan or single")),
        };
        let intervals = self.intervals.unwrap_or(defaults.intervals);
        if intervals == 0 || intervals > MAX_INTERVALS {
            return Err(format!(
                "intervals {intervals} is outside 1..={MAX_INTERVALS}"
            ));
        }
        let overlap_pct = self.overlap.unwrap_or(defaults.overlap_pct);
        if !(0.0..100.0).contains(&overlap_pct) {
            return Err(format!("overlap {overlap_pct} must be in [0, 100)"));
        }
        let min_edge_weight = self.min_edge.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&min_edge_weight) {
            return Err(format!("min_edge {min_edge_weight} must be in [0, 1]"));
        }
        Ok(MapperParams {
            layer_idx: self.layer.unwrap_or(0),
            lens,
            intervals,
            overlap_pct,
            clusterer,
            min_edge_weight,
        })
    }
}

/// Query of `GET /api/runs/{id}/epochs/{e}/nmf` and `…/nmf/rmse`.
#[derive(Debug, Default, Deserialize)]
pub struct NmfQuery {
    /// Factors.
    pub rank: Option<u32>,
    /// Hidden layers, 0-based, comma-separated; absent or empty = all.
    pub layers: Option<String>,
    /// Whether the input pixels join.
    pub inputs: Option<bool>,
    /// Whether blocks are scaled to equal Frobenius norm.
    pub balance: Option<bool>,
    /// Most update rounds.
    pub iters: Option<u32>,
    /// Relative-improvement stop.
    pub tol: Option<f64>,
    /// Initialisation seed.
    pub seed: Option<u64>,
    /// Ranks of an RMSE curve, comma-separated.
    pub ranks: Option<String>,
}

/// Comma-separated whole numbers (`what` names them in the error); empty parts are skipped.
pub(crate) fn numbers(text: &str, what: &str) -> Result<Vec<u32>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| format!("{what} must be comma-separated whole numbers, not {t:?}"))
        })
        .collect()
}

impl NmfQuery {
    /// The parameters, defaults filled in, or why they are wrong (ranges are checked by the
    /// lens itself).
    pub fn params(&self) -> Result<NmfParams, String> {
        let defaults = NmfParams::default();
        Ok(NmfParams {
            rank: self.rank.unwrap_or(defaults.rank),
            layers: numbers(self.layers.as_deref().unwrap_or(""), "layers")?,
            include_inputs: self.inputs.unwrap_or(defaults.include_inputs),
            balance_blocks: self.balance.unwrap_or(defaults.balance_blocks),
            max_iters: self.iters.unwrap_or(defaults.max_iters),
            tolerance: self.tol.unwrap_or(defaults.tolerance),
            seed: self.seed.unwrap_or(defaults.seed),
        })
    }

    /// The ranks of an RMSE curve (default 10, 20, 30, 40, 50).
    pub fn ranks(&self) -> Result<Vec<u32>, String> {
        match self.ranks.as_deref() {
            None => Ok(vec![10, 20, 30, 40, 50]),
            Some(text) => numbers(text, "ranks"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_choices_parse() {
        let params = MapperQuery::default().params().unwrap();
        assert_eq!(params, MapperParams::default());
        let query = MapperQuery {
            layer: Some(2),
            lens: Some("knn".into()),
            k: Some(7),
            clusterer: Some("dbscan".into()),
            eps: Some("0.5".into()),
            ..MapperQuery::default()
        };
        let params = query.params().unwrap();
        assert_eq!(params.layer_idx, 2);
        assert_eq!(params.lens, MapperLens::KnnDistance { k: 7 });
        assert_eq!(
            params.clusterer,
            MapperClusterer::Dbscan {
                eps: Some(0.5),
                min_samples: 3
            }
        );
        let nmf = NmfQuery {
            layers: Some("0, 2".into()),
            ranks: Some("5,10".into()),
            inputs: Some(false),
            ..NmfQuery::default()
        };
        assert_eq!(nmf.params().unwrap().layers, vec![0, 2]);
        assert!(!nmf.params().unwrap().include_inputs);
        assert_eq!(nmf.ranks().unwrap(), vec![5, 10]);
        assert_eq!(NmfQuery::default().ranks().unwrap().len(), 5);
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |q: MapperQuery| q.params().unwrap_err();
        assert!(
            bad(MapperQuery {
                lens: Some("pca9".into()),
                ..Default::default()
            })
            .contains("pca9")
        );
        assert!(
            bad(MapperQuery {
                eps: Some("-1".into()),
                ..Default::default()
            })
            .contains("eps")
        );
        assert!(
            bad(MapperQuery {
                intervals: Some(0),
                ..Default::default()
            })
            .contains("intervals")
        );
        assert!(
            bad(MapperQuery {
                overlap: Some(100.0),
                ..Default::default()
            })
            .contains("overlap")
        );
        assert!(
            bad(MapperQuery {
                clusterer: Some("kmeans".into()),
                ..Default::default()
            })
            .contains("kmeans")
        );
        let nmf = NmfQuery {
            layers: Some("a".into()),
            ..Default::default()
        };
        assert!(nmf.params().unwrap_err().contains("layers"));
    }
}

/// Query of the similarity routes: `method` (`cka`, `cka-debiased`, `svcca`, `pwcca`; default
/// `svcca`), `reference` (`final` or an epoch; layers x epochs only) and `epoch_a`, `epoch_b`
/// (comparisons of two runs; default each run's latest).
#[derive(Debug, Default, Deserialize)]
pub struct SimilarityQuery {
    /// The measure.
    pub method: Option<String>,
    /// The epoch every column is compared with.
    pub reference: Option<String>,
    /// Epoch of the first run.
    pub epoch_a: Option<u32>,
    /// Epoch of the second run.
    pub epoch_b: Option<u32>,
}

impl SimilarityQuery {
    /// The measure asked for.
    pub fn method(&self) -> Result<actiscope_analysis::similarity::Method, String> {
        crate::lenses::similarity::parse_method(self.method.as_deref().unwrap_or("svcca"))
    }

    /// The reference epoch asked for.
    pub fn reference(&self) -> Result<crate::lenses::similarity::Reference, String> {
        crate::lenses::similarity::Reference::parse(self.reference.as_deref().unwrap_or("final"))
    }
}
