//! One multiplicative update of a factor, its rows split over threads, and the small dense
//! helpers the objective needs (`dot`, `gram`).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::side::Side;

/// Multiply-adds (non-zeros, for sparse data) below which a product stays on one thread.
pub(super) const PARALLEL_ABOVE_WORK: usize = 200_000;

/// Scratch rows for one factor's update, kept across rounds so no round allocates.
pub(super) struct Scratch {
    numerator: Vec<f32>,
    denominator: Vec<f32>,
}

impl Scratch {
    /// Scratch for a factor of `rows x lanes`.
    pub(super) fn new(rows: usize, lanes: usize) -> Self {
        Self {
            numerator: vec![0.0; rows * lanes],
            denominator: vec![0.0; rows * lanes],
        }
    }
}

/// What one factor's update reports for the objective.
pub(super) struct Updated {
    /// `target^T target` after the update (`lanes x lanes`, row-major).
    pub(super) gram: Vec<f32>,
    /// `<side * other, target>` after the update.
    pub(super) numerator_dot: f64,
}

/// One multiplicative update of `target` (`side.rows() x lanes`, row-major):
/// `target <- target .* (side * other) ./ (target * other_gram + eps)`. The rows are split
/// over up to `threads` threads; each computes its rows' numerators, denominators and
/// updates in one pass, while they are in cache, and its share of the new gram matrix.
#[allow(clippy::too_many_arguments)]
pub(super) fn update_factor(
    side: Side<'_>,
    other: &[f32],
    other_gram: &[f32],
    target: &mut [f32],
    scratch: &mut Scratch,
    lanes: usize,
    eps: f32,
    threads: usize,
) -> Updated {
    let ranges = side.ranges(threads, PARALLEL_ABOVE_WORK);
    let chunk = |range: std::ops::Range<usize>,
                 target: &mut [f32],
                 numerator: &mut [f32],
                 denominator: &mut [f32]| {
        side.product(range, other, lanes, numerator);
        let rows = target.len() / lanes.max(1);
        matmul(
            MatMut::from_row_major_slice_mut(denominator, rows, lanes),
            Accum::Replace,
            MatRef::from_row_major_slice(target, rows, lanes),
            MatRef::from_row_major_slice(other_gram, lanes, lanes),
            1.0,
            Par::Seq,
        );
        for ((t, n), d) in target.iter_mut().zip(&*numerator).zip(&*denominator) {
            let next = *t * (n / (d + eps));
            // Entries the updates drive towards zero would turn subnormal, and arithmetic
            // on subnormals is tens of times slower on x86; below the smallest normal f32
            // an entry is zero for every purpose, so it becomes zero.
            *t = if next < 1e-30 { 0.0 } else { next };
        }
        (gram(target, lanes), dot(numerator, target))
    };
    let mut partials = Vec::with_capacity(ranges.len());
    if let [range] = ranges.as_slice() {
        partials.push(chunk(
            range.clone(),
            target,
            &mut scratch.numerator,
            &mut scratch.denominator,
        ));
    } else {
        std::thread::scope(|scope| {
            let (mut target, mut numerator, mut denominator) = (
                &mut *target,
                &mut scratch.numerator[..],
                &mut scratch.denominator[..],
            );
            let handles: Vec<_> = ranges
                .into_iter()
                .map(|range| {
                    let len = range.len() * lanes;
                    let (t, t_rest) = std::mem::take(&mut target).split_at_mut(len);
                    let (n, n_rest) = std::mem::take(&mut numerator).split_at_mut(len);
                    let (d, d_rest) = std::mem::take(&mut denominator).split_at_mut(len);
                    (target, numerator, denominator) = (t_rest, n_rest, d_rest);
                    let chunk = &chunk;
                    scope.spawn(move || chunk(range, t, n, d))
                })
                .collect();
            partials.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        });
    }
    let mut total = Updated {
        gram: vec![0.0; lanes * lanes],
        numerator_dot: 0.0,
    };
    for (gram, dot) in partials {
        for (a, b) in total.gram.iter_mut().zip(&gram) {
            *a += b;
        }
        total.numerator_dot += dot;
    }
    total
}

/// `sum(a .* b)` in `f64`.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// `a^T a` of a row-major `rows x rank` matrix, as a row-major `rank x rank` matrix.
pub(super) fn gram(a: &[f32], rank: usize) -> Vec<f32> {
    let rows = a.len() / rank.max(1);
    let view = MatRef::from_row_major_slice(a, rows, rank);
    let mut out = vec![0.0f32; rank * rank];
    matmul(
        MatMut::from_row_major_slice_mut(&mut out, rank, rank),
        Accum::Replace,
        view.transpose(),
        view,
        1.0,
        Par::Seq,
    );
    out
}
