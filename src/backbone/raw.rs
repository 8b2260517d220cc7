//! Running any encoder graph on raw token ids, for the checks of `import` and `quantize` and for
//! measurement: tokenized batches, mean pooling and comparison figures.

use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;

fn rt_err(path: &str, e: impl std::fmt::Display) -> RawError {
    RawError {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// ONNX Runtime or the tokenizer failed on a verification run.
#[derive(Debug, thiserror::Error)]
#[error("ONNX Runtime, {path}: {message}")]
pub struct RawError {
    /// The model or file concerned.
    pub path: String,
    /// What failed.
    pub message: String,
}

/// A padded batch of token ids for a BERT-style encoder (row-major `[batch, seq]`).
#[derive(Debug, Clone, Default)]
pub struct EncoderBatch {
    /// Rows.
    pub batch: usize,
    /// Padded length.
    pub seq: usize,
    /// Token ids.
    pub input_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// Segment ids (all 0 for single sentences).
    pub token_type_ids: Vec<i64>,
}

impl EncoderBatch {
    /// Pads token-id sequences with `pad_id` to the longest one.
    pub fn from_ids(rows: &[Vec<i64>], pad_id: i64) -> Self {
        let seq = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut b = EncoderBatch {
            batch: rows.len(),
            seq,
            ..Default::default()
        };
        for r in rows {
            for j in 0..seq {
                b.input_ids.push(r.get(j).copied().unwrap_or(pad_id));
                b.attention_mask.push(i64::from(j < r.len()));
                b.token_type_ids.push(0);
            }
        }
        b
    }

    /// Tokenizes `texts` with a Hugging Face `tokenizer.json` (special tokens added), truncating to
    /// `max_len` tokens.
    pub fn tokenize(
        tokenizer: &tokenizers::Tokenizer,
        texts: &[&str],
        max_len: usize,
    ) -> Result<Self, RawError> {
        // tokenizer.json may pad every sequence to a fixed length: pad ourselves, to the batch's
        // longest, with its pad id (else the vocabulary's `[PAD]` or `<pad>`: RoBERTa-style
        // positions count the tokens that are not padding).
        let pad = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| {
                ["[PAD]", "<pad>"]
                    .iter()
                    .find_map(|t| tokenizer.token_to_id(t))
            })
            .map_or(0, i64::from);
        let mut tk = tokenizer.clone();
        tk.with_padding(None);
        let mut rows = Vec::with_capacity(texts.len());
        for t in texts {
            let enc = tk
                .encode(*t, true)
                .map_err(|e| rt_err("tokenizer", format!("tokenizing {t:?}: {e}")))?;
            let mut ids: Vec<i64> = enc.get_ids().iter().map(|&i| i64::from(i)).collect();
            if ids.len() > max_len {
                // Keep the final special token ([SEP]) when truncating.
                let last = ids[ids.len() - 1];
                ids.truncate(max_len);
                if let Some(x) = ids.last_mut() {
                    *x = last;
                }
            }
            rows.push(ids);
        }
        Ok(Self::from_ids(&rows, pad))
    }
}

/// Loads a `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer, RawError> {
    tokenizers::Tokenizer::from_file(path).map_err(|e| {
        rt_err(
            &path.display().to_string(),
            format!("cannot load tokenizer: {e}"),
        )
    })
}

/// A float output: shape and row-major values.
#[derive(Debug, Clone)]
pub struct FloatOutput {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

/// Runs an encoder session on a batch (feeding only the inputs the model declares) and returns the
/// named float outputs.
pub fn run_encoder(
    session: &mut Session,
    batch: &EncoderBatch,
    outputs: &[&str],
) -> Result<Vec<FloatOutput>, RawError> {
    let shape = [batch.batch as i64, batch.seq as i64];
    let names: Vec<String> = session
        .inputs()
        .iter()
        .map(|i| i.name().to_string())
        .collect();
    let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
    for n in &names {
        let data = match n.as_str() {
            "input_ids" => &batch.input_ids,
            "attention_mask" => &batch.attention_mask,
            "token_type_ids" => &batch.token_type_ids,
            other => {
                return Err(rt_err(
                    "<session>",
                    format!("unexpected model input {other:?}"),
                ))
            }
        };
        let t = Tensor::from_array((shape, data.clone())).map_err(|e| rt_err("<session>", e))?;
        inputs.push((n.clone(), t.into()));
    }
    let out = session.run(inputs).map_err(|e| rt_err("<session>", e))?;
    let mut res = Vec::with_capacity(outputs.len());
    for &o in outputs {
        let v = out
            .get(o)
            .ok_or_else(|| rt_err("<session>", format!("model has no output {o:?}")))?;
        let (s, d) = v
            .try_extract_tensor::<f32>()
            .map_err(|e| rt_err("<session>", e))?;
        res.push(FloatOutput {
            shape: s.iter().map(|&x| x.max(0) as usize).collect(),
            data: d.to_vec(),
        });
    }
    Ok(res)
}

/// Mean of the hidden states over real tokens: `hidden` is `[batch, seq, dim]`, `mask` `[batch, seq]`.
pub fn mean_pool(
    hidden: &[f32],
    mask: &[i64],
    batch: usize,
    seq: usize,
    dim: usize,
) -> Vec<Vec<f32>> {
    (0..batch)
        .map(|b| {
            let mut acc = vec![0f32; dim];
            let mut n = 0f32;
            for t in 0..seq {
                if mask[b * seq + t] != 0 {
                    n += 1.0;
                    let row = &hidden[(b * seq + t) * dim..(b * seq + t + 1) * dim];
                    for (a, &x) in acc.iter_mut().zip(row) {
                        *a += x;
                    }
                }
            }
            acc.iter_mut().for_each(|a| *a /= n.max(1.0));
            acc
        })
        .collect()
}

/// Largest absolute difference of two equally long slices (infinite on a length mismatch or NaN).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter().zip(b).fold(0f32, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    })
}

/// Largest absolute difference over real (unmasked) tokens of two `[batch, seq, dim]` tensors.
pub fn max_abs_diff_masked(a: &[f32], b: &[f32], mask: &[i64], dim: usize) -> f32 {
    if a.len() != b.len() || a.len() != mask.len() * dim {
        return f32::INFINITY;
    }
    mask.iter()
        .enumerate()
        .filter(|(_, &m)| m != 0)
        .map(|(i, _)| max_abs_diff(&a[i * dim..(i + 1) * dim], &b[i * dim..(i + 1) * dim]))
        .fold(0f32, f32::max)
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    (ab / (aa.sqrt() * bb.sqrt())) as f32
}

/// Opens a session on an ONNX file (the checks of `import` and `quantize`).
pub fn open_file(path: &Path, opts: &super::runtime::SessionOptions) -> Result<Session, RawError> {
    super::runtime::open_session(super::runtime::SessionSource::File(path), opts)
        .map_err(|e| rt_err(&path.display().to_string(), e))
}
