//! Swap under load: 4 clients send requests all the time while the service goes through 10
//! correction + retrain + swap cycles. Every request must get its answer (none failed, none lost),
//! and the clients must have been answered by several versions (the swaps happened under load).
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::serve as serve_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serve_support::{fresh_run, Server};

const CORRECTIONS: [(&str, &str); 10] = [
    ("i am freezing in here", "set_temperature"),
    ("kill the music", "turn_off"),
    ("wake me at seven", "set_timer"),
    ("the baby is asleep", "turn_off"),
    ("make it cosy", "set_temperature"),
    ("what should i wear today", "get_weather"),
    ("let me in", "unlock_door"),
    ("secure the house", "lock_door"),
    ("remind me in ten minutes", "set_timer"),
    ("it is too dark in the study", "turn_on"),
];

const LOAD: [&str; 4] = [
    "turn on the kitchen light",
    "set the bedroom lamp to 30 percent",
    "what is the weather in lisbon tomorrow",
    "lock the front door",
];

#[test]
fn ten_swaps_under_four_busy_clients_lose_no_request() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    // Two epochs per retrain keep the ten cycles short; normal priority keeps them progressing on
    // a machine other programs keep busy. The swap's quality check is not under test here (every
    // cycle must swap), so any held-out score is accepted.
    let server = Server::start(
        &run,
        dir.path(),
        &[
            "--retrain-epochs",
            "2",
            "--retrain-priority",
            "normal",
            "--swap-margin",
            "1",
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = LOAD
        .iter()
        .map(|text| {
            let mut c = server.connect();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut sent, mut answered, mut failed) = (0u64, 0u64, Vec::new());
                let mut versions = BTreeSet::new();
                while !stop.load(Ordering::SeqCst) {
                    sent += 1;
                    let v = c.request(text);
                    if v["intent"]["label"].is_string() && v["error"].is_null() {
                        answered += 1;
                        versions.insert(v["version"].as_u64().unwrap());
                    } else {
                        failed.push(v.to_string());
                    }
                }
                (sent, answered, failed, versions)
            })
        })
        .collect();

    let mut control = server.connect();
    for (i, (text, label)) in CORRECTIONS.iter().enumerate() {
        let ack = control.request(&format!(
            r#"{{"correct": {{"text": "{text}", "intent": "{label}"}}}}"#
        ));
        assert_eq!(ack["ok"], true, "{ack}");
        let r = control.request(r#"{"cmd": "retrain", "wait": true}"#);
        let report = &r["retrain"];
        assert_eq!(report["swapped"], true, "cycle {}: {r}", i + 1);
        assert_eq!(report["version"], i as u64 + 1);
    }
    stop.store(true, Ordering::SeqCst);

    let mut all_versions = BTreeSet::new();
    let mut total = 0;
    for h in clients {
        let (sent, answered, failed, versions) = h.join().expect("client thread");
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        assert_eq!(sent, answered, "lost requests");
        total += answered;
        all_versions.extend(versions);
    }
    eprintln!("{total} requests answered during 10 swaps, by versions {all_versions:?}");
    assert!(
        all_versions.len() >= 3,
        "the load did not straddle the swaps: {all_versions:?}"
    );
    let s = control.request(r#"{"cmd": "stats"}"#);
    assert_eq!(s["retrain"]["swaps"], 10);
    assert_eq!(s["model"]["version"], 10);
    assert_eq!(s["requests"]["errors"], 0, "{s}");
    let (status, log) = server.term();
    assert!(status.success(), "{log}");
}
