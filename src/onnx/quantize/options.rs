//! What quantization does and what it reports.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Default fidelity threshold (mean pooled cosine) below which a warning is printed.
pub const DEFAULT_WARN_COSINE: f32 = 0.995;

/// Options of [`quantize_model`].
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// Use 7-bit weights (|q| <= 63) so u8*s8 pair sums cannot saturate on AVX2 without VNNI.
    pub reduce_range: bool,
    /// Per output column scales (true) or one scale per tensor (false).
    pub per_channel: bool,
    /// MatMuls kept in fp32: a node is kept when its name, its output or its weight name contains
    /// one of these substrings (`*` matches any run of characters).
    pub keep_fp32: Vec<String>,
    /// Activation statistics (see [`activation_stats`]) for smoothing and outlier channels;
    /// `None` = neither.
    pub calibration: Option<ActivationStats>,
    /// Outlier decomposition: input channels whose calibration max |x| exceeds this many times
    /// the median channel's are taken out of the int8 MatMul and multiplied in fp32 (a `Gather`
    /// of those few channels and a small fp32 `MatMul` added to the int8 result), so that one
    /// extreme channel no longer sets the per-tensor activation scale. 0 = off. At most
    /// [`MAX_OUTLIER_FRACTION`] of the channels are split off.
    pub outlier_ratio: f32,
    /// Store embedding tables (float tables read by whole rows, at least
    /// [`crate::onnx::quantize::MIN_TABLE_ELEMENTS`] elements) as int8 with per-row scales.
    pub int8_embeddings: bool,
}

/// At most `K / MAX_OUTLIER_FRACTION` (and at least 1) input channels of a `[K, N]` MatMul are
/// split off as outliers.
pub const MAX_OUTLIER_FRACTION: usize = 64;

/// Default for [`QuantizeOptions::outlier_ratio`].
pub const DEFAULT_OUTLIER_RATIO: f32 = 6.0;

/// Splitting channels off must at least halve the activation's range (max |x| of all channels
/// over max |x| of the rest), else the extra fp32 product is not worth its cost.
pub const MIN_OUTLIER_GAIN: f32 = 2.0;

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            reduce_range: true,
            per_channel: true,
            keep_fp32: Vec::new(),
            calibration: None,
            outlier_ratio: 0.0,
            int8_embeddings: false,
        }
    }
}

/// What [`quantize_model`] changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuantizeSummary {
    /// Weight MatMuls quantized (node names).
    pub quantized: Vec<String>,
    /// Weight MatMuls kept fp32 by request.
    pub kept_fp32: Vec<String>,
    /// `DynamicQuantizeLinear` nodes inserted (one per distinct activation).
    pub dynamic_quantize_nodes: usize,
    /// Activations rescaled by smoothing.
    #[serde(default)]
    pub smoothed_activations: usize,
    /// Input channels split off into fp32 (outlier decomposition), summed over activations.
    #[serde(default)]
    pub outlier_channels: usize,
    /// Embedding tables stored as int8 with per-row scales.
    #[serde(default)]
    pub int8_embeddings: Vec<String>,
}

/// Simple wildcard match: `*` = any run; otherwise substring match.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return text.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        match text[pos..].find(part) {
            Some(at) => {
                if i == 0 && at != 0 {
                    return false;
                }
                pos += at + part.len();
            }
            None => return false,
        }
    }
    parts
        .last()
        .is_none_or(|l| l.is_empty() || text.ends_with(l))
}

/// Per-channel activation statistics for smoothing: max |x_j| over calibration tokens for each
/// MatMul input tensor, and the migration strength `alpha` (0 = none, 0.5 = SmoothQuant default).
#[derive(Debug, Clone, Default)]
pub struct ActivationStats {
    /// Tensor name -> per-channel max |x| (last axis).
    pub amax: HashMap<String, Vec<f32>>,
    /// Migration strength.
    pub alpha: f32,
    /// Tensor name -> sampled calibration rows (row-major, `amax[name].len()` columns). When
    /// present, the strength is chosen per activation among `{0, alpha/2, alpha, (1+alpha)/2}`
    /// by simulating the int8 MatMuls on these rows (smallest relative output error).
    pub samples: HashMap<String, Vec<f32>>,
}
