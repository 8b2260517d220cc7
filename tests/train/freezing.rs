//! Freezing scenarios through the command line on the real backbone: one head frozen stays
//! byte-identical; a one-task dataset trains its head and carries the other over; everything
//! frozen is refused with a clear message. (The same on cached features without ONNX Runtime:
//! `train_cached.rs`.)

#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::Path;

use common::{
    assert_tensors as assert_group, edgetune, fails, ok, require_setup, run_tensors as tensors,
};

/// `train --data DATA --init-from BASE --out OUT ARGS...`, which must succeed; returns its stderr.
fn train_from(cache: &Path, data: &Path, base: &Path, out: &Path, args: &[&str]) -> String {
    let mut c = edgetune(cache);
    c.arg("train")
        .arg("--data")
        .arg(data)
        .arg("--init-from")
        .arg(base)
        .arg("--out")
        .arg(out)
        .args(args);
    let out = c.output().expect("edgetune starts");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "command failed: {c:?}\nstderr:\n{err}"
    );
    err
}

#[test]
fn frozen_head_is_byte_identical_and_one_task_data_carries_the_other_head() {
    require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let base = tmp.path().join("base");
    let common_args = ["--threads", "1", "--epochs", "2", "-q"];
    let mut c = edgetune(&cache);
    c.args(["train", "--data", "data/demo", "--out"])
        .arg(&base)
        .args(common_args);
    ok(c);

    // The intent head frozen, the slot head trains.
    let frozen = tmp.path().join("frozen-intent");
    let demo = Path::new("data/demo");
    train_from(
        &cache,
        demo,
        &base,
        &frozen,
        &[&["--freeze-intent"][..], &common_args].concat(),
    );
    let (a, b) = (tensors(&base), tensors(&frozen));
    assert_group(&a, &b, "intent.", true);
    assert_group(&a, &b, "tags.", false);

    // Tags only (CoNLL): trains the slot head, carries the intent head over unchanged.
    let conll = tmp.path().join("conll");
    std::fs::create_dir(&conll).unwrap();
    for split in ["train", "valid"] {
        let text = std::fs::read_to_string(common::root().join(format!("data/demo/{split}.jsonl")))
            .unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for (w, t) in v["words"]
                .as_array()
                .unwrap()
                .iter()
                .zip(v["tags"].as_array().unwrap())
            {
                out.push_str(&format!(
                    "{} {}\n",
                    w.as_str().unwrap(),
                    t.as_str().unwrap()
                ));
            }
            out.push('\n');
        }
        std::fs::write(conll.join(format!("{split}.conll")), out).unwrap();
    }
    let tags_only = tmp.path().join("tags-only");
    train_from(&cache, &conll, &base, &tags_only, &common_args);
    let c2 = tensors(&tags_only);
    assert_group(&a, &c2, "intent.", true);
    assert_group(&a, &c2, "tags.", false);
    // The carried-over intent head still answers.
    let mut c = edgetune(&cache);
    c.args(["infer", "--run"])
        .arg(&tags_only)
        .stdin(std::process::Stdio::piped());
    let out = {
        let mut child = c.stdout(std::process::Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"turn off the lamp in the hall\n")
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["intent"]["label"].is_string(), "{v}");

    // Everything frozen: nothing to train.
    let mut c = edgetune(&cache);
    c.args(["train", "--data", "data/demo", "--init-from"])
        .arg(&base)
        .args(["--freeze-intent", "--freeze-slot", "--out"])
        .arg(tmp.path().join("x"));
    let err = fails(c);
    assert!(
        err.contains("nothing to train") && err.contains("eval"),
        "{err}"
    );
}

/// An intent head that reads the tags head's states (`--intent-reads-slots true`): freezing either
/// head (`--freeze tags`, `--train-only tags`) still keeps it byte-identical; a frozen tags head
/// passes the intent head no gradient, and a frozen intent head over a retraining tags head is
/// pointed out.
#[test]
fn heads_coupled_by_slot_states_freeze_either_head() {
    require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let base = tmp.path().join("base");
    let common_args = ["--threads", "1", "--epochs", "2"];
    let mut c = edgetune(&cache);
    c.args([
        "train",
        "--data",
        "data/demo",
        "-q",
        "--intent-reads-slots",
        "true",
        "--out",
    ])
    .arg(&base)
    .args(common_args);
    ok(c);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["model"]["tasks"][0]["head"]["sentence"]["reads"], "tags",
        "{config}"
    );
    let a = tensors(&base);

    let frozen_slot = tmp.path().join("frozen-slot");
    let demo = Path::new("data/demo");
    train_from(
        &cache,
        demo,
        &base,
        &frozen_slot,
        &[&["-q", "--freeze", "tags"][..], &common_args].concat(),
    );
    let b = tensors(&frozen_slot);
    assert_group(&a, &b, "tags.", true);
    assert_group(&a, &b, "intent.", false);

    let frozen_intent = tmp.path().join("frozen-intent");
    let err = train_from(
        &cache,
        demo,
        &base,
        &frozen_intent,
        &[&["--train-only", "tags"][..], &common_args].concat(),
    );
    assert!(
        err.contains("frozen intent head reads the tags head's states"),
        "no note on the coupled frozen head:\n{err}"
    );
    let b = tensors(&frozen_intent);
    assert_group(&a, &b, "intent.", true);
    assert_group(&a, &b, "tags.", false);
}
