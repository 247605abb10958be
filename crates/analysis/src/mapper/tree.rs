//! A projection tree over the rows of a point set: leaves of at most [`LEAF`] compact points,
//! the rows copied contiguously in leaf order, and bounds that show two leaves to be further
//! apart than some radius without computing any of their distances.

use super::distance::{PointSet, dot_f32, gram_block, sq_dist_f32};

/// Most points per leaf (and rows per Gram block).
pub(crate) const LEAF: usize = 128;

/// Points in leaf order, with their centred rows and squared norms.
pub(crate) struct Tree {
    dim: usize,
    /// Point index at every position.
    order: Vec<u32>,
    leaves: Vec<(usize, usize)>,
    /// Centred rows in position order.
    sorted: Vec<f32>,
    /// Squared norms of the centred rows, in position order.
    norms: Vec<f32>,
    bounds: Option<LeafProjections>,
    /// Scale of the centred data, for rounding margins.
    scale: f32,
}

impl Tree {
    /// Builds the tree of `points` with leaves of at most [`LEAF`] points.
    pub(crate) fn new(points: &PointSet) -> Self {
        Self::with_leaf_size(points, LEAF)
    }

    /// Builds the tree of `points` with leaves of at most `leaf` points (at least 1).
    pub(crate) fn with_leaf_size(points: &PointSet, leaf: usize) -> Self {
        let leaf = leaf.max(1);
        let n = points.len();
        let dim = points.dim();
        let (order, leaves) = if dim == 0 || n <= leaf {
            let leaves = (0..n)
                .step_by(leaf)
                .map(|s| (s, (s + leaf).min(n)))
                .collect();
            ((0..n as u32).collect(), leaves)
        } else {
            build_leaves(points, leaf)
        };
        let mut sorted = Vec::with_capacity(n * dim);
        let mut norms = Vec::with_capacity(n);
        for &i in &order {
            sorted.extend_from_slice(points.centred_row(i as usize));
            norms.push(points.norm(i as usize));
        }
        let scale = points.max_norm().sqrt() + points.mean_sq().sqrt();
        let bounds = (dim > 0 && leaves.len() > 1)
            .then(|| LeafProjections::new(&sorted, dim, &leaves, scale));
        Self {
            dim,
            order,
            leaves,
            sorted,
            norms,
            bounds,
            scale,
        }
    }

    /// Number of leaves.
    pub(crate) fn leaf_count(&self) -> usize {
        self.leaves.len()
    }

    /// Position range of leaf `leaf`.
    pub(crate) fn leaf(&self, leaf: usize) -> (usize, usize) {
        self.leaves.get(leaf).copied().unwrap_or((0, 0))
    }

    /// The point at position `position`.
    pub(crate) fn point(&self, position: usize) -> usize {
        self.order.get(position).map_or(0, |&p| p as usize)
    }

    /// Point index at every position.
    pub(crate) fn order(&self) -> &[u32] {
        &self.order
    }

    /// Centred row at `position`.
    pub(crate) fn row(&self, position: usize) -> &[f32] {
        self.sorted
            .get(position * self.dim..(position + 1) * self.dim)
            .unwrap_or(&[])
    }

    /// Squared norm of the centred row at `position`.
    pub(crate) fn norm(&self, position: usize) -> f32 {
        self.norms.get(position).copied().unwrap_or(0.0)
    }

    /// Squared norms of the centred rows at `range`.
    pub(crate) fn norms(&self, (start, end): (usize, usize)) -> &[f32] {
        self.norms.get(start..end).unwrap_or(&[])
    }

    /// `out` = the Gram block of leaves `li` x `lj` (row-major, resized to fit).
    pub(crate) fn gram(&self, li: usize, lj: usize, out: &mut Vec<f32>) {
        let ((i0, i1), (j0, j1)) = (self.leaf(li), self.leaf(lj));
        let a = self.sorted.get(i0 * self.dim..i1 * self.dim).unwrap_or(&[]);
        let b = self.sorted.get(j0 * self.dim..j1 * self.dim).unwrap_or(&[]);
        out.resize((i1 - i0) * (j1 - j0), 0.0);
        gram_block(a, b, self.dim, out);
    }

    /// A pruning radius: `radius` widened by the rounding margins of the centring and of
    /// the projections.
    pub(crate) fn reach(&self, radius: f32) -> f32 {
        radius * (1.0 + 1e-4) + 1e-4 * self.scale
    }

    /// Whether leaves `li` and `lj` are separated by more than `reach` along the direction
    /// joining their centroids (then no pair across them is within `reach`).
    pub(crate) fn separated(&self, li: usize, lj: usize, reach: f32) -> bool {
        self.bounds
            .as_ref()
            .is_some_and(|b| b.separated(li, lj, self.leaf(li), self.leaf(lj), reach))
    }

    /// Distance between the centroids of leaves `li` and `lj` (0 without bounds).
    pub(crate) fn centroid_distance(&self, li: usize, lj: usize) -> f32 {
        self.bounds
            .as_ref()
            .map_or(0.0, |b| b.centroid_distance(li, lj))
    }

    /// All leaves, `leaf` first, then by increasing centroid distance from it (ties by
    /// index).
    pub(crate) fn nearest_leaves(&self, leaf: usize) -> Vec<usize> {
        let mut all: Vec<(bool, f32, usize)> = (0..self.leaves.len())
            .map(|l| (l != leaf, self.centroid_distance(leaf, l), l))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        all.into_iter().map(|(_, _, l)| l).collect()
    }
}

/// Splits the points into leaves of at most `leaf` points, recursively by which of two
/// far-apart seeds they are nearer (the point of largest centred norm and the point furthest
/// from it; a cheap 2-means-like split), so that leaves are compact and rarely cut a
/// cluster. Returns the point order and the leaves as ranges of that order.
fn build_leaves(points: &PointSet, leaf: usize) -> (Vec<u32>, Vec<(usize, usize)>) {
    let n = points.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut leaves = Vec::new();
    let mut stack = vec![(0usize, n)];
    let mut keyed: Vec<(f32, u32)> = Vec::new();
    let mut along_first: Vec<f32> = Vec::new();
    let norm = |i: u32| points.norm(i as usize);
    while let Some((start, end)) = stack.pop() {
        if end - start <= leaf {
            leaves.push((start, end));
            continue;
        }
        let Some(members) = order.get(start..end) else {
            continue;
        };
        let first = members
            .iter()
            .copied()
            .max_by(|&a, &b| norm(a).total_cmp(&norm(b)).then(b.cmp(&a)))
            .unwrap_or(0);
        let p1 = points.centred_row(first as usize);
        // |x - p1|^2 = |x|^2 + |p1|^2 - 2 x.p1, keeping x.p1 for the projection below.
        along_first.clear();
        along_first.extend(
            members
                .iter()
                .map(|&i| dot_f32(points.centred_row(i as usize), p1)),
        );
        let second = members
            .iter()
            .zip(&along_first)
            .map(|(&i, &d)| (norm(i) - 2.0 * d, i))
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
            .map_or(first, |(_, i)| i);
        let p2 = points.centred_row(second as usize);
        keyed.clear();
        keyed.extend(
            members
                .iter()
                .zip(&along_first)
                .map(|(&i, &d)| (dot_f32(points.centred_row(i as usize), p2) - d, i)),
        );
        // Split at the bisector of the two seeds (points nearer the first go left), which
        // keeps compact groups whole; fall back to the median when a side would be empty.
        let bisector = 0.5 * (norm(second) - norm(first));
        let nearer_first = |k: &(f32, u32)| k.0 < bisector;
        let mut mid = keyed.iter().filter(|k| nearer_first(k)).count();
        if mid == 0 || mid == keyed.len() {
            mid = keyed.len() / 2;
            keyed.select_nth_unstable_by(mid, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        } else {
            let right: Vec<(f32, u32)> =
                keyed.iter().copied().filter(|k| !nearer_first(k)).collect();
            keyed.retain(nearer_first);
            keyed.extend(right);
        }
        if let Some(slots) = order.get_mut(start..end) {
            for (slot, &(_, i)) in slots.iter_mut().zip(&keyed) {
                *slot = i;
            }
        }
        stack.push((start + mid, end));
        stack.push((start, start + mid));
    }
    leaves.sort_unstable();
    (order, leaves)
}

/// Leaf bounds for pruning: every point's projection on every leaf centroid, one GEMM.
struct LeafProjections {
    /// `n x leaves`, row-major: `x_i . c_L`.
    dots: Vec<f32>,
    /// `leaves x leaves`, row-major: `|c_I - c_J|`.
    centroid_distances: Vec<f32>,
    leaves: usize,
    /// Bound on the rounding of one entry of `dots`.
    dot_error: f32,
}

impl LeafProjections {
    fn new(sorted: &[f32], dim: usize, leaves: &[(usize, usize)], scale: f32) -> Self {
        let count = leaves.len();
        let mut centroids = vec![0.0f32; count * dim];
        for (c, &(start, end)) in centroids.chunks_exact_mut(dim).zip(leaves) {
            let rows = sorted.get(start * dim..end * dim).unwrap_or(&[]);
            let mut sum = vec![0.0f64; dim];
            for row in rows.chunks_exact(dim) {
                for (s, &x) in sum.iter_mut().zip(row) {
                    *s += f64::from(x);
                }
            }
            let size = (end - start).max(1) as f64;
            for (dst, s) in c.iter_mut().zip(sum) {
                *dst = (s / size) as f32;
            }
        }
        let n = sorted.len() / dim;
        let mut dots = vec![0.0f32; n * count];
        gram_block(sorted, &centroids, dim, &mut dots);
        let centroid_distances = (0..count * count)
            .map(|k| {
                let (a, b) = (k / count, k % count);
                let ca = centroids.get(a * dim..(a + 1) * dim).unwrap_or(&[]);
                let cb = centroids.get(b * dim..(b + 1) * dim).unwrap_or(&[]);
                sq_dist_f32(ca, cb).sqrt()
            })
            .collect();
        let max_centroid = centroids
            .chunks_exact(dim)
            .map(|c| dot_f32(c, c).sqrt())
            .fold(0.0f32, f32::max);
        Self {
            dots,
            centroid_distances,
            leaves: count,
            dot_error: 4.0 * (dim as f32 + 4.0) * f32::EPSILON * scale * max_centroid,
        }
    }

    /// Distance between the centroids of leaves `i` and `j`.
    fn centroid_distance(&self, i: usize, j: usize) -> f32 {
        self.centroid_distances
            .get(i * self.leaves + j)
            .copied()
            .unwrap_or(0.0)
    }

    /// Whether every point of leaf `i` (rows `ri`) is further than `reach` from every point
    /// of leaf `j` (rows `rj`) along the direction joining their centroids; then no pair
    /// across them is within `reach`, since a projection never lengthens a distance.
    fn separated(
        &self,
        i: usize,
        j: usize,
        ri: (usize, usize),
        rj: (usize, usize),
        reach: f32,
    ) -> bool {
        let length = self
            .centroid_distances
            .get(i * self.leaves + j)
            .copied()
            .unwrap_or(0.0);
        // The centroids project inside their leaves' ranges, so the gap between the ranges
        // is at most the centroid distance: close leaves need no per-point check.
        if length.is_nan() || length <= reach {
            return false;
        }
        // x . (c_j - c_i) for the rows of one leaf.
        let along = |(start, end): (usize, usize)| {
            (start..end).map(move |x| {
                let at = |leaf: usize| {
                    self.dots
                        .get(x * self.leaves + leaf)
                        .copied()
                        .unwrap_or(0.0)
                };
                at(j) - at(i)
            })
        };
        let max_i = along(ri).fold(f32::NEG_INFINITY, f32::max);
        let min_j = along(rj).fold(f32::INFINITY, f32::min);
        (min_j - max_i - 4.0 * self.dot_error) / length > reach
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_cover_every_point_once_and_keep_blobs_whole() {
        // Four far-apart blobs of 100 points in 3-D: every leaf holds one blob only.
        let mut data = Vec::new();
        for i in 0..400 {
            let blob = (i % 4) as f32 * 50.0;
            let wiggle = ((i * 37) % 101) as f32 * 0.01;
            data.extend([blob + wiggle, blob - wiggle, wiggle * 0.5]);
        }
        let points = PointSet::from_rows(data, 3, 400);
        let tree = Tree::new(&points);
        let mut seen: Vec<u32> = tree.order().to_vec();
        seen.sort_unstable();
        assert_eq!(seen, (0..400).collect::<Vec<u32>>());
        let mut covered = 0;
        for l in 0..tree.leaf_count() {
            let (start, end) = tree.leaf(l);
            assert!(end - start <= LEAF && end > start);
            assert_eq!(start, covered);
            covered = end;
            let blobs: std::collections::BTreeSet<usize> =
                (start..end).map(|p| tree.point(p) % 4).collect();
            assert_eq!(blobs.len(), 1);
        }
        assert_eq!(covered, 400);
        // Leaves of different blobs are separated by far more than 10; of one blob, not.
        for a in 0..tree.leaf_count() {
            for b in a + 1..tree.leaf_count() {
                let same = tree.point(tree.leaf(a).0) % 4 == tree.point(tree.leaf(b).0) % 4;
                assert_eq!(tree.separated(a, b, tree.reach(10.0)), !same);
            }
        }
        assert_eq!(tree.nearest_leaves(2)[0], 2);
    }
}
