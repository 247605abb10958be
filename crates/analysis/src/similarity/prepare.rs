//! The input checks and the layouts the measures start from. The two matrices must have the
//! same instances and finite values; one pass over each finds its live neurons and their
//! means ([`Columns`]); each neuron is then centred (optionally, always in `f64`) and dead
//! neurons dropped and counted: row by row into a caller's `f32` buffer, scaled (CKA streams
//! blocks of rows), into one row-major `f64` matrix (CKA with few instances), or into a
//! column-major `f64` faer matrix (the CCA family's QR).

use faer::Mat;

use super::{Operand, SimilarityError, parallel};
use crate::Matrix;

/// Rows transposed together into the column-major layout: a block of the row-major input
/// stays in cache while its columns are written out. 16 rows took 0.0022 s for 5,000 x 512
/// where 64 took 0.0029 s (and centring 64 rows row-major, then faer's transposing copy,
/// 0.0052 s).
const BLOCK_ROWS: usize = 16;

/// One matrix's neurons as one pass over it found them.
#[derive(Debug, Clone)]
pub(super) struct Columns {
    /// The column of each live neuron, in order.
    live: Vec<usize>,
    /// The mean of each live neuron (0 without centring), as `live`.
    means: Vec<f64>,
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
    #[inline(always)]
    pub fn centre_row_f32(&self, row: &[f32], scale: f64, out: &mut [f32]) {
        if self.dead == 0 {
            for ((o, &v), &mean) in out.iter_mut().zip(row).zip(&self.means) {
                *o = ((f64::from(v) - mean) * scale) as f32;
            }
        } else {
            for ((o, &column), &mean) in out.iter_mut().zip(&self.live).zip(&self.means) {
                *o = row
                    .get(column)
                    .map_or(0.0, |&v| ((f64::from(v) - mean) * scale) as f32);
            }
        }
    }

    /// Writes the live values of `row` minus their means into `out` (`live()` long).
    #[inline(always)]
    pub fn centre_row(&self, row: &[f32], out: &mut [f64]) {
        if self.dead == 0 {
            for ((o, &v), &mean) in out.iter_mut().zip(row).zip(&self.means) {
                *o = f64::from(v) - mean;
            }
        } else {
            for ((o, &column), &mean) in out.iter_mut().zip(&self.live).zip(&self.means) {
                *o = row.get(column).map_or(0.0, |&v| f64::from(v) - mean);
            }
        }
    }
}

/// Runs `kernel` compiled for AVX2 and FMA where the CPU has them (checked at run time; 4
/// `f64` lanes a register where the SSE2 baseline has 2), as it is otherwise. Only what is
/// inlined into the kernel's `call` is compiled that way: a closure's body need not be (a
/// struct whose `call` and callees are `#[inline(always)]` is, like [`CentreRows`]: with a
/// closure, CKA of a 5,000 x 512 pair took 0.0365 s, with the struct 0.0288 s).
#[inline(always)]
pub(super) fn wide<K: pulp::NullaryFnOnce>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(kernel);
    }
    kernel.call()
}

/// Column sums, minima and maxima over rows of a matrix (`rows`, each as long as `sums`):
/// a kernel for [`wide`]. Three simple loops per row vectorise; the comparisons (not
/// `f32::min`) skip NaN handling, which the sums take care of.
struct ScanRows<'a> {
    rows: &'a [f32],
    sums: &'a mut [f64],
    low: &'a mut [f32],
    high: &'a mut [f32],
}

impl pulp::NullaryFnOnce for ScanRows<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        for values in self.rows.chunks_exact(self.sums.len().max(1)) {
            for (sum, &v) in self.sums.iter_mut().zip(values) {
                *sum += f64::from(v);
            }
            for (lo, &v) in self.low.iter_mut().zip(values) {
                *lo = if v < *lo { v } else { *lo };
            }
            for (hi, &v) in self.high.iter_mut().zip(values) {
                *hi = if v > *hi { v } else { *hi };
            }
        }
    }
}

/// Rows of a matrix (`rows`, each `cols` long) centred by `columns` and times `scale` into
/// `out` as `f32`, row after row (`live()` values each): a kernel for [`wide`].
pub(super) struct CentreRows<'a> {
    pub columns: &'a Columns,
    pub rows: &'a [f32],
    pub cols: usize,
    pub scale: f64,
    pub out: &'a mut [f32],
}

impl pulp::NullaryFnOnce for CentreRows<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let width = self.columns.live().max(1);
        for (row, dst) in self
            .rows
            .chunks_exact(self.cols.max(1))
            .zip(self.out.chunks_exact_mut(width))
        {
            self.columns.centre_row_f32(row, self.scale, dst);
        }
    }
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
    // Reading the two matrices on two threads when they are large; refused in order.
    let work = (x.as_slice().len() + y.as_slice().len()) as f64;
    let (first, second) = parallel::join(
        work,
        || scan(x, Operand::First, centre),
        || scan(y, Operand::Second, centre),
    );
    let (first, second) = (first?, second?);
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
    wide(ScanRows {
        rows: matrix.as_slice(),
        sums: &mut sums,
        low: &mut low,
        high: &mut high,
    });
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
    let mut means = Vec::with_capacity(cols);
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
            live.push(column);
            means.push(mean);
            max_abs = max_abs.max(hi - mean).max(mean - lo);
        }
    }
    Ok(Columns {
        dead: cols - live.len(),
        live,
        means,
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

/// Writes the live columns of `matrix`, minus their means, into `z` (`instances x live`,
/// column-major), a block of rows at a time.
pub(super) fn write_columns(matrix: &Matrix, columns: &Columns, z: &mut Mat<f64>) {
    let cols = matrix.cols();
    if cols == 0 {
        return;
    }
    for (block, rows) in matrix.as_slice().chunks(BLOCK_ROWS * cols).enumerate() {
        let start = block * BLOCK_ROWS;
        let len = rows.len() / cols;
        for (out, (&column, &mean)) in columns.live.iter().zip(&columns.means).enumerate() {
            let Some(dst) = z.col_as_slice_mut(out).get_mut(start..start + len) else {
                continue;
            };
            for (d, row) in dst.iter_mut().zip(rows.chunks_exact(cols)) {
                *d = row.get(column).map_or(0.0, |&v| f64::from(v) - mean);
            }
        }
    }
}
