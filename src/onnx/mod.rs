//! ONNX models: lossless read/write, graph rewriting, import, quantization and merged export.
