//! SplitMix64, a tiny seeded generator for reproducible initialisations (the NMF start), and
//! the synthetic activation matrix the mapper benchmarks share. Not for anything that needs
//! statistical strength.

/// The generator; the state is the seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` on a grid of `2^-24` (every value exact in `f32`).
    pub fn next_unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `(0, 1]`.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller, cosine branch).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// `rows x cols` synthetic "activations" for benchmarks: the ReLU of 10 Gaussian blobs
/// (centres N(0, 2^2) per coordinate, spread N(0, 0.6^2)); row `i` belongs to blob `i % 10`.
/// Row-major.
pub fn relu_blobs(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    const BLOBS: usize = 10;
    let mut rng = SplitMix64(seed);
    let centres: Vec<f64> = (0..BLOBS * cols).map(|_| 2.0 * rng.normal()).collect();
    let mut data = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let centre = centres
            .get((r % BLOBS) * cols..(r % BLOBS + 1) * cols)
            .unwrap_or(&[]);
        data.extend(
            centre
                .iter()
                .map(|&c| (c + 0.6 * rng.normal()).max(0.0) as f32),
        );
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_in_range_and_roughly_centred() {
        let mut a = SplitMix64(3);
        let mut b = SplitMix64(3);
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
}
