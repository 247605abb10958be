//! The NMF lens on a burn device: the coupled factorization's multiplicative updates as dense
//! tensor products (a GPU through wgpu runs them; flex too, for tests), and where a fit runs.
//!
//! [`coupled_nmf_on_device`] answers with the CPU fit's [`NmfFit`]: the problem is checked,
//! weighted, stacked and seeded by `actiscope_analysis::nmf::DenseProblem` exactly as the CPU
//! version does, the rounds run on the device, and the fit is finished on the host from the
//! final factors (residuals in `f64`). The objective's terms (one number per instance and
//! `rank²` more per round) are read back every few rounds and added in `f64`: the fit stops by
//! the CPU fit's rule, up to rounding, without a round trip to the device per round. A panic
//! inside the device's runtime comes back as an error, not as a panic.
//!
//! [`NmfPlacement`] decides, per request, between that and the CPU version (sparse-aware, on
//! the cores): the CPU when told so, when the GPU failed before, when the problem is too small
//! for a GPU to gain (each round is a dozen kernel launches), or when there is no GPU;
//! otherwise whichever timed fits of one and five rounds on each side predict to finish
//! first, remembered for problems of about the same size and density.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use actiscope_analysis::nmf::{
    DenseProblem, NmfBlockInput, NmfError, NmfFit, NmfOptions, coupled_nmf,
};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::capture::{ReadbackError, to_vec};
use crate::device::{ChosenDevice, DeviceChoice, choose};

/// Errors of [`coupled_nmf_on_device`].
#[derive(Debug, thiserror::Error)]
pub enum DeviceNmfError {
    /// The blocks or options were refused (the CPU fit refuses the same).
    #[error(transparent)]
    Nmf(#[from] NmfError),
    /// Reading a result back from the device failed.
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    /// The device's runtime panicked (some of its errors cannot be returned).
    #[error("the device failed: {0}")]
    Panicked(String),
}

/// A name `--nmf-device` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown NMF device `{0}`: use auto, cpu or wgpu")]
pub struct UnknownNmfDevice(pub String);

/// The coupled factorization of `blocks` (see `actiscope_analysis::nmf`) with its update
/// rounds on `device`: the same start, rounds, stopping rule and result as
/// [`coupled_nmf`], up to `f32` rounding in a different order (entries below `1e-30` become
/// zero after each update, as on the CPU).
pub fn coupled_nmf_on_device(
    blocks: &[NmfBlockInput<'_>],
    options: &NmfOptions,
    device: &Device,
) -> Result<NmfFit, DeviceNmfError> {
    let mut problem = DenseProblem::new(blocks, options)?;
    // The stacked data go to the device; the host keeps no second copy.
    let transposed = std::mem::take(&mut problem.transposed);
    let rounds = catch_unwind(AssertUnwindSafe(|| {
        rounds_on_device(&problem, transposed, options, device)
    }))
    .map_err(|panic| DeviceNmfError::Panicked(panic_message(panic.as_ref())))??;
    Ok(problem.finish(blocks, &rounds.w, &rounds.f, rounds.objective)?)
}

/// The message a panic carried, or a placeholder.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// What the rounds leave.
struct Rounds {
    /// `W`, row-major `features x rank`.
    w: Vec<f32>,
    /// `F`, row-major `instances x rank`.
    f: Vec<f32>,
    /// The objective after each round.
    objective: Vec<f64>,
}

/// Rounds run between two reads of the objective: each read waits for the device, so reading
/// once per round would put a round trip between every two rounds (a wgpu round trip costs
/// tens of microseconds, as much as a round of a small fit on a fast GPU).
const ROUNDS_PER_READ: usize = 16;

/// One round's factors and objective terms, kept on the device until they are read.
struct Round {
    w: Tensor<2>,
    f: Tensor<2>,
    /// `[instances + rank²]`: each instance's share of `<Xᵀ W, F>`, then `WᵀW .* FᵀF`.
    terms: Tensor<1>,
}

/// Runs `options.max_iters` rounds (fewer when the objective stalls) on `device`. The
/// objective's terms are read back [`ROUNDS_PER_READ`] rounds at a time; the stall is found
/// among them and the fit ends with the factors of the round it stalled at, as if each round
/// had been read.
fn rounds_on_device(
    problem: &DenseProblem,
    transposed: Vec<f32>,
    options: &NmfOptions,
    device: &Device,
) -> Result<Rounds, ReadbackError> {
    let (instances, features, rank) = (problem.instances, problem.features, problem.rank);
    // [instances, features]; X is its transpose, [features, instances].
    let xt = Tensor::<2>::from_data(TensorData::new(transposed, [instances, features]), device);
    let x = xt.clone().transpose();
    let mut w = Tensor::<2>::from_data(
        TensorData::new(problem.start_loadings.clone(), [features, rank]),
        device,
    );
    let mut f = Tensor::<2>::from_data(
        TensorData::new(problem.start_instance_weights.clone(), [instances, rank]),
        device,
    );
    let epsilon = options.epsilon;
    // [rank, rank]
    let mut ftf = f.clone().transpose().matmul(f.clone());
    let mut objective: Vec<f64> = Vec::new();
    let mut pending: Vec<Round> = Vec::with_capacity(ROUNDS_PER_READ);
    for round in 0..options.max_iters {
        // W <- W .* (X F) ./ (W FᵀF + eps): [features, instances] x [instances, rank].
        let numerator = x.clone().matmul(f.clone());
        let denominator = w.clone().matmul(ftf).add_scalar(epsilon);
        w = flush_tiny(w * (numerator / denominator));
        let wtw = w.clone().transpose().matmul(w.clone());
        // F <- F .* (Xᵀ W) ./ (F WᵀW + eps): [instances, features] x [features, rank].
        let numerator = xt.clone().matmul(w.clone());
        let denominator = f.clone().matmul(wtw.clone()).add_scalar(epsilon);
        f = flush_tiny(f * (numerator.clone() / denominator));
        ftf = f.clone().transpose().matmul(f.clone());
        // ||X - W Fᵀ||² = ||X||² - 2 <Xᵀ W, F> + <WᵀW, FᵀF>. Summed whole in f32 on the
        // device, the terms' rounding would swamp a near-exact fit's small objective, so
        // each instance's share of the first and every cell of the second come back
        // (`instances + rank²` numbers) and are added in f64, as the CPU fit adds them.
        pending.push(Round {
            w: w.clone(),
            f: f.clone(),
            terms: Tensor::cat(
                vec![
                    (numerator * f.clone()).sum_dim(1).reshape([instances]),
                    (wtw * ftf.clone()).reshape([rank * rank]),
                ],
                0,
            ),
        });
        if pending.len() < ROUNDS_PER_READ && round + 1 < options.max_iters {
            continue;
        }
        let rounds = std::mem::take(&mut pending);
        let terms = to_vec(Tensor::cat(
            rounds.iter().map(|r| r.terms.clone()).collect(),
            0,
        ))?;
        let width = instances + rank * rank;
        if terms.len() != rounds.len() * width {
            return Err(ReadbackError(format!(
                "the objective's terms came back as {} numbers, not {}",
                terms.len(),
                rounds.len() * width
            )));
        }
        let sum = |values: &[f32]| values.iter().map(|&v| f64::from(v)).sum::<f64>();
        for (read, values) in rounds.iter().zip(terms.chunks_exact(width.max(1))) {
            let (cross, fitted) = values.split_at(instances);
            let value = (problem.norm_sq - 2.0 * sum(cross) + sum(fitted)).max(0.0);
            let previous = objective.last().copied();
            objective.push(value);
            if let Some(previous) = previous
                && (previous - value) <= options.tolerance * previous.abs()
            {
                return Ok(Rounds {
                    w: to_vec(read.w.clone())?,
                    f: to_vec(read.f.clone())?,
                    objective,
                });
            }
        }
    }
    Ok(Rounds {
        w: to_vec(w)?,
        f: to_vec(f)?,
        objective,
    })
}

/// `factor` with entries below `1e-30` set to zero, as the CPU update does (they would turn
/// subnormal; below the smallest normal `f32` an entry is zero for every purpose).
fn flush_tiny(factor: Tensor<2>) -> Tensor<2> {
    let tiny = factor.clone().lower_elem(1e-30);
    factor.mask_fill(tiny, 0.0)
}

/// Where NMF fits may run, as `actiscope serve --nmf-device` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NmfDeviceChoice {
    /// A GPU when there is one and a fit gains there (timed), the CPU otherwise.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// Always wgpu when it has an adapter (a GPU, or a software one such as lavapipe).
    Wgpu,
}

impl NmfDeviceChoice {
    /// `auto`, `cpu` or `wgpu`.
    pub fn parse(text: &str) -> Result<Self, UnknownNmfDevice> {
        match text {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            other => Err(UnknownNmfDevice(other.to_owned())),
        }
    }
}

/// Where one fit runs, and why (the dashboard shows the reason).
#[derive(Debug, Clone)]
pub enum NmfPlace {
    /// `actiscope_analysis::nmf::coupled_nmf` on the CPU.
    Cpu {
        /// Why, in words.
        why: String,
    },
    /// [`coupled_nmf_on_device`] on this device.
    Device {
        /// The device.
        device: ChosenDevice,
        /// Why, in words.
        why: String,
    },
}

impl NmfPlace {
    /// Where and why, in words.
    pub fn describe(&self) -> String {
        match self {
            Self::Cpu { why } => format!("CPU; {why}"),
            Self::Device { device, why } => format!("{}; {why}", device.description),
        }
    }
}

/// A problem of at most this many cells times factors (`instances x features x rank`) stays
/// on the CPU without timing. An estimate, not a measurement of this code: a round is a
/// dozen kernel launches whatever the size, and issue 16's table (an H200, measured by the
/// issue's author) has burn's dense updates on wgpu taking 0.41 s for 200 rounds of 10,000 x
/// 784 at rank 20 (1.6e8) against 0.032 s for PyTorch CUDA, launch-bound at about 2 ms a
/// round; the CPU's sparse rounds take about that long at a tenth of that size.
pub const GPU_CELL_FACTORS_ABOVE: f64 = 1.6e7;

/// Rounds timed on each side by [`MeasuredRounds`]: one round, then this many.
const TIMED_ROUNDS: usize = 4;

/// How long a fit takes somewhere: a fixed part (stacking, uploading, finishing) and a part
/// per round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitCost {
    /// Seconds whatever the rounds.
    pub fixed_secs: f64,
    /// Seconds per round.
    pub round_secs: f64,
}

impl FitCost {
    /// Predicted seconds for `rounds` rounds.
    pub fn secs(&self, rounds: usize) -> f64 {
        self.fixed_secs + self.round_secs * rounds as f64
    }
}

/// Measures a fit's cost on the CPU (`device` `None`) or on a device: measured, or told
/// (tests).
pub trait RoundTimer {
    /// The cost of fitting `blocks` with `options` (whatever its `max_iters`) there.
    fn cost(
        &self,
        device: Option<&ChosenDevice>,
        blocks: &[NmfBlockInput<'_>],
        options: &NmfOptions,
    ) -> Result<FitCost, DeviceNmfError>;
}

/// Times real fits: one round and `1 + TIMED_ROUNDS` rounds (after an untimed warm-up
/// round on a device, which compiles its kernels); the difference is the rounds' cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeasuredRounds;

impl RoundTimer for MeasuredRounds {
    fn cost(
        &self,
        device: Option<&ChosenDevice>,
        blocks: &[NmfBlockInput<'_>],
        options: &NmfOptions,
    ) -> Result<FitCost, DeviceNmfError> {
        let fit = |rounds: usize| -> Result<f64, DeviceNmfError> {
            // Exactly `rounds` rounds: no improvement is ever small enough to stop.
            let options = NmfOptions {
                max_iters: rounds,
                tolerance: f64::NEG_INFINITY,
                ..*options
            };
            let started = Instant::now();
            match device {
                None => coupled_nmf(blocks, &options)?,
                Some(chosen) => coupled_nmf_on_device(blocks, &options, &chosen.device)?,
            };
            Ok(started.elapsed().as_secs_f64())
        };
        if device.is_some() {
            fit(1)?;
        }
        let one = fit(1)?;
        let more = fit(1 + TIMED_ROUNDS)?;
        let round_secs = ((more - one) / TIMED_ROUNDS as f64).max(0.0);
        Ok(FitCost {
            fixed_secs: (one - round_secs).max(0.0),
            round_secs,
        })
    }
}

/// The size of an NMF problem, as the placement sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NmfSize {
    /// Instances.
    pub instances: usize,
    /// Features of all blocks.
    pub features: usize,
    /// Factors.
    pub rank: usize,
}

impl NmfSize {
    /// The size of `blocks` at `rank`.
    pub fn of(blocks: &[NmfBlockInput<'_>], rank: usize) -> Self {
        Self {
            instances: blocks.first().map_or(0, |b| b.data.rows()),
            features: blocks.iter().map(|b| b.data.cols()).sum(),
            rank,
        }
    }

    /// `instances x features x rank`.
    fn cell_factors(&self) -> f64 {
        self.instances as f64 * self.features as f64 * self.rank as f64
    }
}

/// Which timing a problem shares: the power of two its cells times factors fall in, and the
/// tenth its share of non-zeros falls in (the GPU's rounds cost by cells, the CPU's sparse
/// ones by non-zeros).
fn bucket(size: &NmfSize, blocks: &[NmfBlockInput<'_>]) -> (i32, u8) {
    let (mut nonzeros, mut cells) = (0usize, 0usize);
    for block in blocks {
        let values = block.data.as_slice();
        nonzeros += values.iter().filter(|&&v| v != 0.0).count();
        cells += values.len();
    }
    let tenth = (10 * nonzeros / cells.max(1)).min(9);
    (
        size.cell_factors().max(1.0).log2().floor() as i32,
        u8::try_from(tenth).unwrap_or(9),
    )
}

/// Where NMF fits run in this process: the choice, the GPU found (looked for once), the costs
/// timed so far (GPU, CPU) by [`bucket`], and why the GPU failed, once it has.
#[derive(Debug, Default)]
pub struct NmfPlacement {
    choice: NmfDeviceChoice,
    gpu: OnceLock<Result<ChosenDevice, String>>,
    costs: Mutex<HashMap<(i32, u8), (FitCost, FitCost)>>,
    failed: Mutex<Option<String>>,
}

impl NmfPlacement {
    /// Fits placed as `choice` says.
    pub fn new(choice: NmfDeviceChoice) -> Self {
        Self {
            choice,
            ..Self::default()
        }
    }

    /// As [`new`](Self::new), with the GPU already found (tests).
    pub fn with_gpu(choice: NmfDeviceChoice, gpu: Result<ChosenDevice, String>) -> Self {
        let placement = Self::new(choice);
        let _ = placement.gpu.set(gpu);
        placement
    }

    /// The GPU fits may use: under `auto` a real GPU, under `wgpu` any wgpu adapter.
    fn gpu(&self) -> &Result<ChosenDevice, String> {
        self.gpu.get_or_init(|| {
            let found = match self.choice {
                NmfDeviceChoice::Wgpu => choose(DeviceChoice::Wgpu),
                _ => choose(DeviceChoice::Auto),
            };
            match found {
                Ok(chosen) if chosen.backend == DeviceChoice::Flex => Err(chosen.description),
                Ok(chosen) => Ok(chosen),
                Err(error) => Err(error.to_string()),
            }
        })
    }

    /// Remembers that the GPU failed a fit (`why`): later fits go to the CPU and say so.
    pub fn gpu_failed(&self, why: String) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert(why);
        }
    }

    /// Where a fit of `blocks` with `options` runs. Under `auto`, a large enough problem is
    /// timed on both sides once per [`bucket`] (see [`RoundTimer`]); the GPU is looked for
    /// only then.
    pub fn place(
        &self,
        blocks: &[NmfBlockInput<'_>],
        options: &NmfOptions,
        timer: &dyn RoundTimer,
    ) -> NmfPlace {
        if self.choice == NmfDeviceChoice::Cpu {
            return NmfPlace::Cpu {
                why: "the server was told to fit on the CPU (--nmf-device cpu)".to_owned(),
            };
        }
        if let Some(why) = self.failed.lock().ok().and_then(|failed| failed.clone()) {
            return NmfPlace::Cpu {
                why: format!("the GPU failed an earlier fit: {why}"),
            };
        }
        let size = NmfSize::of(blocks, options.rank);
        if self.choice == NmfDeviceChoice::Auto && size.cell_factors() <= GPU_CELL_FACTORS_ABOVE {
            return NmfPlace::Cpu {
                why: format!(
                    "too small to gain on the GPU ({} x {} at rank {}: {:.1e} cells x factors, \
                     the GPU is tried above {GPU_CELL_FACTORS_ABOVE:.1e})",
                    size.instances,
                    size.features,
                    size.rank,
                    size.cell_factors()
                ),
            };
        }
        let gpu = match self.gpu() {
            Ok(gpu) => gpu.clone(),
            Err(why) => {
                return NmfPlace::Cpu {
                    why: format!("no GPU to fit on: {why}"),
                };
            }
        };
        if self.choice == NmfDeviceChoice::Wgpu {
            return NmfPlace::Device {
                device: gpu,
                why: "the server was told to fit on wgpu (--nmf-device wgpu)".to_owned(),
            };
        }
        let key = bucket(&size, blocks);
        let known = self
            .costs
            .lock()
            .ok()
            .and_then(|costs| costs.get(&key).copied());
        let (on_gpu, on_cpu) = match known {
            Some(costs) => costs,
            None => {
                let on_gpu = match timer.cost(Some(&gpu), blocks, options) {
                    Ok(cost) => cost,
                    // Refused input: the CPU fit refuses it too, with the reason.
                    Err(DeviceNmfError::Nmf(error)) => {
                        return NmfPlace::Cpu {
                            why: error.to_string(),
                        };
                    }
                    Err(error) => {
                        let why = format!("{} failed a timed fit ({error})", gpu.description);
                        self.gpu_failed(why.clone());
                        return NmfPlace::Cpu { why };
                    }
                };
                let on_cpu = match timer.cost(None, blocks, options) {
                    Ok(cost) => cost,
                    // The CPU fit refuses what the real fit will refuse, with the reason.
                    Err(error) => {
                        return NmfPlace::Cpu {
                            why: error.to_string(),
                        };
                    }
                };
                if let Ok(mut costs) = self.costs.lock() {
                    costs.insert(key, (on_gpu, on_cpu));
                }
                (on_gpu, on_cpu)
            }
        };
        let rounds = options.max_iters;
        let (gpu_secs, cpu_secs) = (on_gpu.secs(rounds), on_cpu.secs(rounds));
        let times = format!(
            "up to {rounds} rounds predicted from timed fits of 1 and {} rounds: about \
             {gpu_secs:.2} s on the GPU against {cpu_secs:.2} s on the CPU",
            1 + TIMED_ROUNDS
        );
        if gpu_secs < cpu_secs {
            NmfPlace::Device {
                device: gpu,
                why: format!("faster here: {times}"),
            }
        } else {
            NmfPlace::Cpu {
                why: format!("faster than the GPU ({}): {times}", gpu.description),
            }
        }
    }
}

#[cfg(test)]
mod tests;
