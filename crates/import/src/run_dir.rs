//! A run directory: its spec, labels and inputs read when opened, and its epochs checked
//! (headers only) and read (streamed) on demand.

use std::path::{Path, PathBuf};

use crate::array::{ArrayInfo, RowChunks};
use crate::error::ImportError;
use crate::layout::{self, EpochEntry, EpochFormat, FINISHED_MARKER};
use crate::npy;
use crate::spec::{DEFAULT_PROBE, RunSpec};
use crate::tensors::TensorFile;

/// The inputs of the first [`RunDir::probe`] instances, for the inspector and the lenses.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// `N x H x W` images, values as stored (`[0, 1]` floats or `0..=255`).
    Images {
        /// Height.
        rows: usize,
        /// Width.
        cols: usize,
        /// `probe x rows x cols` values, row-major.
        values: Vec<f32>,
    },
    /// `N x D` vectors.
    Vectors {
        /// Values per instance.
        dim: usize,
        /// `probe x dim` values, row-major.
        values: Vec<f32>,
    },
}

/// What an epoch holds besides its layers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochExtras {
    /// Predicted class of every instance.
    pub predictions: Option<Vec<u32>>,
    /// Loss of every instance.
    pub losses: Option<Vec<f32>>,
}

/// An opened run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    spec: RunSpec,
    labels: Vec<u32>,
    inputs: Option<Inputs>,
}

/// An epoch's tensors, whatever its format.
enum Source {
    Tensors(TensorFile),
    Npz(PathBuf),
    Folder(PathBuf),
}

impl Source {
    fn open(entry: &EpochEntry) -> Result<Self, ImportError> {
        Ok(match entry.format {
            EpochFormat::Safetensors => Self::Tensors(TensorFile::open(&entry.path)?),
            EpochFormat::Npz => Self::Npz(entry.path.clone()),
            EpochFormat::NpyFolder => Self::Folder(entry.path.clone()),
        })
    }

    /// Where tensor `name` would be, for messages.
    fn place(&self, name: &str) -> PathBuf {
        match self {
            Self::Tensors(file) => file.path().to_owned(),
            Self::Npz(path) => path.clone(),
            Self::Folder(dir) => dir.join(format!("{name}.npy")),
        }
    }

    /// What tensor `name` holds, reading as little as the format allows (an `.npz` entry's
    /// header only, not its whole data).
    fn info(&self, name: &str) -> Result<Option<ArrayInfo>, ImportError> {
        match self {
            Self::Npz(path) => npy::npz_info(path, name),
            _ => Ok(self.tensor(name)?.map(|chunks| chunks.info().clone())),
        }
    }

    fn tensor(&self, name: &str) -> Result<Option<RowChunks>, ImportError> {
        match self {
            Self::Tensors(file) => file.open_tensor(name),
            Self::Npz(path) => npy::open_npz(path, name),
            Self::Folder(dir) => {
                let path = dir.join(format!("{name}.npy"));
                if path.is_file() {
                    npy::open(&path, name).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }
}

/// Reads a whole 1-D array of `n` integers in `0..limit` (when given).
fn integers(
    chunks: RowChunks,
    n: usize,
    limit: Option<usize>,
    path: &Path,
    name: &str,
) -> Result<Vec<u32>, ImportError> {
    let invalid = |reason: String| ImportError::invalid(path, Some(name), reason);
    let info = chunks.info().clone();
    if info.shape.len() != 1 || info.is_float() {
        return Err(invalid(format!(
            "must be {n} integers (1-D), not shape {:?} of {}",
            info.shape,
            info.dtype_name()
        )));
    }
    if info.rows() != n {
        return Err(invalid(format!(
            "holds {} values but the run has {n} instances",
            info.rows()
        )));
    }
    let values = chunks.read_all()?;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ok = v >= 0.0 && limit.is_none_or(|l| (v as usize) < l);
            if ok {
                Ok(v as u32)
            } else {
                Err(invalid(format!(
                    "instance {i} has {v}, outside 0..{}",
                    limit.map_or_else(|| "2^24".to_owned(), |l| l.to_string())
                )))
            }
        })
        .collect()
}

impl RunDir {
    /// Opens the run directory `root`: reads and checks `run.toml`, `labels.npy` and, when
    /// present, `inputs.npy` (its first [`probe`](Self::probe) instances).
    pub fn open(root: &Path) -> Result<Self, ImportError> {
        let spec_path = root.join("run.toml");
        let text =
            std::fs::read_to_string(&spec_path).map_err(|e| ImportError::io(&spec_path, e))?;
        let spec = RunSpec::parse(&text, &spec_path)?;
        let labels_path = root.join("labels.npy");
        let labels_array = npy::open(&labels_path, "labels")?;
        let n = labels_array.info().rows();
        if n == 0 {
            return Err(ImportError::invalid(
                &labels_path,
                Some("labels"),
                "holds no instance",
            ));
        }
        let classes = spec.classes.as_ref().map(Vec::len);
        let labels = integers(labels_array, n, classes, &labels_path, "labels")?;
        let mut run = Self {
            root: root.to_owned(),
            spec,
            labels,
            inputs: None,
        };
        let inputs_path = root.join("inputs.npy");
        if inputs_path.exists() {
            run.inputs = Some(run.read_inputs(&inputs_path)?);
        }
        Ok(run)
    }

    fn read_inputs(&self, path: &Path) -> Result<Inputs, ImportError> {
        let mut chunks = npy::open(path, "inputs")?;
        let info = chunks.info().clone();
        let invalid = |reason: String| ImportError::invalid(path, Some("inputs"), reason);
        if info.rows() != self.instances() {
            return Err(invalid(format!(
                "holds {} instances but labels.npy holds {}",
                info.rows(),
                self.instances()
            )));
        }
        let probe = self.probe();
        let mut values = Vec::with_capacity(probe * info.row_len());
        while values.len() < probe * info.row_len() {
            let Some((_, chunk)) = chunks.next_chunk()? else {
                break;
            };
            values.extend_from_slice(chunk);
        }
        values.truncate(probe * info.row_len());
        match info.shape.as_slice() {
            [_, rows, cols] => Ok(Inputs::Images {
                rows: *rows,
                cols: *cols,
                values,
            }),
            [_, dim] => Ok(Inputs::Vectors { dim: *dim, values }),
            other => Err(invalid(format!(
                "must be N x H x W images or N x D vectors, not shape {other:?}"
            ))),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What `run.toml` says.
    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }

    /// The label of every instance.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Instances (N).
    pub fn instances(&self) -> usize {
        self.labels.len()
    }

    /// Instances kept for the per-instance lenses: the first `probe` of `run.toml`, or
    /// [`DEFAULT_PROBE`], or all when fewer.
    pub fn probe(&self) -> usize {
        self.spec
            .probe
            .unwrap_or(DEFAULT_PROBE)
            .min(self.instances())
    }

    /// The inputs of the first [`probe`](Self::probe) instances, when `inputs.npy` exists.
    pub fn inputs(&self) -> Option<&Inputs> {
        self.inputs.as_ref()
    }

    /// Classes: as `run.toml` names them, else one more than the largest label.
    pub fn class_count(&self) -> usize {
        self.spec.classes.as_ref().map_or_else(
            || self.labels.iter().max().map_or(1, |&m| m as usize + 1),
            Vec::len,
        )
    }

    /// The finished epochs in the directory, by number.
    pub fn epochs(&self) -> Result<Vec<EpochEntry>, ImportError> {
        layout::epochs(&self.root)
    }

    /// Whether the writer has said it is done (the `finished` file exists).
    pub fn finished(&self) -> bool {
        self.root.join(FINISHED_MARKER).exists()
    }

    /// Checks an epoch's headers without reading its data: every layer is there, with N rows
    /// of floats; `predictions` and `losses`, when present, are N values. Returns each layer's
    /// units.
    pub fn check_epoch(&self, entry: &EpochEntry) -> Result<Vec<usize>, ImportError> {
        let source = Source::open(entry)?;
        let n = self.instances();
        let mut units = Vec::with_capacity(self.spec.layers.len());
        for layer in &self.spec.layers {
            let place = source.place(layer);
            let info = source.info(layer)?.ok_or_else(|| {
                ImportError::invalid(
                    &place,
                    Some(layer),
                    format!("epoch {} has no tensor for layer {layer}", entry.number),
                )
            })?;
            units.push(check_layer(&info, n, &place, layer)?);
        }
        for (name, want_float) in [("predictions", false), ("losses", true)] {
            if let Some(info) = source.info(name)?
                && (info.shape.len() != 1 || info.rows() != n || info.is_float() != want_float)
            {
                return Err(ImportError::invalid(
                    source.place(name),
                    Some(name),
                    format!(
                        "must be {n} {} (1-D), not shape {:?} of {}",
                        if want_float { "floats" } else { "integers" },
                        info.shape,
                        info.dtype_name()
                    ),
                ));
            }
        }
        Ok(units)
    }

    /// Reads an epoch: hands every layer's rows to `on_rows(layer_idx, units, first_row,
    /// values)` in order, a bounded chunk at a time, then returns its predictions and losses.
    /// Check it with [`check_epoch`](Self::check_epoch) first for clear messages about
    /// missing layers.
    pub fn read_epoch(
        &self,
        entry: &EpochEntry,
        mut on_rows: impl FnMut(usize, usize, usize, &[f32]) -> Result<(), ImportError>,
    ) -> Result<EpochExtras, ImportError> {
        let source = Source::open(entry)?;
        let n = self.instances();
        for (layer_idx, layer) in self.spec.layers.iter().enumerate() {
            let place = source.place(layer);
            let mut chunks = source.tensor(layer)?.ok_or_else(|| {
                ImportError::invalid(&place, Some(layer), "the layer's tensor is missing")
            })?;
            let units = check_layer(chunks.info(), n, &place, layer)?;
            while let Some((first_row, values)) = chunks.next_chunk()? {
                on_rows(layer_idx, units, first_row, values)?;
            }
        }
        let classes = self.spec.classes.as_ref().map(Vec::len);
        let predictions = source
            .tensor("predictions")?
            .map(|chunks| {
                integers(
                    chunks,
                    n,
                    classes,
                    &source.place("predictions"),
                    "predictions",
                )
            })
            .transpose()?;
        let losses = match source.tensor("losses")? {
            Some(chunks) => {
                let place = source.place("losses");
                let info = chunks.info().clone();
                if info.shape.len() != 1 || info.rows() != n {
                    return Err(ImportError::invalid(
                        place,
                        Some("losses"),
                        format!("must be {n} floats (1-D), not shape {:?}", info.shape),
                    ));
                }
                Some(chunks.read_all()?)
            }
            None => None,
        };
        Ok(EpochExtras {
            predictions,
            losses,
        })
    }
}

/// Checks that a layer's tensor holds `n` rows of floats; returns its units per row.
fn check_layer(info: &ArrayInfo, n: usize, path: &Path, layer: &str) -> Result<usize, ImportError> {
    let invalid = |reason: String| ImportError::invalid(path, Some(layer), reason);
    if !info.is_float() {
        return Err(invalid(format!(
            "holds {}; activations must be floats (float16/32/64 or bfloat16)",
            info.dtype_name()
        )));
    }
    if !(2..=4).contains(&info.shape.len()) {
        return Err(invalid(format!(
            "has shape {:?}; a layer is N x units or N x C x H x W",
            info.shape
        )));
    }
    if info.rows() != n {
        return Err(invalid(format!(
            "holds {} instances but labels.npy holds {n}",
            info.rows()
        )));
    }
    if info.row_len() == 0 {
        return Err(invalid("has no units".to_owned()));
    }
    Ok(info.row_len())
}
