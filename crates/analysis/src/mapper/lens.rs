//! Lenses: the map from each activation vector to the line (or plane) the cover is laid on.

use actiscope_protocol::mapper::MapperLens;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};

use super::distance::PointSet;
use super::knn::kth_distances;
use super::{MapperError, MapperInput};
use crate::Matrix;

/// Lens values of every instance: [`LensValues::dims`] values (1 or 2) per instance.
#[derive(Debug, Clone, PartialEq)]
pub struct LensValues {
    dims: usize,
    values: Vec<f64>,
}

impl LensValues {
    /// Wraps row-major `values` of `dims` values per instance; `None` when `dims` is not 1 or
    /// 2 or does not divide the length.
    pub fn new(dims: usize, values: Vec<f64>) -> Option<Self> {
        ((dims == 1 || dims == 2) && values.len().is_multiple_of(dims))
            .then_some(Self { dims, values })
    }

    /// Values per instance (1 or 2).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.values.len() / self.dims
    }

    /// Whether there are no instances.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values of one instance, or `None` past the end.
    pub fn get(&self, instance: usize) -> Option<&[f64]> {
        self.values
            .get(instance * self.dims..(instance + 1) * self.dims)
    }

    /// All values, row-major (instance by instance).
    pub fn as_slice(&self) -> &[f64] {
        &self.values
    }

    /// Values of lens dimension `dim` (0-based), one per instance.
    pub fn column(&self, dim: usize) -> impl Iterator<Item = f64> + '_ {
        self.values
            .chunks_exact(self.dims)
            .filter_map(move |row| row.get(dim).copied())
    }
}

/// Computes the lens values of every instance. Principal components are those of the
/// mean-centred activations, each signed so that its largest loading (by absolute value, the
/// first on ties) is positive, as scikit-learn's `svd_flip` does; a lens without spread (one
/// instance, constant activations) projects everything to 0. [`MapperLens::KnnDistance`] is
/// the exact Euclidean distance to the `k`-th nearest other instance.
pub fn lens_values(input: &MapperInput<'_>, lens: MapperLens) -> Result<LensValues, MapperError> {
    let matrix = input.activations;
    let n = matrix.rows();
    if matrix.as_slice().iter().any(|x| !x.is_finite()) {
        return Err(MapperError::NonFinite);
    }
    let (dims, values) = match lens {
        MapperLens::Pca1 => (1, pca_projection(matrix, 1)?),
        MapperLens::Pca2 => (2, pca_projection(matrix, 2)?),
        MapperLens::L2Norm => (
            1,
            matrix
                .iter_rows()
                .take(n)
                .map(|row| {
                    row.iter()
                        .map(|&x| f64::from(x) * f64::from(x))
                        .sum::<f64>()
                        .sqrt()
                })
                .chain(std::iter::repeat(0.0))
                .take(n)
                .collect(),
        ),
        MapperLens::KnnDistance { k } => {
            let k = k as usize;
            if k == 0 || k >= n {
                return Err(MapperError::NeighbourRank { k, instances: n });
            }
            let points = PointSet::from_rows(matrix.as_slice().to_vec(), matrix.cols(), n);
            let distances =
                kth_distances(&points, k).ok_or(MapperError::NeighbourRank { k, instances: n })?;
            (1, distances.into_iter().map(f64::from).collect())
        }
        MapperLens::PredictedScore => {
            let scores = input.predicted_scores.ok_or(MapperError::MissingScores)?;
            if scores.len() != n {
                return Err(MapperError::Length {
                    what: "predicted scores",
                    expected: n,
                    found: scores.len(),
                });
            }
            if scores.iter().any(|s| !s.is_finite()) {
                return Err(MapperError::NonFinite);
            }
            (1, scores.iter().map(|&s| f64::from(s)).collect())
        }
    };
    Ok(LensValues { dims, values })
}

/// Principal axes of the mean-centred rows: the column means and the `count` leading unit
/// eigenvectors of the covariance (fewer when there are fewer columns), sign-normalised.
pub(crate) fn principal_axes(
    matrix: &Matrix,
    count: usize,
) -> Result<(Vec<f64>, Vec<Vec<f64>>), MapperError> {
    let (n, d) = (matrix.rows(), matrix.cols());
    let mut mean = vec![0.0f64; d];
    if n == 0 || d == 0 {
        return Ok((mean, Vec::new()));
    }
    for row in matrix.iter_rows() {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += f64::from(x);
        }
    }
    for m in &mut mean {
        *m /= n as f64;
    }
    let mut centred: Vec<f64> = Vec::with_capacity(n * d);
    for row in matrix.iter_rows() {
        centred.extend(row.iter().zip(&mean).map(|(&x, &m)| f64::from(x) - m));
    }
    centred.resize(n * d, 0.0);
    let centred = MatRef::from_row_major_slice(&centred, n, d);
    let mut cov = Mat::<f64>::zeros(d, d);
    matmul(
        cov.as_mut(),
        Accum::Replace,
        centred.transpose(),
        centred,
        1.0 / (n as f64),
        Par::Seq,
    );
    let evd = cov
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| MapperError::Decomposition)?;
    let u = evd.U();
    let mut axes = Vec::with_capacity(count.min(d));
    for t in 0..count.min(d) {
        let mut axis: Vec<f64> = u.col(d - 1 - t).iter().copied().collect();
        let pivot = axis
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()).then(b.0.cmp(&a.0)))
            .map_or(0.0, |(_, v)| v);
        if pivot < 0.0 {
            axis.iter_mut().for_each(|v| *v = -*v);
        }
        axes.push(axis);
    }
    Ok((mean, axes))
}

/// Projections of the mean-centred rows on the `count` leading principal axes, row-major
/// (`count` values per row; missing axes give 0).
fn pca_projection(matrix: &Matrix, count: usize) -> Result<Vec<f64>, MapperError> {
    let (mean, axes) = principal_axes(matrix, count)?;
    let mut out = Vec::with_capacity(matrix.rows() * count);
    let mut centred = vec![0.0f64; matrix.cols()];
    for row in matrix.iter_rows().take(matrix.rows()) {
        for ((c, &x), &m) in centred.iter_mut().zip(row).zip(&mean) {
            *c = f64::from(x) - m;
        }
        for t in 0..count {
            out.push(axes.get(t).map_or(0.0, |axis| {
                axis.iter().zip(&centred).map(|(a, c)| a * c).sum()
            }));
        }
    }
    out.resize(matrix.rows() * count, 0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(m: &'a Matrix, zeros: &'a [u32], scores: Option<&'a [f32]>) -> MapperInput<'a> {
        MapperInput {
            activations: m,
            labels: zeros,
            predictions: zeros,
            predicted_scores: scores,
            class_count: 1,
        }
    }

    #[test]
    fn pca1_on_a_line() {
        // Points on the line y = 2x (x = 0..4): the axis is (1, 2)/sqrt(5), positive because
        // the largest loading is positive; projections are centred.
        let m = Matrix::from_rows(&[[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]])
            .unwrap();
        let zeros = [0; 5];
        let lens = lens_values(&input(&m, &zeros, None), MapperLens::Pca1).unwrap();
        let s5 = 5f64.sqrt();
        let expected = [-2.0 * s5, -s5, 0.0, s5, 2.0 * s5];
        assert_eq!(lens.dims(), 1);
        for (got, want) in lens.as_slice().iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        // Mirrored data: the sign convention keeps the axis positive, so projections flip.
        let mirrored = Matrix::from_rows(&[[0.0, 0.0], [-1.0, -2.0], [-2.0, -4.0]]).unwrap();
        let lens = lens_values(&input(&mirrored, &zeros[..3], None), MapperLens::Pca1).unwrap();
        let s = lens.as_slice();
        assert!(s[0] > 0.0 && s[2] < 0.0);
        let (_, axes) = principal_axes(&mirrored, 1).unwrap();
        assert!((axes[0][0] - 1.0 / s5).abs() < 1e-12 && (axes[0][1] - 2.0 / s5).abs() < 1e-12);
    }

    #[test]
    fn pca2_on_an_axis_aligned_cross() {
        // Spread 3 along x, 1 along y: PC1 = x, PC2 = y.
        let m = Matrix::from_rows(&[[-3.0, 0.0], [3.0, 0.0], [0.0, -1.0], [0.0, 1.0]]).unwrap();
        let zeros = [0; 4];
        let lens = lens_values(&input(&m, &zeros, None), MapperLens::Pca2).unwrap();
        let expected = [-3.0, 0.0, 3.0, 0.0, 0.0, -1.0, 0.0, 1.0];
        assert_eq!(lens.dims(), 2);
        assert_eq!(lens.len(), 4);
        for (got, want) in lens.as_slice().iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        assert_eq!(lens.column(1).collect::<Vec<_>>().len(), 4);
        assert_eq!(lens.get(3).map(<[f64]>::len), Some(2));
        assert_eq!(lens.get(4), None);
    }

    #[test]
    fn degenerate_pca_is_zero() {
        let m = Matrix::from_rows(&[[1.0, 1.0], [1.0, 1.0]]).unwrap();
        let zeros = [0; 2];
        let lens = lens_values(&input(&m, &zeros, None), MapperLens::Pca2).unwrap();
        assert!(lens.as_slice().iter().all(|v| v.abs() < 1e-12));
        // One column: the second component is missing and reads 0.
        let m = Matrix::from_rows(&[[1.0], [2.0]]).unwrap();
        let lens = lens_values(&input(&m, &zeros, None), MapperLens::Pca2).unwrap();
        assert_eq!(lens.as_slice(), &[-0.5, 0.0, 0.5, 0.0]);
    }

    #[test]
    fn l2_norm_knn_and_score_lenses() {
        let m = Matrix::from_rows(&[[3.0, 4.0], [0.0, 0.0], [0.0, 1.0], [6.0, 8.0]]).unwrap();
        let zeros = [0; 4];
        let lens = lens_values(&input(&m, &zeros, None), MapperLens::L2Norm).unwrap();
        assert_eq!(lens.as_slice(), &[5.0, 0.0, 1.0, 10.0]);

        // Distances: 0-1 5, 0-2 sqrt(18), 0-3 5, 1-2 1, 1-3 10, 2-3 sqrt(85).
        let lens = lens_values(&input(&m, &zeros, None), MapperLens::KnnDistance { k: 1 }).unwrap();
        let want = [18f64.sqrt(), 1.0, 1.0, 5.0];
        for (got, want) in lens.as_slice().iter().zip(want) {
            assert!((got - want).abs() < 1e-6);
        }
        let lens = lens_values(&input(&m, &zeros, None), MapperLens::KnnDistance { k: 2 }).unwrap();
        let want = [5.0, 5.0, 18f64.sqrt(), 85f64.sqrt()];
        for (got, want) in lens.as_slice().iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }

        let scores = [0.9f32, 0.5, 0.25, 1.0];
        let lens = lens_values(
            &input(&m, &zeros, Some(&scores)),
            MapperLens::PredictedScore,
        )
        .unwrap();
        assert_eq!(lens.as_slice(), &[0.9f32 as f64, 0.5, 0.25, 1.0]);
    }

    #[test]
    fn lens_errors() {
        let m = Matrix::from_rows(&[[1.0], [2.0]]).unwrap();
        let zeros = [0; 2];
        assert_eq!(
            lens_values(&input(&m, &zeros, None), MapperLens::PredictedScore),
            Err(MapperError::MissingScores)
        );
        assert!(matches!(
            lens_values(&input(&m, &zeros, Some(&[1.0])), MapperLens::PredictedScore),
            Err(MapperError::Length { .. })
        ));
        assert_eq!(
            lens_values(&input(&m, &zeros, None), MapperLens::KnnDistance { k: 2 }),
            Err(MapperError::NeighbourRank { k: 2, instances: 2 })
        );
        assert_eq!(
            lens_values(&input(&m, &zeros, None), MapperLens::KnnDistance { k: 0 }),
            Err(MapperError::NeighbourRank { k: 0, instances: 2 })
        );
        let nan = Matrix::from_rows(&[[f32::NAN], [2.0]]).unwrap();
        assert_eq!(
            lens_values(&input(&nan, &zeros, None), MapperLens::L2Norm),
            Err(MapperError::NonFinite)
        );
    }
}
