//! Inference with a merged ONNX model (`edgetune export`'s output): nothing but the model file and
//! the `tokenizer.json` beside it.

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::json;

use edgetune::heads::{Heads, HeadsConfig};
use edgetune::infer::Decoded;
use edgetune::onnx::export::{self, MergedInputs};
use edgetune::tokenize::{Tokenized, WordTokenizer};

use super::common;

/// Labels and limits read from the merged model's metadata.
pub(super) struct Meta {
    intents: Vec<String>,
    tags: Vec<String>,
    tokenizer_sha256: String,
    pub(super) max_tokens: usize,
}

pub(super) fn read_meta(
    model: &edgetune::onnx::proto::ModelProto,
    path: &Path,
) -> anyhow::Result<Meta> {
    let get = |k: &str| {
        edgetune::onnx::metadata_value(model, k).with_context(|| {
            format!(
                "{}: no metadata `{k}`; not a merged model written by `edgetune export`",
                path.display()
            )
        })
    };
    let version: u32 = get(export::META_FORMAT)?
        .parse()
        .with_context(|| format!("{}: bad {}", path.display(), export::META_FORMAT))?;
    if version != export::FORMAT_VERSION {
        bail!(
            "{}: merged-model format {version} is not supported (expected {})",
            path.display(),
            export::FORMAT_VERSION
        );
    }
    let labels = |k: &str| -> anyhow::Result<Vec<String>> {
        serde_json::from_str(get(k)?).with_context(|| {
            format!(
                "{}: metadata `{k}` is not a JSON array of strings",
                path.display()
            )
        })
    };
    Ok(Meta {
        intents: labels(export::META_INTENTS)?,
        tags: labels(export::META_TAGS)?,
        tokenizer_sha256: get(export::META_TOKENIZER_SHA)?.to_string(),
        max_tokens: get(export::META_MAX_TOKENS)?
            .parse()
            .with_context(|| format!("{}: bad {}", path.display(), export::META_MAX_TOKENS))?,
    })
}

/// Heads carrying only the label lists (tiny weights), so that [`super::infer::answer`] formats
/// merged-model predictions exactly as it formats a run's.
pub(super) fn label_heads(meta: &Meta) -> anyhow::Result<Heads> {
    let config = HeadsConfig {
        hidden: 1,
        states: 1,
        intents: meta.intents.clone(),
        tags: meta.tags.clone(),
        intent_head: edgetune::heads::IntentHeadConfig {
            hidden: 1,
            dropout: 0.0,
            slot_states: false,
        },
        slot_head: edgetune::heads::SlotHeadConfig {
            gru_hidden: 1,
            dropout: 0.0,
        },
    };
    Ok(Heads::new(config, 0, &candle_core::Device::Cpu)?)
}

/// Decodes one batch of merged outputs like [`edgetune::infer::decode_batch`].
pub(super) fn decode(out: &export::MergedOutputs, batch: &[&Tokenized]) -> Vec<Decoded> {
    batch
        .iter()
        .enumerate()
        .map(|(i, t)| Decoded {
            intent: match (&out.intent_logits, &out.intent_probs, &out.intent_id) {
                (Some(l), Some(p), Some(id)) => {
                    let id = id[i] as usize;
                    Some((id, p[[i, id]], l.row(i).to_vec()))
                }
                _ => None,
            },
            tags: match (&out.slot_probs, &out.slot_ids) {
                (Some(p), Some(ids)) => Some(
                    (0..t.word_tokens.len())
                        .map(|w| {
                            let id = ids[[i, w]] as usize;
                            (id, p[[i, w, id]])
                        })
                        .collect(),
                ),
                _ => None,
            },
            tag_probs: out.slot_probs.as_ref().map(|p| {
                (0..t.word_tokens.len())
                    .map(|w| p.slice(ndarray::s![i, w, ..]).to_vec())
                    .collect()
            }),
        })
        .collect()
}

pub fn infer(
    g: &super::Global,
    threads: usize,
    merged: &Path,
    input: Option<&Path>,
    logits: bool,
) -> anyhow::Result<()> {
    common::init_runtime(g)?;
    let bytes = std::fs::read(merged).with_context(|| merged.display().to_string())?;
    let model = edgetune::onnx::decode_model(&bytes)
        .with_context(|| format!("{}: not a valid ONNX model", merged.display()))?;
    let meta = read_meta(&model, merged)?;
    drop(model);
    let dir = merged
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tok_path = dir.join("tokenizer.json");
    let sha = edgetune::fsutil::sha256_file(&tok_path).with_context(|| {
        format!(
            "{}: the merged model needs its tokenizer.json beside it",
            tok_path.display()
        )
    })?;
    if sha != meta.tokenizer_sha256 {
        bail!(
            "{} is not the tokenizer this model was exported with (sha256 differs)",
            tok_path.display()
        );
    }
    let tokenizer = WordTokenizer::from_file(&tok_path, Some(meta.max_tokens))?;
    let pad = tokenizer.pad_id();
    let heads = label_heads(&meta)?;
    let mut session =
        edgetune::backbone::open_session(&bytes, merged, &common::session_config(threads))?;
    drop(bytes);

    super::infer::stream_lines(input, |texts| {
        let toks = texts
            .iter()
            .map(|t| super::infer::encode_line(&tokenizer, t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Length-sorted batches of 32, like `infer --run`.
        let mut order: Vec<usize> = (0..toks.len())
            .filter(|&i| !toks[i].word_tokens.is_empty())
            .collect();
        order.sort_by_key(|&i| (toks[i].ids.len(), i));
        let mut results: Vec<Option<Decoded>> = vec![None; toks.len()];
        for chunk in order.chunks(32) {
            let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
            let o = export::run_merged(&mut session, &MergedInputs::new(&batch, pad))?;
            for (&i, d) in chunk.iter().zip(decode(&o, &batch)) {
                results[i] = Some(d);
            }
        }
        Ok(texts
            .iter()
            .enumerate()
            .map(|(i, text)| match &results[i] {
                Some(d) => {
                    let kept: Vec<bool> = toks[i].word_tokens.iter().map(|(s, e)| e > s).collect();
                    super::infer::answer(text, &heads, d, &kept, toks[i].truncated, logits)
                }
                None => json!({ "text": text, "error": "empty input" }),
            })
            .collect())
    })
}
