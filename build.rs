//! Build script: compiles the vendored ONNX protobuf schema (`proto/onnx-ml.proto`, proto2) into Rust
//! types with prost. The schema is parsed by `protox` (pure Rust), so no `protoc` binary is needed.

use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        // A build script reports failure through a panic-free non-zero exit with a readable message.
        eprintln!("error: compiling proto/onnx-ml.proto: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let proto = PathBuf::from("proto/onnx-ml.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile([&proto], ["proto"])?;
    let mut config = prost_build::Config::new();
    // Large byte payloads (tensor raw_data) as `Vec<u8>` is the default; keep it explicit.
    config.compile_fds(fds)?;
    Ok(())
}
