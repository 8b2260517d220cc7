//! ONNX: import, quantization, lossless read/write, the merged export and inference with it, other backbones.
//!
//! One test binary for this stage of the flow (see `tests/README.md`): each module is a former
//! `tests/NAME.rs` binary, its tests named `NAME::test`.

#[path = "../support/mod.rs"]
mod support;

mod bring_your_own_model;
mod mpnet_big;
mod mpnet_import_ort;
mod onnx_export;
mod onnx_import;
mod onnx_import_ort;
mod onnx_io;
mod onnx_io_foreign;
mod quantize_plots;
