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
///
/// # Panics
/// When an operand does not fit its slice or a stride is negative ([`check_operands`], with a
/// message naming the operand): the kernels compute their strides from shapes they checked, so this
/// is a bug in the caller, never a read out of bounds.
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

/// Elements a strided `rows x cols` operand addresses (the largest offset + 1), or a message when
/// a stride is negative or the offset overflows.
fn extent(rows: usize, cols: usize, (rs, cs): (isize, isize), what: &str) -> Result<usize> {
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    let fail = |why: &str| {
        candle_core::Error::Msg(format!(
            "matmul: {what} of {rows}x{cols} with strides ({rs}, {cs}) {why}"
        ))
    };
    if rs < 0 || cs < 0 {
        return Err(fail("has a negative stride"));
    }
    let last = |n: usize, s: isize| (n - 1).checked_mul(s as usize);
    last(rows, rs)
        .zip(last(cols, cs))
        .and_then(|(a, b)| a.checked_add(b))
        .and_then(|e| e.checked_add(1))
        .ok_or_else(|| fail("addresses past usize::MAX"))
}

/// Checks that a product's operands lie inside their slices: `dst` holds `m*n` elements, `lhs`
/// every element of its strided `m x k` view and `rhs` of its `k x n` view, all strides
/// non-negative. This is what makes the `unsafe` call to `gemm` in [`matmul_with`] sound.
#[allow(clippy::too_many_arguments)]
pub fn check_operands(
    m: usize,
    n: usize,
    k: usize,
    dst: usize,
    lhs: usize,
    lhs_strides: (isize, isize),
    rhs: usize,
    rhs_strides: (isize, isize),
) -> Result<()> {
    let short = |what: &str, need: usize, have: usize| {
        candle_core::Error::Msg(format!(
            "matmul {m}x{k} by {k}x{n}: {what} addresses {need} elements but holds {have}"
        ))
    };
    let out = m
        .checked_mul(n)
        .ok_or_else(|| candle_core::Error::Msg(format!("matmul: {m}x{n} overflows usize")))?;
    if out > dst {
        return Err(short("dst", out, dst));
    }
    let need = extent(m, k, lhs_strides, "lhs")?;
    if need > lhs {
        return Err(short("lhs", need, lhs));
    }
    let need = extent(k, n, rhs_strides, "rhs")?;
    if need > rhs {
        return Err(short("rhs", need, rhs));
    }
    Ok(())
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
    if let Err(e) = check_operands(
        m,
        n,
        k,
        dst.len(),
        lhs.len(),
        lhs_strides,
        rhs.len(),
        rhs_strides,
    ) {
        panic!("{e}");
    }
    // SAFETY: `check_operands` proved that every element gemm addresses (offsets
    // `i*rs + j*cs` for i < rows, j < cols, all strides non-negative, no overflow) lies inside its
    // slice, and `dst` holds m*n elements written with row stride n; dst does not alias lhs or rhs
    // (a `&mut` and two `&` borrows).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn product(lhs_strides: (isize, isize), lhs_len: usize) -> Vec<f32> {
        let lhs: Vec<f32> = (0..lhs_len).map(|v| v as f32).collect();
        let rhs = vec![1f32; 4];
        let mut dst = vec![0f32; 4];
        matmul(2, 2, 2, &mut dst, false, &lhs, lhs_strides, &rhs, (2, 1));
        dst
    }

    #[test]
    fn row_major_and_transposed_operands_multiply() {
        assert_eq!(product((2, 1), 4), vec![1.0, 1.0, 5.0, 5.0]);
        assert_eq!(product((1, 2), 4), vec![2.0, 2.0, 4.0, 4.0]);
    }

    #[test]
    #[should_panic(expected = "lhs addresses 4 elements but holds 3")]
    fn a_short_operand_is_refused() {
        product((2, 1), 3);
    }

    #[test]
    #[should_panic(expected = "negative stride")]
    fn a_negative_stride_is_refused() {
        // Extent 1 + (-1) + 1 = 1 would pass a check that ignored the sign, reading lhs[-1].
        product((-1, 1), 4);
    }

    #[test]
    fn huge_strides_and_short_outputs_are_errors() {
        let max = isize::MAX;
        assert!(check_operands(2, 2, 2, 4, 4, (max, max), 4, (2, 1)).is_err());
        let e = check_operands(2, 2, 2, 3, 4, (2, 1), 4, (2, 1)).unwrap_err();
        assert!(e.to_string().contains("dst addresses 4"), "{e}");
        assert!(check_operands(usize::MAX, 2, 0, 0, 0, (0, 0), 0, (0, 0)).is_err());
        assert!(check_operands(2, 2, 0, 4, 0, (0, 0), 0, (0, 0)).is_ok());
    }
}
