//! Emitting a BERT-family encoder (BERT, RoBERTa/XLM-R, MPNet) as an ONNX graph of standard
//! operators, layer by layer (shared with the export of fine-tuned top layers).

use super::ops::{layer_norm, transpose};
use crate::graph::hidden::{META_HIDDEN_SIZE, META_HIDDEN_TENSOR, META_NUM_LAYERS};
use crate::graph::proto::{tensor_proto::DataType, ModelProto};
use crate::graph::{attr_int, attr_ints, set_metadata, tensor, Dim, GraphBuilder, OnnxError};
use crate::hf::{Architecture, BertConfig, Weights};

/// Builds the fp32 encoder graph of `c`'s [`crate::hf::Architecture`] from weights: the
/// embeddings ([`super::embeddings`]), then the layers. Value names: `hidden.{k}` are the hidden
/// states (`hidden.{L}` is emitted as `last_hidden_state`); recorded in metadata for
/// [`crate::graph::hidden`]. `hidden_states` are exposed as `hidden_state_{k}` outputs.
pub fn build_encoder_graph(
    c: &BertConfig,
    w: &Weights,
    hidden_states: &[usize],
) -> Result<ModelProto, OnnxError> {
    let h = c.hidden_size;
    let l = c.num_hidden_layers;
    let mut b = GraphBuilder::new("edgetune_encoder");
    let mut x = super::embeddings::embeddings(&mut b, c, w)?;
    let mut hidden_tensors = vec![x.clone()];
    let consts = LayerConstants::new(&mut b, c, w, "attention_mask")?;
    for i in 0..l {
        let out_name = if i + 1 == l {
            "last_hidden_state".to_string()
        } else {
            format!("hidden.{}", i + 1)
        };
        x = encoder_layer(&mut b, c, w, &consts, i, &x, &out_name)?;
        hidden_tensors.push(x.clone());
    }
    let out_dims = [
        Dim::param("batch"),
        Dim::param("sequence"),
        Dim::Fixed(h as i64),
    ];
    b.output("last_hidden_state", DataType::Float, &out_dims);
    let mut model = b.into_model("edgetune");
    model.doc_string = Some(format!(
        "{} encoder imported by edgetune {}",
        c.model_type.as_deref().unwrap_or("bert"),
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

/// Names of the values every transformer layer of [`encoder_layer`] shares: the additive attention
/// mask, MPNet's relative position bias, and a few constants.
pub struct LayerConstants {
    /// Additive attention mask `[batch, 1, 1, seq]`: `(1 - mask) * f32::MIN`.
    mask_add: String,
    /// MPNet: the relative position bias `[1, heads, seq, seq]` ([`super::relative`]).
    position_bias: Option<String>,
    heads_shape: String,
    merge_shape: String,
    scale: String,
    one: String,
    half: String,
    sqrt2: String,
}

impl LayerConstants {
    /// Adds the additive attention mask computed from the int64 input `attention_mask` (`(1 - mask)
    /// * f32::MIN`, as candle/transformers and [`crate::backbone::layers::TopLayers`] do), MPNet's
    /// relative position bias (from `w`) and the layers' constants to `b`.
    pub fn new(
        b: &mut GraphBuilder,
        c: &BertConfig,
        w: &Weights,
        attention_mask: &str,
    ) -> Result<Self, OnnxError> {
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
        let position_bias = match c.architecture().map_err(OnnxError::Invalid)? {
            Architecture::MPNet => Some(super::relative::relative_bias(b, c, w, attention_mask)?),
            _ => None,
        };
        Ok(LayerConstants {
            mask_add,
            position_bias,
            heads_shape,
            merge_shape,
            scale,
            one: onef,
            half: half_f,
            sqrt2,
        })
    }
}

/// Appends transformer layer `i` (`encoder.layer.{i}.*` of `w`) to `b`: input hidden state `x`,
/// output hidden state `i + 1` named `out_name` (made unique). Post-LN: self-attention with the
/// additive mask (and MPNet's position bias) of `cs`, residual, LayerNorm, exact-GELU FFN,
/// residual, LayerNorm; the attention tensors named as `c`'s architecture names them.
pub fn encoder_layer(
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
    let names = c
        .architecture()
        .map_err(OnnxError::Invalid)?
        .attention_names();
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
    let q = lin(b, x, names.query, h, h)?;
    let k = lin(b, x, names.key, h, h)?;
    let v = lin(b, x, names.value, h, h)?;
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
    let sc = match &cs.position_bias {
        Some(bias) => b.op_as(
            "Add",
            &[&sc, bias],
            vec![],
            &format!("{p}.attention.position_biased"),
        ),
        None => sc,
    };
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
    let ao = lin(b, &ctx, names.output, h, h)?;
    let res = b.op_as("Add", &[&ao, x], vec![], &format!("{p}.attention.residual"));
    let x1 = layer_norm(
        b,
        w,
        &res,
        &format!("{p}.{}", names.layer_norm),
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
