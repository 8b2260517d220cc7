//! Learning from corrections on data/demo: a wrong answer is corrected, a retrain fixes it
//! without losing held-out accuracy beyond the margin, and a restart serves the swapped model
//! with every journalled correction; a correction that contradicts the training data wins over
//! it; a merged model refuses corrections.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::serve as serve_support;

use serde_json::Value;
use serve_support::{demo_run, edgetune, fresh_run, intent, wait_stats, Server};

/// The default `--swap-margin`.
const MARGIN: f64 = edgetune::serve::options::DEFAULT_SWAP_MARGIN;

fn retrain(c: &mut serve_support::Client) -> Value {
    let r = c.request(r#"{"cmd": "retrain", "wait": true}"#);
    assert_eq!(r["ok"], true, "{r}");
    r["retrain"].clone()
}

#[test]
fn a_corrected_sentence_is_answered_right_after_retrain_and_after_a_restart() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let exported = dir.path().join("exported").join("model.onnx");
    let server = Server::start(
        &run,
        dir.path(),
        &["--export-on-swap", exported.to_str().unwrap()],
    );
    let mut c = server.connect();
    let text = "i am freezing in here";
    let before = c.request(text);
    assert_ne!(
        intent(&before),
        "set_temperature",
        "the demo model must get this one wrong: {before}"
    );

    let ack = c.request(&format!(
        r#"{{"correct": {{"text": "{text}", "intent": "set_temperature"}}}}"#
    ));
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["seq"], 1);
    let report = retrain(&mut c);
    assert_eq!(report["swapped"], true, "{report}");
    assert_eq!(report["fixed"], 1);
    assert_eq!(report["corrections"], 1);
    assert_eq!(report["version"], 1);
    let (old, new) = (
        report["old_score"].as_f64().unwrap(),
        report["new_score"].as_f64().unwrap(),
    );
    assert!(new >= old - MARGIN, "held-out {old} -> {new}");
    for phase in ["data", "features", "train", "evaluate", "publish"] {
        assert!(
            report["phases"][phase].as_f64().is_some(),
            "{phase}: {report}"
        );
    }

    let after = c.request(text);
    assert_eq!(intent(&after), "set_temperature", "{after}");
    assert_eq!(after["version"], 1);
    // Slots are still the model's own (the correction gave the intent only).
    assert!(after["slots"].is_array());
    let s = c.request(r#"{"cmd": "stats"}"#);
    assert_eq!(s["model"]["version"], 1);
    assert_eq!(s["retrain"]["swaps"], 1);
    assert_eq!(s["journal"]["corrections"], 1);
    assert!(
        s["model"]["path"].as_str().unwrap().ends_with("versions/1"),
        "{s}"
    );
    drop(c);
    let (status, log) = server.term();
    assert!(status.success(), "{log}");

    // The swap also wrote the new model as a merged model, which answers the same.
    let out = edgetune()
        .args(["--threads", "2", "infer", "--model"])
        .arg(&exported)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{text}\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(intent(&merged), "set_temperature", "{merged}");

    // A restart serves the swapped model and keeps the journal.
    let server = Server::start(&run, dir.path(), &[]);
    let mut c = server.connect();
    let again = c.request(text);
    assert_eq!(again["version"], 1);
    assert_eq!(intent(&again), "set_temperature");
    let s = c.request(r#"{"cmd": "stats"}"#);
    assert_eq!(s["journal"]["corrections"], 1);
    assert_eq!(s["journal"]["since_retrain"], 0);
    // The original run folder is untouched: its weights still answer as before.
    let original = std::fs::read(demo_run().join("heads.safetensors")).unwrap();
    assert_eq!(
        std::fs::read(run.join("heads.safetensors")).unwrap(),
        original
    );
}

/// "music in the kids room" is `play_music` in the training data. A correction that
/// calls it `turn_on` overrides the training sentence (the device owner's word wins), so the
/// retrained model can learn it; the swap still needs the held-out score within the margin.
#[test]
fn a_correction_contradicting_the_training_data_overrides_it() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(&run, dir.path(), &["--retrain-priority", "normal"]);
    let mut c = server.connect();
    let text = "music in the kids room";
    assert_eq!(intent(&c.request(text)), "play_music");
    let ack = c.request(&format!(
        r#"{{"correct": {{"text": "{text}", "intent": "turn_on"}}}}"#
    ));
    assert_eq!(ack["ok"], true, "{ack}");
    let report = retrain(&mut c);
    assert_eq!(report["overridden"], 1, "{report}");
    assert_eq!(report["swapped"], true, "{report}");
    assert_eq!(report["fixed"], 1, "{report}");
    let (old, new) = (
        report["old_score"].as_f64().unwrap(),
        report["new_score"].as_f64().unwrap(),
    );
    assert!(new >= old - MARGIN, "held-out {old} -> {new}");
    assert_eq!(intent(&c.request(text)), "turn_on");
    // Other music requests are still music.
    assert_eq!(
        intent(&c.request("play some jazz by miles davis")),
        "play_music"
    );

    // Withdrawing the correction and retraining restores the training data's label.
    let f = c.request(&format!(r#"{{"forget": {}}}"#, ack["seq"]));
    assert_eq!(f["ok"], true, "{f}");
    let report = retrain(&mut c);
    assert_eq!(report["swapped"], true, "{report}");
    assert_eq!(report["corrections"], 0);
    assert_eq!(intent(&c.request(text)), "play_music");
    assert_eq!(c.request(r#"{"forget": 99}"#)["code"], "bad_request");
}

#[test]
fn a_merged_model_answers_but_does_not_learn() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let merged = dir.path().join("merged").join("model.onnx");
    let out = edgetune()
        .args(["--threads", "2", "export", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = edgetune()
        .args(["--threads", "2", "serve", "--model"])
        .arg(&merged)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(
                b"turn on the kitchen light\n{\"correct\": {\"text\": \"x\", \"intent\": \"turn_on\"}}\n{\"cmd\": \"retrain\"}\n{\"cmd\": \"stats\"}\n",
            )?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(intent(&lines[0]), "turn_on");
    assert_eq!(lines[1]["code"], "unavailable");
    assert_eq!(lines[2]["code"], "unavailable");
    assert_eq!(lines[3]["model"]["kind"], "merged");
    assert!(lines[3]["journal"].is_null());
}

/// `--retrain-every 2`: the second correction starts a retrain in the background (its reply does
/// not wait for it), planned within `--max-memory`; the service answers meanwhile.
#[test]
fn every_n_corrections_retrain_in_the_background_within_max_memory() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(
        &run,
        dir.path(),
        &[
            "--retrain-every",
            "2",
            "--max-memory",
            "1G",
            "--retrain-priority",
            "normal",
        ],
    );
    let mut c = server.connect();
    let text = "i am freezing in here";
    assert_ne!(intent(&c.request(text)), "set_temperature");
    let ack = c.request(&format!(
        r#"{{"correct": {{"text": "{text}", "intent": "set_temperature"}}}}"#
    ));
    assert_eq!(ack["ok"], true, "{ack}");
    let s = c.request(r#"{"cmd": "stats"}"#);
    assert_eq!(
        s["retrain"]["runs"], 0,
        "one correction of two: no retrain yet: {s}"
    );
    assert_eq!(s["retrain"]["running"], false, "{s}");
    let ack = c.request(r#"{"correct": {"text": "kill the music", "intent": "turn_off"}}"#);
    assert_eq!(ack["ok"], true, "{ack}");
    // Answered while the retrain runs (or after it, on a fast machine).
    assert!(c.request("lock the front door")["intent"]["label"].is_string());
    let s = wait_stats(&mut c, |s| {
        s["retrain"]["runs"] == 1 && s["retrain"]["running"] == false
    });
    let last = &s["retrain"]["last"];
    assert_eq!(last["swapped"], true, "{s}");
    assert_eq!(last["corrections"], 2, "{s}");
    let plan = last["memory"]
        .as_str()
        .unwrap_or_else(|| panic!("no memory plan: {s}"));
    assert!(plan.starts_with("memory budget 1024 MiB"), "{plan}");
    let peak: u64 = plan
        .rsplit_once("expected peak ~")
        .and_then(|(_, p)| p.strip_suffix(" MiB"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(peak <= 1024, "{plan}");
    assert_eq!(s["journal"]["since_retrain"], 0, "{s}");
    let after = c.request(text);
    assert_eq!(intent(&after), "set_temperature", "{after}");
    assert_eq!(after["version"], 1);
}

/// A budget no retrain fits in: the retrain fails with the reason, the serving model stays.
#[test]
fn a_retrain_that_cannot_fit_max_memory_keeps_the_serving_model() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(&run, dir.path(), &["--max-memory", "1M"]);
    let mut c = server.connect();
    c.request(r#"{"correct": {"text": "kill the music", "intent": "turn_off"}}"#);
    let report = retrain(&mut c);
    assert_eq!(report["swapped"], false, "{report}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("--max-memory 1 MiB is too small"),
        "{report}"
    );
    assert_eq!(report["version"], 0);
    assert_eq!(c.request("kill the music")["version"], 0);
    // A refused candidate may be kept as a version, never made current.
    assert!(!run.join("versions/current").exists());
}

/// Training data that teaches the wrong intents (every train label moved to another intent; the
/// valid split is the demo's): the retrained model is far worse on the held-out split, so it is
/// not swapped in, and `stats` says why.
#[test]
fn a_model_worse_on_the_held_out_split_is_not_swapped_and_stats_says_why() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let bad = dir.path().join("bad-data");
    std::fs::create_dir_all(&bad).unwrap();
    let demo = serve_support::root().join("data/demo");
    let train = std::fs::read_to_string(demo.join("train.jsonl")).unwrap();
    let mut labels: Vec<String> = train
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["intent"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    labels.sort();
    labels.dedup();
    let moved: String = train
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let i = labels
                .iter()
                .position(|x| v["intent"] == x.as_str())
                .unwrap();
            v["intent"] = Value::from(labels[(i + 1) % labels.len()].clone());
            format!("{v}\n")
        })
        .collect();
    std::fs::write(bad.join("train.jsonl"), moved).unwrap();
    std::fs::copy(demo.join("valid.jsonl"), bad.join("valid.jsonl")).unwrap();

    let server = Server::start(
        &run,
        dir.path(),
        &[
            "--data",
            bad.to_str().unwrap(),
            "--retrain-priority",
            "normal",
        ],
    );
    let mut c = server.connect();
    let before = c.request("turn on the kitchen light");
    assert_eq!(intent(&before), "turn_on");
    let report = retrain(&mut c);
    assert_eq!(report["swapped"], false, "{report}");
    let (old, new) = (
        report["old_score"].as_f64().unwrap(),
        report["new_score"].as_f64().unwrap(),
    );
    assert!(new < old - MARGIN, "held-out {old} -> {new}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("held-out score fell from"),
        "{report}"
    );
    let s = c.request(r#"{"cmd": "stats"}"#);
    assert_eq!(s["retrain"]["last"]["reason"], report["reason"], "{s}");
    assert_eq!(s["retrain"]["swaps"], 0);
    assert_eq!(s["model"]["version"], 0);
    let after = c.request("turn on the kitchen light");
    assert_eq!(after["version"], 0);
    assert_eq!(
        after["intent"], before["intent"],
        "the serving model is unchanged"
    );
    // A refused candidate may be kept as a version, never made current.
    assert!(!run.join("versions/current").exists());
    let refused: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("versions/1/version.json")).unwrap())
            .unwrap();
    assert_eq!(refused["swapped"], false, "{refused}");
    assert!(
        refused["decision"]
            .as_str()
            .unwrap()
            .contains("held-out score fell"),
        "{refused}"
    );
}

/// A retrain that was due when the service stopped (enough corrections after the serving
/// version's) starts at the next start, without waiting for one more correction.
#[test]
fn a_retrain_due_before_a_restart_starts_at_the_restart() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(&run, dir.path(), &[]);
    let mut c = server.connect();
    for (text, intent) in [
        ("kill the music", "turn_off"),
        ("i am freezing in here", "set_temperature"),
    ] {
        let ack = c.request(&format!(
            r#"{{"correct": {{"text": "{text}", "intent": "{intent}"}}}}"#
        ));
        assert_eq!(ack["ok"], true, "{ack}");
    }
    drop(c);
    let (status, log) = server.term();
    assert!(status.success(), "{log}");
    let server = Server::start(&run, dir.path(), &["--retrain-every", "2"]);
    let mut c = server.connect();
    let s = wait_stats(&mut c, |s| s["retrain"]["last"].is_object());
    assert_eq!(s["retrain"]["last"]["corrections"], 2, "{s}");
    assert!(server
        .log()
        .contains("2 corrections since the serving version"));
}
