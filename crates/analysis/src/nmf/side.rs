//! The stacked data seen from one factor ([`Side`]): the product that gives the numerator of
//! the factor's update, and the split of its rows over threads by work.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::csr::Csr;
use super::kernels::dispatch_lanes;

/// The data seen from one factor: row `i` of the product with the other factor is the
/// numerator of row `i` of this factor's update.
#[derive(Clone, Copy)]
pub(super) enum Side<'a> {
    /// A dense view, `rows x other rows`.
    Dense(MatRef<'a, f32>),
    /// The non-zeros row by row, columns indexing the other factor's rows, in blocks of
    /// columns (each block has every row; the product adds the blocks up).
    Sparse(&'a [Csr]),
}

impl Side<'_> {
    fn rows(&self) -> usize {
        match self {
            Self::Dense(x) => x.nrows(),
            Self::Sparse(blocks) => blocks
                .first()
                .map_or(0, |csr| csr.offsets.len().saturating_sub(1)),
        }
    }

    /// `out (range rows x lanes) <- self[range] * other` for row-major `other` (other rows x
    /// lanes).
    pub(super) fn product(
        &self,
        range: std::ops::Range<usize>,
        other: &[f32],
        lanes: usize,
        out: &mut [f32],
    ) {
        match self {
            Self::Dense(x) => {
                let rows = x.subrows(range.start, range.len());
                matmul(
                    MatMut::from_row_major_slice_mut(out, range.len(), lanes),
                    Accum::Replace,
                    rows,
                    MatRef::from_row_major_slice(other, x.ncols(), lanes),
                    1.0,
                    Par::Seq,
                );
            }
            Self::Sparse(blocks) => {
                for (b, csr) in blocks.iter().enumerate() {
                    dispatch_lanes(lanes, csr, range.clone(), other, out, b > 0);
                }
            }
        }
    }

    /// Contiguous row ranges, at most `threads` of them, of about equal work (non-zeros for
    /// sparse data); one range when the whole product (multiply-adds per lane) is below
    /// `parallel_above`.
    pub(super) fn ranges(
        &self,
        threads: usize,
        parallel_above: usize,
    ) -> Vec<std::ops::Range<usize>> {
        let rows = self.rows();
        let (work, cumulative): (usize, Box<dyn Fn(usize) -> usize + '_>) = match self {
            Self::Dense(x) => (x.nrows() * x.ncols(), Box::new(move |r| r * x.ncols())),
            Self::Sparse(blocks) => (
                blocks.iter().map(|csr| csr.values.len()).sum(),
                Box::new(move |r| {
                    blocks
                        .iter()
                        .map(|csr| csr.offsets.get(r).copied().unwrap_or(usize::MAX))
                        .fold(0, usize::saturating_add)
                }),
            ),
        };
        let threads = if work < parallel_above {
            1
        } else {
            threads.clamp(1, rows.max(1))
        };
        let mut bounds = vec![0usize];
        for t in 1..threads {
            let goal = work * t / threads;
            let (mut low, mut high) = (0, rows);
            while low < high {
                let mid = (low + high) / 2;
                if cumulative(mid) < goal {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            bounds.push(low.max(bounds.last().copied().unwrap_or(0)));
        }
        bounds.push(rows);
        bounds
            .iter()
            .zip(bounds.iter().skip(1))
            .map(|(&from, &to)| from..to)
            .collect()
    }
}
