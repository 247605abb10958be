//! Figures that are grids of coloured cells: similarity heatmaps (layers x epochs, layers x
//! layers, run against run), the flows' strength x purity histograms (APD paper Fig. 3) and
//! the NMF's neurons x factors loadings.
//!
//! Cells are drawn by hand rather than on a plotters chart so that every row and column label
//! sits on its cell. A grid draws exactly one rectangle per cell plus [`SCALE_STEPS`] for its
//! colour bar, which the tests count.

use actiscope_layout::colour::ramp_rgb;
use actiscope_protocol::apd::FlowTable;
use actiscope_protocol::nmf::NmfResult;
use actiscope_protocol::similarity::SimilarityGrid;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::canvas::FONT;

/// Rectangles in a grid's colour bar.
pub const SCALE_STEPS: usize = 16;

/// Colour of empty cells.
const EMPTY: RGBColor = RGBColor(235, 235, 235);

/// How values map to colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// `low..=high` linearly onto the ramp.
    Linear {
        /// Value at the light end.
        low: f64,
        /// Value at the dark end.
        high: f64,
    },
    /// Counts: `log(1 + v) / log(1 + high)`, so a few big cells do not wash out the rest.
    LogCount {
        /// The largest count.
        high: f64,
    },
}

impl Scale {
    /// Where `value` falls on the ramp, in `[0, 1]`.
    pub fn position(self, value: f64) -> f64 {
        let t = match self {
            Self::Linear { low, high } => (value - low) / (high - low).max(1e-12),
            Self::LogCount { high } => (1.0 + value.max(0.0)).ln() / (1.0 + high.max(1.0)).ln(),
        };
        if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    fn value_at(self, t: f64) -> f64 {
        match self {
            Self::Linear { low, high } => low + (high - low) * t,
            Self::LogCount { high } => ((1.0 + high.max(1.0)).ln() * t).exp() - 1.0,
        }
    }
}

/// The fill of a cell at ramp position `t`.
pub fn ramp_colour(t: f64) -> RGBColor {
    let [r, g, b] = ramp_rgb(t);
    RGBColor(r, g, b)
}

/// A labelled grid of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Caption.
    pub title: String,
    /// Row labels, top to bottom.
    pub rows: Vec<String>,
    /// Column labels, left to right.
    pub cols: Vec<String>,
    /// Row-major values; `None` draws an empty cell.
    pub values: Vec<Option<f64>>,
    /// Colour scale.
    pub scale: Scale,
    /// Whether each cell prints its value (when the cell is big enough).
    pub print_values: bool,
    /// How a printed value looks.
    pub decimals: usize,
}

impl Grid {
    /// The value at `(row, col)`.
    fn get(&self, row: usize, col: usize) -> Option<f64> {
        self.values
            .get(row * self.cols.len() + col)
            .copied()
            .flatten()
    }

    fn format(&self, value: f64) -> String {
        format!("{value:.*}", self.decimals)
    }

    /// Draws the grid on `area`: caption, row labels on the left, column labels below (thinned
    /// when they would overlap), cells, and a colour bar on the right.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (width, height) = area.dim_in_pixel();
        let (width, height) = (
            i32::try_from(width).unwrap_or(0),
            i32::try_from(height).unwrap_or(0),
        );
        let label_chars = self
            .rows
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        // At most a third of the panel, but never a negative or inverted range.
        let left = (label_chars as i32 * 7 + 12)
            .max(24)
            .min((width / 3).max(24));
        let (top, bottom, right) = (30, 34, 70);
        let grid_w = (width - left - right).max(1);
        let grid_h = (height - top - bottom).max(1);
        let (n_rows, n_cols) = (self.rows.len().max(1) as i32, self.cols.len().max(1) as i32);
        let cell_w = f64::from(grid_w) / f64::from(n_cols);
        let cell_h = f64::from(grid_h) / f64::from(n_rows);
        let x_at = |c: i32| left + (f64::from(c) * cell_w).round() as i32;
        let y_at = |r: i32| top + (f64::from(r) * cell_h).round() as i32;
        area.draw(&Text::new(
            self.title.clone(),
            (left, 8),
            (FONT, 15).into_font().color(&BLACK),
        ))?;
        let printed = self.print_values && cell_w >= 34.0 && cell_h >= 15.0;
        for (r, row_label) in self.rows.iter().enumerate() {
            let r = r as i32;
            let centre_y = (y_at(r) + y_at(r + 1)) / 2;
            if cell_h >= 9.0 || r % ((9.0 / cell_h).ceil() as i32).max(1) == 0 {
                area.draw(&Text::new(
                    row_label.clone(),
                    (left - 6, centre_y),
                    (FONT, 11)
                        .into_font()
                        .color(&RGBColor(52, 64, 84))
                        .pos(Pos::new(HPos::Right, VPos::Center)),
                ))?;
            }
            for c in 0..self.cols.len() {
                let value = self.get(r as usize, c);
                let c = c as i32;
                let fill = value.map_or(EMPTY, |v| ramp_colour(self.scale.position(v)));
                area.draw(&Rectangle::new(
                    [(x_at(c), y_at(r)), (x_at(c + 1), y_at(r + 1))],
                    fill.filled(),
                ))?;
                if let (true, Some(v)) = (printed, value) {
                    let dark = self.scale.position(v) > 0.55;
                    area.draw(&Text::new(
                        self.format(v),
                        ((x_at(c) + x_at(c + 1)) / 2, centre_y),
                        (FONT, 10)
                            .into_font()
                            .color(if dark { &WHITE } else { &BLACK })
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    ))?;
                }
            }
        }
        let longest = self
            .cols
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(1);
        let every = ((longest as f64 * 6.5 + 6.0) / cell_w).ceil().max(1.0) as usize;
        for (c, col_label) in self.cols.iter().enumerate().step_by(every) {
            let c = c as i32;
            area.draw(&Text::new(
                col_label.clone(),
                ((x_at(c) + x_at(c + 1)) / 2, top + grid_h + 6),
                (FONT, 11)
                    .into_font()
                    .color(&RGBColor(52, 64, 84))
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
        // The colour bar: light (low) at the bottom, dark (high) at the top.
        let bar_x = width - right + 14;
        let step_h = f64::from(grid_h) / SCALE_STEPS as f64;
        for step in 0..SCALE_STEPS {
            let t = (step as f64 + 0.5) / SCALE_STEPS as f64;
            let y0 = top + grid_h - ((step + 1) as f64 * step_h).round() as i32;
            let y1 = top + grid_h - (step as f64 * step_h).round() as i32;
            area.draw(&Rectangle::new(
                [(bar_x, y0), (bar_x + 12, y1)],
                ramp_colour(t).filled(),
            ))?;
        }
        for (t, v_pos) in [(1.0, VPos::Top), (0.0, VPos::Bottom)] {
            let y = if t > 0.5 { top } else { top + grid_h };
            area.draw(&Text::new(
                self.format(self.scale.value_at(t)),
                (bar_x + 16, y),
                (FONT, 10)
                    .into_font()
                    .color(&RGBColor(52, 64, 84))
                    .pos(Pos::new(HPos::Left, v_pos)),
            ))?;
        }
        Ok(())
    }
}

/// A similarity grid as a heatmap on `0..=1`.
pub fn similarity(title: String, grid: &SimilarityGrid) -> Grid {
    Grid {
        title,
        rows: grid.row_labels.clone(),
        cols: grid.col_labels.clone(),
        values: grid.values.clone(),
        scale: Scale::Linear {
            low: 0.0,
            high: 1.0,
        },
        print_values: true,
        decimals: 2,
    }
}

/// The label of strength bin `s` given the lower edges: `1`, `2-3`, ..., `64+`.
pub fn strength_label(lower_edges: &[u32], s: usize) -> String {
    match (lower_edges.get(s), lower_edges.get(s + 1)) {
        (Some(&low), Some(&next)) if next == low + 1 => low.to_string(),
        (Some(&low), Some(&next)) => format!("{low}-{}", next - 1),
        (Some(&low), None) => format!("{low}+"),
        _ => String::new(),
    }
}

/// APD paper Fig. 3: instances (`errors == false`) or misclassified instances by the strength
/// (columns) and purity (rows, purest on top) of their flow. Counts on a log colour scale.
pub fn flow_histogram(table: &FlowTable, errors: bool, title: String) -> Grid {
    let h = &table.histogram;
    let cells = if errors { &h.errors } else { &h.instances };
    let purity_bins = h.purity_edges.len().saturating_sub(1);
    let strength_bins = h.strength_lower_edges.len();
    let rows: Vec<String> = (0..purity_bins)
        .rev()
        .map(|p| {
            let low = h.purity_edges.get(p).copied().unwrap_or(0.0);
            let high = h.purity_edges.get(p + 1).copied().unwrap_or(1.0);
            format!("{low:.2}-{high:.2}")
        })
        .collect();
    let cols = (0..strength_bins)
        .map(|s| strength_label(&h.strength_lower_edges, s))
        .collect();
    let mut values = Vec::with_capacity(purity_bins * strength_bins);
    let mut high = 0u32;
    for p in (0..purity_bins).rev() {
        for s in 0..strength_bins {
            let count = cells
                .get(p)
                .and_then(|row| row.get(s))
                .copied()
                .unwrap_or(0);
            high = high.max(count);
            values.push(Some(f64::from(count)));
        }
    }
    Grid {
        title,
        rows,
        cols,
        values,
        scale: Scale::LogCount {
            high: f64::from(high),
        },
        print_values: true,
        decimals: 0,
    }
}

/// One neurons x factors heatmap per layer block of a factorization (the input block is
/// drawn as latent images instead).
pub fn factor_loadings(nmf: &NmfResult) -> Vec<Grid> {
    nmf.blocks
        .iter()
        .filter(|block| block.layer_idx.is_some())
        .map(|block| {
            let m = &block.loadings;
            let (rows, cols) = (m.rows as usize, m.cols as usize);
            let high = m.values.iter().copied().fold(0.0f32, f32::max);
            Grid {
                title: format!("{}: neurons x factors, epoch {}", block.name, nmf.epoch),
                rows: (0..rows).map(|r| format!("n{r}")).collect(),
                cols: (1..=cols).map(|c| format!("f{c}")).collect(),
                values: m.values.iter().map(|&v| Some(f64::from(v))).collect(),
                scale: Scale::Linear {
                    low: 0.0,
                    high: f64::from(high),
                },
                print_values: false,
                decimals: 2,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_labels() {
        let s = Scale::LogCount { high: 99.0 };
        assert!((s.position(99.0) - 1.0).abs() < 1e-12);
        assert_eq!(s.position(0.0), 0.0);
        assert!((s.value_at(1.0) - 99.0).abs() < 1e-9);
        let l = Scale::Linear {
            low: 0.0,
            high: 1.0,
        };
        assert_eq!(l.position(2.0), 1.0);
        assert_eq!(l.position(f64::NAN), 0.0);
        assert_eq!(strength_label(&[1, 2, 4, 8], 0), "1");
        assert_eq!(strength_label(&[1, 2, 4, 8], 1), "2-3");
        assert_eq!(strength_label(&[1, 2, 4, 8], 3), "8+");
    }
}
