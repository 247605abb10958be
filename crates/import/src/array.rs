//! One array of an import, whatever file it came from, read as a stream of rows of `f32`:
//! instance `i`'s row holds every value of `array[i, ...]`, flattened in C order.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::dtype::{Dtype, to_f32};
use crate::error::ImportError;

/// Bytes read at once when streaming (about 8 MiB of elements).
const CHUNK_BYTES: usize = 8 << 20;

/// What an array holds, from its file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayInfo {
    pub(crate) dtype: Dtype,
    pub(crate) big_endian: bool,
    pub(crate) fortran_order: bool,
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
}

impl ArrayInfo {
    /// Rows (the first dimension; 1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Values per row: the product of the other dimensions.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The element type's name, e.g. `float32`.
    pub fn dtype_name(&self) -> String {
        self.dtype.name()
    }

    /// Whether the elements are floating point.
    pub fn is_float(&self) -> bool {
        self.dtype.is_float()
    }

    /// Bytes of data the shape needs, or `None` when that overflows.
    pub(crate) fn data_bytes(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(self.dtype.size() as u64, |total, &d| {
                total.checked_mul(d as u64)
            })
    }
}

/// An array's rows, streamed: each [`next_chunk`](Self::next_chunk) converts the next rows
/// to `f32`, so memory stays bounded however large the array is (a Fortran-order array is
/// read whole, since its rows are not contiguous).
pub struct RowChunks {
    info: ArrayInfo,
    reader: Box<dyn Read + Send>,
    path: PathBuf,
    tensor: String,
    rows_done: usize,
    bytes: Vec<u8>,
    values: Vec<f32>,
    /// A Fortran-order array, read whole and laid out in C order.
    whole: Option<Vec<f32>>,
}

impl RowChunks {
    /// Rows of `info` read from `reader`, positioned at the first data byte; `path` and
    /// `tensor` name them in errors.
    pub(crate) fn new(
        info: ArrayInfo,
        reader: Box<dyn Read + Send>,
        path: &Path,
        tensor: &str,
    ) -> Self {
        Self {
            info,
            reader,
            path: path.to_owned(),
            tensor: tensor.to_owned(),
            rows_done: 0,
            bytes: Vec::new(),
            values: Vec::new(),
            whole: None,
        }
    }

    /// What the array holds.
    pub fn info(&self) -> &ArrayInfo {
        &self.info
    }

    fn invalid(&self, reason: String) -> ImportError {
        ImportError::invalid(&self.path, Some(&self.tensor), reason)
    }

    /// Reads `count` elements from the stream into `self.values` (replacing them).
    fn read_elements(&mut self, count: usize) -> Result<(), ImportError> {
        let size = self.info.dtype.size();
        self.bytes.resize(count * size, 0);
        if let Err(err) = self.reader.read_exact(&mut self.bytes) {
            return Err(if err.kind() == std::io::ErrorKind::UnexpectedEof {
                self.invalid(format!(
                    "truncated: the header promises {} rows of {} values, the data ends before \
                     row {}",
                    self.info.rows(),
                    self.info.row_len(),
                    self.rows_done + count / self.info.row_len().max(1) + 1
                ))
            } else {
                ImportError::io(&self.path, err)
            });
        }
        self.values.clear();
        to_f32(
            &self.bytes,
            self.info.dtype,
            self.info.big_endian,
            &mut self.values,
        );
        Ok(())
    }

    /// Refuses NaN and infinities in `values`, which start at row `first_row`.
    fn check_finite(&self, values: &[f32], first_row: usize) -> Result<(), ImportError> {
        // A branch-free pass the compiler vectorizes; the position only when one is found.
        let all_finite = values
            .chunks(4096)
            .all(|chunk| chunk.iter().fold(true, |ok, v| ok & v.is_finite()));
        if all_finite {
            return Ok(());
        }
        match values.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(at) => {
                let row_len = self.info.row_len().max(1);
                Err(self.invalid(format!(
                    "instance {} holds {} at unit {}: activations must be finite",
                    first_row + at / row_len,
                    values.get(at).copied().unwrap_or(f32::NAN),
                    at % row_len
                )))
            }
        }
    }

    fn read_whole_fortran(&mut self) -> Result<(), ImportError> {
        let rows = self.info.rows();
        let row_len = self.info.row_len();
        self.read_elements(rows * row_len)?;
        // Fortran order: the first index varies fastest. The rest of a row, `shape[1..]`, is
        // also laid out first-index-fastest; `c_of[j]` is where its j-th value goes in C order.
        let rest = self.info.shape.get(1..).unwrap_or(&[]);
        let mut c_of = vec![0usize; row_len];
        let mut index = vec![0usize; rest.len()];
        for slot in &mut c_of {
            *slot = index.iter().zip(rest).fold(0, |acc, (&i, &d)| acc * d + i);
            for (i, &d) in index.iter_mut().zip(rest) {
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
        let mut whole = vec![0.0f32; rows * row_len];
        for (column, &c) in self.values.chunks_exact(rows.max(1)).zip(&c_of) {
            for (row, value) in column.iter().enumerate() {
                if let Some(slot) = whole.get_mut(row * row_len + c) {
                    *slot = *value;
                }
            }
        }
        self.whole = Some(whole);
        // Only the C-order copy stays.
        self.bytes = Vec::new();
        self.values = Vec::new();
        Ok(())
    }

    /// The next rows, at most as many as fit in about 8 MiB (and at least one), converted to
    /// `f32` and checked finite when the array is floating point; `None` after the last row.
    pub fn next_chunk(&mut self) -> Result<Option<(usize, &[f32])>, ImportError> {
        let rows = self.info.rows();
        let row_len = self.info.row_len();
        if self.rows_done >= rows {
            return Ok(None);
        }
        if self.info.fortran_order && self.info.shape.len() > 1 {
            if self.whole.is_none() {
                self.read_whole_fortran()?;
            }
            let first_row = self.rows_done;
            self.rows_done = rows;
            let whole = self.whole.as_deref().unwrap_or(&[]);
            if self.info.dtype.is_float() {
                self.check_finite(whole, first_row)?;
            }
            return Ok(Some((first_row, self.whole.as_deref().unwrap_or(&[]))));
        }
        let row_bytes = (row_len * self.info.dtype.size()).max(1);
        let take = (CHUNK_BYTES / row_bytes).clamp(1, rows - self.rows_done);
        self.read_elements(take * row_len)?;
        let first_row = self.rows_done;
        self.rows_done += take;
        if self.info.dtype.is_float() {
            self.check_finite(&self.values, first_row)?;
        }
        Ok(Some((first_row, &self.values)))
    }

    /// Every value, in C order.
    pub fn read_all(mut self) -> Result<Vec<f32>, ImportError> {
        let mut all = Vec::new();
        while let Some((_, values)) = self.next_chunk()? {
            all.extend_from_slice(values);
        }
        Ok(all)
    }
}
