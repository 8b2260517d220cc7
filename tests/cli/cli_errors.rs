//! Bad input to the command line is a clear error naming what is wrong, before any work and
//! without ONNX Runtime: bad data (file and line), a missing run, a missing runtime library,
//! contradictory or malformed flags.

use crate::support as common;

use common::{edgetune, fails, root};

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("train.jsonl"),
        "{\"words\": [\"a\", \"b\"], \"tags\": [\"O\"], \"intent\": \"x\"}\n",
    )
    .unwrap();
    let mut c = edgetune(&cache);
    c.args(["train", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("run"));
    let err = fails(c);
    assert!(err.contains("train.jsonl:1"), "{err}");
    assert!(!tmp.path().join("run").join("config.json").exists());

    let mut c = edgetune(&cache);
    c.args(["eval", "--run"])
        .arg(tmp.path().join("nope"))
        .args(["--data", "data/demo"]);
    let err = fails(c);
    assert!(
        err.contains("nope") && err.contains("not a finished edgetune run"),
        "{err}"
    );

    let mut c = edgetune(&cache);
    c.args(["train", "--data", "data/demo", "--out"])
        .arg(tmp.path().join("r2"))
        .args(["--ort-lib", "/nonexistent/libonnxruntime.so"]);
    let err = fails(c);
    assert!(err.contains("/nonexistent/libonnxruntime.so"), "{err}");

    let mut c = edgetune(&cache);
    c.args(["train", "--data", "data/demo", "--out"])
        .arg(tmp.path().join("r3"))
        .args(["--freeze-intent", "--freeze-slot", "--init-from"])
        .arg(root());
    let err = fails(c);
    assert!(
        err.contains("nothing to train") && err.contains("eval"),
        "{err}"
    );
}

#[test]
fn malformed_flags_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let train = |extra: &[&str]| {
        let mut c = edgetune(&cache);
        c.args(["train", "--data", "data/demo", "--out"])
            .arg(&run)
            .args(extra);
        fails(c)
    };
    let err = train(&["--max-memory", "12parsecs"]);
    assert!(err.contains("unknown size unit"), "{err}");
    let err = train(&["--task-weight", "intent"]);
    assert!(
        err.contains("--task-weight intent") && err.contains("NAME=W"),
        "{err}"
    );
    let err = train(&["--task-weight", "intent=-1"]);
    assert!(err.contains("--task-weight intent=-1"), "{err}");
    let err = train(&["--tasks", "intent,bad name"]);
    assert!(err.contains("--tasks") && err.contains("bad name"), "{err}");
    // Freezing needs a run to keep the heads from.
    let err = train(&["--freeze", "intent"]);
    assert!(err.contains("--init-from"), "{err}");
    let err = train(&["--train-only", "intent"]);
    assert!(err.contains("--init-from"), "{err}");
    let err = train(&["--gru-units", "0"]);
    assert!(err.contains("--gru-units"), "{err}");
    // The aliases are the same flags.
    let err = train(&["--slot-gru", "0"]);
    assert!(err.contains("--gru-units"), "{err}");
    let err = train(&["--intent-hidden", "99999"]);
    assert!(err.contains("--mlp-width"), "{err}");
    let err = train(&["--unfreeze-top", "0"]);
    assert!(err.contains("--unfreeze-top"), "{err}");
    let err = train(&["--format", "xml"]);
    assert!(err.contains("xml"), "{err}");
    assert!(!run.join("config.json").exists());

    // --columns is for CoNLL data: the demo's JSON lines are refused, naming the file.
    let err = train(&["--columns", "word,pos"]);
    assert!(
        err.contains("train.jsonl") && err.contains("--columns"),
        "{err}"
    );
}
