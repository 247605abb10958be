//! The cover: overlapping intervals over each lens dimension, as KeplerMapper's `Cover`
//! defines them, and their product for a 2-D lens.
//!
//! Over a range `[min, max]` of length `R` split into `n` intervals with overlap fraction `p`,
//! interval `i` is centred where the `i`-th of `n` equal, non-overlapping intervals is
//! (`linspace(min + R/2n, max - R/2n, n)`) and has radius `R / (2n(1 - p))`, both ends
//! included. Neighbours then overlap by `p` times an interval's length. A range of length 0
//! gives a single interval.

use super::lens::LensValues;

/// The intervals over one lens dimension.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Axis {
    centres: Vec<f64>,
    radius: f64,
    /// Distance between neighbouring centres (0 for a single interval).
    step: f64,
}

impl Axis {
    /// Fits `intervals` intervals (at least 1) with overlap fraction `overlap` in `[0, 1)` to
    /// the range of `values`.
    pub(crate) fn fit(values: impl Iterator<Item = f64>, intervals: usize, overlap: f64) -> Self {
        let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let range = max - min;
        if !(range > 0.0 && range.is_finite()) || intervals <= 1 {
            let centre = if min.is_finite() {
                0.5 * (min + max)
            } else {
                0.0
            };
            let radius = if range.is_finite() && range > 0.0 {
                range / (2.0 * (1.0 - overlap))
            } else {
                0.0
            };
            return Self {
                centres: vec![centre],
                radius,
                step: 0.0,
            };
        }
        let n = intervals as f64;
        // The same arithmetic as kmapper (numpy): inner range, inset, linspace.
        let inner = ((n - 1.0) / n) * range;
        let inset = (range - inner) / 2.0;
        let (start, stop) = (min + inset, max - inset);
        let step = (stop - start) / (n - 1.0);
        let mut centres: Vec<f64> = (0..intervals).map(|i| i as f64 * step + start).collect();
        if let Some(last) = centres.last_mut() {
            *last = stop;
        }
        Self {
            centres,
            radius: range / (2.0 * n * (1.0 - overlap)),
            step,
        }
    }

    /// Number of intervals.
    pub(crate) fn len(&self) -> usize {
        self.centres.len()
    }

    /// Appends the intervals containing `x`, ascending, to `out`. A value that rounding
    /// leaves between two intervals goes to the one with the nearest centre, so every value
    /// of the fitted range lies in at least one interval.
    pub(crate) fn containing(&self, x: f64, out: &mut Vec<u32>) {
        let count = self.centres.len();
        let first = self.centres.first().copied().unwrap_or(0.0);
        let (lo, hi) = if self.step > 0.0 {
            let lo = ((x - self.radius - first) / self.step).floor() - 1.0;
            let hi = ((x + self.radius - first) / self.step).ceil() + 1.0;
            (
                lo.clamp(0.0, (count - 1) as f64) as usize,
                hi.clamp(0.0, (count - 1) as f64) as usize,
            )
        } else {
            (0, count.saturating_sub(1))
        };
        let before = out.len();
        for (i, &c) in self.centres.iter().enumerate().take(hi + 1).skip(lo) {
            if x >= c - self.radius && x <= c + self.radius {
                out.push(i as u32);
            }
        }
        if out.len() == before {
            let nearest = self
                .centres
                .iter()
                .enumerate()
                .min_by(|a, b| (a.1 - x).abs().total_cmp(&(b.1 - x).abs()))
                .map_or(0, |(i, _)| i);
            out.push(nearest as u32);
        }
    }
}

/// The cover elements of every instance: `(element index, members)` for the non-empty
/// elements, ascending by element, members ascending. 2-D elements are numbered row-major
/// (`first * intervals_of_second + second`).
pub(crate) fn cover_elements(
    lens: &LensValues,
    intervals: usize,
    overlap: f64,
) -> Vec<(u32, Vec<u32>)> {
    let axes: Vec<Axis> = (0..lens.dims())
        .map(|dim| Axis::fit(lens.column(dim), intervals, overlap))
        .collect();
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(lens.len() * 2);
    let mut first = Vec::new();
    let mut second = Vec::new();
    for instance in 0..lens.len() {
        let Some(values) = lens.get(instance) else {
            continue;
        };
        match (axes.as_slice(), values) {
            ([axis], [x]) => {
                first.clear();
                axis.containing(*x, &mut first);
                pairs.extend(first.iter().map(|&e| (e, instance as u32)));
            }
            ([axis_a, axis_b], [x, y]) => {
                first.clear();
                second.clear();
                axis_a.containing(*x, &mut first);
                axis_b.containing(*y, &mut second);
                let width = axis_b.len() as u32;
                for &a in &first {
                    pairs.extend(second.iter().map(|&b| (a * width + b, instance as u32)));
                }
            }
            _ => {}
        }
    }
    pairs.sort_unstable();
    let mut elements: Vec<(u32, Vec<u32>)> = Vec::new();
    for (element, instance) in pairs {
        match elements.last_mut() {
            Some((e, members)) if *e == element => members.push(instance),
            _ => elements.push((element, vec![instance])),
        }
    }
    elements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(axis: &Axis, x: f64) -> Vec<u32> {
        let mut out = Vec::new();
        axis.containing(x, &mut out);
        out
    }

    #[test]
    fn kmapper_intervals() {
        // Range [0, 10], 4 intervals, 50% overlap: centres 1.25, 3.75, 6.25, 8.75, radius
        // 10 / (2 * 4 * 0.5) = 2.5, so intervals [-1.25, 3.75], [1.25, 6.25], ...
        let axis = Axis::fit([0.0, 10.0, 3.0].into_iter(), 4, 0.5);
        assert_eq!(axis.centres, vec![1.25, 3.75, 6.25, 8.75]);
        assert_eq!(axis.radius, 2.5);
        assert_eq!(members(&axis, 0.0), vec![0]);
        assert_eq!(members(&axis, 3.75), vec![0, 1, 2]);
        assert_eq!(members(&axis, 5.0), vec![1, 2]);
        assert_eq!(members(&axis, 10.0), vec![3]);
        // Overlap 0: touching intervals share their end points only.
        let axis = Axis::fit([0.0, 4.0].into_iter(), 4, 0.0);
        assert_eq!(members(&axis, 1.0), vec![0, 1]);
        assert_eq!(members(&axis, 1.5), vec![1]);
    }

    #[test]
    fn degenerate_range_is_one_interval() {
        let axis = Axis::fit([2.0, 2.0].into_iter(), 10, 0.3);
        assert_eq!(axis.len(), 1);
        assert_eq!(members(&axis, 2.0), vec![0]);
        let axis = Axis::fit([1.0, 3.0].into_iter(), 1, 0.3);
        assert_eq!(members(&axis, 1.0), vec![0]);
        assert_eq!(members(&axis, 3.0), vec![0]);
    }

    #[test]
    fn elements_of_a_2d_lens() {
        // Corners of the unit square plus the centre; 2 x 2 intervals with 50% overlap:
        // centres 0.25, 0.75, radius 0.5: every interval holds 0.5, each corner one per axis.
        let lens =
            LensValues::new(2, vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.5, 0.5]).unwrap();
        let elements = cover_elements(&lens, 2, 0.5);
        assert_eq!(
            elements,
            vec![
                (0, vec![0, 4]),
                (1, vec![1, 4]),
                (2, vec![2, 4]),
                (3, vec![3, 4])
            ]
        );
    }
}
