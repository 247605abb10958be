//! Times the uncoupled NMF of a pixel matrix for `cargo xtask bench-nmf`.
//!
//! Usage: `nmf_bench <matrix.f32> <rows> <cols> <rank> <iterations> <threads>`; the file holds `rows x
//! cols` little-endian `f32` values, row-major (instances in rows). Prints one JSON line with
//! the best of three timed fits after one warm-up, the final RMSE and the rounds run.

use std::time::Instant;

use actiscope_analysis::Matrix;
use actiscope_analysis::nmf::{NmfBlockInput, NmfOptions, coupled_nmf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, rows, cols, rank, iterations, threads] = args.as_slice() else {
        return Err(
            "usage: nmf_bench <matrix.f32> <rows> <cols> <rank> <iterations> <threads>".into(),
        );
    };
    let bytes = std::fs::read(path)?;
    let values: Vec<f32> = bytes
        .as_chunks::<4>()
        .0
        .iter()
        .map(|c| f32::from_le_bytes(*c))
        .collect();
    let matrix = Matrix::new(rows.parse()?, cols.parse()?, values)?;
    let options = NmfOptions {
        rank: rank.parse()?,
        max_iters: iterations.parse()?,
        tolerance: 0.0,
        threads: threads.parse()?,
        ..NmfOptions::default()
    };
    let blocks = [NmfBlockInput {
        name: "pixels",
        data: &matrix,
        weight: 1.0,
    }];
    coupled_nmf(&blocks, &options)?;
    let mut best_secs = f64::INFINITY;
    let mut fit = None;
    for _ in 0..3 {
        let started = Instant::now();
        let result = coupled_nmf(&blocks, &options)?;
        best_secs = best_secs.min(started.elapsed().as_secs_f64());
        fit = Some(result);
    }
    let fit = fit.ok_or("no fit")?;
    println!(
        "{{\"secs\": {best_secs}, \"rmse\": {}, \"iterations\": {}}}",
        fit.rmse,
        fit.iterations()
    );
    Ok(())
}
