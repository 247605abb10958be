//! A benchmark of the NMF lens's device fit (`actiscope_train::nmf`): the coupled
//! multiplicative updates as dense tensor products on a burn device (a GPU through wgpu, or
//! flex), on one block, run by `cargo xtask bench-nmf --device wgpu` and `cargo xtask
//! bench-gpu`:
//!
//! `nmf_device MATRIX ROWS COLS RANK ROUNDS DEVICE` reads `ROWS x COLS` little-endian `f32`
//! values (row-major, instances in rows), fits once to warm up (compiling GPU kernels), then
//! prints the best of three timed fits of exactly `ROUNDS` rounds as one JSON line (`secs`,
//! `rmse`, `rounds`, `device`). A fit is timed whole, as the lens runs it: the matrix stacked
//! and uploaded from the host, the rounds (the objective read back every 16), the factors read
//! back and the residuals computed on the host.

// An example's main reports errors to a person.
#![allow(clippy::print_stderr)]

use actiscope_analysis::Matrix;
use actiscope_analysis::nmf::{NmfBlockInput, NmfOptions};
use actiscope_train::device::{DeviceChoice, choose};
use actiscope_train::nmf::coupled_nmf_on_device;

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
    let blocks = [NmfBlockInput {
        name: "matrix",
        data: &matrix,
        weight: 1.0,
    }];
    let fit = |rounds: usize| {
        let options = NmfOptions {
            rank,
            max_iters: rounds,
            // Exactly `rounds` rounds: no improvement is small enough to stop.
            tolerance: f64::NEG_INFINITY,
            ..NmfOptions::default()
        };
        coupled_nmf_on_device(&blocks, &options, &chosen.device).map_err(|e| e.to_string())
    };
    fit(rounds.min(5))?;
    let mut best_secs = f64::INFINITY;
    let (mut rmse, mut rounds_run) = (f64::NAN, 0);
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let done = fit(rounds)?;
        best_secs = best_secs.min(started.elapsed().as_secs_f64());
        (rmse, rounds_run) = (done.rmse, done.iterations());
    }
    Ok(serde_json::json!({
        "secs": best_secs,
        "rmse": rmse,
        "rounds": rounds_run,
        "device": chosen.description
    })
    .to_string())
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
