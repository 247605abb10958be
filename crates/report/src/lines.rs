//! Figures that are lines against a number: unique patterns per layer against epoch (APD
//! paper Fig. 1, log y), losses and accuracies against epoch, NMF reconstruction error against
//! rank, and singular-value spectra (log y).

use actiscope_layout::colour::{SERIES_COLOURS, hex_rgb};
use actiscope_protocol::EpochMetrics;
use actiscope_protocol::nmf::{RmseCurve, Spectra};
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use crate::canvas::FONT;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points in order; non-finite ones (and non-positive ones on a log axis) are
    /// left out.
    pub points: Vec<(f64, f64)>,
}

/// A chart of lines.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Caption.
    pub title: String,
    /// What x is.
    pub x_desc: String,
    /// What y is.
    pub y_desc: String,
    /// Whether y is drawn on a log axis.
    pub log_y: bool,
    /// The lines, coloured in order.
    pub series: Vec<Series>,
}

/// A tick label: whole numbers without decimals, small numbers with no trailing zeros.
pub fn tick(value: &f64) -> String {
    if value.abs() >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// The colour of series `index`, as the dashboard's charts colour it.
pub fn series_colour(index: usize) -> RGBColor {
    let css = SERIES_COLOURS
        .get(index % SERIES_COLOURS.len())
        .copied()
        .unwrap_or("#333333");
    let [r, g, b] = hex_rgb(css).unwrap_or([51, 51, 51]);
    RGBColor(r, g, b)
}

impl LineChart {
    fn kept(&self, point: (f64, f64)) -> bool {
        point.0.is_finite() && point.1.is_finite() && (!self.log_y || point.1 > 0.0)
    }

    /// The x and y ranges of the drawn points, padded; `None` when no point is drawn.
    fn ranges(&self) -> Option<((f64, f64), (f64, f64))> {
        let points = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&p| self.kept(p));
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            return None;
        }
        if x1 - x0 < 1e-9 {
            x0 -= 0.5;
            x1 += 0.5;
        }
        if self.log_y {
            Some(((x0, x1), (y0 / 1.25, y1 * 1.25)))
        } else {
            let low = y0.min(0.0);
            let high = if y1 - low < 1e-12 { low + 1.0 } else { y1 };
            Some(((x0, x1), (low, high + (high - low) * 0.05)))
        }
    }

    /// Draws the chart on `area`.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let Some(((x0, x1), (y0, y1))) = self.ranges() else {
            area.draw(&Text::new(
                format!("{}: nothing to draw", self.title),
                (10, 20),
                (FONT, 14),
            ))?;
            return Ok(());
        };
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(&self.title, (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64);
        if self.log_y {
            let chart = builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?;
            self.finish(chart)
        } else {
            let chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
            self.finish(chart)
        }
    }

    fn finish<'a, DB, Y>(
        &self,
        mut chart: ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        DB: DrawingBackend + 'a,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        for (index, series) in self.series.iter().enumerate() {
            let colour = series_colour(index);
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .copied()
                .filter(|&p| self.kept(p))
                .collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(series.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        if self.series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT, 12))
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
        }
        Ok(())
    }
}

fn epochs_series(
    metrics: &[EpochMetrics],
    label: &str,
    value: impl Fn(&EpochMetrics) -> f64,
) -> Series {
    Series {
        label: label.to_owned(),
        points: metrics.iter().map(|m| (m.epoch as f64, value(m))).collect(),
    }
}

/// APD paper Fig. 1: `|A*_l(D)|` over the training set against epoch, one line per hidden
/// layer, log y.
pub fn unique_patterns(metrics: &[EpochMetrics]) -> LineChart {
    let layers = metrics
        .iter()
        .map(|m| m.unique_patterns.len())
        .max()
        .unwrap_or(0);
    LineChart {
        title: "Unique activation patterns per layer (training set)".to_owned(),
        x_desc: "epoch".to_owned(),
        y_desc: "unique patterns".to_owned(),
        log_y: true,
        series: (0..layers)
            .map(|layer_idx| {
                epochs_series(metrics, &format!("layer {}", layer_idx + 1), |m| {
                    m.unique_patterns
                        .get(layer_idx)
                        .map_or(f64::NAN, |&n| n as f64)
                })
            })
            .collect(),
    }
}

/// Losses against epoch: training, validation and the mean minibatch loss.
pub fn losses(metrics: &[EpochMetrics]) -> LineChart {
    LineChart {
        title: "Loss".to_owned(),
        x_desc: "epoch".to_owned(),
        y_desc: "cross-entropy".to_owned(),
        log_y: false,
        series: vec![
            epochs_series(metrics, "train", |m| m.train_loss),
            epochs_series(metrics, "validation", |m| m.val_loss),
            epochs_series(metrics, "minibatch mean", |m| m.minibatch_loss),
        ],
    }
}

/// Accuracies against epoch: training and validation.
pub fn accuracies(metrics: &[EpochMetrics]) -> LineChart {
    LineChart {
        title: "Accuracy".to_owned(),
        x_desc: "epoch".to_owned(),
        y_desc: "accuracy".to_owned(),
        log_y: false,
        series: vec![
            epochs_series(metrics, "train", |m| m.train_accuracy),
            epochs_series(metrics, "validation", |m| m.val_accuracy),
        ],
    }
}

/// The factorization paper's RMSE against rank, one line per epoch, relative to the RMS of
/// the factorized values so epochs whose activations differ in size compare.
pub fn rmse_by_rank(curves: &[RmseCurve]) -> LineChart {
    LineChart {
        title: "Coupled NMF: reconstruction error against rank".to_owned(),
        x_desc: "rank".to_owned(),
        y_desc: "RMSE / RMS of the data".to_owned(),
        log_y: false,
        series: curves
            .iter()
            .map(|curve| Series {
                label: format!("epoch {}", curve.epoch),
                points: curve
                    .points
                    .iter()
                    .map(|&(rank, rmse)| (f64::from(rank), rmse / curve.data_rms))
                    .collect(),
            })
            .collect(),
    }
}

/// Singular values of each layer's probe activations, descending, log y.
pub fn spectra(spectra: &Spectra) -> LineChart {
    LineChart {
        title: format!("Singular values, epoch {}", spectra.epoch),
        x_desc: "index".to_owned(),
        y_desc: "singular value".to_owned(),
        log_y: true,
        series: spectra
            .layers
            .iter()
            .enumerate()
            .map(|(layer_idx, values)| Series {
                label: format!("layer {}", layer_idx + 1),
                points: values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| ((i + 1) as f64, f64::from(v)))
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_skip_what_cannot_be_drawn() {
        let chart = LineChart {
            title: String::new(),
            x_desc: String::new(),
            y_desc: String::new(),
            log_y: true,
            series: vec![Series {
                label: "a".into(),
                points: vec![(1.0, 0.0), (2.0, 10.0), (3.0, f64::NAN), (4.0, 100.0)],
            }],
        };
        let ((x0, x1), (y0, y1)) = chart.ranges().unwrap();
        assert_eq!((x0, x1), (2.0, 4.0));
        assert!((y0 - 8.0).abs() < 1e-9 && (y1 - 125.0).abs() < 1e-9);
        assert_eq!(tick(&9000.0), "9000");
        assert_eq!(tick(&50.0), "50");
        assert_eq!(tick(&0.25), "0.25");
        assert_eq!(tick(&1.5), "1.5");
        let empty = LineChart {
            series: vec![],
            ..chart
        };
        assert!(empty.ranges().is_none());
    }
}
