//! Many comparisons at once: a rows x columns grid of similarities (a layer at every epoch
//! against a reference epoch, every pair of layers, two runs' layers). The CCA family reduces
//! each distinct matrix once to its kept directions ([`CcaSide`]) and then pays one product
//! and a small SVD per cell, where comparing pair by pair would factor the reference again
//! for every cell; CKA centres each distinct matrix and takes its self-product once
//! ([`CkaSide`]), then one cross product per cell. Both go through one skeleton
//! ([`by_sides`]); two threads take half the rows each when the work pays.

use std::ptr;

use super::cca::CcaSide;
use super::cka::CkaSide;
use super::prepare::check_instances;
use super::{Method, Operand, SimilarityError, SvccaOptions, parallel, similarity};
use crate::Matrix;

/// The similarity by `method` of every row matrix with every column matrix, row-major
/// (`rows.len() x cols.len()` cells); each cell is what [`similarity`]`(method, row, col)`
/// answers, to rounding. A matrix passed more than once (the same reference, or the same
/// slice as rows and columns) is reduced once. A cell that cannot be computed holds its
/// error: a mismatch of instance counts first, then the row's refusal (about
/// [`Operand::First`]), then the column's ([`Operand::Second`]), then the pair's.
pub fn similarity_grid(
    method: Method,
    rows: &[&Matrix],
    cols: &[&Matrix],
) -> Vec<Result<f64, SimilarityError>> {
    match method {
        Method::Cka => cka_grid(rows, cols, false),
        Method::CkaDebiased => cka_grid(rows, cols, true),
        Method::Svcca => cca_grid(rows, cols, &SvccaOptions::default(), false),
        Method::Pwcca => cca_grid(rows, cols, &SvccaOptions::CCA, true),
    }
}

/// Rough multiply-adds of comparing `x` with `y` by CKA (its three products).
fn cka_work(x: &Matrix, y: &Matrix) -> f64 {
    let width = (x.cols() + y.cols()) as f64;
    x.rows() as f64 * width * width / 2.0
}

/// CKA: each distinct matrix centred, rounded and multiplied by itself once ([`CkaSide`]),
/// then one cross product per cell. A cell with fewer instances than the two sides' live
/// neurons together is compared as [`similarity`] does it (the Gram form of the instances).
fn cka_grid(
    rows: &[&Matrix],
    cols: &[&Matrix],
    debiased: bool,
) -> Vec<Result<f64, SimilarityError>> {
    let method = if debiased {
        Method::CkaDebiased
    } else {
        Method::Cka
    };
    let work = (
        cols.iter().map(|m| cka_work(m, m) / 4.0).sum(),
        rows.iter()
            .flat_map(|x| cols.iter().map(move |y| cka_work(x, y)))
            .sum(),
    );
    by_sides(
        rows,
        cols,
        work,
        if debiased { 4 } else { 2 },
        |m, _| CkaSide::new(m, debiased),
        true,
        |x, y, x_side, y_side| {
            if x.rows() < x_side.live() + y_side.live() {
                return similarity(method, x, y);
            }
            CkaSide::cka(x_side, y_side, debiased)
        },
    )
}

/// The CCA family: each side reduced once ([`CcaSide`]; the columns keep everything they
/// need as the second operand), then correlated per cell.
fn cca_grid(
    rows: &[&Matrix],
    cols: &[&Matrix],
    options: &SvccaOptions,
    weighted: bool,
) -> Vec<Result<f64, SimilarityError>> {
    // PWCCA weighs by the first operand: a column that is also a row keeps its weights.
    let cols_weighted = weighted && rows.iter().any(|r| cols.iter().any(|c| ptr::eq(*c, *r)));
    let side_work = |m: &[&Matrix]| {
        m.iter()
            .map(|m| CcaSide::work(m.rows(), m.cols()))
            .sum::<f64>()
    };
    by_sides(
        rows,
        cols,
        (side_work(cols), side_work(rows)),
        // Too few instances is each side's own refusal.
        0,
        |m, as_row| CcaSide::new(m, options, if as_row { weighted } else { cols_weighted }),
        cols_weighted || !weighted,
        |_, _, x_side, y_side| {
            let result = CcaSide::correlate(x_side, y_side)?;
            Ok(if weighted {
                result.pwcca.unwrap_or(result.mean)
            } else {
                result.mean
            })
        },
    )
}

/// The grid both families compute the same way. Every column is prepared once by
/// `side(matrix, false)` (refusals about [`Operand::Second`]), on two threads when `work.0`
/// (rough multiply-adds of the columns' preparation) pays; then the rows, on two threads
/// when `work.1` (of the rows' share) pays, each prepared by `side(row, true)` or, when it
/// is also a column and `reuse_cols` allows, with that column's preparation. A cell refuses
/// a mismatch of instance counts or fewer than `needed` instances, then the row's refusal
/// (about [`Operand::First`]), then the column's, then asks `cell`.
fn by_sides<S: Sync + Send>(
    rows: &[&Matrix],
    cols: &[&Matrix],
    work: (f64, f64),
    needed: usize,
    side: impl Fn(&Matrix, bool) -> Result<S, SimilarityError> + Sync,
    reuse_cols: bool,
    cell: impl Fn(&Matrix, &Matrix, &S, &S) -> Result<f64, SimilarityError> + Sync,
) -> Vec<Result<f64, SimilarityError>> {
    let sides = in_halves(work.0, cols, |m| {
        side(m, false).map_err(|e| e.about(Operand::Second))
    });
    in_halves(work.1, rows, |x| {
        let shared = cols.iter().position(|c| ptr::eq(*c, *x));
        let own;
        let x_side = match shared.and_then(|j| sides.get(j)) {
            Some(col_side) if reuse_cols => col_side,
            _ => {
                own = side(x, true);
                &own
            }
        };
        cols.iter()
            .zip(&sides)
            .map(|(y, y_side)| {
                check_instances(x, y, needed)?;
                let x_side = x_side
                    .as_ref()
                    .map_err(|e| e.clone().about(Operand::First))?;
                let y_side = y_side.as_ref().map_err(Clone::clone)?;
                cell(x, y, x_side, y_side)
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// `f` of every item, in order: the first half on this thread and the second on another when
/// `work` pays for it.
fn in_halves<T: Sync, R: Send>(work: f64, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let (first, second) = items.split_at(items.len() / 2);
    let run = |part: &[T]| part.iter().map(&f).collect::<Vec<R>>();
    let (mut a, b) = parallel::join(work, || run(first), || run(second));
    a.extend(b);
    a
}
