//! Set-up of the `serve` benchmarks: the demo run and its merged model (given by
//! `EDGETUNE_BENCH_RUN` / `EDGETUNE_BENCH_MODEL`, else the serve tests' demo run, exported once
//! into the target directory), `edgetune bench`'s batch-1 p50, and a process's resident memory.

use std::path::{Path, PathBuf};

use edgetune::serve::options::DEFAULT_SPINNING;

pub use super::serve::edgetune;

fn run_ok(mut c: std::process::Command) {
    let out = c.output().expect("edgetune starts");
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The demo run (seed 13): `EDGETUNE_BENCH_RUN`, else [`super::serve::demo_run`].
pub fn demo_run() -> PathBuf {
    match std::env::var_os("EDGETUNE_BENCH_RUN") {
        Some(p) => PathBuf::from(p),
        None => super::serve::demo_run(),
    }
}

/// Whether `out` was written after the run's `config.json` (a retrained run needs a new export).
fn newer_than_run(out: &Path, run: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(out), modified(&run.join("config.json"))) {
        (Some(o), Some(r)) => o >= r,
        _ => false,
    }
}

/// The demo run as a merged model (int8 backbone, the default).
pub fn merged_model() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGETUNE_BENCH_MODEL") {
        return PathBuf::from(p);
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("bench-merged")
        .join("model.onnx");
    let run = demo_run();
    if !newer_than_run(&out, &run) {
        let mut c = edgetune();
        c.args(["--threads", "2", "export", "--force", "--run"])
            .arg(&run)
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
