//! The export's self-check: the merged model against the training pipeline (backbone in ONNX
//! Runtime, word pooling, model in candle) on the same sentences, in the same batches.

use ort::session::Session;

use crate::backbone::raw::max_abs_diff;
use crate::backbone::Backbone;
use crate::data::TaskInfo;
use crate::features::{example_rows, token_rows};
use crate::graph::OnnxError;
use crate::model::{argmax, decode_examples, make_batch, make_token_batch, TaskModel, TaskOutput};
use crate::onnx::merged::{run_merged, MergedInputs, TaskArrays, FORMAT_VERSION};
use crate::progress::Progress;
use crate::tokenize::Tokenized;

/// Sentences the export checks itself on (plus one longer than the token limit, for truncation).
pub const SAMPLE_SENTENCES: &[&str] = &[
    "play some jazz music",
    "book a table for two tonight at eight",
    "what is the weather like in paris tomorrow",
    "set an alarm for 7 am",
    "add this unbelievably loud song to my playlist",
    "hello",
    "rate this novel five stars",
    // A word without any token (format character) in the middle, and a sentence of only such a word
    // (zero-length GRU sequence).
    "play \u{200b} jazz",
    "\u{200b}",
];

/// One task's figures of a self-check.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TaskCheck {
    /// Largest |logit difference|.
    pub max_diff: f32,
    /// Predicted ids compared (sentences, or words of token tasks).
    pub ids: usize,
    /// Of those, ids that differ.
    pub mismatches: usize,
}

/// The figures of a self-check.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Sentences compared.
    pub sentences: usize,
    /// Per task, in the model's task order: `(name, is a token task, figures)`.
    pub tasks: Vec<(String, bool, TaskCheck)>,
}

impl VerifyReport {
    fn sum(&self, token: Option<bool>) -> TaskCheck {
        self.tasks
            .iter()
            .filter(|(_, t, _)| token.is_none_or(|k| k == *t))
            .fold(TaskCheck::default(), |a, (_, _, c)| TaskCheck {
                max_diff: a.max_diff.max(c.max_diff),
                ids: a.ids + c.ids,
                mismatches: a.mismatches + c.mismatches,
            })
    }

    /// The sentence tasks together (`intent_*` in the figures).
    pub fn sentence(&self) -> TaskCheck {
        self.sum(Some(false))
    }

    /// The token tasks together (`slot_*` in the figures).
    pub fn token(&self) -> TaskCheck {
        self.sum(Some(true))
    }

    /// Largest logit difference of every task.
    pub fn max_diff(&self) -> f32 {
        self.sum(None).max_diff
    }

    /// Ids that differ, all tasks.
    pub fn id_mismatches(&self) -> usize {
        self.sum(None).mismatches
    }

    /// Fraction of predicted ids (all tasks together) that agree; 1 when none compared.
    pub fn id_agreement(&self) -> f64 {
        let s = self.sum(None);
        agreement(s.mismatches, s.ids)
    }
}

/// `1 - mismatches / total`, 1 when nothing was compared.
pub fn agreement(mismatches: usize, total: usize) -> f64 {
    if total == 0 {
        1.0
    } else {
        1.0 - mismatches as f64 / total as f64
    }
}

/// Passes over the check sentences that [`verify`] makes (what its progress counts).
pub const CHECK_PASSES: u64 = 3;

/// Examples per batch of the self-check, on both sides (as `infer` batches).
const VERIFY_BATCH: usize = 32;

/// Per example, per task: the pipeline's logits (`[classes]` for a sentence task, one row per word
/// of the sentence for a token task).
type Reference = Vec<Vec<Option<Vec<Vec<f32>>>>>;

/// Reference logits of the training pipeline (backbone outputs pooled per word as the cache does,
/// the model in candle; with fine-tuned top layers, the backbone's token states through the layers
/// in candle first, as `eval`/`infer --run` do) for each example, in order. Each batch done is
/// counted on `progress`.
pub fn reference_logits(
    backbone: &mut Backbone,
    model: &TaskModel,
    states: &[usize],
    toks: &[Tokenized],
    progress: &mut Progress,
) -> Result<Reference, OnnxError> {
    let e = |m: String| OnnxError::Invalid(format!("training pipeline: {m}"));
    let (positions, last) = backbone.positions(states).map_err(|x| e(x.to_string()))?;
    let mut order: Vec<usize> = (0..toks.len()).collect();
    order.sort_by_key(|&i| (toks[i].ids.len(), i));
    let mut res: Reference = vec![Vec::new(); toks.len()];
    let dev = candle_core::Device::Cpu;
    let want = vec![true; model.heads.len()];
    for chunk in order.chunks(VERIFY_BATCH) {
        let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
        let out = backbone.run(&batch).map_err(|x| e(x.to_string()))?;
        let b = if model.top.is_some() {
            let rows: Vec<_> = (0..chunk.len())
                .map(|r| token_rows(&out, r, batch[r], &positions))
                .collect();
            let refs: Vec<_> = rows.iter().collect();
            let tb = make_token_batch(&refs, states.len(), backbone.hidden, &dev)
                .map_err(|x| e(x.to_string()))?;
            model
                .token_inputs(&tb, None)
                .map_err(|x| e(x.to_string()))?
        } else {
            let rows: Vec<_> = (0..chunk.len())
                .map(|r| example_rows(&out, r, batch[r], &positions, last))
                .collect();
            let refs: Vec<_> = rows.iter().collect();
            make_batch(&refs, states.len(), backbone.hidden, &dev).map_err(|x| e(x.to_string()))?
        };
        let logits = model
            .forward(&b, &want, None)
            .map_err(|x| e(x.to_string()))?;
        let mut per_task: Vec<Option<Vec<Vec<Vec<f32>>>>> = Vec::new();
        for l in logits.logits {
            per_task.push(match l {
                None => None,
                Some(t) if t.rank() == 3 => Some(t.to_vec3().map_err(|x| e(x.to_string()))?),
                Some(t) => Some(
                    t.to_vec2::<f32>()
                        .map_err(|x| e(x.to_string()))?
                        .into_iter()
                        .map(|row| vec![row])
                        .collect(),
                ),
            });
        }
        for (r, &i) in chunk.iter().enumerate() {
            let words = batch[r].feature_words();
            res[i] = per_task
                .iter()
                .zip(&model.config.tasks)
                .map(|(p, t)| {
                    p.as_ref().map(|v| {
                        if t.kind.is_token() {
                            v[r][..words.min(v[r].len())].to_vec()
                        } else {
                            v[r].clone()
                        }
                    })
                })
                .collect();
        }
        progress.inc(chunk.len() as u64);
    }
    Ok(res)
}

/// Compares a merged model (a session on it) with the training pipeline on `toks`. Both sides see
/// the same length-sorted batches of [`VERIFY_BATCH`] (as `infer --run` and `infer --model` do): an
/// int8 backbone quantizes its activations per batch, so other batches would give other features.
///
/// `progress` counts [`CHECK_PASSES`] passes over the sentences: the pipeline's logits, its decoded
/// outputs and the merged model.
pub fn verify(
    merged: &mut Session,
    backbone: &mut Backbone,
    model: &TaskModel,
    states: &[usize],
    toks: &[Tokenized],
    pad_id: u32,
    progress: &mut Progress,
) -> Result<VerifyReport, OnnxError> {
    let reference = reference_logits(backbone, model, states, toks, progress)?;
    let decoded = decode_examples(backbone, model, states, toks, VERIFY_BATCH)
        .map_err(|x| OnnxError::Invalid(format!("training pipeline: {x}")))?;
    progress.inc(toks.len() as u64);
    let infos: Vec<TaskInfo> = model.config.tasks.iter().map(|t| t.info()).collect();
    let mut order: Vec<usize> = (0..toks.len()).collect();
    order.sort_by_key(|&i| (toks[i].ids.len(), i));
    let mut rep = VerifyReport {
        sentences: toks.len(),
        tasks: infos
            .iter()
            .map(|t| (t.name.clone(), t.kind.is_token(), TaskCheck::default()))
            .collect(),
    };
    for chunk in order.chunks(VERIFY_BATCH) {
        let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
        let out = run_merged(
            merged,
            &MergedInputs::new(&batch, pad_id),
            &infos,
            FORMAT_VERSION,
        )?;
        for (r, &i) in chunk.iter().enumerate() {
            let (d, _) = &decoded[i];
            for (k, arrays) in out.iter().enumerate() {
                let (Some(refl), Some(dk)) = (&reference[i][k], &d.tasks[k]) else {
                    continue;
                };
                let check = &mut rep.tasks[k].2;
                match (arrays, dk) {
                    (TaskArrays::Sentence { logits, ids, .. }, TaskOutput::Sentence { id, .. }) => {
                        let row: Vec<f32> = logits.row(r).to_vec();
                        check.max_diff = check.max_diff.max(max_abs_diff(&refl[0], &row));
                        check.ids += 1;
                        check.mismatches += usize::from(ids[r] as usize != *id);
                    }
                    (TaskArrays::Token { logits, ids, .. }, TaskOutput::Token { probs }) => {
                        for (w, (row, p)) in refl.iter().zip(probs).enumerate() {
                            let m: Vec<f32> = logits.slice(ndarray::s![r, w, ..]).to_vec();
                            check.max_diff = check.max_diff.max(max_abs_diff(row, &m));
                            check.ids += 1;
                            check.mismatches += usize::from(ids[[r, w]] as usize != argmax(p).0);
                        }
                    }
                    _ => {
                        return Err(OnnxError::graph(format!(
                            "task `{}`: merged and pipeline outputs differ in kind",
                            infos[k].name
                        )))
                    }
                }
            }
        }
        progress.inc(chunk.len() as u64);
    }
    Ok(rep)
}
