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
use crate::data::TaskInfo;
use crate::data::TAGS;
use crate::graph::hidden::hidden_state_tensors;
use crate::graph::proto::{tensor_proto::DataType, GraphProto, ModelProto};
use crate::graph::{self, count_layers, set_metadata, Dim, GraphBuilder, OnnxError};
use crate::model::{Head, SentenceHead, TaskModel, TokenHead};
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

/// Builds the merged model from the backbone graph (as loaded from its file) and the trained model:
/// the backbone checked, the word-pooling inputs added, the heads appended (token heads' recurrent
/// states first, as a sentence head may read them), the graph pruned and the contract's metadata
/// set.
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
    let states = StateNames::of(&model, spec)?;
    let g = model
        .graph
        .take()
        .ok_or_else(|| OnnxError::graph("model has no graph"))?;
    check_backbone_io(&g)?;
    let (batch, seq) = graph::input_ids_dims(&g);
    let mut b = GraphBuilder::from_graph(g);
    b.graph.output.clear();
    let words = Dim::param("words");
    let word_pool = b.input(
        "word_pool",
        DataType::Float,
        &[batch.clone(), words.clone(), seq],
    );
    let word_mask = b.input(
        "word_mask",
        DataType::Float,
        &[batch.clone(), words.clone()],
    );
    let mut heads = Heads {
        c: Ctx { b, opset },
        states: spec
            .states
            .iter()
            .map(|&k| states.name(k))
            .collect::<Result<_, _>>()?,
        word_pool,
        word_mask,
        batch,
        words,
    };
    heads.add(task_model, &states)?;
    let mut g = heads.c.b.graph;
    graph::prune(&mut g)?;
    model.graph = Some(g);
    set_contract(&mut model, task_model, spec)?;
    Ok(model)
}

/// The backbone's tensor of each hidden state (0 = embeddings, `layers` = `last_hidden_state`).
struct StateNames {
    layers: usize,
    tensors: Vec<String>,
}

impl StateNames {
    fn of(model: &ModelProto, spec: &MergeSpec) -> Result<Self, OnnxError> {
        let layers = count_layers(model)?;
        if let Some(bad) = spec.states.iter().find(|&&s| s > layers) {
            return Err(OnnxError::Invalid(format!(
                "hidden state {bad} requested, the backbone has 0..={layers}"
            )));
        }
        let tensors = hidden_state_tensors(model)?;
        Ok(StateNames { layers, tensors })
    }

    fn name(&self, k: usize) -> Result<String, OnnxError> {
        if k == self.layers {
            return Ok("last_hidden_state".to_string());
        }
        self.tensors
            .get(k)
            .cloned()
            .ok_or_else(|| OnnxError::graph(format!("the backbone does not name hidden state {k}")))
    }
}

/// The backbone has the output and inputs the merge builds on.
fn check_backbone_io(g: &GraphProto) -> Result<(), OnnxError> {
    let has_last = g
        .output
        .iter()
        .any(|o| o.name.as_deref() == Some("last_hidden_state"));
    if !has_last {
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
    Ok(())
}

/// The heads being appended to the backbone graph, and what they read.
struct Heads {
    c: Ctx,
    /// The hidden states the heads mix, as tensor names.
    states: Vec<String>,
    word_pool: String,
    word_mask: String,
    batch: Dim,
    words: Dim,
}

impl Heads {
    /// Every task's head with its three outputs, in task order.
    fn add(&mut self, task_model: &TaskModel, names: &StateNames) -> Result<(), OnnxError> {
        let cfg = &task_model.config;
        let infos: Vec<_> = cfg.tasks.iter().map(|t| t.info()).collect();
        let mut token_states: Vec<Option<String>> = vec![None; cfg.tasks.len()];
        for (i, (t, h)) in cfg.tasks.iter().zip(&task_model.heads).enumerate() {
            if let Head::Token(h) = h {
                let (pool, mask) = (&self.word_pool, &self.word_mask);
                let y = self.c.token_states(&t.name, h, &self.states, pool, mask)?;
                token_states[i] = Some(y);
            }
        }
        let pooled = match cfg.tasks.iter().any(|t| !t.kind.is_token()) {
            true => Some(self.c.pooled(&names.name(names.layers)?)),
            false => None,
        };
        for (i, (info, h)) in infos.iter().zip(&task_model.heads).enumerate() {
            match h {
                Head::Sentence(h) => {
                    let read = cfg.reads(i).and_then(|r| token_states[r].clone());
                    let pooled = pooled
                        .as_deref()
                        .ok_or_else(|| OnnxError::graph("no sentence embedding"))?;
                    self.sentence(info, h, pooled, read.as_deref())?;
                }
                Head::Token(h) => {
                    let y = token_states[i]
                        .clone()
                        .ok_or_else(|| OnnxError::graph("token states missing"))?;
                    self.token(info, h, &y)?;
                }
            }
        }
        Ok(())
    }

    fn sentence(
        &mut self,
        t: &TaskInfo,
        h: &SentenceHead,
        pooled: &str,
        read: Option<&str>,
    ) -> Result<(), OnnxError> {
        let (pool, mask) = (&self.word_pool, &self.word_mask);
        let logits = self
            .c
            .sentence_head(&t.name, h, pooled, &self.states, pool, mask, read)?;
        let (_, _, ids_name) = output_names(t, FORMAT_VERSION);
        let lead = std::slice::from_ref(&self.batch);
        let n = t.labels.len();
        self.c
            .classifier_outputs(&logits, &t.name, &ids_name, lead, n);
        Ok(())
    }

    /// A token head's outputs; the `tags` task also under the output names of format 1, for the
    /// clients written against it.
    fn token(&mut self, t: &TaskInfo, h: &TokenHead, y: &str) -> Result<(), OnnxError> {
        let logits = self.c.linear(y, &h.out, &format!("{}.out", t.name))?;
        let (_, _, ids_name) = output_names(t, FORMAT_VERSION);
        let lead = [self.batch.clone(), self.words.clone()];
        let n = t.labels.len();
        self.c
            .classifier_outputs(&logits, &t.name, &ids_name, &lead, n);
        if t.name != TAGS {
            return Ok(());
        }
        let (l1, p1, i1) = output_names(t, 1);
        let (l2, p2, i2) = output_names(t, FORMAT_VERSION);
        let dims3 = [lead[0].clone(), lead[1].clone(), Dim::Fixed(n as i64)];
        for (from, to, ty, dims) in [
            (&l2, &l1, DataType::Float, &dims3[..]),
            (&p2, &p1, DataType::Float, &dims3[..]),
            (&i2, &i1, DataType::Int64, &lead[..]),
        ] {
            let v = self
                .c
                .op("Identity", &[from], vec![], &format!("{to}.alias"));
            self.c.b.output_as(&v, to, ty, dims);
        }
        Ok(())
    }
}

/// The merged model's contract in its metadata: format, tasks, the legacy label lists, tokenizer
/// hash, token limit, hidden states, padding id, and the doc string.
fn set_contract(
    model: &mut ModelProto,
    task_model: &TaskModel,
    spec: &MergeSpec,
) -> Result<(), OnnxError> {
    let cfg = &task_model.config;
    let infos: Vec<_> = cfg.tasks.iter().map(|t| t.info()).collect();
    model.producer_name = Some("edgetune".into());
    model.producer_version = Some(env!("CARGO_PKG_VERSION").into());
    let json = |v: &serde_json::Value| v.to_string();
    set_metadata(model, META_FORMAT, &FORMAT_VERSION.to_string());
    let tasks = serde_json::to_value(&infos).map_err(|e| OnnxError::Invalid(e.to_string()))?;
    set_metadata(model, META_TASKS, &json(&tasks));
    for (name, key) in [(crate::data::INTENT, META_INTENTS), (TAGS, META_TAGS)] {
        if let Some(t) = cfg.tasks.iter().find(|t| t.name == name) {
            set_metadata(model, key, &json(&serde_json::json!(t.labels)));
        }
    }
    set_metadata(model, META_TOKENIZER_SHA, &spec.tokenizer_sha256);
    set_metadata(model, META_MAX_TOKENS, &spec.max_tokens.to_string());
    set_metadata(model, META_STATES, &json(&serde_json::json!(spec.states)));
    set_metadata(model, META_PAD_ID, &spec.pad_id.to_string());
    model.doc_string = Some(DOC.into());
    Ok(())
}

/// The model's `doc_string`: its contract in short.
const DOC: &str = "edgetune merged model (backbone + word pooling + task heads). Inputs: input_ids, \
attention_mask[, token_type_ids] int64 [batch, sequence] padded with edgetune.pad_id; word_pool float \
[batch, words, sequence] (row w = 1/n at the n sub-tokens of word w, zeros for padding/truncated words); \
word_mask float [batch, words]. Outputs per task NAME of edgetune.tasks (JSON [{name, kind, labels}]): \
NAME_logits / NAME_probs ([batch, classes] for kind sentence, [batch, words, classes] for spans/tokens) and \
the arg-max NAME_id int64 [batch] or NAME_ids int64 [batch, words] (spans: apply BIO-constrained decoding \
to NAME_probs to get edgetune's spans). Tokenizer: tokenizer.json beside the model.";
