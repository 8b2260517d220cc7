//! Running a merged model's session on one batch: its inputs ([`MergedInputs`]), its outputs per
//! task ([`TaskArrays`]) and their decoding ([`decode_outputs`]).

use ndarray::{Array, Array2, Array3, Dimension};
use ort::session::{Session, SessionOutputs};
use ort::value::TensorRef;

use super::contract::output_names;
use crate::data::TaskInfo;
use crate::graph::OnnxError;
use crate::predict::{Decoded, TaskOutput};
use crate::tokenize::Tokenized;

/// The inputs of a merged model for a batch of tokenized examples (row-major, padded to the
/// batch's longest sequence and sentence).
#[derive(Debug, Clone)]
pub struct MergedInputs {
    /// `[batch, sequence]`.
    pub input_ids: Array2<i64>,
    /// `[batch, sequence]`.
    pub attention_mask: Array2<i64>,
    /// `[batch, sequence]`.
    pub token_type_ids: Array2<i64>,
    /// `[batch, words, sequence]`.
    pub word_pool: Array3<f32>,
    /// `[batch, words]`.
    pub word_mask: Array2<f32>,
}

impl MergedInputs {
    /// Pads `batch` with `pad_id`; at least one token and one word wide.
    pub fn new(batch: &[&Tokenized], pad_id: u32) -> Self {
        let b = batch.len();
        let t = batch.iter().map(|x| x.ids.len()).max().unwrap_or(0).max(1);
        let w = batch
            .iter()
            .map(|x| x.feature_words())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut me = MergedInputs {
            input_ids: Array2::from_elem((b, t), pad_id as i64),
            attention_mask: Array2::zeros((b, t)),
            token_type_ids: Array2::zeros((b, t)),
            word_pool: Array3::zeros((b, w, t)),
            word_mask: Array2::zeros((b, w)),
        };
        for (r, x) in batch.iter().enumerate() {
            for (c, (&id, &ty)) in x.ids.iter().zip(&x.type_ids).enumerate() {
                me.input_ids[[r, c]] = id as i64;
                me.attention_mask[[r, c]] = 1;
                me.token_type_ids[[r, c]] = ty as i64;
            }
            for (j, &(s, e)) in x.word_tokens[..x.feature_words()].iter().enumerate() {
                if e > s {
                    me.word_mask[[r, j]] = 1.0;
                    let v = 1.0 / (e - s) as f32;
                    for k in s..e {
                        me.word_pool[[r, j, k as usize]] = v;
                    }
                }
            }
        }
        me
    }
}

/// One task's outputs for a batch.
#[derive(Debug, Clone)]
pub enum TaskArrays {
    /// A sentence task.
    Sentence {
        /// `[batch, classes]`.
        logits: Array2<f32>,
        /// `[batch, classes]`.
        probs: Array2<f32>,
        /// `[batch]`.
        ids: Vec<i64>,
    },
    /// A token task.
    Token {
        /// `[batch, words, classes]`.
        logits: Array3<f32>,
        /// `[batch, words, classes]`.
        probs: Array3<f32>,
        /// `[batch, words]`.
        ids: Array2<i64>,
    },
}

/// Runs a merged-model session on one batch; the outputs of `tasks` in order, each checked to have
/// as many classes as its labels.
pub fn run_merged(
    session: &mut Session,
    x: &MergedInputs,
    tasks: &[TaskInfo],
    format: u32,
) -> Result<Vec<TaskArrays>, OnnxError> {
    let has_types = session
        .inputs()
        .iter()
        .any(|i| i.name() == "token_type_ids");
    let ids = TensorRef::from_array_view(&x.input_ids).map_err(runtime)?;
    let mask = TensorRef::from_array_view(&x.attention_mask).map_err(runtime)?;
    let types = TensorRef::from_array_view(&x.token_type_ids).map_err(runtime)?;
    let pool = TensorRef::from_array_view(&x.word_pool).map_err(runtime)?;
    let wmask = TensorRef::from_array_view(&x.word_mask).map_err(runtime)?;
    let outputs = if has_types {
        session
            .run(ort::inputs![
                "input_ids" => ids, "attention_mask" => mask, "token_type_ids" => types,
                "word_pool" => pool, "word_mask" => wmask
            ])
            .map_err(runtime)?
    } else {
        session
            .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask, "word_pool" => pool, "word_mask" => wmask])
            .map_err(runtime)?
    };
    let (b, w) = x.word_mask.dim();
    tasks
        .iter()
        .map(|t| task_arrays(&outputs, t, format, b, w))
        .collect()
}

fn runtime(e: ort::Error) -> OnnxError {
    OnnxError::Runtime {
        path: "<merged model>".into(),
        message: e.to_string(),
    }
}

fn shape_err(name: &str, message: String) -> OnnxError {
    OnnxError::graph(format!("output `{name}`: {message}"))
}

/// The outputs of task `t` for a batch of `b` sentences of at most `w` words.
fn task_arrays(
    outputs: &SessionOutputs<'_>,
    t: &TaskInfo,
    format: u32,
    b: usize,
    w: usize,
) -> Result<TaskArrays, OnnxError> {
    let (ln, pn, idn) = output_names(t, format);
    let classes = t.labels.len();
    let ids = outputs
        .get(&idn)
        .ok_or_else(|| shape_err(&idn, "missing".into()))?
        .try_extract_array::<i64>()
        .map_err(runtime)?;
    if t.kind.is_token() {
        let ids: Array2<i64> = ids
            .into_dimensionality()
            .map_err(|e| shape_err(&idn, e.to_string()))?
            .to_owned();
        let shape = [b, w, classes];
        Ok(TaskArrays::Token {
            logits: floats(outputs, &ln, &shape)?,
            probs: floats(outputs, &pn, &shape)?,
            ids,
        })
    } else {
        let ids: Vec<i64> = ids.iter().copied().collect();
        if ids.len() != b || ids.iter().any(|&i| i < 0 || i as usize >= classes) {
            return Err(shape_err(&idn, "ids out of range".into()));
        }
        let shape = [b, classes];
        Ok(TaskArrays::Sentence {
            logits: floats(outputs, &ln, &shape)?,
            probs: floats(outputs, &pn, &shape)?,
            ids,
        })
    }
}

/// The float output `name`, checked to have `shape`.
fn floats<D: Dimension>(
    outputs: &SessionOutputs<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Array<f32, D>, OnnxError> {
    let v = outputs
        .get(name)
        .ok_or_else(|| shape_err(name, "missing".into()))?
        .try_extract_array::<f32>()
        .map_err(runtime)?;
    let a: Array<f32, D> = v
        .into_dimensionality()
        .map_err(|e| shape_err(name, e.to_string()))?
        .to_owned();
    if a.shape() != shape {
        return Err(shape_err(
            name,
            format!("shape {:?}, expected {shape:?}", a.dim()),
        ));
    }
    Ok(a)
}

/// Decodes one batch of merged outputs as the run's task model does (`crate::model::decode_batch`).
pub fn decode_outputs(out: &[TaskArrays], batch: &[&Tokenized]) -> Vec<Decoded> {
    batch
        .iter()
        .enumerate()
        .map(|(i, t)| Decoded {
            tasks: out
                .iter()
                .map(|a| {
                    Some(match a {
                        TaskArrays::Sentence { logits, probs, ids } => {
                            let id = ids[i] as usize;
                            TaskOutput::Sentence {
                                id,
                                prob: probs[[i, id]],
                                logits: logits.row(i).to_vec(),
                            }
                        }
                        TaskArrays::Token { probs, .. } => TaskOutput::Token {
                            probs: (0..t.feature_words().min(probs.dim().1))
                                .map(|w| probs.slice(ndarray::s![i, w, ..]).to_vec())
                                .collect(),
                        },
                    })
                })
                .collect(),
        })
        .collect()
}
