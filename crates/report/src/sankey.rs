//! APD paper Fig. 2: the Sankey diagram of one epoch, laid out by the same code as the
//! dashboard's panel (`actiscope_layout::sankey`), with the same colours: links blue to red by
//! their share of errors, nodes shaded by instances, a last level of predicted labels.

use actiscope_layout::colour::error_rgb;
use actiscope_layout::sankey::{HEIGHT, NODE_WIDTH, WIDTH, layout};
use actiscope_protocol::apd::{Apd, ApdNodeKind};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::canvas::{DashboardUnits, FONT};

/// Samples along each edge of a band's outline.
const BAND_SAMPLES: usize = 24;
/// Node fill, as the dashboard's stylesheet has it.
const NODE_FILL: RGBColor = RGBColor(0x1f, 0x4e, 0x99);
/// Steps of the link colour scale, as in the dashboard.
const ERROR_SHADES: u32 = 10;

/// The Sankey figure of `apd` (already merged as the caller wants it).
#[derive(Debug, Clone, PartialEq)]
pub struct SankeyFigure {
    /// Caption.
    pub title: String,
    /// The diagram.
    pub apd: Apd,
}

impl SankeyFigure {
    /// Draws the diagram on `area`, scaled from the dashboard's drawing units.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let units = DashboardUnits::new(area.dim_in_pixel(), (WIDTH, HEIGHT), 26.0);
        let px = |x: f64, y: f64| units.px((x, y));
        area.draw(&Text::new(self.title.clone(), (10, 6), (FONT, 15)))?;
        let geometry = layout(&self.apd);
        let levels = self.apd.levels.len();
        for level in 0..levels {
            let x = geometry
                .nodes
                .iter()
                .find(|n| n.level == level)
                .map_or(60.0, |n| n.x);
            let text = if level + 1 == levels {
                "predicted".to_owned()
            } else {
                format!(
                    "layer {} ({})",
                    level + 1,
                    self.apd.levels.get(level).map_or(0, Vec::len)
                )
            };
            area.draw(&Text::new(
                text,
                px(x, 4.0),
                (FONT, 11).into_font().color(&RGBColor(52, 64, 84)),
            ))?;
        }
        for band in &geometry.links {
            let Some(edge) = self.apd.edges.get(band.edge) else {
                continue;
            };
            let shade = (f64::from(ERROR_SHADES) * f64::from(edge.errors)
                / f64::from(edge.instances.max(1)))
            .round() as u32;
            let [r, g, b] = error_rgb(shade, ERROR_SHADES);
            let half = band.width / 2.0;
            let mut outline = Vec::with_capacity(2 * (BAND_SAMPLES + 1));
            // The band's top edge left to right, its bottom edge back.
            for i in 0..=BAND_SAMPLES {
                let (x, y) = band.at(i as f64 / BAND_SAMPLES as f64);
                outline.push(px(x, y - half));
            }
            for i in (0..=BAND_SAMPLES).rev() {
                let (x, y) = band.at(i as f64 / BAND_SAMPLES as f64);
                outline.push(px(x, y + half));
            }
            area.draw(&Polygon::new(outline, RGBColor(r, g, b).mix(0.45).filled()))?;
        }
        let max_instances = self
            .apd
            .levels
            .iter()
            .flatten()
            .map(|n| n.instances)
            .max()
            .unwrap_or(1)
            .max(1);
        for b in &geometry.nodes {
            let Some(node) = self.apd.levels.get(b.level).and_then(|l| l.get(b.node)) else {
                continue;
            };
            let opacity = 0.35 + 0.65 * f64::from(node.instances) / f64::from(max_instances);
            area.draw(&Rectangle::new(
                [
                    px(b.x, b.y),
                    px(b.x + NODE_WIDTH, b.y + b.height.max(1.0 / units.sy)),
                ],
                NODE_FILL.mix(opacity).filled(),
            ))?;
            if let ApdNodeKind::Label { label } = node.kind {
                area.draw(&Text::new(
                    label.to_string(),
                    px(b.x + NODE_WIDTH + 4.0, b.y + b.height / 2.0),
                    (FONT, 11)
                        .into_font()
                        .color(&RGBColor(52, 64, 84))
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))?;
            }
        }
        Ok(())
    }
}
