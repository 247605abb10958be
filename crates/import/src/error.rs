//! The one error of an import: which file, which tensor, and why.

use std::path::PathBuf;

/// Why a run directory (or one of its epochs) cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file holds something it must not (a bad header, a wrong shape, NaN, ...).
    #[error("{}{}: {reason}", path.display(), tensor.as_ref().map(|t| format!(", tensor {t}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The tensor (layer, `labels`, `predictions`, ...) in it, when there is one.
        tensor: Option<String>,
        /// What is wrong, for people.
        reason: String,
    },
}

impl ImportError {
    /// An [`ImportError::Invalid`] about `path` (and `tensor`, when given).
    pub fn invalid(
        path: impl Into<PathBuf>,
        tensor: Option<&str>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            path: path.into(),
            tensor: tensor.map(str::to_owned),
            reason: reason.into(),
        }
    }

    /// An [`ImportError::Io`] about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
