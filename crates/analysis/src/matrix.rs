//! A dense row-major `f32` matrix: instances in rows, features (neurons, pixels) in columns.

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
}
