//! A TopoAct-style mapper graph of one layer, laid out by the dashboard's force layout
//! (`actiscope_layout::mapper`, started fresh as a newly opened panel starts), nodes sized by
//! members and coloured by predicted-label purity.

use std::collections::HashMap;

use actiscope_layout::mapper::{HEIGHT, WIDTH, layout, radius};
use actiscope_protocol::mapper::MapperGraph;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::canvas::FONT;
use crate::grids::ramp_colour;

/// The mapper figure.
#[derive(Debug, Clone, PartialEq)]
pub struct MapperFigure {
    /// Caption.
    pub title: String,
    /// The graph.
    pub graph: MapperGraph,
}

impl MapperFigure {
    /// Draws edges (grey, thicker for a larger Jaccard overlap) then nodes.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (width, height) = area.dim_in_pixel();
        let title_h = 26.0;
        let sx = f64::from(width) / WIDTH;
        let sy = (f64::from(height) - title_h).max(1.0) / HEIGHT;
        let px = |(x, y): (f64, f64)| ((x * sx).round() as i32, (title_h + y * sy).round() as i32);
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
        let scale = sx.min(sy);
        for (node, &p) in self.graph.nodes.iter().zip(&positions) {
            let r = (radius(node.members.len(), max_size) * scale)
                .round()
                .max(2.0) as i32;
            area.draw(&Circle::new(
                px(p),
                r,
                ramp_colour(f64::from(node.purity)).filled(),
            ))?;
        }
        Ok(())
    }
}
