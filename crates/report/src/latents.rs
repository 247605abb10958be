//! The factorization paper's latent images: each factor's input loadings (`P` in the paper)
//! reshaped to the input image, in a grid, each scaled to its own largest loading.

use actiscope_protocol::nmf::NmfResult;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::canvas::FONT;
use crate::error::ReportError;

/// Grey levels a pixel is quantized to; pixels at level 0 are left white, so a tile draws
/// only its non-zero pixels.
const LEVELS: f32 = 32.0;

/// The latent images of a factorization.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentImages {
    /// Caption.
    pub title: String,
    /// Image height and width.
    pub shape: (u32, u32),
    /// One `height * width` image per factor, values in `[0, 1]`.
    pub images: Vec<Vec<f32>>,
}

impl LatentImages {
    /// The latent images of `nmf`; an error when its inputs are not images or were not
    /// factorized.
    pub fn of(nmf: &NmfResult) -> Result<Self, ReportError> {
        let Some((rows, cols)) = nmf.image_shape else {
            return Err(ReportError::Data(
                "latent images need image inputs; this run's inputs are not images".to_owned(),
            ));
        };
        let Some(block) = nmf.blocks.iter().find(|b| b.layer_idx.is_none()) else {
            return Err(ReportError::Data(
                "latent images need the inputs in the factorization (include_inputs)".to_owned(),
            ));
        };
        let m = &block.loadings;
        let (pixels, rank) = (m.rows as usize, m.cols as usize);
        if pixels != rows as usize * cols as usize || m.values.len() != pixels * rank {
            return Err(ReportError::Data(format!(
                "the input block has {pixels} rows, not {rows} x {cols} pixels"
            )));
        }
        let images = (0..rank)
            .map(|k| {
                let column: Vec<f32> = (0..pixels)
                    .map(|p| m.values.get(p * rank + k).copied().unwrap_or(0.0))
                    .collect();
                let high = column.iter().copied().fold(0.0f32, f32::max);
                column
                    .iter()
                    .map(|&v| {
                        if high > 0.0 {
                            (v / high).clamp(0.0, 1.0)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            title: format!("Latent images (input loadings), epoch {}", nmf.epoch),
            shape: (rows, cols),
            images,
        })
    }

    /// Tiles per row for `count` images: about 1.6 times as many columns as rows.
    pub fn columns(count: usize) -> usize {
        ((count as f64 * 1.6).sqrt().ceil() as usize).clamp(1, count.max(1))
    }

    /// Draws the tiles, each titled with its factor.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (width, height) = area.dim_in_pixel();
        let (width, height) = (f64::from(width), f64::from(height));
        area.draw(&Text::new(self.title.clone(), (10, 6), (FONT, 15)))?;
        let count = self.images.len();
        let columns = Self::columns(count);
        let grid_rows = count.div_ceil(columns).max(1);
        let (top, label_h, gap) = (28.0, 14.0, 8.0);
        let tile_w = (width - gap) / columns as f64 - gap;
        let tile_h = (height - top) / grid_rows as f64 - gap - label_h;
        let (rows, cols) = (self.shape.0 as usize, self.shape.1 as usize);
        let side = (tile_w / cols.max(1) as f64)
            .min(tile_h / rows.max(1) as f64)
            .max(0.5);
        for (k, image) in self.images.iter().enumerate() {
            let x0 = gap + (k % columns) as f64 * (tile_w + gap);
            let y0 = top + (k / columns) as f64 * (tile_h + gap + label_h);
            area.draw(&Text::new(
                format!("factor {}", k + 1),
                (x0 as i32, y0 as i32),
                (FONT, 11).into_font().color(&RGBColor(52, 64, 84)),
            ))?;
            let y0 = y0 + label_h;
            area.draw(&Rectangle::new(
                [
                    (x0 as i32, y0 as i32),
                    (
                        (x0 + side * cols as f64) as i32,
                        (y0 + side * rows as f64) as i32,
                    ),
                ],
                RGBColor(200, 200, 200),
            ))?;
            for (p, &v) in image.iter().enumerate() {
                let level = (v * (LEVELS - 1.0)).round();
                if level <= 0.0 {
                    continue;
                }
                let grey = (255.0 * (1.0 - level / (LEVELS - 1.0))).round() as u8;
                let (r, c) = ((p / cols.max(1)) as f64, (p % cols.max(1)) as f64);
                area.draw(&Rectangle::new(
                    [
                        (
                            (x0 + c * side).round() as i32,
                            (y0 + r * side).round() as i32,
                        ),
                        (
                            (x0 + (c + 1.0) * side).round() as i32,
                            (y0 + (r + 1.0) * side).round() as i32,
                        ),
                    ],
                    RGBColor(grey, grey, grey).filled(),
                ))?;
            }
        }
        Ok(())
    }
}
