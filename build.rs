//! Build script: compiles the vendored protobuf schemas into Rust types with prost. The schemas are
//! parsed by `protox` (pure Rust), so no `protoc` binary is needed.
//!
//! - `proto/onnx-ml.proto` (proto2, package `onnx`): the ONNX format (`src/graph/proto.rs`);
//! - `proto/flower/flwr/proto/*.proto` (proto3, package `flwr.proto`): Flower 1.18.0's Fleet API
//!   and the messages it carries (`src/fleet/proto.rs`).

use std::path::PathBuf;

/// The Flower schema files the fleet client compiles (`fleet.proto` and what it imports).
const FLOWER: [&str; 8] = [
    "fleet",
    "message",
    "node",
    "recorddict",
    "error",
    "run",
    "fab",
    "transport",
];

fn main() {
    if let Err(e) = run() {
        // A build script reports failure through a panic-free non-zero exit with a readable message.
        eprintln!("error: compiling the vendored .proto files: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    let onnx = PathBuf::from("proto/onnx-ml.proto");
    println!("cargo:rerun-if-changed={}", onnx.display());
    let fds = protox::compile([&onnx], ["proto"])?;
    // Large byte payloads (tensor raw_data) as `Vec<u8>` is the default; keep it explicit.
    prost_build::Config::new().compile_fds(fds)?;

    let flower: Vec<PathBuf> = FLOWER
        .iter()
        .map(|n| PathBuf::from(format!("proto/flower/flwr/proto/{n}.proto")))
        .collect();
    for p in &flower {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let fds = protox::compile(&flower, ["proto/flower"])?;
    // Only messages: the Fleet service is spoken over HTTP by `src/fleet/http.rs`, not gRPC.
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
