//! Where things are in a run directory, and which entries are epochs. Writers write each
//! file or folder under another name (e.g. `epoch-0003.safetensors.tmp`) and rename it when
//! complete, so a name of the forms below is always a finished epoch.

use std::path::{Path, PathBuf};

use crate::error::ImportError;

/// The file a writer creates when its job has ended.
pub const FINISHED_MARKER: &str = "finished";

/// How an epoch is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochFormat {
    /// `epoch-0001.safetensors`: one tensor per layer.
    Safetensors,
    /// `epoch-0001.npz`: one array per layer.
    Npz,
    /// `epoch-0001/`: one `<layer>.npy` per layer.
    NpyFolder,
}

/// One epoch found in a run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochEntry {
    /// Its number, from 1.
    pub number: u32,
    /// The file or folder.
    pub path: PathBuf,
    /// How it is stored.
    pub format: EpochFormat,
}

/// The epoch named `name` (`epoch-` then at least four digits, then `.safetensors`, `.npz`
/// or nothing for a folder), if it is one.
fn parse_name(name: &str, is_dir: bool) -> Option<(u32, EpochFormat)> {
    let rest = name.strip_prefix("epoch-")?;
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let (number, suffix) = rest.split_at(digits);
    if digits < 4 {
        return None;
    }
    let format = match (suffix, is_dir) {
        (".safetensors", false) => EpochFormat::Safetensors,
        (".npz", false) => EpochFormat::Npz,
        ("", true) => EpochFormat::NpyFolder,
        _ => return None,
    };
    Some((number.parse().ok()?, format))
}

/// The epochs in `root`, by number. Other names (files being written, notes) are ignored;
/// two entries for one epoch are an error.
pub fn epochs(root: &Path) -> Result<Vec<EpochEntry>, ImportError> {
    let listing = std::fs::read_dir(root).map_err(|e| ImportError::io(root, e))?;
    let mut found: Vec<EpochEntry> = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| ImportError::io(root, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| ImportError::io(entry.path(), e))?
            .is_dir();
        let Some((number, format)) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_name(n, is_dir))
        else {
            continue;
        };
        if let Some(twin) = found.iter().find(|e| e.number == number) {
            return Err(ImportError::invalid(
                entry.path(),
                None,
                format!("epoch {number} is also stored as {}", twin.path.display()),
            ));
        }
        found.push(EpochEntry {
            number,
            path: entry.path(),
            format,
        });
    }
    found.sort_by_key(|e| e.number);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_epoch_names_count() {
        assert_eq!(
            parse_name("epoch-0001.safetensors", false),
            Some((1, EpochFormat::Safetensors))
        );
        assert_eq!(
            parse_name("epoch-12345.npz", false),
            Some((12345, EpochFormat::Npz))
        );
        assert_eq!(
            parse_name("epoch-0002", true),
            Some((2, EpochFormat::NpyFolder))
        );
        for (name, is_dir) in [
            ("epoch-0001.safetensors.tmp", false),
            ("epoch-0001.tmp", true),
            ("epoch-001.safetensors", false),
            ("epoch-0001", false),
            ("epoch-0001.safetensors", true),
            ("notes.txt", false),
        ] {
            assert_eq!(parse_name(name, is_dir), None, "{name}");
        }
    }
}
