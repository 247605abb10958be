//! What can go wrong while drawing a figure.

use thiserror::Error;

/// Why a figure could not be drawn.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The requested picture size is outside what is drawn.
    #[error(
        "a figure is {min} to {max} pixels wide and high, at most 16.7 million pixels in all, \
         not {width} x {height}"
    )]
    Size {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Smallest side.
        min: u32,
        /// Largest side.
        max: u32,
    },
    /// The data cannot make this figure (e.g. an NMF without an input block has no latent
    /// images).
    #[error("{0}")]
    Data(String),
    /// plotters failed to draw.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// The PNG encoder failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
}
