//! Flows (APD paper, section 3): instances grouped by their patterns over a run of consecutive
//! layers. Strength = size; purity = share of the most frequent predicted label. Fig. 3 bins
//! them by log-strength and purity, counting all and misclassified instances.
//!
//! Two binnings ([`Binning`]):
//! - [`Binning::Even`] (the default): strength in powers of two (1, 2-3, 4-7, ...) and purity
//!   in five equal bins. The edges are the same for every epoch and run, so histograms compare
//!   cell by cell as the slider moves; powers of two because strengths span 1 to the whole set
//!   and most flows are tiny.
//! - [`Binning::Paper`]: the paper's figure. Purity bins end at its axis ticks 0, 0.2, 0.5,
//!   0.8, 1. Strength has five bins whose lower edges are log-spaced from 1 to the strongest
//!   flow, so they depend on the data and move with the epoch, as the paper's tick labels
//!   (1, 2, 20, 54, 403) do.

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

/// Purity bin edges of [`Binning::Even`]: five equal bins.
pub const PURITY_EDGES: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];

/// Purity bin edges of [`Binning::Paper`]: the ticks of the paper's Fig. 3 purity axis.
pub const PAPER_PURITY_EDGES: [f32; 5] = [0.0, 0.2, 0.5, 0.8, 1.0];

/// Strength bins of [`Binning::Paper`], as many as the paper's figure has.
pub const PAPER_STRENGTH_BINS: usize = 5;

/// How the Fig. 3 histograms bin strength and purity (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binning {
    /// Powers-of-two strength, five equal purity bins: fixed edges.
    #[default]
    Even,
    /// The paper's purity ticks and five log-spaced strength bins up to the strongest flow.
    Paper,
}

impl Binning {
    /// `even` or `paper`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "even" => Some(Self::Even),
            "paper" => Some(Self::Paper),
            _ => None,
        }
    }
}

/// Groups instances by their patterns in hidden layers `first..=last` (0-based) and builds
/// the histograms with [`Binning::Even`]. The paper's choice is the last two hidden layers.
pub fn flow_table(
    layers: &[LayerPatterns],
    first: usize,
    last: usize,
    predictions: &[u32],
    labels: &[u32],
) -> Result<FlowTable, FlowError> {
    let ids: Vec<&[u32]> = layers.iter().map(|l| l.ids.as_slice()).collect();
    flow_table_of_ids(&ids, first, last, predictions, labels, Binning::Even)
}

/// [`flow_table`] from each layer's pattern id per instance (any ids that are equal exactly
/// when the patterns are), binned as `binning` says.
pub fn flow_table_of_ids(
    layers: &[&[u32]],
    first: usize,
    last: usize,
    predictions: &[u32],
    labels: &[u32],
    binning: Binning,
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
    if labels.len() != n || range.iter().any(|l| l.len() != n) {
        return Err(FlowError::InstanceCount);
    }
    let mut groups: FxHashMap<Vec<u32>, Vec<u32>> = FxHashMap::default();
    for instance in 0..n {
        let key: Vec<u32> = range
            .iter()
            .map(|l| l.get(instance).copied().unwrap_or(0))
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
    let histogram = histogram(&flows, binning);
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

/// Lower edges of `bins` strength bins log-spaced from 1 to `max_strength`: edge `i` is
/// `max_strength^(i / bins)` rounded, kept when it grows (few distinct strengths give fewer
/// bins).
pub fn log_strength_edges(max_strength: u32, bins: usize) -> Vec<u32> {
    let top = f64::from(max_strength.max(1));
    let mut edges: Vec<u32> = vec![1];
    for i in 1..bins.max(1) {
        let edge = top.powf(i as f64 / bins as f64).round() as u32;
        if edges.last().is_some_and(|&last| edge > last) {
            edges.push(edge);
        }
    }
    edges
}

/// The bin of `value` among ascending lower `edges` (the last bin is open).
fn bin_of<T: PartialOrd>(edges: &[T], value: &T) -> usize {
    edges.partition_point(|e| e <= value).saturating_sub(1)
}

fn histogram(flows: &[Flow], binning: Binning) -> FlowHistogram {
    let max_strength = flows.iter().map(|f| f.strength).max().unwrap_or(1);
    let (strength_lower_edges, purity_edges): (Vec<u32>, Vec<f32>) = match binning {
        Binning::Even => (
            (0..=strength_bin(max_strength))
                .map(|b| 1u32 << b)
                .collect(),
            PURITY_EDGES.to_vec(),
        ),
        Binning::Paper => (
            log_strength_edges(max_strength, PAPER_STRENGTH_BINS),
            PAPER_PURITY_EDGES.to_vec(),
        ),
    };
    let strength_bins = strength_lower_edges.len();
    let purity_bins = purity_edges.len() - 1;
    // Purity lower edges; 1.0 falls in the last (closed) bin.
    let purity_lower = purity_edges.get(..purity_bins).unwrap_or(&[]);
    let mut instances = vec![vec![0u32; strength_bins]; purity_bins];
    let mut errors = vec![vec![0u32; strength_bins]; purity_bins];
    for flow in flows {
        let p = match binning {
            Binning::Even => purity_bin(flow.purity),
            Binning::Paper => bin_of(purity_lower, &flow.purity.clamp(0.0, 1.0)),
        };
        let s = bin_of(&strength_lower_edges, &flow.strength);
        if let Some(cell) = instances.get_mut(p).and_then(|row| row.get_mut(s)) {
            *cell += flow.strength;
        }
        if let Some(cell) = errors.get_mut(p).and_then(|row| row.get_mut(s)) {
            *cell += flow.errors;
        }
    }
    FlowHistogram {
        strength_lower_edges,
        purity_edges,
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

    #[test]
    fn paper_bins_are_log_spaced_to_the_strongest_flow() {
        assert_eq!(log_strength_edges(403, 5), [1, 3, 11, 37, 121]);
        assert_eq!(log_strength_edges(1, 5), [1]);
        assert_eq!(log_strength_edges(3, 5), [1, 2]);
        // Flows of 1, 2, 3 and 30 instances, purities 1, 0.5, 2/3, 0.9.
        let ids: Vec<u32> = [0, 1, 1, 2, 2, 2]
            .into_iter()
            .chain(std::iter::repeat_n(3, 30))
            .collect();
        let mut predictions = vec![0u32; ids.len()];
        predictions[2] = 1;
        predictions[5] = 1;
        for p in predictions.iter_mut().skip(6).take(3) {
            *p = 1;
        }
        let labels = vec![0u32; ids.len()];
        let table =
            flow_table_of_ids(&[&ids], 0, 0, &predictions, &labels, Binning::Paper).unwrap();
        let h = &table.histogram;
        assert_eq!(h.purity_edges, PAPER_PURITY_EDGES);
        assert_eq!(h.strength_lower_edges, log_strength_edges(30, 5));
        assert_eq!(h.strength_lower_edges, [1, 2, 4, 8, 15]);
        // Strength 1 (purity 1) -> [0.8, 1]; 2 (0.5) -> [0.5, 0.8); 3 (2/3) -> [0.5, 0.8);
        // 30 (0.9) -> [0.8, 1], last strength bin.
        assert_eq!(h.instances[3], [1, 0, 0, 0, 30]);
        assert_eq!(h.instances[2], [0, 5, 0, 0, 0]);
        assert_eq!(h.errors[3][4], 3);
        let even = flow_table_of_ids(&[&ids], 0, 0, &predictions, &labels, Binning::Even).unwrap();
        assert_eq!(even.histogram.strength_lower_edges, [1, 2, 4, 8, 16]);
        assert_eq!(Binning::parse("paper"), Some(Binning::Paper));
        assert_eq!(Binning::parse("log"), None);
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
            let (l0_ids, l1_ids) = (l0.ids.clone(), l1.ids.clone());
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
            let ids = [l0_ids.as_slice(), l1_ids.as_slice()];
            let paper = flow_table_of_ids(&ids, 0, 1, predictions, &labels, Binning::Paper).unwrap();
            prop_assert_eq!(&paper.flows, &table.flows);
            let paper_total: u32 = paper.histogram.instances.iter().flatten().sum();
            prop_assert_eq!(paper_total as usize, n);
        }
    }
}
