//! The CCA family: SVCCA (Raghu et al. 2017), plain CCA and PWCCA (Morcos et al. 2018),
//! through orthogonal factorizations of the centred data rather than inverse square roots of
//! covariance matrices, so ill-conditioned layers lose no accuracy to squaring.
//!
//! The steps, for centred `X` (`n x p` live neurons) and `Y` (`n x q`):
//! 1. One Householder QR of `[X Y]` (never forming `Q`): `X = Q R_X`, `Y = Q R_Y` with `Q`
//!    orthonormal, so every inner product between columns of `X` and `Y`, and hence every
//!    canonical correlation, is already in the small `R_X` and `R_Y`.
//! 2. Reduction: thin SVDs `R_X = U_X S_X V_Xᵀ` and `R_Y = U_Y S_Y V_Yᵀ` (the singular values
//!    are those of `X` and `Y`); each side keeps its leading directions by the rule of
//!    [`SvccaOptions::keep_fraction`]. The kept `U` columns are orthonormal bases of the
//!    reduced data in `Q`'s coordinates.
//! 3. CCA: the canonical correlations are the singular values of `U_Xkᵀ U_Yk`.
//! 4. PWCCA weights each correlation by how much of the first layer its canonical variate
//!    accounts for (see [`pwcca`]); `Xᵀ h = V_Xk S_Xk a` for the variate `h = Q U_Xk a`, so
//!    no `n`-sized work is needed there either.
//!
//! A grid of many pairs, and one large pair when a second thread is free, take the other
//! path, [`CcaSide`]: each matrix reduced on its own to an orthonormal basis of its kept
//! directions, then one product of two bases per pair.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::householder::{
    apply_block_householder_sequence_on_the_left_in_place_scratch,
    apply_block_householder_sequence_on_the_left_in_place_with_conj,
};
use faer::linalg::matmul::matmul;
use faer::linalg::qr::no_pivoting::factor::{
    qr_in_place, qr_in_place_scratch, recommended_block_size,
};
use faer::linalg::svd::{ComputeSvdVectors, SvdError, svd, svd_scratch};
use faer::{Accum, Conj, Mat, MatRef, Par};

use super::prepare::{check_instances, scan, stack, write_columns};
use super::{CcaResult, Operand, SimilarityError, SvccaOptions, parallel};
use crate::Matrix;

/// SVCCA of `x` and `y` (instances x neurons, same instances): centre each neuron (unless
/// `options.centre` is off), drop dead neurons, keep each side's fewest leading singular
/// directions whose squared singular values reach `options.keep_fraction` of the total
/// (numerically zero directions never count; see [`SvccaOptions`]), then CCA between the two
/// kept subspaces. With `keep_fraction` 1.0 ([`SvccaOptions::CCA`]) this is plain CCA.
/// [`CcaResult::pwcca`] is `None`.
///
/// Refused: different instance counts, NaN or infinite values (naming the matrix, row and
/// column), a side without a varying neuron, a `keep_fraction` outside `(0, 1]`, and fewer
/// instances than the kept directions need (the centred data must span at least as many
/// dimensions as both sides keep together, or some correlations are 1 whatever the data).
/// Invariant to any invertible linear map of either side when everything is kept.
pub fn svcca(x: &Matrix, y: &Matrix, options: &SvccaOptions) -> Result<CcaResult, SimilarityError> {
    correlate(x, y, options, false)
}

/// PWCCA (Morcos et al. 2018): [`svcca`] (use [`SvccaOptions::CCA`] for the paper's plain
/// CCA) plus the projection-weighted mean of the coefficients in [`CcaResult::pwcca`].
///
/// The weights come from the first argument, `x`: canonical variate `h_i` (in `x`'s kept
/// subspace) weighs `α_i = Σ_j |corr(x_j, h_i)|` over `x`'s live neurons `x_j` (centred
/// activations), and `α` is normalised to sum 1, so directions that account for much of
/// `x`'s activity count more. Morcos et al.'s code takes the weights from whichever side has
/// fewer neurons (the first on ties), so it agrees with this when `x` has no more live
/// neurons than `y`; pass the smaller layer first to match it. Not symmetric in general.
pub fn pwcca(x: &Matrix, y: &Matrix, options: &SvccaOptions) -> Result<CcaResult, SimilarityError> {
    correlate(x, y, options, true)
}

/// The largest ratio of the largest to the smallest kept singular value for which
/// [`CcaSide`] forms its basis as `X V_k S_k⁻¹` (one matrix product) rather than through the
/// Householder reflectors (about twice the work): the product's relative rounding grows with
/// that ratio, so it stays near `1e5 · 2⁻⁵³ ≈ 1e-11`.
const DIVIDE_BELOW: f64 = 1e5;

/// What [`svd_of`] found.
struct Decomposed {
    /// Singular values, descending.
    s: Vec<f64>,
    /// Thin `U` (empty unless asked for).
    u: Mat<f64>,
    /// Thin `V` (empty unless asked for).
    v: Mat<f64>,
}

/// The singular values of `r` and, as asked, its thin `U` and `V`.
fn svd_of(r: MatRef<'_, f64>, want_u: bool, want_v: bool) -> Result<Decomposed, SimilarityError> {
    let (rows, cols) = (r.nrows(), r.ncols());
    let size = rows.min(cols);
    let mut s = faer::diag::Diag::<f64>::zeros(size);
    let mut u = Mat::<f64>::zeros(if want_u { rows } else { 0 }, size);
    let mut v = Mat::<f64>::zeros(if want_v { cols } else { 0 }, size);
    let vectors = |wanted: bool| {
        if wanted {
            ComputeSvdVectors::Thin
        } else {
            ComputeSvdVectors::No
        }
    };
    let mut scratch = MemBuffer::new(svd_scratch::<f64>(
        rows,
        cols,
        vectors(want_u),
        vectors(want_v),
        Par::Seq,
        Default::default(),
    ));
    svd(
        r,
        s.as_mut(),
        want_u.then(|| u.as_mut()),
        want_v.then(|| v.as_mut()),
        Par::Seq,
        MemStack::new(&mut scratch),
        Default::default(),
    )
    .map_err(svd_error)?;
    Ok(Decomposed {
        s: s.column_vector().iter().copied().collect(),
        u,
        v,
    })
}

fn correlate(
    x: &Matrix,
    y: &Matrix,
    options: &SvccaOptions,
    weighted: bool,
) -> Result<CcaResult, SimilarityError> {
    let keep = keep_fraction(options)?;
    let instances = check_instances(x, y, instances_needed(options))?;
    let side_work = CcaSide::work(instances, x.cols()) + CcaSide::work(instances, y.cols());
    if parallel::pays(side_work) {
        // Two threads: each side reduced on its own, then one product of the bases.
        let (side_x, side_y) = parallel::join(
            side_work,
            || CcaSide::new(x, options, weighted),
            || CcaSide::new(y, options, false),
        );
        return CcaSide::correlate(&side_x?, &side_y.map_err(|e| e.about(Operand::Second))?);
    }
    let stacked = stack(x, y, options.centre)?;
    let (p, q) = stacked.live;
    let mut z = stacked.z;
    householder_r(&mut z);
    let m = instances.min(p + q);
    let px = m.min(p);
    let zr = z.as_ref();
    // R is upper trapezoidal; below its diagonal `z` holds Householder vectors.
    let r_x = Mat::from_fn(px, p, |i, j| if i <= j { *zr.get(i, j) } else { 0.0 });
    let r_y = Mat::from_fn(
        m,
        q,
        |i, j| {
            if i <= p + j { *zr.get(i, p + j) } else { 0.0 }
        },
    );
    drop(z);

    let (pf, qf, mf) = (p as f64, q as f64, m as f64);
    let work = 10.0 * (pf * pf * pf + mf * qf * qf);
    let (side_x, side_y) = parallel::join(
        work,
        || svd_of(r_x.as_ref(), true, true),
        || svd_of(r_y.as_ref(), true, true),
    );
    let (side_x, side_y) = (side_x?, side_y?);
    let kx = kept(&side_x.s, instances.max(p), keep);
    let ky = kept(&side_y.s, instances.max(q), keep);
    if kx == 0 {
        return Err(SimilarityError::NoVariance {
            operand: Operand::First,
        });
    }
    if ky == 0 {
        return Err(SimilarityError::NoVariance {
            operand: Operand::Second,
        });
    }
    check_span(instances, options.centre, (kx, ky))?;

    // U_X lives in the first `px` coordinates of Q, so only those rows of U_Y meet it.
    let mut overlap = Mat::<f64>::zeros(kx, ky);
    matmul(
        overlap.as_mut(),
        Accum::Replace,
        side_x.u.as_ref().subcols(0, kx).transpose(),
        side_y.u.as_ref().submatrix(0, 0, px, ky),
        1.0,
        Par::Seq,
    );
    let norms = if weighted {
        column_norms(r_x.as_ref())
    } else {
        Vec::new()
    };
    let weights = weighted.then(|| Weights {
        v: side_x.v.as_ref().subcols(0, kx),
        s: side_x.s.get(..kx).unwrap_or(&[]),
        norms: &norms,
    });
    conclude(overlap, weights, (kx, ky), stacked.dead)
}

/// What PWCCA weighs the first side's canonical variates by: its kept right singular vectors
/// `V_k` (live neurons x kept), singular values `S_k` and the norms of its centred live neurons.
struct Weights<'a> {
    v: MatRef<'a, f64>,
    s: &'a [f64],
    norms: &'a [f64],
}

/// The canonical correlations, their means and (with `weights`) PWCCA, from the inner
/// products `overlap` (`kx x ky`) of two orthonormal bases of the kept subspaces.
fn conclude(
    overlap: Mat<f64>,
    weights: Option<Weights<'_>>,
    kept: (usize, usize),
    dropped_dead: (usize, usize),
) -> Result<CcaResult, SimilarityError> {
    let (coefficients, pwcca) = match weights {
        Some(weights) => {
            let svd = overlap.thin_svd().map_err(svd_error)?;
            let coefficients = clamped(svd.S().column_vector().iter().copied());
            let weights = projection_weights(&weights, svd.U());
            let value = coefficients.iter().zip(&weights).map(|(c, w)| c * w).sum();
            (coefficients, Some(value))
        }
        None => {
            let values = overlap.singular_values().map_err(svd_error)?;
            (clamped(values.into_iter()), None)
        }
    };
    let count = coefficients.len().max(1) as f64;
    Ok(CcaResult {
        mean: coefficients.iter().sum::<f64>() / count,
        mean_squared: coefficients.iter().map(|c| c * c).sum::<f64>() / count,
        coefficients,
        kept,
        dropped_dead,
        pwcca,
    })
}

/// One matrix made ready for CCA against any number of others ([`super::similarity_grid`]):
/// its kept directions as orthonormal columns in instance space, so that a pair costs one
/// product of two such bases and a small SVD.
///
/// The steps, for the centred live neurons `X` (`n x p`): a Householder QR `X = Q R`; a thin
/// SVD `R = U S Vᵀ` (the singular values are `X`'s); the kept `k` directions by the rule of
/// [`SvccaOptions::keep_fraction`]; then the basis `Q U_k = X V_k S_k⁻¹` (`n x k`). When the
/// kept directions are well conditioned (largest over smallest kept singular value at most
/// [`DIVIDE_BELOW`]) it is that one product; otherwise it is formed by applying the
/// Householder reflectors to `U_k`, dividing by nothing, so a badly conditioned layer loses
/// nothing. The canonical correlations of two sides are the singular values of
/// `basis_xᵀ basis_y`, the same numbers the one QR of both matrices side by side finds (a test
/// holds the paths together). [`svcca`] takes this path itself when it has two threads.
pub(super) struct CcaSide {
    /// `n x k`, orthonormal columns spanning the kept directions.
    basis: Mat<f64>,
    /// `V_k` (live neurons x `k`), for PWCCA; empty when not `weighted`.
    v: Mat<f64>,
    /// The `k` kept singular values.
    s: Vec<f64>,
    /// Norms of the centred live neurons (PWCCA's weights divide by them).
    norms: Vec<f64>,
    /// Dead neurons dropped.
    dead: usize,
    /// Centred before the decomposition.
    centre: bool,
}

impl CcaSide {
    /// Prepares `matrix` (refusals as [`svcca`]'s, about [`Operand::First`]). `weighted` keeps
    /// what PWCCA needs when this side comes first.
    pub(super) fn new(
        matrix: &Matrix,
        options: &SvccaOptions,
        weighted: bool,
    ) -> Result<CcaSide, SimilarityError> {
        let keep = keep_fraction(options)?;
        let needed = instances_needed(options);
        let n = matrix.rows();
        if n < needed {
            return Err(SimilarityError::TooFewInstances {
                instances: n,
                needed,
            });
        }
        let columns = scan(matrix, Operand::First, options.centre)?;
        let p = columns.live();
        if p == 0 {
            return Err(SimilarityError::NoVariance {
                operand: Operand::First,
            });
        }
        let mut z = Mat::<f64>::zeros(n, p);
        write_columns(matrix, &columns, &mut z, 0);
        let factor = householder_r(&mut z);
        let size = n.min(p);
        let zr = z.as_ref();
        let r = Mat::from_fn(size, p, |i, j| if i <= j { *zr.get(i, j) } else { 0.0 });
        let norms = column_norms(r.as_ref());

        // The singular values and `V` first: enough for the basis when the kept directions
        // are well conditioned.
        let Decomposed { s, mut v, .. } = svd_of(r.as_ref(), false, true)?;
        let k = kept(&s, n.max(p), keep);
        // `k` is 0 only when every singular value is numerically zero.
        let (Some(&largest), Some(&smallest)) =
            (s.first(), k.checked_sub(1).and_then(|i| s.get(i)))
        else {
            return Err(SimilarityError::NoVariance {
                operand: Operand::First,
            });
        };
        let basis = if largest <= smallest * DIVIDE_BELOW {
            // `X V_k S_k⁻¹`: one product of the centred data (written again: the QR took
            // its place), each column's rounding at most about `DIVIDE_BELOW · ε`.
            drop(z);
            let mut centred = Mat::<f64>::zeros(n, p);
            write_columns(matrix, &columns, &mut centred, 0);
            let scaled = Mat::from_fn(p, k, |i, j| {
                *v.as_ref().get(i, j) / s.get(j).copied().unwrap_or(1.0)
            });
            let mut basis = Mat::<f64>::zeros(n, k);
            matmul(
                basis.as_mut(),
                Accum::Replace,
                centred.as_ref(),
                scaled.as_ref(),
                1.0,
                Par::Seq,
            );
            basis
        } else {
            // Badly conditioned: `Q [U_k; 0]` through the reflectors, dividing by nothing. `U`
            // and `V` from one decomposition, so PWCCA's weights match the basis.
            let again = svd_of(r.as_ref(), true, weighted)?;
            let u = again.u;
            if weighted {
                v = again.v;
            }
            let mut basis = Mat::<f64>::zeros(n, k);
            basis
                .as_mut()
                .submatrix_mut(0, 0, size, k)
                .copy_from(u.as_ref().subcols(0, k));
            if let Some(factor) = factor {
                let mut scratch = MemBuffer::new(
                    apply_block_householder_sequence_on_the_left_in_place_scratch::<f64>(
                        n,
                        factor.nrows(),
                        k,
                    ),
                );
                apply_block_householder_sequence_on_the_left_in_place_with_conj(
                    z.as_ref().subcols(0, size),
                    factor.as_ref(),
                    Conj::No,
                    basis.as_mut(),
                    Par::Seq,
                    MemStack::new(&mut scratch),
                );
            }
            basis
        };
        Ok(CcaSide {
            basis,
            v: if weighted {
                v.subcols(0, k).to_owned()
            } else {
                Mat::zeros(0, 0)
            },
            s: s.into_iter().take(k).collect(),
            norms,
            dead: columns.dead(),
            centre: options.centre,
        })
    }

    /// Multiply-adds [`CcaSide::new`] costs, roughly (the QR, the SVD, the basis).
    pub(super) fn work(rows: usize, cols: usize) -> f64 {
        let (n, p) = (rows as f64, cols as f64);
        2.0 * n * p * p + 10.0 * p * p * p + 2.0 * n * p * p
    }

    /// CCA of two prepared sides ([`svcca`]'s answer for their matrices; with PWCCA's value
    /// when `x` was prepared `weighted`).
    pub(super) fn correlate(x: &CcaSide, y: &CcaSide) -> Result<CcaResult, SimilarityError> {
        let instances = x.basis.nrows();
        if instances != y.basis.nrows() {
            return Err(SimilarityError::InstanceMismatch {
                first: instances,
                second: y.basis.nrows(),
            });
        }
        let (kx, ky) = (x.basis.ncols(), y.basis.ncols());
        check_span(instances, x.centre && y.centre, (kx, ky))?;
        let mut overlap = Mat::<f64>::zeros(kx, ky);
        matmul(
            overlap.as_mut(),
            Accum::Replace,
            x.basis.as_ref().transpose(),
            y.basis.as_ref(),
            1.0,
            Par::Seq,
        );
        let weights = (x.v.ncols() == kx).then(|| Weights {
            v: x.v.as_ref(),
            s: &x.s,
            norms: &x.norms,
        });
        conclude(overlap, weights, (kx, ky), (x.dead, y.dead))
    }
}

/// The fraction of variance to keep, refused outside `(0, 1]`.
fn keep_fraction(options: &SvccaOptions) -> Result<f64, SimilarityError> {
    let keep = options.keep_fraction;
    if keep > 0.0 && keep <= 1.0 {
        Ok(keep)
    } else {
        Err(SimilarityError::KeepFraction(keep))
    }
}

/// Instances needed for at least one direction per side: the data must span two
/// dimensions.
fn instances_needed(options: &SvccaOptions) -> usize {
    if options.centre { 3 } else { 2 }
}

/// Refuses kept directions the instances cannot hold apart: centred, `instances` span
/// `instances - 1` dimensions, and two subspaces of `kept.0 + kept.1` more dimensions than
/// that share a direction whatever the data.
fn check_span(
    instances: usize,
    centred: bool,
    kept: (usize, usize),
) -> Result<(), SimilarityError> {
    let span = if centred {
        instances.saturating_sub(1)
    } else {
        instances
    };
    if kept.0 + kept.1 > span {
        return Err(SimilarityError::TooFewInstancesForDirections {
            instances,
            span,
            first: kept.0,
            second: kept.1,
        });
    }
    Ok(())
}

/// Replaces `z` by its Householder QR factorization in place: `R` in and above the diagonal,
/// the reflectors' essential parts below it; returns their block factor (`None` for an
/// empty `z`), which applies `Q` with the reflectors.
fn householder_r(z: &mut Mat<f64>) -> Option<Mat<f64>> {
    let (rows, cols) = (z.nrows(), z.ncols());
    let size = rows.min(cols);
    if size == 0 {
        return None;
    }
    let block = recommended_block_size::<f64>(rows, cols);
    let mut coefficients = Mat::<f64>::zeros(block, size);
    let mut scratch = MemBuffer::new(qr_in_place_scratch::<f64>(
        rows,
        cols,
        block,
        Par::Seq,
        Default::default(),
    ));
    qr_in_place(
        z.as_mut(),
        coefficients.as_mut(),
        Par::Seq,
        MemStack::new(&mut scratch),
        Default::default(),
    );
    Some(coefficients)
}

fn svd_error(_: SvdError) -> SimilarityError {
    SimilarityError::Svd
}

/// How many leading directions to keep from descending singular values `s` of a matrix
/// whose larger dimension is `size`: the fewest whose squared values reach `keep` of the
/// total, among those above `size * f64::EPSILON` times the largest (numpy's `matrix_rank`
/// tolerance). 0 only when every value is numerically zero.
pub(super) fn kept(s: &[f64], size: usize, keep: f64) -> usize {
    let largest = s.first().copied().unwrap_or(0.0);
    let tolerance = largest * size as f64 * f64::EPSILON;
    let rank = s.iter().take_while(|&&v| v > tolerance).count();
    let total: f64 = s.iter().take(rank).map(|v| v * v).sum();
    let target = keep * total;
    let mut sum = 0.0;
    for (index, v) in s.iter().take(rank).enumerate() {
        sum += v * v;
        if sum >= target {
            return index + 1;
        }
    }
    // Summed in the same order as `total`, the last partial sum equals it; unreachable.
    rank
}

/// Canonical correlations clamped into `[0, 1]` (rounding can pass 1 by an ulp).
fn clamped(values: impl Iterator<Item = f64>) -> Vec<f64> {
    values.map(|v| v.clamp(0.0, 1.0)).collect()
}

/// Norms of the columns of `r` (those of the centred neurons it factors).
fn column_norms(r: MatRef<'_, f64>) -> Vec<f64> {
    r.col_iter()
        .map(|col| col.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect()
}

/// PWCCA weights of the canonical variates `h_i = Q U_Xk a_i` (`a_i` the columns of
/// `a`, `kx x c`), normalised to sum 1: `α_i = Σ_j |x_jᵀ h_i| / ||x_j||`, with `Xᵀ h_i =
/// V_Xk S_Xk a_i` and `||x_j||` the norm of centred neuron `j`.
fn projection_weights(side: &Weights<'_>, a: MatRef<'_, f64>) -> Vec<f64> {
    let (kx, c) = (side.s.len(), a.ncols());
    // S_Xk a, then V_Xk S_Xk a (neurons x c).
    let scaled = Mat::from_fn(kx, c, |i, j| {
        side.s.get(i).copied().unwrap_or(0.0) * *a.get(i, j)
    });
    let mut loads = Mat::<f64>::zeros(side.v.nrows(), c);
    matmul(
        loads.as_mut(),
        Accum::Replace,
        side.v.subcols(0, kx),
        scaled.as_ref(),
        1.0,
        Par::Seq,
    );
    let mut weights: Vec<f64> = loads
        .col_iter()
        .map(|col| {
            col.iter()
                .zip(side.norms)
                .filter(|(_, norm)| **norm > 0.0)
                .map(|(v, norm)| v.abs() / norm)
                .sum()
        })
        .collect();
    let total: f64 = weights.iter().sum();
    if total > 0.0 {
        weights.iter_mut().for_each(|w| *w /= total);
    }
    weights
}
