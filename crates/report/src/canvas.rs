//! The two surfaces every figure is drawn on: an SVG string and an RGB bitmap encoded as PNG,
//! with the embedded DejaVu Sans font registered once for both (plotters measures text with
//! it, and the PNG rasterizes it), so figures look the same on any machine.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::ReportError;

/// The font family every figure's text uses.
pub const FONT: &str = "sans-serif";

/// DejaVu Sans (Bitstream Vera licence, see `fonts/DejaVuSans-LICENSE.txt`).
static DEJAVU_SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// Smallest side of a picture, in pixels.
pub const MIN_SIDE: u32 = 64;
/// Largest side of a picture, in pixels.
pub const MAX_SIDE: u32 = 8192;
/// Most pixels of a picture (a PNG is drawn in a 3-byte-per-pixel buffer: 48 MiB at most).
pub const MAX_PIXELS: u64 = 4096 * 4096;

/// A panel that draws in the dashboard's own units (`width x height` of its SVG) below a
/// caption line: the scale from those units to the panel's pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DashboardUnits {
    /// Pixels per unit across.
    pub sx: f64,
    /// Pixels per unit down.
    pub sy: f64,
    /// Pixels above the drawing, for the caption.
    pub top: f64,
}

impl DashboardUnits {
    /// The scale for a panel of `pixels` (width, height) showing a `units` (width, height)
    /// drawing under a caption of `top` pixels.
    pub fn new(pixels: (u32, u32), units: (f64, f64), top: f64) -> Self {
        Self {
            sx: f64::from(pixels.0) / units.0,
            sy: (f64::from(pixels.1) - top).max(1.0) / units.1,
            top,
        }
    }

    /// The pixel of the point `(x, y)` in dashboard units.
    pub fn px(&self, (x, y): (f64, f64)) -> (i32, i32) {
        (
            (x * self.sx).round() as i32,
            (self.top + y * self.sy).round() as i32,
        )
    }
}

/// Picture formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics (text stays text).
    Svg,
    /// A PNG bitmap, 8-bit RGB.
    Png,
}

impl Format {
    /// The file extension and the name used in URLs.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Svg => "svg",
            Self::Png => "png",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Svg => "image/svg+xml",
            Self::Png => "image/png",
        }
    }

    /// `svg` or `png`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "svg" => Some(Self::Svg),
            "png" => Some(Self::Png),
            _ => None,
        }
    }
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse (tested); a failure would only leave
        // the text undrawn, which the figure tests would catch.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS);
    });
}

/// Checks a requested size.
pub fn check_size(width: u32, height: u32) -> Result<(), ReportError> {
    let ok = |side: u32| (MIN_SIDE..=MAX_SIDE).contains(&side);
    if ok(width) && ok(height) && u64::from(width) * u64::from(height) <= MAX_PIXELS {
        Ok(())
    } else {
        Err(ReportError::Size {
            width,
            height,
            min: MIN_SIDE,
            max: MAX_SIDE,
        })
    }
}

/// Draws with `draw` on a `width x height` surface of `format` and returns the file's bytes.
/// `draw` is called once, with whichever backend the format needs; it is generic so each
/// figure is written once for both.
pub fn paint<F>(format: Format, width: u32, height: u32, draw: &F) -> Result<Vec<u8>, ReportError>
where
    F: DrawOn,
{
    check_size(width, height)?;
    register_font();
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                root.fill(&WHITE).map_err(draw_error)?;
                draw.draw_on(&root).map_err(draw_error)?;
                root.present().map_err(draw_error)?;
            }
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; width as usize * height as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
                root.fill(&WHITE).map_err(draw_error)?;
                draw.draw_on(&root).map_err(draw_error)?;
                root.present().map_err(draw_error)?;
            }
            encode_png(&rgb, width, height)
        }
    }
}

/// A figure that can draw itself on any plotters backend.
pub trait DrawOn {
    /// Draws on `root`, which is already white.
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

fn draw_error(e: impl std::fmt::Display) -> ReportError {
    ReportError::Draw(e.to_string())
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ReportError> {
    let mut out = Vec::with_capacity(rgb.len() / 8);
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Balanced);
        let mut writer = encoder
            .write_header()
            .map_err(|e| ReportError::Png(e.to_string()))?;
        writer
            .write_image_data(rgb)
            .map_err(|e| ReportError::Png(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| ReportError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_outside_the_range_are_refused() {
        assert!(check_size(640, 480).is_ok());
        assert!(check_size(MIN_SIDE - 1, 480).is_err());
        assert!(check_size(640, MAX_SIDE + 1).is_err());
        assert!(check_size(MAX_SIDE, 2048).is_ok());
        assert!(check_size(MAX_SIDE, MAX_SIDE).is_err(), "too many pixels");
        assert_eq!(Format::parse("png"), Some(Format::Png));
        assert_eq!(Format::parse("gif"), None);
        assert!(plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok());
    }
}
