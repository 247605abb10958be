//! Tests of the factorization: the objective, the closed-form residuals against dense
//! reconstructions, sparse against dense layouts, threads against one thread, planted
//! factors, seeds, and refused input.

use faer::Mat;

use super::data::{Data, Layout, check};
use super::fit::{fit, random_factor};
use super::residual::block_squared_errors;
use super::side::Side;
use super::update::{PARALLEL_ABOVE_WORK, Scratch, gram, update_factor};
use super::*;
use crate::rng::SplitMix64;

fn block<'a>(name: &'a str, data: &'a Matrix) -> NmfBlockInput<'a> {
    NmfBlockInput {
        name,
        data,
        weight: 1.0,
    }
}

/// A non-negative `rows x cols` product of two random rank-`rank` factors.
fn planted(rows: usize, cols: usize, rank: usize, seed: u64) -> Matrix {
    let mut rng = SplitMix64::new(seed);
    let a: Vec<f32> = (0..rows * rank).map(|_| rng.next_unit_f32()).collect();
    let b: Vec<f32> = (0..cols * rank).map(|_| rng.next_unit_f32()).collect();
    let mut data = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            data.push((0..rank).map(|k| a[i * rank + k] * b[j * rank + k]).sum());
        }
    }
    Matrix::new(rows, cols, data).unwrap()
}

fn random_matrix(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut rng = SplitMix64::new(seed);
    Matrix::new(
        rows,
        cols,
        (0..rows * cols).map(|_| rng.next_unit_f32()).collect(),
    )
    .unwrap()
}

#[test]
fn objective_never_rises_and_factors_stay_non_negative() {
    let pixels = random_matrix(60, 25, 1);
    let layer = random_matrix(60, 12, 2);
    let fit = coupled_nmf(
        &[
            block("inputs", &pixels),
            NmfBlockInput {
                name: "layer 1",
                data: &layer,
                weight: 2.5,
            },
        ],
        &NmfOptions {
            rank: 5,
            max_iters: 300,
            tolerance: 0.0,
            ..NmfOptions::default()
        },
    )
    .unwrap();
    assert_eq!(fit.iterations(), 300);
    let scale = fit.objective[0];
    for pair in fit.objective.windows(2) {
        assert!(
            pair[1] <= pair[0] + 1e-6 * scale,
            "{} -> {}",
            pair[0],
            pair[1]
        );
    }
    assert!(fit.objective[299] < fit.objective[0]);
    for m in fit.loadings.iter().chain([&fit.instance_weights]) {
        assert!(m.as_slice().iter().all(|v| *v >= 0.0 && v.is_finite()));
    }
    assert_eq!(fit.loadings[0].rows(), 25);
    assert_eq!(fit.loadings[1].rows(), 12);
    assert_eq!(fit.instance_weights.rows(), 60);
    assert_eq!(fit.instance_weights.cols(), 5);
}

#[test]
fn tracked_objective_matches_the_residual() {
    let data = random_matrix(40, 20, 3);
    let fit = coupled_nmf(
        &[block("x", &data)],
        &NmfOptions {
            rank: 4,
            max_iters: 50,
            tolerance: 0.0,
            ..NmfOptions::default()
        },
    )
    .unwrap();
    let residual = dense_squared_errors(&[block("x", &data)], &fit)[0];
    let tracked = *fit.objective.last().unwrap();
    assert!(
        (residual - tracked).abs() <= 1e-4 * tracked,
        "{residual} vs {tracked}"
    );
    let count = (40 * 20) as f64;
    assert!((fit.rmse - (residual / count).sqrt()).abs() <= 1e-6 * fit.rmse);
}

/// `||B_i - F P_i^T||^2` of each block in its own units, from the dense reconstruction.
fn dense_squared_errors(blocks: &[NmfBlockInput<'_>], fit: &NmfFit) -> Vec<f64> {
    let f = &fit.instance_weights;
    blocks
        .iter()
        .zip(&fit.loadings)
        .map(|(block, p)| {
            let mut sq = 0.0f64;
            for j in 0..block.data.rows() {
                for c in 0..block.data.cols() {
                    let fitted: f64 = (0..f.cols())
                        .map(|k| f64::from(p.row(c).unwrap()[k]) * f64::from(f.row(j).unwrap()[k]))
                        .sum();
                    let diff = f64::from(block.data.row(j).unwrap()[c]) - fitted;
                    sq += diff * diff;
                }
            }
            sq
        })
        .collect()
}

#[test]
fn block_errors_match_the_dense_reconstruction_in_both_layouts() {
    // Two weighted blocks, one about 75% zeros: both layouts, an unfinished fit (large
    // errors) and a nearly exact one (tiny errors, where a closed form could cancel badly).
    let mut rng = SplitMix64::new(17);
    let sparse: Vec<f32> = (0..60 * 25)
        .map(|_| {
            let v = rng.next_unit_f32();
            if v < 0.75 { 0.0 } else { v }
        })
        .collect();
    let pixels = Matrix::new(60, 25, sparse).unwrap();
    let layer = random_matrix(60, 7, 4);
    let planted_data = planted(60, 12, 2, 3);
    let cases: [(Vec<NmfBlockInput<'_>>, usize, usize); 2] = [
        (
            vec![
                NmfBlockInput {
                    name: "pixels",
                    data: &pixels,
                    weight: 0.5,
                },
                NmfBlockInput {
                    name: "layer",
                    data: &layer,
                    weight: 3.0,
                },
            ],
            3,
            20,
        ),
        (
            vec![NmfBlockInput {
                name: "planted",
                data: &planted_data,
                weight: 2.0,
            }],
            2,
            3000,
        ),
    ];
    for (blocks, rank, max_iters) in &cases {
        for layout in [Layout::Sparse, Layout::Dense] {
            let options = NmfOptions {
                rank: *rank,
                max_iters: *max_iters,
                tolerance: 0.0,
                seed: 5,
                ..NmfOptions::default()
            };
            let fit = fit(blocks, &options, layout).unwrap();
            let dense = dense_squared_errors(blocks, &fit);
            for ((block, rmse), sq) in blocks.iter().zip(&fit.block_rmse).zip(&dense) {
                let count = (block.data.rows() * block.data.cols()) as f64;
                let expected = (sq / count).sqrt();
                assert!(
                    (rmse - expected).abs() <= 1e-4 * expected,
                    "{layout:?} {}: {rmse} vs {expected}",
                    block.name
                );
            }
        }
    }
}

#[test]
fn closed_form_errors_hold_for_a_near_exact_fit() {
    // X = W F^T exactly (in f64, then rounded to f32), plus 1e-3 at a few entries: each
    // block's error is about 1e-8 of its squared norm, where a careless closed form would
    // drown in cancellation.
    let (features, instances, rank, lanes) = (30, 50, 3, 4);
    let mut rng = SplitMix64::new(23);
    let w = random_factor(features, rank, lanes, &mut rng);
    let f = random_factor(instances, rank, lanes, &mut rng);
    let exact = |i: usize, j: usize| -> f64 {
        (0..lanes)
            .map(|k| f64::from(w[i * lanes + k]) * f64::from(f[j * lanes + k]))
            .sum()
    };
    let mut values = vec![0.0f32; instances * features];
    for j in 0..instances {
        for i in 0..features {
            let bump = if (i * 7 + j) % 97 == 0 { 1e-3 } else { 0.0 };
            values[j * features + i] = (exact(i, j) + bump) as f32;
        }
    }
    // Two blocks: features 0..20 and 20..30.
    let split = |from: usize, to: usize| {
        let data = (0..instances)
            .flat_map(|j| values[j * features + from..j * features + to].to_vec())
            .collect();
        Matrix::new(instances, to - from, data).unwrap()
    };
    let (first, second) = (split(0, 20), split(20, 30));
    let blocks = [block("first", &first), block("second", &second)];
    let shape = check(&blocks).unwrap();
    let expected: Vec<f64> = [0..20, 20..30]
        .into_iter()
        .map(|rows| {
            rows.flat_map(|i| (0..instances).map(move |j| (i, j)))
                .map(|(i, j)| {
                    let diff = f64::from(values[j * features + i]) - exact(i, j);
                    diff * diff
                })
                .sum()
        })
        .collect();
    for layout in [Layout::Sparse, Layout::Dense] {
        let data = Data::from_blocks(&blocks, &shape, layout, lanes);
        let norms = data.block_norm_sq(&shape);
        let got = block_squared_errors(&data, &w, &f, lanes, &shape, &norms);
        for ((got, expected), norm) in got.iter().zip(&expected).zip(&norms) {
            assert!(*expected < 1e-7 * norm, "{expected} vs {norm}");
            assert!(
                (got - expected).abs() <= 1e-6 * expected,
                "{layout:?}: {got:e} vs {expected:e}"
            );
        }
    }
}

#[test]
fn recovers_a_planted_low_rank_product() {
    let data = planted(50, 30, 3, 7);
    let fit = coupled_nmf(
        &[block("x", &data)],
        &NmfOptions {
            rank: 3,
            max_iters: 5000,
            tolerance: 0.0,
            seed: 11,
            ..NmfOptions::default()
        },
    )
    .unwrap();
    let mean = data.as_slice().iter().map(|v| f64::from(*v)).sum::<f64>() / (50.0 * 30.0);
    assert!(
        fit.rmse < 0.01 * mean,
        "rmse {} vs mean value {mean}",
        fit.rmse
    );
}

#[test]
fn rmse_falls_as_rank_rises() {
    let data = random_matrix(80, 40, 5);
    let curve = rmse_by_rank(
        &[block("x", &data)],
        &[2, 5, 10, 20],
        &NmfOptions {
            max_iters: 400,
            tolerance: 0.0,
            ..NmfOptions::default()
        },
    )
    .unwrap();
    assert_eq!(curve.len(), 4);
    for pair in curve.windows(2) {
        assert!(pair[1].1 < pair[0].1, "{curve:?}");
    }
}

#[test]
fn weights_balance_blocks() {
    // A big-valued block dominates an unweighted fit; weighting it down shifts the error
    // towards it and away from the small block.
    let big = Matrix::new(
        30,
        10,
        random_matrix(30, 10, 8)
            .as_slice()
            .iter()
            .map(|v| v * 100.0)
            .collect(),
    )
    .unwrap();
    let small = random_matrix(30, 10, 9);
    let options = NmfOptions {
        rank: 2,
        max_iters: 300,
        tolerance: 0.0,
        ..NmfOptions::default()
    };
    let plain = coupled_nmf(&[block("big", &big), block("small", &small)], &options).unwrap();
    let balanced = coupled_nmf(
        &[
            NmfBlockInput {
                name: "big",
                data: &big,
                weight: 0.01,
            },
            block("small", &small),
        ],
        &options,
    )
    .unwrap();
    assert!(balanced.block_rmse[1] < plain.block_rmse[1]);
}

#[test]
fn same_seed_same_fit() {
    let data = random_matrix(20, 10, 4);
    let options = NmfOptions {
        rank: 3,
        ..NmfOptions::default()
    };
    let a = coupled_nmf(&[block("x", &data)], &options).unwrap();
    let b = coupled_nmf(&[block("x", &data)], &options).unwrap();
    assert_eq!(a, b);
    let c = coupled_nmf(&[block("x", &data)], &NmfOptions { seed: 1, ..options }).unwrap();
    assert_ne!(a.instance_weights, c.instance_weights);
}

#[test]
fn top_instances_are_ordered_by_weight() {
    let data = planted(30, 8, 2, 3);
    let fit = coupled_nmf(
        &[block("x", &data)],
        &NmfOptions {
            rank: 2,
            ..NmfOptions::default()
        },
    )
    .unwrap();
    let top = fit.top_instances(5);
    assert_eq!(top.len(), 2);
    for (factor, list) in top.iter().enumerate() {
        assert_eq!(list.len(), 5);
        let weights: Vec<f32> = list
            .iter()
            .map(|&i| fit.instance_weights.row(i as usize).unwrap()[factor])
            .collect();
        assert!(weights.windows(2).all(|w| w[0] >= w[1]), "{weights:?}");
        let max = fit
            .instance_weights
            .iter_rows()
            .map(|r| r[factor])
            .fold(0.0f32, f32::max);
        assert_eq!(weights[0], max);
    }
}

#[test]
fn sparse_and_dense_products_agree() {
    // About 80% zeros, like digit pixels.
    let mut rng = SplitMix64::new(42);
    let values: Vec<f32> = (0..70 * 30)
        .map(|_| {
            let v = rng.next_unit_f32();
            if v < 0.8 { 0.0 } else { v }
        })
        .collect();
    let data = Matrix::new(70, 30, values).unwrap();
    let layer = random_matrix(70, 6, 3);
    let blocks = [block("pixels", &data), block("layer", &layer)];
    let options = NmfOptions {
        rank: 4,
        max_iters: 60,
        tolerance: 0.0,
        ..NmfOptions::default()
    };
    let dense = fit(&blocks, &options, Layout::Dense).unwrap();
    let sparse = fit(&blocks, &options, Layout::Sparse).unwrap();
    for (a, b) in dense.objective.iter().zip(&sparse.objective) {
        assert!((a - b).abs() <= 1e-4 * a, "{a} vs {b}");
    }
    for (a, b) in dense
        .instance_weights
        .as_slice()
        .iter()
        .zip(sparse.instance_weights.as_slice())
    {
        assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{a} vs {b}");
    }
    // The automatic choice takes the sparse path here (density about 0.2 + one dense
    // block: under the threshold overall) and gives the same fit.
    let auto = coupled_nmf(&[block("pixels", &data)], &options).unwrap();
    let forced = fit(&[block("pixels", &data)], &options, Layout::Sparse).unwrap();
    assert_eq!(auto, forced);
}

#[test]
fn sparse_products_match_the_dense_product_in_blocks() {
    let mut rng = SplitMix64::new(5);
    let (features, instances) = (37, 101);
    let mut x = Mat::<f32>::zeros(features, instances);
    for j in 0..instances {
        for v in x.col_as_slice_mut(j) {
            let u = rng.next_unit_f32();
            *v = if u < 0.7 { 0.0 } else { u };
        }
    }
    // 4, 20 and 64 lanes take the fixed-width kernels, 72 the generic one; blocks of 7
    // instances make the feature-side product add up 15 blocks.
    for lanes in [4, 20, 64, 72] {
        let Data::Sparse {
            by_instance,
            by_feature,
        } = Data::with_blocks(&x, Layout::Sparse, 7)
        else {
            panic!("asked for the sparse layout");
        };
        assert_eq!(by_feature.len(), instances.div_ceil(7));
        let f: Vec<f32> = (0..instances * lanes)
            .map(|_| rng.next_unit_f32())
            .collect();
        let w: Vec<f32> = (0..features * lanes).map(|_| rng.next_unit_f32()).collect();
        let mut xf = vec![1.0; features * lanes];
        Side::Sparse(&by_feature).product(0..features, &f, lanes, &mut xf);
        for r in 0..features {
            for k in 0..lanes {
                let expected: f32 = (0..instances).map(|j| x[(r, j)] * f[j * lanes + k]).sum();
                let got = xf[r * lanes + k];
                assert!(
                    (got - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                    "lanes {lanes}: {got} vs {expected}"
                );
            }
        }
        let mut xtw = vec![1.0; instances * lanes];
        Side::Sparse(std::slice::from_ref(&by_instance)).product(0..instances, &w, lanes, &mut xtw);
        for j in 0..instances {
            for k in 0..lanes {
                let expected: f32 = (0..features).map(|r| x[(r, j)] * w[r * lanes + k]).sum();
                let got = xtw[j * lanes + k];
                assert!((got - expected).abs() < 1e-4 * (1.0 + expected.abs()));
            }
        }
    }
}

#[test]
fn threaded_updates_match_one_thread() {
    let mut rng = SplitMix64::new(9);
    // Enough non-zeros (about 300,000) for the updates to use threads.
    let (features, instances, lanes) = (50, 20_000, 8);
    let mut x = Mat::<f32>::zeros(features, instances);
    for j in 0..instances {
        for v in x.col_as_slice_mut(j) {
            let u = rng.next_unit_f32();
            *v = if u < 0.7 { 0.0 } else { u };
        }
    }
    let w = random_factor(features, 6, lanes, &mut rng);
    let f = random_factor(instances, 6, lanes, &mut rng);
    let w_gram = gram(&w, lanes);
    for layout in [Layout::Sparse, Layout::Dense] {
        let data = Data::with_blocks(&x, layout, 3_000);
        let side = data.by_instance();
        assert_eq!(side.ranges(3, PARALLEL_ABOVE_WORK).len(), 3);
        let ranges = side.ranges(3, 0);
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(instances));
        assert!(ranges.windows(2).all(|p| p[0].end == p[1].start));
        let update = |threads: usize| {
            let mut target = f.clone();
            let mut scratch = Scratch::new(instances, lanes);
            let updated = update_factor(
                side,
                &w,
                &w_gram,
                &mut target,
                &mut scratch,
                lanes,
                1e-9,
                threads,
            );
            (target, updated)
        };
        let (one, one_updated) = update(1);
        let (three, three_updated) = update(3);
        assert_eq!(one, three, "rows are updated the same way on any thread");
        assert_ne!(one, f, "the update changed the factor");
        let expected_gram = gram(&one, lanes);
        for ((a, b), c) in one_updated
            .gram
            .iter()
            .zip(&three_updated.gram)
            .zip(&expected_gram)
        {
            assert!((a - c).abs() < 1e-3 * (1.0 + c.abs()), "{a} vs {c}");
            assert!((b - c).abs() < 1e-3 * (1.0 + c.abs()), "{b} vs {c}");
        }
        let relative = (one_updated.numerator_dot - three_updated.numerator_dot).abs()
            / one_updated.numerator_dot.abs().max(1.0);
        assert!(relative < 1e-9, "{relative}");
    }
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let good = random_matrix(5, 3, 1);
    let negative = Matrix::new(1, 2, vec![0.5, -1.0]).unwrap();
    let short = random_matrix(4, 3, 1);
    let options = NmfOptions::default();
    assert_eq!(coupled_nmf(&[], &options), Err(NmfError::NoBlocks));
    let err = coupled_nmf(&[block("neg", &negative)], &options).unwrap_err();
    assert!(err.to_string().contains("row 0, column 1"), "{err}");
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let data = Matrix::new(2, 2, vec![0.5, 0.0, 1.0, bad]).unwrap();
        match coupled_nmf(&[block("b", &data)], &options) {
            Err(NmfError::NotNonNegative { row: 1, col: 1, .. }) => {}
            other => panic!("{bad} must be refused at row 1, column 1: {other:?}"),
        }
    }
    assert!(matches!(
        coupled_nmf(&[block("a", &good), block("b", &short)], &options),
        Err(NmfError::InstanceCount {
            expected: 5,
            found: 4,
            ..
        })
    ));
    assert!(matches!(
        coupled_nmf(&[block("a", &good)], &NmfOptions { rank: 0, ..options }),
        Err(NmfError::BadRank { .. })
    ));
    assert!(matches!(
        coupled_nmf(
            &[NmfBlockInput {
                name: "a",
                data: &good,
                weight: f32::NAN
            }],
            &options
        ),
        Err(NmfError::BadWeight { .. })
    ));
}

/// The Lee–Seung rounds on a [`DenseProblem`] in plain `f64` loops: what a device runs.
fn dense_rounds(problem: &DenseProblem, rounds: usize, epsilon: f64) -> (Vec<f32>, Vec<f32>) {
    let (n, m, r) = (problem.instances, problem.features, problem.rank);
    let xt = |j: usize, i: usize| f64::from(problem.transposed[j * m + i]);
    let mut w: Vec<f64> = problem
        .start_loadings
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let mut f: Vec<f64> = problem
        .start_instance_weights
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let gram = |a: &[f64], rows: usize| {
        let mut g = vec![0.0; r * r];
        for row in 0..rows {
            for k in 0..r {
                for l in 0..r {
                    g[k * r + l] += a[row * r + k] * a[row * r + l];
                }
            }
        }
        g
    };
    // target <- target .* (A other) ./ (target otherᵀother + eps), A `rows x inner` read
    // through `a(row, k)`.
    let update = |target: &[f64],
                  other: &[f64],
                  rows: usize,
                  inner: usize,
                  a: &dyn Fn(usize, usize) -> f64| {
        let other_gram = gram(other, inner);
        let mut next = target.to_vec();
        for row in 0..rows {
            for k in 0..r {
                let numerator: f64 = (0..inner).map(|i| a(row, i) * other[i * r + k]).sum();
                let denominator: f64 = (0..r)
                    .map(|l| target[row * r + l] * other_gram[l * r + k])
                    .sum();
                next[row * r + k] = target[row * r + k] * numerator / (denominator + epsilon);
            }
        }
        next
    };
    for _ in 0..rounds {
        w = update(&w, &f, m, n, &|i, j| xt(j, i));
        f = update(&f, &w, n, m, &|j, i| xt(j, i));
    }
    (
        w.iter().map(|&v| v as f32).collect(),
        f.iter().map(|&v| v as f32).collect(),
    )
}

#[test]
fn a_dense_problem_stacks_draws_and_finishes_as_the_cpu_fit_does() {
    let pixels = random_matrix(40, 18, 11);
    let layer = planted(40, 9, 2, 12);
    let blocks = [
        block("inputs", &pixels),
        NmfBlockInput {
            name: "layer 1",
            data: &layer,
            weight: 0.5,
        },
    ];
    let options = NmfOptions {
        rank: 3,
        max_iters: 0,
        tolerance: 0.0,
        seed: 5,
        threads: 1,
        ..NmfOptions::default()
    };
    let problem = DenseProblem::new(&blocks, &options).unwrap();
    assert_eq!(
        (problem.instances, problem.features, problem.rank),
        (40, 27, 3)
    );
    // Instance 7's row: its pixels, then its layer values at half weight.
    let row = &problem.transposed[7 * 27..8 * 27];
    assert_eq!(&row[..18], pixels.row(7).unwrap());
    for (stacked, &value) in row[18..].iter().zip(layer.row(7).unwrap()) {
        assert_eq!(*stacked, value * 0.5);
    }
    let norm_sq: f64 = problem
        .transposed
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    assert!((problem.norm_sq - norm_sq).abs() < 1e-9 * norm_sq);

    // No rounds: the start itself, drawn as the CPU fit draws it, finished alike.
    let cpu = coupled_nmf(&blocks, &options).unwrap();
    let start = problem
        .finish(
            &blocks,
            &problem.start_loadings,
            &problem.start_instance_weights,
            Vec::new(),
        )
        .unwrap();
    assert_eq!(start.loadings, cpu.loadings);
    assert_eq!(start.instance_weights, cpu.instance_weights);
    for (a, b) in start.block_rmse.iter().zip(&cpu.block_rmse) {
        assert!((a - b).abs() < 1e-9 * b, "{a} vs {b}");
    }

    // Thirty rounds outside the crate's own loop give the CPU fit's factors and errors.
    let rounds = NmfOptions {
        max_iters: 30,
        ..options
    };
    let cpu = coupled_nmf(&blocks, &rounds).unwrap();
    let (w, f) = dense_rounds(&problem, 30, f64::from(rounds.epsilon));
    let dense = problem
        .finish(&blocks, &w, &f, cpu.objective.clone())
        .unwrap();
    for (ours, theirs) in dense.loadings.iter().zip(&cpu.loadings) {
        for (a, b) in ours.as_slice().iter().zip(theirs.as_slice()) {
            assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
    for (a, b) in dense.block_rmse.iter().zip(&cpu.block_rmse) {
        assert!((a - b).abs() < 1e-4 * b, "block rmse {a} vs {b}");
    }
    assert!((dense.rmse - cpu.rmse).abs() < 1e-4 * cpu.rmse);
    assert_eq!(dense.iterations(), 30);

    // Factors of another problem are refused, not misread.
    assert!(matches!(
        problem.finish(&blocks, &w[1..], &f, Vec::new()),
        Err(NmfError::FactorShape { .. })
    ));
    assert!(matches!(
        problem.finish(&blocks[..1], &w, &f, Vec::new()),
        Err(NmfError::FactorShape { .. })
    ));
    // Blocks of another shape or weight, too (more instances would read past the stack).
    let longer = random_matrix(41, 18, 11);
    for other in [
        [block("inputs", &longer), blocks[1]],
        [block("inputs", &pixels), block("layer 1", &layer)],
    ] {
        assert!(matches!(
            problem.finish(&other, &w, &f, Vec::new()),
            Err(NmfError::FactorShape { .. })
        ));
    }
    // The CPU fit's own refusals.
    assert!(matches!(
        DenseProblem::new(
            &blocks,
            &NmfOptions {
                rank: 41,
                ..options
            }
        ),
        Err(NmfError::BadRank { rank: 41, max: 40 })
    ));
}
