//! The input checks and the layouts the measures start from. The two matrices must have the
//! same instances and finite values; one pass over each finds its live neurons and their
//! means ([`Columns`]); each neuron is then centred (optionally, always in `f64`) and dead
//! neurons dropped and counted: row by row into a caller's `f32` buffer, scaled (CKA streams
//! blocks of rows), into one row-major `f64` matrix (CKA with few instances), or with both
//! matrices side by side in one column-major `f64` faer matrix (the CCA family's QR).

use faer::Mat;

use super::{Operand, SimilarityError};
use crate::Matrix;

/// Rows transposed together into the column-major layout: a block of the row-major input
/// stays in cache while its columns are written out.
const BLOCK_ROWS: usize = 64;

/// One matrix's neurons as one pass over it found them.
#[derive(Debug, Clone)]
pub(super) struct Columns {
    /// `(column, mean)` of each live neuron, in column order; the mean is 0 without
    /// centring.
    live: Vec<(usize, f64)>,
    /// Dead neurons: constant (centred) or zero everywhere (not centred).
    dead: usize,
    /// The largest magnitude of a live neuron's (centred) value.
    max_abs: f64,
}

impl Columns {
    /// Live neurons.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Dead neurons.
    pub fn dead(&self) -> usize {
        self.dead
    }

    /// The largest magnitude of a live neuron's (centred) value; 0 when none is live.
    pub fn max_abs(&self) -> f64 {
        self.max_abs
    }

    /// Writes the live values of `row` minus their means, times `scale`, into `out`
    /// (`live()` long) as `f32`: the centring is done in `f64`, the result rounded once.
    pub fn centre_row_f32(&self, row: &[f32], scale: f64, out: &mut [f32]) {
        if self.dead == 0 {
            for ((o, &v), &(_, mean)) in out.iter_mut().zip(row).zip(&self.live) {
                *o = ((f64::from(v) - mean) * scale) as f32;
            }
        } else {
            for (o, &(column, mean)) in out.iter_mut().zip(&self.live) {
                *o = row
                    .get(column)
                    .map_or(0.0, |&v| ((f64::from(v) - mean) * scale) as f32);
            }
        }
    }

    /// Writes the live values of `row` minus their means into `out` (`live()` long).
    pub fn centre_row(&self, row: &[f32], out: &mut [f64]) {
        if self.dead == 0 {
            for ((o, &v), &(_, mean)) in out.iter_mut().zip(row).zip(&self.live) {
                *o = f64::from(v) - mean;
            }
        } else {
            for (o, &(column, mean)) in out.iter_mut().zip(&self.live) {
                *o = row.get(column).map_or(0.0, |&v| f64::from(v) - mean);
            }
        }
    }
}

/// Both matrices' live neurons side by side, column-major.
#[derive(Debug)]
pub(super) struct Stacked {
    /// `instances x (live.0 + live.1)`: the first matrix's live neurons, then the second's.
    pub z: Mat<f64>,
    /// Live neurons of the first and the second matrix.
    pub live: (usize, usize),
    /// Dead neurons dropped from the first and the second matrix.
    pub dead: (usize, usize),
}

/// Refuses matrices of different instance counts, or fewer than `needed` instances;
/// returns the instance count.
pub(super) fn check_instances(
    x: &Matrix,
    y: &Matrix,
    needed: usize,
) -> Result<usize, SimilarityError> {
    if x.rows() != y.rows() {
        return Err(SimilarityError::InstanceMismatch {
            first: x.rows(),
            second: y.rows(),
        });
    }
    if x.rows() < needed {
        return Err(SimilarityError::TooFewInstances {
            instances: x.rows(),
            needed,
        });
    }
    Ok(x.rows())
}

/// Scans both matrices (the first offending value of the first matrix, then of the second,
/// in row-major order, is refused) and refuses a side without a live neuron.
pub(super) fn scan_pair(
    x: &Matrix,
    y: &Matrix,
    centre: bool,
) -> Result<(Columns, Columns), SimilarityError> {
    let first = scan(x, Operand::First, centre)?;
    let second = scan(y, Operand::Second, centre)?;
    for (operand, columns) in [(Operand::First, &first), (Operand::Second, &second)] {
        if columns.live() == 0 {
            return Err(SimilarityError::NoVariance { operand });
        }
    }
    Ok((first, second))
}

/// One pass: column sums, extremes and finiteness.
pub(super) fn scan(
    matrix: &Matrix,
    operand: Operand,
    centre: bool,
) -> Result<Columns, SimilarityError> {
    let cols = matrix.cols();
    let mut sums = vec![0.0f64; cols];
    let mut low = vec![f32::INFINITY; cols];
    let mut high = vec![f32::NEG_INFINITY; cols];
    // Three simple loops per row vectorise; the comparisons (not `f32::min`) skip NaN
    // handling, which the sums below take care of.
    for values in matrix.iter_rows() {
        for (sum, &v) in sums.iter_mut().zip(values) {
            *sum += f64::from(v);
        }
        for (lo, &v) in low.iter_mut().zip(values) {
            *lo = if v < *lo { v } else { *lo };
        }
        for (hi, &v) in high.iter_mut().zip(values) {
            *hi = if v > *hi { v } else { *hi };
        }
    }
    // A sum of finite `f32` values cannot overflow `f64`, so only NaN or an infinity makes
    // a sum non-finite; then find the first one.
    if sums.iter().any(|s| !s.is_finite()) {
        for (row, values) in matrix.iter_rows().enumerate() {
            if let Some((column, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite())
            {
                return Err(SimilarityError::NotFinite {
                    operand,
                    row,
                    column,
                    value,
                });
            }
        }
    }
    let n = matrix.rows().max(1) as f64;
    let mut live = Vec::with_capacity(cols);
    let mut max_abs = 0.0f64;
    for (column, ((&sum, &lo), &hi)) in sums.iter().zip(&low).zip(&high).enumerate() {
        // Centred, a neuron is dead when constant; otherwise when zero everywhere (-0.0
        // equals 0.0, as it should).
        let (lo, hi) = (f64::from(lo), f64::from(hi));
        let mean = if centre { sum / n } else { 0.0 };
        let is_live = if centre {
            hi > lo
        } else {
            hi > 0.0 || lo < 0.0
        };
        if is_live {
            live.push((column, mean));
            max_abs = max_abs.max(hi - mean).max(mean - lo);
        }
    }
    Ok(Columns {
        dead: cols - live.len(),
        live,
        max_abs,
    })
}

/// The live neurons of `matrix`, centred, row-major (`instances x live`).
pub(super) fn row_major(matrix: &Matrix, columns: &Columns) -> Vec<f64> {
    let width = columns.live();
    let mut out = vec![0.0; matrix.rows() * width];
    if width > 0 {
        for (row, dst) in matrix.iter_rows().zip(out.chunks_exact_mut(width)) {
            columns.centre_row(row, dst);
        }
    }
    out
}

/// Checks both matrices and stacks their live neurons side by side, column-major, centred
/// when `centre` is set. Does not check the instance count beyond equality.
pub(super) fn stack(x: &Matrix, y: &Matrix, centre: bool) -> Result<Stacked, SimilarityError> {
    let instances = check_instances(x, y, 0)?;
    let (first, second) = scan_pair(x, y, centre)?;
    let live = (first.live(), second.live());
    let mut z = Mat::<f64>::zeros(instances, live.0 + live.1);
    write_columns(x, &first, &mut z, 0);
    write_columns(y, &second, &mut z, live.0);
    Ok(Stacked {
        z,
        live,
        dead: (first.dead, second.dead),
    })
}

/// Writes the live columns of `matrix`, minus their means, into columns `offset..` of `z`,
/// a block of rows at a time.
pub(super) fn write_columns(matrix: &Matrix, columns: &Columns, z: &mut Mat<f64>, offset: usize) {
    let cols = matrix.cols();
    if cols == 0 {
        return;
    }
    for (block, rows) in matrix.as_slice().chunks(BLOCK_ROWS * cols).enumerate() {
        let start = block * BLOCK_ROWS;
        let len = rows.len() / cols;
        for (out, &(column, mean)) in columns.live.iter().enumerate() {
            let Some(dst) = z.col_as_slice_mut(offset + out).get_mut(start..start + len) else {
                continue;
            };
            for (d, row) in dst.iter_mut().zip(rows.chunks_exact(cols)) {
                *d = row.get(column).map_or(0.0, |&v| f64::from(v) - mean);
            }
        }
    }
}
