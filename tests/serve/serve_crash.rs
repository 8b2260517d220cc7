//! SIGKILL during a retrain and during journal writes: the restarted service serves the last good
//! model and has every acknowledged correction.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::serve as serve_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use serve_support::{fresh_run, intent, Server};

fn journal(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("serve/journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The version folders being written (`RUN/versions/.tmp-*`).
fn temp_versions(run: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(run.join("versions"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `checkpoint` holds a generation folder with its `state.json` (written last).
fn has_complete_generation(checkpoint: &Path) -> bool {
    std::fs::read_dir(checkpoint)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().join("state.json").is_file())
        })
        .unwrap_or(false)
}

#[test]
fn killed_during_a_retrain_the_restart_serves_the_last_good_model() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let text = "i am freezing in here";
    let server = Server::start(&run, dir.path(), &["--retrain-priority", "normal"]);
    let mut c = server.connect();
    // One swap first, so "the last good model" is a swapped one (version 1).
    c.request(r#"{"correct": {"text": "kill the music", "intent": "turn_off"}}"#);
    let r = c.request(r#"{"cmd": "retrain", "wait": true}"#);
    assert_eq!(r["retrain"]["swapped"], true, "{r}");
    let before = c.request(text);
    assert_eq!(before["version"], 1);
    let before = intent(&before).to_string();
    assert_ne!(before, "set_temperature");
    let ack = c.request(&format!(
        r#"{{"correct": {{"text": "{text}", "intent": "set_temperature"}}}}"#
    ));
    assert_eq!(ack["seq"], 2);
    assert_eq!(c.request(r#"{"cmd": "retrain"}"#)["retrain"], "requested");
    // Kill once the candidate is being trained (a checkpoint generation of it is complete, in
    // the version folder being written, `versions/.tmp-*`).
    let t0 = Instant::now();
    while !temp_versions(&run)
        .iter()
        .any(|t| has_complete_generation(&t.join("checkpoint")))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the retrain never started:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();

    let server = Server::start(&run, dir.path(), &["--retrain-priority", "normal"]);
    let mut c = server.connect();
    let a = c.request(text);
    assert_eq!(a["version"], 1, "{a}");
    assert_eq!(
        intent(&a),
        before,
        "the killed retrain's model is not served"
    );
    assert!(
        temp_versions(&run).is_empty(),
        "the half-written model is removed"
    );
    let s = c.request(r#"{"cmd": "stats"}"#);
    assert_eq!(s["journal"]["corrections"], 2);
    // And the service can still learn.
    let r = c.request(r#"{"cmd": "retrain", "wait": true}"#);
    assert_eq!(r["retrain"]["swapped"], true, "{r}");
    assert_eq!(intent(&c.request(text)), "set_temperature");
}

#[test]
fn killed_during_journal_writes_every_acknowledged_correction_survives() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(&run, dir.path(), &[]);
    let acked: Arc<Mutex<BTreeMap<u64, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let mut c = server.connect();
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let text = format!("switch on lamp {w} {i}");
                    let line =
                        format!(r#"{{"correct": {{"text": "{text}", "intent": "turn_on"}}}}"#);
                    // The process may die at any point: only a reply counts as an acknowledgement.
                    let sent =
                        std::io::Write::write_all(&mut c.writer, format!("{line}\n").as_bytes());
                    let mut reply = String::new();
                    let read = std::io::BufRead::read_line(&mut c.reader, &mut reply);
                    match (sent, read) {
                        (Ok(()), Ok(n)) if n > 0 => {
                            let v: Value = serde_json::from_str(&reply).unwrap();
                            let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("{v}"));
                            acked.lock().unwrap().insert(seq, text);
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 3,
        "too few corrections before the kill: {}",
        acked.len()
    );

    let server = Server::start(&run, dir.path(), &[]);
    let mut c = server.connect();
    let s = c.request(r#"{"cmd": "stats"}"#);
    let live = s["journal"]["corrections"].as_u64().unwrap() as usize;
    assert!(
        live >= acked.len(),
        "{live} live corrections, {} acknowledged",
        acked.len()
    );
    let entries = journal(&run);
    for (seq, text) in &acked {
        let e = entries
            .iter()
            .find(|e| e["seq"] == *seq)
            .unwrap_or_else(|| panic!("acknowledged correction {seq} is not in the journal"));
        assert_eq!(e["correct"]["text"], text.as_str());
        assert_eq!(e["correct"]["labels"]["sentence"]["intent"], "turn_on");
    }
    // New corrections continue the numbering.
    let ack = c.request(r#"{"correct": {"text": "one more", "intent": "turn_on"}}"#);
    assert!(ack["seq"].as_u64().unwrap() > *acked.keys().last().unwrap());
}
