//! Datasets ready for training: `f32` features, labels, a train/validation split (0.1
//! validation, as in the APD paper) and a fixed held-out test set.

use std::path::PathBuf;

use actiscope_analysis::rng::SplitMix64;

use super::idx::{FASHION_MNIST_DIR, load_idx_dir};
use super::synthetic::{Planar, generate};
use super::{DataError, ImageSet, builtin_digits};

/// Share of the training data held out for validation.
pub const VALIDATION_SHARE: f64 = 0.1;
/// Share of the built-in digits held out as the fixed test set (they ship no test split).
pub const BUILTIN_TEST_SHARE: f64 = 0.1;
/// Points generated for each planar set (train + validation), and for its test set.
pub const PLANAR_TRAIN_POINTS: usize = 2_000;
/// Points in each planar test set.
pub const PLANAR_TEST_POINTS: usize = 1_000;
/// Seed of every fixed held-out split: the same test set whatever the run's seed.
const TEST_SPLIT_SEED: u64 = 0x7e57;

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum DatasetSpec {
    /// The built-in 10,000 MNIST digits.
    Digits,
    /// Fashion-MNIST from Debian's `dataset-fashion-mnist`.
    FashionMnist,
    /// A seeded planar set.
    Planar(Planar),
    /// A directory with the four standard IDX files.
    IdxDir(PathBuf),
}

impl DatasetSpec {
    /// Parses a command-line name: `digits`, `fashion-mnist`, `moons`, `circles`, `spirals`,
    /// `xor`, `blobs`, or a directory path.
    pub fn parse(text: &str) -> Result<Self, DataError> {
        Ok(match text {
            "digits" => Self::Digits,
            "fashion-mnist" => Self::FashionMnist,
            "moons" => Self::Planar(Planar::Moons),
            "circles" => Self::Planar(Planar::Circles),
            "spirals" => Self::Planar(Planar::Spirals),
            "xor" => Self::Planar(Planar::Xor),
            "blobs" => Self::Planar(Planar::Blobs),
            path if std::path::Path::new(path).is_dir() => Self::IdxDir(PathBuf::from(path)),
            other => {
                return Err(DataError::Corrupt {
                    source_name: format!("dataset `{other}`"),
                    reason: "unknown: use digits, fashion-mnist, moons, circles, spirals, xor, \
                             blobs, or a directory holding the four IDX files"
                        .to_owned(),
                });
            }
        })
    }

    /// Name for display.
    pub fn name(&self) -> String {
        match self {
            Self::Digits => "digits".to_owned(),
            Self::FashionMnist => "fashion-mnist".to_owned(),
            Self::Planar(p) => p.name().to_owned(),
            Self::IdxDir(dir) => dir.display().to_string(),
        }
    }
}

/// A labelled set of instances, features row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Values per instance.
    pub dim: usize,
    /// `len * dim` features. Images: pixel / 255, in [0, 1]. Planar sets: raw coordinates.
    pub features: Vec<f32>,
    /// One label per instance.
    pub labels: Vec<u32>,
    /// `(rows, cols)` when the instances are images.
    pub image_shape: Option<(usize, usize)>,
}

impl Dataset {
    /// Number of instances.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether it holds no instance.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features of one instance.
    pub fn row(&self, index: usize) -> Option<&[f32]> {
        self.features.get(index * self.dim..(index + 1) * self.dim)
    }

    /// The instances at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let mut features = Vec::with_capacity(indices.len() * self.dim);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if let (Some(row), Some(&label)) = (self.row(i), self.labels.get(i)) {
                features.extend_from_slice(row);
                labels.push(label);
            }
        }
        Self {
            dim: self.dim,
            features,
            labels,
            image_shape: self.image_shape,
        }
    }

    fn from_images(images: &ImageSet) -> Self {
        Self {
            dim: images.rows * images.cols,
            features: images
                .pixels
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect(),
            labels: images.labels.iter().map(|&l| u32::from(l)).collect(),
            image_shape: Some((images.rows, images.cols)),
        }
    }
}

/// Train, validation and test sets of one dataset.
#[derive(Debug, Clone)]
pub struct Splits {
    /// What was loaded.
    pub spec: DatasetSpec,
    /// Number of classes (largest label + 1).
    pub classes: usize,
    /// Training set.
    pub train: Dataset,
    /// Validation set (0.1 of the training data, drawn with the run's seed).
    pub validation: Dataset,
    /// Fixed held-out test set.
    pub test: Dataset,
}

impl Splits {
    /// SHA-256 (hex) of the data a run saw: each split's name, shape, features (little-endian
    /// `f32`) and labels. Two runs with the same hash trained and were evaluated on the same
    /// data, whatever the file paths said.
    pub fn sha256_hex(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for (name, set) in [
            ("train", &self.train),
            ("validation", &self.validation),
            ("test", &self.test),
        ] {
            hasher.update(name.as_bytes());
            hasher.update((set.len() as u64).to_le_bytes());
            hasher.update((set.dim as u64).to_le_bytes());
            for v in &set.features {
                hasher.update(v.to_le_bytes());
            }
            for l in &set.labels {
                hasher.update(l.to_le_bytes());
            }
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Loads `spec` and splits it; the validation split depends on `seed`, the test set never does.
pub fn load_splits(spec: &DatasetSpec, seed: u64) -> Result<Splits, DataError> {
    let (train_and_validation, test) = match spec {
        DatasetSpec::Digits => {
            let all = Dataset::from_images(&builtin_digits()?);
            let (test_idx, rest_idx) =
                split_indices(all.len(), BUILTIN_TEST_SHARE, TEST_SPLIT_SEED);
            (all.subset(&rest_idx), all.subset(&test_idx))
        }
        DatasetSpec::FashionMnist => {
            let dir = std::path::Path::new(FASHION_MNIST_DIR);
            if !dir.is_dir() {
                return Err(DataError::NotInstalled {
                    dataset: "Fashion-MNIST",
                    package: "dataset-fashion-mnist",
                    dir: FASHION_MNIST_DIR,
                });
            }
            let set = load_idx_dir(dir)?;
            (
                Dataset::from_images(&set.train),
                Dataset::from_images(&set.test),
            )
        }
        DatasetSpec::IdxDir(dir) => {
            let set = load_idx_dir(dir)?;
            (
                Dataset::from_images(&set.train),
                Dataset::from_images(&set.test),
            )
        }
        DatasetSpec::Planar(kind) => {
            let planar = |n, seed| {
                let (features, labels) = generate(*kind, n, seed);
                Dataset {
                    dim: 2,
                    features,
                    labels,
                    image_shape: None,
                }
            };
            (
                planar(PLANAR_TRAIN_POINTS, seed),
                planar(PLANAR_TEST_POINTS, TEST_SPLIT_SEED),
            )
        }
    };
    if train_and_validation.len() < 2 || test.is_empty() {
        return Err(DataError::Corrupt {
            source_name: spec.name(),
            reason: "too few instances to split into train, validation and test".to_owned(),
        });
    }
    let (validation_idx, train_idx) =
        split_indices(train_and_validation.len(), VALIDATION_SHARE, seed);
    let classes = train_and_validation
        .labels
        .iter()
        .chain(&test.labels)
        .max()
        .map_or(0, |&m| m as usize + 1);
    Ok(Splits {
        spec: spec.clone(),
        classes,
        train: train_and_validation.subset(&train_idx),
        validation: train_and_validation.subset(&validation_idx),
        test,
    })
}

/// Shuffles `0..n` with `seed` and cuts off `share` of it: (held out, rest). Both sorted.
fn split_indices(n: usize, share: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let held = ((n as f64 * share).round() as usize).clamp(1, n.saturating_sub(1).max(1));
    let (held_out, rest) = order.split_at(held.min(n));
    let (mut held_out, mut rest) = (held_out.to_vec(), rest.to_vec());
    held_out.sort_unstable();
    rest.sort_unstable();
    (held_out, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fashion_mnist_says_which_package_to_install() {
        match load_splits(&DatasetSpec::FashionMnist, 0) {
            Ok(_) => assert!(std::path::Path::new(FASHION_MNIST_DIR).is_dir()),
            Err(err) => {
                let message = err.to_string();
                if !std::path::Path::new(FASHION_MNIST_DIR).is_dir() {
                    assert!(
                        message.contains("apt-get install dataset-fashion-mnist"),
                        "{message}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_data_hash_names_exactly_the_data() {
        let moons = DatasetSpec::Planar(Planar::Moons);
        let a = load_splits(&moons, 1).unwrap().sha256_hex();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, load_splits(&moons, 1).unwrap().sha256_hex());
        assert_ne!(a, load_splits(&moons, 2).unwrap().sha256_hex());
        let circles = DatasetSpec::Planar(Planar::Circles);
        assert_ne!(a, load_splits(&circles, 1).unwrap().sha256_hex());
    }

    #[test]
    fn builtin_digits_split_into_fixed_test_and_seeded_validation() {
        let a = load_splits(&DatasetSpec::Digits, 1).unwrap();
        let b = load_splits(&DatasetSpec::Digits, 2).unwrap();
        assert_eq!(
            (a.train.len(), a.validation.len(), a.test.len()),
            (8_100, 900, 1_000)
        );
        assert_eq!(a.classes, 10);
        assert_eq!(a.test, b.test, "the test set must not depend on the seed");
        assert_ne!(a.validation.labels, b.validation.labels);
        assert_eq!(a.train.dim, 784);
        assert!(a.train.features.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(a.train.image_shape, Some((28, 28)));
    }

    #[test]
    fn planar_sets_and_names() {
        let s = load_splits(&DatasetSpec::parse("moons").unwrap(), 3).unwrap();
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (1_800, 200, 1_000)
        );
        assert_eq!((s.classes, s.train.dim), (2, 2));
        let err = DatasetSpec::parse("imagenet").unwrap_err().to_string();
        assert!(err.contains("imagenet") && err.contains("unknown"), "{err}");
    }
}
