//! `serve`'s per-request latency against `bench`'s, and its memory over a long run.
//!
//! For the same merged model (the demo run's, int8 backbone), 2 threads:
//! 1. `edgetune bench --n 2000`: batch-1 p50/p99 inside one process;
//! 2. `edgetune serve --model M --socket S`: one client sends the same sentences, one request at a
//!    time, and times each round trip over the socket; the service's resident memory (VmRSS) is
//!    sampled every 1,000 requests.
//!
//! Run: `cargo bench --bench serve_latency` (needs `.runtime/` and `.models/default`; requests:
//! `EDGETUNE_BENCH_REQUESTS`, default 100,000; `EDGETUNE_BENCH_RUN` / `EDGETUNE_BENCH_MODEL` use
//! an existing run / merged model instead of training and exporting the demo one).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use edgetune::infer::BENCH_SENTENCES as SENTENCES;
use support::bench::{bench_latency, edgetune, merged_model, quantile, rss_kib};

fn main() {
    let n: usize = std::env::var("EDGETUNE_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let model = merged_model();
    let (bench_p50, bench_p99) = bench_latency(&model, 2, 2000, None);

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let mut child = edgetune()
        .args(["--threads", "2", "serve", "--no-stdin", "--model"])
        .arg(&model)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let stream = loop {
        if let Ok(s) = UnixStream::connect(&socket) {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    let mut ask = |text: &str| -> f64 {
        let t = Instant::now();
        w.write_all(text.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(line.contains("\"intent\""), "{line}");
        ms
    };
    for i in 0..500 {
        ask(SENTENCES[i % SENTENCES.len()]);
    }
    let pid = child.id();
    let rss_start = rss_kib(pid);
    let mut rss = Vec::with_capacity(n / 1000 + 1);
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        lat.push(ask(SENTENCES[i % SENTENCES.len()]));
        if (i + 1) % 1000 == 0 {
            rss.push(rss_kib(pid));
        }
    }
    let wall = start.elapsed().as_secs_f64();
    child.kill().unwrap();
    child.wait().unwrap();

    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (quantile(&lat, 0.5), quantile(&lat, 0.99));
    let max_rss = rss.iter().copied().max().unwrap_or(rss_start);
    let last_rss = rss.last().copied().unwrap_or(rss_start);
    println!("model: {}", model.display());
    println!(
        "bench (in process, batch 1, 2 threads, spinning as serve): p50 {bench_p50:.2} ms, p99 {bench_p99:.2} ms"
    );
    println!(
        "serve (client round trip over the Unix socket, {n} requests in {wall:.0} s): p50 {p50:.2} ms, p99 {p99:.2} ms; \
         p50 - bench p50 = {:+.2} ms",
        p50 - bench_p50
    );
    println!(
        "serve RSS: {} MiB after warm-up, max {} MiB, last {} MiB over the run ({:+.1}% max vs start)",
        rss_start / 1024,
        max_rss / 1024,
        last_rss / 1024,
        (max_rss as f64 / rss_start as f64 - 1.0) * 100.0
    );
    let first = rss.first().copied().unwrap_or(rss_start);
    println!(
        "serve RSS after the first 1,000 requests: {} MiB; growth from there to the end: {:+.1}%",
        first / 1024,
        (last_rss as f64 / first as f64 - 1.0) * 100.0
    );
}
