//! Import of Hugging Face BERT-family encoders (config.json + model.safetensors + tokenizer.json)
//! into an fp32 ONNX graph of standard operators, self-verified against candle-transformers'
//! `BertModel` on the same weights.
//!
//! Output directory layout: `backbone.onnx`, `tokenizer.json`, `manifest.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::graph::{attr_float, attr_int, attr_ints, tensor, Dim, GraphBuilder};
use super::hidden::{hidden_state_name, META_HIDDEN_SIZE, META_HIDDEN_TENSOR, META_NUM_LAYERS};
use super::proto::{tensor_proto::DataType, ModelProto};
use super::runtime::{self, EncoderBatch};
use super::{save_model, set_metadata, OnnxError};
use crate::fsutil;

/// File name of the fp32 backbone in a model directory.
pub const BACKBONE_FILE: &str = "backbone.onnx";
/// File name of the tokenizer in a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the manifest in a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Tolerance of the self-verification (max |diff| of last_hidden_state and of pooled embeddings).
pub const VERIFY_TOLERANCE: f32 = 1e-4;

/// Sentences used for self-verification (varied lengths, so padding is exercised).
pub const VERIFY_SENTENCES: &[&str] = &[
    "Book a table for two at an Italian restaurant tonight.",
    "play some jazz",
    "What will the weather be like in Paris on Saturday afternoon, and should I bring an umbrella?",
    "Add this song to my workout playlist.",
    "rate this novel four out of six stars",
    "Hello!",
];

/// The architecture fields of a BERT-family `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Model width.
    pub hidden_size: usize,
    /// Transformer layers `L`.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN width.
    pub intermediate_size: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Position-embedding rows.
    pub max_position_embeddings: usize,
    /// Segment-embedding rows.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Activation; only `gelu` (exact, erf) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Position embedding kind; only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// `model_type` (informational).
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    /// Reads and validates `config.json`.
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let text = std::fs::read_to_string(path).map_err(|e| OnnxError::io(path, e))?;
        let c: BertConfig = serde_json::from_str(&text).map_err(|e| OnnxError::Source {
            path: path.to_path_buf(),
            message: format!("invalid config: {e}"),
        })?;
        let bad = |m: String| {
            Err(OnnxError::Source {
                path: path.to_path_buf(),
                message: m,
            })
        };
        if c.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act {:?} is not supported (only exact \"gelu\")",
                c.hidden_act
            ));
        }
        if let Some(p) = &c.position_embedding_type {
            if p != "absolute" {
                return bad(format!(
                    "position_embedding_type {p:?} is not supported (only \"absolute\")"
                ));
            }
        }
        if c.num_attention_heads == 0
            || c.hidden_size == 0
            || c.hidden_size % c.num_attention_heads != 0
        {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            ));
        }
        if c.num_hidden_layers == 0
            || c.intermediate_size == 0
            || c.vocab_size == 0
            || c.max_position_embeddings == 0
        {
            return bad("zero-sized dimension in config".into());
        }
        Ok(c)
    }
}

/// Options of [`import`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Hugging Face directory with config.json, model.safetensors, tokenizer.json.
    pub hf_dir: PathBuf,
    /// Output model directory (created if missing).
    pub out_dir: PathBuf,
    /// Hidden states exposed as `hidden_state_{k}` outputs; `None` = all `0..=L`.
    pub hidden_states: Option<Vec<usize>>,
    /// Run the self-verification against candle (default true).
    pub verify: bool,
    /// Threads for ONNX Runtime during verification (`None` = default).
    pub threads: Option<usize>,
}

impl ImportOptions {
    /// Defaults: all hidden states, verification on.
    pub fn new(hf_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        ImportOptions {
            hf_dir: hf_dir.into(),
            out_dir: out_dir.into(),
            hidden_states: None,
            verify: true,
            threads: None,
        }
    }
}

/// Figures of the self-verification.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Sentences compared.
    pub sentences: usize,
    /// Max |ORT - candle| over last_hidden_state (real tokens and padding).
    pub max_abs_diff_hidden: f32,
    /// Max |ORT - candle| over mean-pooled embeddings.
    pub max_abs_diff_pooled: f32,
}

/// What [`import`] produced.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The written `backbone.onnx`.
    pub backbone: PathBuf,
    /// The written manifest.
    pub manifest: PathBuf,
    /// Parsed config.
    pub config: BertConfig,
    /// Exposed hidden-state outputs.
    pub hidden_outputs: Vec<String>,
    /// Verification figures (when run).
    pub verification: Option<Verification>,
}

/// Manifest written beside the backbone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format marker.
    pub format: String,
    /// Architecture.
    pub config: BertConfig,
    /// Layers `L`.
    pub num_layers: usize,
    /// Width.
    pub hidden_size: usize,
    /// Graph inputs.
    pub inputs: Vec<String>,
    /// Graph outputs.
    pub outputs: Vec<String>,
    /// Source directory as given.
    pub source_dir: String,
    /// sha256 of files in the model directory (backbone.onnx, tokenizer.json, later backbone.int8.onnx).
    pub files: BTreeMap<String, String>,
    /// sha256 of the source files.
    pub source_files: BTreeMap<String, String>,
    /// Self-verification figures.
    pub verification: Option<Verification>,
    /// Free-form additions (e.g. quantization report).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    /// Reads `manifest.json` of a model directory.
    pub fn load(model_dir: &Path) -> Result<Self, OnnxError> {
        let p = model_dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&p).map_err(|e| OnnxError::io(&p, e))?;
        serde_json::from_str(&text).map_err(|e| OnnxError::Source {
            path: p,
            message: format!("invalid manifest: {e}"),
        })
    }

    /// Writes `manifest.json` atomically.
    pub fn save(&self, model_dir: &Path) -> Result<(), OnnxError> {
        let p = model_dir.join(MANIFEST_FILE);
        let text =
            serde_json::to_string_pretty(self).map_err(|e| OnnxError::Invalid(e.to_string()))?;
        fsutil::write_atomic(&p, text.as_bytes()).map_err(|e| OnnxError::io(&p, e))
    }
}

/// fp32 weights read from safetensors, with or without a `bert.` (or `{model_type}.`) prefix.
pub struct Weights {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    path: PathBuf,
}

impl Weights {
    /// Reads every tensor of a safetensors file as f32 (f32, f16 and bf16 accepted).
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let bytes = std::fs::read(path).map_err(|e| OnnxError::io(path, e))?;
        let src = |m: String| OnnxError::Source {
            path: path.to_path_buf(),
            message: m,
        };
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| src(format!("invalid safetensors: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let v: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                safetensors::Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                _ => continue, // integer buffers such as position_ids are not weights
            };
            tensors.insert(name, (view.shape().to_vec(), v));
        }
        Ok(Weights {
            tensors,
            path: path.to_path_buf(),
        })
    }

    /// A weight by its unprefixed name (`embeddings.word_embeddings.weight`), checking its shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32], OnnxError> {
        let alts: Vec<String> = if name.ends_with("LayerNorm.weight") {
            vec![
                name.to_string(),
                name.replace("LayerNorm.weight", "LayerNorm.gamma"),
            ]
        } else if name.ends_with("LayerNorm.bias") {
            vec![
                name.to_string(),
                name.replace("LayerNorm.bias", "LayerNorm.beta"),
            ]
        } else {
            vec![name.to_string()]
        };
        for a in &alts {
            for prefix in ["", "bert.", "model.", "encoder_model."] {
                if let Some((s, v)) = self.tensors.get(&format!("{prefix}{a}")) {
                    if s != shape {
                        return Err(OnnxError::Source {
                            path: self.path.clone(),
                            message: format!(
                                "tensor {prefix}{a} has shape {s:?}, expected {shape:?}"
                            ),
                        });
                    }
                    return Ok(v);
                }
            }
        }
        Err(OnnxError::Source {
            path: self.path.clone(),
            message: format!("tensor {name} (or bert.{name}) is missing"),
        })
    }
}

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
    super::expose_hidden_states(&mut model, hidden_states)?;
    Ok(model)
}

/// Names of the values every transformer layer of [`bert_layer`] shares: the additive attention mask
/// and a few constants.
pub(crate) struct LayerConstants {
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
    pub(crate) fn new(b: &mut GraphBuilder, c: &BertConfig, attention_mask: &str) -> Self {
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
pub(crate) fn bert_layer(
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

/// Parses `--hidden-states`: `all`, or a comma-separated list of indices.
pub fn parse_hidden_states(s: &str) -> Result<Option<Vec<usize>>, OnnxError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    if s.is_empty() || s.eq_ignore_ascii_case("none") {
        return Ok(Some(Vec::new()));
    }
    s.split(',')
        .map(|p| {
            p.trim().parse::<usize>().map_err(|_| {
                OnnxError::Invalid(format!("--hidden-states: {p:?} is not a layer index"))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Runs candle-transformers' `BertModel` on a batch; returns last_hidden_state `[batch*seq*hidden]`.
pub fn candle_reference(
    c: &BertConfig,
    safetensors_path: &Path,
    batch: &EncoderBatch,
) -> Result<Vec<f32>, OnnxError> {
    use candle_core::{DType, Device, Tensor};
    use candle_transformers::models::bert::{BertModel, Config, HiddenAct, PositionEmbeddingType};
    let err = |e: candle_core::Error| OnnxError::Source {
        path: safetensors_path.to_path_buf(),
        message: format!("candle: {e}"),
    };
    let cfg = Config {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        num_hidden_layers: c.num_hidden_layers,
        num_attention_heads: c.num_attention_heads,
        intermediate_size: c.intermediate_size,
        hidden_act: HiddenAct::Gelu,
        hidden_dropout_prob: 0.0,
        max_position_embeddings: c.max_position_embeddings,
        type_vocab_size: c.type_vocab_size,
        initializer_range: 0.02,
        layer_norm_eps: c.layer_norm_eps,
        pad_token_id: 0,
        position_embedding_type: PositionEmbeddingType::Absolute,
        use_cache: false,
        classifier_dropout: None,
        model_type: c.model_type.clone(),
    };
    let dev = Device::Cpu;
    let bytes = std::fs::read(safetensors_path).map_err(|e| OnnxError::io(safetensors_path, e))?;
    let vb =
        candle_nn::VarBuilder::from_buffered_safetensors(bytes, DType::F32, &dev).map_err(err)?;
    let model = BertModel::load(vb, &cfg).map_err(err)?;
    let shape = (batch.batch, batch.seq);
    let ids = Tensor::from_vec(batch.input_ids.clone(), shape, &dev).map_err(err)?;
    let tt = Tensor::from_vec(batch.token_type_ids.clone(), shape, &dev).map_err(err)?;
    let mask = Tensor::from_vec(batch.attention_mask.clone(), shape, &dev).map_err(err)?;
    let out = model.forward(&ids, &tt, Some(&mask)).map_err(err)?;
    out.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(err)
}

/// Compares an encoder ONNX file with candle's `BertModel` on `sentences`.
pub fn verify_against_candle(
    onnx_path: &Path,
    c: &BertConfig,
    safetensors_path: &Path,
    tokenizer: &tokenizers::Tokenizer,
    sentences: &[&str],
    threads: Option<usize>,
) -> Result<Verification, OnnxError> {
    let max_len = c.max_position_embeddings.min(128);
    let batch = EncoderBatch::tokenize(tokenizer, sentences, max_len)?;
    if let Some(&bad) = batch
        .input_ids
        .iter()
        .find(|&&i| i < 0 || i as usize >= c.vocab_size)
    {
        return Err(OnnxError::Source {
            path: onnx_path.to_path_buf(),
            message: format!(
                "tokenizer produced id {bad} outside the vocabulary ({})",
                c.vocab_size
            ),
        });
    }
    let opts = runtime::SessionOptions {
        threads,
        ..Default::default()
    };
    let mut s = runtime::open_session(onnx_path, &opts)?;
    let o = runtime::run_encoder(&mut s, &batch, &["last_hidden_state"])?;
    let reference = candle_reference(c, safetensors_path, &batch)?;
    let h = c.hidden_size;
    let d_hidden = runtime::max_abs_diff(&o[0].data, &reference);
    let pa = runtime::mean_pool(&o[0].data, &batch.attention_mask, batch.batch, batch.seq, h);
    let pb = runtime::mean_pool(&reference, &batch.attention_mask, batch.batch, batch.seq, h);
    let d_pooled = pa
        .iter()
        .zip(&pb)
        .map(|(a, b)| runtime::max_abs_diff(a, b))
        .fold(0f32, f32::max);
    Ok(Verification {
        sentences: sentences.len(),
        max_abs_diff_hidden: d_hidden,
        max_abs_diff_pooled: d_pooled,
    })
}

/// Imports a Hugging Face BERT-family checkpoint: writes `backbone.onnx`, `tokenizer.json` and
/// `manifest.json` into `opts.out_dir`, verifying the graph against candle (max |diff| <=
/// [`VERIFY_TOLERANCE`]) unless `opts.verify` is false. A failed verification leaves no backbone.
pub fn import(opts: &ImportOptions) -> Result<ImportReport, OnnxError> {
    let cfg_path = opts.hf_dir.join("config.json");
    let st_path = opts.hf_dir.join("model.safetensors");
    let tok_path = opts.hf_dir.join(TOKENIZER_FILE);
    let c = BertConfig::load(&cfg_path)?;
    for p in [&st_path, &tok_path] {
        if !p.is_file() {
            return Err(OnnxError::Source {
                path: p.clone(),
                message: "missing".into(),
            });
        }
    }
    let tokenizer = runtime::load_tokenizer(&tok_path)?;
    let l = c.num_hidden_layers;
    let states = match &opts.hidden_states {
        None => (0..=l).collect::<Vec<_>>(),
        Some(v) => v.clone(),
    };
    if let Some(&bad) = states.iter().find(|&&k| k > l) {
        return Err(OnnxError::Invalid(format!(
            "hidden state {bad} requested, the model has 0..={l}"
        )));
    }
    let weights = Weights::load(&st_path)?;
    let model = build_bert_graph(&c, &weights, &states)?;
    drop(weights);

    std::fs::create_dir_all(&opts.out_dir).map_err(|e| OnnxError::io(&opts.out_dir, e))?;
    let backbone = opts.out_dir.join(BACKBONE_FILE);
    // Verify a staged copy, so a failing import never leaves a backbone behind.
    let staged = opts.out_dir.join(format!(".{BACKBONE_FILE}.staged"));
    save_model(&staged, &model)?;
    let verification = if opts.verify {
        let v = verify_against_candle(
            &staged,
            &c,
            &st_path,
            &tokenizer,
            VERIFY_SENTENCES,
            opts.threads,
        );
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(e);
            }
        };
        if !(v.max_abs_diff_hidden <= VERIFY_TOLERANCE && v.max_abs_diff_pooled <= VERIFY_TOLERANCE)
        {
            let _ = std::fs::remove_file(&staged);
            return Err(OnnxError::Verify {
                path: backbone,
                message: format!(
                    "ONNX Runtime vs candle on {} sentences: max |diff| last_hidden_state {:.3e}, pooled {:.3e} (tolerance {:.0e})",
                    v.sentences, v.max_abs_diff_hidden, v.max_abs_diff_pooled, VERIFY_TOLERANCE
                ),
            });
        }
        Some(v)
    } else {
        None
    };
    std::fs::rename(&staged, &backbone).map_err(|e| OnnxError::io(&backbone, e))?;
    fsutil::sync_dir(&backbone).map_err(|e| OnnxError::io(&backbone, e))?;

    let tok_out = opts.out_dir.join(TOKENIZER_FILE);
    let tok_bytes = std::fs::read(&tok_path).map_err(|e| OnnxError::io(&tok_path, e))?;
    fsutil::write_atomic(&tok_out, &tok_bytes).map_err(|e| OnnxError::io(&tok_out, e))?;

    let sha = |p: &Path| fsutil::sha256_file(p).map_err(|e| OnnxError::io(p, e));
    let mut files = BTreeMap::new();
    files.insert(BACKBONE_FILE.to_string(), sha(&backbone)?);
    files.insert(TOKENIZER_FILE.to_string(), fsutil::sha256_bytes(&tok_bytes));
    let mut source_files = BTreeMap::new();
    for p in [&cfg_path, &st_path, &tok_path] {
        source_files.insert(
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            sha(p)?,
        );
    }
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::graph("no graph"))?;
    let hidden_outputs: Vec<String> = states.iter().map(|&k| hidden_state_name(k)).collect();
    let manifest = Manifest {
        format: "edgetune-model/1".into(),
        config: c.clone(),
        num_layers: l,
        hidden_size: c.hidden_size,
        inputs: g.input.iter().filter_map(|i| i.name.clone()).collect(),
        outputs: g.output.iter().filter_map(|o| o.name.clone()).collect(),
        source_dir: opts.hf_dir.display().to_string(),
        files,
        source_files,
        verification,
        extra: BTreeMap::new(),
    };
    manifest.save(&opts.out_dir)?;
    Ok(ImportReport {
        backbone,
        manifest: opts.out_dir.join(MANIFEST_FILE),
        config: c,
        hidden_outputs,
        verification,
    })
}
