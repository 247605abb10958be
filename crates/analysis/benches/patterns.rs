//! Analysis benchmarks (issue targets): unique-pattern counting for 60,000 instances x 3
//! layers x 40 neurons, and APD + flows for 2,000 probe instances. Reports time per instance.

use actiscope_analysis::apd::{ApdOptions, build_apd};
use actiscope_analysis::flows::flow_table;
use actiscope_analysis::patterns::count_unique;
use actiscope_analysis::{LayerPatterns, Matrix, PatternMatrix};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Deterministic pseudo-activations: a few dominant directions plus noise, so patterns are
/// shared the way a trained ReLU layer shares them.
fn activations(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let mut data = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let cluster = (r % 97) as f32;
        for c in 0..cols {
            data.push((cluster * (c as f32 + 1.0)).sin() + 0.6 * next());
        }
    }
    Matrix::new(rows, cols, data).unwrap_or_else(|_| unreachable!("shape is consistent"))
}

fn bench(c: &mut Criterion) {
    let train: Vec<Matrix> = (0..3).map(|l| activations(60_000, 40, l)).collect();
    let mut group = c.benchmark_group("patterns");
    group.throughput(Throughput::Elements(60_000));
    group.bench_function("pack + count unique, 60k x 3 layers x 40", |b| {
        b.iter(|| {
            train
                .iter()
                .map(|m| count_unique(&PatternMatrix::from_preactivations(m)))
                .sum::<usize>()
        });
    });
    group.finish();

    let probe: Vec<Matrix> = (0..3).map(|l| activations(2_000, 40, 10 + l)).collect();
    let predictions: Vec<u32> = (0..2_000).map(|i| (i % 10) as u32).collect();
    let labels: Vec<u32> = (0..2_000).map(|i| ((i * 7) % 10) as u32).collect();
    let mut group = c.benchmark_group("apd");
    group.throughput(Throughput::Elements(2_000));
    group.bench_function("patterns + APD + flows, 2k probe x 3 layers x 40", |b| {
        b.iter(|| {
            let layers: Vec<LayerPatterns> = probe
                .iter()
                .map(LayerPatterns::from_preactivations)
                .collect();
            let apd = build_apd(&layers, &predictions, &labels, ApdOptions::default());
            let flows = flow_table(&layers, 1, 2, &predictions, &labels);
            (apd.is_ok(), flows.is_ok())
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
