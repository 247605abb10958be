//! Coupled non-negative matrix factorization (the factorization lens of
//! ../shared/papers/nmf-factorization-lens.txt) and singular-value spectra.
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

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};

use crate::Matrix;
use crate::rng::SplitMix64;

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
    /// The SVD did not converge.
    #[error("the singular value decomposition did not converge")]
    Svd,
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

/// What the checks of the blocks found out about them, before any copy is made.
struct Shape {
    instances: usize,
    features: usize,
    /// Where each block's features start and end among the stacked features.
    block_rows: Vec<std::ops::Range<usize>>,
    /// Non-zero values over all blocks.
    nonzeros: usize,
}

impl Shape {
    /// The block of each stacked feature.
    fn feature_blocks(&self) -> Vec<usize> {
        let mut blocks = vec![0usize; self.features];
        for (b, rows) in self.block_rows.iter().enumerate() {
            for slot in blocks.get_mut(rows.clone()).unwrap_or(&mut []) {
                *slot = b;
            }
        }
        blocks
    }
}

/// Checks the blocks (same instances, finite positive weights, finite non-negative values)
/// and measures them.
fn check(blocks: &[NmfBlockInput<'_>]) -> Result<Shape, NmfError> {
    let first = blocks.first().ok_or(NmfError::NoBlocks)?;
    let instances = first.data.rows();
    let mut block_rows = Vec::with_capacity(blocks.len());
    let (mut features, mut nonzeros) = (0, 0);
    for block in blocks {
        if block.data.rows() != instances {
            return Err(NmfError::InstanceCount {
                block: block.name.to_owned(),
                expected: instances,
                found: block.data.rows(),
            });
        }
        if !(block.weight.is_finite() && block.weight > 0.0) {
            return Err(NmfError::BadWeight {
                block: block.name.to_owned(),
                weight: block.weight,
            });
        }
        let cols = block.data.cols();
        let values = block.data.as_slice();
        // One branch-free pass (`v <= MAX` is false for NaN and infinity); the scan for the
        // culprit only runs when it fails.
        let valid = values
            .iter()
            .fold(true, |ok, v| ok & (0.0..=f32::MAX).contains(v));
        if !valid
            && let Some((index, &value)) = values
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(NmfError::NotNonNegative {
                block: block.name.to_owned(),
                row: index / cols.max(1),
                col: index % cols.max(1),
                value,
            });
        }
        nonzeros += values.iter().filter(|v| **v != 0.0).count();
        block_rows.push(features..features + cols);
        features += cols;
    }
    if instances == 0 || features == 0 {
        return Err(NmfError::Empty {
            instances,
            features,
        });
    }
    Ok(Shape {
        instances,
        features,
        block_rows,
        nonzeros,
    })
}

/// The weighted blocks stacked into one dense `features x instances` matrix.
fn stack_dense(blocks: &[NmfBlockInput<'_>], shape: &Shape) -> Mat<f32> {
    let mut x = Mat::<f32>::zeros(shape.features, shape.instances);
    for (block, rows) in blocks.iter().zip(&shape.block_rows) {
        for (instance, values) in block.data.iter_rows().enumerate() {
            let column = x.col_as_slice_mut(instance);
            if let Some(target) = column.get_mut(rows.clone()) {
                for (t, v) in target.iter_mut().zip(values) {
                    *t = v * block.weight;
                }
            }
        }
    }
    x
}

/// The non-zeros of the weighted blocks, one row per instance (a column of the stacked `X`),
/// without building the dense stack.
fn stack_sparse(blocks: &[NmfBlockInput<'_>], shape: &Shape) -> Csr {
    let widest = shape
        .block_rows
        .iter()
        .map(ExactSizeIterator::len)
        .max()
        .unwrap_or(0);
    let mut by_instance = Csr::with_capacity(shape.instances, shape.nonzeros + widest);
    let mut rows: Vec<_> = blocks.iter().map(|b| b.data.iter_rows()).collect();
    for _ in 0..shape.instances {
        for ((block, values), features) in blocks.iter().zip(&mut rows).zip(&shape.block_rows) {
            let values = values.next().unwrap_or(&[]);
            // Branch-free compaction: every value is written at the end, and the end only
            // moves past the non-zeros (a branch per value mispredicts on sparse pixels).
            let mut end = by_instance.columns.len();
            by_instance.columns.resize(end + values.len(), 0);
            by_instance.values.resize(end + values.len(), 0.0);
            for (feature, &v) in features.clone().zip(values) {
                if let (Some(c), Some(x)) = (
                    by_instance.columns.get_mut(end),
                    by_instance.values.get_mut(end),
                ) {
                    *c = u32::try_from(feature).unwrap_or(u32::MAX);
                    *x = v * block.weight;
                }
                end += usize::from(v != 0.0);
            }
            by_instance.columns.truncate(end);
            by_instance.values.truncate(end);
        }
        by_instance.offsets.push(by_instance.columns.len());
    }
    by_instance
}

/// Stacked data with fewer non-zeros than this share use the sparse products.
pub const SPARSE_BELOW_DENSITY: f64 = 0.3;

/// How the products with the data are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Sparse below [`SPARSE_BELOW_DENSITY`], dense otherwise.
    Auto,
    /// Always dense (tests compare the two).
    #[cfg_attr(not(test), allow(dead_code))]
    Dense,
    /// Always sparse.
    #[cfg_attr(not(test), allow(dead_code))]
    Sparse,
}

/// A compressed sparse row matrix (`rows` lists of `(column, value)`).
struct Csr {
    offsets: Vec<usize>,
    columns: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    /// The non-zeros in `columns` by column: a `column_count`-row matrix whose columns are the
    /// rows of `self` (ascending), by counting sort.
    fn transpose(&self, column_count: usize, rows: std::ops::Range<usize>) -> Self {
        let mut offsets = vec![0usize; column_count + 1];
        for r in rows.clone() {
            for &c in self.row(r).0 {
                if let Some(count) = offsets.get_mut(c as usize + 1) {
                    *count += 1;
                }
            }
        }
        for c in 1..offsets.len() {
            let before = offsets.get(c - 1).copied().unwrap_or(0);
            if let Some(o) = offsets.get_mut(c) {
                *o += before;
            }
        }
        let nonzeros = offsets.last().copied().unwrap_or(0);
        let mut out = Self {
            columns: vec![0; nonzeros],
            values: vec![0.0; nonzeros],
            offsets: offsets.clone(),
        };
        let mut next = offsets;
        for r in rows {
            let (columns, values) = self.row(r);
            for (&c, &v) in columns.iter().zip(values) {
                let Some(at) = next.get_mut(c as usize) else {
                    continue;
                };
                if let (Some(slot), Some(value)) =
                    (out.columns.get_mut(*at), out.values.get_mut(*at))
                {
                    *slot = u32::try_from(r).unwrap_or(u32::MAX);
                    *value = v;
                }
                *at += 1;
            }
        }
        out
    }

    /// An empty matrix with room for `rows` rows and `nonzeros` entries.
    fn with_capacity(rows: usize, nonzeros: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            offsets,
            columns: Vec::with_capacity(nonzeros),
            values: Vec::with_capacity(nonzeros),
        }
    }

    #[inline(always)]
    fn row(&self, row: usize) -> (&[u32], &[f32]) {
        let (Some(&from), Some(&to)) = (self.offsets.get(row), self.offsets.get(row + 1)) else {
            return (&[], &[]);
        };
        (
            self.columns.get(from..to).unwrap_or(&[]),
            self.values.get(from..to).unwrap_or(&[]),
        )
    }
}

/// The stacked data in the layout its two products read fastest.
enum Data {
    /// `features x instances`, column-major.
    Dense(Mat<f32>),
    /// The non-zeros twice over, so that both products read the data row by row and keep
    /// their sums in registers.
    Sparse {
        /// The non-zeros of each instance (column of `X`), feature indices ascending.
        by_instance: Csr,
        /// The non-zeros of each feature (row of `X`), instance indices ascending, split into
        /// blocks of instances whose factor rows fit in a core's L1 cache together.
        by_feature: Vec<Csr>,
    },
}

impl Data {
    /// The stacked blocks for factors of `lanes` columns, sparse when `layout` says so or,
    /// for [`Layout::Auto`], below [`SPARSE_BELOW_DENSITY`].
    fn from_blocks(
        blocks: &[NmfBlockInput<'_>],
        shape: &Shape,
        layout: Layout,
        lanes: usize,
    ) -> Self {
        let cells = (shape.features * shape.instances).max(1);
        let sparse = match layout {
            Layout::Auto => (shape.nonzeros as f64 / cells as f64) < SPARSE_BELOW_DENSITY,
            Layout::Dense => false,
            Layout::Sparse => true,
        };
        if sparse {
            Self::sparse(
                stack_sparse(blocks, shape),
                shape.features,
                (BLOCK_BYTES / (lanes.max(1) * size_of::<f32>())).max(1),
            )
        } else {
            Self::Dense(stack_dense(blocks, shape))
        }
    }

    /// The sparse layout of `by_instance` (one row per instance, `features` columns), with
    /// the feature-side non-zeros in blocks of `block` instances.
    fn sparse(by_instance: Csr, features: usize, block: usize) -> Self {
        let instances = by_instance.offsets.len().saturating_sub(1);
        let block = block.max(1);
        let by_feature = (0..instances)
            .step_by(block)
            .map(|from| by_instance.transpose(features, from..(from + block).min(instances)))
            .collect();
        Self::Sparse {
            by_instance,
            by_feature,
        }
    }

    /// `x` (`features x instances`) in `layout`, the feature side in blocks of `block`
    /// instances (tests use it to pick both).
    #[cfg(test)]
    fn with_blocks(x: &Mat<f32>, layout: Layout, block: usize) -> Self {
        if layout == Layout::Dense {
            return Self::Dense(x.clone());
        }
        let mut by_instance = Csr::with_capacity(x.ncols(), 0);
        for j in 0..x.ncols() {
            for (r, &v) in x.col_as_slice(j).iter().enumerate() {
                if v != 0.0 {
                    by_instance
                        .columns
                        .push(u32::try_from(r).unwrap_or(u32::MAX));
                    by_instance.values.push(v);
                }
            }
            by_instance.offsets.push(by_instance.columns.len());
        }
        Self::sparse(by_instance, x.nrows(), block)
    }

    /// `||X_i||^2` of each weighted block `i`, in `f64`, from the non-zeros.
    fn block_norm_sq(&self, shape: &Shape) -> Vec<f64> {
        let feature_block = shape.feature_blocks();
        let mut norms = vec![0.0f64; shape.block_rows.len()];
        self.for_each_nonzero(|_, feature, value| {
            if let Some(n) = feature_block.get(feature).and_then(|&b| norms.get_mut(b)) {
                *n += f64::from(value) * f64::from(value);
            }
        });
        norms
    }

    /// Calls `visit(instance, feature, value)` for every non-zero, instance by instance.
    fn for_each_nonzero(&self, mut visit: impl FnMut(usize, usize, f32)) {
        match self {
            Self::Dense(x) => {
                for j in 0..x.ncols() {
                    for (i, &v) in x.col_as_slice(j).iter().enumerate() {
                        if v != 0.0 {
                            visit(j, i, v);
                        }
                    }
                }
            }
            Self::Sparse { by_instance, .. } => {
                for j in 0..by_instance.offsets.len().saturating_sub(1) {
                    let (columns, values) = by_instance.row(j);
                    for (&i, &v) in columns.iter().zip(values) {
                        visit(j, i as usize, v);
                    }
                }
            }
        }
    }

    /// The data as the W update reads it: one row per feature.
    fn by_feature(&self) -> Side<'_> {
        match self {
            Self::Dense(x) => Side::Dense(x.as_ref()),
            Self::Sparse { by_feature, .. } => Side::Sparse(by_feature),
        }
    }

    /// The data as the F update reads it: one row per instance.
    fn by_instance(&self) -> Side<'_> {
        match self {
            Self::Dense(x) => Side::Dense(x.transpose()),
            Self::Sparse { by_instance, .. } => Side::Sparse(std::slice::from_ref(by_instance)),
        }
    }
}

/// The data seen from one factor: row `i` of the product with the other factor is the
/// numerator of row `i` of this factor's update.
#[derive(Clone, Copy)]
enum Side<'a> {
    /// A dense view, `rows x other rows`.
    Dense(MatRef<'a, f32>),
    /// The non-zeros row by row, columns indexing the other factor's rows, in blocks of
    /// columns (each block has every row; the product adds the blocks up).
    Sparse(&'a [Csr]),
}

impl Side<'_> {
    fn rows(&self) -> usize {
        match self {
            Self::Dense(x) => x.nrows(),
            Self::Sparse(blocks) => blocks
                .first()
                .map_or(0, |csr| csr.offsets.len().saturating_sub(1)),
        }
    }

    /// `out (range rows x lanes) <- self[range] * other` for row-major `other` (other rows x
    /// lanes).
    fn product(&self, range: std::ops::Range<usize>, other: &[f32], lanes: usize, out: &mut [f32]) {
        match self {
            Self::Dense(x) => {
                let rows = x.subrows(range.start, range.len());
                matmul(
                    MatMut::from_row_major_slice_mut(out, range.len(), lanes),
                    Accum::Replace,
                    rows,
                    MatRef::from_row_major_slice(other, x.ncols(), lanes),
                    1.0,
                    Par::Seq,
                );
            }
            Self::Sparse(blocks) => {
                for (b, csr) in blocks.iter().enumerate() {
                    dispatch_lanes(lanes, csr, range.clone(), other, out, b > 0);
                }
            }
        }
    }

    /// Contiguous row ranges, at most `threads` of them, of about equal work (non-zeros for
    /// sparse data); one range when the whole product (multiply-adds per lane) is below
    /// `parallel_above`.
    fn ranges(&self, threads: usize, parallel_above: usize) -> Vec<std::ops::Range<usize>> {
        let rows = self.rows();
        let (work, cumulative): (usize, Box<dyn Fn(usize) -> usize + '_>) = match self {
            Self::Dense(x) => (x.nrows() * x.ncols(), Box::new(move |r| r * x.ncols())),
            Self::Sparse(blocks) => (
                blocks.iter().map(|csr| csr.values.len()).sum(),
                Box::new(move |r| {
                    blocks
                        .iter()
                        .map(|csr| csr.offsets.get(r).copied().unwrap_or(usize::MAX))
                        .fold(0, usize::saturating_add)
                }),
            ),
        };
        let threads = if work < parallel_above {
            1
        } else {
            threads.clamp(1, rows.max(1))
        };
        let mut bounds = vec![0usize];
        for t in 1..threads {
            let goal = work * t / threads;
            let (mut low, mut high) = (0, rows);
            while low < high {
                let mid = (low + high) / 2;
                if cumulative(mid) < goal {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            bounds.push(low.max(bounds.last().copied().unwrap_or(0)));
        }
        bounds.push(rows);
        bounds
            .iter()
            .zip(bounds.iter().skip(1))
            .map(|(&from, &to)| from..to)
            .collect()
    }
}

/// Scratch rows for one factor's update, kept across rounds so no round allocates.
struct Scratch {
    numerator: Vec<f32>,
    denominator: Vec<f32>,
}

impl Scratch {
    fn new(rows: usize, lanes: usize) -> Self {
        Self {
            numerator: vec![0.0; rows * lanes],
            denominator: vec![0.0; rows * lanes],
        }
    }
}

/// What one factor's update reports for the objective.
struct Updated {
    /// `target^T target` after the update (`lanes x lanes`, row-major).
    gram: Vec<f32>,
    /// `<side * other, target>` after the update.
    numerator_dot: f64,
}

/// One multiplicative update of `target` (`side.rows() x lanes`, row-major):
/// `target <- target .* (side * other) ./ (target * other_gram + eps)`. The rows are split
/// over up to `threads` threads; each computes its rows' numerators, denominators and
/// updates in one pass, while they are in cache, and its share of the new gram matrix.
#[allow(clippy::too_many_arguments)]
fn update_factor(
    side: Side<'_>,
    other: &[f32],
    other_gram: &[f32],
    target: &mut [f32],
    scratch: &mut Scratch,
    lanes: usize,
    eps: f32,
    threads: usize,
) -> Updated {
    let ranges = side.ranges(threads, PARALLEL_ABOVE_WORK);
    let chunk = |range: std::ops::Range<usize>,
                 target: &mut [f32],
                 numerator: &mut [f32],
                 denominator: &mut [f32]| {
        side.product(range, other, lanes, numerator);
        let rows = target.len() / lanes.max(1);
        matmul(
            MatMut::from_row_major_slice_mut(denominator, rows, lanes),
            Accum::Replace,
            MatRef::from_row_major_slice(target, rows, lanes),
            MatRef::from_row_major_slice(other_gram, lanes, lanes),
            1.0,
            Par::Seq,
        );
        for ((t, n), d) in target.iter_mut().zip(&*numerator).zip(&*denominator) {
            let next = *t * (n / (d + eps));
            // Entries the updates drive towards zero would turn subnormal, and arithmetic
            // on subnormals is tens of times slower on x86; below the smallest normal f32
            // an entry is zero for every purpose, so it becomes zero.
            *t = if next < 1e-30 { 0.0 } else { next };
        }
        (gram(target, lanes), dot(numerator, target))
    };
    let mut partials = Vec::with_capacity(ranges.len());
    if let [range] = ranges.as_slice() {
        partials.push(chunk(
            range.clone(),
            target,
            &mut scratch.numerator,
            &mut scratch.denominator,
        ));
    } else {
        std::thread::scope(|scope| {
            let (mut target, mut numerator, mut denominator) = (
                &mut *target,
                &mut scratch.numerator[..],
                &mut scratch.denominator[..],
            );
            let handles: Vec<_> = ranges
                .into_iter()
                .map(|range| {
                    let len = range.len() * lanes;
                    let (t, t_rest) = std::mem::take(&mut target).split_at_mut(len);
                    let (n, n_rest) = std::mem::take(&mut numerator).split_at_mut(len);
                    let (d, d_rest) = std::mem::take(&mut denominator).split_at_mut(len);
                    (target, numerator, denominator) = (t_rest, n_rest, d_rest);
                    let chunk = &chunk;
                    scope.spawn(move || chunk(range, t, n, d))
                })
                .collect();
            partials.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        });
    }
    let mut total = Updated {
        gram: vec![0.0; lanes * lanes],
        numerator_dot: 0.0,
    };
    for (gram, dot) in partials {
        for (a, b) in total.gram.iter_mut().zip(&gram) {
            *a += b;
        }
        total.numerator_dot += dot;
    }
    total
}

/// Width of the SIMD chunks factor rows are padded to.
const LANES: usize = 4;

/// The factor rows one block of the sparse data reads should fit in this many bytes: a typical
/// core's L1 data cache. Measured on the benchmark (8 alternating runs each): 32 KiB best
/// 0.87 s, median 1.04 s; 128 KiB best 0.93 s, median 1.05 s; a small edge, inside the noise
/// of a shared machine.
const BLOCK_BYTES: usize = 32 * 1024;

/// Multiply-adds (non-zeros, for sparse data) below which a product stays on one thread.
const PARALLEL_ABOVE_WORK: usize = 200_000;

/// Runs [`sparse_kernel`] on rows `range` with the row width known at compile time (rows of
/// `C` chunks of [`LANES`], up to 64 wide) so the compiler emits whole SIMD registers, or a
/// generic loop for wider rows. On x86-64 CPUs with AVX2 and FMA (checked at run time) the
/// fixed-width kernels are compiled for those instructions: 8 lanes a register and one fused
/// multiply-add per lane, about twice the throughput of the SSE2 baseline.
fn dispatch_lanes(
    lanes: usize,
    csr: &Csr,
    range: std::ops::Range<usize>,
    dense: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        macro_rules! widths_v3 {
            ($($c:literal)*) => {
                match lanes / LANES {
                    $($c => return simd.vectorize(KernelCall::<$c, true> {
                        csr, range, dense, out, accumulate,
                    }),)*
                    _ => {}
                }
            };
        }
        widths_v3!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }
    macro_rules! widths {
        ($($c:literal)*) => {
            match lanes / LANES {
                $($c => sparse_kernel::<$c, false>(csr, range, dense, out, accumulate),)*
                _ => sparse_kernel_any(lanes, csr, range, dense, out, accumulate),
            }
        };
    }
    widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// One call of [`sparse_kernel`], as pulp's vectorize wants it: everything it calls is
/// `#[inline(always)]`, so the whole loop is compiled with the target features pulp enables.
#[cfg(target_arch = "x86_64")]
struct KernelCall<'a, const C: usize, const FMA: bool> {
    csr: &'a Csr,
    range: std::ops::Range<usize>,
    dense: &'a [f32],
    out: &'a mut [f32],
    accumulate: bool,
}

#[cfg(target_arch = "x86_64")]
impl<const C: usize, const FMA: bool> pulp::NullaryFnOnce for KernelCall<'_, C, FMA> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        sparse_kernel::<C, FMA>(self.csr, self.range, self.dense, self.out, self.accumulate);
    }
}

/// `acc += v * x`, lane by lane; with `FMA` as fused multiply-adds (only where the CPU has
/// them: without the instruction `mul_add` is a slow library call).
#[inline(always)]
fn axpy_rows<const C: usize, const FMA: bool>(
    acc: &mut [[f32; LANES]; C],
    v: f32,
    x: &[[f32; LANES]; C],
) {
    for (a, b) in acc.iter_mut().zip(x) {
        for (a, b) in a.iter_mut().zip(b) {
            *a = if FMA { v.mul_add(*b, *a) } else { *a + v * b };
        }
    }
}

/// Row `i - range.start` of `out` <- (or += when `accumulate`) the rows of `dense` at row
/// `i`'s non-zeros, weighted.
/// Two sets of accumulators take the non-zeros in turn, so consecutive multiply-adds do not
/// wait on each other.
#[inline(always)]
fn sparse_kernel<const C: usize, const FMA: bool>(
    csr: &Csr,
    range: std::ops::Range<usize>,
    dense: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let (dense, _) = dense.as_chunks::<LANES>();
    let (dense, _) = dense.as_chunks::<C>();
    let (out, _) = out.as_chunks_mut::<LANES>();
    let (out, _) = out.as_chunks_mut::<C>();
    for (i, target) in range.zip(out.iter_mut()) {
        let mut even = [[0.0; LANES]; C];
        let mut odd = [[0.0; LANES]; C];
        let (columns, values) = csr.row(i);
        let (column_pairs, column_rest) = columns.as_chunks::<2>();
        let (value_pairs, value_rest) = values.as_chunks::<2>();
        for (&[c0, c1], &[v0, v1]) in column_pairs.iter().zip(value_pairs) {
            if let Some(source) = dense.get(c0 as usize) {
                axpy_rows::<C, FMA>(&mut even, v0, source);
            }
            if let Some(source) = dense.get(c1 as usize) {
                axpy_rows::<C, FMA>(&mut odd, v1, source);
            }
        }
        for (&c, &v) in column_rest.iter().zip(value_rest) {
            if let Some(source) = dense.get(c as usize) {
                axpy_rows::<C, FMA>(&mut even, v, source);
            }
        }
        for (t, (e, o)) in target.iter_mut().zip(even.iter().zip(&odd)) {
            for (t, (e, o)) in t.iter_mut().zip(e.iter().zip(o)) {
                *t = if accumulate { *t + (e + o) } else { e + o };
            }
        }
    }
}

/// [`sparse_kernel`] for any multiple of [`LANES`].
fn sparse_kernel_any(
    lanes: usize,
    csr: &Csr,
    range: std::ops::Range<usize>,
    dense: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let lanes = lanes.max(1);
    for (i, target) in range.zip(out.chunks_exact_mut(lanes)) {
        if !accumulate {
            target.fill(0.0);
        }
        let (columns, values) = csr.row(i);
        for (&c, &v) in columns.iter().zip(values) {
            let start = c as usize * lanes;
            if let Some(source) = dense.get(start..start + lanes) {
                for (a, b) in target.iter_mut().zip(source) {
                    *a += v * b;
                }
            }
        }
    }
}

/// `rows x lanes` row-major, the first `rank` entries of each row uniform in `[0, 1)`, the
/// padding zero.
fn random_factor(rows: usize, rank: usize, lanes: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * lanes];
    for row in out.chunks_exact_mut(lanes.max(1)) {
        for v in row.iter_mut().take(rank) {
            *v = rng.next_unit_f32();
        }
    }
    out
}

/// `sum(a .* b)` in `f64`.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// `a^T a` of a row-major `rows x rank` matrix, as a row-major `rank x rank` matrix.
fn gram(a: &[f32], rank: usize) -> Vec<f32> {
    let rows = a.len() / rank.max(1);
    let view = MatRef::from_row_major_slice(a, rows, rank);
    let mut out = vec![0.0f32; rank * rank];
    matmul(
        MatMut::from_row_major_slice_mut(&mut out, rank, rank),
        Accum::Replace,
        view.transpose(),
        view,
        1.0,
        Par::Seq,
    );
    out
}

/// `||X_i - W_i F^T||^2` of each weighted block `i`, without forming `W F^T`:
/// `||X_i||^2 - 2 <X_i, W_i F^T> + <W_i^T W_i, F^T F>`, where the middle term only visits the
/// non-zeros of `X_i`. Every product of two `f32`s is exact in `f64` and the sums are in
/// `f64`, so the cancellation leaves an error of about `1e-16 * sqrt(non-zeros) * ||X_i||^2`:
/// below what `f32` factors can fit, and far below any RMSE worth showing (a test compares
/// the result with a dense reconstruction for a rough and a near-exact fit).
fn block_squared_errors(
    data: &Data,
    w: &[f32],
    f: &[f32],
    lanes: usize,
    shape: &Shape,
    block_norm_sq: &[f64],
) -> Vec<f64> {
    let lanes = lanes.max(1);
    let feature_block = shape.feature_blocks();
    // <X_i, W_i F^T> = sum over instances j of f_j . g_ij, g_ij = sum of x_kj w_k over the
    // features k of block i; g is accumulated in f64 lanes and folded in when the block or
    // the instance changes.
    let mut cross = vec![0.0f64; shape.block_rows.len()];
    let mut g = vec![0.0f64; lanes];
    let mut open: Option<(usize, usize)> = None;
    let mut fold = |open: Option<(usize, usize)>, g: &mut [f64]| {
        if let Some((instance, b)) = open {
            let f_row = f
                .get(instance * lanes..(instance + 1) * lanes)
                .unwrap_or(&[]);
            let sum: f64 = g.iter().zip(f_row).map(|(a, b)| a * f64::from(*b)).sum();
            if let Some(c) = cross.get_mut(b) {
                *c += sum;
            }
            g.fill(0.0);
        }
    };
    data.for_each_nonzero(|instance, feature, value| {
        let b = feature_block.get(feature).copied().unwrap_or(0);
        if open != Some((instance, b)) {
            fold(open, &mut g);
            open = Some((instance, b));
        }
        let w_row = w.get(feature * lanes..(feature + 1) * lanes).unwrap_or(&[]);
        let value = f64::from(value);
        for (acc, &wk) in g.iter_mut().zip(w_row) {
            *acc += value * f64::from(wk);
        }
    });
    fold(open, &mut g);
    let f_gram = gram64(f, lanes, 0..shape.instances);
    shape
        .block_rows
        .iter()
        .zip(block_norm_sq)
        .zip(cross)
        .map(|((rows, norm_sq), cross)| {
            let w_gram = gram64(w, lanes, rows.clone());
            let fitted: f64 = w_gram.iter().zip(&f_gram).map(|(a, b)| a * b).sum();
            (norm_sq - 2.0 * cross + fitted).max(0.0)
        })
        .collect()
}

/// `a^T a` in `f64` over rows `rows` of a row-major `* x lanes` matrix, row-major `lanes x
/// lanes`.
fn gram64(a: &[f32], lanes: usize, rows: std::ops::Range<usize>) -> Vec<f64> {
    let mut out = vec![0.0f64; lanes * lanes];
    for r in rows {
        let Some(values) = a.get(r * lanes..(r + 1) * lanes) else {
            continue;
        };
        for (k, &vk) in values.iter().enumerate() {
            if vk == 0.0 {
                continue;
            }
            let vk = f64::from(vk);
            if let Some(target) = out.get_mut(k * lanes..(k + 1) * lanes) {
                for (t, &vl) in target.iter_mut().zip(values) {
                    *t += vk * f64::from(vl);
                }
            }
        }
    }
    out
}

/// Fits the coupled factorization of `blocks` (see the module doc). Data with fewer than
/// [`SPARSE_BELOW_DENSITY`] non-zeros (digit pixels, sparse ReLU layers) are multiplied in
/// sparse form; the result is the same either way, up to float rounding.
pub fn coupled_nmf(blocks: &[NmfBlockInput<'_>], options: &NmfOptions) -> Result<NmfFit, NmfError> {
    fit(blocks, options, Layout::Auto)
}

fn fit(
    blocks: &[NmfBlockInput<'_>],
    options: &NmfOptions,
    layout: Layout,
) -> Result<NmfFit, NmfError> {
    let shape = check(blocks)?;
    let (features, instances) = (shape.features, shape.instances);
    let rank = options.rank;
    let max_rank = features.max(instances);
    if rank == 0 || rank > max_rank {
        return Err(NmfError::BadRank {
            rank,
            max: max_rank,
        });
    }
    let mut rng = SplitMix64(options.seed);
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

    // Residuals in each block's own units.
    let squared_errors = block_squared_errors(&data, &w, &f, lanes, &shape, &block_norm_sq);
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

/// Singular values of `matrix` (instances x features), descending.
pub fn singular_values(matrix: &Matrix) -> Result<Vec<f32>, NmfError> {
    if matrix.rows() == 0 || matrix.cols() == 0 {
        return Ok(Vec::new());
    }
    // Row-major instances x features is column-major features x instances: same values.
    let view = MatRef::from_column_major_slice(matrix.as_slice(), matrix.cols(), matrix.rows());
    view.singular_values().map_err(|_| NmfError::Svd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<'a>(name: &'a str, data: &'a Matrix) -> NmfBlockInput<'a> {
        NmfBlockInput {
            name,
            data,
            weight: 1.0,
        }
    }

    /// A non-negative `rows x cols` product of two random rank-`rank` factors.
    fn planted(rows: usize, cols: usize, rank: usize, seed: u64) -> Matrix {
        let mut rng = SplitMix64(seed);
        let a: Vec<f32> = (0..rows * rank).map(|_| rng.next_unit_f32()).collect();
        let b: Vec<f32> = (0..cols * rank).map(|_| rng.next_unit_f32()).collect();
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push((0..rank).map(|k| a[i * rank + k] * b[j * rank + k]).sum());
            }
        }
        Matrix::new(rows, cols, data).unwrap()
    }

    fn random_matrix(rows: usize, cols: usize, seed: u64) -> Matrix {
        let mut rng = SplitMix64(seed);
        Matrix::new(
            rows,
            cols,
            (0..rows * cols).map(|_| rng.next_unit_f32()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn objective_never_rises_and_factors_stay_non_negative() {
        let pixels = random_matrix(60, 25, 1);
        let layer = random_matrix(60, 12, 2);
        let fit = coupled_nmf(
            &[
                block("inputs", &pixels),
                NmfBlockInput {
                    name: "layer 1",
                    data: &layer,
                    weight: 2.5,
                },
            ],
            &NmfOptions {
                rank: 5,
                max_iters: 300,
                tolerance: 0.0,
                ..NmfOptions::default()
            },
        )
        .unwrap();
        assert_eq!(fit.iterations(), 300);
        let scale = fit.objective[0];
        for pair in fit.objective.windows(2) {
            assert!(
                pair[1] <= pair[0] + 1e-6 * scale,
                "{} -> {}",
                pair[0],
                pair[1]
            );
        }
        assert!(fit.objective[299] < fit.objective[0]);
        for m in fit.loadings.iter().chain([&fit.instance_weights]) {
            assert!(m.as_slice().iter().all(|v| *v >= 0.0 && v.is_finite()));
        }
        assert_eq!(fit.loadings[0].rows(), 25);
        assert_eq!(fit.loadings[1].rows(), 12);
        assert_eq!(fit.instance_weights.rows(), 60);
        assert_eq!(fit.instance_weights.cols(), 5);
    }

    #[test]
    fn tracked_objective_matches_the_residual() {
        let data = random_matrix(40, 20, 3);
        let fit = coupled_nmf(
            &[block("x", &data)],
            &NmfOptions {
                rank: 4,
                max_iters: 50,
                tolerance: 0.0,
                ..NmfOptions::default()
            },
        )
        .unwrap();
        let residual = dense_squared_errors(&[block("x", &data)], &fit)[0];
        let tracked = *fit.objective.last().unwrap();
        assert!(
            (residual - tracked).abs() <= 1e-4 * tracked,
            "{residual} vs {tracked}"
        );
        let count = (40 * 20) as f64;
        assert!((fit.rmse - (residual / count).sqrt()).abs() <= 1e-6 * fit.rmse);
    }

    /// `||B_i - F P_i^T||^2` of each block in its own units, from the dense reconstruction.
    fn dense_squared_errors(blocks: &[NmfBlockInput<'_>], fit: &NmfFit) -> Vec<f64> {
        let f = &fit.instance_weights;
        blocks
            .iter()
            .zip(&fit.loadings)
            .map(|(block, p)| {
                let mut sq = 0.0f64;
                for j in 0..block.data.rows() {
                    for c in 0..block.data.cols() {
                        let fitted: f64 = (0..f.cols())
                            .map(|k| {
                                f64::from(p.row(c).unwrap()[k]) * f64::from(f.row(j).unwrap()[k])
                            })
                            .sum();
                        let diff = f64::from(block.data.row(j).unwrap()[c]) - fitted;
                        sq += diff * diff;
                    }
                }
                sq
            })
            .collect()
    }

    #[test]
    fn block_errors_match_the_dense_reconstruction_in_both_layouts() {
        // Two weighted blocks, one about 75% zeros: both layouts, an unfinished fit (large
        // errors) and a nearly exact one (tiny errors, where a closed form could cancel badly).
        let mut rng = SplitMix64(17);
        let sparse: Vec<f32> = (0..60 * 25)
            .map(|_| {
                let v = rng.next_unit_f32();
                if v < 0.75 { 0.0 } else { v }
            })
            .collect();
        let pixels = Matrix::new(60, 25, sparse).unwrap();
        let layer = random_matrix(60, 7, 4);
        let planted_data = planted(60, 12, 2, 3);
        let cases: [(Vec<NmfBlockInput<'_>>, usize, usize); 2] = [
            (
                vec![
                    NmfBlockInput {
                        name: "pixels",
                        data: &pixels,
                        weight: 0.5,
                    },
                    NmfBlockInput {
                        name: "layer",
                        data: &layer,
                        weight: 3.0,
                    },
                ],
                3,
                20,
            ),
            (
                vec![NmfBlockInput {
                    name: "planted",
                    data: &planted_data,
                    weight: 2.0,
                }],
                2,
                3000,
            ),
        ];
        for (blocks, rank, max_iters) in &cases {
            for layout in [Layout::Sparse, Layout::Dense] {
                let options = NmfOptions {
                    rank: *rank,
                    max_iters: *max_iters,
                    tolerance: 0.0,
                    seed: 5,
                    ..NmfOptions::default()
                };
                let fit = fit(blocks, &options, layout).unwrap();
                let dense = dense_squared_errors(blocks, &fit);
                for ((block, rmse), sq) in blocks.iter().zip(&fit.block_rmse).zip(&dense) {
                    let count = (block.data.rows() * block.data.cols()) as f64;
                    let expected = (sq / count).sqrt();
                    assert!(
                        (rmse - expected).abs() <= 1e-4 * expected,
                        "{layout:?} {}: {rmse} vs {expected}",
                        block.name
                    );
                }
            }
        }
    }

    #[test]
    fn closed_form_errors_hold_for_a_near_exact_fit() {
        // X = W F^T exactly (in f64, then rounded to f32), plus 1e-3 at a few entries: each
        // block's error is about 1e-8 of its squared norm, where a careless closed form would
        // drown in cancellation.
        let (features, instances, rank, lanes) = (30, 50, 3, 4);
        let mut rng = SplitMix64(23);
        let w = random_factor(features, rank, lanes, &mut rng);
        let f = random_factor(instances, rank, lanes, &mut rng);
        let exact = |i: usize, j: usize| -> f64 {
            (0..lanes)
                .map(|k| f64::from(w[i * lanes + k]) * f64::from(f[j * lanes + k]))
                .sum()
        };
        let mut values = vec![0.0f32; instances * features];
        for j in 0..instances {
            for i in 0..features {
                let bump = if (i * 7 + j) % 97 == 0 { 1e-3 } else { 0.0 };
                values[j * features + i] = (exact(i, j) + bump) as f32;
            }
        }
        // Two blocks: features 0..20 and 20..30.
        let split = |from: usize, to: usize| {
            let data = (0..instances)
                .flat_map(|j| values[j * features + from..j * features + to].to_vec())
                .collect();
            Matrix::new(instances, to - from, data).unwrap()
        };
        let (first, second) = (split(0, 20), split(20, 30));
        let blocks = [block("first", &first), block("second", &second)];
        let shape = check(&blocks).unwrap();
        let expected: Vec<f64> = [0..20, 20..30]
            .into_iter()
            .map(|rows| {
                rows.flat_map(|i| (0..instances).map(move |j| (i, j)))
                    .map(|(i, j)| {
                        let diff = f64::from(values[j * features + i]) - exact(i, j);
                        diff * diff
                    })
                    .sum()
            })
            .collect();
        for layout in [Layout::Sparse, Layout::Dense] {
            let data = Data::from_blocks(&blocks, &shape, layout, lanes);
            let norms = data.block_norm_sq(&shape);
            let got = block_squared_errors(&data, &w, &f, lanes, &shape, &norms);
            for ((got, expected), norm) in got.iter().zip(&expected).zip(&norms) {
                assert!(*expected < 1e-7 * norm, "{expected} vs {norm}");
                assert!(
                    (got - expected).abs() <= 1e-6 * expected,
                    "{layout:?}: {got:e} vs {expected:e}"
                );
            }
        }
    }

    #[test]
    fn recovers_a_planted_low_rank_product() {
        let data = planted(50, 30, 3, 7);
        let fit = coupled_nmf(
            &[block("x", &data)],
            &NmfOptions {
                rank: 3,
                max_iters: 5000,
                tolerance: 0.0,
                seed: 11,
                ..NmfOptions::default()
            },
        )
        .unwrap();
        let mean = data.as_slice().iter().map(|v| f64::from(*v)).sum::<f64>() / (50.0 * 30.0);
        assert!(
            fit.rmse < 0.01 * mean,
            "rmse {} vs mean value {mean}",
            fit.rmse
        );
    }

    #[test]
    fn rmse_falls_as_rank_rises() {
        let data = random_matrix(80, 40, 5);
        let curve = rmse_by_rank(
            &[block("x", &data)],
            &[2, 5, 10, 20],
            &NmfOptions {
                max_iters: 400,
                tolerance: 0.0,
                ..NmfOptions::default()
            },
        )
        .unwrap();
        assert_eq!(curve.len(), 4);
        for pair in curve.windows(2) {
            assert!(pair[1].1 < pair[0].1, "{curve:?}");
        }
    }

    #[test]
    fn weights_balance_blocks() {
        // A big-valued block dominates an unweighted fit; weighting it down shifts the error
        // towards it and away from the small block.
        let big = Matrix::new(
            30,
            10,
            random_matrix(30, 10, 8)
                .as_slice()
                .iter()
                .map(|v| v * 100.0)
                .collect(),
        )
        .unwrap();
        let small = random_matrix(30, 10, 9);
        let options = NmfOptions {
            rank: 2,
            max_iters: 300,
            tolerance: 0.0,
            ..NmfOptions::default()
        };
        let plain = coupled_nmf(&[block("big", &big), block("small", &small)], &options).unwrap();
        let balanced = coupled_nmf(
            &[
                NmfBlockInput {
                    name: "big",
                    data: &big,
                    weight: 0.01,
                },
                block("small", &small),
            ],
            &options,
        )
        .unwrap();
        assert!(balanced.block_rmse[1] < plain.block_rmse[1]);
    }

    #[test]
    fn same_seed_same_fit() {
        let data = random_matrix(20, 10, 4);
        let options = NmfOptions {
            rank: 3,
            ..NmfOptions::default()
        };
        let a = coupled_nmf(&[block("x", &data)], &options).unwrap();
        let b = coupled_nmf(&[block("x", &data)], &options).unwrap();
        assert_eq!(a, b);
        let c = coupled_nmf(&[block("x", &data)], &NmfOptions { seed: 1, ..options }).unwrap();
        assert_ne!(a.instance_weights, c.instance_weights);
    }

    #[test]
    fn top_instances_are_ordered_by_weight() {
        let data = planted(30, 8, 2, 3);
        let fit = coupled_nmf(
            &[block("x", &data)],
            &NmfOptions {
                rank: 2,
                ..NmfOptions::default()
            },
        )
        .unwrap();
        let top = fit.top_instances(5);
        assert_eq!(top.len(), 2);
        for (factor, list) in top.iter().enumerate() {
            assert_eq!(list.len(), 5);
            let weights: Vec<f32> = list
                .iter()
                .map(|&i| fit.instance_weights.row(i as usize).unwrap()[factor])
                .collect();
            assert!(weights.windows(2).all(|w| w[0] >= w[1]), "{weights:?}");
            let max = fit
                .instance_weights
                .iter_rows()
                .map(|r| r[factor])
                .fold(0.0f32, f32::max);
            assert_eq!(weights[0], max);
        }
    }

    #[test]
    fn sparse_and_dense_products_agree() {
        // About 80% zeros, like digit pixels.
        let mut rng = SplitMix64(42);
        let values: Vec<f32> = (0..70 * 30)
            .map(|_| {
                let v = rng.next_unit_f32();
                if v < 0.8 { 0.0 } else { v }
            })
            .collect();
        let data = Matrix::new(70, 30, values).unwrap();
        let layer = random_matrix(70, 6, 3);
        let blocks = [block("pixels", &data), block("layer", &layer)];
        let options = NmfOptions {
            rank: 4,
            max_iters: 60,
            tolerance: 0.0,
            ..NmfOptions::default()
        };
        let dense = fit(&blocks, &options, Layout::Dense).unwrap();
        let sparse = fit(&blocks, &options, Layout::Sparse).unwrap();
        for (a, b) in dense.objective.iter().zip(&sparse.objective) {
            assert!((a - b).abs() <= 1e-4 * a, "{a} vs {b}");
        }
        for (a, b) in dense
            .instance_weights
            .as_slice()
            .iter()
            .zip(sparse.instance_weights.as_slice())
        {
            assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{a} vs {b}");
        }
        // The automatic choice takes the sparse path here (density about 0.2 + one dense
        // block: under the threshold overall) and gives the same fit.
        let auto = coupled_nmf(&[block("pixels", &data)], &options).unwrap();
        let forced = fit(&[block("pixels", &data)], &options, Layout::Sparse).unwrap();
        assert_eq!(auto, forced);
    }

    #[test]
    fn sparse_products_match_the_dense_product_in_blocks() {
        let mut rng = SplitMix64(5);
        let (features, instances) = (37, 101);
        let mut x = Mat::<f32>::zeros(features, instances);
        for j in 0..instances {
            for v in x.col_as_slice_mut(j) {
                let u = rng.next_unit_f32();
                *v = if u < 0.7 { 0.0 } else { u };
            }
        }
        // 4, 20 and 64 lanes take the fixed-width kernels, 72 the generic one; blocks of 7
        // instances make the feature-side product add up 15 blocks.
        for lanes in [4, 20, 64, 72] {
            let Data::Sparse {
                by_instance,
                by_feature,
            } = Data::with_blocks(&x, Layout::Sparse, 7)
            else {
                panic!("asked for the sparse layout");
            };
            assert_eq!(by_feature.len(), instances.div_ceil(7));
            let f: Vec<f32> = (0..instances * lanes)
                .map(|_| rng.next_unit_f32())
                .collect();
            let w: Vec<f32> = (0..features * lanes).map(|_| rng.next_unit_f32()).collect();
            let mut xf = vec![1.0; features * lanes];
            Side::Sparse(&by_feature).product(0..features, &f, lanes, &mut xf);
            for r in 0..features {
                for k in 0..lanes {
                    let expected: f32 = (0..instances).map(|j| x[(r, j)] * f[j * lanes + k]).sum();
                    let got = xf[r * lanes + k];
                    assert!(
                        (got - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                        "lanes {lanes}: {got} vs {expected}"
                    );
                }
            }
            let mut xtw = vec![1.0; instances * lanes];
            Side::Sparse(std::slice::from_ref(&by_instance)).product(
                0..instances,
                &w,
                lanes,
                &mut xtw,
            );
            for j in 0..instances {
                for k in 0..lanes {
                    let expected: f32 = (0..features).map(|r| x[(r, j)] * w[r * lanes + k]).sum();
                    let got = xtw[j * lanes + k];
                    assert!((got - expected).abs() < 1e-4 * (1.0 + expected.abs()));
                }
            }
        }
    }

    #[test]
    fn threaded_updates_match_one_thread() {
        let mut rng = SplitMix64(9);
        // Enough non-zeros (about 300,000) for the updates to use threads.
        let (features, instances, lanes) = (50, 20_000, 8);
        let mut x = Mat::<f32>::zeros(features, instances);
        for j in 0..instances {
            for v in x.col_as_slice_mut(j) {
                let u = rng.next_unit_f32();
                *v = if u < 0.7 { 0.0 } else { u };
            }
        }
        let w = random_factor(features, 6, lanes, &mut rng);
        let f = random_factor(instances, 6, lanes, &mut rng);
        let w_gram = gram(&w, lanes);
        for layout in [Layout::Sparse, Layout::Dense] {
            let data = Data::with_blocks(&x, layout, 3_000);
            let side = data.by_instance();
            assert_eq!(side.ranges(3, PARALLEL_ABOVE_WORK).len(), 3);
            let ranges = side.ranges(3, 0);
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(instances));
            assert!(ranges.windows(2).all(|p| p[0].end == p[1].start));
            let update = |threads: usize| {
                let mut target = f.clone();
                let mut scratch = Scratch::new(instances, lanes);
                let updated = update_factor(
                    side,
                    &w,
                    &w_gram,
                    &mut target,
                    &mut scratch,
                    lanes,
                    1e-9,
                    threads,
                );
                (target, updated)
            };
            let (one, one_updated) = update(1);
            let (three, three_updated) = update(3);
            assert_eq!(one, three, "rows are updated the same way on any thread");
            assert_ne!(one, f, "the update changed the factor");
            let expected_gram = gram(&one, lanes);
            for ((a, b), c) in one_updated
                .gram
                .iter()
                .zip(&three_updated.gram)
                .zip(&expected_gram)
            {
                assert!((a - c).abs() < 1e-3 * (1.0 + c.abs()), "{a} vs {c}");
                assert!((b - c).abs() < 1e-3 * (1.0 + c.abs()), "{b} vs {c}");
            }
            let relative = (one_updated.numerator_dot - three_updated.numerator_dot).abs()
                / one_updated.numerator_dot.abs().max(1.0);
            assert!(relative < 1e-9, "{relative}");
        }
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let good = random_matrix(5, 3, 1);
        let negative = Matrix::new(1, 2, vec![0.5, -1.0]).unwrap();
        let short = random_matrix(4, 3, 1);
        let options = NmfOptions::default();
        assert_eq!(coupled_nmf(&[], &options), Err(NmfError::NoBlocks));
        let err = coupled_nmf(&[block("neg", &negative)], &options).unwrap_err();
        assert!(err.to_string().contains("row 0, column 1"), "{err}");
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let data = Matrix::new(2, 2, vec![0.5, 0.0, 1.0, bad]).unwrap();
            match coupled_nmf(&[block("b", &data)], &options) {
                Err(NmfError::NotNonNegative { row: 1, col: 1, .. }) => {}
                other => panic!("{bad} must be refused at row 1, column 1: {other:?}"),
            }
        }
        assert!(matches!(
            coupled_nmf(&[block("a", &good), block("b", &short)], &options),
            Err(NmfError::InstanceCount {
                expected: 5,
                found: 4,
                ..
            })
        ));
        assert!(matches!(
            coupled_nmf(&[block("a", &good)], &NmfOptions { rank: 0, ..options }),
            Err(NmfError::BadRank { .. })
        ));
        assert!(matches!(
            coupled_nmf(
                &[NmfBlockInput {
                    name: "a",
                    data: &good,
                    weight: f32::NAN
                }],
                &options
            ),
            Err(NmfError::BadWeight { .. })
        ));
    }

    #[test]
    fn spectrum_of_a_known_matrix() {
        // diag(3, 2) padded with a zero row: singular values 3 and 2.
        let m = Matrix::new(3, 2, vec![3.0, 0.0, 0.0, -2.0, 0.0, 0.0]).unwrap();
        let s = singular_values(&m).unwrap();
        assert_eq!(s.len(), 2);
        assert!(
            (s[0] - 3.0).abs() < 1e-5 && (s[1] - 2.0).abs() < 1e-5,
            "{s:?}"
        );
        // A rank-one outer product u v^T has one singular value |u||v|.
        let u = [1.0f32, 2.0, 2.0];
        let v = [3.0f32, 4.0];
        let data: Vec<f32> = u
            .iter()
            .flat_map(|a| v.iter().map(move |b| a * b))
            .collect();
        let s = singular_values(&Matrix::new(3, 2, data).unwrap()).unwrap();
        assert!((s[0] - 15.0).abs() < 1e-4 && s[1].abs() < 1e-4, "{s:?}");
        // Frobenius norm squared equals the sum of squared singular values.
        let r = random_matrix(12, 7, 2);
        let s = singular_values(&r).unwrap();
        let fro: f32 = r.as_slice().iter().map(|v| v * v).sum();
        let sum: f32 = s.iter().map(|v| v * v).sum();
        assert!((fro - sum).abs() < 1e-3 * fro);
        assert!(s.windows(2).all(|w| w[0] >= w[1]));
    }
}
