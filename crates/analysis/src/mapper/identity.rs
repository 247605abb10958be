//! Stable node identities across epochs: nodes are matched to the previous graph's nodes by
//! member overlap, so the dashboard's layout does not jump when scrubbing.

use std::cmp::Ordering;

use actiscope_protocol::mapper::MapperGraph;

/// Overlap of one next node with one previous node.
#[derive(Debug, Clone, Copy)]
struct Overlap {
    next: usize,
    previous: usize,
    previous_id: u32,
    common: u64,
    union: u64,
}

impl Overlap {
    /// Larger Jaccard first (compared exactly as fractions), then more shared members, then
    /// the smaller previous id, then the earlier next node.
    fn rank(&self, other: &Self) -> Ordering {
        (other.common * self.union)
            .cmp(&(self.common * other.union))
            .then(other.common.cmp(&self.common))
            .then(self.previous_id.cmp(&other.previous_id))
            .then(self.next.cmp(&other.next))
    }
}

/// Gives `next`'s nodes identities that persist from `previous`.
///
/// Without a previous graph, ids are `0..n` in node order and no node has a parent.
/// Otherwise every pair of a next and a previous node sharing members is ranked by the
/// Jaccard index of their member sets (larger first; ties: more shared members, smaller
/// previous id, earlier next node) and pairs are matched greedily, one to one. A matched node
/// inherits the previous node's id and has it as parent; an unmatched node gets a fresh id
/// (counting up from the largest previous id + 1, in node order) and as parent the id of the
/// previous node it overlaps best by the same ranking, or `None` if it overlaps none.
pub fn carry_identities(previous: Option<&MapperGraph>, next: &mut MapperGraph) {
    let Some(previous) = previous else {
        for (i, node) in next.nodes.iter_mut().enumerate() {
            node.id = i as u32;
            node.parent = None;
        }
        return;
    };
    let instance_count = previous
        .nodes
        .iter()
        .chain(&next.nodes)
        .filter_map(|n| n.members.last())
        .map(|&m| m as usize + 1)
        .max()
        .unwrap_or(0);
    // Previous nodes of every instance.
    let mut owners: Vec<Vec<u32>> = vec![Vec::new(); instance_count];
    for (p, node) in previous.nodes.iter().enumerate() {
        for &m in &node.members {
            if let Some(list) = owners.get_mut(m as usize) {
                list.push(p as u32);
            }
        }
    }
    let mut overlaps: Vec<Overlap> = Vec::new();
    let mut shared = vec![0u64; previous.nodes.len()];
    let mut touched: Vec<u32> = Vec::new();
    for (j, node) in next.nodes.iter().enumerate() {
        for &m in &node.members {
            for &p in owners.get(m as usize).map_or(&[][..], Vec::as_slice) {
                if let Some(count) = shared.get_mut(p as usize) {
                    if *count == 0 {
                        touched.push(p);
                    }
                    *count += 1;
                }
            }
        }
        touched.sort_unstable();
        for &p in &touched {
            let Some(prev) = previous.nodes.get(p as usize) else {
                continue;
            };
            let common = shared.get(p as usize).copied().unwrap_or(0);
            overlaps.push(Overlap {
                next: j,
                previous: p as usize,
                previous_id: prev.id,
                common,
                union: (prev.members.len() + node.members.len()) as u64 - common,
            });
            if let Some(count) = shared.get_mut(p as usize) {
                *count = 0;
            }
        }
        touched.clear();
    }

    // Best previous node of every next node (the parent of unmatched ones).
    let mut best: Vec<Option<Overlap>> = vec![None; next.nodes.len()];
    for o in &overlaps {
        if let Some(slot) = best.get_mut(o.next)
            && slot.is_none_or(|b| o.rank(&b) == Ordering::Less)
        {
            *slot = Some(*o);
        }
    }
    overlaps.sort_by(Overlap::rank);
    let mut matched: Vec<Option<u32>> = vec![None; next.nodes.len()];
    let mut taken = vec![false; previous.nodes.len()];
    for o in &overlaps {
        let (Some(slot), Some(used)) = (matched.get_mut(o.next), taken.get_mut(o.previous)) else {
            continue;
        };
        if slot.is_none() && !*used {
            *slot = Some(o.previous_id);
            *used = true;
        }
    }

    let mut fresh = previous
        .nodes
        .iter()
        .map(|n| n.id.saturating_add(1))
        .max()
        .unwrap_or(0);
    for ((node, matched), best) in next.nodes.iter_mut().zip(matched).zip(best) {
        if let Some(id) = matched {
            node.id = id;
            node.parent = Some(id);
        } else {
            node.id = fresh;
            fresh = fresh.saturating_add(1);
            node.parent = best.map(|b| b.previous_id);
        }
    }
}
