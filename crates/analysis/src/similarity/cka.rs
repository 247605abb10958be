//! Linear CKA (Kornblith et al. 2019), biased and debiased, from Gram statistics of the
//! column-centred matrices: `CKA = ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F)`.
//!
//! The three squared norms come from whichever form is cheaper. The feature form (`XᵀX`,
//! `YᵀY`, `YᵀX`: about `n (p + q)² / 2` multiply-adds for `n` instances and `p`, `q`
//! neurons) is used when `n >= p + q`, streaming blocks of 512 rows, so many instances never
//! build an `n x n` matrix nor a converted copy of the data; two threads take half the rows
//! each. Each block is centred in `f64`, scaled so that the side's largest centred
//! magnitude is 1 (CKA is invariant to that; nothing can overflow) and rounded once to
//! `f32`; its products
//! are taken with faer's `f32` kernels (about 2.5x faster than `f64`) and accumulated in
//! `f64` across blocks. An entry's `f32` sum over at most 512 rows carries a relative
//! rounding error of order `√512 · 2⁻²⁴ ≈ 1.3e-6`; in the CKA ratio these errors largely
//! cancel (on two 5,000 x 512 activation matrices it agreed with numpy's all-`f64`
//! computation to `1e-9`), and the tests hold it to `1e-6` against `f64` oracles. The
//! sample form (`K = XXᵀ`, `L = YYᵀ` in `f64`, with `||XᵀX||² = ||K||²` and
//! `||YᵀX||² = <K, L>`) is used when there are fewer instances than neurons. The
//! self-products are symmetric, so only their lower triangles are computed.
//!
//! Debiased CKA replaces each HSIC by the unbiased estimator of Song et al. (2012),
//! `HSIC₁ = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n-1)(n-2)) - 2/(n-2)·1ᵀK̃L̃1] / (n(n-3))`, where `K̃` is
//! `K` with its diagonal zeroed. For linear kernels of centred features it needs no `n x n`
//! matrix: with `r_i = ||x_i||²` (squared row norms of `X`), `s_i = ||y_i||²`,
//! `R = Σ r_i = ||X||²_F` and `S = Σ s_i`, centring gives `K1 = 0`, hence `K̃1 = -r`,
//! `1ᵀK̃1 = -R`, `1ᵀK̃L̃1 = rᵀs` and `tr(K̃L̃) = ||YᵀX||² - rᵀs`, so
//! `n(n-3)·HSIC₁ = ||YᵀX||² - n/(n-2)·rᵀs + R·S/((n-1)(n-2))`. The factor `n(n-3)` cancels
//! in the ratio. This is the google-research notebook's `feature_space_linear_cka(debiased=
//! True)`; the estimator is unchanged by centring, so it equals the Gram-space one on the
//! raw data (a test checks both).

use std::ops::Range;

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::traits::ComplexField;
use faer::{Accum, Mat, MatRef, Par};

use super::prepare::{CentreRows, Columns, check_instances, row_major, scan, scan_pair, wide};
use super::{Operand, SimilarityError, parallel};
use crate::Matrix;

/// Rows centred and multiplied together in the feature form: 512 took 0.037 s on a 5,000 x
/// 512 pair where 256 took 0.045 s (fewer `f32` block products to add to the `f64` sums);
/// 1,024 was no faster and 2,048 slower (`cargo xtask bench-similarity`, one thread).
const BLOCK_ROWS: usize = 512;

/// Linear CKA of `x` and `y` (instances x neurons, same instances), in `[0, 1]`: 1 when one
/// is an orthogonal transform of the other up to scale, unchanged by orthogonal maps and
/// isotropic scaling of either side. Each neuron is centred first; constant neurons add
/// nothing and are skipped. Needs at least 2 instances and a varying neuron on each side.
pub fn linear_cka(x: &Matrix, y: &Matrix) -> Result<f64, SimilarityError> {
    let n = check_instances(x, y, 2)?;
    let (products, _) = products(x, y, None, false)?;
    ratio(&products, (&[], &[]), n, false)
}

/// Debiased linear CKA of `x` and `y`: every HSIC replaced by the unbiased estimator of Song
/// et al. (2012), computed in feature space (see the module docs). Less biased upwards than
/// [`linear_cka`] when instances are few against neurons; may be slightly negative for
/// unrelated layers. Needs at least 4 instances; refused when a side's debiased
/// self-similarity is not positive.
pub fn linear_cka_debiased(x: &Matrix, y: &Matrix) -> Result<f64, SimilarityError> {
    let n = check_instances(x, y, 4)?;
    let (products, rows) = products(x, y, None, true)?;
    ratio(&products, (&rows.first, &rows.second), n, true)
}

/// CKA from the squared norms of the Gram products of `n` instances (and, `debiased`, the
/// squared row norms of both sides).
fn ratio(
    products: &Products,
    rows: (&[f64], &[f64]),
    n: usize,
    debiased: bool,
) -> Result<f64, SimilarityError> {
    if !debiased {
        let ratio = products.cross / (products.first * products.second).sqrt();
        return Ok(ratio.clamp(0.0, 1.0));
    }
    let n = n as f64;
    let debias = |squared_norm: f64, rows_dot: f64, total_a: f64, total_b: f64| {
        squared_norm - n / (n - 2.0) * rows_dot + total_a * total_b / ((n - 1.0) * (n - 2.0))
    };
    let (r, s) = rows;
    let (total_r, total_s) = (r.iter().sum::<f64>(), s.iter().sum::<f64>());
    let cross = debias(products.cross, dot(r, s), total_r, total_s);
    let first = debias(products.first, dot(r, r), total_r, total_r);
    let second = debias(products.second, dot(s, s), total_s, total_s);
    for (operand, value) in [(Operand::First, first), (Operand::Second, second)] {
        if value.is_nan() || value <= 0.0 {
            return Err(SimilarityError::NonPositiveSelfSimilarity { operand, value });
        }
    }
    Ok(cross / (first * second).sqrt())
}

/// One matrix made ready for CKA against many others ([`super::similarity_grid`]): its
/// centred live neurons scaled and rounded to `f32` once (as [`linear_cka`] does block by
/// block), its self-product `||XᵀX||²_F` and its squared row norms, so that a pair costs
/// only the cross product `YᵀX`, taken over the same blocks of rows as the pair path.
pub(super) struct CkaSide {
    /// Centred live neurons times `scale`, row-major `f32` (`instances x live`).
    data: Vec<f32>,
    instances: usize,
    live: usize,
    scale: f64,
    /// `||XᵀX||²_F` of the centred data.
    self_product: f64,
    /// Squared row norms of the centred data (empty unless asked for: debiased CKA).
    rows: Vec<f64>,
}

impl CkaSide {
    /// Prepares `matrix`, with its squared row norms when `row_norms` (debiased CKA needs
    /// them); refuses NaN or infinite values (about [`Operand::First`]). A matrix without a
    /// live neuron is prepared (and refused by [`CkaSide::cka`]), so that a pair reports its
    /// refusals in [`linear_cka`]'s order.
    pub(super) fn new(matrix: &Matrix, row_norms: bool) -> Result<CkaSide, SimilarityError> {
        let columns = scan(matrix, Operand::First, true)?;
        let (n, p) = (matrix.rows(), columns.live());
        let scale = scale_of(&columns);
        let mut data = vec![0.0f32; n * p];
        let mut xx = Mat::<f64>::zeros(p, p);
        let mut rows = Vec::with_capacity(n);
        if p > 0 {
            centre_block(matrix, &columns, scale, 0, n, &mut data);
            let mut block_xx = Mat::<f32>::zeros(p, p);
            for block in data.chunks(BLOCK_ROWS * p) {
                let v = MatRef::from_row_major_slice(block, block.len() / p, p);
                lower_gram(&mut block_xx, v.transpose(), Accum::Replace);
                add_to(&mut xx, &block_xx, true);
            }
            if row_norms {
                let unscale = 1.0 / (scale * scale);
                rows.extend(data.chunks_exact(p).map(|r| squared_norm(r) * unscale));
            }
        }
        Ok(CkaSide {
            data,
            instances: n,
            live: p,
            scale,
            self_product: lower_dot(&xx, &xx) / scale.powi(4),
            rows,
        })
    }

    /// Live neurons.
    pub(super) fn live(&self) -> usize {
        self.live
    }

    /// CKA (`debiased` or not; then both sides prepared with `row_norms`) of two prepared
    /// sides with the same instances, enough of them
    /// ([`linear_cka`]'s answer for their matrices, to rounding).
    pub(super) fn cka(x: &CkaSide, y: &CkaSide, debiased: bool) -> Result<f64, SimilarityError> {
        if x.instances != y.instances {
            return Err(SimilarityError::InstanceMismatch {
                first: x.instances,
                second: y.instances,
            });
        }
        for (operand, side) in [(Operand::First, x), (Operand::Second, y)] {
            if side.live == 0 {
                return Err(SimilarityError::NoVariance { operand });
            }
        }
        let (p, q) = (x.live, y.live);
        let mut yx = Mat::<f64>::zeros(q, p);
        let mut block_yx = Mat::<f32>::zeros(q, p);
        for (bx, by) in x
            .data
            .chunks(BLOCK_ROWS * p)
            .zip(y.data.chunks(BLOCK_ROWS * q))
        {
            let len = bx.len() / p;
            matmul(
                block_yx.as_mut(),
                Accum::Replace,
                MatRef::from_row_major_slice(by, len, q).transpose(),
                MatRef::from_row_major_slice(bx, len, p),
                1.0f32,
                Par::Seq,
            );
            add_to(&mut yx, &block_yx, false);
        }
        let products = Products {
            cross: squared_frobenius(&yx) / (x.scale * y.scale).powi(2),
            first: x.self_product,
            second: y.self_product,
        };
        ratio(&products, (&x.rows, &y.rows), x.instances, debiased)
    }
}

/// Which products [`products`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// `XᵀX`, `YᵀY`, `YᵀX`: neurons x neurons, streamed over blocks of rows.
    Feature,
    /// `XXᵀ`, `YYᵀ`: instances x instances.
    Sample,
}

/// Squared Frobenius norms of the Gram products of centred `X` and `Y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Products {
    /// `||YᵀX||²_F`.
    pub cross: f64,
    /// `||XᵀX||²_F`.
    pub first: f64,
    /// `||YᵀY||²_F`.
    pub second: f64,
}

/// Squared row norms of centred `X` and `Y` (empty unless asked for).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RowNorms {
    /// `||x_i||²` for every instance `i`.
    pub first: Vec<f64>,
    /// `||y_i||²` for every instance `i`.
    pub second: Vec<f64>,
}

/// The squared norms of the Gram products of centred `x` and `y` (and, with `row_norms`,
/// their squared row norms), in `form` or the cheaper form when `None`; both forms give the
/// same numbers up to rounding. Checks the input (finite values, a live neuron each side).
pub(super) fn products(
    x: &Matrix,
    y: &Matrix,
    form: Option<Form>,
    row_norms: bool,
) -> Result<(Products, RowNorms), SimilarityError> {
    let n = check_instances(x, y, 0)?;
    let (cx, cy) = scan_pair(x, y, true)?;
    let form = form.unwrap_or(if n < cx.live() + cy.live() {
        Form::Sample
    } else {
        Form::Feature
    });
    Ok(match form {
        Form::Feature => feature_form(x, y, &cx, &cy, row_norms),
        Form::Sample => sample_form(x, y, &cx, &cy, row_norms),
    })
}

/// The feature form: two halves of the rows on two threads (when worth it), each streaming
/// blocks of centred rows through the three products, then summed.
fn feature_form(
    x: &Matrix,
    y: &Matrix,
    cx: &Columns,
    cy: &Columns,
    row_norms: bool,
) -> (Products, RowNorms) {
    let n = x.rows();
    let (p, q) = (cx.live() as f64, cy.live() as f64);
    let work = n as f64 * (p + q) * (p + q) / 2.0;
    // Whole blocks in the first half, so both halves stream full blocks.
    let half = ((n / 2).div_ceil(BLOCK_ROWS) * BLOCK_ROWS).min(n);
    let run = |rows: Range<usize>| Partial::accumulate(x, y, cx, cy, rows, row_norms);
    let (mut a, b) = parallel::join(work, || run(0..half), || run(half..n));
    a.add(&b);
    // Undo the scaling: `X / sx` has products `sx^-2` and `sx^-4` times smaller.
    let (sx, sy) = (scale_of(cx), scale_of(cy));
    let products = Products {
        cross: squared_frobenius(&a.yx) / (sx * sy).powi(2),
        first: lower_dot(&a.xx, &a.xx) / sx.powi(4),
        second: lower_dot(&a.yy, &a.yy) / sy.powi(4),
    };
    let rows = RowNorms {
        first: a.rows.first.iter().map(|r| r / (sx * sx)).collect(),
        second: a.rows.second.iter().map(|s| s / (sy * sy)).collect(),
    };
    (products, rows)
}

/// The factor a side is multiplied by before its `f32` products: the reciprocal of its
/// largest centred magnitude, so every value is at most 1 and no product can overflow.
fn scale_of(columns: &Columns) -> f64 {
    let max = columns.max_abs();
    if max > 0.0 { 1.0 / max } else { 1.0 }
}

/// One thread's share of the feature form, accumulated in `f64`.
struct Partial {
    /// Lower triangle of `XᵀX` (scaled) over the rows seen.
    xx: Mat<f64>,
    /// Lower triangle of `YᵀY` (scaled).
    yy: Mat<f64>,
    /// `YᵀX` (scaled).
    yx: Mat<f64>,
    /// Squared row norms (scaled) of the rows seen, in order.
    rows: RowNorms,
}

impl Partial {
    /// Streams rows `rows`: each block is centred, scaled and rounded to `f32` once, its
    /// three products are taken in `f32` (faer's fastest kernels) and added to the `f64`
    /// sums.
    fn accumulate(
        x: &Matrix,
        y: &Matrix,
        cx: &Columns,
        cy: &Columns,
        rows: Range<usize>,
        row_norms: bool,
    ) -> Partial {
        let (p, q) = (cx.live(), cy.live());
        let (sx, sy) = (scale_of(cx), scale_of(cy));
        let mut out = Partial {
            xx: Mat::zeros(p, p),
            yy: Mat::zeros(q, q),
            yx: Mat::zeros(q, p),
            rows: RowNorms::default(),
        };
        let (mut bxx, mut byy, mut byx) = (
            Mat::<f32>::zeros(p, p),
            Mat::<f32>::zeros(q, q),
            Mat::<f32>::zeros(q, p),
        );
        let mut bx = vec![0.0f32; BLOCK_ROWS * p];
        let mut by = vec![0.0f32; BLOCK_ROWS * q];
        let mut start = rows.start;
        while start < rows.end {
            let len = BLOCK_ROWS.min(rows.end - start);
            centre_block(x, cx, sx, start, len, &mut bx);
            centre_block(y, cy, sy, start, len, &mut by);
            let (Some(vx), Some(vy)) = (bx.get(..len * p), by.get(..len * q)) else {
                break;
            };
            if row_norms {
                out.rows.first.extend(vx.chunks_exact(p).map(squared_norm));
                out.rows.second.extend(vy.chunks_exact(q).map(squared_norm));
            }
            let (vx, vy) = (
                MatRef::from_row_major_slice(vx, len, p),
                MatRef::from_row_major_slice(vy, len, q),
            );
            lower_gram(&mut bxx, vx.transpose(), Accum::Replace);
            lower_gram(&mut byy, vy.transpose(), Accum::Replace);
            matmul(
                byx.as_mut(),
                Accum::Replace,
                vy.transpose(),
                vx,
                1.0f32,
                Par::Seq,
            );
            add_to(&mut out.xx, &bxx, true);
            add_to(&mut out.yy, &byy, true);
            add_to(&mut out.yx, &byx, false);
            start += len;
        }
        out
    }

    /// Adds `other`, which saw the rows after this one's.
    fn add(&mut self, other: &Partial) {
        for (a, b) in [
            (&mut self.xx, &other.xx),
            (&mut self.yy, &other.yy),
            (&mut self.yx, &other.yx),
        ] {
            *a += b;
        }
        self.rows.first.extend_from_slice(&other.rows.first);
        self.rows.second.extend_from_slice(&other.rows.second);
    }
}

/// Adds an `f32` block product to its `f64` sum, column by column; only the lower triangle
/// (diagonal included) when `lower`.
fn add_to(sum: &mut Mat<f64>, block: &Mat<f32>, lower: bool) {
    wide(AddBlock { sum, block, lower });
}

/// [`add_to`] as a kernel for [`wide`].
struct AddBlock<'a> {
    sum: &'a mut Mat<f64>,
    block: &'a Mat<f32>,
    lower: bool,
}

impl pulp::NullaryFnOnce for AddBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        for j in 0..self.sum.ncols().min(self.block.ncols()) {
            let from = if self.lower { j } else { 0 };
            let (Some(s), Some(b)) = (
                self.sum.col_as_slice_mut(j).get_mut(from..),
                self.block.col_as_slice(j).get(from..),
            ) else {
                continue;
            };
            for (s, &b) in s.iter_mut().zip(b) {
                *s += f64::from(b);
            }
        }
    }
}

/// Squared norm of an `f32` row, summed in `f64` (four lanes, so that it vectorises).
fn squared_norm(row: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let chunks = row.chunks_exact(4);
    let rest: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(v) * f64::from(v);
        }
    }
    lanes.iter().sum::<f64>() + rest
}

/// Centres and scales rows `start..start + len` of `matrix` into `out`, row-major `f32`.
fn centre_block(
    matrix: &Matrix,
    columns: &Columns,
    scale: f64,
    start: usize,
    len: usize,
    out: &mut [f32],
) {
    let cols = matrix.cols();
    let rows = matrix
        .as_slice()
        .get(start * cols..(start + len) * cols)
        .unwrap_or(&[]);
    wide(CentreRows {
        columns,
        rows,
        cols,
        scale,
        out,
    });
}

/// The sample form, from row-major centred copies.
fn sample_form(
    x: &Matrix,
    y: &Matrix,
    cx: &Columns,
    cy: &Columns,
    row_norms: bool,
) -> (Products, RowNorms) {
    let n = x.rows();
    let (p, q) = (cx.live(), cy.live());
    let (ax, ay) = (row_major(x, cx), row_major(y, cy));
    let (vx, vy) = (
        MatRef::from_row_major_slice(&ax, n, p),
        MatRef::from_row_major_slice(&ay, n, q),
    );
    let work = (n * n) as f64 * (p + q) as f64 / 2.0;
    let gram = |a: MatRef<'_, f64>| {
        let mut out = Mat::zeros(n, n);
        lower_gram(&mut out, a, Accum::Replace);
        out
    };
    let (k, l) = parallel::join(work, || gram(vx), || gram(vy));
    let rows = if row_norms {
        RowNorms {
            first: ax.chunks_exact(p.max(1)).map(|r| dot(r, r)).collect(),
            second: ay.chunks_exact(q.max(1)).map(|r| dot(r, r)).collect(),
        }
    } else {
        RowNorms::default()
    };
    let products = Products {
        cross: lower_dot(&k, &l),
        first: lower_dot(&k, &k),
        second: lower_dot(&l, &l),
    };
    (products, rows)
}

/// Writes (or adds, by `accum`) the lower triangle (diagonal included) of `a aᵀ` into
/// `out`; the strict upper triangle is left alone.
fn lower_gram<T: ComplexField>(out: &mut Mat<T>, a: MatRef<'_, T>, accum: Accum) {
    triangular::matmul(
        out.as_mut(),
        BlockStructure::TriangularLower,
        accum,
        a,
        BlockStructure::Rectangular,
        a.transpose(),
        BlockStructure::Rectangular,
        T::one_impl(),
        Par::Seq,
    );
}

/// `<A, B>_F` of two symmetric matrices given by their lower triangles (as
/// [`lower_gram`] leaves them).
fn lower_dot(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    let mut total = 0.0;
    for j in 0..a.ncols().min(b.ncols()) {
        let (Some(ca), Some(cb)) = (a.col_as_slice(j).get(j..), b.col_as_slice(j).get(j..)) else {
            continue;
        };
        if let (Some((da, ra)), Some((db, rb))) = (ca.split_first(), cb.split_first()) {
            total += da * db + 2.0 * dot(ra, rb);
        }
    }
    total
}

/// `||A||²_F` of a full matrix.
fn squared_frobenius(a: &Mat<f64>) -> f64 {
    (0..a.ncols())
        .map(|j| {
            let c = a.col_as_slice(j);
            dot(c, c)
        })
        .sum()
}

/// Dot product of two equally long slices, in four lanes so that it vectorises.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let rest: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(u, v)| u * v)
        .sum();
    for (u, v) in ca.zip(cb) {
        for ((lane, u), v) in lanes.iter_mut().zip(u).zip(v) {
            *lane += u * v;
        }
    }
    lanes.iter().sum::<f64>() + rest
}
