//! Emitting a BERT-family encoder as an ONNX graph of standard operators, layer by layer (shared
//! with the export of fine-tuned top layers).

use crate::graph::hidden::{META_HIDDEN_SIZE, META_HIDDEN_TENSOR, META_NUM_LAYERS};
use crate::graph::proto::{tensor_proto::DataType, ModelProto};
use crate::graph::{
    attr_float, attr_int, attr_ints, set_metadata, tensor, Dim, GraphBuilder, OnnxError,
};
use crate::hf::{BertConfig, Weights};

/// Transposes a row-major `[rows, cols]` matrix into `[cols, rows]`.
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// Builds the fp32 encoder graph from weights. Value names: `hidden.{k}` are the hidden states
/// (`hidden.{L}` is emitted as `last_hidden_state`); recorded in metadata for [`super::hidden`].
pub fn build_bert_graph(
    c: &BertConfig,
    w: &Weights,
    hidden_states: &[usize],
) -> Result<ModelProto, OnnxError> {
    let h = c.hidden_size;
    let l = c.num_hidden_layers;
    let hi = h as i64;
    let eps = c.layer_norm_eps as f32;
    let mut b = GraphBuilder::new("edgetune_bert");
    let io = [Dim::param("batch"), Dim::param("sequence")];
    b.input("input_ids", DataType::Int64, &io);
    b.input("attention_mask", DataType::Int64, &io);
    b.input("token_type_ids", DataType::Int64, &io);

    // Embeddings: word + position (rows 0..seq) + token type, then LayerNorm.
    let word = b.initializer_f32(
        "embeddings.word_embeddings.weight",
        &[c.vocab_size as i64, hi],
        w.get("embeddings.word_embeddings.weight", &[c.vocab_size, h])?,
    );
    let pos = b.initializer_f32(
        "embeddings.position_embeddings.weight",
        &[c.max_position_embeddings as i64, hi],
        w.get(
            "embeddings.position_embeddings.weight",
            &[c.max_position_embeddings, h],
        )?,
    );
    let typ = b.initializer_f32(
        "embeddings.token_type_embeddings.weight",
        &[c.type_vocab_size as i64, hi],
        w.get(
            "embeddings.token_type_embeddings.weight",
            &[c.type_vocab_size, h],
        )?,
    );
    let zero = b.initializer_i64("const.zero_1d", &[1], &[0]);
    let one = b.initializer_i64("const.one_1d", &[1], &[1]);
    let two = b.initializer_i64("const.two_1d", &[1], &[2]);
    let e_word = b.op_as(
        "Gather",
        &[&word, "input_ids"],
        vec![attr_int("axis", 0)],
        "embeddings.word",
    );
    let shape = b.op_as("Shape", &["input_ids"], vec![], "embeddings.ids_shape");
    let seq_len = b.op_as(
        "Slice",
        &[&shape, &one, &two, &zero],
        vec![],
        "embeddings.seq_len",
    );
    let e_pos = b.op_as(
        "Slice",
        &[&pos, &zero, &seq_len, &zero],
        vec![],
        "embeddings.position",
    );
    let e_typ = b.op_as(
        "Gather",
        &[&typ, "token_type_ids"],
        vec![attr_int("axis", 0)],
        "embeddings.token_type",
    );
    let s1 = b.op_as("Add", &[&e_word, &e_typ], vec![], "embeddings.sum");
    let s2 = b.op_as("Add", &[&s1, &e_pos], vec![], "embeddings.sum");
    let mut x = layer_norm(&mut b, w, &s2, "embeddings.LayerNorm", h, eps, "hidden.0")?;
    let mut hidden_tensors = vec![x.clone()];

    let consts = LayerConstants::new(&mut b, c, "attention_mask");
    for i in 0..l {
        let out_name = if i + 1 == l {
            "last_hidden_state".to_string()
        } else {
            format!("hidden.{}", i + 1)
        };
        x = bert_layer(&mut b, c, w, &consts, i, &x, &out_name)?;
        hidden_tensors.push(x.clone());
    }
    let out_dims = [Dim::param("batch"), Dim::param("sequence"), Dim::Fixed(hi)];
    b.output("last_hidden_state", DataType::Float, &out_dims);
    let mut model = b.into_model("edgetune");
    model.doc_string = Some(format!(
        "BERT-family encoder imported by edgetune {}",
        env!("CARGO_PKG_VERSION")
    ));
    set_metadata(&mut model, META_NUM_LAYERS, &l.to_string());
    set_metadata(&mut model, META_HIDDEN_SIZE, &h.to_string());
    for (k, t) in hidden_tensors.iter().enumerate() {
        set_metadata(&mut model, &format!("{META_HIDDEN_TENSOR}{k}"), t);
    }
    crate::graph::expose_hidden_states(&mut model, hidden_states)?;
    Ok(model)
}

/// Names of the values every transformer layer of [`bert_layer`] shares: the additive attention mask
/// and a few constants.
pub struct LayerConstants {
    /// Additive attention mask `[batch, 1, 1, seq]`: `(1 - mask) * f32::MIN`.
    mask_add: String,
    heads_shape: String,
    merge_shape: String,
    scale: String,
    one: String,
    half: String,
    sqrt2: String,
}

impl LayerConstants {
    /// Adds the additive attention mask computed from the int64 input `attention_mask` (`(1 - mask)
    /// * f32::MIN`, as candle/transformers and [`crate::backbone::layers::TopLayers`] do) and the
    /// layers' constants to `b`.
    pub fn new(b: &mut GraphBuilder, c: &BertConfig, attention_mask: &str) -> Self {
        let nh = c.num_attention_heads;
        let hd = c.hidden_size / nh;
        let hi = c.hidden_size as i64;
        // Additive attention mask [batch, 1, 1, seq]: (1 - mask) * f32::MIN, as candle/transformers do.
        let axes = b.initializer_i64("const.mask_axes", &[2], &[1, 2]);
        let m4 = b.op_as(
            "Unsqueeze",
            &[attention_mask, &axes],
            vec![],
            "mask.unsqueezed",
        );
        let mf = b.op_as(
            "Cast",
            &[&m4],
            vec![attr_int("to", DataType::Float as i64)],
            "mask.float",
        );
        let onef = b.initializer(tensor("const.one_f", &[], &[1f32]));
        let minf = b.initializer(tensor("const.min_f", &[], &[f32::MIN]));
        let inv = b.op_as("Sub", &[&onef, &mf], vec![], "mask.inverted");
        let mask_add = b.op_as("Mul", &[&inv, &minf], vec![], "mask.additive");

        let heads_shape =
            b.initializer_i64("const.heads_shape", &[4], &[0, 0, nh as i64, hd as i64]);
        let merge_shape = b.initializer_i64("const.merge_shape", &[3], &[0, 0, hi]);
        let scale = b.initializer(tensor("const.sqrt_head_dim", &[], &[(hd as f32).sqrt()]));
        let half_f = b.initializer(tensor("const.half", &[], &[0.5f32]));
        let sqrt2 = b.initializer(tensor("const.sqrt2", &[], &[std::f32::consts::SQRT_2]));
        LayerConstants {
            mask_add,
            heads_shape,
            merge_shape,
            scale,
            one: onef,
            half: half_f,
            sqrt2,
        }
    }
}

/// Appends transformer layer `i` (`encoder.layer.{i}.*` of `w`) to `b`: input hidden state `x`,
/// output hidden state `i + 1` named `out_name` (made unique). Post-LN BERT: self-attention with
/// the additive mask of `cs`, residual, LayerNorm, exact-GELU FFN, residual, LayerNorm.
pub fn bert_layer(
    b: &mut GraphBuilder,
    c: &BertConfig,
    w: &Weights,
    cs: &LayerConstants,
    i: usize,
    x: &str,
    out_name: &str,
) -> Result<String, OnnxError> {
    let h = c.hidden_size;
    let eps = c.layer_norm_eps as f32;
    let p = format!("encoder.layer.{i}");
    let lin = |b: &mut GraphBuilder,
               x: &str,
               name: &str,
               din: usize,
               dout: usize|
     -> Result<String, OnnxError> {
        let wt = w.get(&format!("{p}.{name}.weight"), &[dout, din])?;
        let bias = w.get(&format!("{p}.{name}.bias"), &[dout])?;
        Ok(b.linear(
            x,
            &transpose(wt, dout, din),
            din,
            dout,
            Some(bias),
            &format!("{p}.{name}"),
        ))
    };
    let q = lin(b, x, "attention.self.query", h, h)?;
    let k = lin(b, x, "attention.self.key", h, h)?;
    let v = lin(b, x, "attention.self.value", h, h)?;
    let split = |b: &mut GraphBuilder, t: &str, perm: &[i64], n: &str| {
        let r = b.op_as(
            "Reshape",
            &[t, &cs.heads_shape],
            vec![],
            &format!("{p}.attention.{n}_heads"),
        );
        b.op_as(
            "Transpose",
            &[&r],
            vec![attr_ints("perm", perm)],
            &format!("{p}.attention.{n}_t"),
        )
    };
    let qh = split(b, &q, &[0, 2, 1, 3], "q");
    let kh = split(b, &k, &[0, 2, 3, 1], "k");
    let vh = split(b, &v, &[0, 2, 1, 3], "v");
    let sc = b.op_as(
        "MatMul",
        &[&qh, &kh],
        vec![],
        &format!("{p}.attention.scores"),
    );
    let sc = b.op_as(
        "Div",
        &[&sc, &cs.scale],
        vec![],
        &format!("{p}.attention.scaled"),
    );
    let sc = b.op_as(
        "Add",
        &[&sc, &cs.mask_add],
        vec![],
        &format!("{p}.attention.masked"),
    );
    let pr = b.op_as(
        "Softmax",
        &[&sc],
        vec![attr_int("axis", -1)],
        &format!("{p}.attention.probs"),
    );
    let ctx = b.op_as(
        "MatMul",
        &[&pr, &vh],
        vec![],
        &format!("{p}.attention.context"),
    );
    let ctx = b.op_as(
        "Transpose",
        &[&ctx],
        vec![attr_ints("perm", &[0, 2, 1, 3])],
        &format!("{p}.attention.context_t"),
    );
    let ctx = b.op_as(
        "Reshape",
        &[&ctx, &cs.merge_shape],
        vec![],
        &format!("{p}.attention.context_merged"),
    );
    let ao = lin(b, &ctx, "attention.output.dense", h, h)?;
    let res = b.op_as("Add", &[&ao, x], vec![], &format!("{p}.attention.residual"));
    let x1 = layer_norm(
        b,
        w,
        &res,
        &format!("{p}.attention.output.LayerNorm"),
        h,
        eps,
        &format!("{p}.attention.out"),
    )?;
    // FFN with exact gelu: x * 0.5 * (1 + erf(x / sqrt(2))).
    let f = lin(b, &x1, "intermediate.dense", h, c.intermediate_size)?;
    let d = b.op_as("Div", &[&f, &cs.sqrt2], vec![], &format!("{p}.gelu.scaled"));
    let e = b.op_as("Erf", &[&d], vec![], &format!("{p}.gelu.erf"));
    let e1 = b.op_as("Add", &[&e, &cs.one], vec![], &format!("{p}.gelu.one_plus"));
    let m = b.op_as("Mul", &[&f, &e1], vec![], &format!("{p}.gelu.mul"));
    let g = b.op_as("Mul", &[&m, &cs.half], vec![], &format!("{p}.gelu.out"));
    let o = lin(b, &g, "output.dense", c.intermediate_size, h)?;
    let res = b.op_as("Add", &[&o, &x1], vec![], &format!("{p}.output.residual"));
    layer_norm(
        b,
        w,
        &res,
        &format!("{p}.output.LayerNorm"),
        h,
        eps,
        out_name,
    )
}

#[allow(clippy::too_many_arguments)]
fn layer_norm(
    b: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    name: &str,
    h: usize,
    eps: f32,
    out: &str,
) -> Result<String, OnnxError> {
    let g = b.initializer_f32(
        &format!("{name}.weight"),
        &[h as i64],
        w.get(&format!("{name}.weight"), &[h])?,
    );
    let be = b.initializer_f32(
        &format!("{name}.bias"),
        &[h as i64],
        w.get(&format!("{name}.bias"), &[h])?,
    );
    let out = b.unique(out);
    b.node_named(
        "LayerNormalization",
        &[x, &g, &be],
        &[&out],
        vec![
            attr_int("axis", -1),
            attr_float("epsilon", eps),
            attr_int("stash_type", 1),
        ],
    );
    Ok(out)
}
