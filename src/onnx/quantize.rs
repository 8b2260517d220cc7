//! Dynamic int8 quantization.
