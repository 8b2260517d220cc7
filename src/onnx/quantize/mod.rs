//! Dynamic int8 quantization of weight MatMuls with per-channel (per output column) symmetric weight
//! scales, in standard ONNX operators only:
//!
//! ```text
//! X -> DynamicQuantizeLinear -> (Xq u8, xs, xzp)
//! MatMulInteger(Xq, Wq int8 [K,N], xzp, wzp int8 [N] = 0) -> Cast(float) -> Mul(Mul(xs, ws[N]))
//! ```
//!
//! ONNX Runtime fuses this into `DynamicQuantizeMatMul` on load (checked by
//! [`fused_op_counts`]). With `reduce_range` the weights use 7 bits (|q| <= 63), which avoids the
//! int16 saturation of u8*s8 products on AVX2 CPUs without VNNI.
//!
//! - [`options`]: what to do and what was done; [`outliers`]: which channels stay fp32;
//! - [`error`]: the errors of quantizing and measuring;
//! - [`rewrite`]: the graph rewrite; [`calibrate`]: activation statistics;
//! - [`measure`]: fusions, fidelity (pooled and per layer), speed, sensitivity; [`job`]: a model
//!   directory end to end.

pub mod calibrate;
pub mod embeddings;
pub mod error;
pub mod job;
pub mod measure;
pub mod options;
pub mod outliers;
pub mod rewrite;
pub mod scratch;

pub use calibrate::{activation_stats, SAMPLE_ROWS};
pub use embeddings::{quantize_embeddings, MIN_TABLE_ELEMENTS};
pub use error::QuantizeError;
pub use job::{quantize_dir, QuantizeDirOptions, QuantizeReport};
pub use measure::{
    fidelity, fidelity_of, fused_op_counts, layer_fidelity, pooled_embeddings, sensitivity,
    throughput, token_lengths, Fidelity, LayerCosine, Sensitivity,
};
pub use options::{
    pattern_matches, ActivationStats, QuantizeOptions, QuantizeSummary, DEFAULT_OUTLIER_RATIO,
    DEFAULT_WARN_COSINE, MAX_OUTLIER_FRACTION, MIN_OUTLIER_GAIN,
};
pub use outliers::outlier_channels;
pub use rewrite::{quantize_model, quantize_weight, weight_matmuls};
