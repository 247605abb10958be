//! The coupled factorization handed to update rounds that run elsewhere (a GPU, through burn,
//! in `actiscope-train`): the blocks checked, weighted and stacked into one dense matrix, the
//! seeded start drawn as [`coupled_nmf`](super::coupled_nmf) draws it, and the fit finished
//! from the final factors exactly as the CPU fit finishes (residuals in `f64`, loadings
//! unweighted), so that both paths answer with the same [`NmfFit`].

use super::data::{Data, Layout, Shape, check};
use super::fit::{check_rank, finish, random_factor};
use super::{NmfBlockInput, NmfError, NmfFit, NmfOptions};
use crate::rng::SplitMix64;

/// A coupled factorization as dense arrays, ready for update rounds on another device.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseProblem {
    /// Instances (rows of `F`, columns of the stacked `X`).
    pub instances: usize,
    /// Features of all blocks together (rows of `W` and of `X`).
    pub features: usize,
    /// Factors.
    pub rank: usize,
    /// `Xᵀ`, row-major `instances x features`: instance `j`'s values of every block, each
    /// times its block's weight, blocks in order.
    pub transposed: Vec<f32>,
    /// The starting `W`, row-major `features x rank`, uniform in `[0, 1)` from the seed.
    pub start_loadings: Vec<f32>,
    /// The starting `F`, row-major `instances x rank`, drawn after `W`.
    pub start_instance_weights: Vec<f32>,
    /// `||X||²_F` of the weighted stack, in `f64`.
    pub norm_sq: f64,
    /// The blocks' shape, kept to finish the fit.
    shape: Shape,
    /// `||X_i||²_F` of each weighted block.
    block_norm_sq: Vec<f64>,
    /// Each block's weight.
    weights: Vec<f32>,
}

impl DenseProblem {
    /// Checks `blocks` and `options.rank` as [`coupled_nmf`](super::coupled_nmf) does and
    /// stacks them densely: `4 x instances x features` bytes.
    pub fn new(blocks: &[NmfBlockInput<'_>], options: &NmfOptions) -> Result<Self, NmfError> {
        let shape = check(blocks)?;
        let rank = options.rank;
        check_rank(&shape, rank)?;
        let (features, instances) = (shape.features, shape.instances);
        let mut transposed = vec![0.0f32; instances * features];
        let mut block_norm_sq = vec![0.0f64; blocks.len()];
        for ((block, columns), norm_sq) in
            blocks.iter().zip(&shape.block_rows).zip(&mut block_norm_sq)
        {
            for (values, row) in block
                .data
                .iter_rows()
                .zip(transposed.chunks_exact_mut(features.max(1)))
            {
                let Some(target) = row.get_mut(columns.clone()) else {
                    continue;
                };
                for (t, &v) in target.iter_mut().zip(values) {
                    *t = v * block.weight;
                    *norm_sq += f64::from(*t) * f64::from(*t);
                }
            }
        }
        // The same draws, in the same order, as the CPU fit's (which pads each row to whole
        // SIMD lanes with zeros that are not drawn).
        let mut rng = SplitMix64::new(options.seed);
        let start_loadings = random_factor(features, rank, rank, &mut rng);
        let start_instance_weights = random_factor(instances, rank, rank, &mut rng);
        Ok(Self {
            instances,
            features,
            rank,
            transposed,
            start_loadings,
            start_instance_weights,
            norm_sq: block_norm_sq.iter().sum(),
            shape,
            block_norm_sq,
            weights: blocks.iter().map(|b| b.weight).collect(),
        })
    }

    /// The fit from the rounds' final `loadings` (`W`, row-major `features x rank`) and
    /// `instance_weights` (`F`, `instances x rank`) and the objective after each round, as
    /// [`coupled_nmf`](super::coupled_nmf) reports it. `blocks` must be the ones this problem
    /// was made from (blocks of other shapes or weights are refused, as are factors of the
    /// wrong size).
    pub fn finish(
        &self,
        blocks: &[NmfBlockInput<'_>],
        loadings: &[f32],
        instance_weights: &[f32],
        objective: Vec<f64>,
    ) -> Result<NmfFit, NmfError> {
        let wrong_size = loadings.len() != self.features * self.rank
            || instance_weights.len() != self.instances * self.rank;
        let same_blocks = blocks.len() == self.shape.block_rows.len()
            && blocks
                .iter()
                .zip(&self.shape.block_rows)
                .zip(&self.weights)
                .all(|((block, columns), &weight)| {
                    block.data.rows() == self.instances
                        && block.data.cols() == columns.len()
                        && block.weight.to_bits() == weight.to_bits()
                });
        if wrong_size || !same_blocks {
            return Err(NmfError::FactorShape {
                expected: (self.features, self.instances, self.rank),
                loadings: loadings.len(),
                instance_weights: instance_weights.len(),
            });
        }
        let data = Data::from_blocks(blocks, &self.shape, Layout::Auto, self.rank);
        finish(
            blocks,
            (&self.shape, &data, &self.block_norm_sq),
            (loadings, instance_weights),
            self.rank,
            self.rank,
            objective,
        )
    }
}
