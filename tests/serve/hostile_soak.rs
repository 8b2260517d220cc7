//! The soak of issue 23: `serve` under a steady mix of answers, corrections and retrain requests
//! from 8 clients, with its disk (a small tmpfs mounted on `RUN/serve`) filled half-way through.
//! It holds when every request is answered, no acknowledged correction is missing from the journal
//! afterwards (and the service restarts on it), and memory stays flat.
//!
//! `EDGETUNE_SOAK_SECS` sets the length: 60 s by default (the suite's run); the long run is
//! `EDGETUNE_SOAK_SECS=1800 cargo test --release --features real-model --test serve hostile_soak:: -- --nocapture`.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::hostile as hostile_support;
use crate::support::serve as serve_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hostile_support::Tmpfs;
use serde_json::Value;
use serve_support::{fresh_run, wait_stats, Server};

const CLIENTS: usize = 8;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    acked: Vec<u64>,
    codes: BTreeMap<String, usize>,
    answers: usize,
    slowest: Duration,
}

/// One client's loop: answers, a correction every 10th request, a retrain request every 97th.
fn client(server: &Server, k: usize, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let mut c = server.connect();
    let texts = [
        "turn on the kitchen light",
        "play some jazz",
        "set a timer for ten minutes",
    ];
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let line = if i.is_multiple_of(97) {
            r#"{"cmd": "retrain"}"#.to_string()
        } else if i.is_multiple_of(10) {
            format!(r#"{{"correct": {{"text": "lamp {k} number {i} on", "intent": "turn_on"}}}}"#)
        } else {
            texts[i % texts.len()].to_string()
        };
        let t0 = Instant::now();
        let r = c.request(&line);
        let took = t0.elapsed();
        let mut s = seen.lock().unwrap();
        s.slowest = s.slowest.max(took);
        if let Some(code) = r["code"].as_str() {
            *s.codes.entry(code.to_string()).or_default() += 1;
            assert!(
                code == "full" || line.contains("retrain"),
                "client {k}: unexpected error {r} for {line}"
            );
        } else if let Some(seq) = r["seq"].as_u64() {
            s.acked.push(seq);
        } else if r["intent"].is_object() {
            s.answers += 1;
        }
    }
}

/// The seqs of the corrections in the journal file.
fn journalled(path: &Path) -> BTreeSet<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("correct").is_some())
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

#[test]
fn soak_with_eight_clients_and_a_disk_that_fills_half_way() {
    common::require_setup();
    let secs: u64 = std::env::var("EDGETUNE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let disk = Tmpfs::mount(&run.join("serve"), "24m");
    let args = ["--no-stdin", "--retrain-epochs", "1", "--max-clients", "16"];
    let server = Server::start(&run, dir.path(), &args);
    let pid = server.child.id();
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    let rss: Mutex<Vec<(f64, u64)>> = Mutex::new(Vec::new());
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for k in 0..CLIENTS {
            let (server, stop, seen) = (&server, &stop, &seen);
            scope.spawn(move || client(server, k, stop, seen));
        }
        let mut filled = false;
        while t0.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_secs(1));
            rss.lock()
                .unwrap()
                .push((t0.elapsed().as_secs_f64(), rss_kib(pid)));
            if !filled && t0.elapsed() >= Duration::from_secs(secs / 2) {
                let mut f = std::fs::File::create(disk.0.join("filler")).unwrap();
                while f.write_all(&[b'x'; 4096]).is_ok() {}
                filled = true;
                eprintln!("soak: disk filled at {:.0} s", t0.elapsed().as_secs_f64());
            }
        }
        stop.store(true, Ordering::SeqCst);
    });
    let mut c = server.connect();
    let stats = wait_stats(&mut c, |_| true);
    drop(c);
    server.kill9();
    let seen = seen.into_inner().unwrap();
    let on_disk = journalled(&run.join("serve/journal.jsonl"));
    let lost: Vec<u64> = seen
        .acked
        .iter()
        .filter(|s| !on_disk.contains(s))
        .copied()
        .collect();
    let rss = rss.into_inner().unwrap();
    let warm = rss.iter().find(|(t, _)| *t >= 5.0).map_or(0, |r| r.1);
    let end = rss.last().map_or(0, |r| r.1);
    let peak = rss.iter().map(|r| r.1).max().unwrap_or(0);
    eprintln!(
        "soak: {secs} s, {CLIENTS} clients: {} answers, {} corrections acknowledged, errors {:?}, \
         slowest reply {:.2} s; RSS at 5 s {} MiB, end {} MiB, peak {} MiB; retrains {}",
        seen.answers,
        seen.acked.len(),
        seen.codes,
        seen.slowest.as_secs_f64(),
        warm / 1024,
        end / 1024,
        peak / 1024,
        stats["retrain"]
    );
    assert!(lost.is_empty(), "acknowledged corrections lost: {lost:?}");
    assert!(seen.answers > 0 && !seen.acked.is_empty());
    assert!(
        seen.codes.get("full").copied().unwrap_or(0) > 0,
        "the disk never filled: {:?}",
        seen.codes
    );
    // The service restarts on the journal of a full disk.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    let server = Server::start(&run, dir.path(), &["--no-stdin"]);
    let mut c = server.connect();
    let s = wait_stats(&mut c, |_| true);
    assert_eq!(s["journal"]["corrections"], seen.acked.len(), "{s}");
    drop(c);
    drop(server);
    assert!(
        end <= warm * 2 + 256 * 1024,
        "memory grew: {} MiB after warm-up, {} MiB at the end",
        warm / 1024,
        end / 1024
    );
}
