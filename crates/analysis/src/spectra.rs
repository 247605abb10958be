//! Singular-value spectra of activation matrices (faer's SVD), for the spectra lens.

use faer::MatRef;

use crate::Matrix;

/// Errors of the spectra.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpectraError {
    /// The SVD did not converge.
    #[error("the singular value decomposition did not converge")]
    Svd,
}

/// Singular values of `matrix` (instances x features), descending; none for an empty matrix.
pub fn singular_values(matrix: &Matrix) -> Result<Vec<f32>, SpectraError> {
    if matrix.rows() == 0 || matrix.cols() == 0 {
        return Ok(Vec::new());
    }
    // Row-major instances x features is column-major features x instances: same values.
    let view = MatRef::from_column_major_slice(matrix.as_slice(), matrix.cols(), matrix.rows());
    view.singular_values().map_err(|_| SpectraError::Svd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn spectrum_of_a_known_matrix() {
        // diag(3, 2) padded with a zero row: singular values 3 and 2.
        let m = Matrix::new(3, 2, vec![3.0, 0.0, 0.0, -2.0, 0.0, 0.0]).unwrap();
        let s = singular_values(&m).unwrap();
        assert_eq!(s.len(), 2);
        assert!(
            (s[0] - 3.0).abs() < 1e-5 && (s[1] - 2.0).abs() < 1e-5,
            "{s:?}"
        );
        // A rank-one outer product u v^T has one singular value |u||v|.
        let u = [1.0f32, 2.0, 2.0];
        let v = [3.0f32, 4.0];
        let data: Vec<f32> = u
            .iter()
            .flat_map(|a| v.iter().map(move |b| a * b))
            .collect();
        let s = singular_values(&Matrix::new(3, 2, data).unwrap()).unwrap();
        assert!((s[0] - 15.0).abs() < 1e-4 && s[1].abs() < 1e-4, "{s:?}");
        // Frobenius norm squared equals the sum of squared singular values.
        let mut rng = SplitMix64::new(2);
        let r = Matrix::new(12, 7, (0..12 * 7).map(|_| rng.next_unit_f32()).collect()).unwrap();
        let s = singular_values(&r).unwrap();
        let fro: f32 = r.as_slice().iter().map(|v| v * v).sum();
        let sum: f32 = s.iter().map(|v| v * v).sum();
        assert!((fro - sum).abs() < 1e-3 * fro);
        assert!(s.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn empty_matrices_have_no_spectrum() {
        assert_eq!(
            singular_values(&Matrix::new(0, 3, vec![]).unwrap()),
            Ok(vec![])
        );
        assert_eq!(
            singular_values(&Matrix::new(4, 0, vec![]).unwrap()),
            Ok(vec![])
        );
    }
}
