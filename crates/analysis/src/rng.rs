//! SplitMix64, the workspace's one seeded generator: reproducible initialisations (the NMF
//! start), shuffles, splits and synthetic data (the training crate's datasets), and the
//! synthetic activation matrices of the benchmarks and tests ([`relu_blobs`]). Every stream is
//! a pure function of the seed on every platform. Not for anything that needs statistical
//! strength.

/// The generator; the state starts at the seed.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The state: `SplitMix64::new(g.state())` goes on exactly where `g` is.
    pub fn state(&self) -> u64 {
        self.state
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` on a grid of `2^-24` (every value exact in `f32`).
    pub fn next_unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[0, 1)` on a grid of `2^-53`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `(0, 1]` on a grid of `2^-53`.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Uniform in `0..bound` (`bound > 0`; 0 for `bound == 0`) by multiply-shift, without
    /// modulo bias worth caring about here.
    pub fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }

    /// Standard normal (Box-Muller, cosine branch) from two [`next_f64`](Self::next_f64)
    /// draws, the first kept above zero.
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        box_muller(u1, u2)
    }

    /// Fisher-Yates shuffle, from the last item down.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// The cosine branch of Box-Muller: a standard normal from `u1` in `(0, 1]` and `u2` in
/// `[0, 1]`.
fn box_muller(u1: f64, u2: f64) -> f64 {
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Blobs in the benchmarks' activations ([`relu_blobs`]; `cargo xtask bench-mapper` feeds the
/// same matrix to KeplerMapper).
pub const BENCH_BLOBS: usize = 10;
/// Spread of the benchmarks' blobs ([`relu_blobs`]).
pub const BENCH_SPREAD: f64 = 0.6;

/// `rows x cols` synthetic "activations": the ReLU of `blobs` Gaussian blobs (centres
/// N(0, 2^2) per coordinate, points N(centre, spread^2)); row `i` belongs to blob
/// `i % blobs` (no blob counts as one). Row-major. The normals are Box-Muller from two
/// [`SplitMix64::uniform`] draws, centres first, so a seed gives the same matrix everywhere
/// (the benchmarks use [`BENCH_BLOBS`] and [`BENCH_SPREAD`]).
pub fn relu_blobs(rows: usize, cols: usize, blobs: usize, spread: f64, seed: u64) -> Vec<f32> {
    let blobs = blobs.max(1);
    let mut rng = SplitMix64::new(seed);
    let mut normal = move || {
        let (u1, u2) = (rng.uniform(), rng.uniform());
        box_muller(u1, u2)
    };
    let centres: Vec<f64> = (0..blobs * cols).map(|_| 2.0 * normal()).collect();
    let mut data = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let centre = centres
            .get((r % blobs) * cols..(r % blobs + 1) * cols)
            .unwrap_or(&[]);
        data.extend(
            centre
                .iter()
                .map(|&c| (c + spread * normal()).max(0.0) as f32),
        );
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_in_range_and_roughly_centred() {
        let mut a = SplitMix64::new(3);
        let mut b = SplitMix64::new(3);
        let xs: Vec<f32> = (0..10_000).map(|_| a.next_unit_f32()).collect();
        let ys: Vec<f32> = (0..10_000).map(|_| b.next_unit_f32()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f32>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let normal_mean = (0..10_000).map(|_| a.normal()).sum::<f64>() / 10_000.0;
        assert!(normal_mean.abs() < 0.05, "{normal_mean}");
        assert!((0..1000).all(|_| {
            let u = a.uniform();
            u > 0.0 && u <= 1.0
        }));
    }

    #[test]
    fn same_seed_same_stream_and_values_in_range() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            let x = a.next_f64();
            b.next_f64();
            assert!((0.0..1.0).contains(&x));
            assert!(a.below(10) < 10);
            b.below(10);
        }
        let mut items: Vec<u32> = (0..50).collect();
        SplitMix64::new(1).shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(items, sorted);
    }

    /// The streams the training crate's datasets, splits and batch orders were built from
    /// before its own copy of the generator was merged into this one (values computed with
    /// that copy): they must never change, or every stored run's data would.
    #[test]
    fn streams_are_pinned_to_the_training_crates_former_generator() {
        let mut r = SplitMix64::new(42);
        let words: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            words,
            [
                13_679_457_532_755_275_413,
                2_949_826_092_126_892_291,
                5_139_283_748_462_763_858
            ]
        );
        assert_eq!(SplitMix64::new(0).next_u64(), 16_294_208_416_658_607_535);
        let mut r = SplitMix64::new(42);
        let units: Vec<u64> = (0..3).map(|_| r.next_f64().to_bits()).collect();
        assert_eq!(
            units,
            [
                4_604_854_642_168_692_077,
                4_594_929_399_376_720_760,
                4_598_690_451_703_514_086
            ]
        );
        let mut r = SplitMix64::new(42);
        let normals: Vec<u64> = (0..3).map(|_| r.normal().to_bits()).collect();
        assert_eq!(
            normals,
            [
                4_601_142_546_771_932_425,
                13_829_580_653_238_753_916,
                4_610_468_213_958_984_383
            ]
        );
        let mut r = SplitMix64::new(42);
        let picks: Vec<usize> = (0..8).map(|_| r.below(10)).collect();
        assert_eq!(picks, [7, 1, 2, 3, 0, 8, 2, 8]);
        let mut items: Vec<u32> = (0..10).collect();
        SplitMix64::new(42).shuffle(&mut items);
        assert_eq!(items, [8, 3, 6, 5, 4, 0, 9, 2, 1, 7]);
    }

    /// The streams of this crate's own draws (the NMF start, the benchmark matrix) as they were
    /// before the generators were merged.
    #[test]
    fn analysis_streams_are_pinned() {
        let mut r = SplitMix64::new(42);
        let units: Vec<u32> = (0..3).map(|_| r.next_unit_f32().to_bits()).collect();
        assert_eq!(units, [1_061_017_394, 1_042_530_188, 1_049_535_694]);
        let mut r = SplitMix64::new(42);
        let uniforms: Vec<u64> = (0..3).map(|_| r.uniform().to_bits()).collect();
        assert_eq!(
            uniforms,
            [
                4_604_854_642_168_692_078,
                4_594_929_399_376_720_764,
                4_598_690_451_703_514_088
            ]
        );
    }

    /// `relu_blobs` with the benchmark's blobs and spread gives bit for bit the matrix it gave
    /// before it took them as parameters (the xtask mapper benchmark compares against a
    /// Python peer reading the same file).
    #[test]
    fn benchmark_blobs_are_pinned() {
        let bits: Vec<u32> = relu_blobs(12, 3, BENCH_BLOBS, BENCH_SPREAD, 42)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(
            bits,
            [
                1_071_992_433,
                0,
                1_077_163_383,
                1_065_822_831,
                0,
                0,
                0,
                1_060_071_940,
                0,
                0,
                1_050_697_165,
                0,
                0,
                1_049_660_239,
                0,
                1_050_560_602,
                0,
                0,
                0,
                1_067_951_969,
                1_069_382_186,
                1_059_559_995,
                0,
                1_072_513_422,
                1_076_832_719,
                1_037_757_155,
                0,
                1_070_214_469,
                0,
                1_071_390_578,
                1_065_346_140,
                0,
                1_082_778_981,
                0,
                0,
                0
            ]
        );
        // The whole benchmark matrix, by an FNV-1a hash of its bits.
        let hash = relu_blobs(10_000, 40, BENCH_BLOBS, BENCH_SPREAD, 42)
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
                (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
            });
        assert_eq!(hash, 0x95f7_64da_fa9b_1bd9);
    }

    #[test]
    fn blobs_have_the_asked_shape_and_are_non_negative() {
        let data = relu_blobs(30, 4, 3, 0.1, 9);
        assert_eq!(data.len(), 120);
        assert!(data.iter().all(|v| *v >= 0.0 && v.is_finite()));
        // Rows of one blob lie near each other; with no blob asked for, all rows share one.
        assert_eq!(relu_blobs(5, 2, 0, 0.0, 1).len(), 10);
        let single = relu_blobs(4, 3, 0, 0.0, 1);
        assert!(single.chunks(3).all(|row| row == &single[..3]));
    }
}
