//! Operations whose backward pass computes only what training needs.
//!
//! candle's backward pass computes the gradient of *every* argument of an operation, tracked or
//! not: multiplying the cached hidden states (constants) by a mix weight also builds a gradient the
//! size of the batch for the states, into a freshly zeroed buffer, and throws it away. For the
//! layer mix and dropout that waste was the larger part of an epoch. These ops return no gradient
//! for their constant argument. [`LinearOp`] replaces candle's `matmul(w.t()) + broadcast_add(b)`,
//! whose backward reduced the bias gradient and transposed the weight gradient through slow
//! strided paths.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use rayon::prelude::*;
use std::f32::consts::FRAC_1_SQRT_2;

use super::gru::{dispatch, exp, matmul_par};

/// The elements of a contiguous f32 CPU storage (custom ops' inputs), or an error naming `op`.
pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
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
fn dot(a: &[f32], b: &[f32]) -> f32 {
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

fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// Runs `f` on the elements of `t` in row-major order: in place when `t` is a contiguous CPU f32
/// tensor (no copy of the batch-sized tensors the backward passes read), else on a copy.
pub(crate) fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
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
pub(crate) fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && m * n * k >= 1 << 21 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `x * factors`, where each factor scales `inner` consecutive elements of `x` (1 for dropout
/// masks, the last dimension for a per-position mask). The factors are constants: no gradient.
#[derive(Debug, Clone)]
pub struct ConstMul {
    pub factors: Vec<f32>,
    pub inner: usize,
}

impl ConstMul {
    fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        if self.inner == 1 && x.len() == self.factors.len() {
            return Ok(x.iter().zip(&self.factors).map(|(a, b)| a * b).collect());
        }
        if self.inner == 0 || x.len() != self.factors.len() * self.inner {
            return Err(candle_core::Error::Msg(format!(
                "const-mul: {} factors x {} for {} elements",
                self.factors.len(),
                self.inner,
                x.len()
            )));
        }
        Ok(x.chunks_exact(self.inner)
            .zip(&self.factors)
            .flat_map(|(c, &f)| c.iter().map(move |v| v * f))
            .collect())
    }
}

impl CustomOp1 for ConstMul {
    fn name(&self) -> &'static str {
        "edgetune-const-mul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = self.apply(slice(s, l, self.name())?)?;
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = with_values(grad, |g| self.apply(g))??;
        Ok(Some(Tensor::from_vec(g, grad.shape(), grad.device())?))
    }
}

/// `x * factors` with constant factors (see [`ConstMul`]); `x` contiguous or not.
pub fn const_mul(x: &Tensor, factors: Vec<f32>, inner: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1(ConstMul { factors, inner })
}

/// The layer mix `out[.., h] = sum_k w[k] x[.., k, h]` over `x: [.., K, H]`, `w: [K]`.
///
/// The gradient for `x` is computed only when `x` is tracked (states from unfrozen layers); the
/// cached states are not.
#[derive(Debug, Clone, Copy)]
pub struct MixOp;

impl CustomOp2 for MixOp {
    fn name(&self) -> &'static str {
        "edgetune-layer-mix"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, self.name())?;
        let w = slice(s2, l2, self.name())?;
        let dims = l1.shape().dims();
        let k = w.len();
        if dims.len() < 2 || dims[dims.len() - 2] != k {
            return Err(candle_core::Error::Msg(format!(
                "layer mix: {k} weights for states of shape {dims:?}"
            )));
        }
        let h = dims[dims.len() - 1];
        let mut out = vec![0f32; x.len() / k];
        for (o, xs) in out.chunks_exact_mut(h).zip(x.chunks_exact(k * h)) {
            for (xk, &wk) in xs.chunks_exact(h).zip(w) {
                for (a, v) in o.iter_mut().zip(xk) {
                    *a += wk * v;
                }
            }
        }
        let mut shape = dims[..dims.len() - 2].to_vec();
        shape.push(h);
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let wv = values(w)?;
        let (k, h) = (wv.len(), *x.dims().last().unwrap_or(&1));
        let want_dx = x.track_op();
        let (dw, dx) = with_values(x, |xv| {
            with_values(grad, |gv| {
                let mut dw = vec![0f32; k];
                for (g, xs) in gv.chunks_exact(h).zip(xv.chunks_exact(k * h)) {
                    for (d, xk) in dw.iter_mut().zip(xs.chunks_exact(h)) {
                        *d += dot(g, xk);
                    }
                }
                let dx = want_dx.then(|| {
                    let mut dx = vec![0f32; xv.len()];
                    for (dxs, g) in dx.chunks_exact_mut(k * h).zip(gv.chunks_exact(h)) {
                        for (dxk, &wk) in dxs.chunks_exact_mut(h).zip(&wv) {
                            for (a, b) in dxk.iter_mut().zip(g) {
                                *a = wk * b;
                            }
                        }
                    }
                    dx
                });
                (dw, dx)
            })
        })??;
        let dx = match dx {
            Some(v) => Some(Tensor::from_vec(v, x.shape(), x.device())?),
            None => None,
        };
        Ok((dx, Some(Tensor::from_vec(dw, w.shape(), w.device())?)))
    }
}

/// A dense layer `y = x W^T + b` over `x: [N, IN]`, `W: [OUT, IN]`, `b: [OUT]` -> `[N, OUT]`.
#[derive(Debug, Clone, Copy)]
pub struct LinearOp;

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "edgetune-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (
            slice(s1, l1, self.name())?,
            slice(s2, l2, self.name())?,
            slice(s3, l3, self.name())?,
        );
        let (n, inp) = l1.shape().dims2()?;
        let (out, inp2) = l2.shape().dims2()?;
        if inp != inp2 || b.len() != out {
            return Err(candle_core::Error::Msg(format!(
                "linear: input {:?}, weight {:?}, bias {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )));
        }
        let mut y = Vec::with_capacity(n * out);
        for _ in 0..n {
            y.extend_from_slice(b);
        }
        // rhs[k][j] = W[j][k]
        matmul_par(
            n,
            out,
            inp,
            &mut y,
            true,
            x,
            (inp as isize, 1),
            w,
            (1, inp as isize),
        );
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, inp) = x.dims2()?;
        let out = w.dim(0)?;
        let wv = values(w)?;
        let want_dx = x.track_op();
        let (dw, db, dx) = with_values(x, |xv| {
            with_values(grad, |gv| {
                // dW = dy^T x: [OUT, N] x [N, IN]
                let mut dw = vec![0f32; out * inp];
                matmul_par(
                    out,
                    inp,
                    n,
                    &mut dw,
                    false,
                    gv,
                    (1, out as isize),
                    xv,
                    (inp as isize, 1),
                );
                let mut db = vec![0f32; out];
                for row in gv.chunks_exact(out) {
                    for (a, v) in db.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                // dx = dy W: [N, OUT] x [OUT, IN]
                let dx = want_dx.then(|| {
                    let mut dx = vec![0f32; n * inp];
                    matmul_par(
                        n,
                        inp,
                        out,
                        &mut dx,
                        false,
                        gv,
                        (out as isize, 1),
                        &wv,
                        (inp as isize, 1),
                    );
                    dx
                });
                (dw, db, dx)
            })
        })??;
        let dx = match dx {
            Some(v) => Some(Tensor::from_vec(v, x.shape(), x.device())?),
            None => None,
        };
        let dev = w.device();
        Ok((
            dx,
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
            Some(Tensor::from_vec(db, b.shape(), dev)?),
        ))
    }
}

/// Layer normalisation over the last dimension, `y = (x - mean) / sqrt(var + eps) * w + b` (biased
/// variance), with a hand-written backward pass: the same values as the formulation from candle
/// primitives (mean, subtract, square, mean, sqrt, divide, multiply, add; candle's fused
/// `layer_norm` has no backward pass), in one pass instead of about thirty batch-sized
/// temporaries. Arguments: `x: [N, H]` contiguous, `w: [H]`, `b: [H]`.
#[derive(Debug, Clone, Copy)]
pub struct LayerNormOp {
    /// Added to the variance.
    pub eps: f32,
}

impl LayerNormOp {
    /// Per row: mean and 1 / sqrt(var + eps).
    fn stats(&self, row: &[f32]) -> (f32, f32) {
        let h = row.len() as f32;
        let mean = row.iter().sum::<f32>() / h;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h;
        (mean, 1.0 / (var + self.eps).sqrt())
    }
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "edgetune-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, self.name())?;
        let w = slice(s2, l2, self.name())?;
        let b = slice(s3, l3, self.name())?;
        let h = w.len();
        if h == 0 || b.len() != h || l1.shape().dims().last() != Some(&h) {
            return Err(candle_core::Error::Msg(format!(
                "layer norm: input {:?}, scale {h}, shift {}",
                l1.shape().dims(),
                b.len()
            )));
        }
        let mut out = vec![0f32; x.len()];
        for (o, row) in out.chunks_exact_mut(h).zip(x.chunks_exact(h)) {
            let (mean, rstd) = self.stats(row);
            for (((o, &v), &wk), &bk) in o.iter_mut().zip(row).zip(w).zip(b) {
                *o = (v - mean) * rstd * wk + bk;
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let wv = values(w)?;
        let h = wv.len();
        let (dx, dw, db) = with_values(x, |xv| {
            with_values(grad, |gv| {
                let mut dx = vec![0f32; xv.len()];
                let mut dw = vec![0f32; h];
                let mut db = vec![0f32; h];
                let mut xhat = vec![0f32; h];
                let mut dxhat = vec![0f32; h];
                for ((row, g), d) in xv
                    .chunks_exact(h)
                    .zip(gv.chunks_exact(h))
                    .zip(dx.chunks_exact_mut(h))
                {
                    let (mean, rstd) = self.stats(row);
                    let (mut m1, mut m2) = (0f32, 0f32);
                    for k in 0..h {
                        xhat[k] = (row[k] - mean) * rstd;
                        dxhat[k] = g[k] * wv[k];
                        dw[k] += g[k] * xhat[k];
                        db[k] += g[k];
                        m1 += dxhat[k];
                        m2 += dxhat[k] * xhat[k];
                    }
                    let (m1, m2) = (m1 / h as f32, m2 / h as f32);
                    for k in 0..h {
                        d[k] = rstd * (dxhat[k] - m1 - xhat[k] * m2);
                    }
                }
                (dx, dw, db)
            })
        })??;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            Some(Tensor::from_vec(db, b.shape(), b.device())?),
        ))
    }
}

/// Exact (erf, not tanh) GELU, `x / 2 * (1 + erf(x / sqrt 2))`, with a one-pass backward pass
/// (`d/dx = (1 + erf(x / sqrt 2)) / 2 + x e^(-x^2 / 2) / sqrt(2 pi)`), on the rayon pool, in
/// loops that vectorise ([`erf`] and `exp` branch-free; AVX2 when the CPU has it). candle's
/// `gelu_erf` calls libm's scalar `erff` per element and builds the derivative from about a dozen
/// batch-sized temporaries; values agree within 2e-6 absolute (`tests/grad_tests.rs`).
#[derive(Debug, Clone, Copy)]
pub struct GeluErfOp;

/// `1 / sqrt(2 pi)`.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// Elements per parallel task of [`GeluErfOp`].
const GELU_CHUNK: usize = 1 << 14;

/// `erf(x)` to within 4.2e-7 absolute: `x P(x^2) / Q(x^2)` on `[-4, 4]` (the rational
/// approximation of Eigen and XLA; `1 - erf(4) < 2e-8`, so the input is clamped), branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_4e-4;
    p = p * x2 - 2.954_6e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_15e-5f32;
    q = q * x2 - 2.133_740_5e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329_3e-3;
    q = q * x2 - 1.426_473_9e-2;
    x * p / q
}

impl CustomOp1 for GeluErfOp {
    fn name(&self) -> &'static str {
        "edgetune-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(GELU_CHUNK)
            .zip(x.par_chunks(GELU_CHUNK))
            .for_each(|(o, x)| {
                dispatch(|| {
                    for (o, &v) in o.iter_mut().zip(x) {
                        *o = (erf(v * FRAC_1_SQRT_2) + 1.) * 0.5 * v;
                    }
                })
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_values(x, |xv| {
            with_values(grad, |gv| {
                let mut dx = vec![0f32; xv.len()];
                dx.par_chunks_mut(GELU_CHUNK)
                    .zip(xv.par_chunks(GELU_CHUNK).zip(gv.par_chunks(GELU_CHUNK)))
                    .for_each(|(d, (xs, gs))| {
                        dispatch(|| {
                            for ((d, &v), &g) in d.iter_mut().zip(xs).zip(gs) {
                                let cdf = 0.5 * (1. + erf(v * FRAC_1_SQRT_2));
                                *d = g * (cdf + v * exp(-0.5 * v * v) * FRAC_1_SQRT_2PI);
                            }
                        })
                    });
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Exact GELU of `x` (contiguous or not) as [`GeluErfOp`].
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluErfOp)
}
