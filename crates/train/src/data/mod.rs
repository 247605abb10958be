//! Datasets: loaders that turn files or seeds into labelled images or points.

mod builtin;
pub mod dataset;
pub mod idx;
pub mod synthetic;

pub use builtin::{BUILTIN_DIGITS_GZ, builtin_digits, decode_digits};
pub use dataset::{Dataset, DatasetSpec, Splits, load_splits};

use std::path::PathBuf;

/// Labelled grey-scale images, as stored: one byte per pixel (0 = background), row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Image height in pixels.
    pub rows: usize,
    /// Image width in pixels.
    pub cols: usize,
    /// One label per image.
    pub labels: Vec<u8>,
    /// `labels.len() * rows * cols` bytes.
    pub pixels: Vec<u8>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of one image, or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let size = self.rows * self.cols;
        self.pixels.get(index * size..(index + 1) * size)
    }

    /// How many images carry each label `0..=max_label`.
    pub fn label_histogram(&self) -> Vec<usize> {
        let classes = self
            .labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| usize::from(m) + 1);
        let mut counts = vec![0; classes];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(usize::from(label)) {
                *count += 1;
            }
        }
        counts
    }
}

/// Errors of the data loaders; each names the file or source it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data is malformed.
    #[error("{source_name} is corrupt: {reason}")]
    Corrupt {
        /// File name or description of the source.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A dataset that comes from a Debian package which is not installed.
    #[error("{dataset} is not installed: `sudo apt-get install {package}` puts its files in {dir}")]
    NotInstalled {
        /// The dataset's name.
        dataset: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
        /// Where the package installs it.
        dir: &'static str,
    },
}
