//! A dense row-major `f32` matrix: instances in rows, features (neurons, pixels) in columns;
//! its element-wise ReLU and Frobenius norm, and its conversion from and to the wire
//! ([`WireMatrix`]).

use actiscope_protocol::WireMatrix;

/// Errors building a matrix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    /// `data.len()` is not `rows * cols`.
    #[error("{len} values cannot fill a {rows}x{cols} matrix")]
    Shape {
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
        /// Values given.
        len: usize,
    },
}

/// Row-major `rows x cols` matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// Wraps row-major `data` of `rows * cols` values.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, MatrixError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(MatrixError::Shape {
                rows,
                cols,
                len: data.len(),
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// Builds a matrix from equally long rows.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Result<Self, MatrixError> {
        let cols = rows.first().map_or(0, |r| r.as_ref().len());
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in rows {
            data.extend_from_slice(row.as_ref());
        }
        Self::new(rows.len(), cols, data)
    }

    /// Number of rows (instances).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Row `index`, or `None` past the end.
    pub fn row(&self, index: usize) -> Option<&[f32]> {
        self.data.get(index * self.cols..(index + 1) * self.cols)
    }

    /// Iterates over the rows.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        // `max(1)` keeps `chunks_exact` valid for a matrix with no columns (it yields nothing).
        self.data.chunks_exact(self.cols.max(1))
    }

    /// The element-wise ReLU, `max(v, 0)`: stored pre-activations become a layer's outputs.
    /// NaN becomes 0 (as with [`f32::max`]).
    pub fn relu(&self) -> Matrix {
        Self {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|v| v.max(0.0)).collect(),
        }
    }

    /// The Frobenius norm, the square root of the sum of squares (summed in `f32`).
    pub fn frobenius_norm(&self) -> f32 {
        self.data.iter().map(|v| v * v).sum::<f32>().sqrt()
    }

    /// The matrix a [`WireMatrix`] carries; fails when its values do not fill `rows x cols`.
    pub fn from_wire(wire: &WireMatrix) -> Result<Matrix, MatrixError> {
        Self::new(wire.rows as usize, wire.cols as usize, wire.values.clone())
    }

    /// The matrix for the wire; a dimension past `u32::MAX` is sent as `u32::MAX`.
    pub fn to_wire(&self) -> WireMatrix {
        WireMatrix {
            rows: u32::try_from(self.rows).unwrap_or(u32::MAX),
            cols: u32::try_from(self.cols).unwrap_or(u32::MAX),
            values: self.data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_checked() {
        assert!(Matrix::new(2, 3, vec![0.0; 6]).is_ok());
        assert_eq!(
            Matrix::new(2, 3, vec![0.0; 5]),
            Err(MatrixError::Shape {
                rows: 2,
                cols: 3,
                len: 5
            })
        );
        assert!(Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]).is_err());
        let m = Matrix::from_rows(&[[1.0, 2.0], [3.0, 4.0]]).unwrap();
        assert_eq!(m.row(1), Some([3.0, 4.0].as_slice()));
        assert_eq!(m.row(2), None);
        assert_eq!(m.iter_rows().count(), 2);
    }

    #[test]
    fn relu_clamps_negatives_and_keeps_the_shape() {
        let m = Matrix::new(2, 3, vec![-1.0, 0.5, 0.0, -0.0, f32::NAN, 7.0]).unwrap();
        let r = m.relu();
        assert_eq!((r.rows(), r.cols()), (2, 3));
        assert_eq!(r.as_slice(), &[0.0, 0.5, 0.0, 0.0, 0.0, 7.0]);
        assert!(r.as_slice().iter().all(|v| *v >= 0.0));
        let empty = Matrix::new(0, 3, vec![]).unwrap().relu();
        assert_eq!((empty.rows(), empty.cols()), (0, 3));
    }

    #[test]
    fn frobenius_norm_of_known_matrices() {
        assert_eq!(
            Matrix::new(1, 2, vec![3.0, -4.0]).unwrap().frobenius_norm(),
            5.0
        );
        assert_eq!(Matrix::new(0, 0, vec![]).unwrap().frobenius_norm(), 0.0);
        let m = Matrix::new(2, 2, vec![1.0, 2.0, 2.0, 4.0]).unwrap();
        assert_eq!(m.frobenius_norm(), 5.0);
    }

    #[test]
    fn wire_round_trip_and_bad_wire() {
        let m = Matrix::new(2, 3, vec![1.0, -2.0, 3.0, 4.0, 5.5, 0.0]).unwrap();
        let wire = m.to_wire();
        assert_eq!(
            wire,
            WireMatrix {
                rows: 2,
                cols: 3,
                values: vec![1.0, -2.0, 3.0, 4.0, 5.5, 0.0],
            }
        );
        assert_eq!(Matrix::from_wire(&wire), Ok(m));
        let bad = WireMatrix {
            rows: 2,
            cols: 2,
            values: vec![1.0; 3],
        };
        assert_eq!(
            Matrix::from_wire(&bad),
            Err(MatrixError::Shape {
                rows: 2,
                cols: 2,
                len: 3
            })
        );
        let huge = WireMatrix {
            rows: u32::MAX,
            cols: u32::MAX,
            values: vec![],
        };
        assert!(Matrix::from_wire(&huge).is_err());
    }
}
