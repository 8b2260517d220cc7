//! Hugging Face checkpoints of BERT-family encoders: the architecture in `config.json` and the
//! weights in `model.safetensors`. Read by the importer (ONNX graph), the unfrozen top layers
//! (candle) and the export of fine-tuned layers.

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
        Ok(())
    }
}

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
            for prefix in ["", "bert.", "model.", "encoder_model."] {
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
            message: format!("tensor {name} (or bert.{name}) is missing"),
        })
    }
}

impl crate::nn::WeightSource for Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32], String> {
        Weights::get(self, name, shape).map_err(|e| e.to_string())
    }
}
