//! Helpers shared by the CLI integration tests: the binary, temp dirs, the real model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails with set-up instructions when the runtime or default model is missing (CI sets them up).
pub fn require_setup() {
    let r = root();
    let lib = r
        .join(".runtime")
        .join(std::env::consts::ARCH)
        .join("libonnxruntime.so");
    let model = r.join(".models").join("default");
    assert!(
        lib.is_file() && model.exists(),
        "ONNX Runtime ({}) or the default model ({}) is missing: run `./setup.sh test` (or models/setup.sh + models/prepare.sh)",
        lib.display(),
        model.display()
    );
}

/// `edgetune` with an isolated feature cache.
pub fn edgetune(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgetune"));
    c.env("EDGETUNE_CACHE", cache)
        .env_remove("EDGETUNE_MODEL")
        .current_dir(root());
    c
}

/// Runs a command and asserts success, returning stdout.
pub fn ok(mut c: Command) -> String {
    let out: Output = c.output().expect("edgetune starts");
    assert!(
        out.status.success(),
        "command failed: {c:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs a command and asserts failure, returning stderr.
pub fn fails(mut c: Command) -> String {
    let out: Output = c.output().expect("edgetune starts");
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded: {c:?}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert!(
        !err.contains("panicked"),
        "a panic instead of an error: {err}"
    );
    err
}

/// Starts a `train` command, waits until its checkpoint in `run` records at least `epochs`
/// finished epochs, then kills it with SIGKILL (the run must still be unfinished then).
#[allow(dead_code)]
pub fn kill_after_epochs(mut c: Command, run: &Path, epochs: u64) {
    let mut child = c.spawn().unwrap();
    let state = run.join("checkpoint").join("state.json");
    let start = std::time::Instant::now();
    loop {
        let epoch = std::fs::read(&state)
            .ok()
            .and_then(|s| serde_json::from_slice::<serde_json::Value>(&s).ok())
            .and_then(|v| v["epoch"].as_u64())
            .unwrap_or(0);
        if epoch >= epochs {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "training finished before it could be killed"
        );
        assert!(start.elapsed().as_secs() < 600, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Largest absolute element of `a - b` (candle tensors of the same shape).
pub fn tensor_max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    a.sub(b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}
