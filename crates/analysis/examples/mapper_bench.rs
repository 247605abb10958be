//! The actiscope side of `cargo xtask bench-mapper` (KeplerMapper is the other side).
//!
//! ```text
//! mapper_bench generate <file> [--rows 10000] [--cols 40] [--seed 42]
//! mapper_bench run <file> [--cols 40] [--intervals 10] [--overlap 30] [--eps 4.0|auto]
//!                         [--min-samples 5] [--single-linkage BINS] [--repeats 5]
//! ```
//!
//! `generate` writes deterministic clustered "activations" (10 Gaussian blobs pushed through
//! a ReLU, splitmix64 + Box-Muller) as raw little-endian `f32`, row-major. `run` reads such a
//! file, builds the mapper graph (first-principal-component lens, DBSCAN with the given
//! `eps`, or single linkage with `--single-linkage BINS`) once to warm up and then `repeats` times on one thread, and prints one JSON line:
//! the best wall time of the whole `mapper` call, the best time of the lens alone, and the
//! node and edge counts.

use std::process::ExitCode;
use std::time::Instant;

use actiscope_analysis::Matrix;
use actiscope_analysis::mapper::{MapperInput, lens_values, mapper};
use actiscope_protocol::mapper::{MapperClusterer, MapperLens, MapperParams};

use actiscope_analysis::rng::{BENCH_BLOBS, BENCH_SPREAD, relu_blobs};

mod common;

use common::flag;

fn generate(path: &str, args: &[String]) -> Result<(), String> {
    let rows = flag(args, "--rows", 10_000usize)?;
    let cols = flag(args, "--cols", 40usize)?;
    let seed = flag(args, "--seed", 42u64)?;
    let bytes: Vec<u8> = relu_blobs(rows, cols, BENCH_BLOBS, BENCH_SPREAD, seed)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(path, bytes).map_err(|e| format!("writing {path}: {e}"))
}

fn run(path: &str, args: &[String]) -> Result<(), String> {
    let cols = flag(args, "--cols", 40usize)?;
    let intervals = flag(args, "--intervals", 10u32)?;
    let overlap = flag(args, "--overlap", 30.0f32)?;
    let eps = flag(args, "--eps", "4.0".to_owned())?;
    let eps = match eps.as_str() {
        "auto" => None,
        value => Some(
            value
                .parse::<f32>()
                .map_err(|_| "--eps: not a number or auto")?,
        ),
    };
    let min_samples = flag(args, "--min-samples", 5u32)?;
    let bins = flag(args, "--single-linkage", 0u32)?;
    let repeats = flag(args, "--repeats", 5usize)?.max(1);
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| {
            let mut word = [0u8; 4];
            word.copy_from_slice(c);
            f32::from_le_bytes(word)
        })
        .collect();
    let rows = data.len() / cols.max(1);
    let activations = Matrix::new(rows, cols, data).map_err(|e| e.to_string())?;
    let zeros = vec![0u32; rows];
    let input = MapperInput {
        activations: &activations,
        labels: &zeros,
        predictions: &zeros,
        predicted_scores: None,
        class_count: 1,
    };
    let params = MapperParams {
        layer_idx: 0,
        lens: MapperLens::Pca1,
        intervals,
        overlap_pct: overlap,
        clusterer: if bins > 0 {
            MapperClusterer::SingleLinkage { bins }
        } else {
            MapperClusterer::Dbscan { eps, min_samples }
        },
        min_edge_weight: 0.0,
    };
    // Everything in the mapper is sequential; this makes faer's global setting explicit.
    faer::set_global_parallelism(faer::Par::Seq);
    let mut graph = mapper(&input, &params).map_err(|e| e.to_string())?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let start = Instant::now();
        graph = mapper(&input, &params).map_err(|e| e.to_string())?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mut lens_best = f64::INFINITY;
    for _ in 0..repeats {
        let start = Instant::now();
        let lens = lens_values(&input, params.lens).map_err(|e| e.to_string())?;
        lens_best = lens_best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(lens);
    }
    println!(
        "{{\"secs\": {best:.6}, \"lens_secs\": {lens_best:.6}, \"nodes\": {}, \"edges\": {}, \"rows\": {rows}, \"cols\": {cols}}}",
        graph.nodes.len(),
        graph.edges.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match (args.first().map(String::as_str), args.get(1)) {
        (Some("generate"), Some(path)) => generate(path, &args),
        (Some("run"), Some(path)) => run(path, &args),
        _ => Err("usage: mapper_bench generate|run <file> [options]".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mapper_bench: {message}");
            ExitCode::FAILURE
        }
    }
}
