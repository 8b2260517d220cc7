//! Neural-network building blocks in candle, built only from operations with a backward pass:
//! parameters and their prefix builder, the dense layer, the layer mix, the GRU, layer norm,
//! dropout, and the fused kernels under [`kernels`].
//!
//! candle's fused `layer_norm`, `softmax_last_dim` and rotary kernels have no backward pass;
//! nothing here uses them (every trainable tensor has a gradient test in `tests/train/grad_tests.rs`).

pub mod functional;
pub mod gru;
pub mod kernels;
pub mod layer_norm;
pub mod linear;
pub mod mix;
pub mod params;

pub use functional::{dropout, reborrow, softmax_last};
pub use gru::{bigru, gather_positions, reverse_indices, GruDir};
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mix::LayerMix;
pub use params::{Group, Init, Param, ParamBuilder, ParamSet, WeightSource};
