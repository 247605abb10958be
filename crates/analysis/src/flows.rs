//! Flows (APD paper, section 3): instances grouped by their patterns over a run of consecutive
//! layers. Strength = size; purity = share of the most frequent predicted label. Fig. 3 bins
//! them by log-strength and purity, counting all and misclassified instances.

use actiscope_protocol::apd::{Flow, FlowHistogram, FlowTable};

use crate::hash::FxHashMap;
use crate::patterns::LayerPatterns;

/// Errors computing flows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The layer range is empty or outside the network.
    #[error("layers {first}..={last} are not a run of the network's {layer_count} hidden layers")]
    LayerRange {
        /// First layer asked for.
        first: usize,
        /// Last layer asked for.
        last: usize,
        /// Hidden layers available.
        layer_count: usize,
    },
    /// Inputs disagree on the number of instances.
    #[error("inputs disagree on the number of instances")]
    InstanceCount,
}

/// Purity bin edges used by [`flow_table`]: five bins as in the paper's Fig. 3 axis.
pub const PURITY_EDGES: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];

/// Groups instances by their patterns in hidden layers `first..=last` (0-based) and builds
/// the histograms. The paper's choice is the last two hidden layers.
pub fn flow_table(
    layers: &[LayerPatterns],
    first: usize,
    last: usize,
    predictions: &[u32],
    labels: &[u32],
) -> Result<FlowTable, FlowError> {
    let range =
        layers
            .get(first..=last)
            .filter(|_| first <= last)
            .ok_or(FlowError::LayerRange {
                first,
                last,
                layer_count: layers.len(),
            })?;
    let n = predictions.len();
    if labels.len() != n || range.iter().any(|l| l.ids.len() != n) {
        return Err(FlowError::InstanceCount);
    }
    let mut groups: FxHashMap<Vec<u32>, Vec<u32>> = FxHashMap::default();
    for instance in 0..n {
        let key: Vec<u32> = range
            .iter()
            .map(|l| l.ids.get(instance).copied().unwrap_or(0))
            .collect();
        groups
            .entry(key)
            .or_default()
            .push(u32::try_from(instance).unwrap_or(u32::MAX));
    }
    let mut flows: Vec<Flow> = groups
        .into_iter()
        .map(|(pattern_ids, instances)| summarize(pattern_ids, instances, predictions, labels))
        .collect();
    flows.sort_by(|a, b| {
        b.strength
            .cmp(&a.strength)
            .then_with(|| a.pattern_ids.cmp(&b.pattern_ids))
    });
    let histogram = histogram(&flows);
    Ok(FlowTable {
        first_layer: u32::try_from(first).unwrap_or(u32::MAX),
        last_layer: u32::try_from(last).unwrap_or(u32::MAX),
        flows,
        histogram,
    })
}

fn summarize(
    pattern_ids: Vec<u32>,
    instances: Vec<u32>,
    predictions: &[u32],
    labels: &[u32],
) -> Flow {
    let mut votes: FxHashMap<u32, u32> = FxHashMap::default();
    let mut errors = 0;
    for &i in &instances {
        let prediction = predictions.get(i as usize).copied().unwrap_or(0);
        *votes.entry(prediction).or_insert(0) += 1;
        errors += u32::from(labels.get(i as usize) != Some(&prediction));
    }
    let (majority_prediction, top) = votes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .unwrap_or((0, 0));
    let strength = u32::try_from(instances.len()).unwrap_or(u32::MAX);
    Flow {
        pattern_ids,
        purity: if strength == 0 {
            0.0
        } else {
            top as f32 / strength as f32
        },
        strength,
        majority_prediction,
        errors,
        instances,
    }
}

/// Index of the log2 strength bin: 1 -> 0, 2..3 -> 1, 4..7 -> 2, ...
pub fn strength_bin(strength: u32) -> usize {
    (u32::BITS - strength.max(1).leading_zeros() - 1) as usize
}

/// Index of the purity bin in [`PURITY_EDGES`]; 1.0 falls in the last bin.
pub fn purity_bin(purity: f32) -> usize {
    let bins = PURITY_EDGES.len() - 1;
    ((purity.clamp(0.0, 1.0) * bins as f32) as usize).min(bins - 1)
}

fn histogram(flows: &[Flow]) -> FlowHistogram {
    let max_strength = flows.iter().map(|f| f.strength).max().unwrap_or(1);
    let strength_bins = strength_bin(max_strength) + 1;
    let purity_bins = PURITY_EDGES.len() - 1;
    let mut instances = vec![vec![0u32; strength_bins]; purity_bins];
    let mut errors = vec![vec![0u32; strength_bins]; purity_bins];
    for flow in flows {
        let (p, s) = (purity_bin(flow.purity), strength_bin(flow.strength));
        if let Some(cell) = instances.get_mut(p).and_then(|row| row.get_mut(s)) {
            *cell += flow.strength;
        }
        if let Some(cell) = errors.get_mut(p).and_then(|row| row.get_mut(s)) {
            *cell += flow.errors;
        }
    }
    FlowHistogram {
        strength_lower_edges: (0..strength_bins).map(|b| 1u32 << b).collect(),
        purity_edges: PURITY_EDGES.to_vec(),
        instances,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::PatternMatrix;
    use proptest::prelude::*;

    fn layer(bits: &[Vec<bool>]) -> LayerPatterns {
        LayerPatterns::from_patterns(&PatternMatrix::from_bits(bits).unwrap())
    }

    #[test]
    fn flows_group_by_both_layers_with_strength_and_purity() {
        let l0 = layer(&[vec![true], vec![true], vec![true], vec![false]]);
        let l1 = layer(&[vec![true], vec![true], vec![false], vec![false]]);
        let l2 = layer(&[vec![true], vec![true], vec![true], vec![true]]);
        let predictions = [7, 7, 5, 7];
        let labels = [7, 1, 5, 5];
        let table = flow_table(&[l0, l1, l2], 1, 2, &predictions, &labels).unwrap();
        // Layers 1..=2: instances {0, 1} share (1, 1); {2, 3} share (0, 1).
        assert_eq!(table.flows.len(), 2);
        let by_members: Vec<(&[u32], f32, u32, u32)> = table
            .flows
            .iter()
            .map(|f| {
                (
                    f.instances.as_slice(),
                    f.purity,
                    f.majority_prediction,
                    f.errors,
                )
            })
            .collect();
        assert!(by_members.contains(&([0, 1].as_slice(), 1.0, 7, 1)));
        assert!(by_members.contains(&([2, 3].as_slice(), 0.5, 5, 1)));
        // Histogram: strength 2 -> bin 1; purity 1.0 -> bin 4, 0.5 -> bin 2.
        assert_eq!(table.histogram.strength_lower_edges, [1, 2]);
        assert_eq!(table.histogram.instances[4][1], 2);
        assert_eq!(table.histogram.instances[2][1], 2);
        assert_eq!(table.histogram.errors[4][1], 1);
    }

    #[test]
    fn bad_ranges_are_refused() {
        let l0 = layer(&[vec![true]]);
        assert!(flow_table(std::slice::from_ref(&l0), 0, 1, &[0], &[0]).is_err());
        assert!(flow_table(&[l0.clone(), l0.clone()], 1, 0, &[0], &[0]).is_err());
        assert!(flow_table(&[l0], 0, 0, &[0, 1], &[0, 1]).is_err());
    }

    #[test]
    fn bins() {
        assert_eq!(
            [1, 2, 3, 4, 7, 8, 1000].map(strength_bin),
            [0, 1, 1, 2, 2, 3, 9]
        );
        assert_eq!(
            [0.0, 0.19, 0.2, 0.5, 0.99, 1.0].map(purity_bin),
            [0, 0, 1, 2, 4, 4]
        );
    }

    proptest! {
        #[test]
        fn flows_partition_the_instances(
            bits in prop::collection::vec(prop::collection::vec(any::<bool>(), 4), 1..120),
            predictions_seed in prop::collection::vec(0u32..3, 120),
        ) {
            let n = bits.len();
            let l0 = layer(&bits);
            let l1 = layer(&bits.iter().map(|b| vec![b[0] ^ b[1]]).collect::<Vec<_>>());
            let predictions = &predictions_seed[..n];
            let labels: Vec<u32> = predictions.iter().map(|p| (p + 1) % 3).collect();
            let table = flow_table(&[l0, l1], 0, 1, predictions, &labels).unwrap();
            let mut seen: Vec<u32> = table.flows.iter().flat_map(|f| f.instances.clone()).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..n as u32).collect::<Vec<_>>());
            for f in &table.flows {
                prop_assert!(f.purity > 0.0 && f.purity <= 1.0);
                prop_assert_eq!(f.strength as usize, f.instances.len());
            }
            let hist_total: u32 = table.histogram.instances.iter().flatten().sum();
            prop_assert_eq!(hist_total as usize, n);
            let err_total: u32 = table.histogram.errors.iter().flatten().sum();
            prop_assert_eq!(err_total as usize, n); // every prediction is wrong here
        }
    }
}
