//! kill -9 of `serve` at random moments of retrains and swaps, and of `rollback`: after each
//! restart the current version is a complete one (its config and hash-checked weights load) and
//! every acknowledged correction is in the journal. 5 kills here; `EDGETUNE_KILLS=50 cargo test
//! --features real-model --test serve versions_kill:: -- --nocapture` runs more on demand.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::serve as serve_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serve_support::{edgetune, fresh_run, Server};

/// The journal numbers in `RUN/serve/journal.jsonl` (a last line cut by a kill is skipped).
fn journalled(run: &Path) -> BTreeSet<u64> {
    std::fs::read_to_string(run.join("serve/journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

/// The current version loads completely.
fn check_current(run: &Path, kill: usize) -> u64 {
    let v = edgetune::run::versions::Versions::new(run);
    let (n, dir) = v
        .current()
        .unwrap_or_else(|e| panic!("kill {kill}: no current version: {e}"));
    edgetune::run::load_run(&dir)
        .unwrap_or_else(|e| panic!("kill {kill}: version {n} is not complete: {e}"));
    n
}

/// A pseudo-random delay from a simple generator (no seed file: the kill moments only need to
/// spread over the retrain's phases).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn killed_at_random_moments_the_current_version_is_complete_and_no_correction_is_lost() {
    common::require_setup();
    let kills: usize = std::env::var("EDGETUNE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let mut acked = BTreeSet::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64 ^ std::process::id() as u64;
    let t0 = Instant::now();
    let intents = ["turn_on", "turn_off", "set_temperature", "play_music"];
    for kill in 0..kills {
        let server = Server::start(&run, dir.path(), &["--retrain-priority", "normal"]);
        let mut c = server.connect();
        let live = c.request(r#"{"cmd": "stats"}"#)["journal"]["corrections"].as_u64();
        assert!(live.is_some(), "kill {kill}: stats");
        let intent = intents[kill % intents.len()];
        let ack = c.request(&format!(
            r#"{{"correct": {{"text": "please do the thing number {kill}", "intent": "{intent}"}}}}"#
        ));
        acked.insert(ack["seq"].as_u64().unwrap_or_else(|| panic!("{ack}")));
        assert_eq!(c.request(r#"{"cmd": "retrain"}"#)["retrain"], "requested");
        if kill % 2 == 1 {
            // A rollback beside the retrain, itself killed at a random moment.
            let mut child = edgetune()
                .args(["rollback"])
                .arg(&run)
                .args(["--to", "0"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(next(&mut rng) % 300));
            let _ = child.kill();
            let _ = child.wait();
        }
        // Anywhere from before the retrain's data to after its publish (a retrain takes about
        // 8 to 15 s on 2 shared cores).
        std::thread::sleep(Duration::from_millis(next(&mut rng) % 18_000));
        server.kill9();
        let n = check_current(&run, kill);
        let have = journalled(&run);
        let lost: Vec<_> = acked.difference(&have).collect();
        assert!(
            lost.is_empty(),
            "kill {kill}: acknowledged corrections lost: {lost:?}"
        );
        eprintln!(
            "kill {kill}: current version {n} of {:?}, {} corrections journalled ({:.0} s)",
            edgetune::run::versions::Versions::new(&run).numbers(),
            have.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    // After the last kill the service starts, answers with a complete version and still learns.
    let server = Server::start(&run, dir.path(), &["--retrain-priority", "normal"]);
    let mut c = server.connect();
    let r = c.request(r#"{"cmd": "retrain", "wait": true}"#);
    assert_eq!(r["ok"], true, "{r}");
    check_current(&run, kills);
}
