//! Seeded synthetic 2-D sets: moons, circles, spirals, XOR and Gaussian blobs.

use std::f64::consts::PI;

use actiscope_analysis::rng::SplitMix64;

/// Which planar set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Planar {
    /// Two interleaving half circles (2 classes).
    Moons,
    /// Two concentric circles (2 classes).
    Circles,
    /// Two interleaved spiral arms (2 classes).
    Spirals,
    /// Points in the square, class = sign(x * y) (2 classes).
    Xor,
    /// Three Gaussian blobs (3 classes).
    Blobs,
}

impl Planar {
    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            Self::Blobs => 3,
            _ => 2,
        }
    }

    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Moons => "moons",
            Self::Circles => "circles",
            Self::Spirals => "spirals",
            Self::Xor => "xor",
            Self::Blobs => "blobs",
        }
    }
}

/// `n` points (x, y interleaved) and their labels, a pure function of `seed`. Classes are
/// balanced up to one point.
pub fn generate(kind: Planar, n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = SplitMix64::new(seed ^ 0x005e_ed0f_d47a);
    let classes = kind.classes();
    let mut points = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % classes;
        let (x, y) = match kind {
            Planar::Moons => {
                let t = rng.next_f64() * PI;
                let (x, y) = if class == 0 {
                    (t.cos(), t.sin())
                } else {
                    (1.0 - t.cos(), 0.5 - t.sin())
                };
                (x + 0.1 * rng.normal(), y + 0.1 * rng.normal())
            }
            Planar::Circles => {
                let t = rng.next_f64() * 2.0 * PI;
                let r = if class == 0 { 1.0 } else { 0.5 };
                (
                    r * t.cos() + 0.05 * rng.normal(),
                    r * t.sin() + 0.05 * rng.normal(),
                )
            }
            Planar::Spirals => {
                let t = rng.next_f64().sqrt() * 3.0 * PI;
                let phase = if class == 0 { 0.0 } else { PI };
                let r = t / (3.0 * PI);
                (
                    r * (t + phase).cos() + 0.02 * rng.normal(),
                    r * (t + phase).sin() + 0.02 * rng.normal(),
                )
            }
            Planar::Xor => loop {
                let x = rng.next_f64() * 2.0 - 1.0;
                let y = rng.next_f64() * 2.0 - 1.0;
                if usize::from(x * y < 0.0) == class {
                    break (x, y);
                }
            },
            Planar::Blobs => {
                let centers = [(-1.5, 0.0), (1.5, 0.0), (0.0, 2.0)];
                let (cx, cy) = centers.get(class).copied().unwrap_or((0.0, 0.0));
                (cx + 0.5 * rng.normal(), cy + 0.5 * rng.normal())
            }
        };
        points.push(x as f32);
        points.push(y as f32);
        labels.push(class as u32);
    }
    (points, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_balanced_and_shaped() {
        for kind in [
            Planar::Moons,
            Planar::Circles,
            Planar::Spirals,
            Planar::Xor,
            Planar::Blobs,
        ] {
            let (a, la) = generate(kind, 300, 9);
            let (b, lb) = generate(kind, 300, 9);
            let (c, _) = generate(kind, 300, 10);
            assert_eq!(
                (a.clone(), la.clone()),
                (b, lb),
                "{kind:?} is not reproducible"
            );
            assert_ne!(a, c, "{kind:?} ignores the seed");
            assert_eq!(a.len(), 600);
            let mut hist = vec![0; kind.classes()];
            for l in &la {
                hist[*l as usize] += 1;
            }
            assert!(
                hist.iter().all(|&h| h == 300 / kind.classes()),
                "{kind:?}: {hist:?}"
            );
            assert!(a.iter().all(|v| v.is_finite() && v.abs() < 5.0));
        }
    }

    #[test]
    fn each_set_has_its_geometry() {
        let (p, l) = generate(Planar::Circles, 400, 1);
        for (xy, label) in p.chunks(2).zip(&l) {
            let r = (xy[0].powi(2) + xy[1].powi(2)).sqrt();
            let expected = if *label == 0 { 1.0 } else { 0.5 };
            assert!((r - expected).abs() < 0.25, "radius {r} for class {label}");
        }
        let (p, l) = generate(Planar::Xor, 400, 1);
        for (xy, label) in p.chunks(2).zip(&l) {
            assert_eq!(*label == 1, xy[0] * xy[1] < 0.0);
        }
    }
}
