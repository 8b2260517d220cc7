//! A run keeps its training data: trained in one folder, moved to another, its data deleted,
//! served from a third folder, it still retrains; `infer`, `eval` and `export` answer with the
//! new version; `history` lists both versions and `rollback --to 0` restores the original answers.
//! What a run records about its data decides what `eval` and `serve` can do without flags: a
//! CoNLL run trained with `--columns` evaluates and retrains without them; an `--init-from` run
//! records its real freeze list and its parent's data, and `serve` refuses corrections of a task
//! its data lacks (`not_learnable`, with the reason) while the other tasks retrain.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::serve as serve_support;

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

fn demo_lines(split: &str) -> Vec<Value> {
    std::fs::read_to_string(root().join("data/demo").join(format!("{split}.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The demo split as CoNLL with columns `tags pos word` (the words last: only `--columns` says so).
fn write_conll(dir: &Path, split: &str) {
    let mut text = String::new();
    for ex in demo_lines(split) {
        let words = ex["words"].as_array().unwrap();
        let tags = ex["tags"].as_array().unwrap();
        for (w, t) in words.iter().zip(tags) {
            let w = w.as_str().unwrap();
            let pos = if w.chars().all(|c| c.is_ascii_digit()) {
                "NUM"
            } else {
                "W"
            };
            text.push_str(&format!("{} {pos} {w}\n", t.as_str().unwrap()));
        }
        text.push('\n');
    }
    std::fs::write(dir.join(format!("{split}.conll")), text).unwrap();
}

#[test]
fn a_conll_run_with_columns_evaluates_and_retrains_without_them() {
    common::require_setup();
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("conll");
    std::fs::create_dir_all(&data).unwrap();
    for s in ["train", "valid", "test"] {
        write_conll(&data, s);
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
            "3",
            "--data",
            "conll",
            "--columns",
            "tags,pos,word",
            "--out",
            "run",
        ],
        "",
    );
    std::fs::remove_dir_all(&data).unwrap();
    let eval: Value =
        serde_json::from_str(ok(t.path(), &["eval", "--run", "run", "--json", "-q"], "").trim())
            .unwrap();
    assert_eq!(eval["examples"], 101, "{eval}");
    assert!(eval["tasks"]["pos"].is_object(), "{eval}");
    assert!(eval["tasks"]["tags"].is_object(), "{eval}");
    let text = "set a 20 minutes timer";
    let requests = format!(
        "{{\"correct\": {{\"text\": \"{text}\", \"pos\": [\"W\", \"W\", \"NUM\", \"W\", \"W\"]}}}}\n\
         {{\"cmd\": \"retrain\", \"wait\": true}}\n"
    );
    let (success, out, err) = run_in(t.path(), &["serve", "--run", "run"], &requests);
    assert!(success, "{err}");
    assert!(err.contains("this run can retrain"), "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["ok"], true, "{out}");
    assert!(
        lines[1]["retrain"]["reason"]
            .as_str()
            .is_some_and(|r| !r.contains("retrain failed")),
        "the retrain read the CoNLL data with its columns: {out}"
    );
}

#[test]
fn an_init_from_run_records_its_freeze_list_and_lineage_and_refuses_what_it_cannot_learn() {
    common::require_setup();
    let t = tempfile::tempdir().unwrap();
    let parent_data = t.path().join("parent");
    let child_data = t.path().join("child");
    for d in [&parent_data, &child_data] {
        std::fs::create_dir_all(d).unwrap();
    }
    for s in ["train", "valid"] {
        std::fs::copy(
            root().join("data/demo").join(format!("{s}.jsonl")),
            parent_data.join(format!("{s}.jsonl")),
        )
        .unwrap();
        // The child's data: the urgency task only.
        let lines: Vec<String> = demo_lines(s)
            .into_iter()
            .map(|ex| {
                serde_json::json!({"words": ex["words"], "urgency": ex["urgency"]}).to_string()
            })
            .collect();
        std::fs::write(
            child_data.join(format!("{s}.jsonl")),
            lines.join("\n") + "\n",
        )
        .unwrap();
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
            "3",
            "--data",
            "parent",
            "--out",
            "p",
        ],
        "",
    );
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
            "child",
            "--init-from",
            "p",
            "--freeze",
            "tags",
            "--out",
            "c",
        ],
        "",
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("c/config.json")).unwrap()).unwrap();
    assert_eq!(
        config["training"]["frozen"],
        serde_json::json!(["intent", "tags"]),
        "the real freeze list: {config}"
    );
    assert!(t.path().join("c/data/lineage/1/source.json").is_file());
    let lineage: Value = serde_json::from_slice(
        &std::fs::read(t.path().join("c/data/lineage/1/lineage.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(lineage["has_data"], true, "{lineage}");

    let requests = "{\"correct\": {\"text\": \"turn off the lamp\", \"intent\": \"turn_off\"}}\n\
                    {\"correct\": {\"text\": \"turn off the lamp now\", \"urgency\": \"urgent\"}}\n\
                    {\"cmd\": \"retrain\", \"wait\": true}\n";
    let (success, out, err) = run_in(t.path(), &["serve", "--run", "c"], requests);
    assert!(success, "{err}");
    assert!(
        err.contains("corrections of intent, tags are refused"),
        "{err}"
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["code"], "not_learnable", "{out}");
    assert!(
        lines[0]["error"].as_str().unwrap().contains("\"intent\""),
        "{out}"
    );
    assert_eq!(lines[1]["ok"], true, "{out}");
    assert!(
        lines[2]["retrain"]["reason"]
            .as_str()
            .is_some_and(|r| !r.contains("retrain failed")),
        "{out}"
    );
    // The carried-over heads are byte-identical in a swapped version.
    if lines[2]["retrain"]["swapped"] == true {
        let load = |dir: &str| {
            let bytes = std::fs::read(t.path().join(dir).join("heads.safetensors")).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes)
                .unwrap()
                .tensors()
                .into_iter()
                .filter(|(n, _)| n.starts_with("intent.") || n.starts_with("tags."))
                .map(|(n, v)| (n, v.data().to_vec()))
                .collect::<std::collections::BTreeMap<_, _>>();
            st
        };
        assert_eq!(load("c"), load("c/versions/1"));
    }
}
