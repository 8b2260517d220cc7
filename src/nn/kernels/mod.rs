//! Fused CPU kernels as candle custom ops, each with a hand-written backward pass and a test
//! against the formulation from candle primitives (`tests/train/grad_tests.rs`), one file per operation
//! family; `simd` holds the numeric helpers they share.

pub mod attention;
pub mod gelu;
pub mod gru;
pub mod layer_norm;
pub mod ops;
pub mod simd;
