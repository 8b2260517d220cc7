//! Inference with a trained run: features straight from the backbone (no cache), heads, decoding to
//! labels, word spans and character offsets.

use candle_core::Device;
use serde::Serialize;

use crate::backbone::{Backbone, BatchStates};
use crate::eval::Prediction;
use crate::heads::{softmax_last, Heads};
use crate::tokenize::Tokenized;
use crate::train::batch::{make_batch, make_token_batch, Batch, ExampleRows, TokenRows};

/// Decoded output of the heads for one example.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Intent id, its probability, and the logits over all intents.
    pub intent: Option<(usize, f32, Vec<f32>)>,
    /// Arg-max tag id and its probability per word.
    pub tags: Option<Vec<(usize, f32)>>,
    /// The full tag distribution per word (what [`to_prediction`] decodes).
    pub tag_probs: Option<Vec<Vec<f32>>>,
}

/// Runs the heads on a batch and decodes arg-max labels.
pub fn decode_batch(
    heads: &Heads,
    batch: &Batch,
    words_per_example: &[usize],
) -> candle_core::Result<Vec<Decoded>> {
    let n = words_per_example.len();
    let out = heads.forward(batch, true, true, None)?;
    let intents = match out.intent {
        Some(logits) => {
            let probs = softmax_last(&logits)?;
            let logits: Vec<Vec<f32>> = logits.to_vec2()?;
            let probs: Vec<Vec<f32>> = probs.to_vec2()?;
            Some(
                logits
                    .into_iter()
                    .zip(probs)
                    .map(|(l, p)| {
                        let (id, prob) = argmax(&p);
                        (id, prob, l)
                    })
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    let tags = match out.slot {
        Some(logits) => {
            let probs = softmax_last(&logits)?;
            let probs: Vec<Vec<Vec<f32>>> = probs.to_vec3()?;
            Some(
                probs
                    .into_iter()
                    .zip(words_per_example)
                    .map(|(mut p, &w)| {
                        p.truncate(w);
                        p
                    })
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    let mut out = Vec::with_capacity(n);
    let mut intents = intents.map(|v| v.into_iter());
    let mut tags = tags.map(|v| v.into_iter());
    for _ in 0..n {
        let probs = tags.as_mut().and_then(|it| it.next());
        out.push(Decoded {
            intent: intents.as_mut().and_then(|it| it.next()),
            tags: probs
                .as_ref()
                .map(|p| p.iter().map(|row| argmax(row)).collect()),
            tag_probs: probs,
        });
    }
    Ok(out)
}

/// Index and value of the largest element (first on ties).
pub fn argmax(v: &[f32]) -> (usize, f32) {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
}

/// Labels of a decoded example: the intent's arg-max, and the most probable tag sequence that is
/// valid BIO (an `I-X` only after `B-X` or `I-X`); words cut by truncation are tagged `O`.
pub fn to_prediction(heads: &Heads, d: &Decoded, kept: &[bool]) -> Prediction {
    Prediction {
        intent: d
            .intent
            .as_ref()
            .map(|(i, _, _)| heads.config.intents[*i].clone()),
        tags: d.tag_probs.as_ref().map(|p| {
            bio_viterbi(p, &heads.config.tags)
                .into_iter()
                .zip(kept)
                .map(|(id, &k)| {
                    if k {
                        heads.config.tags[id].clone()
                    } else {
                        "O".to_string()
                    }
                })
                .collect()
        }),
    }
}

/// The most probable tag sequence under per-word distributions `probs` that obeys BIO: no `I-X`
/// at the start or after anything but `B-X`/`I-X`. Returns tag ids.
pub fn bio_viterbi(probs: &[Vec<f32>], tags: &[String]) -> Vec<usize> {
    let n = tags.len();
    if probs.is_empty() || n == 0 {
        return Vec::new();
    }
    let inside: Vec<Option<&str>> = tags.iter().map(|t| t.strip_prefix("I-")).collect();
    fn kind(t: &str) -> &str {
        t.get(2..).unwrap_or("")
    }
    let allowed = |prev: Option<usize>, next: usize| match inside[next] {
        None => true,
        Some(x) => prev.is_some_and(|p| {
            (tags[p].starts_with("B-") || tags[p].starts_with("I-")) && kind(&tags[p]) == x
        }),
    };
    let logp = |p: f32| (p.max(1e-12) as f64).ln();
    let mut score: Vec<f64> = (0..n)
        .map(|j| {
            if allowed(None, j) {
                logp(probs[0][j])
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let mut back: Vec<Vec<usize>> = Vec::with_capacity(probs.len());
    for row in &probs[1..] {
        let mut next = vec![f64::NEG_INFINITY; n];
        let mut from = vec![0usize; n];
        for j in 0..n {
            for i in 0..n {
                if score[i] > f64::NEG_INFINITY && allowed(Some(i), j) && score[i] > next[j] {
                    next[j] = score[i];
                    from[j] = i;
                }
            }
            next[j] += logp(row[j]);
        }
        back.push(from);
        score = next;
    }
    let mut best = (0..n).fold(0, |b, j| if score[j] > score[b] { j } else { b });
    let mut path = vec![best];
    for from in back.iter().rev() {
        best = from[best];
        path.push(best);
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viterbi_repairs_invalid_bio() {
        let tags: Vec<String> = ["O", "B-a", "I-a", "B-b", "I-b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Arg-max would be O I-a I-a: invalid start of a chunk.
        let p = vec![
            vec![0.6, 0.3, 0.05, 0.03, 0.02],
            vec![0.1, 0.1, 0.7, 0.05, 0.05],
            vec![0.1, 0.1, 0.7, 0.05, 0.05],
        ];
        assert_eq!(bio_viterbi(&p, &tags), vec![1, 2, 2]);
        // B-a I-b is invalid: the type must continue.
        let p = vec![vec![0.0, 0.9, 0.0, 0.1, 0.0], vec![0.1, 0.0, 0.3, 0.0, 0.6]];
        assert_eq!(bio_viterbi(&p, &tags), vec![1, 2]);
        // A valid arg-max path is kept.
        let p = vec![vec![0.1, 0.8, 0.1, 0.0, 0.0], vec![0.9, 0.0, 0.1, 0.0, 0.0]];
        assert_eq!(bio_viterbi(&p, &tags), vec![1, 0]);
    }
}

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
        words: tok.word_tokens.len(),
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

/// Per word, per requested state: the mean of the word's sub-token states (`[words, states,
/// hidden]` row-major; zeros for a word cut by truncation), and which words have features.
pub fn word_rows(
    out: &BatchStates,
    r: usize,
    tok: &Tokenized,
    positions: &[usize],
) -> (Vec<f32>, Vec<bool>) {
    let hidden = out.states[0].shape()[2];
    let mut rows = vec![0f32; tok.word_tokens.len() * positions.len() * hidden];
    let mut kept = Vec::with_capacity(tok.word_tokens.len());
    for (w, &(s, e)) in tok.word_tokens.iter().enumerate() {
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
        word_tokens: tok.word_tokens.clone(),
    }
}

/// A slot found in a text: type, text, word range and character (byte) range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotSpan {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    /// First word (0-based).
    pub start: usize,
    /// One past the last word.
    pub end: usize,
    /// Byte offset of the first character in the input line.
    pub char_start: usize,
    /// Byte offset one past the last character.
    pub char_end: usize,
    /// Mean probability of the span's tags.
    pub prob: f32,
}

/// Runs the backbone and heads over tokenized examples in batches; returns decoded outputs and
/// per-example kept-word flags.
pub fn run_examples(
    backbone: &mut Backbone,
    heads: &Heads,
    states: &[usize],
    toks: &[Tokenized],
    batch_size: usize,
) -> anyhow::Result<Vec<(Decoded, Vec<bool>)>> {
    let (positions, last) = backbone.positions(states);
    let mut order: Vec<usize> = (0..toks.len()).collect();
    order.sort_by_key(|&i| (toks[i].ids.len(), i));
    let mut results: Vec<Option<(Decoded, Vec<bool>)>> = vec![None; toks.len()];
    let dev = Device::Cpu;
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
        let out = backbone.run(&batch)?;
        if heads.top.is_some() {
            // Unfrozen top layers: they run on the token states, then pool to words.
            let rows: Vec<TokenRows> = (0..chunk.len())
                .map(|r| token_rows(&out, r, batch[r], &positions))
                .collect();
            let refs: Vec<&TokenRows> = rows.iter().collect();
            let tb = make_token_batch(&refs, states.len(), backbone.hidden, &dev)?;
            let b = heads.token_inputs(&tb, None)?;
            let words: Vec<usize> = rows.iter().map(|r| r.word_tokens.len()).collect();
            let decoded = decode_batch(heads, &b, &words)?;
            for ((&i, d), r) in chunk.iter().zip(decoded).zip(rows) {
                let kept = r.word_tokens.iter().map(|(s, e)| e > s).collect();
                results[i] = Some((d, kept));
            }
            continue;
        }
        let rows: Vec<ExampleRows> = (0..chunk.len())
            .map(|r| example_rows(&out, r, batch[r], &positions, last))
            .collect();
        let refs: Vec<&ExampleRows> = rows.iter().collect();
        let b = make_batch(&refs, states.len(), backbone.hidden, &dev)?;
        let words: Vec<usize> = rows.iter().map(|r| r.words).collect();
        let decoded = decode_batch(heads, &b, &words)?;
        for ((&i, d), r) in chunk.iter().zip(decoded).zip(rows) {
            results[i] = Some((d, r.kept));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every example decoded"))
        .collect())
}
