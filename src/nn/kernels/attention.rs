//! Fused scaled-dot-product self-attention with a hand-written backward pass.
//!
//! From candle primitives the attention core of one layer was three head-split copies, a batched
//! `matmul` per score and context product (each of the `B x heads` tiny products a separate `gemm`
//! call that synchronised the rayon pool), an additive mask, a softmax of five ops and a merge copy,
//! and about twice as many ops again in the backward pass. [`AttentionOp`] does the whole core in
//! one pass over `(batch, head)` pairs, reading the heads of `q`, `k`, `v` `[B, T, H]` by stride
//! and writing the context in the same layout, so neither the split nor the merge is materialised.
//!
//! Semantics equal [`attention_reference`] (the former formulation, kept for the tests):
//! `S = q k^T / sqrt(d) + bias`, `P = softmax(S)` over keys (max-subtracted), `C = P v`.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::simd::{matmul, slice, with_values};

/// Self-attention of `heads` heads over `q`, `k`, `v` `[B, T, H]` (contiguous, f32), with a constant
/// additive key bias `[B, T]` (0 on tokens, a large negative value on padding; no gradient).
///
/// Result: the context `[B, T, H]`, head `h` in columns `h*d..(h+1)*d` (`d = H / heads`), the
/// layout of the usual `transpose(1, 2)` + reshape merge. When `save_probs` is set the
/// probabilities `P` (`[B, heads, T, T]`) are kept for the backward pass; otherwise it recomputes
/// them.
#[derive(Debug)]
pub struct AttentionOp {
    /// Attention heads.
    pub heads: usize,
    /// The additive key bias, `B * T` values.
    pub bias: Vec<f32>,
    /// Keep `P` from the forward pass (training).
    pub save_probs: bool,
    saved: std::sync::Mutex<Option<Vec<f32>>>,
}

/// Shapes of one call, checked once.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    heads: usize,
    d: usize,
}

impl Dims {
    fn scale(&self) -> f32 {
        (1.0 / (self.d as f64).sqrt()) as f32
    }
}

impl AttentionOp {
    /// The op for a batch with this key bias (`B * T` values).
    pub fn new(heads: usize, bias: Vec<f32>, save_probs: bool) -> Self {
        Self {
            heads,
            bias,
            save_probs,
            saved: Default::default(),
        }
    }

    fn dims(&self, shapes: [&Shape; 3]) -> Result<Dims> {
        let (b, t, h) = shapes[0].dims3()?;
        let bad = |m: String| Err(candle_core::Error::Msg(format!("fused attention: {m}")));
        if shapes[1].dims() != [b, t, h] || shapes[2].dims() != [b, t, h] {
            return bad(format!(
                "q, k, v must have one shape [B, T, H]: {:?}, {:?}, {:?}",
                shapes[0].dims(),
                shapes[1].dims(),
                shapes[2].dims()
            ));
        }
        if self.heads == 0 || h % self.heads != 0 {
            return bad(format!(
                "width {h} is not a multiple of {} heads",
                self.heads
            ));
        }
        if self.bias.len() != b * t {
            return bad(format!(
                "{} bias values for a batch of {b} x {t}",
                self.bias.len()
            ));
        }
        Ok(Dims {
            b,
            t,
            h,
            heads: self.heads,
            d: h / self.heads,
        })
    }

    /// `P` for every `(batch, head)`, `[B, heads, T, T]`, and optionally the context.
    fn forward(
        &self,
        dm: Dims,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        ctx: Option<&mut [f32]>,
    ) -> Vec<f32> {
        let Dims { t, h, heads, d, .. } = dm;
        let scale = dm.scale();
        let mut probs = vec![0f32; dm.b * heads * t * t];
        if t == 0 || d == 0 {
            return probs;
        }
        let per_batch = |bi: usize, p_b: &mut [f32], c_b: Option<&mut [f32]>| {
            let base = bi * t * h;
            let bias = &self.bias[bi * t..(bi + 1) * t];
            let mut buf = vec![0f32; t * d];
            let mut c_b = c_b;
            for hd in 0..heads {
                let p = &mut p_b[hd * t * t..(hd + 1) * t * t];
                let col = base + hd * d;
                // S = Q K^T: rhs[c][j] = K[j][c]
                matmul(
                    t,
                    t,
                    d,
                    p,
                    false,
                    &q[col..],
                    (h as isize, 1),
                    &k[col..],
                    (1, h as isize),
                );
                for row in p.chunks_exact_mut(t) {
                    for (s, &bj) in row.iter_mut().zip(bias) {
                        *s = *s * scale + bj;
                    }
                    softmax_in_place(row);
                }
                if let Some(c_b) = c_b.as_deref_mut() {
                    matmul(
                        t,
                        d,
                        t,
                        &mut buf,
                        false,
                        p,
                        (t as isize, 1),
                        &v[col..],
                        (h as isize, 1),
                    );
                    scatter_head(c_b, &buf, h, hd * d);
                }
            }
        };
        let chunk = heads * t * t;
        match ctx {
            Some(c) => probs
                .par_chunks_mut(chunk)
                .zip(c.par_chunks_mut(t * h))
                .enumerate()
                .for_each(|(bi, (p_b, c_b))| per_batch(bi, p_b, Some(c_b))),
            None => probs
                .par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(bi, p_b)| per_batch(bi, p_b, None)),
        }
        probs
    }
}

/// Copies one head's `[T, d]` block into columns `offset..offset + d` of a `[T, H]` slab.
#[inline]
fn scatter_head(slab: &mut [f32], block: &[f32], h: usize, offset: usize) {
    let d = block.len() / (slab.len() / h);
    for (row, src) in slab.chunks_exact_mut(h).zip(block.chunks_exact(d)) {
        row[offset..offset + d].copy_from_slice(src);
    }
}

/// Max-subtracted softmax of one row of scores. A row with no finite score (every key masked with
/// `-inf`) becomes all zeros rather than NaN.
#[inline]
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        row.fill(0.0);
        return;
    }
    let mut sum = 0f32;
    for s in row.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    for s in row.iter_mut() {
        *s *= inv;
    }
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "edgetune-attention"
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
        let dm = self.dims([l1.shape(), l2.shape(), l3.shape()])?;
        let (q, k, v) = (
            slice(s1, l1, self.name())?,
            slice(s2, l2, self.name())?,
            slice(s3, l3, self.name())?,
        );
        let mut ctx = vec![0f32; dm.b * dm.t * dm.h];
        let probs = self.forward(dm, q, k, v, Some(&mut ctx));
        if self.save_probs {
            *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some(probs);
        }
        Ok((CpuStorage::F32(ctx), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dm = self.dims([q.shape(), k.shape(), v.shape()])?;
        let Dims { t, h, heads, d, .. } = dm;
        let scale = dm.scale();
        let n = dm.b * t * h;
        let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        if t == 0 || d == 0 {
            return Ok((None, None, None));
        }
        with_values(q, |qv| {
            with_values(k, |kv| {
                with_values(v, |vv| {
                    with_values(grad, |gv| {
                        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
                        let recomputed;
                        let probs: &[f32] = match saved.as_deref() {
                            Some(p) => p,
                            None => {
                                recomputed = self.forward(dm, qv, kv, vv, None);
                                &recomputed
                            }
                        };
                        dq.par_chunks_mut(t * h)
                            .zip(dk.par_chunks_mut(t * h))
                            .zip(dv.par_chunks_mut(t * h))
                            .enumerate()
                            .for_each(|(bi, ((dq_b, dk_b), dv_b))| {
                                let (hs, ts) = (h as isize, t as isize);
                                let mut ds = vec![0f32; t * t];
                                let mut buf = vec![0f32; t * d];
                                for hd in 0..heads {
                                    let p = &probs[(bi * heads + hd) * t * t..][..t * t];
                                    let col = bi * t * h + hd * d;
                                    let (qh, kh, vh, gh) =
                                        (&qv[col..], &kv[col..], &vv[col..], &gv[col..]);
                                    // dP = dC V^T
                                    matmul(t, t, d, &mut ds, false, gh, (hs, 1), vh, (1, hs));
                                    // dS = P * (dP - rowsum(dP * P)), times 1 / sqrt(d)
                                    for (dsi, pi) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                                        let rowsum: f32 =
                                            dsi.iter().zip(pi).map(|(a, b)| a * b).sum();
                                        for (x, &pj) in dsi.iter_mut().zip(pi) {
                                            *x = pj * (*x - rowsum) * scale;
                                        }
                                    }
                                    // dV = P^T dC
                                    matmul(t, d, t, &mut buf, false, p, (1, ts), gh, (hs, 1));
                                    scatter_head(dv_b, &buf, h, hd * d);
                                    // dQ = dS K / sqrt(d)
                                    matmul(t, d, t, &mut buf, false, &ds, (ts, 1), kh, (hs, 1));
                                    scatter_head(dq_b, &buf, h, hd * d);
                                    // dK = dS^T Q / sqrt(d)
                                    matmul(t, d, t, &mut buf, false, &ds, (1, ts), qh, (hs, 1));
                                    scatter_head(dk_b, &buf, h, hd * d);
                                }
                            });
                    })
                })
            })
        })????;
        let dev = q.device();
        let out = |g: Vec<f32>, x: &Tensor| -> Result<Option<Tensor>> {
            if x.track_op() {
                Ok(Some(Tensor::from_vec(g, x.shape(), dev)?))
            } else {
                Ok(None)
            }
        };
        Ok((out(dq, q)?, out(dk, k)?, out(dv, v)?))
    }
}

/// Fused self-attention: `q`, `k`, `v` `[B, T, H]`, `bias` the additive key mask (any shape of
/// `B * T` elements, e.g. `[B, 1, 1, T]` from
/// [`super::layers::TopLayers::attention_bias`]; a constant). Returns the context `[B, T, H]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    heads: usize,
) -> Result<Tensor> {
    let bias = bias.detach().flatten_all()?.to_vec1::<f32>()?;
    let save = q.track_op() || k.track_op() || v.track_op();
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        AttentionOp::new(heads, bias, save),
    )
}

/// The same from candle primitives (the former formulation; the reference for the tests): head
/// split copies, batched `matmul`s, [`crate::nn::functional::softmax_last`] of the biased scores.
pub fn attention_reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    heads: usize,
) -> Result<Tensor> {
    let (b, t, h) = q.dims3()?;
    let d = h / heads;
    let split = |x: &Tensor| -> Result<Tensor> {
        x.reshape((b, t, heads, d))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let scores = (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?;
    let probs =
        crate::nn::functional::softmax_last(&scores.broadcast_add(&bias.reshape((b, 1, 1, t))?)?)?;
    probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, t, h))
}
