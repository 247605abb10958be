//! A benchmark, not part of the product: non-negative matrix factorization on a burn device
//! (a GPU through wgpu, or flex), the same multiplicative updates as `actiscope_analysis::nmf`
//! written as dense tensor products so a GPU can run them. The dashboard's lens uses the CPU
//! version (sparse-aware, coupled blocks); this measures what a GPU would give, run by
//! `cargo xtask bench-nmf --device wgpu`:
//!
//! `nmf_device MATRIX ROWS COLS RANK ROUNDS DEVICE` reads `ROWS x COLS` little-endian `f32`
//! values (row-major, instances in rows), fits once to warm up (compiling GPU kernels), then
//! prints the best of three timed fits as one JSON line (`secs`, `rmse`, `device`).
//! Its tests (`test = true` in Cargo.toml) run with the crate's: on flex, and on wgpu.

// An example's main reports errors to a person.
#![allow(clippy::print_stderr)]

use actiscope_analysis::Matrix;
use actiscope_analysis::rng::SplitMix64;
use burn::prelude::*;
use burn::tensor::TensorData;

use actiscope_train::capture::{ReadbackError, to_vec};
use actiscope_train::device::{DeviceChoice, choose};

/// The result of [`nmf_on_device`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceNmf {
    /// `features x rank`, row-major.
    pub loadings: Vec<f32>,
    /// `instances x rank`, row-major.
    pub instance_weights: Vec<f32>,
    /// Root-mean-square error of the reconstruction over all entries.
    pub rmse: f64,
}

/// Errors of [`nmf_on_device`].
#[derive(Debug, thiserror::Error)]
pub enum DeviceNmfError {
    /// The rank is 0 or larger than the matrix.
    #[error("rank {rank} must be between 1 and {max}")]
    BadRank {
        /// Asked for.
        rank: usize,
        /// The largest allowed.
        max: usize,
    },
    /// The data have a negative or non-finite entry.
    #[error("NMF needs finite, non-negative data; entry {index} is {value}")]
    BadValue {
        /// Row-major index of the entry.
        index: usize,
        /// The entry.
        value: f32,
    },
    /// Reading the result back failed.
    #[error(transparent)]
    Readback(#[from] ReadbackError),
}

/// Factorizes `data` (`instances x features`, non-negative) as `X ~ W F^T` with `X` the
/// `features x instances` transpose, `W` `features x rank`, `F` `instances x rank`, by
/// `iterations` rounds of the multiplicative updates
/// `W <- W .* (X F) ./ (W (F^T F) + eps)`, then `F <- F .* (X^T W) ./ (F (W^T W) + eps)`, all on
/// `device`. The start is uniform in `[0, 1)` from `seed`, drawn in the same order as the CPU
/// version's, so both reach the same fit up to float rounding.
pub fn nmf_on_device(
    data: &Matrix,
    rank: usize,
    iterations: usize,
    seed: u64,
    epsilon: f32,
    device: &Device,
) -> Result<DeviceNmf, DeviceNmfError> {
    let (instances, features) = (data.rows(), data.cols());
    let max = instances.max(features);
    if rank == 0 || rank > max {
        return Err(DeviceNmfError::BadRank { rank, max });
    }
    if let Some((index, &value)) = data
        .as_slice()
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
    {
        return Err(DeviceNmfError::BadValue { index, value });
    }
    let mut rng = SplitMix64::new(seed);
    let mut uniform =
        |count: usize| -> Vec<f32> { (0..count).map(|_| rng.next_unit_f32()).collect() };
    let w0 = uniform(features * rank);
    let f0 = uniform(instances * rank);
    // [instances, features] on the device; X is its transpose.
    let xt = Tensor::<2>::from_data(
        TensorData::new(data.as_slice().to_vec(), [instances, features]),
        device,
    );
    let x = xt.clone().transpose();
    let mut w = Tensor::<2>::from_data(TensorData::new(w0, [features, rank]), device);
    let mut f = Tensor::<2>::from_data(TensorData::new(f0, [instances, rank]), device);
    for _ in 0..iterations {
        // [features, rank] = [features, instances] x [instances, rank]
        let numerator = x.clone().matmul(f.clone());
        // [rank, rank]
        let ftf = f.clone().transpose().matmul(f.clone());
        let denominator = w.clone().matmul(ftf).add_scalar(epsilon);
        w = w * numerator / denominator;
        // [instances, rank] = [instances, features] x [features, rank]
        let numerator = xt.clone().matmul(w.clone());
        let wtw = w.clone().transpose().matmul(w.clone());
        let denominator = f.clone().matmul(wtw).add_scalar(epsilon);
        f = f * numerator / denominator;
    }
    // ||X - W F^T||^2 summed on the device, read back once.
    let residual = x - w.clone().matmul(f.clone().transpose());
    let squared = to_vec(residual.clone().mul(residual).sum())?;
    let cells = (instances * features).max(1) as f64;
    let rmse = (f64::from(squared.first().copied().unwrap_or(f32::NAN)) / cells).sqrt();
    Ok(DeviceNmf {
        loadings: to_vec(w)?,
        instance_weights: to_vec(f)?,
        rmse,
    })
}

/// `MATRIX ROWS COLS RANK ROUNDS DEVICE`, see the module doc.
fn bench(args: &[String]) -> Result<String, String> {
    let [path, rows, cols, rank, rounds, device] = args else {
        return Err("usage: nmf_device MATRIX ROWS COLS RANK ROUNDS DEVICE".to_owned());
    };
    let number = |name: &str, text: &str| {
        text.parse::<usize>()
            .map_err(|_| format!("{name} must be a whole number, got `{text}`"))
    };
    let (rows, cols) = (number("ROWS", rows)?, number("COLS", cols)?);
    let (rank, rounds) = (number("RANK", rank)?, number("ROUNDS", rounds)?);
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    let values: Vec<f32> = bytes
        .as_chunks::<4>()
        .0
        .iter()
        .map(|c| f32::from_le_bytes(*c))
        .collect();
    let matrix = Matrix::new(rows, cols, values).map_err(|e| e.to_string())?;
    let choice = DeviceChoice::parse(device).map_err(|e| e.to_string())?;
    let chosen = choose(choice).map_err(|e| e.to_string())?;
    let fit = |rounds: usize| {
        nmf_on_device(&matrix, rank, rounds, 0, 1e-9, &chosen.device).map_err(|e| e.to_string())
    };
    fit(rounds.min(5))?;
    let mut best_secs = f64::INFINITY;
    let mut rmse = f64::NAN;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        rmse = fit(rounds)?.rmse;
        best_secs = best_secs.min(started.elapsed().as_secs_f64());
    }
    Ok(
        serde_json::json!({"secs": best_secs, "rmse": rmse, "device": chosen.description})
            .to_string(),
    )
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match bench(&args) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use actiscope_analysis::nmf::{NmfBlockInput, NmfOptions, coupled_nmf};

    fn flex() -> Device {
        choose(DeviceChoice::Flex)
            .map(|c| c.device)
            .unwrap_or_default()
    }

    /// `instances x features` = A B with A, B uniform non-negative, rank `rank`.
    fn planted(instances: usize, features: usize, rank: usize, seed: u64) -> Matrix {
        let mut rng = SplitMix64::new(seed);
        let a: Vec<f32> = (0..instances * rank).map(|_| rng.next_unit_f32()).collect();
        let b: Vec<f32> = (0..rank * features).map(|_| rng.next_unit_f32()).collect();
        let mut values = vec![0.0f32; instances * features];
        for i in 0..instances {
            for j in 0..features {
                values[i * features + j] = (0..rank)
                    .map(|k| a[i * rank + k] * b[k * features + j])
                    .sum();
            }
        }
        Matrix::new(instances, features, values).unwrap()
    }

    #[test]
    fn recovers_a_planted_product_and_matches_the_cpu_version() {
        let data = planted(60, 30, 3, 4);
        let device = flex();
        let fit = nmf_on_device(&data, 3, 400, 7, 1e-9, &device).unwrap();
        let mean = data.as_slice().iter().sum::<f32>() / data.as_slice().len() as f32;
        assert!(
            fit.rmse < 0.01 * f64::from(mean),
            "rmse {} vs mean {mean}",
            fit.rmse
        );
        assert!(
            fit.loadings
                .iter()
                .chain(&fit.instance_weights)
                .all(|v| *v >= 0.0)
        );
        assert_eq!(fit.loadings.len(), 30 * 3);
        assert_eq!(fit.instance_weights.len(), 60 * 3);
        // The CPU version from the same start, same rounds, no early stop.
        let options = NmfOptions {
            rank: 3,
            max_iters: 50,
            tolerance: 0.0,
            seed: 7,
            threads: 1,
            ..NmfOptions::default()
        };
        let cpu = coupled_nmf(
            &[NmfBlockInput {
                name: "x",
                data: &data,
                weight: 1.0,
            }],
            &options,
        )
        .unwrap();
        let ours = nmf_on_device(&data, 3, 50, 7, options.epsilon, &device).unwrap();
        assert!(
            (ours.rmse - cpu.rmse).abs() < 1e-3 * cpu.rmse.max(1e-6),
            "device {} vs cpu {}",
            ours.rmse,
            cpu.rmse
        );
    }

    #[test]
    fn bad_rank_and_negative_data_are_refused() {
        let device = flex();
        let data = Matrix::new(2, 2, vec![1.0, 0.0, -1.0, 2.0]).unwrap();
        assert!(matches!(
            nmf_on_device(&data, 1, 1, 0, 1e-9, &device),
            Err(DeviceNmfError::BadValue { index: 2, .. })
        ));
        let data = Matrix::new(2, 2, vec![1.0; 4]).unwrap();
        assert!(matches!(
            nmf_on_device(&data, 0, 1, 0, 1e-9, &device),
            Err(DeviceNmfError::BadRank { .. })
        ));
        assert!(matches!(
            nmf_on_device(&data, 3, 1, 0, 1e-9, &device),
            Err(DeviceNmfError::BadRank { rank: 3, max: 2 })
        ));
    }

    #[test]
    fn updates_on_wgpu_match_flex() {
        let wgpu = choose(DeviceChoice::Wgpu).expect("a wgpu device");
        let mut rng = SplitMix64::new(3);
        let values: Vec<f32> = (0..40 * 25)
            .map(|_| {
                let u = rng.next_unit_f32();
                if u < 0.5 { 0.0 } else { u }
            })
            .collect();
        let data = Matrix::new(40, 25, values).unwrap();
        let on_gpu = nmf_on_device(&data, 4, 60, 9, 1e-9, &wgpu.device).unwrap();
        let on_cpu = nmf_on_device(&data, 4, 60, 9, 1e-9, &flex()).unwrap();
        assert!(
            (on_gpu.rmse - on_cpu.rmse).abs() < 1e-3 * on_cpu.rmse,
            "wgpu {} vs flex {}",
            on_gpu.rmse,
            on_cpu.rmse
        );
        assert!(on_gpu.loadings.iter().all(|v| *v >= 0.0));
    }
}
