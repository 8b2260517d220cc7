//! Layer normalisation with a hand-written backward pass.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::simd::{slice, values, with_values};

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
