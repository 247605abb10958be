//! Each block's squared reconstruction error in closed form, from the non-zeros of the data
//! and two small gram matrices, without forming the reconstruction.

use super::data::{Data, Shape};

/// `||X_i - W_i F^T||^2` of each weighted block `i`, without forming `W F^T`:
/// `||X_i||^2 - 2 <X_i, W_i F^T> + <W_i^T W_i, F^T F>`, where the middle term only visits the
/// non-zeros of `X_i`. Every product of two `f32`s is exact in `f64` and the sums are in
/// `f64`, so the cancellation leaves an error of about `1e-16 * sqrt(non-zeros) * ||X_i||^2`:
/// below what `f32` factors can fit, and far below any RMSE worth showing (a test compares
/// the result with a dense reconstruction for a rough and a near-exact fit).
pub(super) fn block_squared_errors(
    data: &Data,
    w: &[f32],
    f: &[f32],
    lanes: usize,
    shape: &Shape,
    block_norm_sq: &[f64],
) -> Vec<f64> {
    let lanes = lanes.max(1);
    let feature_block = shape.feature_blocks();
    // <X_i, W_i F^T> = sum over instances j of f_j . g_ij, g_ij = sum of x_kj w_k over the
    // features k of block i; g is accumulated in f64 lanes and folded in when the block or
    // the instance changes.
    let mut cross = vec![0.0f64; shape.block_rows.len()];
    let mut g = vec![0.0f64; lanes];
    let mut open: Option<(usize, usize)> = None;
    let mut fold = |open: Option<(usize, usize)>, g: &mut [f64]| {
        if let Some((instance, b)) = open {
            let f_row = f
                .get(instance * lanes..(instance + 1) * lanes)
                .unwrap_or(&[]);
            let sum: f64 = g.iter().zip(f_row).map(|(a, b)| a * f64::from(*b)).sum();
            if let Some(c) = cross.get_mut(b) {
                *c += sum;
            }
            g.fill(0.0);
        }
    };
    data.for_each_nonzero(|instance, feature, value| {
        let b = feature_block.get(feature).copied().unwrap_or(0);
        if open != Some((instance, b)) {
            fold(open, &mut g);
            open = Some((instance, b));
        }
        let w_row = w.get(feature * lanes..(feature + 1) * lanes).unwrap_or(&[]);
        let value = f64::from(value);
        for (acc, &wk) in g.iter_mut().zip(w_row) {
            *acc += value * f64::from(wk);
        }
    });
    fold(open, &mut g);
    let f_gram = gram64(f, lanes, 0..shape.instances);
    shape
        .block_rows
        .iter()
        .zip(block_norm_sq)
        .zip(cross)
        .map(|((rows, norm_sq), cross)| {
            let w_gram = gram64(w, lanes, rows.clone());
            let fitted: f64 = w_gram.iter().zip(&f_gram).map(|(a, b)| a * b).sum();
            (norm_sq - 2.0 * cross + fitted).max(0.0)
        })
        .collect()
}

/// `a^T a` in `f64` over rows `rows` of a row-major `* x lanes` matrix, row-major `lanes x
/// lanes`.
fn gram64(a: &[f32], lanes: usize, rows: std::ops::Range<usize>) -> Vec<f64> {
    let mut out = vec![0.0f64; lanes * lanes];
    for r in rows {
        let Some(values) = a.get(r * lanes..(r + 1) * lanes) else {
            continue;
        };
        for (k, &vk) in values.iter().enumerate() {
            if vk == 0.0 {
                continue;
            }
            let vk = f64::from(vk);
            if let Some(target) = out.get_mut(k * lanes..(k + 1) * lanes) {
                for (t, &vl) in target.iter_mut().zip(values) {
                    *t += vk * f64::from(vl);
                }
            }
        }
    }
    out
}
