//! The blocks as the updates read them: the checks (same instances, finite positive weights,
//! finite non-negative values), and the weighted blocks stacked into one `features x
//! instances` matrix, dense or as two sparse copies ([`Data`]).

use faer::Mat;

use super::csr::Csr;
use super::side::Side;
use super::{NmfBlockInput, NmfError, SPARSE_BELOW_DENSITY};

/// The factor rows one block of the sparse data reads should fit in this many bytes: a typical
/// core's L1 data cache. Measured on the benchmark (8 alternating runs each): 32 KiB best
/// 0.87 s, median 1.04 s; 128 KiB best 0.93 s, median 1.05 s; a small edge, inside the noise
/// of a shared machine.
const BLOCK_BYTES: usize = 32 * 1024;

/// What the checks of the blocks found out about them, before any copy is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shape {
    pub(super) instances: usize,
    pub(super) features: usize,
    /// Where each block's features start and end among the stacked features.
    pub(super) block_rows: Vec<std::ops::Range<usize>>,
    /// Non-zero values over all blocks.
    pub(super) nonzeros: usize,
}

impl Shape {
    /// The block of each stacked feature.
    pub(super) fn feature_blocks(&self) -> Vec<usize> {
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
pub(super) fn check(blocks: &[NmfBlockInput<'_>]) -> Result<Shape, NmfError> {
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

/// How the products with the data are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// Sparse below [`SPARSE_BELOW_DENSITY`], dense otherwise.
    Auto,
    /// Always dense (tests compare the two).
    #[cfg_attr(not(test), allow(dead_code))]
    Dense,
    /// Always sparse.
    #[cfg_attr(not(test), allow(dead_code))]
    Sparse,
}

/// The stacked data in the layout its two products read fastest.
pub(super) enum Data {
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
    pub(super) fn from_blocks(
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
    pub(super) fn with_blocks(x: &Mat<f32>, layout: Layout, block: usize) -> Self {
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
    pub(super) fn block_norm_sq(&self, shape: &Shape) -> Vec<f64> {
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
    pub(super) fn for_each_nonzero(&self, mut visit: impl FnMut(usize, usize, f32)) {
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
    pub(super) fn by_feature(&self) -> Side<'_> {
        match self {
            Self::Dense(x) => Side::Dense(x.as_ref()),
            Self::Sparse { by_feature, .. } => Side::Sparse(by_feature),
        }
    }

    /// The data as the F update reads it: one row per instance.
    pub(super) fn by_instance(&self) -> Side<'_> {
        match self {
            Self::Dense(x) => Side::Dense(x.transpose()),
            Self::Sparse { by_instance, .. } => Side::Sparse(std::slice::from_ref(by_instance)),
        }
    }
}
