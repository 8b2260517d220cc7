//! The heads as ONNX nodes: the sentence embedding, sentence heads, token heads' recurrent states
//! and the classifier outputs, with the semantics of the candle model (see [`super::merge`]).

use crate::graph::proto::{tensor_proto::DataType, AttributeProto};
use crate::graph::{attr_int, attr_ints, attr_string, Dim, GraphBuilder, OnnxError};
use crate::model::{SentenceHead, TokenHead};
use crate::nn::{softmax_last, GruDir, LayerMix, Linear};

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

/// The graph under construction and the backbone's opset.
pub struct Ctx {
    /// The merged graph.
    pub b: GraphBuilder,
    /// The backbone's default-domain opset.
    pub opset: i64,
}

impl Ctx {
    fn i64s(&mut self, name: &str, v: &[i64]) -> String {
        self.b.initializer_i64(name, &[v.len() as i64], v)
    }

    fn scalar_f32(&mut self, name: &str, v: f32) -> String {
        self.b.initializer_f32(name, &[], &[v])
    }

    /// Adds node `op` named `head/{name}`.
    pub fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        name: &str,
    ) -> String {
        self.b.op_as(op, inputs, attrs, &format!("head/{name}"))
    }

    /// A dense layer.
    pub fn linear(&mut self, x: &str, l: &Linear, name: &str) -> Result<String, OnnxError> {
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

    /// The three outputs of a classifier: `{task}_logits`, `{task}_probs` (softmax over the last
    /// axis) and the arg-max `ids_name` (int64), with `lead` the leading dimensions.
    pub fn classifier_outputs(
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

    /// Exact GELU: `0.5 x (1 + erf(x / sqrt 2))`.
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
    /// The sentence embedding `[batch, H]`: the mean of the last hidden state over real tokens.
    pub fn pooled(&mut self, last: &str) -> String {
        let c = self;
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
        c.op("Div", &[&sum, &cnt], vec![], "pool.pooled")
    }

    /// A sentence head's logits `[batch, classes]` (node names prefixed by the task `t`); `read`:
    /// the masked recurrent states of the token task it reads.
    #[allow(clippy::too_many_arguments)]
    pub fn sentence_head(
        &mut self,
        t: &str,
        h: &SentenceHead,
        pooled: &str,
        states: &[String],
        word_pool: &str,
        word_mask: &str,
        read: Option<&str>,
    ) -> Result<String, OnnxError> {
        let c = self;
        let pooled = pooled.to_string();
        // Attention over the mixed word features.
        let mixed = c.mix(&h.mix, states, &format!("{t}.mix"))?;
        let x = c.op(
            "MatMul",
            &[word_pool, &mixed],
            vec![],
            &format!("{t}.words"),
        );
        let th = c.op("Tanh", &[&x], vec![], &format!("{t}.tanh"));
        let s = c.linear(&th, &h.attn, &format!("{t}.attn"))?;
        let s = c.squeeze(&s, 2, &format!("{t}.scores"));
        let one = c.scalar_f32(&format!("head/{t}.one"), 1.0);
        let big = c.scalar_f32(&format!("head/{t}.neg"), -1e4);
        let inv = c.op("Sub", &[&one, word_mask], vec![], &format!("{t}.inv_mask"));
        let neg = c.op("Mul", &[&inv, &big], vec![], &format!("{t}.neg_mask"));
        let s = c.op("Add", &[&s, &neg], vec![], &format!("{t}.masked"));
        let a = c.op(
            "Softmax",
            &[&s],
            vec![attr_int("axis", -1)],
            &format!("{t}.attention"),
        );
        let a = c.unsqueeze(&a, 1, &format!("{t}.attention1"));
        let ctx = c.op("MatMul", &[&a, &x], vec![], &format!("{t}.context1"));
        let ctx = c.squeeze(&ctx, 1, &format!("{t}.context"));
        let mut parts = vec![pooled, ctx];
        if let Some(y) = read {
            let sc = c.op("MatMul", &[&a, y], vec![], &format!("{t}.slot_context1"));
            parts.push(c.squeeze(&sc, 1, &format!("{t}.slot_context")));
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let feats = c.op(
            "Concat",
            &parts,
            vec![attr_int("axis", 1)],
            &format!("{t}.feats"),
        );
        let hid = c.linear(&feats, &h.hidden, &format!("{t}.hidden"))?;
        let hid = c.gelu_erf(&hid, &format!("{t}.gelu"));
        c.linear(&hid, &h.out, &format!("{t}.out"))
    }

    /// A token head's masked recurrent states `[batch, words, 2 * gru]` (node names prefixed by the
    /// task `t`): the mixed word features projected, then ONNX's bidirectional `GRU` over each
    /// sentence's own words.
    pub fn token_states(
        &mut self,
        t: &str,
        h: &TokenHead,
        states: &[String],
        word_pool: &str,
        word_mask: &str,
    ) -> Result<String, OnnxError> {
        let c = self;
        let mixed = c.mix(&h.mix, states, &format!("{t}.mix"))?;
        let words = format!("{t}.words");
        let x = c.op("MatMul", &[word_pool, &mixed], vec![], &words);
        let x = c.linear(&x, &h.proj, &format!("{t}.proj"))?;
        let len = c.sentence_lengths(t, word_mask);
        let xt = c.op(
            "Transpose",
            &[&x],
            vec![attr_ints("perm", &[1, 0, 2])],
            &format!("{t}.gru_in"),
        );
        let gru = c.bigru(t, h, &xt, &len)?;
        // Y: [W, 2, B, hid] -> [B, W, 2, hid] -> [B, W, 2*hid] (forward then backward, as concatenated in training).
        let y = c.op(
            "Transpose",
            &[&gru],
            vec![attr_ints("perm", &[2, 0, 1, 3])],
            &format!("{t}.gru_t"),
        );
        let shp = c.i64s(&format!("head/{t}.shape"), &[0, 0, -1]);
        let y = c.op("Reshape", &[&y, &shp], vec![], &format!("{t}.gru_out"));
        let m = c.unsqueeze(word_mask, 2, &format!("{t}.mask3"));
        Ok(c.op("Mul", &[&y, &m], vec![], &format!("{t}.masked")))
    }

    /// Each sentence's length in words `[batch]` (int32): one past the last word with features.
    fn sentence_lengths(&mut self, t: &str, word_mask: &str) -> String {
        let c = self;
        let shape = c.op("Shape", &[word_mask], vec![], &format!("{t}.mask_shape"));
        let idx1 = c.i64s(&format!("head/{t}.idx1"), &[1]);
        let w = c.op(
            "Gather",
            &[&shape, &idx1],
            vec![attr_int("axis", 0)],
            &format!("{t}.width1"),
        );
        let w = c.squeeze(&w, 0, &format!("{t}.width"));
        let one_i = c.b.initializer_i64(&format!("head/{t}.one_i"), &[], &[1]);
        let w1 = c.op("Add", &[&w, &one_i], vec![], &format!("{t}.width_plus1"));
        let range = [one_i.as_str(), &w1, &one_i];
        let pos = c.op("Range", &range, vec![], &format!("{t}.positions"));
        let to_float = vec![attr_int("to", DataType::Float as i64)];
        let pos = c.op("Cast", &[&pos], to_float, &format!("{t}.positions_f"));
        let mp = c.op("Mul", &[word_mask, &pos], vec![], &format!("{t}.mask_pos"));
        let len_f = format!("{t}.len_f");
        let len = if c.opset >= 18 {
            let ax = c.i64s(&format!("head/{t}.len_axes"), &[1]);
            c.op(
                "ReduceMax",
                &[&mp, &ax],
                vec![attr_int("keepdims", 0)],
                &len_f,
            )
        } else {
            let attrs = vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)];
            c.op("ReduceMax", &[&mp], attrs, &len_f)
        };
        let to_int = vec![attr_int("to", DataType::Int32 as i64)];
        c.op("Cast", &[&len], to_int, &format!("{t}.lengths"))
    }

    /// ONNX's bidirectional `GRU` (PyTorch's `linear_before_reset`) with the head's weights over
    /// `xt` `[words, batch, in]` and `len`; returns its `Y`.
    fn bigru(&mut self, t: &str, h: &TokenHead, xt: &str, len: &str) -> Result<String, OnnxError> {
        let c = self;
        let dim = |w: &candle_core::Tensor| w.dim(1).map_err(|e| OnnxError::graph(e.to_string()));
        let (hid, inp) = (dim(&h.fwd.w_hh)?, dim(&h.fwd.w_ih)?);
        let (gw, gr, gb) = gru_weights(&[&h.fwd, &h.bwd], hid)?;
        let (h3, h6) = (3 * hid as i64, 6 * hid as i64);
        let gw =
            c.b.initializer_f32(&format!("head/{t}.gru.W"), &[2, h3, inp as i64], &gw);
        let gr =
            c.b.initializer_f32(&format!("head/{t}.gru.R"), &[2, h3, hid as i64], &gr);
        let gb =
            c.b.initializer_f32(&format!("head/{t}.gru.B"), &[2, h6], &gb);
        let outs = c.b.op_multi(
            "GRU",
            &[xt, &gw, &gr, &gb, len],
            1,
            vec![
                attr_int("hidden_size", hid as i64),
                attr_string("direction", "bidirectional"),
                attr_int("linear_before_reset", 1),
            ],
            &format!("head/{t}.gru"),
        );
        Ok(outs[0].clone())
    }
}
