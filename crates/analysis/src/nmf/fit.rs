//! The fit: checks and stacks the blocks, starts from seeded random factors, runs the update
//! rounds until the objective stalls, and unpads and unweights the factors into an
//! [`NmfFit`] with each block's RMSE.

use super::data::{Data, Layout, Shape, check};
use super::kernels::LANES;
use super::residual::block_squared_errors;
use super::update::{Scratch, dot, gram, update_factor};
use super::{NmfBlockInput, NmfError, NmfFit, NmfOptions};
use crate::Matrix;
use crate::rng::SplitMix64;

/// `rows x lanes` row-major, the first `rank` entries of each row uniform in `[0, 1)`, the
/// padding zero.
pub(super) fn random_factor(
    rows: usize,
    rank: usize,
    lanes: usize,
    rng: &mut SplitMix64,
) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * lanes];
    for row in out.chunks_exact_mut(lanes.max(1)) {
        for v in row.iter_mut().take(rank) {
            *v = rng.next_unit_f32();
        }
    }
    out
}

/// [`coupled_nmf`](super::coupled_nmf) with the data layout chosen by `layout`.
pub(super) fn fit(
    blocks: &[NmfBlockInput<'_>],
    options: &NmfOptions,
    layout: Layout,
) -> Result<NmfFit, NmfError> {
    let shape = check(blocks)?;
    let (features, instances) = (shape.features, shape.instances);
    let rank = options.rank;
    check_rank(&shape, rank)?;
    let mut rng = SplitMix64::new(options.seed);
    // Row-major factors, each row padded with zeros to whole SIMD chunks: `w` is features x
    // lanes, `f` is instances x lanes. The padding columns start at zero and the updates keep
    // them there (0 * anything = 0), so they change nothing but the memory layout.
    let lanes = rank.div_ceil(LANES) * LANES;
    let data = Data::from_blocks(blocks, &shape, layout, lanes);
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        options.threads
    };
    let mut w = random_factor(features, rank, lanes, &mut rng);
    let mut f = random_factor(instances, rank, lanes, &mut rng);
    let block_norm_sq = data.block_norm_sq(&shape);
    let x_norm_sq: f64 = block_norm_sq.iter().sum();

    let mut w_scratch = Scratch::new(features, lanes);
    let mut f_scratch = Scratch::new(instances, lanes);
    let mut ftf = gram(&f, lanes);
    let mut objective = Vec::new();
    for _ in 0..options.max_iters {
        let (by_feature, by_instance) = (data.by_feature(), data.by_instance());
        let wtw = update_factor(
            by_feature,
            &f,
            &ftf,
            &mut w,
            &mut w_scratch,
            lanes,
            options.epsilon,
            threads,
        )
        .gram;
        let updated = update_factor(
            by_instance,
            &w,
            &wtw,
            &mut f,
            &mut f_scratch,
            lanes,
            options.epsilon,
            threads,
        );
        ftf = updated.gram;
        // ||X - W F^T||^2 = ||X||^2 - 2 <X^T W, F> + <W^T W, F^T F>
        let value = (x_norm_sq - 2.0 * updated.numerator_dot + dot(&wtw, &ftf)).max(0.0);
        let previous = objective.last().copied();
        objective.push(value);
        if let Some(previous) = previous
            && (previous - value) <= options.tolerance * previous.abs()
        {
            break;
        }
    }

    finish(
        blocks,
        (&shape, &data, &block_norm_sq),
        (&w, &f),
        lanes,
        rank,
        objective,
    )
}

/// Refuses a rank of 0 or above both dimensions of the stacked data.
pub(super) fn check_rank(shape: &Shape, rank: usize) -> Result<(), NmfError> {
    let max = shape.features.max(shape.instances);
    if rank == 0 || rank > max {
        return Err(NmfError::BadRank { rank, max });
    }
    Ok(())
}

/// The fit from its final factors (`w`: features x `lanes`, `f`: instances x `lanes`, the
/// first `rank` columns of each row used) and the objective of each round: each block's
/// residual in its own units, the loadings unweighted, the padding dropped. `block_norm_sq`
/// is [`Data::block_norm_sq`].
pub(super) fn finish(
    blocks: &[NmfBlockInput<'_>],
    (shape, data, block_norm_sq): (&Shape, &Data, &[f64]),
    (w, f): (&[f32], &[f32]),
    lanes: usize,
    rank: usize,
    objective: Vec<f64>,
) -> Result<NmfFit, NmfError> {
    let (features, instances) = (shape.features, shape.instances);
    // Residuals in each block's own units.
    let squared_errors = block_squared_errors(data, w, f, lanes, shape, block_norm_sq);
    let mut block_rmse = Vec::with_capacity(blocks.len());
    let mut loadings = Vec::with_capacity(blocks.len());
    let (mut total_sq, mut total_count) = (0.0f64, 0usize);
    for ((block, rows), weighted_sq) in blocks.iter().zip(&shape.block_rows).zip(squared_errors) {
        let weight = f64::from(block.weight);
        let sq = weighted_sq / (weight * weight);
        let count = rows.len() * instances;
        block_rmse.push((sq / count.max(1) as f64).sqrt());
        total_sq += sq;
        total_count += count;
        let data: Vec<f32> = w
            .get(rows.start * lanes..rows.end * lanes)
            .unwrap_or(&[])
            .chunks_exact(lanes)
            .flat_map(|row| row.iter().take(rank).map(|v| v / block.weight))
            .collect();
        loadings.push(
            Matrix::new(rows.len(), rank, data).map_err(|_| NmfError::Empty {
                instances,
                features,
            })?,
        );
    }
    let unpadded: Vec<f32> = f
        .chunks_exact(lanes)
        .flat_map(|row| row.iter().take(rank).copied())
        .collect();
    let instance_weights = Matrix::new(instances, rank, unpadded).map_err(|_| NmfError::Empty {
        instances,
        features,
    })?;
    Ok(NmfFit {
        loadings,
        instance_weights,
        objective,
        block_rmse,
        rmse: (total_sq / total_count.max(1) as f64).sqrt(),
    })
}
