//! The merged export: one ONNX graph holding the frozen backbone, word pooling and both task heads.
//!
//! The backbone graph is kept exactly as used in training (same nodes, same initializers, same
//! opsets); the nodes of the heads are appended to it (value names prefixed `head/`) and the
//! backbone's own outputs are replaced by the heads' outputs. Nodes that no output needs any more
//! (a pooler, say) are pruned.
//!
//! Inputs:
//! - `input_ids`, `attention_mask` (and `token_type_ids` when the backbone has it): int64
//!   `[batch, sequence]`, padded with the tokenizer's pad id;
//! - `word_pool`: float `[batch, words, sequence]`; row `w` holds `1/n` at the `n` sub-tokens of word
//!   `w` (all zero for padding words and words cut by truncation);
//! - `word_mask`: float `[batch, words]`, 1 for words with sub-tokens.
//!
//! Outputs (each only when the run has the head): `intent_logits`, `intent_probs` `[batch, intents]`,
//! `intent_id` int64 `[batch]`; `slot_logits`, `slot_probs` `[batch, words, tags]`, `slot_ids` int64
//! `[batch, words]`.
//!
//! The semantics are those of [`crate::infer::run_examples`]: per-word features are the mean of the
//! word's sub-token vectors, the pooled embedding is the mean of the last hidden state over all real
//! tokens, the layer mixes are linear (so they are applied to the token states before pooling, the
//! same value up to rounding), and the slot head's bidirectional GRU is ONNX's `GRU` with PyTorch's
//! `linear_before_reset` formulation, running over each sentence's own words (`sequence_lens`). An
//! intent head that reads the slot head's states pools the GRU's masked output with its own word
//! attention, as in training.

use std::collections::HashSet;

use ndarray::{Array2, Array3};
use ort::session::Session;
use ort::value::TensorRef;

use super::graph::{self, attr_int, attr_ints, attr_string, Dim, GraphBuilder};
use super::proto::{tensor_proto::DataType, ModelProto};
use super::{set_metadata, OnnxError};
use crate::heads::{softmax_last, GruDir, Heads, IntentHead, LayerMix, Linear, SlotHead};
use crate::tokenize::Tokenized;

/// Version of the merged-model contract (inputs, outputs, metadata keys).
pub const FORMAT_VERSION: u32 = 1;
/// Metadata key: JSON array of intent labels (index = `intent_id`).
pub const META_INTENTS: &str = "edgetune.intents";
/// Metadata key: JSON array of BIO tags (index = `slot_ids` value).
pub const META_TAGS: &str = "edgetune.tags";
/// Metadata key: SHA-256 of the `tokenizer.json` the model expects.
pub const META_TOKENIZER_SHA: &str = "edgetune.tokenizer_sha256";
/// Metadata key: truncation length in tokens.
pub const META_MAX_TOKENS: &str = "edgetune.max_tokens";
/// Metadata key: [`FORMAT_VERSION`].
pub const META_FORMAT: &str = "edgetune.format_version";
/// Metadata key: the hidden states the heads read (JSON array), for the record.
pub const META_STATES: &str = "edgetune.states";
/// Metadata key: the token id `input_ids` are padded with.
pub const META_PAD_ID: &str = "edgetune.pad_id";

/// What the merge needs besides the backbone graph and the heads.
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

fn tensor_f32(t: &candle_core::Tensor) -> Result<Vec<f32>, OnnxError> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| OnnxError::graph(format!("reading head weights: {e}")))
}

/// `W^T` of a `[out, in]` weight, row-major `[in, out]`.
fn transposed(w: &candle_core::Tensor) -> Result<(Vec<f32>, usize, usize), OnnxError> {
    let (out, inp) = w.dims2().map_err(|e| OnnxError::graph(e.to_string()))?;
    let v = tensor_f32(w)?;
    let mut t = vec![0f32; v.len()];
    for o in 0..out {
        for i in 0..inp {
            t[i * out + o] = v[o * inp + i];
        }
    }
    Ok((t, inp, out))
}

struct Ctx {
    b: GraphBuilder,
    opset: i64,
}

impl Ctx {
    fn i64s(&mut self, name: &str, v: &[i64]) -> String {
        self.b.initializer_i64(name, &[v.len() as i64], v)
    }

    fn scalar_f32(&mut self, name: &str, v: f32) -> String {
        self.b.initializer_f32(name, &[], &[v])
    }

    fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<super::proto::AttributeProto>,
        name: &str,
    ) -> String {
        self.b.op_as(op, inputs, attrs, &format!("head/{name}"))
    }

    fn linear(&mut self, x: &str, l: &Linear, name: &str) -> Result<String, OnnxError> {
        let (w, inp, out) = transposed(&l.weight)?;
        let bias = tensor_f32(&l.bias)?;
        Ok(self
            .b
            .linear(x, &w, inp, out, Some(&bias), &format!("head/{name}")))
    }

    fn squeeze(&mut self, x: &str, axis: i64, name: &str) -> String {
        let a = self.i64s(&format!("head/{name}.axes"), &[axis]);
        self.op("Squeeze", &[x, &a], vec![], name)
    }

    fn unsqueeze(&mut self, x: &str, axis: i64, name: &str) -> String {
        let a = self.i64s(&format!("head/{name}.axes"), &[axis]);
        self.op("Unsqueeze", &[x, &a], vec![], name)
    }

    /// `softmax(weights) * gamma`-weighted sum of the token states, `[B, S, H]`.
    fn mix(&mut self, mix: &LayerMix, states: &[String], name: &str) -> Result<String, OnnxError> {
        let w: Vec<f32> = softmax_last(&mix.weights)
            .and_then(|w| w.broadcast_mul(&mix.gamma))
            .and_then(|w| w.to_vec1::<f32>())
            .map_err(|e| OnnxError::graph(e.to_string()))?;
        if w.len() != states.len() {
            return Err(OnnxError::graph(format!(
                "{name}: {} mix weights for {} states",
                w.len(),
                states.len()
            )));
        }
        let mut acc: Option<String> = None;
        for (i, (s, wi)) in states.iter().zip(&w).enumerate() {
            let c = self.scalar_f32(&format!("head/{name}.w{i}"), *wi);
            let term = self.op("Mul", &[s, &c], vec![], &format!("{name}.term{i}"));
            acc = Some(match acc {
                Some(a) => self.op("Add", &[&a, &term], vec![], &format!("{name}.sum{i}")),
                None => term,
            });
        }
        acc.ok_or_else(|| OnnxError::graph("layer mix over zero states"))
    }

    /// `tanh`-free exact GELU: `0.5 x (1 + erf(x / sqrt 2))`.
    /// The three outputs of a classifier: `{task}_logits`, `{task}_probs` (softmax over the last
    /// axis) and the arg-max `ids_name` (int64), with `lead` the leading dimensions.
    fn classifier_outputs(
        &mut self,
        logits: &str,
        task: &str,
        ids_name: &str,
        lead: &[Dim],
        classes: usize,
    ) {
        let probs = self.op(
            "Softmax",
            &[logits],
            vec![attr_int("axis", -1)],
            &format!("{task}.softmax"),
        );
        let ids = self.op(
            "ArgMax",
            &[&probs],
            vec![attr_int("axis", -1), attr_int("keepdims", 0)],
            &format!("{task}.argmax"),
        );
        let mut dims = lead.to_vec();
        dims.push(Dim::Fixed(classes as i64));
        self.b
            .output_as(logits, &format!("{task}_logits"), DataType::Float, &dims);
        self.b
            .output_as(&probs, &format!("{task}_probs"), DataType::Float, &dims);
        self.b.output_as(&ids, ids_name, DataType::Int64, lead);
    }

    fn gelu_erf(&mut self, x: &str, name: &str) -> String {
        let r = self.scalar_f32(
            &format!("head/{name}.inv_sqrt2"),
            std::f32::consts::FRAC_1_SQRT_2,
        );
        let one = self.scalar_f32(&format!("head/{name}.one"), 1.0);
        let half = self.scalar_f32(&format!("head/{name}.half"), 0.5);
        let s = self.op("Mul", &[x, &r], vec![], &format!("{name}.scaled"));
        let e = self.op("Erf", &[&s], vec![], &format!("{name}.erf"));
        let e1 = self.op("Add", &[&e, &one], vec![], &format!("{name}.erf1"));
        let h = self.op("Mul", &[&e1, &half], vec![], &format!("{name}.half"));
        self.op("Mul", &[&h, x], vec![], name)
    }
}

/// PyTorch gate blocks (r, z, n) of a `[3h, ...]` tensor reordered to ONNX's (z, r, h).
fn reorder_gates(v: &[f32], hid: usize) -> Vec<f32> {
    let block = v.len() / 3;
    debug_assert_eq!(block % hid, 0);
    let (r, rest) = v.split_at(block);
    let (z, n) = rest.split_at(block);
    [z, r, n].concat()
}

fn gru_weights(dirs: &[&GruDir], hid: usize) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>), OnnxError> {
    let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for d in dirs {
        w.extend(reorder_gates(&tensor_f32(&d.w_ih)?, hid));
        r.extend(reorder_gates(&tensor_f32(&d.w_hh)?, hid));
        b.extend(reorder_gates(&tensor_f32(&d.b_ih)?, hid));
        b.extend(reorder_gates(&tensor_f32(&d.b_hh)?, hid));
    }
    Ok((w, r, b))
}

impl Ctx {
    /// The intent head's logits `[batch, intents]`; `slot_states`: the slot head's masked
    /// recurrent states when the intent head reads them.
    fn intent_head(
        &mut self,
        h: &IntentHead,
        last: &str,
        states: &[String],
        word_pool: &str,
        word_mask: &str,
        slot_states: Option<&str>,
    ) -> Result<String, OnnxError> {
        let c = self;
        // Pooled embedding: mean of the last hidden state over real tokens.
        let m = c.op(
            "Cast",
            &["attention_mask"],
            vec![attr_int("to", DataType::Float as i64)],
            "pool.mask",
        );
        let m1 = c.unsqueeze(&m, 1, "pool.mask1");
        let sum = c.op("MatMul", &[&m1, last], vec![], "pool.sum");
        let sum = c.squeeze(&sum, 1, "pool.sum_sq");
        let ax = c.i64s("head/pool.axes", &[1]);
        let cnt = c.op(
            "ReduceSum",
            &[&m, &ax],
            vec![attr_int("keepdims", 1)],
            "pool.count",
        );
        let one = c.scalar_f32("head/pool.one", 1.0);
        let cnt = c.op("Max", &[&cnt, &one], vec![], "pool.count1");
        let pooled = c.op("Div", &[&sum, &cnt], vec![], "pool.pooled");
        // Attention over the mixed word features.
        let mixed = c.mix(&h.mix, states, "intent.mix")?;
        let x = c.op("MatMul", &[word_pool, &mixed], vec![], "intent.words");
        let t = c.op("Tanh", &[&x], vec![], "intent.tanh");
        let s = c.linear(&t, &h.attn, "intent.attn")?;
        let s = c.squeeze(&s, 2, "intent.scores");
        let one = c.scalar_f32("head/intent.one", 1.0);
        let big = c.scalar_f32("head/intent.neg", -1e4);
        let inv = c.op("Sub", &[&one, word_mask], vec![], "intent.inv_mask");
        let neg = c.op("Mul", &[&inv, &big], vec![], "intent.neg_mask");
        let s = c.op("Add", &[&s, &neg], vec![], "intent.masked");
        let a = c.op(
            "Softmax",
            &[&s],
            vec![attr_int("axis", -1)],
            "intent.attention",
        );
        let a = c.unsqueeze(&a, 1, "intent.attention1");
        let ctx = c.op("MatMul", &[&a, &x], vec![], "intent.context1");
        let ctx = c.squeeze(&ctx, 1, "intent.context");
        let mut parts = vec![pooled, ctx];
        if let Some(y) = slot_states {
            let sc = c.op("MatMul", &[&a, y], vec![], "intent.slot_context1");
            parts.push(c.squeeze(&sc, 1, "intent.slot_context"));
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let feats = c.op("Concat", &parts, vec![attr_int("axis", 1)], "intent.feats");
        let hid = c.linear(&feats, &h.hidden, "intent.hidden")?;
        let hid = c.gelu_erf(&hid, "intent.gelu");
        c.linear(&hid, &h.out, "intent.out")
    }

    /// The slot head's masked recurrent states `[batch, words, 2 * gru]`.
    fn slot_states(
        &mut self,
        h: &SlotHead,
        states: &[String],
        word_pool: &str,
        word_mask: &str,
    ) -> Result<String, OnnxError> {
        let c = self;
        let mixed = c.mix(&h.mix, states, "slot.mix")?;
        let x = c.op("MatMul", &[word_pool, &mixed], vec![], "slot.words");
        let x = c.linear(&x, &h.proj, "slot.proj")?;
        let hid = h
            .fwd
            .w_hh
            .dim(1)
            .map_err(|e| OnnxError::graph(e.to_string()))?;
        // Sentence length = one past the last word with features.
        let shape = c.op("Shape", &[word_mask], vec![], "slot.mask_shape");
        let idx1 = c.i64s("head/slot.idx1", &[1]);
        let w = c.op(
            "Gather",
            &[&shape, &idx1],
            vec![attr_int("axis", 0)],
            "slot.width1",
        );
        let w = c.squeeze(&w, 0, "slot.width");
        let one_i = c.b.initializer_i64("head/slot.one_i", &[], &[1]);
        let w1 = c.op("Add", &[&w, &one_i], vec![], "slot.width_plus1");
        let pos = c.op("Range", &[&one_i, &w1, &one_i], vec![], "slot.positions");
        let pos = c.op(
            "Cast",
            &[&pos],
            vec![attr_int("to", DataType::Float as i64)],
            "slot.positions_f",
        );
        let mp = c.op("Mul", &[word_mask, &pos], vec![], "slot.mask_pos");
        let len = if c.opset >= 18 {
            let ax = c.i64s("head/slot.len_axes", &[1]);
            c.op(
                "ReduceMax",
                &[&mp, &ax],
                vec![attr_int("keepdims", 0)],
                "slot.len_f",
            )
        } else {
            c.op(
                "ReduceMax",
                &[&mp],
                vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)],
                "slot.len_f",
            )
        };
        let len = c.op(
            "Cast",
            &[&len],
            vec![attr_int("to", DataType::Int32 as i64)],
            "slot.lengths",
        );
        let xt = c.op(
            "Transpose",
            &[&x],
            vec![attr_ints("perm", &[1, 0, 2])],
            "slot.gru_in",
        );
        let (gw, gr, gb) = gru_weights(&[&h.fwd, &h.bwd], hid)?;
        let inp = h
            .fwd
            .w_ih
            .dim(1)
            .map_err(|e| OnnxError::graph(e.to_string()))?;
        let gw =
            c.b.initializer_f32("head/slot.gru.W", &[2, 3 * hid as i64, inp as i64], &gw);
        let gr =
            c.b.initializer_f32("head/slot.gru.R", &[2, 3 * hid as i64, hid as i64], &gr);
        let gb =
            c.b.initializer_f32("head/slot.gru.B", &[2, 6 * hid as i64], &gb);
        let outs = c.b.op_multi(
            "GRU",
            &[&xt, &gw, &gr, &gb, &len],
            1,
            vec![
                attr_int("hidden_size", hid as i64),
                attr_string("direction", "bidirectional"),
                attr_int("linear_before_reset", 1),
            ],
            "head/slot.gru",
        );
        // Y: [W, 2, B, hid] -> [B, W, 2, hid] -> [B, W, 2*hid] (forward then backward, as concatenated in training).
        let y = c.op(
            "Transpose",
            &[&outs[0]],
            vec![attr_ints("perm", &[2, 0, 1, 3])],
            "slot.gru_t",
        );
        let shp = c.i64s("head/slot.shape", &[0, 0, -1]);
        let y = c.op("Reshape", &[&y, &shp], vec![], "slot.gru_out");
        let m = c.unsqueeze(word_mask, 2, "slot.mask3");
        let y = c.op("Mul", &[&y, &m], vec![], "slot.masked");
        Ok(y)
    }
}

/// Builds the merged model from the backbone graph (as loaded from its file) and trained heads.
pub fn build_merged(
    mut model: ModelProto,
    heads: &Heads,
    spec: &MergeSpec,
) -> Result<ModelProto, OnnxError> {
    let opset = graph::default_opset(&model);
    if opset < 13 {
        return Err(OnnxError::Invalid(format!(
            "the backbone imports opset {opset}; the merged export needs opset 13 or later"
        )));
    }
    let layers = super::count_layers(&model)?;
    if let Some(bad) = spec.states.iter().find(|&&s| s > layers) {
        return Err(OnnxError::Invalid(format!(
            "hidden state {bad} requested, the backbone has 0..={layers}"
        )));
    }
    let tensors = super::hidden::hidden_state_tensors(&model)?;
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
    let state_name = |k: usize| {
        if k == layers {
            "last_hidden_state".to_string()
        } else {
            tensors[k].clone()
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
    let states: Vec<String> = spec.states.iter().map(|&k| state_name(k)).collect();

    let slot_y = match &heads.slot {
        Some(h) => Some(c.slot_states(h, &states, &word_pool, &word_mask)?),
        None => None,
    };
    if let Some(h) = &heads.intent {
        // `Heads::new` guarantees a slot head to an intent head that reads its states.
        let reads = slot_y
            .as_deref()
            .filter(|_| heads.config.intent_head.slot_states);
        let last = state_name(layers);
        let logits = c.intent_head(h, &last, &states, &word_pool, &word_mask, reads)?;
        c.classifier_outputs(
            &logits,
            "intent",
            "intent_id",
            &[batch.clone()],
            heads.config.intents.len(),
        );
    }
    if let (Some(h), Some(y)) = (&heads.slot, &slot_y) {
        let logits = c.linear(y, &h.out, "slot.out")?;
        c.classifier_outputs(
            &logits,
            "slot",
            "slot_ids",
            &[batch.clone(), words.clone()],
            heads.config.tags.len(),
        );
    }
    if heads.intent.is_none() && heads.slot.is_none() {
        return Err(OnnxError::Invalid(
            "the run has neither an intent nor a slot head".into(),
        ));
    }
    let mut g = c.b.graph;
    graph::prune(&mut g)?;
    // Keep the backbone's inputs the heads still need (all of them, in practice) plus ours.
    model.graph = Some(g);
    model.producer_name = Some("edgetune".into());
    model.producer_version = Some(env!("CARGO_PKG_VERSION").into());
    let json = |v: &[String]| serde_json::to_string(v).expect("labels serialize");
    set_metadata(&mut model, META_FORMAT, &FORMAT_VERSION.to_string());
    set_metadata(&mut model, META_INTENTS, &json(&heads.config.intents));
    set_metadata(&mut model, META_TAGS, &json(&heads.config.tags));
    set_metadata(&mut model, META_TOKENIZER_SHA, &spec.tokenizer_sha256);
    set_metadata(&mut model, META_MAX_TOKENS, &spec.max_tokens.to_string());
    set_metadata(
        &mut model,
        META_STATES,
        &serde_json::to_string(&spec.states).expect("states serialize"),
    );
    set_metadata(&mut model, META_PAD_ID, &spec.pad_id.to_string());
    model.doc_string = Some(DOC.into());
    Ok(model)
}

/// The model's `doc_string`: its contract in short.
const DOC: &str = "edgetune merged model (backbone + word pooling + intent/slot heads). Inputs: input_ids, \
attention_mask[, token_type_ids] int64 [batch, sequence] padded with edgetune.pad_id; word_pool float \
[batch, words, sequence] (row w = 1/n at the n sub-tokens of word w, zeros for padding/truncated words); \
word_mask float [batch, words]. Outputs: intent_logits/intent_probs [batch, intents], intent_id int64 \
[batch]; slot_logits/slot_probs [batch, words, tags], slot_ids int64 [batch, words]. Labels: metadata \
edgetune.intents / edgetune.tags (JSON). Tokenizer: tokenizer.json beside the model.";

/// The inputs of a merged model for a batch of tokenized examples (row-major, padded to the
/// batch's longest sequence and sentence).
#[derive(Debug, Clone)]
pub struct MergedInputs {
    pub input_ids: Array2<i64>,
    pub attention_mask: Array2<i64>,
    pub token_type_ids: Array2<i64>,
    pub word_pool: Array3<f32>,
    pub word_mask: Array2<f32>,
}

impl MergedInputs {
    /// Pads `batch` with `pad_id`; at least one token and one word wide.
    pub fn new(batch: &[&Tokenized], pad_id: u32) -> Self {
        let b = batch.len();
        let t = batch.iter().map(|x| x.ids.len()).max().unwrap_or(0).max(1);
        let w = batch
            .iter()
            .map(|x| x.word_tokens.len())
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
            for (j, &(s, e)) in x.word_tokens.iter().enumerate() {
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

/// A merged model's outputs for one batch (`None` for a head the model lacks).
#[derive(Debug, Clone, Default)]
pub struct MergedOutputs {
    /// `[batch, intents]`.
    pub intent_logits: Option<Array2<f32>>,
    pub intent_probs: Option<Array2<f32>>,
    pub intent_id: Option<Vec<i64>>,
    /// `[batch, words, tags]`.
    pub slot_logits: Option<Array3<f32>>,
    pub slot_probs: Option<Array3<f32>>,
    pub slot_ids: Option<Array2<i64>>,
}

/// Runs a merged-model session on one batch.
pub fn run_merged(session: &mut Session, x: &MergedInputs) -> Result<MergedOutputs, OnnxError> {
    let err = |e: ort::Error| OnnxError::Runtime {
        path: "<merged model>".into(),
        message: e.to_string(),
    };
    let has_types = session
        .inputs()
        .iter()
        .any(|i| i.name() == "token_type_ids");
    let out_names: HashSet<String> = session
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
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
    let f2 = |n: &str| -> Result<Option<Array2<f32>>, OnnxError> {
        if !out_names.contains(n) {
            return Ok(None);
        }
        let v = outputs[n].try_extract_array::<f32>().map_err(err)?;
        Ok(Some(
            v.into_dimensionality()
                .map_err(|e| OnnxError::graph(format!("{n}: {e}")))?
                .to_owned(),
        ))
    };
    let f3 = |n: &str| -> Result<Option<Array3<f32>>, OnnxError> {
        if !out_names.contains(n) {
            return Ok(None);
        }
        let v = outputs[n].try_extract_array::<f32>().map_err(err)?;
        Ok(Some(
            v.into_dimensionality()
                .map_err(|e| OnnxError::graph(format!("{n}: {e}")))?
                .to_owned(),
        ))
    };
    let mut o = MergedOutputs {
        intent_logits: f2("intent_logits")?,
        intent_probs: f2("intent_probs")?,
        ..Default::default()
    };
    o.slot_logits = f3("slot_logits")?;
    o.slot_probs = f3("slot_probs")?;
    if out_names.contains("intent_id") {
        o.intent_id = Some(
            outputs["intent_id"]
                .try_extract_array::<i64>()
                .map_err(err)?
                .iter()
                .copied()
                .collect(),
        );
    }
    if out_names.contains("slot_ids") {
        let v = outputs["slot_ids"]
            .try_extract_array::<i64>()
            .map_err(err)?;
        o.slot_ids = Some(
            v.into_dimensionality()
                .map_err(|e| OnnxError::graph(format!("slot_ids: {e}")))?
                .to_owned(),
        );
    }
    Ok(o)
}

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

/// The figures of a self-check.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Sentences compared.
    pub sentences: usize,
    /// Largest |intent logit difference| (0 without an intent head).
    pub intent_max_diff: f32,
    /// Largest |slot logit difference| over each sentence's words (0 without a slot head).
    pub slot_max_diff: f32,
    /// Predicted ids that differ (intents + word tags).
    pub id_mismatches: usize,
    /// Intent ids compared (one per sentence with an intent head).
    pub intent_ids: usize,
    /// Intent ids that differ.
    pub intent_mismatches: usize,
    /// Word tag ids compared.
    pub slot_ids: usize,
    /// Word tag ids that differ.
    pub slot_mismatches: usize,
}

impl VerifyReport {
    /// Largest logit difference of both heads.
    pub fn max_diff(&self) -> f32 {
        self.intent_max_diff.max(self.slot_max_diff)
    }

    /// Fraction of predicted ids (intents and word tags together) that agree; 1 when none compared.
    pub fn id_agreement(&self) -> f64 {
        agreement(self.id_mismatches, self.intent_ids + self.slot_ids)
    }

    /// Fraction of intent ids that agree (1 when none compared).
    pub fn intent_agreement(&self) -> f64 {
        agreement(self.intent_mismatches, self.intent_ids)
    }

    /// Fraction of word tag ids that agree (1 when none compared).
    pub fn slot_agreement(&self) -> f64 {
        agreement(self.slot_mismatches, self.slot_ids)
    }
}

fn agreement(mismatches: usize, total: usize) -> f64 {
    if total == 0 {
        1.0
    } else {
        1.0 - mismatches as f64 / total as f64
    }
}

/// Reference logits of the training pipeline (backbone outputs pooled per word by
/// [`crate::infer::example_rows`], heads in candle; with fine-tuned top layers, the backbone's
/// token states `states` through the layers in candle first, as `eval`/`infer --run` do) for each
/// example, in order: intent logits and per-word slot logits (the sentence's words only).
#[allow(clippy::type_complexity)]
pub fn reference_logits(
    backbone: &mut crate::backbone::Backbone,
    heads: &Heads,
    states: &[usize],
    toks: &[Tokenized],
) -> anyhow::Result<Vec<(Option<Vec<f32>>, Option<Vec<Vec<f32>>>)>> {
    use crate::infer::{example_rows, token_rows};
    use crate::train::batch::{make_batch, make_token_batch};
    let (positions, last) = backbone.positions(states);
    let mut order: Vec<usize> = (0..toks.len()).collect();
    order.sort_by_key(|&i| (toks[i].ids.len(), i));
    let mut res = vec![(None, None); toks.len()];
    let dev = candle_core::Device::Cpu;
    for chunk in order.chunks(VERIFY_BATCH) {
        let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
        let out = backbone.run(&batch)?;
        let b = if heads.top.is_some() {
            // Fine-tuned top layers: cached-style token states -> layers (candle) -> word pooling.
            let rows: Vec<_> = (0..chunk.len())
                .map(|r| token_rows(&out, r, batch[r], &positions))
                .collect();
            let refs: Vec<_> = rows.iter().collect();
            let tb = make_token_batch(&refs, states.len(), backbone.hidden, &dev)?;
            heads.token_inputs(&tb, None)?
        } else {
            let rows: Vec<_> = (0..chunk.len())
                .map(|r| example_rows(&out, r, batch[r], &positions, last))
                .collect();
            let refs: Vec<_> = rows.iter().collect();
            make_batch(&refs, states.len(), backbone.hidden, &dev)?
        };
        let out = heads.forward(&b, true, true, None)?;
        let il: Option<Vec<Vec<f32>>> = out.intent.map(|t| t.to_vec2()).transpose()?;
        let sl: Option<Vec<Vec<Vec<f32>>>> = out.slot.map(|t| t.to_vec3()).transpose()?;
        for (r, &i) in chunk.iter().enumerate() {
            let w = batch[r].word_tokens.len();
            res[i] = (
                il.as_ref().map(|v| v[r].clone()),
                sl.as_ref().map(|v| v[r][..w].to_vec()),
            );
        }
    }
    Ok(res)
}

/// Examples per batch of the self-check, on both sides (as `infer` batches).
const VERIFY_BATCH: usize = 32;

/// Compares a merged model (a session on it) with the training pipeline on `toks`. Both sides see
/// the same length-sorted batches of [`VERIFY_BATCH`] (as `infer --run` and `infer --model` do): an
/// int8 backbone quantizes its activations per batch, so other batches would give other features.
pub fn verify(
    merged: &mut Session,
    backbone: &mut crate::backbone::Backbone,
    heads: &Heads,
    states: &[usize],
    toks: &[Tokenized],
    pad_id: u32,
) -> anyhow::Result<VerifyReport> {
    let reference = reference_logits(backbone, heads, states, toks)?;
    let decoded = crate::infer::run_examples(backbone, heads, states, toks, VERIFY_BATCH)?;
    let mut order: Vec<usize> = (0..toks.len()).collect();
    order.sort_by_key(|&i| (toks[i].ids.len(), i));
    let mut rep = VerifyReport {
        sentences: toks.len(),
        ..Default::default()
    };
    for chunk in order.chunks(VERIFY_BATCH) {
        let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
        let out = run_merged(merged, &MergedInputs::new(&batch, pad_id))?;
        for (r, &i) in chunk.iter().enumerate() {
            let ((ri, rs), (d, _)) = (&reference[i], &decoded[i]);
            if let (Some(ri), Some((id, _, _))) = (ri, &d.intent) {
                let ml = out
                    .intent_logits
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("merged model has no intent_logits"))?;
                let mid = out
                    .intent_id
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("merged model has no intent_id"))?;
                let row: Vec<f32> = ml.row(r).to_vec();
                rep.intent_max_diff = rep
                    .intent_max_diff
                    .max(super::runtime::max_abs_diff(ri, &row));
                let differs = usize::from(mid[r] as usize != *id);
                rep.intent_ids += 1;
                rep.intent_mismatches += differs;
                rep.id_mismatches += differs;
            }
            if let (Some(rs), Some(tags)) = (rs, &d.tags) {
                let ml = out
                    .slot_logits
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("merged model has no slot_logits"))?;
                let mid = out
                    .slot_ids
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("merged model has no slot_ids"))?;
                for (w, (row, (tid, _))) in rs.iter().zip(tags).enumerate() {
                    let m: Vec<f32> = ml.slice(ndarray::s![r, w, ..]).to_vec();
                    rep.slot_max_diff =
                        rep.slot_max_diff.max(super::runtime::max_abs_diff(row, &m));
                    let differs = usize::from(mid[[r, w]] as usize != *tid);
                    rep.slot_ids += 1;
                    rep.slot_mismatches += differs;
                    rep.id_mismatches += differs;
                }
            }
        }
    }
    Ok(rep)
}
