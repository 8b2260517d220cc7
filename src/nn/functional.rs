//! Stateless functions with a backward pass: seeded dropout and the softmax.

use candle_core::{Result, Tensor, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::kernels::ops::const_mul;

/// Dropout with a seeded mask (candle's own dropout draws from an unseeded generator, which would make
/// runs irreproducible). `rng`: `None` at inference (the identity).
pub fn dropout(x: &Tensor, p: f32, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
    let Some(rng) = rng else { return Ok(x.clone()) };
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - p;
    // Bulk-drawn 32-bit words compared with an integer threshold: the same Bernoulli(keep) draw as
    // comparing a uniform float, without a float conversion per element.
    let mut bits = vec![0u32; x.elem_count()];
    rng.fill(&mut bits[..]);
    let threshold = (keep as f64 * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let scale = 1.0 / keep;
    let mask: Vec<f32> = bits
        .iter()
        .map(|&b| if b < threshold { scale } else { 0.0 })
        .collect();
    const_mul(x, mask, 1)
}

/// Softmax over the last dimension from differentiable primitives (candle's fused
/// `softmax_last_dim` has no backward pass).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Lends out an optional `(p, rng)` dropout pair for one call, keeping it for the next.
pub fn reborrow<'a>(
    d: &'a mut Option<(f32, &mut ChaCha8Rng)>,
) -> Option<(f32, &'a mut ChaCha8Rng)> {
    d.as_mut().map(|(p, rng)| (*p, &mut **rng))
}
