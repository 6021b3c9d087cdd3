//! Dense similarity blocks: S = A·Bᵀ for row-major feature matrices, through `matrixmultiply`'s
//! sgemm (runtime-selected AVX2/FMA kernels, single-threaded per call — callers parallelise over
//! blocks with rayon), and pair-wise dot products for score lists.

use rayon::prelude::*;

/// `out[i * n + j] = a_i · b_j` for `a` [m, d] and `b` [n, d], both row-major; `out` is [m, n].
pub fn scores_into(a: &[f32], m: usize, b: &[f32], n: usize, d: usize, out: &mut [f32]) {
    assert!(a.len() >= m * d && b.len() >= n * d && out.len() >= m * n, "gemm operands do not match their shapes");
    if m == 0 || n == 0 {
        return;
    }
    if d == 0 {
        out[..m * n].fill(0.0);
        return;
    }
    // SAFETY: the assertions above keep every access of the m×d, n×d and m×n strided views
    // inside the slices; `out` is borrowed mutably, so it aliases neither input.
    unsafe {
        matrixmultiply::sgemm(
            m,
            d,
            n,
            1.0,
            a.as_ptr(),
            d as isize,
            1,
            b.as_ptr(),
            1,
            d as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// A·Bᵀ ([m, n], row-major), split over rayon threads by rows of `a`.
pub fn scores(a: &[f32], m: usize, b: &[f32], n: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    if n == 0 {
        return out;
    }
    let rows_per_task = m.div_ceil(rayon::current_num_threads() * 4).max(16);
    out.par_chunks_mut(rows_per_task * n).enumerate().for_each(|(t, chunk)| {
        let r0 = t * rows_per_task;
        let rows = chunk.len() / n;
        scores_into(&a[r0 * d..(r0 + rows) * d], rows, b, n, d, chunk);
    });
    out
}

/// Dot product with eight independent accumulators (vectorises without target flags).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}
