//! What a run records about its data decides what `eval` and `serve` can do without flags: a
//! CoNLL run trained with `--columns` evaluates and retrains without them; an `--init-from` run
//! records its real freeze list and its parent's data, and `serve` refuses corrections of a task
//! its data lacks (`not_learnable`, with the reason) while the other tasks retrain.
#![cfg(feature = "real-model")]

mod common;
mod serve_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use serve_support::{cache, root};

fn run_in(cwd: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgetune"))
        .env("EDGETUNE_CACHE", cache())
        .env("EDGETUNE_MODEL", root().join(".models/default"))
        .current_dir(cwd)
        .args(["--threads", "2"])
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
