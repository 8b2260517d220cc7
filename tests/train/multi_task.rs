//! Several named tasks end to end on the real backbone, through the command line: the demo data
//! with a second sentence task (`domain`, added by the test) trained, evaluated (`tasks` in the
//! JSON), predicted (every task in each answer), exported (self-checked) and served by the merged
//! model with the same labels as the run; then a task added to a finished run with
//! `train --init-from RUN --data NEW`, where NEW has only the new task: the old heads stay
//! byte-identical and score exactly as before, the new head is trained, and the merged export
//! serves all tasks.

#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::Path;

use common::{edgetune, ok, require_setup};

/// `train --json` on `data` into `out` (plus `extra` flags); returns its JSON.
fn train(cache: &Path, data: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut c = edgetune(cache);
    c.arg("train")
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--threads", "2", "--epochs", "12", "--json", "-q"])
        .args(extra);
    serde_json::from_str(ok(c).trim()).expect("train --json prints one JSON object")
}

/// `eval --json` of `run` on the test split of `data`.
fn eval(cache: &Path, run: &Path, data: &Path) -> serde_json::Value {
    let mut c = edgetune(cache);
    c.args(["eval", "--run"])
        .arg(run)
        .arg("--data")
        .arg(data)
        .args(["--split", "test", "--json", "-q", "--threads", "2"]);
    serde_json::from_str(ok(c).trim()).unwrap()
}

/// `infer` answers for `input` with `--run RUN` or `--model MERGED`.
fn infer(cache: &Path, how: &str, what: &Path, input: &Path) -> Vec<serde_json::Value> {
    let mut c = edgetune(cache);
    c.arg("infer")
        .arg(how)
        .arg(what)
        .arg(input)
        .args(["--threads", "2"]);
    ok(c)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `export --json` of `run` to `out`; the self-check must pass.
fn export(cache: &Path, run: &Path, out: &Path) -> serde_json::Value {
    let mut c = edgetune(cache);
    c.args(["export", "--json", "--threads", "2", "--run"])
        .arg(run)
        .arg("--out")
        .arg(out);
    let v: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();
    assert_eq!(v["check"]["id_mismatches"], 0, "{v}");
    assert!(
        v["check"]["max_diff_logit"].as_f64().unwrap() <= 1e-4,
        "{v}"
    );
    v
}

/// The labels of an answer: each sentence task's label, and the slots as (type, start, end).
fn labels(v: &serde_json::Value, sentence_tasks: &[&str]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for t in sentence_tasks {
        out.insert(t.to_string(), v[t]["label"].clone());
    }
    let slots: Vec<serde_json::Value> = v["slots"]
        .as_array()
        .unwrap_or_else(|| panic!("no slots in {v}"))
        .iter()
        .map(|s| serde_json::json!([s["type"], s["start"], s["end"]]))
        .collect();
    out.insert("slots".into(), serde_json::json!(slots));
    serde_json::Value::Object(out)
}

/// The demo test sentences, one per line.
fn test_lines(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::root().join("data/demo/test.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["words"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let p = dir.join("lines.txt");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

/// Asserts that `infer --model` on the export gives the same labels as `infer --run`.
fn same_answers(cache: &Path, run: &Path, merged: &Path, input: &Path, sentence_tasks: &[&str]) {
    let by_run = infer(cache, "--run", run, input);
    let by_model = infer(cache, "--model", merged, input);
    assert_eq!(by_run.len(), 101);
    assert_eq!(by_run.len(), by_model.len());
    for (r, m) in by_run.iter().zip(&by_model) {
        assert_eq!(
            labels(r, sentence_tasks),
            labels(m, sentence_tasks),
            "{r} vs {m}"
        );
    }
}

#[test]
fn multi_task_train_eval_infer_export_and_adding_a_task() {
    require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let input = test_lines(tmp.path());

    // 1. intent, domain and tags from the start.
    let data = tmp.path().join("demo-domain");
    common::write_demo_variant(&data, &common::demo_with_domain);
    let run = tmp.path().join("run");
    let v = train(&cache, &data, &run, &[]);
    let test = &v["test"];
    assert_eq!(
        test["tasks"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["domain", "intent", "tags"],
        "{v}"
    );
    assert!(
        test["tasks"]["domain"]["accuracy"].as_f64().unwrap() > 0.85,
        "{v}"
    );
    assert!(test["intent_accuracy"].as_f64().unwrap() > 0.85, "{v}");
    assert!(test["slot_f1"].as_f64().unwrap() > 0.8, "{v}");
    assert!(test["all_tasks_accuracy"].as_f64().unwrap() > 0.5, "{v}");
    let m = eval(&cache, &run, &data);
    assert_eq!(m, *test, "eval reproduces train's test metrics");

    let answers = infer(&cache, "--run", &run, &input);
    for a in &answers {
        for t in ["intent", "domain"] {
            assert!(a[t]["label"].is_string() && a[t]["prob"].is_number(), "{a}");
        }
        assert!(a["slots"].is_array(), "{a}");
    }
    // The two sentence heads agree with each other (domain follows from intent) almost always.
    let agree = answers
        .iter()
        .filter(|a| {
            a["domain"]["label"] == common::domain_of(a["intent"]["label"].as_str().unwrap())
        })
        .count();
    assert!(
        agree * 10 >= answers.len() * 9,
        "{agree} of {}",
        answers.len()
    );

    let merged = tmp.path().join("export").join("model.onnx");
    let x = export(&cache, &run, &merged);
    assert_eq!(
        x["check"]["tasks"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["domain", "intent", "tags"],
        "{x}"
    );
    same_answers(&cache, &run, &merged, &input, &["intent", "domain"]);

    // 2. A task added to a finished run: NEW has only `domain`.
    let base = tmp.path().join("base");
    let base_v = train(&cache, &common::root().join("data/demo"), &base, &[]);
    let new_data = tmp.path().join("domain-only");
    common::write_demo_variant(&new_data, &|v| {
        serde_json::json!({
            "words": v["words"],
            "domain": common::domain_of(v["intent"].as_str().unwrap()),
        })
    });
    let added = tmp.path().join("added");
    let added_v = train(
        &cache,
        &new_data,
        &added,
        &["--init-from", base.to_str().unwrap()],
    );
    let (a, b) = (common::run_tensors(&base), common::run_tensors(&added));
    common::assert_tensors(&a, &b, "intent.", true);
    common::assert_tensors(&a, &b, "tags.", true);
    assert!(b.keys().any(|k| k.starts_with("domain.")), "{:?}", b.keys());
    // The old tasks score exactly as before.
    let demo = common::root().join("data/demo");
    let before = eval(&cache, &base, &demo);
    assert_eq!(before, base_v["test"]);
    assert_eq!(eval(&cache, &added, &demo), before);
    // The new task is trained.
    assert!(
        added_v["test"]["tasks"]["domain"]["accuracy"]
            .as_f64()
            .unwrap()
            > 0.85,
        "{added_v}"
    );
    let all = eval(&cache, &added, &data);
    assert_eq!(all["tasks"].as_object().unwrap().len(), 3, "{all}");
    assert_eq!(all["intent_accuracy"], before["intent_accuracy"]);
    assert_eq!(all["slot_f1"], before["slot_f1"]);
    // The merged export serves all tasks, as the run does.
    let merged2 = tmp.path().join("export2").join("model.onnx");
    export(&cache, &added, &merged2);
    same_answers(&cache, &added, &merged2, &input, &["intent", "domain"]);
}
