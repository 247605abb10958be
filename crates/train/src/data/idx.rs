//! IDX files (the MNIST format): a directory with the four standard files, plain or gzipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{DataError, ImageSet};

/// Where Debian's `dataset-fashion-mnist` installs its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The training and test halves of an IDX directory.
#[derive(Debug, Clone)]
pub struct IdxDataset {
    /// `train-images-idx3-ubyte` + `train-labels-idx1-ubyte`.
    pub train: ImageSet,
    /// `t10k-images-idx3-ubyte` + `t10k-labels-idx1-ubyte`.
    pub test: ImageSet,
}

/// Loads the four standard files from `dir` (each may carry a `.gz` suffix).
pub fn load_idx_dir(dir: &Path) -> Result<IdxDataset, DataError> {
    Ok(IdxDataset {
        train: load_pair(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?,
        test: load_pair(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
    })
}

fn load_pair(dir: &Path, images: &str, labels: &str) -> Result<ImageSet, DataError> {
    let images_path = find(dir, images)?;
    let labels_path = find(dir, labels)?;
    let (image_dims, pixels) = read_idx(&images_path, 0x0803, 3)?;
    let (label_dims, labels) = read_idx(&labels_path, 0x0801, 1)?;
    let (count, rows, cols) = match image_dims.as_slice() {
        [count, rows, cols] => (*count, *rows, *cols),
        _ => unreachable_dims(&images_path)?,
    };
    if label_dims.first() != Some(&count) {
        return Err(DataError::Corrupt {
            source_name: labels_path.display().to_string(),
            reason: format!(
                "holds {} labels but {} holds {count} images",
                label_dims.first().copied().unwrap_or(0),
                images_path.display()
            ),
        });
    }
    Ok(ImageSet {
        rows,
        cols,
        labels,
        pixels,
    })
}

fn unreachable_dims(path: &Path) -> Result<(usize, usize, usize), DataError> {
    Err(DataError::Corrupt {
        source_name: path.display().to_string(),
        reason: "wrong number of dimensions".to_owned(),
    })
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    let plain = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    [plain.clone(), gz]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::Io {
            path: plain,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "missing (looked for the plain and the .gz file)",
            ),
        })
}

/// Largest IDX body read, in bytes (after gunzip): 4 GiB, forty times Fashion-MNIST's
/// training images, so that a file whose header or gzip stream claims more is refused
/// instead of filling memory.
pub const MAX_IDX_BYTES: u64 = 4 << 30;

/// Reads one IDX file of unsigned bytes: checks the magic number and that the data size
/// matches the dimensions. Returns the dimensions and the bytes.
fn read_idx(path: &Path, magic: u32, rank: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_idx(&raw, magic, rank, MAX_IDX_BYTES).map_err(|reason| DataError::Corrupt {
        source_name: path.display().to_string(),
        reason,
    })
}

/// Parses the bytes of one IDX file (gzipped or not) whose body may hold at most `max_bytes`:
/// the dimensions and the body, or why not.
fn parse_idx(
    raw: &[u8],
    magic: u32,
    rank: usize,
    max_bytes: u64,
) -> Result<(Vec<usize>, Vec<u8>), String> {
    let inflated;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw)
            .take(max_bytes.saturating_add(64))
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?;
        inflated = out;
        inflated.as_slice()
    } else {
        raw
    };
    let word = |at: usize| -> Option<u32> {
        let slice = bytes.get(at..at.checked_add(4)?)?;
        let mut b = [0u8; 4];
        b.copy_from_slice(slice);
        Some(u32::from_be_bytes(b))
    };
    let found = word(0).ok_or_else(|| "shorter than an IDX header".to_owned())?;
    if found != magic {
        return Err(format!(
            "magic number {found:#010x}, expected {magic:#010x} ({})",
            if magic == 0x0803 { "images" } else { "labels" }
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|d| word(4 + 4 * d).map(|v| v as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| "truncated header".to_owned())?;
    let header = 4 + 4 * rank;
    let expected = dims
        .iter()
        .try_fold(1usize, |total, &d| total.checked_mul(d))
        .filter(|&total| total as u64 <= max_bytes)
        .ok_or_else(|| {
            format!(
                "dimensions {dims:?} claim more than the {max_bytes} bytes an IDX file may hold"
            )
        })?;
    let body = bytes.get(header..).unwrap_or(&[]);
    if body.len() != expected {
        return Err(format!(
            "dimensions {dims:?} need {expected} bytes but the file holds {} (truncated?)",
            body.len()
        ));
    }
    Ok((dims, body.to_vec()))
}

/// Writes an IDX image or label file (for tests and tools).
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8], gzip: bool) -> std::io::Result<()> {
    let magic: u32 = if dims.len() == 3 { 0x0803 } else { 0x0801 };
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &bytes)?;
        bytes = encoder.finish()?;
    }
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Inputs the IDX fuzz properties each try.
    const FUZZ_CASES: u32 = 10_000;

    fn image_file(count: u32, gzip: bool) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let pixels: Vec<u8> = (0..count * 4).map(|i| (i % 251) as u8).collect();
        write_idx(&path, &[count, 2, 2], &pixels, gzip).unwrap();
        std::fs::read(path).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: FUZZ_CASES,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_bytes_never_panic_the_idx_reader(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_idx(&raw, 0x0803, 3, 1 << 20);
            // The same garbage behind a valid magic number reaches the dimensions.
            let mut headed = 0x0803u32.to_be_bytes().to_vec();
            headed.extend_from_slice(&raw);
            let _ = parse_idx(&headed, 0x0803, 3, 1 << 20);
        }

        #[test]
        fn mutated_idx_files_never_panic_and_are_read_whole_or_refused(
            gzip in any::<bool>(),
            edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let mut raw = image_file(5, gzip);
            for (at, flip) in edits {
                let at = at % raw.len();
                raw[at] ^= flip;
            }
            if let Some(cut) = cut {
                raw.truncate(cut % (raw.len() + 1));
            }
            if let Ok((dims, body)) = parse_idx(&raw, 0x0803, 3, 1 << 20) {
                prop_assert_eq!(dims.iter().product::<usize>(), body.len());
            }
        }
    }

    #[test]
    fn headers_that_claim_more_than_the_limit_are_refused() {
        // 2^32-1 cubed overflows; 65536 x 256 x 256 is 4 GiB, past a 1 MiB limit.
        for dims in [[u32::MAX; 3], [65_536, 256, 256]] {
            let mut raw = 0x0803u32.to_be_bytes().to_vec();
            for d in dims {
                raw.extend_from_slice(&d.to_be_bytes());
            }
            let err = parse_idx(&raw, 0x0803, 3, 1 << 20).unwrap_err();
            assert!(err.contains("claim more"), "{err}");
        }
        // A gzip stream that inflates past the limit stops at the limit.
        let big = image_file(100_000, true);
        let err = parse_idx(&big, 0x0803, 3, 1 << 16).unwrap_err();
        assert!(
            err.contains("claim more") || err.contains("truncated"),
            "{err}"
        );
    }

    fn write_set(dir: &Path, train: usize, test: usize, gzip: bool) {
        let ext = if gzip { ".gz" } else { "" };
        for (prefix, n) in [("train", train), ("t10k", test)] {
            let pixels: Vec<u8> = (0..n * 4).map(|i| (i * 7 % 256) as u8).collect();
            let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
            write_idx(
                &dir.join(format!("{prefix}-images-idx3-ubyte{ext}")),
                &[n as u32, 2, 2],
                &pixels,
                gzip,
            )
            .unwrap();
            write_idx(
                &dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")),
                &[n as u32],
                &labels,
                gzip,
            )
            .unwrap();
        }
    }

    #[test]
    fn reads_plain_and_gzipped_sets() {
        for gzip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_set(dir.path(), 12, 5, gzip);
            let set = load_idx_dir(dir.path()).unwrap();
            assert_eq!((set.train.len(), set.test.len()), (12, 5));
            assert_eq!((set.train.rows, set.train.cols), (2, 2));
            assert_eq!(set.train.image(1), Some([28, 35, 42, 49].as_slice()));
            assert_eq!(set.train.label_histogram(), [4, 4, 4]);
        }
    }

    #[test]
    fn missing_truncated_and_mislabeled_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_idx_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("train-images-idx3-ubyte"), "{err}");

        write_set(dir.path(), 12, 5, false);
        let images = dir.path().join("train-images-idx3-ubyte");
        let bytes = std::fs::read(&images).unwrap();
        std::fs::write(&images, &bytes[..bytes.len() - 3]).unwrap();
        let err = load_idx_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("train-images-idx3-ubyte") && err.contains("truncated"),
            "{err}"
        );

        write_set(dir.path(), 12, 5, false);
        write_idx(
            &dir.path().join("train-labels-idx1-ubyte"),
            &[11],
            &[0; 11],
            false,
        )
        .unwrap();
        let err = load_idx_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("holds 11 labels"), "{err}");

        write_set(dir.path(), 12, 5, false);
        // A label file where the images should be: wrong magic number.
        std::fs::copy(
            dir.path().join("t10k-labels-idx1-ubyte"),
            dir.path().join("t10k-images-idx3-ubyte"),
        )
        .unwrap();
        let err = load_idx_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("t10k-images") && err.contains("magic"),
            "{err}"
        );
    }

    #[test]
    fn reads_debians_fashion_mnist_when_installed() {
        let dir = Path::new(FASHION_MNIST_DIR);
        if !dir.is_dir() {
            eprintln!("skipped: {FASHION_MNIST_DIR} is not installed");
            return;
        }
        let set = load_idx_dir(dir).unwrap();
        assert_eq!((set.train.len(), set.test.len()), (60_000, 10_000));
        assert_eq!(set.train.label_histogram(), vec![6_000; 10]);
    }
}
