//! A run keeps its training data: trained in one folder, moved to another, its data deleted,
//! served from a third folder, it still retrains; `infer`, `eval` and `export` answer with the
//! new version; `history` lists both versions and `rollback --to 0` restores the original answers.
#![cfg(feature = "real-model")]

mod common;
mod serve_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use serve_support::{cache, intent, root};

const TEXT: &str = "i am freezing in here";

/// `edgetune --threads 2 ARGS` run in `cwd`, with `stdin`; (success, stdout, stderr).
fn run_in(cwd: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgetune"))
        .env("EDGETUNE_CACHE", cache())
        .env("EDGETUNE_MODEL", root().join(".models/default"))
        .current_dir(cwd)
        .arg("--threads")
        .arg("2")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("edgetune starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(cwd: &Path, args: &[&str], stdin: &str) -> String {
    let (success, out, err) = run_in(cwd, args, stdin);
    assert!(success, "edgetune {args:?} failed:\n{err}");
    out
}

fn answer(cwd: &Path, run: &str, extra: &[&str]) -> Value {
    let mut args = vec!["infer", "--run", run];
    args.extend_from_slice(extra);
    serde_json::from_str(ok(cwd, &args, &format!("{TEXT}\n")).trim()).unwrap()
}

#[test]
fn a_moved_run_without_its_data_retrains_from_any_folder_and_rolls_back() {
    common::require_setup();
    let t = tempfile::tempdir().unwrap();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    for d in [&a, &b, &c] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::create_dir_all(a.join("demo")).unwrap();
    for f in ["train.jsonl", "valid.jsonl", "test.jsonl"] {
        std::fs::copy(root().join("data/demo").join(f), a.join("demo").join(f)).unwrap();
    }
    ok(
        &a,
        &[
            "train",
            "-q",
            "--seed",
            "13",
            "--no-plots",
            "--data",
            "demo",
            "--out",
            "run",
        ],
        "",
    );
    std::fs::rename(a.join("run"), b.join("run")).unwrap();
    std::fs::remove_dir_all(a.join("demo")).unwrap();
    let run = "../b/run";

    let before = answer(&c, run, &[]);
    assert_ne!(intent(&before), "set_temperature", "{before}");
    let requests = format!(
        "{{\"correct\": {{\"text\": \"{TEXT}\", \"intent\": \"set_temperature\"}}}}\n\
         {{\"cmd\": \"retrain\", \"wait\": true}}\n{TEXT}\n"
    );
    let (success, out, err) = run_in(&c, &["serve", "--run", run], &requests);
    assert!(success, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["ok"], true, "{out}");
    assert_eq!(lines[1]["retrain"]["swapped"], true, "{out}\n{err}");
    assert_eq!(intent(&lines[2]), "set_temperature", "{out}");

    // Every command reads the current version (1) by default.
    let after = answer(&c, run, &[]);
    assert_eq!(intent(&after), "set_temperature", "{after}");
    assert_eq!(
        intent(&answer(&c, run, &["--version", "0"])),
        intent(&before)
    );
    let eval: Value =
        serde_json::from_str(ok(&c, &["eval", "--run", run, "--json", "-q"], "").trim()).unwrap();
    assert_eq!(eval["examples"], 101, "the run's own test split: {eval}");
    let merged = t.path().join("m.onnx");
    ok(
        &c,
        &["export", "--run", run, "--out", merged.to_str().unwrap()],
        "",
    );
    let m: Value = serde_json::from_str(
        ok(
            &c,
            &["infer", "--model", merged.to_str().unwrap()],
            &format!("{TEXT}\n"),
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(
        intent(&m),
        "set_temperature",
        "the export is version 1: {m}"
    );

    let history: Value =
        serde_json::from_str(ok(&c, &["history", run, "--json"], "").trim()).unwrap();
    assert_eq!(history["current"], 1, "{history}");
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{history}");
    assert_eq!(versions[0]["made_by"], "train");
    assert_eq!(versions[1]["made_by"], "retrain");
    assert_eq!(versions[1]["swapped"], true);
    assert_eq!(versions[1]["corrections"], serde_json::json!([1]));

    let said = ok(&c, &["rollback", run, "--to", "0"], "");
    assert!(said.contains("next request"), "{said}");
    assert_eq!(intent(&answer(&c, run, &[])), intent(&before));
    let history: Value =
        serde_json::from_str(ok(&c, &["history", run, "--json"], "").trim()).unwrap();
    assert_eq!(history["current"], 2, "{history}");
    assert_eq!(history["versions"][2]["made_by"], "rollback");
    assert_eq!(history["versions"][2]["parent"], 0);
}

/// A run over the snapshot limit records the data's absolute path and hash; once the data
/// changed, a retrain says so.
#[test]
fn data_over_the_snapshot_limit_is_recorded_by_path_and_hash() {
    common::require_setup();
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("demo");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["train.jsonl", "valid.jsonl"] {
        std::fs::copy(root().join("data/demo").join(f), data.join(f)).unwrap();
    }
    ok(
        t.path(),
        &[
            "train",
            "-q",
            "--seed",
            "13",
            "--no-plots",
            "--epochs",
            "2",
            "--data",
            "demo",
            "--out",
            "run",
            "--snapshot-limit",
            "1K",
        ],
        "",
    );
    let source: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("run/data/source.json")).unwrap())
            .unwrap();
    assert_eq!(source["stored"]["kind"], "external", "{source}");
    assert!(!t.path().join("run/data/files").exists());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("train.jsonl"))
        .unwrap();
    writeln!(f, "{{\"words\": [\"play\", \"jazz\"], \"tags\": [\"O\", \"O\"], \"intent\": \"play_music\", \"urgency\": \"normal\"}}").unwrap();
    let requests = "{\"correct\": {\"text\": \"play jazz\", \"intent\": \"play_music\"}}\n\
                    {\"cmd\": \"retrain\", \"wait\": true}\n";
    let (_, out, err) = run_in(t.path(), &["serve", "--run", "run"], requests);
    assert!(out.contains("changed since it was trained"), "{out}\n{err}");
}
