//! The sparse products' inner loops: a sparse row times rows of a dense row-major factor,
//! with the row width fixed at compile time and, on x86-64 CPUs with AVX2 and FMA, compiled
//! for those instructions through pulp.

use super::csr::Csr;

/// Width of the SIMD chunks factor rows are padded to.
pub(super) const LANES: usize = 4;

/// Runs [`sparse_kernel`] on rows `range` with the row width known at compile time (rows of
/// `C` chunks of [`LANES`], up to 64 wide) so the compiler emits whole SIMD registers, or a
/// generic loop for wider rows. On x86-64 CPUs with AVX2 and FMA (checked at run time) the
/// fixed-width kernels are compiled for those instructions: 8 lanes a register and one fused
/// multiply-add per lane, about twice the throughput of the SSE2 baseline.
pub(super) fn dispatch_lanes(
    lanes: usize,
    csr: &Csr,
    range: std::ops::Range<usize>,
    dense: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        macro_rules! widths_v3 {
            ($($c:literal)*) => {
                match lanes / LANES {
                    $($c => return simd.vectorize(KernelCall::<$c, true> {
                        csr, range, dense, out, accumulate,
                    }),)*
                    _ => {}
                }
            };
        }
        widths_v3!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }
    macro_rules! widths {
        ($($c:literal)*) => {
            match lanes / LANES {
                $($c => sparse_kernel::<$c, false>(csr, range, dense, out, accumulate),)*
                _ => sparse_kernel_any(lanes, csr, range, dense, out, accumulate),
            }
        };
    }
    widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// One call of [`sparse_kernel`], as pulp's vectorize wants it: everything it calls is
/// `#[inline(always)]`, so the whole loop is compiled with the target features pulp enables.
#[cfg(target_arch = "x86_64")]
struct KernelCall<'a, const C: usize, const FMA: bool> {
    csr: &'a Csr,
    range: std::ops::Range<usize>,
    dense: &'a [f32],
    out: &'a mut [f32],
    accumulate: bool,
}

#[cfg(target_arch = "x86_64")]
impl<const C: usize, const FMA: bool> pulp::NullaryFnOnce for KernelCall<'_, C, FMA> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        sparse_kernel::<C, FMA>(self.csr, self.range, self.dense, self.out, self.accumulate);
    }
}

/// `acc += v * x`, lane by lane; with `FMA` as fused multiply-adds (only where the CPU has
/// them: without the instruction `mul_add` is a slow library call).
#[inline(always)]
fn axpy_rows<const C: usize, const FMA: bool>(
    acc: &mut [[f32; LANES]; C],
    v: f32,
    x: &[[f32; LANES]; C],
) {
    for (a, b) in acc.iter_mut().zip(x) {
        for (a, b) in a.iter_mut().zip(b) {
            *a = if FMA { v.mul_add(*b, *a) } else { *a + v * b };
        }
    }
}

/// Row `i - range.start` of `out` <- (or += when `accumulate`) the rows of `dense` at row
/// `i`'s non-zeros, weighted.
/// Two sets of accumulators take the non-zeros in turn, so consecutive multiply-adds do not
/// wait on each other.
#[inline(always)]
fn sparse_kernel<const C: usize, const FMA: bool>(
    csr: &Csr,
    range: std::ops::Range<usize>,
    dense: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let (dense, _) = dense.as_chunks::<LANES>();
    let (dense, _) = dense.as_chunks::<C>();
    let (out, _) = out.as_chunks_mut::<LANES>();
    let (out, _) = out.as_chunks_mut::<C>();
    for (i, target) in range.zip(out.iter_mut()) {
        let mut even = [[0.0; LANES]; C];
        let mut odd = [[0.0; LANES]; C];
        let (columns, values) = csr.row(i);
        let (column_pairs, column_rest) = columns.as_chunks::<2>();
        let (value_pairs, value_rest) = values.as_chunks::<2>();
        for (&[c0, c1], &[v0, v1]) in column_pairs.iter().zip(value_pairs) {
            if let Some(source) = dense.get(c0 as usize) {
                axpy_rows::<C, FMA>(&mut even, v0, source);
            }
            if let Some(source) = dense.get(c1 as usize) {
                axpy_rows::<C, FMA>(&mut odd, v1, source);
            }
        }
        for (&c, &v) in column_rest.iter().zip(value_rest) {
            if let Some(source) = dense.get(c as usize) {
                axpy_rows::<C, FMA>(&mut even, v, source);
            }
        }
        for (t, (e, o)) in target.iter_mut().zip(even.iter().zip(&odd)) {
            for (t, (e, o)) in t.iter_mut().zip(e.iter().zip(o)) {
                *t = if accumulate { *t + (e + o) } else { e + o };
            }
        }
    }
}

/// [`sparse_kernel`] for any multiple of [`LANES`].
fn sparse_kernel_any(
    lanes: usize,
    csr: &Csr,
    range: std::ops::Range<usize>,
    dense: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let lanes = lanes.max(1);
    for (i, target) in range.zip(out.chunks_exact_mut(lanes)) {
        if !accumulate {
            target.fill(0.0);
        }
        let (columns, values) = csr.row(i);
        for (&c, &v) in columns.iter().zip(values) {
            let start = c as usize * lanes;
            if let Some(source) = dense.get(start..start + lanes) {
                for (a, b) in target.iter_mut().zip(source) {
                    *a += v * b;
                }
            }
        }
    }
}
