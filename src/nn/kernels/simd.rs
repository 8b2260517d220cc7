//! The numeric helpers every fused kernel shares: storage access, a vectorising `exp` and dot
//! product, AVX2 dispatch, and strided `gemm` products (single-threaded or on the rayon pool).

use candle_core::{CpuStorage, Layout, Result, Tensor};

/// The elements of a contiguous f32 CPU storage (custom ops' inputs), or an error naming `op`.
pub fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        return Err(candle_core::Error::Msg(format!("{op}: expects f32")));
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => Err(candle_core::Error::Msg(format!(
            "{op}: expects a contiguous tensor"
        ))),
    }
}

/// A dot product in eight independent lanes (so that it vectorises).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The elements of `t` in row-major order (a copy).
pub fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// Runs `f` on the elements of `t` in row-major order: in place when `t` is a contiguous CPU f32
/// tensor (no copy of the batch-sized tensors the backward passes read), else on a copy.
pub fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&v[a..b]));
        }
    }
    Ok(f(&values(t)?))
}

/// Parallelism for a product of this size: the rayon pool (sized by `--threads`) for large ones.
pub fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && m * n * k >= 1 << 21 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `e^x` to about 2 ulp, branch-free so that loops over it vectorise (Cephes' `expf`: reduction to
/// `r` in [-ln2/2, ln2/2], a degree-6 polynomial, the exponent put in by bit arithmetic). libm's
/// `expf`/`tanhf` are scalar calls and were a fifth of an epoch.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest without a rounding instruction (baseline x86-64 has none).
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// Runs `f` compiled for AVX2 + FMA when the CPU has them (the gate loops then vectorise 8 wide);
/// otherwise as compiled for the baseline target.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected on this CPU.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// `dst[m×n] (+)= lhs · rhs`, `dst` row-major, `lhs` and `rhs` given by their (row, column) strides.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
) {
    matmul_with(
        m,
        n,
        k,
        dst,
        accumulate,
        lhs,
        lhs_strides,
        rhs,
        rhs_strides,
        gemm::Parallelism::None,
    )
}

/// [`matmul`] on the rayon pool when the product is large enough to gain from it.
#[allow(clippy::too_many_arguments)]
pub fn matmul_par(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
) {
    let par = parallelism(m, n, k);
    matmul_with(
        m,
        n,
        k,
        dst,
        accumulate,
        lhs,
        lhs_strides,
        rhs,
        rhs_strides,
        par,
    )
}

#[allow(clippy::too_many_arguments)]
fn matmul_with(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= m * n);
    let extent = |rows: usize, cols: usize, (rs, cs): (isize, isize)| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows as isize - 1) * rs + (cols as isize - 1) * cs + 1
        }
    };
    assert!(extent(m, k, lhs_strides) as usize <= lhs.len());
    assert!(extent(k, n, rhs_strides) as usize <= rhs.len());
    // SAFETY: the assertions above keep every addressed element inside its slice (all strides are
    // non-negative); dst does not alias lhs or rhs (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.1,
            lhs_strides.0,
            rhs.as_ptr(),
            rhs_strides.1,
            rhs_strides.0,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}
