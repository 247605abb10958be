//! Coupled non-negative matrix factorization (the factorization lens of
//! ../shared/papers/nmf-factorization-lens.txt).
//!
//! Every block is a non-negative matrix with one row per instance (an input pixel block, or a
//! layer's ReLU outputs over the same instances). The coupled model shares one instance factor
//! `F` (instances x rank) across blocks, each block `i` getting its own loadings `P_i`
//! (features x rank):
//!
//! ```text
//! minimise  sum_i w_i^2 ||B_i^T - P_i F^T||_F^2   subject to  P_i >= 0, F >= 0
//! ```
//!
//! Stacking the weighted blocks' features turns this into one NMF of a `(sum of features) x N`
//! matrix `X = W F^T`, solved with the Lee–Seung multiplicative updates the paper gives:
//! `W <- W * (X F) / (W F^T F + eps)` and `F <- F * (X^T W) / (F W^T W + eps)`. The objective
//! never increases under these updates; it is tracked in `f64` from quantities the updates
//! compute anyway, so tracking costs one `rank x rank` product per round.
//!
//! This module holds the public API (blocks, options, the fit, errors). Modules: `inputs`
//! (blocks built from probe images, block weights, the data's RMS), `data` (checking and
//! stacking the blocks, dense or sparse), `csr` (the sparse storage), `side` (the data seen
//! from one factor: products and the split over threads), `kernels` (the sparse SIMD
//! kernels), `update` (one multiplicative update, threaded), `residual` (per-block errors in
//! closed form), `fit` (the rounds and the result) and `dense` (the problem as dense arrays
//! for rounds run on another device, and the fit finished from their factors).

mod csr;
mod data;
mod dense;
mod fit;
mod inputs;
mod kernels;
mod residual;
mod side;
mod update;

#[cfg(test)]
mod tests;

pub use dense::DenseProblem;
pub use inputs::{ImageBlock, block_weights, image_block, root_mean_square};

use crate::{Matrix, MatrixError};
use data::Layout;

/// Errors of the factorization.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NmfError {
    /// No block was given.
    #[error("nothing to factorize: no block given")]
    NoBlocks,
    /// Blocks disagree on the number of instances.
    #[error("block {block} has {found} instances, the first block has {expected}")]
    InstanceCount {
        /// The offending block.
        block: String,
        /// Rows of the first block.
        expected: usize,
        /// Rows of this block.
        found: usize,
    },
    /// A block holds a negative or non-finite value.
    #[error("block {block} holds {value} at row {row}, column {col}: NMF needs finite values >= 0")]
    NotNonNegative {
        /// The offending block.
        block: String,
        /// Row of the first bad value.
        row: usize,
        /// Column of the first bad value.
        col: usize,
        /// The value.
        value: f32,
    },
    /// A block weight is negative, zero or not finite.
    #[error("block {block} has weight {weight}; weights must be finite and > 0")]
    BadWeight {
        /// The offending block.
        block: String,
        /// The weight.
        weight: f32,
    },
    /// The rank is zero, or larger than both dimensions of the stacked matrix.
    #[error("rank {rank} is out of range 1..={max} for this data")]
    BadRank {
        /// The rank asked for.
        rank: usize,
        /// The largest useful rank.
        max: usize,
    },
    /// The data have no instances or no features.
    #[error("the data are empty ({instances} instances, {features} features)")]
    Empty {
        /// Instances.
        instances: usize,
        /// Features over all blocks.
        features: usize,
    },
    /// Factors or blocks handed to [`DenseProblem::finish`] do not fit its problem.
    #[error(
        "factors of {loadings} and {instance_weights} values, or the blocks given, do not fit \
         the problem of {} features, {} instances and rank {}",
        expected.0,
        expected.1,
        expected.2
    )]
    FactorShape {
        /// Features, instances and rank of the problem.
        expected: (usize, usize, usize),
        /// Values of the loadings given.
        loadings: usize,
        /// Values of the instance weights given.
        instance_weights: usize,
    },
    /// The probe data are planar points, not images, so they cannot form an input block.
    #[error(
        "this run's data are planar points, not images: their coordinates can be negative, \
         so the input block cannot join a non-negative factorization (set inputs=false)"
    )]
    PlanarInputs,
    /// The pixels do not fill whole images.
    #[error(transparent)]
    Shape(#[from] MatrixError),
}

/// One block of the coupled factorization.
#[derive(Debug, Clone, Copy)]
pub struct NmfBlockInput<'a> {
    /// Name used in errors.
    pub name: &'a str,
    /// Instances in rows, features (pixels, neurons) in columns; all values `>= 0`.
    pub data: &'a Matrix,
    /// Weight `w_i` of this block in the objective.
    pub weight: f32,
}

/// Settings of the multiplicative updates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NmfOptions {
    /// Number of factors.
    pub rank: usize,
    /// Upper bound on update rounds.
    pub max_iters: usize,
    /// Stop when one round improves the objective by less than this fraction of it.
    pub tolerance: f64,
    /// Seed of the uniform `[0, 1)` initialisation of both factors.
    pub seed: u64,
    /// Added to every denominator of the updates.
    pub epsilon: f32,
    /// Threads for the sparse products; 0 = one per core. The split depends on the count, so
    /// fits with different counts agree up to float rounding only.
    pub threads: usize,
}

impl Default for NmfOptions {
    fn default() -> Self {
        Self {
            rank: 10,
            max_iters: 200,
            tolerance: 1e-4,
            seed: 0,
            epsilon: 1e-9,
            threads: 0,
        }
    }
}

/// A fitted coupled factorization.
#[derive(Debug, Clone, PartialEq)]
pub struct NmfFit {
    /// Per block, in input order: loadings `P_i`, one row per feature, one column per factor,
    /// in the block's own (unweighted) units.
    pub loadings: Vec<Matrix>,
    /// The shared instance factor `F`: one row per instance, one column per factor.
    pub instance_weights: Matrix,
    /// Weighted objective after each round, non-increasing.
    pub objective: Vec<f64>,
    /// Per block, the root-mean-square error of its reconstruction (unweighted).
    pub block_rmse: Vec<f64>,
    /// Root-mean-square error over all values of all blocks (unweighted).
    pub rmse: f64,
}

impl NmfFit {
    /// Rounds run.
    pub fn iterations(&self) -> usize {
        self.objective.len()
    }

    /// For each factor, up to `count` instances with the largest weight, largest first.
    pub fn top_instances(&self, count: usize) -> Vec<Vec<u32>> {
        let rank = self.instance_weights.cols();
        (0..rank)
            .map(|factor| {
                let mut order: Vec<(u32, f32)> = self
                    .instance_weights
                    .iter_rows()
                    .enumerate()
                    .map(|(i, row)| {
                        let weight = row.get(factor).copied().unwrap_or(0.0);
                        (u32::try_from(i).unwrap_or(u32::MAX), weight)
                    })
                    .collect();
                order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                order.into_iter().take(count).map(|(i, _)| i).collect()
            })
            .collect()
    }
}

/// Stacked data with fewer non-zeros than this share use the sparse products.
pub const SPARSE_BELOW_DENSITY: f64 = 0.3;

/// Fits the coupled factorization of `blocks` (see the module doc). Data with fewer than
/// [`SPARSE_BELOW_DENSITY`] non-zeros (digit pixels, sparse ReLU layers) are multiplied in
/// sparse form; the result is the same either way, up to float rounding.
pub fn coupled_nmf(blocks: &[NmfBlockInput<'_>], options: &NmfOptions) -> Result<NmfFit, NmfError> {
    fit::fit(blocks, options, Layout::Auto)
}

/// Total reconstruction RMSE at each of `ranks`, all other options as given.
pub fn rmse_by_rank(
    blocks: &[NmfBlockInput<'_>],
    ranks: &[usize],
    options: &NmfOptions,
) -> Result<Vec<(usize, f64)>, NmfError> {
    ranks
        .iter()
        .map(|&rank| {
            let fit = coupled_nmf(blocks, &NmfOptions { rank, ..*options })?;
            Ok((rank, fit.rmse))
        })
        .collect()
}
