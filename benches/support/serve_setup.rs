//! Set-up shared by the `serve` benchmarks: the demo run and its merged model (given by
//! `EDGETUNE_BENCH_RUN` / `EDGETUNE_BENCH_MODEL`, else trained and exported once into the target
//! directory), `edgetune bench`'s batch-1 p50, and a process's resident memory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use edgetune::serve::options::DEFAULT_SPINNING;

/// The `edgetune` binary of this build.
pub fn edgetune() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgetune"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("EDGETUNE_CACHE", tmp().join("bench-feature-cache"));
    c
}

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn run_ok(mut c: Command) {
    let out = c.output().expect("edgetune starts");
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The demo run (seed 13).
pub fn demo_run() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGETUNE_BENCH_RUN") {
        return PathBuf::from(p);
    }
    let dir = tmp().join("bench-demo-run");
    if dir.join("config.json").is_file() && !trained_on_current_backbone(&dir) {
        // Set-up replaced the models since: train again (and export again).
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(tmp().join("bench-merged"));
    }
    if !dir.join("config.json").is_file() {
        let mut c = edgetune();
        c.args(["--threads", "2", "train", "-q", "--seed", "13", "--data"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo"))
            .arg("--out")
            .arg(&dir);
        run_ok(c);
    }
    dir
}

/// Whether the run in `dir` records the backbone file it names with its present hash.
fn trained_on_current_backbone(dir: &Path) -> bool {
    let config: serde_json::Value = match std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        Some(c) => c,
        None => return false,
    };
    let backbone = &config["backbone"];
    match (backbone["onnx"].as_str(), backbone["onnx_sha256"].as_str()) {
        (Some(path), Some(sha)) => {
            edgetune::fsutil::sha256_file(Path::new(path)).is_ok_and(|h| h == sha)
        }
        _ => false,
    }
}

/// The demo run as a merged model (int8 backbone, the default).
pub fn merged_model() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGETUNE_BENCH_MODEL") {
        return PathBuf::from(p);
    }
    let out = tmp().join("bench-merged").join("model.onnx");
    if !out.is_file() {
        let mut c = edgetune();
        c.args(["--threads", "2", "export", "--run"])
            .arg(demo_run())
            .arg("--out")
            .arg(&out);
        run_ok(c);
    }
    out
}

/// `edgetune --threads THREADS bench --model MODEL --n N [--input FILE]`: its batch-1 p50 and
/// p99, in ms (`input`: the sentences to time, one per line; default: `bench`'s own).
pub fn bench_latency(model: &Path, threads: usize, n: usize, input: Option<&Path>) -> (f64, f64) {
    let mut c = edgetune();
    c.args(["--threads", &threads.to_string(), "bench", "--model"])
        .arg(model)
        .args(["--n", &n.to_string()])
        // The service's own setting, so that both sides spin alike.
        .args(["--spinning", &DEFAULT_SPINNING.to_string()]);
    if let Some(p) = input {
        c.arg("--input").arg(p);
    }
    let out = c.output().expect("edgetune bench");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("batch-1 latency"))
        .unwrap_or_else(|| panic!("no latency line in {text}"));
    let ms = |key: &str| -> f64 {
        let rest = &line[line.find(key).expect(key) + key.len()..];
        rest.trim().split(' ').next().unwrap().parse().unwrap()
    };
    (ms("p50"), ms("p99"))
}

/// Resident memory of process `pid`, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The p-th quantile of sorted values.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    edgetune::infer::percentile(sorted, p).unwrap_or(f64::NAN)
}
