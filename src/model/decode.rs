//! The task model's outputs as decoded values ([`crate::predict::Decoded`]): on a padded batch of
//! cached features ([`decode_batch`]), or straight from the backbone over tokenized examples
//! ([`decode_examples`], what `infer --run` and the export's self-check run).

use candle_core::{Device, Result};

use super::batch::{make_batch, make_token_batch, Batch};
use super::task_model::TaskModel;
use crate::backbone::{Backbone, BackboneError};
use crate::features::{example_rows, token_rows, ExampleRows, TokenRows};
use crate::nn::softmax_last;
use crate::predict::{argmax, Decoded, TaskOutput};
use crate::tokenize::Tokenized;

/// Runs every head on a batch and turns logits into probabilities.
pub fn decode_batch(
    model: &TaskModel,
    batch: &Batch,
    words_per_example: &[usize],
) -> Result<Vec<Decoded>> {
    let n = words_per_example.len();
    let want = vec![true; model.heads.len()];
    let out = model.forward(batch, &want, None)?;
    let mut decoded = vec![Decoded::default(); n];
    for (task, logits) in model.config.tasks.iter().zip(out.logits) {
        let per_example: Vec<Option<TaskOutput>> = match logits {
            None => vec![None; n],
            Some(logits) if task.kind.is_token() => {
                let probs: Vec<Vec<Vec<f32>>> = softmax_last(&logits)?.to_vec3()?;
                probs
                    .into_iter()
                    .zip(words_per_example)
                    .map(|(mut p, &w)| {
                        p.truncate(w);
                        Some(TaskOutput::Token { probs: p })
                    })
                    .collect()
            }
            Some(logits) => {
                let probs: Vec<Vec<f32>> = softmax_last(&logits)?.to_vec2()?;
                let logits: Vec<Vec<f32>> = logits.to_vec2()?;
                logits
                    .into_iter()
                    .zip(probs)
                    .map(|(l, p)| {
                        let (id, prob) = argmax(&p);
                        Some(TaskOutput::Sentence {
                            id,
                            prob,
                            logits: l,
                        })
                    })
                    .collect()
            }
        };
        for (d, o) in decoded.iter_mut().zip(per_example) {
            d.tasks.push(o);
        }
    }
    Ok(decoded)
}

/// Why [`decode_examples`] failed: the backbone, or the task model's tensors.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The backbone could not run.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// A tensor computation failed.
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Runs the backbone and the model over tokenized examples in batches of `batch_size`, sorted by
/// length (the int8 backbone quantizes activations per batch, so the batching is part of the
/// result); returns the decoded outputs and per-example kept-word flags, in input order.
pub fn decode_examples(
    backbone: &mut Backbone,
    model: &TaskModel,
    states: &[usize],
    toks: &[Tokenized],
    batch_size: usize,
) -> std::result::Result<Vec<(Decoded, Vec<bool>)>, DecodeError> {
    let (positions, last) = backbone.positions(states)?;
    let mut order: Vec<usize> = (0..toks.len()).collect();
    order.sort_by_key(|&i| (toks[i].ids.len(), i));
    let mut results: Vec<(Decoded, Vec<bool>)> = vec![(Decoded::default(), Vec::new()); toks.len()];
    let dev = Device::Cpu;
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
        let out = backbone.run(&batch)?;
        let decoded = if model.top.is_some() {
            // Unfrozen top layers: they run on the token states, then pool to words.
            let rows: Vec<TokenRows> = (0..chunk.len())
                .map(|r| token_rows(&out, r, batch[r], &positions))
                .collect();
            let refs: Vec<&TokenRows> = rows.iter().collect();
            let tb = make_token_batch(&refs, states.len(), backbone.hidden, &dev)?;
            let b = model.token_inputs(&tb, None)?;
            let words: Vec<usize> = rows.iter().map(|r| r.word_tokens.len()).collect();
            decode_batch(model, &b, &words)?
        } else {
            let rows: Vec<ExampleRows> = (0..chunk.len())
                .map(|r| example_rows(&out, r, batch[r], &positions, last))
                .collect();
            let refs: Vec<&ExampleRows> = rows.iter().collect();
            let b = make_batch(&refs, states.len(), backbone.hidden, &dev)?;
            let words: Vec<usize> = rows.iter().map(|r| r.words).collect();
            decode_batch(model, &b, &words)?
        };
        for (&i, d) in chunk.iter().zip(decoded) {
            let kept = toks[i].word_tokens.iter().map(|(s, e)| e > s).collect();
            results[i] = (d, kept);
        }
    }
    Ok(results)
}
