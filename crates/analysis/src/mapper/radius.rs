//! Radius queries: the pairs of points within `eps` of each other, leaf pair by leaf pair
//! of a [`Tree`], as bit masks.

use super::distance::{PointSet, sq_dist_f32};
use super::tree::Tree;

/// Pairs tested at once by the vectorised candidate filter.
const LANES: usize = 16;

/// Bits `k` set where `scaled_low[k] - 2 gram[k] < low` (surely within `eps`) and where
/// `scaled_high[k] - 2 gram[k] <= high` (possibly within); compiles to vector compares.
#[inline(always)]
fn candidate_masks(
    gram: &[f32; LANES],
    scaled_low: &[f32; LANES],
    scaled_high: &[f32; LANES],
    low: f32,
    high: f32,
) -> (u32, u32) {
    let mut sure = 0u32;
    let mut maybe = 0u32;
    for (k, ((&g, &nl), &nh)) in gram.iter().zip(scaled_low).zip(scaled_high).enumerate() {
        sure |= u32::from(nl - 2.0 * g < low) << k;
        maybe |= u32::from(nh - 2.0 * g <= high) << k;
    }
    (sure, maybe)
}

/// One computed block of the neighbour relation: rows `rows.0..rows.1` against columns
/// `cols.0..cols.1` (positions in the tree's order); bit `c` of row `r`'s words is
/// set when the pair is within `eps`. A diagonal block (rows == cols) holds only `c > r`.
#[derive(Debug, Clone, Default)]
pub(crate) struct NeighbourBlock {
    /// Row positions.
    pub rows: (usize, usize),
    /// Column positions.
    pub cols: (usize, usize),
    /// `u64` words per row.
    pub words: usize,
    /// Row-major bit masks.
    pub masks: Vec<u64>,
}

impl NeighbourBlock {
    /// Calls `f(row, col)` (positions) for every pair in the block.
    #[inline]
    pub(crate) fn for_each_pair(&self, mut f: impl FnMut(usize, usize)) {
        for (r, row) in self.masks.chunks_exact(self.words.max(1)).enumerate() {
            for (w, &word) in row.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let c = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    f(self.rows.0 + r, self.cols.0 + w * 64 + c);
                }
            }
        }
    }
}

/// The pairs of points within `eps` of each other, found block by block: leaf pairs of a
/// [`Tree`] that a projection separates by more than `eps` are skipped, and the rest are
/// decided from `f32` Gram blocks, with an exact `f64` re-check of every pair within the
/// rounding bound of `eps`.
pub(crate) struct Neighbourhoods<'p> {
    points: &'p PointSet,
    tree: &'p Tree,
    /// `|x|^2 (1 + factor)` and `|x|^2 (1 - factor)` per position.
    scaled_low: Vec<f32>,
    scaled_high: Vec<f32>,
    /// `eps^2`, or -1 when `eps` is negative or NaN (nothing is within).
    eps_sq: f32,
    eps_sq64: f64,
    reach: f32,
    factor: f32,
    base_tol: f32,
}

impl<'p> Neighbourhoods<'p> {
    /// Prepares the radius-`eps` queries on `points`, ordered by `tree` (built from them).
    pub(crate) fn new(points: &'p PointSet, tree: &'p Tree, eps: f32) -> Self {
        let valid = eps >= 0.0;
        let eps_sq = if valid { eps * eps } else { -1.0 };
        let factor = points.tolerance_factor();
        // With `tol(a, b) = base_tol + factor (na + nb)`, `d2 = na + nb - 2 g` is surely
        // within `eps` when `nb (1 + factor) - 2 g < eps^2 - base_tol - na (1 + factor)`
        // and possibly within when `nb (1 - factor) - 2 g <= eps^2 + base_tol - na (1 - factor)`.
        let all = (0, points.len());
        let scaled_low = tree
            .norms(all)
            .iter()
            .map(|&nb| nb * (1.0 + factor))
            .collect();
        let scaled_high = tree
            .norms(all)
            .iter()
            .map(|&nb| nb * (1.0 - factor))
            .collect();
        Self {
            points,
            tree,
            scaled_low,
            scaled_high,
            eps_sq,
            eps_sq64: if valid {
                f64::from(eps) * f64::from(eps)
            } else {
                -1.0
            },
            reach: tree.reach(eps.max(0.0)),
            factor,
            base_tol: factor * (eps_sq.max(0.0) + points.mean_sq()),
        }
    }

    /// The leaf pairs `(i, j)`, `i <= j`, that may hold a pair within `eps` (the others are
    /// separated by a projection): the diagonal ones first, then by increasing distance
    /// between the leaves' centroids (ties by index).
    pub(crate) fn candidate_pairs(&self) -> Vec<(usize, usize)> {
        if self.eps_sq < 0.0 {
            return Vec::new();
        }
        let count = self.tree.leaf_count();
        let mut pairs: Vec<(usize, usize)> = (0..count).map(|l| (l, l)).collect();
        let mut off: Vec<(f32, usize, usize)> = Vec::new();
        for li in 0..count {
            for lj in li + 1..count {
                if !self.tree.separated(li, lj, self.reach) {
                    off.push((self.tree.centroid_distance(li, lj), li, lj));
                }
            }
        }
        off.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        pairs.extend(off.into_iter().map(|(_, i, j)| (i, j)));
        pairs
    }

    /// Decides every pair of leaves `li` x `lj` into `block` (`gram` is scratch space).
    pub(crate) fn compute_block(
        &self,
        li: usize,
        lj: usize,
        gram: &mut Vec<f32>,
        block: &mut NeighbourBlock,
    ) {
        let ((i0, i1), (j0, j1)) = (self.tree.leaf(li), self.tree.leaf(lj));
        self.tree.gram(li, lj, gram);
        block.rows = (i0, i1);
        block.cols = (j0, j1);
        block.words = (j1 - j0).div_ceil(64);
        block.masks.clear();
        block.masks.resize((i1 - i0) * block.words, 0);
        self.fill_masks(gram, block, li == lj);
    }

    /// Computes every candidate block and hands it to `visit`.
    #[cfg(test)]
    pub(crate) fn for_each_block(&self, mut visit: impl FnMut(&NeighbourBlock)) {
        let mut gram = Vec::new();
        let mut block = NeighbourBlock::default();
        for (li, lj) in self.candidate_pairs() {
            self.compute_block(li, lj, &mut gram, &mut block);
            visit(&block);
        }
    }

    /// Decides every pair of `block` from its Gram values.
    fn fill_masks(&self, gram: &[f32], block: &mut NeighbourBlock, diagonal: bool) {
        let (i0, i1) = block.rows;
        let (j0, j1) = block.cols;
        let width = j1 - j0;
        let words = block.words.max(1);
        let norms_i = self.tree.norms((i0, i1));
        let low_j = self.scaled_low.get(j0..j1).unwrap_or(&[]);
        let high_j = self.scaled_high.get(j0..j1).unwrap_or(&[]);
        let rows = gram
            .chunks_exact(width.max(1))
            .zip(block.masks.chunks_exact_mut(words));
        for (ra, (&na, (row, out))) in norms_i.iter().zip(rows).enumerate() {
            let low = self.eps_sq - self.base_tol - na * (1.0 + self.factor);
            let high = self.eps_sq + self.base_tol - na * (1.0 - self.factor);
            let first = if diagonal { ra + 1 } else { 0 };
            let start = first - first % LANES;
            let (Some(g_row), Some(l_row), Some(h_row)) =
                (row.get(start..), low_j.get(start..), high_j.get(start..))
            else {
                continue;
            };
            let mut set = |c: usize, bits: u64| {
                if let Some(word) = out.get_mut(c / 64) {
                    *word |= bits << (c % 64);
                }
            };
            let mut offset = start;
            let mut g_chunks = g_row.chunks_exact(LANES);
            let mut l_chunks = l_row.chunks_exact(LANES);
            let mut h_chunks = h_row.chunks_exact(LANES);
            for ((gs, ls), hs) in (&mut g_chunks).zip(&mut l_chunks).zip(&mut h_chunks) {
                let (Ok(gs), Ok(ls), Ok(hs)) = (
                    <&[f32; LANES]>::try_from(gs),
                    <&[f32; LANES]>::try_from(ls),
                    <&[f32; LANES]>::try_from(hs),
                ) else {
                    continue;
                };
                let (mut sure, maybe) = candidate_masks(gs, ls, hs, low, high);
                let mut band = maybe & !sure;
                while band != 0 {
                    let k = band.trailing_zeros() as usize;
                    band &= band - 1;
                    if self.exact_within(i0 + ra, j0 + offset + k) {
                        sure |= 1 << k;
                    }
                }
                if offset < first {
                    sure &= u32::MAX << (first - offset);
                }
                set(offset, u64::from(sure));
                offset += LANES;
            }
            let tail = g_chunks
                .remainder()
                .iter()
                .zip(l_chunks.remainder())
                .zip(h_chunks.remainder());
            for (k, ((&g, &nl), &nh)) in tail.enumerate() {
                let c = offset + k;
                if c < first || nh - 2.0 * g > high {
                    continue;
                }
                if nl - 2.0 * g < low || self.exact_within(i0 + ra, j0 + c) {
                    set(c, 1);
                }
            }
        }
    }

    /// Whether the points at positions `a` and `b` are within `eps` (a direct `f32`
    /// distance, re-checked exactly near the boundary).
    pub(crate) fn within(&self, a: usize, b: usize) -> bool {
        let d2 = sq_dist_f32(self.tree.row(a), self.tree.row(b));
        let tol = self.base_tol + self.factor * (self.tree.norm(a) + self.tree.norm(b));
        if d2 < self.eps_sq - tol {
            true
        } else if d2 > self.eps_sq + tol {
            false
        } else {
            self.exact_within(a, b)
        }
    }

    /// Exact decision for the points at positions `a` and `b`.
    fn exact_within(&self, a: usize, b: usize) -> bool {
        self.points
            .exact_sq_dist(self.tree.point(a), self.tree.point(b))
            <= self.eps_sq64
    }
}

/// Calls `visit(i, j)` (with `i < j`, point indices) once for every pair of points at
/// Euclidean distance at most `eps` (decided exactly, in `f64`, on the original rows).
#[cfg(test)]
pub(crate) fn for_each_pair_within(points: &PointSet, eps: f32, mut visit: impl FnMut(u32, u32)) {
    let tree = Tree::new(points);
    let hood = Neighbourhoods::new(points, &tree, eps);
    hood.for_each_block(|block| {
        block.for_each_pair(|a, b| {
            let (pa, pb) = (tree.point(a) as u32, tree.point(b) as u32);
            visit(pa.min(pb), pa.max(pb));
        });
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn brute_pairs(points: &PointSet, eps: f32) -> Vec<(u32, u32)> {
        let mut pairs = Vec::new();
        for i in 0..points.len() {
            for j in i + 1..points.len() {
                if points.exact_sq_dist(i, j) <= f64::from(eps) * f64::from(eps) {
                    pairs.push((i as u32, j as u32));
                }
            }
        }
        pairs
    }

    /// Uniform points in a cube of side 4 at `offset`, plus (every third point) a copy of
    /// the cube shifted by 20 along every axis, so the tree has leaves to prune.
    pub(crate) fn lcg_points(n: usize, dim: usize, seed: u64, offset: f32) -> PointSet {
        let mut state = seed;
        let mut data = Vec::with_capacity(n * dim);
        for i in 0..n * dim {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let shift = if (i / dim).is_multiple_of(3) {
                20.0
            } else {
                0.0
            };
            data.push(((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 + offset + shift);
        }
        PointSet::from_rows(data, dim, n)
    }

    #[test]
    fn radius_pairs_match_brute_force_across_blocks() {
        // Several leaves, far from the origin (exercises centring and the re-check).
        let points = lcg_points(700, 7, 3, 100.0);
        for eps in [0.0f32, 1.0, 2.5, 4.0, 30.0] {
            let mut pairs = Vec::new();
            for_each_pair_within(&points, eps, |i, j| pairs.push((i, j)));
            pairs.sort_unstable();
            assert_eq!(pairs, brute_pairs(&points, eps), "eps {eps}");
        }
    }

    #[test]
    fn radius_pairs_count_duplicates() {
        let points = PointSet::from_rows(vec![1.0, 1.0, 1.0, 1.0, 5.0, 5.0], 2, 3);
        let mut pairs = Vec::new();
        for_each_pair_within(&points, 0.0, |i, j| pairs.push((i, j)));
        assert_eq!(pairs, vec![(0, 1)]);
        let mut none = Vec::new();
        for_each_pair_within(&points, -1.0, |i, j| none.push((i, j)));
        for_each_pair_within(&points, f32::NAN, |i, j| none.push((i, j)));
        assert!(none.is_empty());
    }

    #[test]
    fn within_agrees_with_the_exact_distance() {
        let points = lcg_points(300, 4, 5, -7.0);
        let tree = Tree::new(&points);
        let hood = Neighbourhoods::new(&points, &tree, 2.0);
        for a in (0..300).step_by(7) {
            for b in (0..300).step_by(5) {
                let exact = points.exact_sq_dist(tree.point(a), tree.point(b)) <= 4.0;
                assert_eq!(hood.within(a, b), exact);
            }
        }
    }
}
