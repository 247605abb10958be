//! Representation similarity on the wire: a grid of SVCCA, PWCCA or linear CKA values between
//! layers, across epochs of one run or across two runs (the SVCCA paper's pictures).

use serde::{Deserialize, Serialize};

/// A `rows x cols` grid of similarities in `[0, 1]` (debiased CKA can dip below 0), with the
/// labels of its rows and columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarityGrid {
    /// `cka`, `cka-debiased`, `svcca` or `pwcca`.
    pub method: String,
    /// What a row stands for, e.g. `layer 1` (or `input`).
    pub row_labels: Vec<String>,
    /// What a column stands for, e.g. `epoch 3` or `layer 2`.
    pub col_labels: Vec<String>,
    /// Row-major values, `row_labels.len() * col_labels.len()` of them; `None` where the pair
    /// could not be compared (see `problems`).
    pub values: Vec<Option<f64>>,
    /// Why some cells are empty, each reason once (e.g. too few instances for SVCCA).
    pub problems: Vec<String>,
    /// For a layers x epochs grid: the epoch every column is compared with.
    pub reference_epoch: Option<u32>,
    /// For a layers x epochs grid: the epoch of each column.
    pub epochs: Vec<u32>,
}

impl SimilarityGrid {
    /// The value at (`row`, `col`), if both are in range.
    pub fn get(&self, row: usize, col: usize) -> Option<f64> {
        if col >= self.col_labels.len() {
            return None;
        }
        self.values
            .get(row.checked_mul(self.col_labels.len())?.checked_add(col)?)
            .copied()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_row_major_and_out_of_range_is_none() {
        let grid = SimilarityGrid {
            method: "cka".to_owned(),
            row_labels: vec!["layer 1".to_owned(), "layer 2".to_owned()],
            col_labels: vec![
                "epoch 1".to_owned(),
                "epoch 2".to_owned(),
                "epoch 3".to_owned(),
            ],
            values: vec![Some(0.1), Some(0.2), Some(0.3), Some(0.4), None, Some(0.6)],
            problems: vec!["too few instances".to_owned()],
            reference_epoch: Some(3),
            epochs: vec![1, 2, 3],
        };
        assert_eq!(grid.get(1, 0), Some(0.4));
        assert_eq!(grid.get(0, 2), Some(0.3));
        assert_eq!(grid.get(0, 3), None);
        assert_eq!(grid.get(2, 0), None);
        assert_eq!(grid.get(1, 1), None, "an empty cell");
    }
}
