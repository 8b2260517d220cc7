//! Pooling the backbone's token states into what the cache stores: per word, the mean of its
//! sub-tokens; per sentence, the mean of every token (the sentence embedding).

use crate::backbone::BatchStates;
use crate::tokenize::Tokenized;

use super::rows::{ExampleRows, TokenRows};

/// Builds an example's features from one batch row of backbone outputs: the requested states
/// (`positions` into [`BatchStates::states`]) mean-pooled per word, and the pooled last state.
pub fn example_rows(
    out: &BatchStates,
    r: usize,
    tok: &Tokenized,
    positions: &[usize],
    last: usize,
) -> ExampleRows {
    let (rows, kept) = word_rows(out, r, tok, positions);
    ExampleRows {
        rows,
        words: kept.len(),
        kept,
        pooled: pooled_mean(out, r, tok.ids.len(), last),
    }
}

/// The sentence embedding: the mean of the first `n` token states of batch row `r` of state `last`
/// (special tokens included, as sentence-transformers pools).
pub fn pooled_mean(out: &BatchStates, r: usize, n: usize, last: usize) -> Vec<f32> {
    let hidden = out.states[last].shape()[2];
    let mut pooled = vec![0f32; hidden];
    for t in 0..n {
        for (a, v) in pooled
            .iter_mut()
            .zip(out.states[last].slice(ndarray::s![r, t, ..]).iter())
        {
            *a += *v;
        }
    }
    pooled.iter_mut().for_each(|a| *a /= n.max(1) as f32);
    pooled
}

/// Per word up to the last one with tokens ([`Tokenized::feature_words`]), per requested state: the
/// mean of the word's sub-token states (`[words, states, hidden]` row-major; zeros for a word
/// without tokens), and which of those words have features.
pub fn word_rows(
    out: &BatchStates,
    r: usize,
    tok: &Tokenized,
    positions: &[usize],
) -> (Vec<f32>, Vec<bool>) {
    let hidden = out.states[0].shape()[2];
    let words = &tok.word_tokens[..tok.feature_words()];
    let mut rows = vec![0f32; words.len() * positions.len() * hidden];
    let mut kept = Vec::with_capacity(words.len());
    for (w, &(s, e)) in words.iter().enumerate() {
        kept.push(e > s);
        if e <= s {
            continue;
        }
        let scale = 1.0 / (e - s) as f32;
        for (k, &p) in positions.iter().enumerate() {
            let dst = &mut rows[(w * positions.len() + k) * hidden..][..hidden];
            for t in s as usize..e as usize {
                for (a, v) in dst
                    .iter_mut()
                    .zip(out.states[p].slice(ndarray::s![r, t, ..]).iter())
                {
                    *a += *v;
                }
            }
            dst.iter_mut().for_each(|a| *a *= scale);
        }
    }
    (rows, kept)
}

/// The token-level states of batch row `r` (`positions` into [`BatchStates::states`]), as the
/// feature cache stores them for unfrozen top layers: `[tokens, states, hidden]`.
pub fn token_rows(out: &BatchStates, r: usize, tok: &Tokenized, positions: &[usize]) -> TokenRows {
    let hidden = out.states[0].shape()[2];
    let mut rows = Vec::with_capacity(tok.ids.len() * positions.len() * hidden);
    for t in 0..tok.ids.len() {
        for &p in positions {
            rows.extend(out.states[p].slice(ndarray::s![r, t, ..]).iter());
        }
    }
    TokenRows {
        rows,
        tokens: tok.ids.len(),
        word_tokens: tok.word_tokens[..tok.feature_words()].to_vec(),
    }
}
