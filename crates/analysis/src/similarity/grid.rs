//! Many comparisons at once: a rows x columns grid of similarities (a layer at every epoch
//! against a reference epoch, every pair of layers, two runs' layers). The CCA family reduces
//! each distinct matrix once to its kept directions ([`CcaSide`]) and
//! then pays one product and a small SVD per cell, where comparing pair by pair would factor
//! the reference again for every cell; CKA centres each distinct matrix and takes its
//! self-product once ([`CkaSide`]), then one cross product per cell. Two threads take half
//! the rows each when the work pays.

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
    let needed = if debiased { 4 } else { 2 };
    let shared = |m: &Matrix| cols.iter().position(|c| ptr::eq(*c, m));
    let side_work = |m: &&Matrix| cka_work(m, m) / 4.0;
    let sides = in_halves(cols.iter().map(side_work).sum(), cols, |m| {
        CkaSide::new(m).map_err(|e| e.about(Operand::Second))
    });
    let work = rows
        .iter()
        .flat_map(|x| cols.iter().map(move |y| cka_work(x, y)))
        .sum();
    in_halves(work, rows, |x| {
        let own;
        let side = match shared(x).and_then(|j| sides.get(j)) {
            Some(side) => side,
            None => {
                own = CkaSide::new(x);
                &own
            }
        };
        cols.iter()
            .zip(&sides)
            .map(|(y, y_side)| {
                check_instances(x, y, needed)?;
                let x_side = side.as_ref().map_err(|e| e.clone().about(Operand::First))?;
                let y_side = y_side.as_ref().map_err(Clone::clone)?;
                if x.rows() < x_side.live() + y_side.live() {
                    return similarity(method, x, y);
                }
                CkaSide::cka(x_side, y_side, debiased)
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// The CCA family: columns reduced first (all kept, as the second operand), then each row
/// reduced (or a column's reduction reused) and correlated with every column.
fn cca_grid(
    rows: &[&Matrix],
    cols: &[&Matrix],
    options: &SvccaOptions,
    weighted: bool,
) -> Vec<Result<f64, SimilarityError>> {
    let shared = |m: &Matrix| cols.iter().position(|c| ptr::eq(*c, m));
    // PWCCA weighs by the first operand: a column that is also a row keeps its weights.
    let cols_weighted = weighted && rows.iter().any(|r| shared(r).is_some());
    let side_work = |m: &&Matrix| CcaSide::work(m.rows(), m.cols());
    let sides = in_halves(cols.iter().map(side_work).sum(), cols, |m| {
        CcaSide::new(m, options, cols_weighted).map_err(|e| e.about(Operand::Second))
    });
    in_halves(rows.iter().map(side_work).sum(), rows, |x| {
        let own;
        let side = match shared(x).and_then(|j| sides.get(j)) {
            Some(side) if cols_weighted || !weighted => side,
            _ => {
                own = CcaSide::new(x, options, weighted);
                &own
            }
        };
        cols.iter()
            .zip(&sides)
            .map(|(y, y_side)| {
                if x.rows() != y.rows() {
                    return Err(SimilarityError::InstanceMismatch {
                        first: x.rows(),
                        second: y.rows(),
                    });
                }
                let x_side = side.as_ref().map_err(|e| e.clone().about(Operand::First))?;
                let y_side = y_side.as_ref().map_err(Clone::clone)?;
                let result = CcaSide::correlate(x_side, y_side)?;
                Ok(if weighted {
                    result.pwcca.unwrap_or(result.mean)
                } else {
                    result.mean
                })
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
