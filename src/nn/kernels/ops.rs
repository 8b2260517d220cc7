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

use super::simd::{dot, matmul_par, slice, values, with_values};

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
