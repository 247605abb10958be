//! The CCA family: SVCCA (Raghu et al. 2017), plain CCA and PWCCA (Morcos et al. 2018),
//! through orthogonal factorizations of the centred data rather than inverse square roots of
//! covariance matrices, so ill-conditioned layers lose no accuracy to squaring.
//!
//! Each matrix is reduced on its own ([`CcaSide`]; the two sides of a pair on two threads
//! when that pays), for centred `X` (`n x p` live neurons):
//! 1. a Householder QR `X = Q R` (never forming `Q`);
//! 2. a thin SVD `R = U S Vᵀ` (the singular values are `X`'s), keeping the leading directions
//!    by the rule of [`SvccaOptions::keep_fraction`]; `Q U_k = X V_k S_k⁻¹` is an orthonormal
//!    basis of the reduced data.
//! 3. CCA: the canonical correlations of two sides are the singular values of
//!    `(Q_x U_xk)ᵀ (Q_y U_yk)`. For well-conditioned kept directions that is
//!    `W_xᵀ (XᵀY) W_y` with `W = V_k S_k⁻¹`: one `n`-sized product of the centred data; a
//!    badly conditioned side forms its basis through the reflectors instead (see
//!    [`CcaSide`], [`DIVIDE_BELOW`] and [`CROSS_BELOW`]).
//! 4. PWCCA weights each correlation by how much of the first layer its canonical variate
//!    accounts for (see [`pwcca`]); `Xᵀ h = V_Xk S_Xk a` for the variate `h = Q U_Xk a`, so
//!    no `n`-sized work is needed there.
//!
//! A grid of many pairs ([`super::similarity_grid`]) reduces each distinct matrix once and
//! pays only step 3 per pair.

use std::borrow::Cow;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::householder::{
    apply_block_householder_sequence_on_the_left_in_place_scratch,
    apply_block_householder_sequence_on_the_left_in_place_with_conj,
};
use faer::linalg::matmul::matmul;
use faer::linalg::qr::no_pivoting::factor::{
    qr_in_place, qr_in_place_scratch, recommended_block_size,
};
use faer::linalg::svd::{ComputeSvdVectors, SvdError, SvdParams, svd, svd_scratch};
use faer::{Accum, Auto, Conj, Mat, MatRef, Par, Spec};

use super::prepare::{check_instances, scan, write_columns};
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

/// The largest condition (largest over smallest kept singular value) for which a
/// [`CcaSide`] keeps its basis as `X V_k S_k⁻¹` rather than forming it through the
/// Householder reflectors (about twice the work): the product's relative rounding grows with
/// the condition, so it stays near `1e5 · 2⁻⁵³ ≈ 1e-11`.
const DIVIDE_BELOW: f64 = 1e5;

/// The largest product of two sides' conditions for which [`CcaSide::correlate`] goes
/// through the cross product of the centred data, `W_xᵀ (XᵀY) W_y`, rather than the product
/// of the two bases: an entry of `XᵀY` carries a rounding of about `ε ||x_i|| ||y_j||`,
/// which `W_x` and `W_y` scale by up to both conditions, so this bound keeps it near
/// `1e5 · 2⁻⁵³ ≈ 1e-11` too. Activations keeping 99% of their variance are far inside it
/// (measured once with numpy: conditions of 30 and 22 on the bench's 5,000 x 512 pair, at
/// most 10 on its synthetic 1,000 x 40 layers).
const CROSS_BELOW: f64 = 1e5;

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
    // faer's divide and conquer stops recursing at 128 by default; 32 was 4% faster on the
    // 512 x 512 factors of the bench (0.037 s against 0.038 s; 64: 0.0375 s).
    let mut params = <SvdParams as Auto<f64>>::auto();
    if size > params.recursion_threshold {
        params.recursion_threshold = 32;
    }
    let params = Spec::new(params);
    let mut scratch = MemBuffer::new(svd_scratch::<f64>(
        rows,
        cols,
        vectors(want_u),
        vectors(want_v),
        Par::Seq,
        params,
    ));
    svd(
        r,
        s.as_mut(),
        want_u.then(|| u.as_mut()),
        want_v.then(|| v.as_mut()),
        Par::Seq,
        MemStack::new(&mut scratch),
        params,
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
    keep_fraction(options)?;
    let instances = check_instances(x, y, instances_needed(options))?;
    // Each side reduced on its own (on two threads when that pays), then correlated.
    let work = CcaSide::work(instances, x.cols()) + CcaSide::work(instances, y.cols());
    let (side_x, side_y) = parallel::join(
        work,
        || CcaSide::new(x, options, weighted),
        || CcaSide::new(y, options, false),
    );
    CcaSide::correlate(&side_x?, &side_y.map_err(|e| e.about(Operand::Second))?)
}

/// The canonical correlations of sides `x` and `y`, their means and (when `x` was prepared
/// `weighted`) PWCCA, from the inner products `overlap` (`kx x ky`) of orthonormal bases of
/// their kept subspaces.
fn conclude(overlap: Mat<f64>, x: &CcaSide, y: &CcaSide) -> Result<CcaResult, SimilarityError> {
    let weighted = x.v.ncols() == x.s.len();
    let (coefficients, pwcca) = if weighted {
        // The canonical directions in the first side's coordinates (`U`), not the second's.
        let svd = svd_of(overlap.as_ref(), true, false)?;
        let coefficients = clamped(svd.s.into_iter());
        let weights = projection_weights(x, svd.u.as_ref());
        let value = coefficients.iter().zip(&weights).map(|(c, w)| c * w).sum();
        (coefficients, Some(value))
    } else {
        let values = svd_of(overlap.as_ref(), false, false)?.s;
        (clamped(values.into_iter()), None)
    };
    let count = coefficients.len().max(1) as f64;
    Ok(CcaResult {
        mean: coefficients.iter().sum::<f64>() / count,
        mean_squared: coefficients.iter().map(|c| c * c).sum::<f64>() / count,
        coefficients,
        kept: (x.s.len(), y.s.len()),
        dropped_dead: (x.dead, y.dead),
        pwcca,
    })
}

/// One matrix made ready for CCA against any number of others (one other for [`svcca`],
/// many for [`super::similarity_grid`]).
///
/// The steps, for the centred live neurons `X` (`n x p`): a Householder QR `X = Q R`; a thin
/// SVD `R = U S Vᵀ` (the singular values are `X`'s); the kept `k` directions by the rule of
/// [`SvccaOptions::keep_fraction`]. Their orthonormal basis in instance space is
/// `Q U_k = X W` with `W = V_k S_k⁻¹`. When the kept directions are well conditioned (largest
/// over smallest kept singular value, the side's condition, at most [`DIVIDE_BELOW`]) the
/// side keeps `X` and `W` ([`Span::Whitened`]) and never needs the basis itself; otherwise
/// it forms the basis by applying the Householder reflectors to `U_k`, dividing by nothing
/// ([`Span::Basis`]), so a badly conditioned layer loses nothing.
pub(super) struct CcaSide {
    span: Span,
    /// The largest kept singular value over the smallest.
    condition: f64,
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

/// How a [`CcaSide`] holds its kept directions.
enum Span {
    /// The centred live data `X` (`n x p`) and `W = V_k S_k⁻¹` (`p x k`): the basis is `X W`.
    Whitened { centred: Mat<f64>, map: Mat<f64> },
    /// The basis itself (`n x k`, orthonormal columns), formed through the reflectors.
    Basis(Mat<f64>),
}

impl CcaSide {
    /// Prepares `matrix` (refusals as [`svcca`]'s, about [`Operand::First`]). `weighted` keeps
    /// what PWCCA needs when this side comes first.
    pub(super) fn new(
        matrix: &Matrix,
        options: &SvccaOptions,
        weighted: bool,
    ) -> Result<CcaSide, SimilarityError> {
        CcaSide::new_dividing_below(matrix, options, weighted, DIVIDE_BELOW)
    }

    /// [`CcaSide::new`], keeping `X` and `W` only when the condition is at most
    /// `divide_below` (the tests force the reflectors with 0).
    pub(super) fn new_dividing_below(
        matrix: &Matrix,
        options: &SvccaOptions,
        weighted: bool,
        divide_below: f64,
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
        write_columns(matrix, &columns, &mut z);
        // A small side keeps a copy of its centred data from before the QR; a large one
        // writes it again afterwards, into the QR's buffer (see `COPY_UP_TO`).
        let copy = (n * p <= COPY_UP_TO).then(|| z.clone());
        let factor = householder_r(&mut z);
        let size = n.min(p);
        let zr = z.as_ref();
        let r = Mat::from_fn(size, p, |i, j| if i <= j { *zr.get(i, j) } else { 0.0 });
        let norms = column_norms(r.as_ref());

        // The singular values and `V` first: enough when the kept directions are well
        // conditioned.
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
        let condition = largest / smallest;
        let span = if condition <= divide_below {
            let centred = copy.unwrap_or_else(|| {
                // In the QR's place (its reflectors are not needed).
                write_columns(matrix, &columns, &mut z);
                z
            });
            let map = Mat::from_fn(p, k, |i, j| {
                *v.as_ref().get(i, j) / s.get(j).copied().unwrap_or(1.0)
            });
            Span::Whitened { centred, map }
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
            Span::Basis(basis)
        };
        Ok(CcaSide {
            span,
            condition,
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

    /// Multiply-adds [`CcaSide::new`] costs, roughly (the QR and the SVD).
    pub(super) fn work(rows: usize, cols: usize) -> f64 {
        let (n, p) = (rows as f64, cols as f64);
        2.0 * n * p * p + 10.0 * p * p * p
    }

    fn instances(&self) -> usize {
        match &self.span {
            Span::Whitened { centred, .. } => centred.nrows(),
            Span::Basis(basis) => basis.nrows(),
        }
    }

    /// The orthonormal basis of the kept directions (`n x k`): formed as `X W` for a
    /// [`Span::Whitened`] side, whose rounding is at most about `condition · ε` a column.
    fn basis(&self) -> Cow<'_, Mat<f64>> {
        match &self.span {
            Span::Whitened { centred, map } => {
                let mut basis = Mat::<f64>::zeros(centred.nrows(), map.ncols());
                matmul(
                    basis.as_mut(),
                    Accum::Replace,
                    centred.as_ref(),
                    map.as_ref(),
                    1.0,
                    Par::Seq,
                );
                Cow::Owned(basis)
            }
            Span::Basis(basis) => Cow::Borrowed(basis),
        }
    }

    /// CCA of two prepared sides ([`svcca`]'s answer for their matrices; with PWCCA's value
    /// when `x` was prepared `weighted`).
    pub(super) fn correlate(x: &CcaSide, y: &CcaSide) -> Result<CcaResult, SimilarityError> {
        CcaSide::correlate_crossing_below(x, y, CROSS_BELOW)
    }

    /// [`CcaSide::correlate`], through the cross product only when the product of the two
    /// conditions is at most `cross_below` (the tests force the bases with 0).
    pub(super) fn correlate_crossing_below(
        x: &CcaSide,
        y: &CcaSide,
        cross_below: f64,
    ) -> Result<CcaResult, SimilarityError> {
        let instances = x.instances();
        if instances != y.instances() {
            return Err(SimilarityError::InstanceMismatch {
                first: instances,
                second: y.instances(),
            });
        }
        let (kx, ky) = (x.s.len(), y.s.len());
        check_span(instances, x.centre && y.centre, (kx, ky))?;
        let overlap = match (&x.span, &y.span) {
            (
                Span::Whitened {
                    centred: cx,
                    map: wx,
                },
                Span::Whitened {
                    centred: cy,
                    map: wy,
                },
            ) if x.condition * y.condition <= cross_below => {
                cross_overlap(cx.as_ref(), wx.as_ref(), cy.as_ref(), wy.as_ref())
            }
            _ => {
                let (bx, by) = (x.basis(), y.basis());
                let mut overlap = Mat::<f64>::zeros(kx, ky);
                matmul(
                    overlap.as_mut(),
                    Accum::Replace,
                    bx.as_ref().transpose(),
                    by.as_ref(),
                    1.0,
                    Par::Seq,
                );
                overlap
            }
        };
        conclude(overlap, x, y)
    }
}

/// The inner products of two sides' bases, `(X W_x)ᵀ (Y W_y)`, as `W_xᵀ (XᵀY) W_y`: the
/// `n`-sized work is one product of the centred data (`p x q`, two threads taking half the
/// instances each when that pays) instead of forming both bases and multiplying them. Its
/// rounding grows with the product of the two conditions ([`CROSS_BELOW`]).
fn cross_overlap(
    cx: MatRef<'_, f64>,
    wx: MatRef<'_, f64>,
    cy: MatRef<'_, f64>,
    wy: MatRef<'_, f64>,
) -> Mat<f64> {
    let (n, p, q) = (cx.nrows(), cx.ncols(), cy.ncols());
    let half = n / 2;
    let part = |start: usize, rows: usize| {
        let mut c = Mat::<f64>::zeros(p, q);
        matmul(
            c.as_mut(),
            Accum::Replace,
            cx.subrows(start, rows).transpose(),
            cy.subrows(start, rows),
            1.0,
            Par::Seq,
        );
        c
    };
    let work = (n * p * q) as f64;
    let (mut cross, lower) = parallel::join(work, || part(0, half), || part(half, n - half));
    cross += &lower;
    // `W_xᵀ C`, then times `W_y`.
    let mut left = Mat::<f64>::zeros(wx.ncols(), q);
    matmul(
        left.as_mut(),
        Accum::Replace,
        wx.transpose(),
        cross.as_ref(),
        1.0,
        Par::Seq,
    );
    let mut overlap = Mat::<f64>::zeros(wx.ncols(), wy.ncols());
    matmul(
        overlap.as_mut(),
        Accum::Replace,
        left.as_ref(),
        wy,
        1.0,
        Par::Seq,
    );
    overlap
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

/// The most values (instances x live neurons) for which a [`CcaSide`] copies its centred
/// data before the QR rather than writing it again after: a copy of data still in cache is
/// cheaper than the transposing write, while a large copy costs a second large allocation
/// (its page faults alone made the 5,000 x 512 pair 8 ms slower a side).
const COPY_UP_TO: usize = 1 << 16;

/// The largest block of Householder reflectors the QR applies at once.
const QR_BLOCK: usize = 32;

/// Replaces `z` by its Householder QR factorization in place: `R` in and above the diagonal,
/// the reflectors' essential parts below it; returns their block factor (`None` for an
/// empty `z`), which applies `Q` with the reflectors.
fn householder_r(z: &mut Mat<f64>) -> Option<Mat<f64>> {
    let (rows, cols) = (z.nrows(), z.ncols());
    let size = rows.min(cols);
    if size == 0 {
        return None;
    }
    // faer recommends 64 for 5,000 x 512; 32 made the bench's SVCCA of that pair 3-4% faster
    // on this machine (16 was faster alone, 0.034 s against 0.037 s, but not in the bench).
    let block = recommended_block_size::<f64>(rows, cols).min(QR_BLOCK);
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
/// V_Xk S_Xk a_i` and `||x_j||` the norm of centred neuron `j`, from `side` (prepared
/// `weighted`).
fn projection_weights(side: &CcaSide, a: MatRef<'_, f64>) -> Vec<f64> {
    let (kx, c) = (side.s.len(), a.ncols());
    // S_Xk a, then V_Xk S_Xk a (neurons x c).
    let scaled = Mat::from_fn(kx, c, |i, j| {
        side.s.get(i).copied().unwrap_or(0.0) * *a.get(i, j)
    });
    let mut loads = Mat::<f64>::zeros(side.v.nrows(), c);
    matmul(
        loads.as_mut(),
        Accum::Replace,
        side.v.as_ref().subcols(0, kx),
        scaled.as_ref(),
        1.0,
        Par::Seq,
    );
    let mut weights: Vec<f64> = loads
        .col_iter()
        .map(|col| {
            col.iter()
                .zip(&side.norms)
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
