//! Building padded candle batches from per-example features.

use candle_core::{Device, Result, Tensor};

/// The features of one example, in memory: `words × states × hidden` values plus the pooled embedding.
#[derive(Debug, Clone, Default)]
pub struct ExampleRows {
    /// Row-major `[words, states, hidden]`.
    pub rows: Vec<f32>,
    /// Number of words (rows).
    pub words: usize,
    /// Per word: whether it has features (false when truncation cut it).
    pub kept: Vec<bool>,
    /// Mean-pooled last hidden state.
    pub pooled: Vec<f32>,
}

/// A padded batch.
pub struct Batch {
    /// `[B, W, K, H]`.
    pub words: Tensor,
    /// `[B, W]`, 1.0 for words with features.
    pub mask: Tensor,
    /// `[B, H]`.
    pub pooled: Tensor,
    /// Longest sentence in words.
    pub width: usize,
}

/// Pads `examples` to the longest one (at least one word wide).
pub fn make_batch(
    examples: &[&ExampleRows],
    states: usize,
    hidden: usize,
    dev: &Device,
) -> Result<Batch> {
    let b = examples.len();
    let w = examples.iter().map(|e| e.words).max().unwrap_or(0).max(1);
    let row = states * hidden;
    let mut words = vec![0f32; b * w * row];
    let mut mask = vec![0f32; b * w];
    let mut pooled = Vec::with_capacity(b * hidden);
    for (i, e) in examples.iter().enumerate() {
        words[i * w * row..i * w * row + e.rows.len()].copy_from_slice(&e.rows);
        for (j, &k) in e.kept.iter().enumerate() {
            mask[i * w + j] = if k { 1.0 } else { 0.0 };
        }
        pooled.extend_from_slice(&e.pooled);
    }
    Ok(Batch {
        words: Tensor::from_vec(words, (b, w, states, hidden), dev)?,
        mask: Tensor::from_vec(mask, (b, w), dev)?,
        pooled: Tensor::from_vec(pooled, (b, hidden), dev)?,
        width: w,
    })
}
