//! Hugging Face checkpoints of BERT-family encoders (BERT, RoBERTa/XLM-R, MPNet): the
//! architecture in `config.json` and the weights in `model.safetensors`. Read by the importer
//! (ONNX graph), the unfrozen top layers (candle) and the export of fine-tuned layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A checkpoint file that is missing or malformed; names the file.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file's content is not what a BERT-family checkpoint holds.
    #[error("{path}: {message}")]
    Source {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl HfError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        HfError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

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
    /// `model_type`: selects the [`Architecture`] (`bert` when absent).
    #[serde(default)]
    pub model_type: Option<String>,
    /// The padding token's id: RoBERTa-style position ids count from `pad_token_id + 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<usize>,
    /// MPNet: buckets of the relative position bias shared by all layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_attention_num_buckets: Option<usize>,
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
    pub fn load(path: &Path) -> Result<Self, HfError> {
        let text = std::fs::read_to_string(path).map_err(|e| HfError::io(path, e))?;
        let c: BertConfig = serde_json::from_str(&text).map_err(|e| HfError::Source {
            path: path.to_path_buf(),
            message: format!("invalid config: {e}"),
        })?;
        c.validate().map_err(|message| HfError::Source {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(c)
    }

    /// Checks the architecture (wherever it was read from: a checkpoint's `config.json`, a run's
    /// `top_layers`): supported activation and position embeddings, non-zero sizes, a width that
    /// the attention heads divide. On error, returns the reason.
    pub fn validate(&self) -> Result<(), String> {
        let c = self;
        if c.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only exact \"gelu\")",
                c.hidden_act
            ));
        }
        let arch = c.architecture()?;
        if let Some(p) = &c.position_embedding_type {
            if p != "absolute" {
                return Err(format!(
                    "position_embedding_type {p:?} is not supported (only \"absolute\")"
                ));
            }
        }
        if c.num_attention_heads == 0
            || c.hidden_size == 0
            || !c.hidden_size.is_multiple_of(c.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            ));
        }
        if c.num_hidden_layers == 0
            || c.intermediate_size == 0
            || c.vocab_size == 0
            || c.max_position_embeddings == 0
        {
            return Err("zero-sized dimension in config".into());
        }
        if arch != Architecture::Bert && c.pad_id() + 1 >= c.max_position_embeddings {
            return Err(format!(
                "pad_token_id {} leaves no position below max_position_embeddings {}",
                c.pad_id(),
                c.max_position_embeddings
            ));
        }
        if arch == Architecture::MPNet && c.relative_buckets() < 4 {
            return Err(format!(
                "relative_attention_num_buckets {} is too small (at least 4)",
                c.relative_buckets()
            ));
        }
        Ok(())
    }

    /// The encoder family `model_type` names (`bert` when absent).
    pub fn architecture(&self) -> Result<Architecture, String> {
        Architecture::from_model_type(self.model_type.as_deref())
    }

    /// The padding token's id (`pad_token_id`, else the family's usual one: 0 for BERT, 1 for
    /// RoBERTa, XLM-R and MPNet).
    pub fn pad_id(&self) -> usize {
        let usual = match self.architecture() {
            Ok(Architecture::Bert) | Err(_) => 0,
            Ok(_) => 1,
        };
        self.pad_token_id.unwrap_or(usual)
    }

    /// MPNet's relative-position buckets (`relative_attention_num_buckets`, default 32).
    pub fn relative_buckets(&self) -> usize {
        self.relative_attention_num_buckets.unwrap_or(32)
    }
}

/// The encoder families edgetune imports and fine-tunes. All are post-LayerNorm transformers with
/// exact-GELU feed-forward blocks; they differ in positions, token types and tensor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// BERT (MiniLM, multilingual-e5, paraphrase-multilingual-MiniLM): absolute position ids
    /// `0..T`, token-type embeddings.
    Bert,
    /// RoBERTa and XLM-R: position ids `pad + 1 + i` over non-padding tokens (padding gets `pad`),
    /// token-type embeddings (one row in practice).
    Roberta,
    /// MPNet: RoBERTa's position ids, no token types, and a bucketed relative position bias
    /// (`encoder.relative_attention_bias`) added to every layer's attention scores.
    MPNet,
}

/// The `model_type` values [`Architecture::from_model_type`] accepts.
pub const SUPPORTED_MODEL_TYPES: &str = "bert, roberta, xlm-roberta, mpnet";

/// MPNet's relative distance beyond which buckets are shared (Hugging Face's `max_distance`).
pub const MPNET_MAX_DISTANCE: usize = 128;

impl Architecture {
    /// The family of a `config.json`'s `model_type` (`None` = BERT).
    pub fn from_model_type(model_type: Option<&str>) -> Result<Self, String> {
        match model_type {
            None | Some("bert") => Ok(Self::Bert),
            Some("roberta") | Some("xlm-roberta") => Ok(Self::Roberta),
            Some("mpnet") => Ok(Self::MPNet),
            Some(other) => Err(format!(
                "model_type {other:?} is not supported (supported: {SUPPORTED_MODEL_TYPES})"
            )),
        }
    }

    /// Whether the encoder has token-type embeddings.
    pub fn has_token_types(self) -> bool {
        self != Self::MPNet
    }

    /// Whether position ids count over non-padding tokens from `pad + 1` (RoBERTa style) rather
    /// than from 0.
    pub fn padding_positions(self) -> bool {
        self != Self::Bert
    }

    /// The checkpoint names of a layer's attention tensors, relative to `encoder.layer.{i}`.
    pub fn attention_names(self) -> AttentionNames {
        match self {
            Self::Bert | Self::Roberta => AttentionNames {
                query: "attention.self.query",
                key: "attention.self.key",
                value: "attention.self.value",
                output: "attention.output.dense",
                layer_norm: "attention.output.LayerNorm",
            },
            Self::MPNet => AttentionNames {
                query: "attention.attn.q",
                key: "attention.attn.k",
                value: "attention.attn.v",
                output: "attention.attn.o",
                layer_norm: "attention.LayerNorm",
            },
        }
    }
}

/// Where a layer's attention weights are in a checkpoint (relative to `encoder.layer.{i}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionNames {
    /// Query projection.
    pub query: &'static str,
    /// Key projection.
    pub key: &'static str,
    /// Value projection.
    pub value: &'static str,
    /// Output projection.
    pub output: &'static str,
    /// Layer norm after the residual.
    pub layer_norm: &'static str,
}

/// The name of MPNet's relative position bias table `[buckets, heads]`, shared by all layers.
pub const RELATIVE_BIAS: &str = "encoder.relative_attention_bias.weight";

/// MPNet's bucket of the relative position `rel = key - query` (Hugging Face's
/// `relative_position_bucket`, bidirectional): half the buckets per direction, exact below
/// `buckets / 4`, logarithmic up to `max_distance`, the last bucket beyond. The logarithm is
/// taken in f32, as PyTorch does, so bucket boundaries match the checkpoint's training.
pub fn relative_position_bucket(rel: i64, buckets: usize, max_distance: usize) -> usize {
    let half = (buckets / 2) as i64;
    let n = -rel;
    let mut ret = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    if n < max_exact {
        return (ret + n) as usize;
    }
    let scaled = ((n as f32 / max_exact as f32).ln()
        / (max_distance as f32 / max_exact as f32).ln()
        * (half - max_exact) as f32) as i64;
    ret += (max_exact + scaled).min(half - 1);
    ret as usize
}

/// The bucket of every relative position `-(n-1)..=(n-1)`, at index `rel + n - 1`: what the
/// imported graph and the candle layers gather the bias through.
pub fn relative_bucket_table(n: usize, buckets: usize) -> Vec<i64> {
    let n = n as i64;
    (-(n - 1)..n)
        .map(|r| relative_position_bucket(r, buckets, MPNET_MAX_DISTANCE) as i64)
        .collect()
}

/// The prefixes a checkpoint's tensor names may carry (a task model's encoder is under its
/// family's name).
pub const WEIGHT_PREFIXES: [&str; 6] = [
    "",
    "bert.",
    "roberta.",
    "mpnet.",
    "model.",
    "encoder_model.",
];

/// fp32 weights read from safetensors, with or without a `bert.` (or `{model_type}.`) prefix.
pub struct Weights {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    path: PathBuf,
}

impl Weights {
    /// Reads every tensor of a safetensors file as f32 (f32, f16 and bf16 accepted).
    pub fn load(path: &Path) -> Result<Self, HfError> {
        Self::load_filtered(path, &|_| true)
    }

    /// Reads the tensors whose name `keep` accepts. The file is mapped, not read: only the kept
    /// tensors' pages are touched, so loading two layers of a checkpoint costs those layers' memory,
    /// not the file's.
    pub fn load_filtered(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Self, HfError> {
        let file = std::fs::File::open(path).map_err(|e| HfError::io(path, e))?;
        // SAFETY: the map is read-only and lives only inside this call; a file truncated by another
        // process meanwhile could fault, as a read would fail: checkpoints are not written in place.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| HfError::io(path, e))?;
        Self::from_bytes_filtered(&map, path, keep)
    }

    /// Reads every tensor of safetensors `bytes` (read from `path`, named in errors) as f32.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, HfError> {
        Self::from_bytes_filtered(bytes, path, &|_| true)
    }

    /// Reads the tensors of safetensors `bytes` whose name `keep` accepts.
    pub fn from_bytes_filtered(
        bytes: &[u8],
        path: &Path,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Self, HfError> {
        let src = |m: String| HfError::Source {
            path: path.to_path_buf(),
            message: m,
        };
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| src(format!("invalid safetensors: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if !keep(&name) {
                continue;
            }
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
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32], HfError> {
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
            for prefix in WEIGHT_PREFIXES {
                if let Some((s, v)) = self.tensors.get(&format!("{prefix}{a}")) {
                    if s != shape {
                        return Err(HfError::Source {
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
        Err(HfError::Source {
            path: self.path.clone(),
            message: format!(
                "tensor {name} is missing (looked for it with the prefixes {:?})",
                WEIGHT_PREFIXES
            ),
        })
    }
}

impl crate::nn::WeightSource for Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32], String> {
        Weights::get(self, name, shape).map_err(|e| e.to_string())
    }
}
