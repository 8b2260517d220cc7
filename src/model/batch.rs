//! Padded candle batches of per-example features: the task model's input.

use candle_core::{Device, Result, Tensor};

use crate::features::{ExampleRows, TokenRows};

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

/// A padded batch of token-level states, with what turns token states into the heads' word rows.
pub struct TokenBatch {
    /// `[B, T, K, H]`: the cached states (constants).
    pub states: Tensor,
    /// `[B, T]`, 1.0 on tokens, 0.0 on padding.
    pub token_mask: Tensor,
    /// `[B, W, T]`: row `w` averages word `w`'s sub-tokens (all zero for a word cut by truncation).
    pub word_avg: Tensor,
    /// `[B, W]`, 1.0 for words with features.
    pub word_mask: Tensor,
    /// `[B, 1, T]`: the mean over every token of a sentence (the pooled sentence embedding).
    pub sentence_avg: Tensor,
    /// Longest sentence in words (at least 1).
    pub width: usize,
}

/// Pads token-level examples to the longest one (at least one token and one word wide).
pub fn make_token_batch(
    examples: &[&TokenRows],
    states: usize,
    hidden: usize,
    dev: &Device,
) -> Result<TokenBatch> {
    let b = examples.len();
    let t = examples.iter().map(|e| e.tokens).max().unwrap_or(0).max(1);
    let w = examples
        .iter()
        .map(|e| e.word_tokens.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let row = states * hidden;
    let mut data = vec![0f32; b * t * row];
    let mut token_mask = vec![0f32; b * t];
    let mut word_avg = vec![0f32; b * w * t];
    let mut word_mask = vec![0f32; b * w];
    let mut sentence_avg = vec![0f32; b * t];
    for (i, e) in examples.iter().enumerate() {
        data[i * t * row..i * t * row + e.rows.len()].copy_from_slice(&e.rows);
        let n = e.tokens.max(1);
        for j in 0..e.tokens {
            token_mask[i * t + j] = 1.0;
            sentence_avg[i * t + j] = 1.0 / n as f32;
        }
        for (j, &(s, end)) in e.word_tokens.iter().enumerate() {
            if end <= s {
                continue;
            }
            word_mask[i * w + j] = 1.0;
            let scale = 1.0 / (end - s) as f32;
            for tok in s as usize..end as usize {
                word_avg[(i * w + j) * t + tok] = scale;
            }
        }
    }
    Ok(TokenBatch {
        states: Tensor::from_vec(data, (b, t, states, hidden), dev)?,
        token_mask: Tensor::from_vec(token_mask, (b, t), dev)?,
        word_avg: Tensor::from_vec(word_avg, (b, w, t), dev)?,
        word_mask: Tensor::from_vec(word_mask, (b, w), dev)?,
        sentence_avg: Tensor::from_vec(sentence_avg, (b, 1, t), dev)?,
        width: w,
    })
}
