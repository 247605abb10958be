//! The papers' figures of a run, drawn with plotters as SVG and PNG, for `actiscope report`
//! and the dashboard's download buttons alike (one rendering path, two front doors).
//!
//! Owns: which figures exist and what they are called ([`FigureName`]), turning protocol data
//! into drawings ([`lines`], [`grids`], [`sankey`], [`mapper`], [`latents`]) and painting a
//! drawing on an SVG or PNG surface ([`canvas`]). Does not own: where the data come from (the
//! server's lenses compute them, so a figure's numbers are the API's), files, HTTP or burn.
//! The Sankey and mapper layouts and all colours come from `actiscope-layout`, the code the
//! dashboard draws with.

pub mod canvas;
pub mod error;
pub mod grids;
pub mod latents;
pub mod lines;
pub mod mapper;
pub mod sankey;

use plotters::coord::Shift;
use plotters::prelude::*;

pub use canvas::Format;
pub use error::ReportError;

/// Every figure, by the name used in file names and URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FigureName {
    /// APD paper Fig. 1: unique patterns per hidden layer against epoch (log y).
    UniquePatterns,
    /// Losses and accuracies against epoch.
    Training,
    /// APD paper Fig. 2: the Sankey diagram of one epoch.
    Sankey,
    /// APD paper Fig. 3: flow strength x purity histograms of one epoch.
    Flows,
    /// NMF: RMSE against rank for chosen epochs.
    NmfRmse,
    /// NMF: latent images of one epoch.
    NmfLatents,
    /// NMF: neurons x factors loadings of one epoch.
    NmfFactors,
    /// Singular-value spectra of one epoch.
    Spectra,
    /// The mapper graph of one layer at one epoch.
    Mapper,
    /// Similarity of each layer at every epoch to the reference epoch.
    SimilarityEpochs,
    /// Similarity of every pair of layers at one epoch.
    SimilarityLayers,
    /// Similarity of the layers of two runs.
    SimilarityCompare,
}

impl FigureName {
    /// All figures, in the order a report lists them.
    pub const ALL: [Self; 12] = [
        Self::UniquePatterns,
        Self::Training,
        Self::Sankey,
        Self::Flows,
        Self::NmfRmse,
        Self::NmfLatents,
        Self::NmfFactors,
        Self::Spectra,
        Self::Mapper,
        Self::SimilarityEpochs,
        Self::SimilarityLayers,
        Self::SimilarityCompare,
    ];

    /// The name in file names and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UniquePatterns => "unique-patterns",
            Self::Training => "training",
            Self::Sankey => "sankey",
            Self::Flows => "flows",
            Self::NmfRmse => "nmf-rmse",
            Self::NmfLatents => "nmf-latents",
            Self::NmfFactors => "nmf-factors",
            Self::Spectra => "spectra",
            Self::Mapper => "mapper",
            Self::SimilarityEpochs => "similarity-epochs",
            Self::SimilarityLayers => "similarity-layers",
            Self::SimilarityCompare => "similarity-compare",
        }
    }

    /// The figure called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The names, comma-separated, for error messages.
    pub fn list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// Whether the figure shows one epoch (a report draws it for each chosen epoch).
    pub fn per_epoch(self) -> bool {
        !matches!(
            self,
            Self::UniquePatterns | Self::Training | Self::NmfRmse | Self::SimilarityEpochs
        )
    }

    /// What the figure shows, for the report's index.
    pub fn caption(self) -> &'static str {
        match self {
            Self::UniquePatterns => {
                "APD paper Fig. 1: unique activation patterns per hidden layer against epoch"
            }
            Self::Training => "Losses and accuracies against epoch",
            Self::Sankey => {
                "APD paper Fig. 2: the activation pattern diagram (Sankey) of the probe set"
            }
            Self::Flows => "APD paper Fig. 3: instances and errors by flow strength and purity",
            Self::NmfRmse => "Factorization paper: coupled NMF reconstruction error against rank",
            Self::NmfLatents => "Factorization paper: latent images (input loadings per factor)",
            Self::NmfFactors => "Factorization paper: neurons x factors loadings per layer",
            Self::Spectra => "Singular values of each layer's activations",
            Self::Mapper => "TopoAct mapper graph of one layer",
            Self::SimilarityEpochs => {
                "SVCCA paper: each layer at every epoch against the reference epoch"
            }
            Self::SimilarityLayers => "Similarity between the layers of one epoch",
            Self::SimilarityCompare => "Similarity between the layers of two runs",
        }
    }

    /// Width and height, in pixels, when none are asked for.
    pub fn default_size(self) -> (u32, u32) {
        match self {
            Self::Sankey => (960, 546),
            Self::Training | Self::Flows => (1000, 400),
            Self::NmfFactors => (1000, 520),
            Self::Mapper => (630, 506),
            Self::SimilarityEpochs => (900, 360),
            _ => (720, 440),
        }
    }
}

/// One panel of a figure.
#[derive(Debug, Clone, PartialEq)]
pub enum Panel {
    /// Lines against a number.
    Lines(lines::LineChart),
    /// A heatmap.
    Grid(grids::Grid),
    /// The APD Sankey.
    Sankey(sankey::SankeyFigure),
    /// A mapper graph.
    Mapper(mapper::MapperFigure),
    /// Latent images.
    Latents(latents::LatentImages),
}

impl Panel {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        match self {
            Self::Lines(chart) => chart.draw(area),
            Self::Grid(grid) => grid.draw(area),
            Self::Sankey(sankey) => sankey.draw(area),
            Self::Mapper(mapper) => mapper.draw(area),
            Self::Latents(latents) => latents.draw(area),
        }
    }
}

/// A figure: its panels, side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Which figure.
    pub name: FigureName,
    /// The panels, left to right.
    pub panels: Vec<Panel>,
}

impl canvas::DrawOn for Figure {
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let areas = root.split_evenly((1, self.panels.len().max(1)));
        for (panel, area) in self.panels.iter().zip(&areas) {
            panel.draw(area)?;
        }
        Ok(())
    }
}

impl Figure {
    /// The figure as a file of `format`, `width x height` pixels (SVG user units).
    pub fn render(&self, format: Format, width: u32, height: u32) -> Result<Vec<u8>, ReportError> {
        canvas::paint(format, width, height, self)
    }
}
