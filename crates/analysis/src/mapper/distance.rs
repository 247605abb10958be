//! Distance kernels for the mapper: the rows of one point set (original and mean-centred),
//! `f32`/`f64` squared distances, dot products and `f32` Gram blocks (faer).
//!
//! Neighbour searches (see `tree`, `radius`, `knn`) compute distances from the Gram identity
//! `|x - y|^2 = |x|^2 + |y|^2 - 2 x.y` on mean-centred `f32` rows, block by block, and
//! re-decide every comparison that rounding could flip with the exact `f64` distance of the
//! original rows ([`PointSet::exact_sq_dist`]), so their results equal those of a plain
//! double-precision loop. [`PointSet::tolerance_factor`] bounds that rounding.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// The rows of one point set: original rows (for exact re-checks), mean-centred `f32` rows
/// (for the Gram products) and the bounds the rounding analysis needs.
#[derive(Debug, Clone)]
pub(crate) struct PointSet {
    dim: usize,
    /// Original rows, row-major.
    original: Vec<f32>,
    /// Mean-centred rows, row-major.
    centred: Vec<f32>,
    /// Squared norms of the centred rows.
    norms: Vec<f32>,
    /// Squared norm of the mean.
    mean_sq: f32,
    /// Largest squared norm of a centred row.
    max_norm: f32,
}

impl PointSet {
    /// Gathers rows `ids` of the row-major `data` (`dim` columns). Ids past the end give
    /// zero rows (callers validate shapes first).
    pub(crate) fn gather(data: &[f32], dim: usize, ids: &[u32]) -> Self {
        let mut original = Vec::with_capacity(ids.len() * dim);
        for &id in ids {
            let start = id as usize * dim;
            match data.get(start..start + dim) {
                Some(row) => original.extend_from_slice(row),
                None => original.extend(std::iter::repeat_n(0.0, dim)),
            }
        }
        Self::from_rows(original, dim, ids.len())
    }

    /// Wraps `n` row-major `original` rows of `dim` columns (missing values read 0).
    pub(crate) fn from_rows(mut original: Vec<f32>, dim: usize, n: usize) -> Self {
        original.resize(n * dim, 0.0);
        let mut mean = vec![0.0f64; dim];
        for row in original.chunks_exact(dim.max(1)) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x);
            }
        }
        for m in &mut mean {
            *m /= n.max(1) as f64;
        }
        let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let mut centred = Vec::with_capacity(original.len());
        for row in original.chunks_exact(dim.max(1)) {
            centred.extend(row.iter().zip(&mean32).map(|(&x, &m)| x - m));
        }
        let norms: Vec<f32> = (0..n)
            .map(|i| {
                centred
                    .get(i * dim..(i + 1) * dim)
                    .map_or(0.0, |row| row.iter().map(|x| x * x).sum())
            })
            .collect();
        let max_norm = norms.iter().copied().fold(0.0f32, f32::max);
        let mean_sq = mean32.iter().map(|m| m * m).sum();
        Self {
            dim,
            original,
            centred,
            norms,
            mean_sq,
            max_norm,
        }
    }

    /// Number of points.
    pub(crate) fn len(&self) -> usize {
        self.norms.len()
    }

    /// Mean-centred row `i` (empty past the end).
    pub(crate) fn centred_row(&self, i: usize) -> &[f32] {
        self.centred
            .get(i * self.dim..(i + 1) * self.dim)
            .unwrap_or(&[])
    }

    /// Original row `i` (empty past the end).
    pub(crate) fn original_row(&self, i: usize) -> &[f32] {
        self.original
            .get(i * self.dim..(i + 1) * self.dim)
            .unwrap_or(&[])
    }

    /// Exact squared distance between points `i` and `j` (original rows, `f64`).
    pub(crate) fn exact_sq_dist(&self, i: usize, j: usize) -> f64 {
        sq_dist_f64(self.original_row(i), self.original_row(j))
    }

    /// All mean-centred rows, row-major.
    pub(crate) fn centred_rows(&self) -> &[f32] {
        &self.centred
    }

    /// Squared norms of the centred rows.
    pub(crate) fn norms(&self) -> &[f32] {
        &self.norms
    }

    /// Columns.
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// Squared norm of centred row `i` (0 past the end).
    pub(crate) fn norm(&self, i: usize) -> f32 {
        self.norms.get(i).copied().unwrap_or(0.0)
    }

    /// Largest squared norm of a centred row.
    pub(crate) fn max_norm(&self) -> f32 {
        self.max_norm
    }

    /// Squared norm of the mean that was subtracted.
    pub(crate) fn mean_sq(&self) -> f32 {
        self.mean_sq
    }

    /// Relative bound on the rounding of a Gram-identity squared distance: the computed
    /// `|x|^2 + |y|^2 - 2 x.y` of two centred rows is within `factor (|x|^2 + |y|^2 + |mean|^2)`
    /// of the exact distance of the original rows (with a wide margin).
    pub(crate) fn tolerance_factor(&self) -> f32 {
        (self.dim as f32 + 16.0) * 4.0 * f32::EPSILON
    }
}

/// Squared Euclidean distance in `f32` (eight independent lanes, so it vectorises).
#[inline]
pub(crate) fn sq_dist_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((lane, &p), &q) in lanes.iter_mut().zip(x).zip(y) {
            let t = p - q;
            *lane += t * t;
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&p, &q)| (p - q) * (p - q))
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// Squared Euclidean distance accumulated in `f64`.
pub(crate) fn sq_dist_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((lane, &p), &q) in lanes.iter_mut().zip(x).zip(y) {
            let t = f64::from(p) - f64::from(q);
            *lane += t * t;
        }
    }
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&p, &q)| {
            let t = f64::from(p) - f64::from(q);
            t * t
        })
        .sum();
    lanes.iter().sum::<f64>() + tail
}

/// `out (rows_a x rows_b, row-major) = a * b^T` for row-major `a` and `b` of `dim` columns.
pub(crate) fn gram_block(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
    let rows_a = a.len().checked_div(dim).unwrap_or(0);
    let rows_b = b.len().checked_div(dim).unwrap_or(0);
    let Some(out) = out.get_mut(..rows_a * rows_b) else {
        return;
    };
    if dim == 0 {
        out.fill(0.0);
        return;
    }
    let lhs = MatRef::from_row_major_slice(a, rows_a, dim);
    let rhs = MatRef::from_row_major_slice(b, rows_b, dim).transpose();
    let dst = MatMut::from_row_major_slice_mut(out, rows_a, rows_b);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
}

/// Dot product in `f32` (eight independent lanes, so it vectorises).
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((lane, &p), &q) in lanes.iter_mut().zip(x).zip(y) {
            *lane += p * q;
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&p, &q)| p * q)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sq_dist_kernels_agree() {
        let a: Vec<f32> = (0..13).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..13).map(|i| (i * i) as f32 * 0.1).collect();
        let expected: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        assert!((f64::from(sq_dist_f32(&a, &b)) - expected).abs() < 1e-3);
        assert!((sq_dist_f64(&a, &b) - expected).abs() < 1e-9);
    }

    #[test]
    fn gram_block_is_a_times_b_transposed() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0, 2.0, 2.0, 2.0];
        let mut out = vec![0.0f32; 6];
        gram_block(&a, &b, 3, &mut out);
        assert_eq!(out, vec![4.0, 2.0, 12.0, 10.0, 5.0, 30.0]);
        assert_eq!(dot_f32(&a, &a), 91.0);
    }
}
