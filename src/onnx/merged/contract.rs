//! The contract of `edgetune export`'s output: its metadata keys, its output names, and
//! [`MergedMeta`], what a merged model's metadata says (checked against its graph).

use std::path::Path;

use crate::data::{check_task_name, TaskInfo, TaskKind, INTENT, TAGS};
use crate::graph::proto::{GraphProto, ModelProto};
use crate::graph::{load_model_header, metadata_value, value_info_shape, Dim, OnnxError};
use crate::predict::check_answer_keys;

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
        let tasks = read_tasks(model, format, &bad)?;
        let g = model
            .graph
            .as_ref()
            .ok_or_else(|| bad("the model has no graph".into()))?;
        check_tasks(&tasks, &bad)?;
        for t in &tasks {
            check_outputs(g, t, format, &bad)?;
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

    /// Reads and checks the metadata of the merged model file `path` (at most
    /// [`MAX_MODEL_BYTES`]) from its header, without its weights.
    pub fn from_file(path: &Path) -> Result<Self, OnnxError> {
        let len = std::fs::metadata(path)
            .map_err(|e| OnnxError::io(path, e))?
            .len();
        if len > MAX_MODEL_BYTES {
            return Err(OnnxError::Source {
                path: path.to_path_buf(),
                message: format!("{len} bytes, over protobuf's 2 GiB limit"),
            });
        }
        Self::read(&load_model_header(path)?, path)
    }
}

/// The tasks the metadata lists (format 1: `intent` and `tags` from their label lists).
fn read_tasks(
    model: &ModelProto,
    format: u32,
    bad: &dyn Fn(String) -> OnnxError,
) -> Result<Vec<TaskInfo>, OnnxError> {
    let get = |k: &str| {
        metadata_value(model, k).ok_or_else(|| {
            bad(format!(
                "no metadata `{k}`; not a merged model written by `edgetune export`"
            ))
        })
    };
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
    Ok(tasks)
}

/// Checks the tasks' names (usable, unique, distinct from the answers' own keys) and labels
/// (non-empty, unique).
fn check_tasks(tasks: &[TaskInfo], bad: &dyn Fn(String) -> OnnxError) -> Result<(), OnnxError> {
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
    }
    check_answer_keys(tasks).map_err(|m| bad(format!("metadata: {m}")))
}

/// Checks that the graph has the outputs of task `t`, with its number of classes when declared.
fn check_outputs(
    g: &GraphProto,
    t: &TaskInfo,
    format: u32,
    bad: &dyn Fn(String) -> OnnxError,
) -> Result<(), OnnxError> {
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
    Ok(())
}
