//! k-nearest-neighbour distances, exact: the k-th smallest `f64` distance of the original
//! rows, found with `f32` Gram blocks over a [`Tree`] and exact re-checks.

use super::distance::{PointSet, gram_block};
use super::tree::Tree;

/// Rows per block of the full scan (each block holds `FULL_BLOCK x n` values).
const FULL_BLOCK: usize = 64;

/// Largest `k` searched with the tree (larger ones use the full scan).
const MAX_TREE_K: usize = 64;

/// Distance from every point to its `k`-th nearest other point (`k >= 1`; ties and
/// duplicates count), decided exactly in `f64`. Returns `None` when `k` is 0 or not below
/// the number of points.
pub(crate) fn kth_distances(points: &PointSet, k: usize) -> Option<Vec<f32>> {
    kth_distances_in(points, &Tree::new(points), k)
}

/// [`kth_distances`] with the tree of `points` already built.
///
/// Leaf by leaf, every row keeps its `k` smallest exact squared distances so far and an
/// upper bound on its k-th (first from the approximate k-th of its own leaf plus the rounding
/// bound, then from the exact list). Other leaves come nearest first; a leaf further from
/// this one (by a projection) than every row's bound is skipped, and inside a block only the
/// points whose approximate distance is within the rounding bound of a row's bound get an
/// exact distance. Every true k-nearest neighbour passes both filters, so the result is
/// exact.
pub(crate) fn kth_distances_in(points: &PointSet, tree: &Tree, k: usize) -> Option<Vec<f32>> {
    let n = points.len();
    if k == 0 || k >= n {
        return None;
    }
    if k > MAX_TREE_K || tree.leaf_count() < 2 {
        return Some(kth_distances_full(points, k));
    }
    let factor = points.tolerance_factor();
    let base_tol = factor * points.mean_sq();
    let scaled_high: Vec<f32> = tree
        .norms((0, n))
        .iter()
        .map(|&nb| nb * (1.0 - factor))
        .collect();
    let mut out = vec![0.0f32; n];
    let mut gram = Vec::new();
    let mut best: Vec<f64> = Vec::new();
    let mut filled: Vec<usize> = Vec::new();
    let mut upper: Vec<f32> = Vec::new();
    let mut scratch: Vec<f32> = Vec::new();
    for li in 0..tree.leaf_count() {
        let (i0, i1) = tree.leaf(li);
        let rows = i1 - i0;
        best.clear();
        best.resize(rows * k, f64::INFINITY);
        filled.clear();
        filled.resize(rows, 0);
        upper.clear();
        upper.resize(rows, f32::INFINITY);
        for lj in tree.nearest_leaves(li) {
            if lj != li {
                let widest = upper.iter().copied().fold(0.0f32, f32::max);
                if widest.is_finite() && tree.separated(li, lj, tree.reach(widest.sqrt())) {
                    continue;
                }
            }
            let (j0, j1) = tree.leaf(lj);
            tree.gram(li, lj, &mut gram);
            let norms_j = tree.norms((j0, j1));
            let high_j = scaled_high.get(j0..j1).unwrap_or(&[]);
            let max_nj = norms_j.iter().copied().fold(0.0f32, f32::max);
            let rows_state = best
                .chunks_exact_mut(k)
                .zip(filled.iter_mut())
                .zip(upper.iter_mut());
            for (r, ((row_best, row_filled), row_upper)) in rows_state.enumerate() {
                let i = i0 + r;
                let na = tree.norm(i);
                let Some(row) = gram.get(r * (j1 - j0)..(r + 1) * (j1 - j0)) else {
                    continue;
                };
                if lj == li && j1 - j0 > k {
                    // There are k points within their approximate distance plus the
                    // rounding bound: an upper bound on the k-th distance.
                    scratch.clear();
                    scratch.extend(norms_j.iter().zip(row).enumerate().map(|(c, (&nb, &g))| {
                        if j0 + c == i {
                            f32::INFINITY
                        } else {
                            na + nb - 2.0 * g
                        }
                    }));
                    let kth = *scratch.select_nth_unstable_by(k - 1, f32::total_cmp).1;
                    *row_upper = kth + base_tol + factor * (na + max_nj);
                }
                // Candidates: approximate distance within the bound plus the rounding bound.
                let high = *row_upper + base_tol - na * (1.0 - factor);
                for (c, (&g, &nh)) in row.iter().zip(high_j).enumerate() {
                    let j = j0 + c;
                    if nh - 2.0 * g <= high && j != i {
                        let d2 = points.exact_sq_dist(tree.point(i), tree.point(j));
                        insert_smallest(row_best, row_filled, d2);
                    }
                }
                if *row_filled == k
                    && let Some(&kth) = row_best.last()
                {
                    *row_upper = row_upper.min((kth as f32).next_up());
                }
            }
        }
        for (r, row_best) in best.chunks_exact(k).enumerate() {
            if let (Some(slot), Some(&kth)) = (out.get_mut(tree.point(i0 + r)), row_best.last()) {
                *slot = kth.max(0.0).sqrt() as f32;
            }
        }
    }
    Some(out)
}

/// Inserts `value` into the ascending `row` (its first `filled` entries are valid), keeping
/// the `row.len()` smallest values.
fn insert_smallest(row: &mut [f64], filled: &mut usize, value: f64) {
    let capacity = row.len();
    if *filled == capacity && row.last().is_none_or(|&last| value >= last) {
        return;
    }
    let valid = row.get(..*filled).unwrap_or(&[]);
    let at = valid.partition_point(|&x| x <= value);
    let end = (*filled).min(capacity.saturating_sub(1));
    if at < capacity {
        if at < end {
            row.copy_within(at..end, at + 1);
        }
        if let Some(slot) = row.get_mut(at) {
            *slot = value;
        }
        *filled = (*filled + 1).min(capacity);
    }
}

/// [`kth_distances`] by a full scan: every row's approximate distances to all points, the
/// approximate k-th, then exact distances for every candidate within two rounding bounds
/// of it (which holds every exact k-nearest neighbour).
fn kth_distances_full(points: &PointSet, k: usize) -> Vec<f32> {
    let n = points.len();
    let dim = points.dim();
    let factor = points.tolerance_factor();
    let mut out = Vec::with_capacity(n);
    let mut gram = vec![0.0f32; FULL_BLOCK * n];
    let mut scratch: Vec<f32> = Vec::with_capacity(n);
    let mut exact: Vec<f64> = Vec::new();
    for i0 in (0..n).step_by(FULL_BLOCK) {
        let i1 = (i0 + FULL_BLOCK).min(n);
        let a = points.centred_rows().get(i0 * dim..i1 * dim).unwrap_or(&[]);
        gram_block(a, points.centred_rows(), dim, &mut gram);
        for (ra, row) in gram.chunks_exact(n).take(i1 - i0).enumerate() {
            let i = i0 + ra;
            let ni = points.norm(i);
            scratch.clear();
            scratch.extend(
                points
                    .norms()
                    .iter()
                    .zip(row)
                    .enumerate()
                    .map(|(j, (&nj, &g))| {
                        if j == i {
                            f32::INFINITY
                        } else {
                            ni + nj - 2.0 * g
                        }
                    }),
            );
            let threshold = *scratch.select_nth_unstable_by(k - 1, f32::total_cmp).1;
            // Every exact k-nearest neighbour lies within two rounding bounds of the
            // approximate k-th distance.
            let tol = factor * (ni + points.max_norm() + points.mean_sq());
            let cut = threshold + 2.0 * tol;
            exact.clear();
            exact.extend(
                points
                    .norms()
                    .iter()
                    .zip(row)
                    .enumerate()
                    .filter(|&(j, (&nj, &g))| j != i && ni + nj - 2.0 * g <= cut)
                    .map(|(j, _)| points.exact_sq_dist(i, j)),
            );
            let kth = if exact.len() >= k {
                *exact.select_nth_unstable_by(k - 1, f64::total_cmp).1
            } else {
                f64::from(threshold.max(0.0))
            };
            out.push(kth.max(0.0).sqrt() as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapper::radius::tests::lcg_points;

    fn brute_kth(points: &PointSet, k: usize) -> Vec<f64> {
        (0..points.len())
            .map(|i| {
                let mut all: Vec<f64> = (0..points.len())
                    .filter(|&j| j != i)
                    .map(|j| points.exact_sq_dist(i, j).sqrt())
                    .collect();
                all.sort_by(f64::total_cmp);
                all[k - 1]
            })
            .collect()
    }

    #[test]
    fn kth_neighbours_match_brute_force() {
        // 600 points: several leaves, two groups; k up to past the tree's limit.
        let points = lcg_points(600, 5, 9, -30.0);
        for k in [1, 2, 7, 40, 70] {
            let got = kth_distances(&points, k).unwrap();
            let want = brute_kth(&points, k);
            for (i, (&d, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(d) - w).abs() <= 1e-6 * w.max(1.0),
                    "i {i} k {k}: {d} vs {w}"
                );
            }
            assert_eq!(got, kth_distances_full(&points, k), "k {k}");
        }
        // A small set (one leaf) goes through the full scan.
        let small = lcg_points(50, 3, 1, 0.0);
        let got = kth_distances(&small, 3).unwrap();
        for (&d, w) in got.iter().zip(brute_kth(&small, 3)) {
            assert!((f64::from(d) - w).abs() < 1e-6);
        }
        // Tiny leaves: many pruning decisions, all of which must be safe.
        for leaf in [3, 8, 24] {
            let tree = Tree::with_leaf_size(&points, leaf);
            for k in [1, 4, 9] {
                assert_eq!(
                    kth_distances_in(&points, &tree, k).unwrap(),
                    kth_distances_full(&points, k),
                    "leaf {leaf} k {k}"
                );
            }
        }
        assert!(kth_distances(&points, 0).is_none());
        assert!(kth_distances(&points, 600).is_none());
    }

    #[test]
    fn duplicates_are_at_distance_zero() {
        let mut data = Vec::new();
        for i in 0..300 {
            let v = (i / 3) as f32;
            data.extend([v, -v]);
        }
        let points = PointSet::from_rows(data, 2, 300);
        let got = kth_distances(&points, 2).unwrap();
        assert!(got.iter().all(|&d| d == 0.0));
        let got = kth_distances(&points, 3).unwrap();
        assert!(got.iter().all(|&d| (d - 2f32.sqrt()).abs() < 1e-6));
    }

    #[test]
    fn insert_keeps_the_smallest() {
        let mut row = [f64::INFINITY; 3];
        let mut filled = 0;
        for v in [5.0, 1.0, 4.0, 1.0, 9.0, 0.5] {
            insert_smallest(&mut row, &mut filled, v);
        }
        assert_eq!((row, filled), ([0.5, 1.0, 1.0], 3));
    }
}
