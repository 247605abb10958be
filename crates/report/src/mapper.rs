//! A TopoAct-style mapper graph of one layer, laid out by the dashboard's force layout
//! (`actiscope_layout::mapper`, started fresh as a newly opened panel starts), nodes sized by
//! members and coloured by predicted-label purity.

use std::collections::HashMap;

use actiscope_layout::colour::{class_colour, hex_rgb};
use actiscope_layout::mapper::{HEIGHT, WIDTH, layout, radius};
use actiscope_protocol::mapper::MapperGraph;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::canvas::{DashboardUnits, FONT};
use crate::grids::ramp_colour;

/// What colours the nodes, as the dashboard's mapper panel offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeColour {
    /// Share of members predicted as the node's most predicted label.
    #[default]
    Purity,
    /// Share of members misclassified.
    ErrorRate,
    /// Mean L2 norm of the members' activations, relative to the largest.
    MeanNorm,
    /// Most frequent true class.
    MajorityClass,
}

impl NodeColour {
    /// The dashboard's keys: `purity`, `errors`, `norm`, `class`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "purity" => Some(Self::Purity),
            "errors" => Some(Self::ErrorRate),
            "norm" => Some(Self::MeanNorm),
            "class" => Some(Self::MajorityClass),
            _ => None,
        }
    }
}

/// The mapper figure.
#[derive(Debug, Clone, PartialEq)]
pub struct MapperFigure {
    /// Caption.
    pub title: String,
    /// The graph.
    pub graph: MapperGraph,
    /// What colours the nodes.
    pub colour: NodeColour,
}

impl MapperFigure {
    /// Draws edges (grey, thicker for a larger Jaccard overlap) then nodes.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let units = DashboardUnits::new(area.dim_in_pixel(), (WIDTH, HEIGHT), 26.0);
        let px = |p: (f64, f64)| units.px(p);
        area.draw(&Text::new(self.title.clone(), (10, 6), (FONT, 15)))?;
        let positions = layout(&self.graph, &HashMap::new());
        for edge in &self.graph.edges {
            let (Some(&a), Some(&b)) = (
                positions.get(edge.source as usize),
                positions.get(edge.target as usize),
            ) else {
                continue;
            };
            let stroke = 1 + (f64::from(edge.jaccard) * 3.0).round() as u32;
            area.draw(&PathElement::new(
                vec![px(a), px(b)],
                RGBColor(150, 150, 150).stroke_width(stroke),
            ))?;
        }
        let max_size = self
            .graph
            .nodes
            .iter()
            .map(|n| n.members.len())
            .max()
            .unwrap_or(1);
        let scale = units.sx.min(units.sy);
        let max_norm = self
            .graph
            .nodes
            .iter()
            .map(|n| n.mean_norm)
            .fold(0.0f32, f32::max)
            .max(f32::MIN_POSITIVE);
        for (node, &p) in self.graph.nodes.iter().zip(&positions) {
            let r = (radius(node.members.len(), max_size) * scale)
                .round()
                .max(2.0) as i32;
            let fill = match self.colour {
                NodeColour::Purity => ramp_colour(f64::from(node.purity)),
                NodeColour::ErrorRate => ramp_colour(f64::from(node.error_rate)),
                NodeColour::MeanNorm => ramp_colour(f64::from(node.mean_norm / max_norm)),
                NodeColour::MajorityClass => node
                    .majority_class()
                    .and_then(|c| hex_rgb(&class_colour(c)))
                    .map_or(RGBColor(153, 153, 153), |[r, g, b]| RGBColor(r, g, b)),
            };
            area.draw(&Circle::new(px(p), r, fill.filled()))?;
        }
        Ok(())
    }
}
