//! The actiscope side of `cargo xtask bench-similarity` (a numpy implementation of the same
//! formulas, `xtask/bench/numpy_similarity.py`, is the other side).
//!
//! ```text
//! similarity_bench generate-pair <x> <y> [--rows 5000] [--cols 512] [--seed 42]
//! similarity_bench generate-grid <file> [--instances 1000] [--neurons 40] [--layers 3]
//!                                       [--epochs 30] [--seed 7]
//! similarity_bench pair <x> <y> [--rows 5000] [--cols 512] [--repeats 3]
//! similarity_bench grid <file> [--instances 1000] [--neurons 40] [--layers 3] [--epochs 30]
//!                              [--repeats 3]
//! ```
//!
//! `generate-pair` writes `X`, ReLU Gaussian blobs ([`relu_blobs`]), and `Y = X M + E`, a
//! noisy linear map of it (`M` and `E` seeded normals, `M` scaled by `1/√cols`, `E` with
//! standard deviation 0.5), each as raw little-endian `f32`, row-major. `generate-grid`
//! writes the activations of a synthetic 30-epoch run: one fixed probe input (`instances x
//! neurons` normals) through `layers` ReLU layers whose weights drift linearly towards their
//! final values over the epochs; epoch-major, then layer, each `instances x neurons`.
//!
//! `pair` times linear CKA, debiased CKA, SVCCA (99% of the variance) and PWCCA (plain CCA,
//! weights from `x`) of the two matrices, each once to warm up and then best of `repeats`,
//! and prints one JSON line with the times and the values. `grid` times the whole
//! layers x epochs grid against the last epoch (each layer with itself at the last epoch),
//! SVCCA and CKA, best of `repeats` after a warm-up, and prints the times and every value;
//! it asks for it as the server does, one `similarity_grid` per layer (all epochs against
//! the last), so each matrix is reduced once.
//! Threads: the similarity module uses a second thread when the machine has one (as
//! `std::thread::available_parallelism` sees it, so `taskset` limits it); faer runs on one.

use std::process::ExitCode;
use std::time::Instant;

use actiscope_analysis::Matrix;
use actiscope_analysis::rng::{BENCH_BLOBS, BENCH_SPREAD, SplitMix64, relu_blobs};
use actiscope_analysis::similarity::{
    Method, SimilarityError, SvccaOptions, linear_cka, linear_cka_debiased, pwcca, similarity_grid,
    svcca,
};

mod common;

use common::flag;

fn write_f32(path: &str, values: &[f32]) -> Result<(), String> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| format!("writing {path}: {e}"))
}

fn read_f32(path: &str) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| {
            let mut word = [0u8; 4];
            word.copy_from_slice(c);
            f32::from_le_bytes(word)
        })
        .collect())
}

/// `rows x cols` seeded standard normals times `scale`, row-major, in `f64`.
fn normals(rng: &mut SplitMix64, rows: usize, cols: usize, scale: f64) -> Vec<f64> {
    (0..rows * cols).map(|_| scale * rng.normal()).collect()
}

/// `a (n x k) · b (k x m)`, row-major `f64`.
fn product(a: &[f64], b: &[f64], k: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; a.len() / k.max(1) * m];
    for (row, out_row) in a.chunks_exact(k).zip(out.chunks_exact_mut(m)) {
        for (&value, b_row) in row.iter().zip(b.chunks_exact(m)) {
            for (o, &w) in out_row.iter_mut().zip(b_row) {
                *o += value * w;
            }
        }
    }
    out
}

fn generate_pair(x_path: &str, y_path: &str, args: &[String]) -> Result<(), String> {
    let rows = flag(args, "--rows", 5_000usize)?;
    let cols = flag(args, "--cols", 512usize)?;
    let seed = flag(args, "--seed", 42u64)?;
    let x = relu_blobs(rows, cols, BENCH_BLOBS, BENCH_SPREAD, seed);
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let map = normals(&mut rng, cols, cols, 1.0 / (cols as f64).sqrt());
    let wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let y: Vec<f32> = product(&wide, &map, cols, cols)
        .into_iter()
        .map(|v| (v + 0.5 * rng.normal()) as f32)
        .collect();
    write_f32(x_path, &x)?;
    write_f32(y_path, &y)
}

fn generate_grid(path: &str, args: &[String]) -> Result<(), String> {
    let instances = flag(args, "--instances", 1_000usize)?;
    let neurons = flag(args, "--neurons", 40usize)?;
    let layers = flag(args, "--layers", 3usize)?;
    let epochs = flag(args, "--epochs", 30usize)?.max(1);
    let seed = flag(args, "--seed", 7u64)?;
    let mut rng = SplitMix64::new(seed);
    let probe = normals(&mut rng, instances, neurons, 1.0);
    let he = (2.0 / neurons as f64).sqrt();
    let finals: Vec<Vec<f64>> = (0..layers)
        .map(|_| normals(&mut rng, neurons, neurons, he))
        .collect();
    let drifts: Vec<Vec<f64>> = (0..layers)
        .map(|_| normals(&mut rng, neurons, neurons, he))
        .collect();
    let mut out = Vec::with_capacity(epochs * layers * instances * neurons);
    for epoch in 0..epochs {
        // 1 at the first epoch, 0 at the last: the weights settle on their final values.
        let remaining = (epochs - 1 - epoch) as f64 / (epochs - 1).max(1) as f64;
        let mut input = probe.clone();
        for (w, d) in finals.iter().zip(&drifts) {
            let weights: Vec<f64> = w.iter().zip(d).map(|(w, d)| w + remaining * d).collect();
            input = product(&input, &weights, neurons, neurons)
                .into_iter()
                .map(|v| v.max(0.0))
                .collect();
            out.extend(input.iter().map(|&v| v as f32));
        }
    }
    write_f32(path, &out)
}

/// Best wall time of `repeats` calls of `f` after one warm-up, and its last value.
fn best_of<T>(
    repeats: usize,
    mut f: impl FnMut() -> Result<T, SimilarityError>,
) -> Result<(f64, T), String> {
    let mut value = f().map_err(|e| e.to_string())?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        value = f().map_err(|e| e.to_string())?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok((best, value))
}

/// Best wall time of faer's `f32` product `Xᵀ Y` (the largest of CKA's three products,
/// `2 n p q` flops) on one thread after a warm-up: the fastest rate at which this machine's
/// `f32` kernels multiply these matrices, the ceiling `cargo xtask bench-similarity` puts
/// on any exact CKA.
fn gemm_f32_secs(x: &Matrix, y: &Matrix, repeats: usize) -> f64 {
    let a = faer::MatRef::from_row_major_slice(x.as_slice(), x.rows(), x.cols());
    let b = faer::MatRef::from_row_major_slice(y.as_slice(), y.rows(), y.cols());
    let mut product = faer::Mat::<f32>::zeros(x.cols(), y.cols());
    let mut best = f64::INFINITY;
    for round in 0..=repeats.max(1) {
        let start = Instant::now();
        faer::linalg::matmul::matmul(
            product.as_mut(),
            faer::Accum::Replace,
            a.transpose(),
            b,
            1.0f32,
            faer::Par::Seq,
        );
        if round > 0 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    std::hint::black_box(&product);
    best
}

fn pair(x_path: &str, y_path: &str, args: &[String]) -> Result<(), String> {
    let rows = flag(args, "--rows", 5_000usize)?;
    let cols = flag(args, "--cols", 512usize)?;
    let repeats = flag(args, "--repeats", 3usize)?;
    let x = Matrix::new(rows, cols, read_f32(x_path)?).map_err(|e| e.to_string())?;
    let y = Matrix::new(rows, cols, read_f32(y_path)?).map_err(|e| e.to_string())?;
    faer::set_global_parallelism(faer::Par::Seq);
    let (cka_secs, cka) = best_of(repeats, || linear_cka(&x, &y))?;
    let (debiased_secs, debiased) = best_of(repeats, || linear_cka_debiased(&x, &y))?;
    let (svcca_secs, sv) = best_of(repeats, || svcca(&x, &y, &SvccaOptions::default()))?;
    let (pwcca_secs, pw) = best_of(repeats, || pwcca(&x, &y, &SvccaOptions::CCA))?;
    let gemm_secs = gemm_f32_secs(&x, &y, repeats);
    let cross_flops = 2.0 * (rows * cols * cols) as f64;
    println!(
        "{{\"cka_secs\": {cka_secs:.6}, \"cka\": {cka:.10}, \
         \"cka_debiased_secs\": {debiased_secs:.6}, \"cka_debiased\": {debiased:.10}, \
         \"svcca_secs\": {svcca_secs:.6}, \"svcca\": {:.10}, \"svcca_kept\": [{}, {}], \
         \"pwcca_secs\": {pwcca_secs:.6}, \"pwcca\": {:.10}, \
         \"gemm_f32_gflops\": {:.3}, \"threads\": {}}}",
        sv.mean,
        sv.kept.0,
        sv.kept.1,
        pw.pwcca.unwrap_or(f64::NAN),
        cross_flops / gemm_secs / 1e9,
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    Ok(())
}

fn grid(path: &str, args: &[String]) -> Result<(), String> {
    let instances = flag(args, "--instances", 1_000usize)?;
    let neurons = flag(args, "--neurons", 40usize)?;
    let layers = flag(args, "--layers", 3usize)?;
    let epochs = flag(args, "--epochs", 30usize)?.max(1);
    let repeats = flag(args, "--repeats", 3usize)?;
    let data = read_f32(path)?;
    let size = instances * neurons;
    if data.len() != epochs * layers * size {
        return Err(format!(
            "{path} holds {} values, not {epochs} x {layers} x {instances} x {neurons}",
            data.len()
        ));
    }
    let matrices = data
        .chunks_exact(size)
        .map(|chunk| Matrix::new(instances, neurons, chunk.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    // Layer by layer, every epoch against the last one (the size was checked above), as the
    // server's layers x epochs grid asks for it: one `similarity_grid` per layer.
    let mut layer_rows = Vec::with_capacity(layers);
    for layer in 0..layers {
        let last = matrices
            .get((epochs - 1) * layers + layer)
            .ok_or("grid cut short")?;
        let rows = (0..epochs)
            .map(|epoch| matrices.get(epoch * layers + layer).ok_or("grid cut short"))
            .collect::<Result<Vec<&Matrix>, _>>()?;
        layer_rows.push((rows, last));
    }
    faer::set_global_parallelism(faer::Par::Seq);
    let whole_grid = |method: Method| {
        layer_rows
            .iter()
            .flat_map(|(rows, last)| similarity_grid(method, rows, &[last]))
            .collect::<Result<Vec<_>, _>>()
    };
    let (svcca_secs, svcca_values) = best_of(repeats, || whole_grid(Method::Svcca))?;
    let (cka_secs, cka_values) = best_of(repeats, || whole_grid(Method::Cka))?;
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.10}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{{\"svcca_secs\": {svcca_secs:.6}, \"cka_secs\": {cka_secs:.6}, \
         \"svcca_values\": [{}], \"cka_values\": [{}], \"threads\": {}}}",
        list(&svcca_values),
        list(&cka_values),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (first, second) = (args.get(1), args.get(2));
    let result = match (args.first().map(String::as_str), first, second) {
        (Some("generate-pair"), Some(x), Some(y)) => generate_pair(x, y, &args),
        (Some("generate-grid"), Some(path), _) => generate_grid(path, &args),
        (Some("pair"), Some(x), Some(y)) => pair(x, y, &args),
        (Some("grid"), Some(path), _) => grid(path, &args),
        _ => Err(
            "usage: similarity_bench generate-pair|pair <x> <y> [options] | \
             generate-grid|grid <file> [options]"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("similarity_bench: {message}");
            ExitCode::FAILURE
        }
    }
}
