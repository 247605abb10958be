//! A compressed sparse row matrix, the storage of sparse stacked data, and its transpose.

/// A compressed sparse row matrix (`rows` lists of `(column, value)`).
pub(super) struct Csr {
    /// Where each row starts in `columns` and `values`, and (last) where the last ends.
    pub(super) offsets: Vec<usize>,
    /// Column of each non-zero, row by row.
    pub(super) columns: Vec<u32>,
    /// Value of each non-zero, row by row.
    pub(super) values: Vec<f32>,
}

impl Csr {
    /// The non-zeros in `columns` by column: a `column_count`-row matrix whose columns are the
    /// rows of `self` (ascending), by counting sort.
    pub(super) fn transpose(&self, column_count: usize, rows: std::ops::Range<usize>) -> Self {
        let mut offsets = vec![0usize; column_count + 1];
        for r in rows.clone() {
            for &c in self.row(r).0 {
                if let Some(count) = offsets.get_mut(c as usize + 1) {
                    *count += 1;
                }
            }
        }
        for c in 1..offsets.len() {
            let before = offsets.get(c - 1).copied().unwrap_or(0);
            if let Some(o) = offsets.get_mut(c) {
                *o += before;
            }
        }
        let nonzeros = offsets.last().copied().unwrap_or(0);
        let mut out = Self {
            columns: vec![0; nonzeros],
            values: vec![0.0; nonzeros],
            offsets: offsets.clone(),
        };
        let mut next = offsets;
        for r in rows {
            let (columns, values) = self.row(r);
            for (&c, &v) in columns.iter().zip(values) {
                let Some(at) = next.get_mut(c as usize) else {
                    continue;
                };
                if let (Some(slot), Some(value)) =
                    (out.columns.get_mut(*at), out.values.get_mut(*at))
                {
                    *slot = u32::try_from(r).unwrap_or(u32::MAX);
                    *value = v;
                }
                *at += 1;
            }
        }
        out
    }

    /// An empty matrix with room for `rows` rows and `nonzeros` entries.
    pub(super) fn with_capacity(rows: usize, nonzeros: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            offsets,
            columns: Vec::with_capacity(nonzeros),
            values: Vec::with_capacity(nonzeros),
        }
    }

    #[inline(always)]
    pub(super) fn row(&self, row: usize) -> (&[u32], &[f32]) {
        let (Some(&from), Some(&to)) = (self.offsets.get(row), self.offsets.get(row + 1)) else {
            return (&[], &[]);
        };
        (
            self.columns.get(from..to).unwrap_or(&[]),
            self.values.get(from..to).unwrap_or(&[]),
        )
    }
}
