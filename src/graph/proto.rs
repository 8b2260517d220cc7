//! Generated protobuf types of the ONNX schema (package `onnx`): [`ModelProto`], [`GraphProto`],
//! [`NodeProto`], [`AttributeProto`], [`TensorProto`], ...
//!
//! They come from the vendored `proto/onnx-ml.proto` (proto2), compiled at build time by prost with
//! protox (no `protoc`). proto2 `optional` scalars are `Option<T>`, so zero-valued fields (an
//! `axis = 0` attribute, a zero `dims` entry) survive a read/write round trip.

#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
