//! Mapper benchmark (issue target: at least 10x KeplerMapper, under 200 ms on one core):
//! 10,000 x 40 clustered synthetic activations (10 Gaussian blobs pushed through a ReLU, the
//! same matrix `examples/mapper_bench.rs` writes for `cargo xtask bench-mapper`), first
//! principal component lens, 10 intervals with 30% overlap, DBSCAN with the explicit `eps`
//! the side-by-side comparison uses; also the automatic `eps` and single linkage.

use actiscope_analysis::Matrix;
use actiscope_analysis::mapper::{MapperInput, mapper};
use actiscope_protocol::mapper::{MapperClusterer, MapperLens, MapperParams};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use actiscope_analysis::rng::{BENCH_BLOBS, BENCH_SPREAD, relu_blobs};

/// [`relu_blobs`] as a matrix (the same values as `mapper_bench generate` with the same seed).
fn blobs(rows: usize, cols: usize, seed: u64) -> Matrix {
    Matrix::new(
        rows,
        cols,
        relu_blobs(rows, cols, BENCH_BLOBS, BENCH_SPREAD, seed),
    )
    .unwrap_or_else(|_| unreachable!("shape is consistent"))
}

fn params(clusterer: MapperClusterer) -> MapperParams {
    MapperParams {
        layer_idx: 0,
        lens: MapperLens::Pca1,
        intervals: 10,
        overlap_pct: 30.0,
        clusterer,
        min_edge_weight: 0.0,
    }
}

fn bench(c: &mut Criterion) {
    let activations = blobs(10_000, 40, 42);
    let labels: Vec<u32> = (0..10_000).map(|i| (i % 10) as u32).collect();
    let predictions: Vec<u32> = (0..10_000).map(|i| ((i * 7) % 10) as u32).collect();
    let input = MapperInput {
        activations: &activations,
        labels: &labels,
        predictions: &predictions,
        predicted_scores: None,
        class_count: 10,
    };
    let mut group = c.benchmark_group("mapper");
    group.throughput(Throughput::Elements(10_000));
    let fixed = params(MapperClusterer::Dbscan {
        eps: Some(3.0),
        min_samples: 5,
    });
    group.bench_function("10k x 40, PCA-1, 10 x 30%, DBSCAN(eps 3, min 5)", |b| {
        b.iter(|| mapper(&input, &fixed).map(|g| g.nodes.len()));
    });
    group.sample_size(10);
    let auto = params(MapperClusterer::Dbscan {
        eps: None,
        min_samples: 5,
    });
    group.bench_function("10k x 40, PCA-1, 10 x 30%, DBSCAN(auto eps, min 5)", |b| {
        b.iter(|| mapper(&input, &auto).map(|g| g.nodes.len()));
    });
    let linkage = params(MapperClusterer::SingleLinkage { bins: 10 });
    group.bench_function("10k x 40, PCA-1, 10 x 30%, single linkage (10 bins)", |b| {
        b.iter(|| mapper(&input, &linkage).map(|g| g.nodes.len()));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
