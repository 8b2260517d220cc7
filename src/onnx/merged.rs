//! The merged model as a library: the contract of `edgetune export`'s output (inputs, outputs,
//! metadata keys) and [`MergedModel`], which runs it (`infer --model`, `bench`, `serve`). The
//! contract is written out for other languages in `docs/merged-model.md`, with a reference client
//! in `examples/python/`.
//!
//! Inputs (`B` batch, `T` tokens, `W` words):
//! - `input_ids`, `attention_mask` (and `token_type_ids` when the backbone has it): int64
//!   `[B, T]`, padded with the pad id of metadata `edgetune.pad_id`;
//! - `word_pool`: float `[B, W, T]`; row `w` holds `1/n` at the `n` sub-tokens of word `w` (all
//!   zero for padding words and words cut by truncation): built from the tokenizer's word ids of
//!   the pre-tokenized words ([`MergedInputs::new`]);
//! - `word_mask`: float `[B, W]`, 1 for words with sub-tokens.
//!
//! Words are the line split on Unicode whitespace; tokens are truncated at `edgetune.max_tokens`
//! (words left without a token keep an empty range and decode to the task's first label).
//!
//! Outputs, per task `NAME` of metadata `edgetune.tasks` (`[{name, kind, labels}]`, the index of a
//! label being its class id): `NAME_logits` and `NAME_probs` (`[B, classes]` for a sentence task,
//! `[B, W, classes]` for a token task) and the arg-max `NAME_id` (int64 `[B]`) or `NAME_ids`
//! (int64 `[B, W]`). The token task `tags` is also output as `slot_logits`, `slot_probs`,
//! `slot_ids` (the names of format 1). Other metadata: `edgetune.format_version`,
//! `edgetune.tokenizer_sha256`, `edgetune.max_tokens`, `edgetune.pad_id`, `edgetune.states`.
//!
//! `*_ids` is the plain arg-max: span tasks are decoded outside the graph with the BIO-constrained
//! Viterbi of [`crate::model::bio_viterbi`] (log-probabilities in f64 of the f32 probabilities
//! floored at 1e-12; the lowest tag id wins ties), and their chunks read with conlleval's rules.
//! A dynamic-int8 backbone quantizes activations per batch, so results depend on the batching:
//! [`MergedModel::decode`] runs length-sorted batches.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndarray::{Array2, Array3};
use ort::session::Session;
use ort::value::TensorRef;
use serde_json::Value;

use crate::backbone::{open_session, ModelSource, SessionOptions};
use crate::data::{check_task_name, TaskInfo, TaskKind, INTENT, TAGS};
use crate::fsutil;
use crate::graph::proto::ModelProto;
use crate::graph::{load_model_header, metadata_value, value_info_shape, Dim, OnnxError};
use crate::infer::answer;
use crate::model::{Decoded, TaskOutput};
use crate::tokenize::{Tokenized, WordTokenizer};

/// Version of the merged-model contract written: 2 = named tasks (`edgetune.tasks`). Models of
/// format 1 (`edgetune.intents` / `edgetune.tags`, outputs `intent_*` / `slot_*`) are still read.
pub const FORMAT_VERSION: u32 = 2;
/// Metadata key: [`FORMAT_VERSION`].
pub const META_FORMAT: &str = "edgetune.format_version";
/// Metadata key: JSON array of the tasks, `[{"name", "kind", "labels"}]` (index in `labels` = class id).
pub const META_TASKS: &str = "edgetune.tasks";
/// Metadata key: JSON array of the `intent` task's labels (format 1; kept for its readers).
pub const META_INTENTS: &str = "edgetune.intents";
/// Metadata key: JSON array of the `tags` task's labels (format 1; kept for its readers).
pub const META_TAGS: &str = "edgetune.tags";
/// Metadata key: SHA-256 of the `tokenizer.json` the model expects.
pub const META_TOKENIZER_SHA: &str = "edgetune.tokenizer_sha256";
/// Metadata key: truncation length in tokens.
pub const META_MAX_TOKENS: &str = "edgetune.max_tokens";
/// Metadata key: the hidden states the heads read (JSON array), for the record.
pub const META_STATES: &str = "edgetune.states";
/// Metadata key: the token id `input_ids` are padded with.
pub const META_PAD_ID: &str = "edgetune.pad_id";
/// Largest merged-model file read (protobuf's own limit is 2 GiB).
pub const MAX_MODEL_BYTES: u64 = (2 << 30) - 1;

/// The output names of a task: `(logits, probs, ids)`.
pub fn output_names(task: &TaskInfo, format: u32) -> (String, String, String) {
    let base = if format == 1 && task.name == TAGS {
        "slot"
    } else {
        task.name.as_str()
    };
    let ids = if task.kind.is_token() {
        format!("{base}_ids")
    } else {
        format!("{base}_id")
    };
    (format!("{base}_logits"), format!("{base}_probs"), ids)
}

/// What a merged model's metadata says.
#[derive(Debug, Clone)]
pub struct MergedMeta {
    /// [`META_FORMAT`] (1 or 2).
    pub format: u32,
    /// The tasks, in output order.
    pub tasks: Vec<TaskInfo>,
    /// SHA-256 of the tokenizer it expects.
    pub tokenizer_sha256: String,
    /// Truncation length in tokens.
    pub max_tokens: usize,
    /// Pad id (`None` in models that do not record it: the tokenizer's is used).
    pub pad_id: Option<u32>,
}

impl MergedMeta {
    /// Reads and checks the metadata of `model` (read from `path`): the format, the tasks (names,
    /// non-empty and unique labels), and every task's outputs against the graph's declared shapes
    /// (a label list shorter or longer than its output is an error, never a wrong label).
    pub fn read(model: &ModelProto, path: &Path) -> Result<Self, OnnxError> {
        let bad = |m: String| OnnxError::Source {
            path: path.to_path_buf(),
            message: m,
        };
        let get = |k: &str| {
            metadata_value(model, k).ok_or_else(|| {
                bad(format!(
                    "no metadata `{k}`; not a merged model written by `edgetune export`"
                ))
            })
        };
        let format: u32 = get(META_FORMAT)?
            .parse()
            .map_err(|_| bad(format!("metadata `{META_FORMAT}` is not a number")))?;
        let labels = |k: &str| -> Result<Vec<String>, OnnxError> {
            serde_json::from_str(get(k)?)
                .map_err(|_| bad(format!("metadata `{k}` is not a JSON array of strings")))
        };
        let tasks: Vec<TaskInfo> = match format {
            1 => {
                let mut t = Vec::new();
                let intents = labels(META_INTENTS)?;
                if !intents.is_empty() {
                    t.push(TaskInfo {
                        name: INTENT.into(),
                        kind: TaskKind::Sentence,
                        labels: intents,
                    });
                }
                let tags = labels(META_TAGS)?;
                if !tags.is_empty() {
                    t.push(TaskInfo {
                        name: TAGS.into(),
                        kind: TaskKind::Spans,
                        labels: tags,
                    });
                }
                t
            }
            FORMAT_VERSION => serde_json::from_str(get(META_TASKS)?).map_err(|e| {
                bad(format!(
                    "metadata `{META_TASKS}` is not a list of tasks ({{name, kind, labels}}): {e}"
                ))
            })?,
            v => {
                return Err(bad(format!(
                    "merged-model format {v} is not supported (expected 1 or {FORMAT_VERSION})"
                )))
            }
        };
        if tasks.is_empty() {
            return Err(bad("the model has no task".into()));
        }
        let g = model
            .graph
            .as_ref()
            .ok_or_else(|| bad("the model has no graph".into()))?;
        for (i, t) in tasks.iter().enumerate() {
            check_task_name(&t.name).map_err(|m| bad(format!("metadata: {m}")))?;
            if tasks[..i].iter().any(|o| o.name == t.name) {
                return Err(bad(format!("metadata: task `{}` appears twice", t.name)));
            }
            if t.labels.is_empty() {
                return Err(bad(format!("metadata: task `{}` has no labels", t.name)));
            }
            let mut sorted: Vec<&String> = t.labels.iter().collect();
            sorted.sort();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return Err(bad(format!(
                    "metadata: task `{}` lists a label twice",
                    t.name
                )));
            }
            let (logits, probs, ids) = output_names(t, format);
            for name in [&logits, &probs, &ids] {
                let Some(out) = g.output.iter().find(|o| o.name.as_deref() == Some(name)) else {
                    return Err(bad(format!(
                        "task `{}`: the graph has no output `{name}`",
                        t.name
                    )));
                };
                if name == &ids {
                    continue;
                }
                let rank = if t.kind.is_token() { 3 } else { 2 };
                if let Some((_, dims)) = value_info_shape(out) {
                    if dims.len() != rank {
                        return Err(bad(format!(
                            "output `{name}` has rank {}, expected {rank}",
                            dims.len()
                        )));
                    }
                    if let Some(Dim::Fixed(n)) = dims.last() {
                        if *n != t.labels.len() as i64 {
                            return Err(bad(format!(
                                "output `{name}` has {n} classes, but the metadata lists {} labels for task `{}`",
                                t.labels.len(),
                                t.name
                            )));
                        }
                    }
                }
            }
        }
        let max_tokens: usize = get(META_MAX_TOKENS)?
            .parse()
            .map_err(|_| bad(format!("metadata `{META_MAX_TOKENS}` is not a number")))?;
        if !(3..=1 << 16).contains(&max_tokens) {
            return Err(bad(format!(
                "metadata `{META_MAX_TOKENS}` = {max_tokens} is out of range"
            )));
        }
        let pad_id = match metadata_value(model, META_PAD_ID) {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| bad(format!("metadata `{META_PAD_ID}` is not a number")))?,
            ),
            None => None,
        };
        Ok(Self {
            format,
            tasks,
            tokenizer_sha256: get(META_TOKENIZER_SHA)?.to_string(),
            max_tokens,
            pad_id,
        })
    }
}

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
    let err = |e: ort::Error| OnnxError::Runtime {
        path: "<merged model>".into(),
        message: e.to_string(),
    };
    let has_types = session
        .inputs()
        .iter()
        .any(|i| i.name() == "token_type_ids");
    let ids = TensorRef::from_array_view(&x.input_ids).map_err(err)?;
    let mask = TensorRef::from_array_view(&x.attention_mask).map_err(err)?;
    let types = TensorRef::from_array_view(&x.token_type_ids).map_err(err)?;
    let pool = TensorRef::from_array_view(&x.word_pool).map_err(err)?;
    let wmask = TensorRef::from_array_view(&x.word_mask).map_err(err)?;
    let outputs = if has_types {
        session
            .run(ort::inputs![
                "input_ids" => ids, "attention_mask" => mask, "token_type_ids" => types,
                "word_pool" => pool, "word_mask" => wmask
            ])
            .map_err(err)?
    } else {
        session
            .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask, "word_pool" => pool, "word_mask" => wmask])
            .map_err(err)?
    };
    let (b, w) = x.word_mask.dim();
    let shape_err = |n: &str, m: String| OnnxError::graph(format!("output `{n}`: {m}"));
    let mut res = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (ln, pn, idn) = output_names(t, format);
        let get = |n: &str| outputs.get(n).ok_or_else(|| shape_err(n, "missing".into()));
        let classes = t.labels.len();
        if t.kind.is_token() {
            let f3 = |n: &str| -> Result<Array3<f32>, OnnxError> {
                let v = get(n)?.try_extract_array::<f32>().map_err(err)?;
                let a: Array3<f32> = v
                    .into_dimensionality()
                    .map_err(|e| shape_err(n, e.to_string()))?
                    .to_owned();
                if a.dim() != (b, w, classes) {
                    return Err(shape_err(
                        n,
                        format!("shape {:?}, expected [{b}, {w}, {classes}]", a.dim()),
                    ));
                }
                Ok(a)
            };
            let ids: Array2<i64> = get(&idn)?
                .try_extract_array::<i64>()
                .map_err(err)?
                .into_dimensionality()
                .map_err(|e| shape_err(&idn, e.to_string()))?
                .to_owned();
            res.push(TaskArrays::Token {
                logits: f3(&ln)?,
                probs: f3(&pn)?,
                ids,
            });
        } else {
            let f2 = |n: &str| -> Result<Array2<f32>, OnnxError> {
                let v = get(n)?.try_extract_array::<f32>().map_err(err)?;
                let a: Array2<f32> = v
                    .into_dimensionality()
                    .map_err(|e| shape_err(n, e.to_string()))?
                    .to_owned();
                if a.dim() != (b, classes) {
                    return Err(shape_err(
                        n,
                        format!("shape {:?}, expected [{b}, {classes}]", a.dim()),
                    ));
                }
                Ok(a)
            };
            let ids: Vec<i64> = get(&idn)?
                .try_extract_array::<i64>()
                .map_err(err)?
                .iter()
                .copied()
                .collect();
            if ids.len() != b || ids.iter().any(|&i| i < 0 || i as usize >= classes) {
                return Err(shape_err(&idn, "ids out of range".into()));
            }
            res.push(TaskArrays::Sentence {
                logits: f2(&ln)?,
                probs: f2(&pn)?,
                ids,
            });
        }
    }
    Ok(res)
}

/// Decodes one batch of merged outputs like [`crate::model::decode_batch`].
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

/// How long each phase of [`MergedModel::open_timed`] took. The tokenizer loads while the session
/// is created, so `total` is less than the sum.
#[derive(Debug, Clone)]
pub struct OpenTimings {
    /// Reading and checking the metadata and the output shapes.
    pub metadata: Duration,
    /// ONNX Runtime's session creation (parsing, graph optimization, weight prepacking).
    pub session: Duration,
    /// Hashing and loading `tokenizer.json` (on its own thread).
    pub tokenizer: Duration,
    /// The whole of `open`.
    pub total: Duration,
}

/// Loads `tok_path` after checking that it is the tokenizer the model was exported with.
fn load_tokenizer(
    tok_path: &Path,
    sha256: &str,
    max_tokens: usize,
) -> Result<(WordTokenizer, Duration), OnnxError> {
    let t = Instant::now();
    let sha = fsutil::sha256_file(tok_path).map_err(|e| OnnxError::Source {
        path: tok_path.to_path_buf(),
        message: format!("the merged model needs its tokenizer.json beside it ({e})"),
    })?;
    if sha != sha256 {
        return Err(OnnxError::Source {
            path: tok_path.to_path_buf(),
            message: "not the tokenizer this model was exported with (sha256 differs)".into(),
        });
    }
    let tokenizer =
        WordTokenizer::from_file(tok_path, Some(max_tokens)).map_err(|e| OnnxError::Source {
            path: tok_path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok((tokenizer, t.elapsed()))
}

/// A merged model ready to answer: the session, its tasks and the tokenizer beside it.
pub struct MergedModel {
    /// The model file.
    pub path: PathBuf,
    /// Its metadata.
    pub meta: MergedMeta,
    /// The tokenizer (`tokenizer.json` beside the model, hash-checked).
    pub tokenizer: WordTokenizer,
    /// The padding id.
    pub pad_id: u32,
    session: Session,
}

impl MergedModel {
    /// Opens `path` (with `tokenizer.json` beside it): reads and checks the metadata, the
    /// tokenizer's hash, and opens an ONNX Runtime session.
    ///
    /// The file is parsed once, by ONNX Runtime: the metadata and the output shapes are read from
    /// the file's header without its weights ([`load_model_header`]), and the tokenizer is loaded
    /// on a second thread while the session is created.
    pub fn open(path: &Path, opts: &SessionOptions) -> Result<Self, OnnxError> {
        Self::open_timed(path, opts).map(|(m, _)| m)
    }

    /// [`MergedModel::open`], also returning how long each phase took.
    pub fn open_timed(
        path: &Path,
        opts: &SessionOptions,
    ) -> Result<(Self, OpenTimings), OnnxError> {
        let t0 = Instant::now();
        let len = std::fs::metadata(path)
            .map_err(|e| OnnxError::io(path, e))?
            .len();
        if len > MAX_MODEL_BYTES {
            return Err(OnnxError::Source {
                path: path.to_path_buf(),
                message: format!("{len} bytes, over protobuf's 2 GiB limit"),
            });
        }
        let meta = MergedMeta::read(&load_model_header(path)?, path)?;
        let metadata = t0.elapsed();
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tok_path = dir.join("tokenizer.json");
        let (sha, max_tokens) = (meta.tokenizer_sha256.clone(), meta.max_tokens);
        let tok_job = {
            let tok_path = tok_path.clone();
            std::thread::spawn(move || load_tokenizer(&tok_path, &sha, max_tokens))
        };
        let t1 = Instant::now();
        let session = open_session(ModelSource::File(path), opts);
        let session_time = t1.elapsed();
        let tokenizer = tok_job.join().map_err(|_| OnnxError::Source {
            path: tok_path.clone(),
            message: "the tokenizer could not be loaded (its loader stopped)".into(),
        })?;
        let (tokenizer, tokenizer_time) = tokenizer?;
        let session = session.map_err(|e| OnnxError::Runtime {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let pad_id = meta.pad_id.unwrap_or_else(|| tokenizer.pad_id());
        let timings = OpenTimings {
            metadata,
            session: session_time,
            tokenizer: tokenizer_time,
            total: t0.elapsed(),
        };
        let model = Self {
            path: path.to_path_buf(),
            meta,
            tokenizer,
            pad_id,
            session,
        };
        Ok((model, timings))
    }

    /// Runs the model on tokenized examples in length-sorted batches of `batch_size`; returns the
    /// decoded outputs in input order.
    pub fn decode(
        &mut self,
        toks: &[Tokenized],
        batch_size: usize,
    ) -> Result<Vec<Decoded>, OnnxError> {
        let mut order: Vec<usize> = (0..toks.len()).collect();
        order.sort_by_key(|&i| (toks[i].ids.len(), i));
        let mut results = vec![Decoded::default(); toks.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
            let out = run_merged(
                &mut self.session,
                &MergedInputs::new(&batch, self.pad_id),
                &self.meta.tasks,
                self.meta.format,
            )?;
            for (&i, d) in chunk.iter().zip(decode_outputs(&out, &batch)) {
                results[i] = d;
            }
        }
        Ok(results)
    }

    /// Answers text lines as `infer --run` does: one JSON value each, in order; an empty line gets
    /// `{"text", "error"}`.
    pub fn answer_lines(
        &mut self,
        texts: &[String],
        logits: bool,
    ) -> Result<Vec<Value>, OnnxError> {
        let toks = texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode_text(t, &|| "input".into())
                    .map_err(|e| OnnxError::Invalid(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let live: Vec<usize> = (0..texts.len())
            .filter(|&i| !toks[i].word_tokens.is_empty())
            .collect();
        let batch: Vec<Tokenized> = live.iter().map(|&i| toks[i].clone()).collect();
        let decoded = self.decode(&batch, crate::infer::BATCH)?;
        let mut out: Vec<Value> = texts
            .iter()
            .map(|t| serde_json::json!({ "text": t, "error": "empty input" }))
            .collect();
        for (&i, d) in live.iter().zip(decoded) {
            let kept: Vec<bool> = toks[i].word_tokens.iter().map(|(s, e)| e > s).collect();
            out[i] = answer(
                &texts[i],
                &self.meta.tasks,
                &d,
                &kept,
                toks[i].truncated,
                logits,
            );
        }
        Ok(out)
    }

    /// The session (for measurement).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }
}
