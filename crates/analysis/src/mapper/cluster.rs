//! Clustering inside one cover element: DBSCAN (fixed or automatic `eps`) and single linkage
//! cut at the first gap of the merge-distance histogram. Both return clusters as ascending
//! point indices, in order of their smallest member.

use super::distance::{PointSet, gram_block};
use super::knn::kth_distances_in;
use super::radius::{NeighbourBlock, Neighbourhoods};
use super::tree::Tree;

/// Disjoint sets over `0..n` with path halving; the root of a set is its smallest element.
#[derive(Debug, Clone)]
struct DisjointSets {
    parent: Vec<u32>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        loop {
            let Some(&p) = self.parent.get(x as usize) else {
                return x;
            };
            if p == x {
                return x;
            }
            let grand = self.parent.get(p as usize).copied().unwrap_or(p);
            if let Some(slot) = self.parent.get_mut(x as usize) {
                *slot = grand;
            }
            x = grand;
        }
    }

    /// Joins the set of root `root` with the set of `b`; returns the new root.
    fn union_roots(&mut self, root: u32, b: u32) -> u32 {
        let rb = self.find(b);
        let (low, high) = (root.min(rb), root.max(rb));
        if let Some(slot) = self.parent.get_mut(high as usize) {
            *slot = low;
        }
        low
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        let (low, high) = (ra.min(rb), ra.max(rb));
        if let Some(slot) = self.parent.get_mut(high as usize) {
            *slot = low;
        }
    }

    /// Groups `members` (ascending) by set; groups come in order of their smallest member.
    fn groups(&mut self, members: impl IntoIterator<Item = u32>) -> Vec<Vec<u32>> {
        let mut slot_of_root: Vec<Option<u32>> = vec![None; self.parent.len()];
        let mut groups: Vec<Vec<u32>> = Vec::new();
        for m in members {
            let root = self.find(m);
            let Some(slot) = slot_of_root.get_mut(root as usize) else {
                continue;
            };
            let index = *slot.get_or_insert(groups.len() as u32);
            match groups.get_mut(index as usize) {
                Some(group) => group.push(m),
                None => groups.push(vec![m]),
            }
        }
        groups
    }
}

/// Most distinct sets [`unsettled`] looks at before it gives up.
const MAX_SETS: usize = 8;

/// Splits the points of the position ranges `ri` and `rj` into settled ones (known to be
/// core, in the set most of the known core points of both ranges are in) and the others,
/// listed in `fresh_i` and `fresh_j`. Returns `false` (lists unusable) when the core points
/// are spread over more than [`MAX_SETS`] sets.
fn unsettled(
    counts: &[usize],
    sets: &mut DisjointSets,
    min_samples: usize,
    ranges: [(usize, usize); 2],
    roots: &mut Vec<Option<u32>>,
    fresh: [&mut Vec<usize>; 2],
) -> bool {
    roots.clear();
    let mut tally: Vec<(u32, usize)> = Vec::new();
    for &(start, end) in &ranges {
        for p in start..end {
            let root = counts
                .get(p)
                .is_some_and(|&c| c >= min_samples)
                .then(|| sets.find(p as u32));
            if let Some(r) = root {
                if let Some((_, n)) = tally.iter_mut().find(|(t, _)| *t == r) {
                    *n += 1;
                } else if tally.len() < MAX_SETS {
                    tally.push((r, 1));
                } else {
                    return false;
                }
            }
            roots.push(root);
        }
    }
    let majority = tally
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|&(r, _)| r);
    let mut positions = ranges
        .iter()
        .flat_map(|&(start, end)| start..end)
        .zip(roots.iter());
    for (&(start, end), list) in ranges.iter().zip(fresh) {
        list.clear();
        for (p, root) in positions.by_ref().take(end - start) {
            if root.is_none() || *root != majority {
                list.push(p);
            }
        }
    }
    true
}

/// DBSCAN as scikit-learn defines it: a point is core when at least `min_samples` points
/// (itself included) lie within `eps`; clusters are the connected core points plus the
/// non-core points within `eps` of one of them (a border point joins the cluster whose
/// smallest core point comes first, as scikit-learn's scan order does); the rest is noise.
#[cfg(test)]
pub(crate) fn dbscan(points: &PointSet, eps: f32, min_samples: usize) -> Vec<Vec<u32>> {
    dbscan_in(points, &Tree::new(points), eps, min_samples)
}

/// [`dbscan`] with the tree of `points` already built.
pub(crate) fn dbscan_in(
    points: &PointSet,
    tree: &Tree,
    eps: f32,
    min_samples: usize,
) -> Vec<Vec<u32>> {
    let n = points.len();
    if n == 0 || n < min_samples {
        return Vec::new();
    }
    // Everything below works on positions in the tree's order. Leaf pairs come diagonal
    // first, then nearest first. For a pair of leaves, the points known to be core (count so
    // far at least `min_samples`) in the set most of them are in are settled: their mutual
    // pairs can only add counts to core points and unions within that set, so only the
    // pairs with an unsettled point are checked (none at all when every point is settled).
    // Pairs with a point not (yet) known to be core wait until the counts are final.
    let hood = Neighbourhoods::new(points, tree, eps);
    let mut counts = vec![1usize; n];
    let mut sets = DisjointSets::new(n);
    let mut pending: Vec<(u32, u32)> = Vec::new();
    let mut gram = Vec::new();
    let mut block = NeighbourBlock::default();
    let mut fresh_i: Vec<usize> = Vec::new();
    let mut fresh_j: Vec<usize> = Vec::new();
    // A pair found within `eps`: count it, and join the sets if both points are core by now
    // (otherwise decide when the counts are final).
    let record = |counts: &mut [usize],
                  sets: &mut DisjointSets,
                  pending: &mut Vec<(u32, u32)>,
                  a: usize,
                  b: usize| {
        let mut core = true;
        for p in [a, b] {
            if let Some(c) = counts.get_mut(p) {
                *c += 1;
                core &= *c >= min_samples;
            }
        }
        if core {
            sets.union(a as u32, b as u32);
        } else {
            pending.push((a as u32, b as u32));
        }
    };
    let mut roots: Vec<Option<u32>> = Vec::new();
    for (li, lj) in hood.candidate_pairs() {
        let (ri, rj) = (tree.leaf(li), tree.leaf(lj));
        if li != lj
            && unsettled(
                &counts,
                &mut sets,
                min_samples,
                [ri, rj],
                &mut roots,
                [&mut fresh_i, &mut fresh_j],
            )
        {
            // Pairs of settled points can only add counts to core points and unions within
            // one set: check only the pairs with an unsettled point, unless they are so
            // many that the whole block is cheaper.
            let (size_i, size_j) = (ri.1 - ri.0, rj.1 - rj.0);
            if 4 * (fresh_i.len() * size_j + fresh_j.len() * size_i) <= size_i * size_j {
                for &a in &fresh_i {
                    for b in rj.0..rj.1 {
                        if hood.within(a, b) {
                            record(&mut counts, &mut sets, &mut pending, a, b);
                        }
                    }
                }
                for &b in &fresh_j {
                    for a in (ri.0..ri.1).filter(|a| fresh_i.binary_search(a).is_err()) {
                        if hood.within(a, b) {
                            record(&mut counts, &mut sets, &mut pending, a, b);
                        }
                    }
                }
                continue;
            }
        }
        hood.compute_block(li, lj, &mut gram, &mut block);
        let words = block.words.max(1);
        for (r, row) in block.masks.chunks_exact(words).enumerate() {
            if let Some(c) = counts.get_mut(block.rows.0 + r) {
                *c += row.iter().map(|w| w.count_ones() as usize).sum::<usize>();
            }
        }
        block.for_each_pair(|_, b| {
            if let Some(c) = counts.get_mut(b) {
                *c += 1;
            }
        });
        let core = |p: usize| counts.get(p).is_some_and(|&c| c >= min_samples);
        for (r, row) in block.masks.chunks_exact(words).enumerate() {
            let a = block.rows.0 + r;
            let mut root = core(a).then(|| sets.find(a as u32));
            for (w, &word) in row.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let b = block.cols.0 + w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    match root {
                        Some(ra) if core(b) => root = Some(sets.union_roots(ra, b as u32)),
                        _ => pending.push((a as u32, b as u32)),
                    }
                }
            }
        }
    }
    let core: Vec<bool> = counts.iter().map(|&c| c >= min_samples).collect();
    let is_core = |p: usize| core.get(p).copied().unwrap_or(false);
    // (border position, core neighbour position)
    let mut border: Vec<(u32, u32)> = Vec::new();
    for &(a, b) in &pending {
        match (is_core(a as usize), is_core(b as usize)) {
            (true, true) => sets.union(a, b),
            (true, false) => border.push((b, a)),
            (false, true) => border.push((a, b)),
            (false, false) => {}
        }
    }

    // Clusters are numbered by their smallest core point (point index, not position).
    let mut smallest: Vec<u32> = vec![u32::MAX; n];
    for (position, &point) in tree.order().iter().enumerate() {
        if is_core(position) {
            let root = sets.find(position as u32) as usize;
            if let Some(s) = smallest.get_mut(root) {
                *s = (*s).min(point);
            }
        }
    }
    let mut roots: Vec<(u32, usize)> = smallest
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != u32::MAX)
        .map(|(root, &s)| (s, root))
        .collect();
    roots.sort_unstable();
    let mut label_of_root: Vec<Option<u32>> = vec![None; n];
    for (label, &(_, root)) in roots.iter().enumerate() {
        if let Some(slot) = label_of_root.get_mut(root) {
            *slot = Some(label as u32);
        }
    }
    let mut label: Vec<Option<u32>> = (0..n)
        .map(|position| {
            if is_core(position) {
                let root = sets.find(position as u32) as usize;
                label_of_root.get(root).copied().flatten()
            } else {
                None
            }
        })
        .collect();
    for &(b, c) in &border {
        let Some(candidate) = label.get(c as usize).copied().flatten() else {
            continue;
        };
        if is_core(b as usize) {
            continue;
        }
        if let Some(slot) = label.get_mut(b as usize) {
            *slot = Some(slot.map_or(candidate, |l| l.min(candidate)));
        }
    }
    let mut position_of = vec![0usize; n];
    for (position, &point) in tree.order().iter().enumerate() {
        if let Some(slot) = position_of.get_mut(point as usize) {
            *slot = position;
        }
    }
    let mut clusters: Vec<Vec<u32>> = vec![Vec::new(); roots.len()];
    for (point, &position) in position_of.iter().enumerate() {
        let l = label.get(position).copied().flatten();
        if let Some(cluster) = l.and_then(|l| clusters.get_mut(l as usize)) {
            cluster.push(point as u32);
        }
    }
    clusters
}

/// The automatic DBSCAN radius of one element: sort the distances of every point to its
/// `max(min_samples - 1, 1)`-th nearest other point (the distance at which it becomes a core
/// point), scale the sorted curve to the unit square and take the value at its knee, the
/// point furthest from the chord joining its ends (first such point on ties). A flat curve
/// gives its common value. Fewer than two points give 0.
pub(crate) fn auto_eps(points: &PointSet, tree: &Tree, min_samples: usize) -> f32 {
    let n = points.len();
    if n < 2 {
        return 0.0;
    }
    let k = min_samples.saturating_sub(1).clamp(1, n - 1);
    let Some(mut curve) = kth_distances_in(points, tree, k) else {
        return 0.0;
    };
    curve.sort_by(f32::total_cmp);
    knee(&curve)
}

/// The value at the knee of an ascending curve (see [`auto_eps`]).
pub(crate) fn knee(curve: &[f32]) -> f32 {
    let (Some(&first), Some(&last)) = (curve.first(), curve.last()) else {
        return 0.0;
    };
    let span = f64::from(last) - f64::from(first);
    if curve.len() < 3 || span.is_nan() || span <= 0.0 {
        return last;
    }
    let steps = (curve.len() - 1) as f64;
    let mut best = (f64::NEG_INFINITY, last);
    for (i, &v) in curve.iter().enumerate() {
        let x = i as f64 / steps;
        let y = (f64::from(v) - f64::from(first)) / span;
        let distance = (x - y).abs();
        if distance > best.0 {
            best = (distance, v);
        }
    }
    best.1
}

/// Single-linkage clustering cut by the original mapper rule: the minimum spanning tree's
/// edge lengths (the merge distances) go into `bins` equal bins over `[min, max]`; merges
/// below the first empty bin are kept, the rest are cut. No empty bin keeps one cluster.
pub(crate) fn single_linkage(points: &PointSet, bins: usize) -> Vec<Vec<u32>> {
    let n = points.len();
    if n == 0 {
        return Vec::new();
    }
    let edges = minimum_spanning_tree(points);
    let cut = first_gap(&edges.iter().map(|e| e.0).collect::<Vec<_>>(), bins);
    let mut sets = DisjointSets::new(n);
    for &(length, a, b) in &edges {
        if cut.is_none_or(|c| length < c) {
            sets.union(a, b);
        }
    }
    sets.groups(0..n as u32)
}

/// Prim's algorithm on the complete Euclidean graph, `O(n^2)` distances: edges as
/// `(length, a, b)`. The points not yet in the tree are kept as one compact matrix, so each
/// step's distances to the newest tree point are one matrix-vector product (Gram identity on
/// mean-centred rows, `f32`); the chosen edges' lengths are then computed exactly.
fn minimum_spanning_tree(points: &PointSet) -> Vec<(f32, u32, u32)> {
    let n = points.len();
    let dim = points.dim();
    let mut rows: Vec<f32> = points.centred_rows().get(dim..).unwrap_or(&[]).to_vec();
    let mut ids: Vec<u32> = (1..n as u32).collect();
    let mut norms: Vec<f32> = points.norms().get(1..).unwrap_or(&[]).to_vec();
    let mut best = vec![f32::INFINITY; n.saturating_sub(1)];
    let mut from = vec![0u32; n.saturating_sub(1)];
    let mut products: Vec<f32> = Vec::new();
    let mut edges = Vec::with_capacity(n.saturating_sub(1));
    let mut newest = 0u32;
    while !ids.is_empty() {
        let row = points.centred_row(newest as usize);
        let newest_norm = points.norm(newest as usize);
        products.resize(ids.len(), 0.0);
        gram_block(&rows, row, dim, &mut products);
        let mut pick: Option<(usize, f32, u32)> = None;
        let state = best.iter_mut().zip(from.iter_mut()).zip(&products);
        for (slot, (((b, f), &g), (&id, &norm))) in state.zip(ids.iter().zip(&norms)).enumerate() {
            let d2 = (norm + newest_norm - 2.0 * g).max(0.0);
            if d2 < *b {
                *b = d2;
                *f = newest;
            }
            if pick.is_none_or(|(_, bd, bid)| *b < bd || (*b == bd && id < bid)) {
                pick = Some((slot, *b, id));
            }
        }
        let Some((slot, _, id)) = pick else {
            break;
        };
        let parent = from.get(slot).copied().unwrap_or(0);
        let length = points.exact_sq_dist(parent as usize, id as usize).sqrt() as f32;
        edges.push((length, parent.min(id), parent.max(id)));
        newest = id;
        // Remove the picked point: the last one takes its place everywhere.
        let last = ids.len() - 1;
        if slot != last {
            rows.copy_within(last * dim..(last + 1) * dim, slot * dim);
        }
        rows.truncate(last * dim);
        ids.swap_remove(slot);
        norms.swap_remove(slot);
        best.swap_remove(slot);
        from.swap_remove(slot);
    }
    edges
}

/// The lower edge of the first empty bin of a `bins`-bin histogram of `lengths` over their
/// `[min, max]`, or `None` when no bin is empty (or all lengths are equal).
pub(crate) fn first_gap(lengths: &[f32], bins: usize) -> Option<f32> {
    let min = lengths.iter().copied().fold(f32::INFINITY, f32::min);
    let max = lengths.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if bins == 0 || max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let (lo, span) = (f64::from(min), f64::from(max) - f64::from(min));
    let mut counts = vec![0usize; bins];
    for &l in lengths {
        let bin = (((f64::from(l) - lo) / span) * bins as f64) as usize;
        if let Some(c) = counts.get_mut(bin.min(bins - 1)) {
            *c += 1;
        }
    }
    let empty = counts.iter().position(|&c| c == 0)?;
    // Everything below the empty bin's lower edge merges; nothing lies inside the bin.
    Some((lo + span * empty as f64 / bins as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(rows: &[&[f32]]) -> PointSet {
        let dim = rows[0].len();
        PointSet::from_rows(
            rows.iter().flat_map(|r| r.iter().copied()).collect(),
            dim,
            rows.len(),
        )
    }

    #[test]
    fn dbscan_hand_example() {
        // Chain 0-1-2 (spacing 1), point 3 within 1 of point 2 only, point 4 far away,
        // pair 5-6 at distance 0.5.
        let p = points(&[
            &[0.0, 0.0],
            &[1.0, 0.0],
            &[2.0, 0.0],
            &[2.0, 1.0],
            &[10.0, 10.0],
            &[20.0, 0.0],
            &[20.0, 0.5],
        ]);
        // eps 1, min_samples 3: cores are 1 (0,1,2) and 2 (1,2,3); 0 and 3 are border;
        // 4 is noise; 5 and 6 have only 2 points each: noise.
        assert_eq!(dbscan(&p, 1.0, 3), vec![vec![0, 1, 2, 3]]);
        // min_samples 2: 5-6 form a cluster too; 4 stays alone (noise).
        assert_eq!(dbscan(&p, 1.0, 2), vec![vec![0, 1, 2, 3], vec![5, 6]]);
        // min_samples 1: every point is a cluster member, 4 alone.
        assert_eq!(
            dbscan(&p, 1.0, 1),
            vec![vec![0, 1, 2, 3], vec![4], vec![5, 6]]
        );
        // eps just below 1 breaks the chain.
        assert_eq!(dbscan(&p, 0.99, 2), vec![vec![5, 6]]);
        // Fewer points than min_samples: nothing.
        assert!(dbscan(&p, 100.0, 8).is_empty());
    }

    #[test]
    fn dbscan_border_point_joins_first_cluster() {
        // Two dense groups with a border point 4 in reach of both: cluster of core 0 wins.
        let p = points(&[
            &[0.0],
            &[0.1],
            &[0.2],
            &[0.3],
            &[1.0],
            &[1.7],
            &[1.8],
            &[1.9],
            &[2.0],
        ]);
        // Point 4 (at 1.0) sees 0.3 and 1.7 within 0.75: only 3 points, so it is border.
        assert_eq!(
            dbscan(&p, 0.75, 4),
            vec![vec![0, 1, 2, 3, 4], vec![5, 6, 7, 8]]
        );
    }

    #[test]
    fn dbscan_over_many_leaves() {
        // Three 1-D chains of 150 points (several tree leaves, whose blocks get skipped once
        // settled), spacing 0.1, 5 apart at the ends, plus an isolated point.
        let mut rows: Vec<Vec<f32>> = (0..450)
            .map(|i| vec![(i / 150) as f32 * 20.0 + (i % 150) as f32 * 0.1, 0.0])
            .collect();
        rows.push(vec![100.0, 0.0]);
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let p = points(&refs);
        let clusters = dbscan(&p, 0.15, 3);
        let want: Vec<Vec<u32>> = (0..3).map(|c| (c * 150..(c + 1) * 150).collect()).collect();
        assert_eq!(clusters, want);
    }

    #[test]
    fn knee_of_a_hand_curve() {
        // Flat then steep: the knee is at the last flat value.
        assert_eq!(knee(&[1.0, 1.0, 1.1, 1.2, 5.0, 9.0]), 1.2);
        assert_eq!(knee(&[2.0, 2.0, 2.0]), 2.0);
        assert_eq!(knee(&[]), 0.0);
    }

    #[test]
    fn auto_eps_separates_blobs() {
        let mut rows: Vec<Vec<f32>> = Vec::new();
        // Spacing 0.125 is exact in binary: interior points have their second neighbour
        // at 0.125, the four end points at 0.25.
        for i in 0..20 {
            rows.push(vec![i as f32 * 0.125, 0.0]);
            rows.push(vec![100.0 + i as f32 * 0.125, 0.0]);
        }
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let p = points(&refs);
        let eps = auto_eps(&p, &Tree::new(&p), 3);
        assert_eq!(eps, 0.125);
        assert_eq!(dbscan(&p, eps, 3).len(), 2);
    }

    #[test]
    fn first_gap_hand_example() {
        // Lengths 1, 1.5, 2 then 10: over [1, 10] with 4 bins (width 2.25) the bins hold
        // 3, 0, 0, 1: the cut is the lower edge of bin 1, 3.25.
        assert_eq!(first_gap(&[1.0, 1.5, 2.0, 10.0], 4), Some(3.25));
        // No empty bin.
        assert_eq!(first_gap(&[1.0, 2.0, 3.0, 4.0], 4), None);
        assert_eq!(first_gap(&[2.0, 2.0], 4), None);
        assert_eq!(first_gap(&[], 4), None);
    }

    #[test]
    fn single_linkage_cuts_at_the_gap() {
        // Two chains of spacing 1 and 1.5, 10 apart: MST lengths 1, 1, 1.5, 1.5, 10.
        let p = points(&[&[0.0], &[1.0], &[2.0], &[12.0], &[13.5], &[15.0]]);
        assert_eq!(single_linkage(&p, 4), vec![vec![0, 1, 2], vec![3, 4, 5]]);
        // One bin: no gap, one cluster.
        assert_eq!(single_linkage(&p, 1), vec![vec![0, 1, 2, 3, 4, 5]]);
        // Equal spacing: no gap.
        let q = points(&[&[0.0], &[1.0], &[2.0]]);
        assert_eq!(single_linkage(&q, 10), vec![vec![0, 1, 2]]);
        assert_eq!(single_linkage(&points(&[&[3.0]]), 10), vec![vec![0]]);
    }

    #[test]
    fn minimum_spanning_tree_lengths() {
        let p = points(&[&[0.0, 0.0], &[3.0, 4.0], &[3.0, 0.0]]);
        let mut lengths: Vec<f32> = minimum_spanning_tree(&p).iter().map(|e| e.0).collect();
        lengths.sort_by(f32::total_cmp);
        assert_eq!(lengths, vec![3.0, 4.0]);
    }
}
