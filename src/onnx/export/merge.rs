//! The merged export: one ONNX graph holding the frozen backbone, word pooling and every task head.
//!
//! The backbone graph is kept exactly as used in training (same nodes, same initializers, same
//! opsets); the nodes of the heads are appended to it (value names prefixed `head/`) and the
//! backbone's own outputs are replaced by the heads' outputs (see [`crate::onnx::merged`] for the
//! contract). Nodes that no output needs any more (a pooler, say) are pruned.
//!
//! The semantics are those of [`crate::model::decode_examples`]: per-word features are the mean of
//! the word's sub-token vectors, the pooled embedding is the mean of the last hidden state over all
//! real tokens, the layer mixes are linear (so they are applied to the token states before pooling,
//! the same value up to rounding), and a token head's bidirectional GRU is ONNX's `GRU` with
//! PyTorch's `linear_before_reset` formulation, running over each sentence's own words
//! (`sequence_lens`). A sentence head that reads a token task's states pools the GRU's masked output
//! with its own word attention, as in training.

use super::heads::Ctx;
use crate::data::TAGS;
use crate::graph::hidden::hidden_state_tensors;
use crate::graph::proto::{tensor_proto::DataType, ModelProto};
use crate::graph::{self, count_layers, set_metadata, Dim, GraphBuilder, OnnxError};
use crate::model::{Head, TaskModel};
use crate::onnx::merged::{
    output_names, FORMAT_VERSION, META_FORMAT, META_INTENTS, META_MAX_TOKENS, META_PAD_ID,
    META_STATES, META_TAGS, META_TASKS, META_TOKENIZER_SHA,
};

/// What the merge needs besides the backbone graph and the model.
#[derive(Debug, Clone)]
pub struct MergeSpec {
    /// Hidden states the heads read, in the order of the run's features (`RunConfig.features.states`).
    pub states: Vec<usize>,
    /// SHA-256 of the tokenizer.
    pub tokenizer_sha256: String,
    /// Truncation length in tokens.
    pub max_tokens: usize,
    /// The tokenizer's padding id.
    pub pad_id: u32,
}

/// Builds the merged model from the backbone graph (as loaded from its file) and the trained model.
pub fn build_merged(
    mut model: ModelProto,
    task_model: &TaskModel,
    spec: &MergeSpec,
) -> Result<ModelProto, OnnxError> {
    let opset = graph::default_opset(&model);
    if opset < 13 {
        return Err(OnnxError::Invalid(format!(
            "the backbone imports opset {opset}; the merged export needs opset 13 or later"
        )));
    }
    let layers = count_layers(&model)?;
    if let Some(bad) = spec.states.iter().find(|&&s| s > layers) {
        return Err(OnnxError::Invalid(format!(
            "hidden state {bad} requested, the backbone has 0..={layers}"
        )));
    }
    let tensors = hidden_state_tensors(&model)?;
    let g = model
        .graph
        .take()
        .ok_or_else(|| OnnxError::graph("model has no graph"))?;
    if !g
        .output
        .iter()
        .any(|o| o.name.as_deref() == Some("last_hidden_state"))
    {
        return Err(OnnxError::graph(
            "backbone has no output `last_hidden_state`",
        ));
    }
    let inputs: Vec<String> = g.input.iter().filter_map(|i| i.name.clone()).collect();
    for needed in ["input_ids", "attention_mask"] {
        if !inputs.iter().any(|n| n == needed) {
            return Err(OnnxError::graph(format!(
                "backbone has no input `{needed}` (inputs: {inputs:?})"
            )));
        }
    }
    let (batch, seq) = graph::input_ids_dims(&g);
    let words = Dim::param("words");
    let state_name = |k: usize| -> Result<String, OnnxError> {
        if k == layers {
            Ok("last_hidden_state".to_string())
        } else {
            tensors.get(k).cloned().ok_or_else(|| {
                OnnxError::graph(format!("the backbone does not name hidden state {k}"))
            })
        }
    };

    let mut b = GraphBuilder::from_graph(g);
    b.graph.output.clear();
    let mut c = Ctx { b, opset };
    let word_pool = c.b.input(
        "word_pool",
        DataType::Float,
        &[batch.clone(), words.clone(), seq.clone()],
    );
    let word_mask = c.b.input(
        "word_mask",
        DataType::Float,
        &[batch.clone(), words.clone()],
    );
    let states: Vec<String> = spec
        .states
        .iter()
        .map(|&k| state_name(k))
        .collect::<Result<_, _>>()?;
    let cfg = &task_model.config;
    let infos: Vec<_> = cfg.tasks.iter().map(|t| t.info()).collect();

    // Token heads' recurrent states first (a sentence head may read them), then the heads in task
    // order, each with its three outputs.
    let mut token_states: Vec<Option<String>> = vec![None; cfg.tasks.len()];
    for (i, (t, h)) in cfg.tasks.iter().zip(&task_model.heads).enumerate() {
        if let Head::Token(h) = h {
            token_states[i] = Some(c.token_states(&t.name, h, &states, &word_pool, &word_mask)?);
        }
    }
    let pooled = cfg
        .tasks
        .iter()
        .any(|t| !t.kind.is_token())
        .then(|| -> Result<String, OnnxError> {
            let last = state_name(layers)?;
            Ok(c.pooled(&last))
        })
        .transpose()?;
    for (i, (t, h)) in cfg.tasks.iter().zip(&task_model.heads).enumerate() {
        let (_, _, ids_name) = output_names(&infos[i], FORMAT_VERSION);
        match h {
            Head::Sentence(h) => {
                let read = cfg.reads(i).and_then(|r| token_states[r].clone());
                let pooled = pooled
                    .as_deref()
                    .ok_or_else(|| OnnxError::graph("no sentence embedding"))?;
                let logits = c.sentence_head(
                    &t.name,
                    h,
                    pooled,
                    &states,
                    &word_pool,
                    &word_mask,
                    read.as_deref(),
                )?;
                c.classifier_outputs(
                    &logits,
                    &t.name,
                    &ids_name,
                    std::slice::from_ref(&batch),
                    t.labels.len(),
                );
            }
            Head::Token(h) => {
                let y = token_states[i]
                    .clone()
                    .ok_or_else(|| OnnxError::graph("token states missing"))?;
                let logits = c.linear(&y, &h.out, &format!("{}.out", t.name))?;
                let lead = [batch.clone(), words.clone()];
                c.classifier_outputs(&logits, &t.name, &ids_name, &lead, t.labels.len());
                if t.name == TAGS {
                    // The output names of format 1, for the clients written against it.
                    let (l1, p1, i1) = output_names(&infos[i], 1);
                    let (l2, p2, i2) = output_names(&infos[i], FORMAT_VERSION);
                    let n = t.labels.len() as i64;
                    let dims3 = [batch.clone(), words.clone(), Dim::Fixed(n)];
                    for (from, to, ty, dims) in [
                        (&l2, &l1, DataType::Float, &dims3[..]),
                        (&p2, &p1, DataType::Float, &dims3[..]),
                        (&i2, &i1, DataType::Int64, &lead[..]),
                    ] {
                        let v = c.op("Identity", &[from], vec![], &format!("{to}.alias"));
                        c.b.output_as(&v, to, ty, dims);
                    }
                }
            }
        }
    }
    let mut g = c.b.graph;
    graph::prune(&mut g)?;
    model.graph = Some(g);
    model.producer_name = Some("edgetune".into());
    model.producer_version = Some(env!("CARGO_PKG_VERSION").into());
    let json = |v: &serde_json::Value| v.to_string();
    set_metadata(&mut model, META_FORMAT, &FORMAT_VERSION.to_string());
    set_metadata(
        &mut model,
        META_TASKS,
        &json(&serde_json::to_value(&infos).map_err(|e| OnnxError::Invalid(e.to_string()))?),
    );
    for (name, key) in [(crate::data::INTENT, META_INTENTS), (TAGS, META_TAGS)] {
        if let Some(t) = cfg.tasks.iter().find(|t| t.name == name) {
            set_metadata(&mut model, key, &json(&serde_json::json!(t.labels)));
        }
    }
    set_metadata(&mut model, META_TOKENIZER_SHA, &spec.tokenizer_sha256);
    set_metadata(&mut model, META_MAX_TOKENS, &spec.max_tokens.to_string());
    set_metadata(
        &mut model,
        META_STATES,
        &json(&serde_json::json!(spec.states)),
    );
    set_metadata(&mut model, META_PAD_ID, &spec.pad_id.to_string());
    model.doc_string = Some(DOC.into());
    Ok(model)
}

/// The model's `doc_string`: its contract in short.
const DOC: &str = "edgetune merged model (backbone + word pooling + task heads). Inputs: input_ids, \
attention_mask[, token_type_ids] int64 [batch, sequence] padded with edgetune.pad_id; word_pool float \
[batch, words, sequence] (row w = 1/n at the n sub-tokens of word w, zeros for padding/truncated words); \
word_mask float [batch, words]. Outputs per task NAME of edgetune.tasks (JSON [{name, kind, labels}]): \
NAME_logits / NAME_probs ([batch, classes] for kind sentence, [batch, words, classes] for spans/tokens) and \
the arg-max NAME_id int64 [batch] or NAME_ids int64 [batch, words] (spans: apply BIO-constrained decoding \
to NAME_probs to get edgetune's spans). Tokenizer: tokenizer.json beside the model.";
