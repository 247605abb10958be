//! Tests of the similarity measures: the google-research CKA notebook's published values on
//! its seeded data (fixture in `fixtures/`), identities and invariances, hand-computed
//! one-neuron answers, independent Gram-space and covariance-whitening oracles, the
//! reduction rule, dead neurons, refused input, and properties over random matrices.

use faer::{Mat, Side};
use proptest::prelude::*;

use super::cca::{CcaSide, kept};
use super::cka::{Form, RowNorms, products};
use super::*;
use crate::rng::SplitMix64;

/// The notebook's data, `np.random.seed(1337); X = np.random.randn(100, 10);
/// Y = np.random.randn(100, 10) + X`, as little-endian `f64`, X then Y, row-major.
const FIXTURE: &[u8] = include_bytes!("fixtures/seed1337_x_y.f64le");

/// CKA's feature form takes its products in `f32` blocks summed in `f64` (see `cka`): it
/// agrees with all-`f64` oracles to about 1e-7; tests hold it to this.
const CKA_TOLERANCE: f64 = 1e-6;

fn fixture_values() -> Vec<f64> {
    FIXTURE
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// The fixture's X and Y (rounded to `f32`, the matrix type's precision).
fn fixture() -> (Matrix, Matrix) {
    let values = fixture_values();
    assert_eq!(values.len(), 2 * 100 * 10);
    let to = |v: &[f64]| Matrix::new(100, 10, v.iter().map(|&v| v as f32).collect()).unwrap();
    (to(&values[..1000]), to(&values[1000..]))
}

/// Standard normal `rows x cols`.
fn normal(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut rng = SplitMix64::new(seed);
    Matrix::new(
        rows,
        cols,
        (0..rows * cols).map(|_| rng.normal() as f32).collect(),
    )
    .unwrap()
}

fn to_mat(m: &Matrix) -> Mat<f64> {
    Mat::from_fn(m.rows(), m.cols(), |i, j| f64::from(m.row(i).unwrap()[j]))
}

fn from_mat(m: &Mat<f64>) -> Matrix {
    let mut data = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            data.push(m[(i, j)] as f32);
        }
    }
    Matrix::new(m.nrows(), m.ncols(), data).unwrap()
}

/// `m · a`, rounded back to `f32`.
fn times(m: &Matrix, a: &Mat<f64>) -> Matrix {
    from_mat(&(to_mat(m) * a))
}

fn random_square(k: usize, seed: u64) -> Mat<f64> {
    to_mat(&normal(k, k, seed))
}

fn random_orthogonal(k: usize, seed: u64) -> Mat<f64> {
    random_square(k, seed).qr().compute_thin_Q()
}

fn centred(a: &Mat<f64>) -> Mat<f64> {
    let n = a.nrows() as f64;
    let means: Vec<f64> = (0..a.ncols())
        .map(|j| (0..a.nrows()).map(|i| a[(i, j)]).sum::<f64>() / n)
        .collect();
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] - means[j])
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

fn assert_all_close(a: &[f64], b: &[f64], tolerance: f64) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (u, v) in a.iter().zip(b) {
        assert!(close(*u, *v, tolerance), "{a:?} vs {b:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Oracles, computed the textbook way on explicit matrices.

/// CKA from `n x n` Gram matrices of the raw data: biased with the centring matrix `H`,
/// debiased with the unbiased HSIC of Song et al. (2012) on the uncentred Grams.
fn gram_cka(x: &Mat<f64>, y: &Mat<f64>, debiased: bool) -> f64 {
    let n = x.nrows();
    let k = x * x.transpose();
    let l = y * y.transpose();
    let hsic = |k: &Mat<f64>, l: &Mat<f64>| -> f64 {
        if debiased {
            let nf = n as f64;
            let zero_diag =
                |m: &Mat<f64>| Mat::from_fn(n, n, |i, j| if i == j { 0.0 } else { m[(i, j)] });
            let (k, l) = (zero_diag(k), zero_diag(l));
            let kl = &k * &l;
            let trace: f64 = (0..n).map(|i| kl[(i, i)]).sum();
            let sum = |m: &Mat<f64>| -> f64 {
                (0..n)
                    .flat_map(|i| (0..n).map(move |j| (i, j)))
                    .map(|(i, j)| m[(i, j)])
                    .sum()
            };
            (trace + sum(&k) * sum(&l) / ((nf - 1.0) * (nf - 2.0)) - 2.0 / (nf - 2.0) * sum(&kl))
                / (nf * (nf - 3.0))
        } else {
            let h = Mat::from_fn(n, n, |i, j| f64::from(u8::from(i == j)) - 1.0 / n as f64);
            let m = &(&(&h * k) * &h) * l;
            (0..n).map(|i| m[(i, i)]).sum()
        }
    };
    hsic(&k, &l) / (hsic(&k, &k) * hsic(&l, &l)).sqrt()
}

fn inverse_sqrt(c: &Mat<f64>) -> Mat<f64> {
    let evd = c.self_adjoint_eigen(Side::Lower).unwrap();
    let (u, s) = (evd.U(), evd.S().column_vector());
    let scaled = Mat::from_fn(u.nrows(), u.ncols(), |i, j| u[(i, j)] / s[j].sqrt());
    &scaled * u.transpose()
}

/// Plain centred CCA by covariance whitening: the coefficients (descending) and PWCCA with
/// the first matrix's weights `Σ_j |corr(x_j, h_i)|`.
fn whitened_cca(x: &Matrix, y: &Matrix) -> (Vec<f64>, f64) {
    let (x, y) = (centred(&to_mat(x)), centred(&to_mat(y)));
    let cxx = x.transpose() * &x;
    let cyy = y.transpose() * &y;
    let cxy = x.transpose() * &y;
    let wx = inverse_sqrt(&cxx);
    let t = &(&wx * &cxy) * inverse_sqrt(&cyy);
    let svd = t.thin_svd().unwrap();
    let s: Vec<f64> = svd.S().column_vector().iter().copied().collect();
    // Directions w_i = Cxx^{-1/2} a_i; X^T h_i = Cxx w_i.
    let loads = &cxx * (&wx * svd.U());
    let norms: Vec<f64> = (0..x.ncols()).map(|j| cxx[(j, j)].sqrt()).collect();
    let alpha: Vec<f64> = (0..s.len())
        .map(|i| (0..x.ncols()).map(|j| loads[(j, i)].abs() / norms[j]).sum())
        .collect();
    let total: f64 = alpha.iter().sum();
    let pw = alpha.iter().zip(&s).map(|(a, c)| a / total * c).sum();
    (s, pw)
}

// ---------------------------------------------------------------------------------------
// Known answers.

#[test]
fn the_cka_notebook_reference_values() {
    let (x, y) = fixture();
    let cka = linear_cka(&x, &y).unwrap();
    let debiased = linear_cka_debiased(&x, &y).unwrap();
    // The notebook's `cca` helper does not centre: CCA about the origin, every direction.
    let uncentred = SvccaOptions {
        keep_fraction: 1.0,
        centre: false,
    };
    let cca = svcca(&x, &y, &uncentred).unwrap();
    assert!(close(cka, 0.55761, 1e-5), "linear CKA {cka}");
    assert!(close(debiased, 0.51346, 1e-5), "debiased CKA {debiased}");
    assert!(
        close(cca.mean_squared, 0.54312, 1e-5),
        "R²_CCA {}",
        cca.mean_squared
    );
    assert_eq!(cca.kept, (10, 10));

    // Centred (CCA as defined), against numpy: QR of the centred data, then the singular
    // values of Q_xᵀ Q_y.
    let centred = svcca(&x, &y, &SvccaOptions::CCA).unwrap();
    let numpy = [
        0.8851112, 0.86196085, 0.83330185, 0.76440204, 0.74507578, 0.72447428, 0.67903289,
        0.66503897, 0.6093718, 0.54236993,
    ];
    assert_all_close(&centred.coefficients, &numpy, 1e-6);
    assert!(close(centred.mean_squared, 0.54539633, 1e-6));
    assert!(close(centred.mean, 0.73101396, 1e-6));
}

#[test]
fn one_neuron_each_by_hand() {
    // Centred x = (-1.5, -.5, .5, 1.5), y = (-1.5, .5, -.5, 1.5): x·y = 4, |x|² = |y|² = 5,
    // so the correlation is 0.8, CCA's one coefficient 0.8 and CKA its square 0.64.
    // Debiased (n = 4): r = s = (2.25, .25, .25, 2.25), rᵀs = 10.25, R = S = 5:
    // cross 16 - 2·10.25 + 25/6 = -1/3, self 25 - 20.5 + 25/6 = 26/3, CKA -1/26.
    let x = Matrix::new(4, 1, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let y = Matrix::new(4, 1, vec![1.0, 3.0, 2.0, 4.0]).unwrap();
    assert!(close(linear_cka(&x, &y).unwrap(), 0.64, CKA_TOLERANCE));
    assert!(close(
        linear_cka_debiased(&x, &y).unwrap(),
        -1.0 / 26.0,
        CKA_TOLERANCE
    ));
    let r = pwcca(&x, &y, &SvccaOptions::CCA).unwrap();
    assert_all_close(&r.coefficients, &[0.8], 1e-12);
    assert!(close(r.mean, 0.8, 1e-12) && close(r.mean_squared, 0.64, 1e-12));
    assert!(close(r.pwcca.unwrap(), 0.8, 1e-12));
    assert_eq!((r.kept, r.dropped_dead), ((1, 1), (0, 0)));
}

#[test]
fn a_layer_is_identical_to_itself() {
    for (rows, cols, seed) in [(100, 10, 1), (60, 25, 2), (40, 200, 3)] {
        let x = normal(rows, cols, seed).relu();
        assert!(close(linear_cka(&x, &x).unwrap(), 1.0, 1e-6));
        assert!(close(linear_cka_debiased(&x, &x).unwrap(), 1.0, 1e-6));
        for method in Method::ALL {
            if matches!(method, Method::Svcca | Method::Pwcca) && 2 * cols >= rows {
                continue; // CCA of wide layers is refused, tested below
            }
            let value = similarity(method, &x, &x).unwrap();
            assert!(close(value, 1.0, 1e-6), "{method:?} {value}");
        }
    }
    let x = normal(100, 10, 4);
    let r = pwcca(&x, &x, &SvccaOptions::CCA).unwrap();
    assert_eq!(r.coefficients.len(), 10);
    assert!(r.coefficients.iter().all(|c| close(*c, 1.0, 1e-9)), "{r:?}");
    assert!(close(r.pwcca.unwrap(), 1.0, 1e-9));
}

#[test]
fn cka_invariances() {
    let x = normal(80, 12, 10);
    let y = times(&x, &random_square(12, 11));
    let y = from_mat(&(to_mat(&y) + to_mat(&normal(80, 12, 12))));
    for (name, cka) in [
        (
            "biased",
            linear_cka as fn(&Matrix, &Matrix) -> Result<f64, SimilarityError>,
        ),
        ("debiased", linear_cka_debiased),
    ] {
        let base = cka(&x, &y).unwrap();
        let rotated = cka(&x, &times(&y, &random_orthogonal(12, 13))).unwrap();
        let both = cka(&times(&x, &random_orthogonal(12, 14)), &y).unwrap();
        let scale = Mat::<f64>::identity(12, 12) * faer::Scale(-3.5);
        let scaled = cka(&times(&x, &scale), &y).unwrap();
        let mut stretch = Mat::<f64>::identity(12, 12);
        stretch[(0, 0)] = 10.0;
        stretch[(1, 1)] = 0.1;
        let stretched = cka(&x, &times(&y, &stretch)).unwrap();
        assert!(
            close(base, rotated, 1e-5),
            "{name}: {base} vs rotated {rotated}"
        );
        assert!(close(base, both, 1e-5), "{name}: {base} vs {both}");
        assert!(
            close(base, scaled, 1e-5),
            "{name}: {base} vs scaled {scaled}"
        );
        assert!(
            (base - stretched).abs() > 1e-2,
            "{name}: {base} vs {stretched}"
        );
    }
}

#[test]
fn cca_is_invariant_under_invertible_maps() {
    let x = normal(120, 8, 20);
    let y = from_mat(
        &(to_mat(&times(&x, &random_square(8, 21)))
            + to_mat(&normal(120, 6, 22)) * Mat::<f64>::identity(6, 8)),
    );
    let base = svcca(&x, &y, &SvccaOptions::CCA).unwrap();
    let mapped_x = times(
        &x,
        &(random_square(8, 23) + Mat::<f64>::identity(8, 8) * faer::Scale(3.0)),
    );
    let mapped_y = times(&y, &random_square(8, 24));
    let mapped = svcca(&mapped_x, &mapped_y, &SvccaOptions::CCA).unwrap();
    assert_all_close(&base.coefficients, &mapped.coefficients, 1e-5);
    // CKA, in contrast, notices.
    assert!((linear_cka(&x, &y).unwrap() - linear_cka(&mapped_x, &mapped_y).unwrap()).abs() > 1e-2);
}

#[test]
fn cka_matches_the_gram_space_definitions() {
    // Both the sample form (12 < 5 + 7) and the feature form (60 > 12).
    for (rows, seed) in [(12, 30), (60, 31)] {
        let x = normal(rows, 5, seed);
        let y = from_mat(
            &(to_mat(&normal(rows, 7, seed + 100))
                + to_mat(&x) * random_square(5, seed + 200) * Mat::<f64>::identity(5, 7)
                + Mat::<f64>::from_fn(rows, 7, |_, j| j as f64)),
        );
        let (xm, ym) = (to_mat(&x), to_mat(&y));
        let biased = linear_cka(&x, &y).unwrap();
        let debiased = linear_cka_debiased(&x, &y).unwrap();
        assert!(
            close(biased, gram_cka(&xm, &ym, false), CKA_TOLERANCE),
            "{biased}"
        );
        assert!(
            close(debiased, gram_cka(&xm, &ym, true), CKA_TOLERANCE),
            "{debiased}"
        );
    }
    // The fixture, debiased, against the raw-data Gram U-statistic.
    let values = fixture_values();
    let raw = |v: &[f64]| Mat::from_fn(100, 10, |i, j| f64::from(v[i * 10 + j] as f32));
    let (xm, ym) = (raw(&values[..1000]), raw(&values[1000..]));
    let (x, y) = fixture();
    assert!(close(
        linear_cka_debiased(&x, &y).unwrap(),
        gram_cka(&xm, &ym, true),
        CKA_TOLERANCE
    ));
}

#[test]
fn sample_and_feature_forms_agree() {
    // 1,200 rows: more than one block per thread in the feature form; 30 rows: one short
    // block.
    for (rows, seed) in [(1_200, 40), (30, 41)] {
        let (x, y) = (normal(rows, 20, seed).relu(), normal(rows, 25, seed + 1));
        let (feature, feature_rows) = products(&x, &y, Some(Form::Feature), true).unwrap();
        let (sample, sample_rows) = products(&x, &y, Some(Form::Sample), true).unwrap();
        for (a, b) in [
            (feature.cross, sample.cross),
            (feature.first, sample.first),
            (feature.second, sample.second),
        ] {
            // The feature form's `f32` block sums over 512 rows: a relative error of order
            // `√512 · 2⁻²⁴ ≈ 1.3e-6` in each product (it cancels in the CKA ratio).
            assert!(close(a, b, 3e-6 * a.abs()), "{feature:?} vs {sample:?}");
        }
        assert_eq!(feature_rows.first.len(), rows);
        for (f, s) in [
            (&feature_rows.first, &sample_rows.first),
            (&feature_rows.second, &sample_rows.second),
        ] {
            assert!(
                f.iter()
                    .zip(s)
                    .all(|(a, b)| close(*a, *b, CKA_TOLERANCE * b))
            );
        }
        let (without, none) = products(&x, &y, None, false).unwrap();
        assert_eq!(none, RowNorms::default());
        assert!(close(
            without.cross,
            feature.cross,
            CKA_TOLERANCE * without.cross
        ));
    }
}

#[test]
fn cca_and_pwcca_match_covariance_whitening() {
    for (rows, p, q, seed) in [(200, 6, 9, 50), (150, 9, 4, 51), (500, 20, 20, 52)] {
        let x = normal(rows, p, seed);
        let mix = random_square(p.max(q), seed + 1);
        let shared = to_mat(&x) * Mat::<f64>::identity(p, p.max(q)) * &mix;
        let y = from_mat(
            &(Mat::<f64>::from_fn(rows, q, |i, j| shared[(i, j)])
                + to_mat(&normal(rows, q, seed + 2)) * faer::Scale(1.5)),
        );
        let r = pwcca(&x, &y, &SvccaOptions::CCA).unwrap();
        let (coefficients, pw) = whitened_cca(&x, &y);
        assert_all_close(&r.coefficients, &coefficients[..p.min(q)], 1e-8);
        assert!(
            close(r.pwcca.unwrap(), pw, 1e-8),
            "{} vs {pw}",
            r.pwcca.unwrap()
        );
        assert_eq!(r.kept, (p, q));
        let pw = r.pwcca.unwrap();
        let (lo, hi) = (r.coefficients[r.coefficients.len() - 1], r.coefficients[0]);
        assert!(lo - 1e-12 <= pw && pw <= hi + 1e-12);
    }
}

#[test]
fn the_reduction_keeps_the_fewest_directions_that_reach_the_fraction() {
    // Squares 9, 4, 1, 0: shares 9/14, 13/14, 14/14.
    let s = [3.0, 2.0, 1.0, 0.0];
    assert_eq!(kept(&s, 10, 0.5), 1);
    assert_eq!(kept(&s, 10, 9.0 / 14.0), 1);
    assert_eq!(kept(&s, 10, 0.9), 2);
    assert_eq!(kept(&s, 10, 0.99), 3);
    assert_eq!(kept(&s, 10, 1.0), 3); // the zero direction is not part of the rank
    assert_eq!(kept(&[3.0, 2.0, 1e-15], 10, 1.0), 2); // numerically zero
    assert_eq!(kept(&[3.0, 2.0, 1e-7], 10, 1.0), 3);
    // A square below the total's rounding cannot reach it: not kept even at 1.0.
    assert_eq!(kept(&[3.0, 2.0, 1e-9], 10, 1.0), 2);
    assert_eq!(kept(&[0.0, 0.0], 10, 1.0), 0);
    assert_eq!(kept(&[], 10, 1.0), 0);

    // Three loud neurons and seven quiet ones: 99% of the variance is in three directions.
    let mut x = to_mat(&normal(500, 10, 60));
    for j in 0..10 {
        let scale = if j < 3 { 10.0 } else { 0.1 };
        for i in 0..500 {
            x[(i, j)] *= scale;
        }
    }
    let x = from_mat(&x);
    let y = normal(500, 4, 61);
    let r = svcca(&x, &y, &SvccaOptions::default()).unwrap();
    assert_eq!(r.kept.0, 3);
    assert_eq!(r.coefficients.len(), 3);
    let all = svcca(&x, &y, &SvccaOptions::CCA).unwrap();
    assert_eq!(all.kept, (10, 4));
    // A layer with duplicated neurons has a smaller rank than neuron count.
    let twice =
        from_mat(&(to_mat(&y) * Mat::<f64>::from_fn(4, 8, |i, j| f64::from(u8::from(j % 4 == i)))));
    assert_eq!(svcca(&x, &twice, &SvccaOptions::CCA).unwrap().kept, (10, 4));
}

#[test]
fn dead_neurons_are_dropped_and_counted() {
    let x = normal(50, 4, 70);
    let y = normal(50, 3, 71);
    let with_dead = |m: &Matrix, constants: &[f32]| {
        let rows: Vec<Vec<f32>> = m
            .iter_rows()
            .map(|r| r.iter().copied().chain(constants.iter().copied()).collect())
            .collect();
        Matrix::from_rows(&rows).unwrap()
    };
    let x_dead = with_dead(&x, &[0.0, 5.0]);
    let y_dead = with_dead(&y, &[-1.25]);
    let base = svcca(&x, &y, &SvccaOptions::CCA).unwrap();
    let dead = svcca(&x_dead, &y_dead, &SvccaOptions::CCA).unwrap();
    assert_eq!(base.dropped_dead, (0, 0));
    assert_eq!(dead.dropped_dead, (2, 1));
    assert_all_close(&base.coefficients, &dead.coefficients, 1e-12);
    let base_pw = pwcca(&x, &y, &SvccaOptions::CCA).unwrap().pwcca.unwrap();
    let dead_pw = pwcca(&x_dead, &y_dead, &SvccaOptions::CCA)
        .unwrap()
        .pwcca
        .unwrap();
    assert!(close(base_pw, dead_pw, 1e-12));
    assert!(close(
        linear_cka(&x, &y).unwrap(),
        linear_cka(&x_dead, &y_dead).unwrap(),
        1e-12
    ));
    // About the origin, a constant neuron carries signal; only zeros are dead.
    let uncentred = SvccaOptions {
        keep_fraction: 1.0,
        centre: false,
    };
    assert_eq!(
        svcca(&x_dead, &y_dead, &uncentred).unwrap().dropped_dead,
        (1, 0)
    );
    // A layer with nothing alive.
    let flat = Matrix::new(50, 2, vec![3.0; 100]).unwrap();
    for method in Method::ALL {
        assert_eq!(
            similarity(method, &x, &flat),
            Err(SimilarityError::NoVariance {
                operand: Operand::Second
            }),
            "{method:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Refused input.

#[test]
fn non_finite_values_are_refused_by_matrix_row_and_column() {
    let x = normal(40, 5, 80);
    let y = normal(40, 3, 81);
    let mut bad = x.as_slice().to_vec();
    bad[3 * 5 + 2] = f32::NAN;
    bad[7 * 5 + 1] = f32::INFINITY;
    let bad_x = Matrix::new(40, 5, bad).unwrap();
    let mut bad = y.as_slice().to_vec();
    bad[1] = f32::NEG_INFINITY;
    let bad_y = Matrix::new(40, 3, bad).unwrap();
    for method in Method::ALL {
        let err = similarity(method, &bad_x, &y).unwrap_err();
        assert!(
            matches!(
                err,
                SimilarityError::NotFinite {
                    operand: Operand::First,
                    row: 3,
                    column: 2,
                    ..
                }
            ),
            "{method:?}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the first matrix holds NaN at instance (row) 3, neuron (column) 2"
        );
        let err = similarity(method, &x, &bad_y).unwrap_err();
        assert!(
            matches!(
                err,
                SimilarityError::NotFinite {
                    operand: Operand::Second,
                    row: 0,
                    column: 1,
                    ..
                }
            ),
            "{method:?}: {err:?}"
        );
        assert!(
            err.to_string().contains("second matrix holds -inf"),
            "{err}"
        );
    }
}

#[test]
fn large_matrices_scanned_on_two_threads_are_refused_in_order() {
    // Big enough for the two scans to run side by side (see `parallel`).
    let (rows, cols) = (2_100, 1_000);
    let with_nan = |at: usize| {
        let mut values = vec![0.5f32; rows * cols];
        values.iter_mut().step_by(7).for_each(|v| *v = 1.5);
        values[at] = f32::NAN;
        Matrix::new(rows, cols, values).unwrap()
    };
    let (x, y) = (with_nan(1_500 * cols + 7), with_nan(3 * cols + 3));
    let err = linear_cka(&x, &y).unwrap_err();
    assert!(
        matches!(
            err,
            SimilarityError::NotFinite {
                operand: Operand::First,
                row: 1_500,
                column: 7,
                ..
            }
        ),
        "{err:?}"
    );
    let clean = Matrix::new(rows, cols, vec![1.0; rows * cols]).unwrap();
    let err = linear_cka(&clean, &y).unwrap_err();
    assert!(
        matches!(
            err,
            SimilarityError::NotFinite {
                operand: Operand::Second,
                row: 3,
                column: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn too_few_instances_are_refused() {
    // 12 centred instances span 11 dimensions; 8 + 8 directions do not fit.
    let (x, y) = (normal(12, 8, 90), normal(12, 8, 91));
    let err = svcca(&x, &y, &SvccaOptions::CCA).unwrap_err();
    assert_eq!(
        err,
        SimilarityError::TooFewInstancesForDirections {
            instances: 12,
            span: 11,
            first: 8,
            second: 8
        }
    );
    assert!(
        err.to_string()
            .starts_with("fewer instances than kept directions"),
        "{err}"
    );
    // With 17 they fit.
    let (x, y) = (normal(17, 8, 92), normal(17, 8, 93));
    assert!(svcca(&x, &y, &SvccaOptions::CCA).is_ok());
    // More neurons than instances: the centred rank (9) is what can be kept.
    let (x, y) = (normal(10, 30, 94), normal(10, 2, 95));
    assert!(matches!(
        svcca(&x, &y, &SvccaOptions::CCA),
        Err(SimilarityError::TooFewInstancesForDirections {
            instances: 10,
            span: 9,
            first: 9,
            second: 2
        })
    ));

    let (x, y) = (normal(3, 2, 96), normal(3, 2, 97));
    assert_eq!(
        linear_cka_debiased(&x, &y),
        Err(SimilarityError::TooFewInstances {
            instances: 3,
            needed: 4
        })
    );
    assert!(linear_cka(&x, &y).is_ok());
    let (x, y) = (normal(1, 2, 98), normal(1, 2, 99));
    assert_eq!(
        linear_cka(&x, &y),
        Err(SimilarityError::TooFewInstances {
            instances: 1,
            needed: 2
        })
    );
    let (x, y) = (normal(0, 2, 98), normal(0, 2, 99));
    assert!(matches!(
        svcca(&x, &y, &SvccaOptions::default()),
        Err(SimilarityError::TooFewInstances { instances: 0, .. })
    ));
}

#[test]
fn other_refusals() {
    let (x, y) = (normal(30, 3, 100), normal(31, 3, 101));
    for method in Method::ALL {
        assert_eq!(
            similarity(method, &x, &y),
            Err(SimilarityError::InstanceMismatch {
                first: 30,
                second: 31
            })
        );
    }
    let y = normal(30, 3, 102);
    for keep in [0.0, -0.5, 1.5, f64::NAN] {
        let options = SvccaOptions {
            keep_fraction: keep,
            centre: true,
        };
        assert!(matches!(
            svcca(&x, &y, &options),
            Err(SimilarityError::KeepFraction(_))
        ));
    }
    let empty = Matrix::new(30, 0, vec![]).unwrap();
    assert_eq!(
        linear_cka(&empty, &y),
        Err(SimilarityError::NoVariance {
            operand: Operand::First
        })
    );
}

#[test]
fn methods_by_name_and_dispatch() {
    for method in Method::ALL {
        assert_eq!(Method::from_name(method.name()), Some(method));
    }
    assert_eq!(Method::from_name("cca"), None);
    let (x, y) = fixture();
    assert_eq!(similarity(Method::Cka, &x, &y), linear_cka(&x, &y));
    assert_eq!(
        similarity(Method::CkaDebiased, &x, &y),
        linear_cka_debiased(&x, &y)
    );
    assert_eq!(
        similarity(Method::Svcca, &x, &y).unwrap(),
        svcca(&x, &y, &SvccaOptions::default()).unwrap().mean
    );
    assert_eq!(
        similarity(Method::Pwcca, &x, &y).unwrap(),
        pwcca(&x, &y, &SvccaOptions::CCA).unwrap().pwcca.unwrap()
    );
}

#[test]
fn large_inputs_take_the_threaded_paths() {
    // Big enough for two threads in CKA's products and CCA's decompositions.
    let x = normal(1500, 96, 110).relu();
    let y = from_mat(&(to_mat(&x) * random_square(96, 111))).relu();
    let cka = linear_cka(&x, &y).unwrap();
    let (sample, _) = products(&x, &y, Some(Form::Sample), false).unwrap();
    let oracle = sample.cross / (sample.first * sample.second).sqrt();
    assert!(close(cka, oracle, CKA_TOLERANCE), "{cka} vs {oracle}");
    let r = pwcca(&x, &y, &SvccaOptions::CCA).unwrap();
    let (coefficients, pw) = whitened_cca(&x, &y);
    assert_all_close(&r.coefficients, &coefficients, 1e-6);
    assert!(close(r.pwcca.unwrap(), pw, 1e-6));
}

// ---------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn measures_are_bounded_and_symmetric(
        seed in any::<u64>(),
        rows in 12usize..40,
        p in 1usize..5,
        q in 1usize..5,
        relu in any::<bool>(),
    ) {
        let mut x = normal(rows, p, seed);
        let mut y = from_mat(&(to_mat(&normal(rows, q, seed ^ 1))
            + to_mat(&x) * random_square(p, seed ^ 2) * Mat::<f64>::identity(p, q)));
        if relu {
            (x, y) = (x.relu(), y.relu());
        }
        let (Ok(xy), Ok(yx)) = (linear_cka(&x, &y), linear_cka(&y, &x)) else {
            return Ok(()); // a ReLU layer can die entirely on few instances
        };
        prop_assert!((0.0..=1.0).contains(&xy));
        prop_assert!(close(xy, yx, CKA_TOLERANCE));
        let (a, b) = (
            svcca(&x, &y, &SvccaOptions::CCA).unwrap(),
            svcca(&y, &x, &SvccaOptions::CCA).unwrap(),
        );
        prop_assert!(a.coefficients.iter().all(|c| (0.0..=1.0).contains(c)));
        prop_assert!(a.coefficients.windows(2).all(|w| w[0] >= w[1]));
        assert_all_close(&a.coefficients, &b.coefficients, 1e-9);
        prop_assert!(a.mean_squared <= a.mean + 1e-15);
        let debiased = (linear_cka_debiased(&x, &y), linear_cka_debiased(&y, &x));
        if let (Ok(u), Ok(v)) = debiased {
            prop_assert!(close(u, v, CKA_TOLERANCE));
        }
    }

    #[test]
    fn pwcca_lies_between_the_extreme_coefficients(
        seed in any::<u64>(),
        p in 1usize..6,
        q in 1usize..6,
    ) {
        let x = normal(60, p, seed);
        let y = from_mat(&(to_mat(&normal(60, q, seed ^ 3))
            + to_mat(&x) * random_square(p, seed ^ 4) * Mat::<f64>::identity(p, q)));
        let r = pwcca(&x, &y, &SvccaOptions::CCA).unwrap();
        let pw = r.pwcca.unwrap();
        let (lo, hi) = (r.coefficients[r.coefficients.len() - 1], r.coefficients[0]);
        prop_assert!(lo - 1e-12 <= pw && pw <= hi + 1e-12);
    }
}

// ---------------------------------------------------------------------------------------
// Grids.

/// `m` with `extra` more columns: copies of its first column, each plus `wobble` times
/// fresh noise (tiny `wobble`: nearly collinear neurons), then one constant (dead) column.
fn widened(m: &Matrix, extra: usize, wobble: f64, seed: u64) -> Matrix {
    let mut rng = SplitMix64::new(seed);
    let rows: Vec<Vec<f32>> = m
        .iter_rows()
        .map(|r| {
            let mut row = r.to_vec();
            for _ in 0..extra {
                row.push((f64::from(r[0]) + wobble * rng.normal()) as f32);
            }
            row.push(2.5);
            row
        })
        .collect();
    Matrix::from_rows(&rows).unwrap()
}

/// Checks every cell of `similarity_grid(method, rows, cols)` against the pairwise answer.
fn assert_grid_matches_pairs(method: Method, rows: &[&Matrix], cols: &[&Matrix]) {
    let grid = similarity_grid(method, rows, cols);
    assert_eq!(grid.len(), rows.len() * cols.len());
    for (i, x) in rows.iter().enumerate() {
        for (j, y) in cols.iter().enumerate() {
            let (got, want) = (&grid[i * cols.len() + j], similarity(method, x, y));
            match (got, &want) {
                (Ok(got), Ok(want)) => assert!(
                    close(*got, *want, 1e-9),
                    "{method:?} cell ({i}, {j}): grid {got}, pair {want}"
                ),
                // Debug, not `==`: a refused NaN does not equal itself.
                _ => assert_eq!(
                    format!("{got:?}"),
                    format!("{want:?}"),
                    "{method:?} cell ({i}, {j})"
                ),
            }
        }
    }
}

#[test]
fn a_grid_answers_what_each_pair_answers() {
    let a = normal(240, 12, 90);
    // Related to `a`, with a dead neuron and nearly collinear ones (condition about 1e5).
    let related = widened(&times(&a, &random_square(12, 91)), 3, 1e-5, 92);
    let other = widened(&normal(240, 20, 93), 2, 0.3, 94);
    // More neurons than SVCCA can keep against the wide ones: those pairs are refused.
    let wide = normal(240, 150, 95);
    let mut bad = normal(240, 6, 96).as_slice().to_vec();
    bad[6 * 17 + 4] = f32::NAN;
    let bad = Matrix::new(240, 6, bad).unwrap();
    let short = normal(200, 12, 97);
    // Nearly collinear neurons about 1e-3 apart: kept directions conditioned well enough
    // for the basis as one product (those 1e-5 apart are not; see `cca::DIVIDE_BELOW`).
    let mild = widened(&normal(240, 8, 98), 2, 1e-3, 99);
    let all = [&a, &related, &other, &wide, &bad, &short, &mild];
    for method in Method::ALL {
        // Every pair of a set (each matrix both a row and a column), and a layer across
        // "epochs" against one reference.
        assert_grid_matches_pairs(method, &all, &all);
        assert_grid_matches_pairs(method, &[&a, &related, &other, &wide], &[&related]);
        assert_grid_matches_pairs(method, &[&other], &[&a, &bad, &wide]);
    }
    // The refusals are there, each about the right matrix.
    let svcca_grid = similarity_grid(Method::Svcca, &all, &all);
    assert!(matches!(
        svcca_grid[3 * 7 + 3],
        Err(SimilarityError::TooFewInstancesForDirections { .. })
    ));
    assert!(matches!(
        svcca_grid[4],
        Err(SimilarityError::NotFinite {
            operand: Operand::Second,
            row: 17,
            column: 4,
            ..
        })
    ));
    assert!(matches!(
        svcca_grid[5 * 7],
        Err(SimilarityError::InstanceMismatch {
            first: 200,
            second: 240
        })
    ));
    assert!(close(svcca_grid[0].clone().unwrap(), 1.0, 1e-12));
}

#[test]
fn every_cca_route_gives_the_same_correlations() {
    // Well conditioned (the cross product of the centred data), nearly collinear neurons
    // 1e-3 apart (each side whitened, but the pair's conditions too large together for the
    // cross product), and 1e-5 apart (the reflectors).
    let a = normal(300, 12, 120);
    let b = from_mat(&(to_mat(&a) * random_square(12, 121) + to_mat(&normal(300, 12, 122))));
    let mild = widened(&normal(300, 8, 123), 2, 1e-3, 124);
    let steep = widened(&times(&a, &random_square(12, 125)), 3, 1e-5, 126);
    // More neurons than instances, nearly of rank 4: the QR's factor is wide.
    let low_rank = to_mat(&normal(300, 4, 127)) * to_mat(&normal(4, 320, 128));
    let wide = from_mat(&(low_rank + to_mat(&normal(300, 320, 129)) * faer::Scale(1e-2)));
    let all = [&a, &b, &mild, &steep, &wide];
    let mut wide_answered = 0;
    for (options, weighted) in [(SvccaOptions::default(), false), (SvccaOptions::CCA, true)] {
        for (i, x) in all.into_iter().enumerate() {
            for (j, y) in all.into_iter().enumerate() {
                let mut answers = Vec::new();
                for divide_below in [1e5, 0.0] {
                    let side_x =
                        CcaSide::new_dividing_below(x, &options, weighted, divide_below).unwrap();
                    let side_y =
                        CcaSide::new_dividing_below(y, &options, false, divide_below).unwrap();
                    for cross_below in [1e5, 0.0] {
                        answers.push(CcaSide::correlate_crossing_below(
                            &side_x,
                            &side_y,
                            cross_below,
                        ));
                    }
                }
                // A pair keeping more directions than the instances hold apart (the wide
                // layer with everything kept) is refused the same way by every route.
                if answers[0].is_err() {
                    let first = format!("{:?}", answers[0]);
                    assert!(first.contains("TooFewInstancesForDirections"), "{first}");
                    assert!(answers.iter().all(|a| format!("{a:?}") == first));
                    continue;
                }
                let answers: Vec<CcaResult> = answers.into_iter().map(Result::unwrap).collect();
                if i == 4 || j == 4 {
                    wide_answered += 1;
                }
                let first = &answers[0];
                for other in &answers[1..] {
                    assert_all_close(&other.coefficients, &first.coefficients, 1e-9);
                    assert_eq!(other.kept, first.kept);
                    if weighted {
                        assert!(close(other.pwcca.unwrap(), first.pwcca.unwrap(), 1e-9));
                    }
                }
                if weighted && i < 2 && j < 2 {
                    // Everything kept and no dead neuron: plain CCA, which the
                    // covariance-whitening oracle answers too.
                    let (oracle, oracle_pw) = whitened_cca(x, y);
                    let n = first.coefficients.len();
                    assert_all_close(&first.coefficients, &oracle[..n], 1e-8);
                    assert!(close(first.pwcca.unwrap(), oracle_pw, 1e-8));
                }
            }
        }
    }
    assert!(
        wide_answered >= 9,
        "the wide layer is compared: {wide_answered}"
    );
}
