//! `edgetune data check` on the demo data and on three broken datasets written here: per-task
//! label counts, duplicates, conflicting labels, empty and overlong lines, a one-label task
//! (refused, exit code 1) and valid labels train lacks; text and `--json`.

use crate::support as common;

use std::path::Path;
use std::process::Output;

use common::edgetune;
use serde_json::Value;

fn check(dir: &Path, json: bool) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = edgetune(&tmp.path().join("cache"));
    c.args(["data", "check"]).arg(dir);
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

fn report(dir: &Path) -> (Value, Option<i32>) {
    let o = check(dir, true);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    (v, o.status.code())
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn demo_data_is_clean_and_counted() {
    let (v, code) = report(&common::root().join("data/demo"));
    assert_eq!(code, Some(0), "{v}");
    let splits = v["splits"].as_array().unwrap();
    assert_eq!(splits.len(), 3);
    let train = &splits[0];
    assert_eq!(train["name"], "train");
    assert_eq!(train["examples"], 519);
    let intent = train["tasks"]["intent"]["labels"].as_object().unwrap();
    assert_eq!(intent.len(), 9);
    assert_eq!(
        intent.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        519
    );
    assert_eq!(train["tasks"]["tags"]["kind"], "spans");
    for s in splits {
        assert_eq!(s["duplicate_examples"], 0);
        assert_eq!(s["conflicting_texts"], 0);
    }
    assert!(v["errors"].as_array().unwrap().is_empty());
    let text = String::from_utf8(check(&common::root().join("data/demo"), false).stdout).unwrap();
    assert!(text.contains("intent (sentence, 9 labels)"), "{text}");
}

#[test]
fn duplicates_conflicts_empty_and_long_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let long = vec!["word"; 140].join(" ");
    write(
        tmp.path(),
        "train.tsv",
        &format!(
            "text\tlabel\nturn on the light\ton\nturn on the light\ton\n\nturn on the light\toff\n\
             switch it off\toff\n\n{long}\ton\n"
        ),
    );
    let (v, code) = report(tmp.path());
    assert_eq!(code, Some(0), "{v}");
    let train = &v["splits"][0];
    assert_eq!(train["duplicate_examples"], 2, "{train}");
    assert_eq!(train["conflicting_texts"], 1, "{train}");
    assert_eq!(
        train["conflicts"][0]["labels"],
        serde_json::json!(["on", "off"])
    );
    assert_eq!(train["empty_lines"], 2, "{train}");
    assert_eq!(train["long_count"], 1, "{train}");
    assert_eq!(train["long_examples"][0], serde_json::json!([8, 140]));
}

#[test]
fn a_one_label_task_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        "{\"text\": \"turn on the light\", \"intent\": \"on\", \"mood\": \"calm\"}\n\
         {\"text\": \"lights off\", \"intent\": \"off\", \"mood\": \"calm\"}\n",
    );
    let (v, code) = report(tmp.path());
    assert_eq!(code, Some(1), "{v}");
    let err = v["errors"][0].as_str().unwrap();
    assert!(
        err.contains("`mood`") && err.contains("single label"),
        "{err}"
    );
    let o = check(tmp.path(), false);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("training would refuse"), "{err}");
}

#[test]
fn valid_labels_train_lacks_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.csv",
        "sentence,label\nturn on the light,on\nlights off,off\n",
    );
    write(
        tmp.path(),
        "valid.csv",
        "sentence,label\ndim the light,dim\nlights off,off\n",
    );
    let (v, code) = report(tmp.path());
    assert_eq!(code, Some(0), "{v}");
    let w = v["warnings"][0].as_str().unwrap();
    assert!(w.contains("valid.csv") && w.contains("`dim`"), "{w}");
    // The header was found by the column name `sentence` (first column).
    assert_eq!(v["splits"][0]["tasks"]["intent"]["labels"]["on"], 1, "{v}");
}
