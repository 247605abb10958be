//! Similarity benchmark (the comparison against numpy aims at 5x): two 5,000 x 512 layers of
//! clustered synthetic activations ([`relu_blobs`], the same ten blobs per row in both, so
//! the layers are related), compared by linear CKA, debiased linear CKA, SVCCA (99% of the
//! variance) and PWCCA on the full data.

use actiscope_analysis::Matrix;
use actiscope_analysis::rng::{BENCH_BLOBS, BENCH_SPREAD, relu_blobs};
use actiscope_analysis::similarity::{SvccaOptions, linear_cka, linear_cka_debiased, pwcca, svcca};
use criterion::{Criterion, criterion_group, criterion_main};

const ROWS: usize = 5_000;
const COLS: usize = 512;

fn blobs(seed: u64) -> Matrix {
    Matrix::new(
        ROWS,
        COLS,
        relu_blobs(ROWS, COLS, BENCH_BLOBS, BENCH_SPREAD, seed),
    )
    .unwrap_or_else(|_| unreachable!("shape is consistent"))
}

fn bench(c: &mut Criterion) {
    let (x, y) = (blobs(42), blobs(43));
    let mut group = c.benchmark_group("similarity 5000 x 512 vs 5000 x 512");
    group.sample_size(10);
    group.bench_function("linear CKA", |b| b.iter(|| linear_cka(&x, &y)));
    group.bench_function("linear CKA, debiased", |b| {
        b.iter(|| linear_cka_debiased(&x, &y))
    });
    group.bench_function("SVCCA (99%)", |b| {
        b.iter(|| svcca(&x, &y, &SvccaOptions::default()).map(|r| r.mean))
    });
    group.bench_function("PWCCA (all directions)", |b| {
        b.iter(|| pwcca(&x, &y, &SvccaOptions::CCA).map(|r| r.pwcca))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
