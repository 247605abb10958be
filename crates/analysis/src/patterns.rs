//! Activation patterns: bit `i` of instance `x` at layer `l` is 1 iff neuron `i`'s
//! pre-activation is `> 0` (APD paper, eq. 2), packed 64 neurons to a `u64` word.

use crate::hash::FxHashMap;
use crate::matrix::Matrix;

/// The bit-packed activation patterns of one layer over a set of instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternMatrix {
    instances: usize,
    neurons: usize,
    words_per_pattern: usize,
    words: Vec<u64>,
}

impl PatternMatrix {
    /// Patterns of `pre_activations` (instances x neurons): bit set iff the value is `> 0`.
    /// NaN counts as inactive.
    pub fn from_preactivations(pre_activations: &Matrix) -> Self {
        let neurons = pre_activations.cols();
        let words_per_pattern = neurons.div_ceil(64).max(1);
        let mut words = vec![0u64; pre_activations.rows() * words_per_pattern];
        for (row, packed) in pre_activations
            .iter_rows()
            .zip(words.chunks_exact_mut(words_per_pattern))
        {
            for (chunk, word) in row.chunks(64).zip(packed.iter_mut()) {
                *word = chunk
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (bit, &v)| acc | (u64::from(v > 0.0) << bit));
            }
        }
        Self {
            instances: pre_activations.rows(),
            neurons,
            words_per_pattern,
            words,
        }
    }

    /// An empty pattern set for layers of `neurons` units, to be filled with
    /// [`append_preactivations`](Self::append_preactivations).
    pub fn empty(neurons: usize) -> Self {
        Self {
            instances: 0,
            neurons,
            words_per_pattern: neurons.div_ceil(64).max(1),
            words: Vec::new(),
        }
    }

    /// Appends the patterns of row-major pre-activations (`k * neurons` values); a trailing
    /// partial row is ignored.
    pub fn append_preactivations(&mut self, values: &[f32]) {
        if self.neurons == 0 {
            return;
        }
        for row in values.chunks_exact(self.neurons) {
            for chunk in row.chunks(64) {
                self.words.push(
                    chunk
                        .iter()
                        .enumerate()
                        .fold(0u64, |acc, (bit, &v)| acc | (u64::from(v > 0.0) << bit)),
                );
            }
            self.instances += 1;
        }
    }

    /// Appends patterns already packed in this layout (`words_per_pattern` words per
    /// instance, bit `i % 64` of word `i / 64` = neuron `i`, unused high bits clear), as a
    /// device packs them; a trailing partial pattern is ignored.
    pub fn append_packed(&mut self, words: &[u64]) {
        if self.neurons == 0 {
            return;
        }
        let whole = words.len() / self.words_per_pattern * self.words_per_pattern;
        self.words
            .extend_from_slice(words.get(..whole).unwrap_or(&[]));
        self.instances += whole / self.words_per_pattern;
    }

    /// Words per instance: `ceil(neurons / 64)`, at least 1.
    pub fn words_per_pattern(&self) -> usize {
        self.words_per_pattern
    }

    /// Builds patterns from explicit bits, one `Vec<bool>` per instance; `None` when the
    /// instances do not all have the same number of neurons.
    pub fn from_bits(bits: &[Vec<bool>]) -> Option<Self> {
        let neurons = bits.first().map_or(0, Vec::len);
        if bits.iter().any(|b| b.len() != neurons) {
            return None;
        }
        let words_per_pattern = neurons.div_ceil(64).max(1);
        let mut words = vec![0u64; bits.len() * words_per_pattern];
        for (instance, packed) in bits.iter().zip(words.chunks_exact_mut(words_per_pattern)) {
            for (neuron, _) in instance.iter().enumerate().filter(|(_, on)| **on) {
                if let Some(word) = packed.get_mut(neuron / 64) {
                    *word |= 1 << (neuron % 64);
                }
            }
        }
        Some(Self {
            instances: bits.len(),
            neurons,
            words_per_pattern,
            words,
        })
    }

    /// Number of instances.
    pub fn instances(&self) -> usize {
        self.instances
    }

    /// Number of neurons (bits per pattern).
    pub fn neurons(&self) -> usize {
        self.neurons
    }

    /// The packed words of instance `index`.
    pub fn pattern(&self, index: usize) -> Option<&[u64]> {
        self.words
            .get(index * self.words_per_pattern..(index + 1) * self.words_per_pattern)
    }

    /// Iterates over the packed patterns, one slice per instance.
    pub fn iter(&self) -> impl Iterator<Item = &[u64]> {
        self.words.chunks_exact(self.words_per_pattern)
    }
}

/// The unique patterns of one layer and which one each instance has.
///
/// Ids are stable within an epoch: they are assigned by descending instance count, ties
/// broken by the patterns' bits, so id 0 is the most shared pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPatterns {
    /// Pattern id of each instance.
    pub ids: Vec<u32>,
    /// Packed bits of each unique pattern, indexed by id.
    pub patterns: Vec<Vec<u64>>,
    /// Instances per pattern, indexed by id.
    pub counts: Vec<u32>,
    /// Neurons (bits) per pattern.
    pub neurons: usize,
}

impl LayerPatterns {
    /// The unique patterns of `pre_activations` (instances x neurons): the bits of
    /// [`PatternMatrix::from_preactivations`], grouped by [`from_patterns`](Self::from_patterns).
    pub fn from_preactivations(pre_activations: &Matrix) -> Self {
        Self::from_patterns(&PatternMatrix::from_preactivations(pre_activations))
    }

    /// Groups the instances of `matrix` by pattern.
    pub fn from_patterns(matrix: &PatternMatrix) -> Self {
        let mut first_ids: FxHashMap<&[u64], u32> = FxHashMap::default();
        let mut provisional = Vec::with_capacity(matrix.instances());
        let mut uniques: Vec<&[u64]> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        for pattern in matrix.iter() {
            let next = u32::try_from(uniques.len()).unwrap_or(u32::MAX);
            let id = *first_ids.entry(pattern).or_insert_with(|| {
                uniques.push(pattern);
                counts.push(0);
                next
            });
            if let Some(count) = counts.get_mut(id as usize) {
                *count += 1;
            }
            provisional.push(id);
        }
        // Renumber: most shared first, then by bits.
        let mut order: Vec<u32> = (0..u32::try_from(uniques.len()).unwrap_or(u32::MAX)).collect();
        order.sort_by(|&a, &b| {
            let count = |id: u32| counts.get(id as usize).copied().unwrap_or(0);
            let bits = |id: u32| uniques.get(id as usize).copied().unwrap_or(&[]);
            count(b).cmp(&count(a)).then_with(|| bits(a).cmp(bits(b)))
        });
        let mut renumber = vec![0u32; order.len()];
        for (new_id, &old_id) in (0u32..).zip(&order) {
            if let Some(slot) = renumber.get_mut(old_id as usize) {
                *slot = new_id;
            }
        }
        let ids = provisional
            .iter()
            .map(|&old| renumber.get(old as usize).copied().unwrap_or(0))
            .collect();
        let patterns = order
            .iter()
            .map(|&old| {
                uniques
                    .get(old as usize)
                    .map(|p| p.to_vec())
                    .unwrap_or_default()
            })
            .collect();
        let counts = order
            .iter()
            .map(|&old| counts.get(old as usize).copied().unwrap_or(0))
            .collect();
        Self {
            ids,
            patterns,
            counts,
            neurons: matrix.neurons(),
        }
    }

    /// `|A*_l(D)|`: the number of unique patterns.
    pub fn unique_count(&self) -> usize {
        self.patterns.len()
    }

    /// The bits of pattern `id` as a `0`/`1` string, neuron 0 first; `None` for an unknown id.
    pub fn bit_string(&self, id: u32) -> Option<String> {
        let words = self.patterns.get(id as usize)?;
        Some(
            (0..self.neurons)
                .map(|i| {
                    let word = words.get(i / 64).copied().unwrap_or(0);
                    if word >> (i % 64) & 1 == 1 { '1' } else { '0' }
                })
                .collect(),
        )
    }
}

/// `|A*_l(D)|` without building ids: the number of distinct patterns.
pub fn count_unique(matrix: &PatternMatrix) -> usize {
    let mut seen: FxHashMap<&[u64], ()> = FxHashMap::default();
    seen.reserve(matrix.instances() / 4);
    for pattern in matrix.iter() {
        seen.insert(pattern, ());
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bits_follow_the_sign_of_the_preactivation() {
        let m = Matrix::from_rows(&[[0.5, -1.0, 0.0, 2.0], [-0.1, 0.2, f32::NAN, 0.0]]).unwrap();
        let p = PatternMatrix::from_preactivations(&m);
        assert_eq!(p.pattern(0), Some([0b1001u64].as_slice()));
        assert_eq!(p.pattern(1), Some([0b0010u64].as_slice()));
        let layer = LayerPatterns::from_patterns(&p);
        assert_eq!(layer.bit_string(layer.ids[0]).as_deref(), Some("1001"));
        assert_eq!(layer.bit_string(layer.ids[1]).as_deref(), Some("0100"));
    }

    #[test]
    fn layer_patterns_straight_from_preactivations() {
        let m =
            Matrix::from_rows(&[[0.5, -1.0, 0.0], [-0.1, 0.2, 3.0], [2.0, -0.5, -0.0]]).unwrap();
        let layer = LayerPatterns::from_preactivations(&m);
        assert_eq!(
            layer,
            LayerPatterns::from_patterns(&PatternMatrix::from_preactivations(&m))
        );
        assert_eq!(layer.counts, [2, 1]);
        assert_eq!(layer.ids, [0, 1, 0]);
        assert_eq!(layer.bit_string(0).as_deref(), Some("100"));
        assert_eq!(layer.bit_string(1).as_deref(), Some("011"));
    }

    #[test]
    fn appending_in_chunks_equals_building_at_once() {
        let values: Vec<f32> = (0..7 * 70).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let whole =
            PatternMatrix::from_preactivations(&Matrix::new(7, 70, values.clone()).unwrap());
        let mut parts = PatternMatrix::empty(70);
        parts.append_preactivations(&values[..3 * 70]);
        parts.append_preactivations(&values[3 * 70..]);
        assert_eq!(parts, whole);
    }

    #[test]
    fn wide_layers_span_several_words() {
        let mut row = vec![-1.0f32; 130];
        row[0] = 1.0;
        row[64] = 1.0;
        row[129] = 1.0;
        let m = Matrix::from_rows(&[row.clone(), row]).unwrap();
        let p = PatternMatrix::from_preactivations(&m);
        assert_eq!(p.pattern(0), Some([1u64, 1, 2].as_slice()));
        assert_eq!(count_unique(&p), 1);
    }

    #[test]
    fn ids_rank_patterns_by_how_many_instances_share_them() {
        let p = PatternMatrix::from_bits(&[
            vec![true, false],
            vec![false, false],
            vec![false, false],
            vec![true, true],
            vec![false, false],
        ])
        .unwrap();
        let layer = LayerPatterns::from_patterns(&p);
        assert_eq!(layer.unique_count(), 3);
        assert_eq!(layer.counts, [3, 1, 1]);
        assert_eq!(layer.ids, [1, 0, 0, 2, 0]);
        assert_eq!(layer.bit_string(0).as_deref(), Some("00"));
        assert_eq!(layer.bit_string(3), None);
    }

    proptest! {
        #[test]
        fn counts_add_up_and_ids_resolve_to_each_instances_pattern(
            bits in prop::collection::vec(prop::collection::vec(any::<bool>(), 5), 0..200)
        ) {
            let p = PatternMatrix::from_bits(&bits).unwrap();
            let layer = LayerPatterns::from_patterns(&p);
            prop_assert_eq!(layer.counts.iter().map(|&c| c as usize).sum::<usize>(), bits.len());
            prop_assert_eq!(layer.unique_count(), count_unique(&p));
            let distinct: std::collections::HashSet<&Vec<bool>> = bits.iter().collect();
            prop_assert_eq!(layer.unique_count(), distinct.len());
            for (i, &id) in layer.ids.iter().enumerate() {
                prop_assert_eq!(Some(layer.patterns[id as usize].as_slice()), p.pattern(i));
            }
            prop_assert!(layer.counts.windows(2).all(|w| w[0] >= w[1]));
        }
    }
}
