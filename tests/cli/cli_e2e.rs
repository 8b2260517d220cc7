//! End to end with the real ONNX Runtime, the real MiniLM and the demo data: train, eval, infer;
//! the memory budget. (Errors caught before the backbone is needed: `cli_errors.rs`.)

#![cfg(feature = "real-model")]

use crate::support as common;

use common::{edgetune, fails, ok, require_setup};

#[test]
fn train_eval_infer_on_demo_data() {
    require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let mut c = edgetune(&cache);
    c.args(["train", "--data", "data/demo", "--out"])
        .arg(&run)
        .args(["--threads", "2", "--epochs", "12", "--json", "-q"]);
    let out = ok(c);
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).expect("train --json prints one JSON object");
    assert!(v["test"]["intent_accuracy"].as_f64().unwrap() > 0.8, "{v}");

    let mut c = edgetune(&cache);
    c.args(["eval", "--run"]).arg(&run).args([
        "--data",
        "data/demo",
        "--split",
        "test",
        "--json",
        "-q",
    ]);
    let m: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();
    // 9 intents (chance ~11%) and 9 slot types: far above chance, below perfection is fine.
    assert_eq!(m["examples"], 101);
    assert!(m["intent_accuracy"].as_f64().unwrap() > 0.85, "{m}");
    assert!(m["slot_f1"].as_f64().unwrap() > 0.80, "{m}");
    assert!(m["sentence_accuracy"].as_f64().unwrap() > 0.6, "{m}");
    assert_eq!(m, v["test"], "eval reproduces train's test metrics");
    // Every task under `tasks`; the legacy keys are theirs.
    assert_eq!(
        m["tasks"]["intent"]["accuracy"], m["intent_accuracy"],
        "{m}"
    );
    assert_eq!(m["tasks"]["tags"]["span_f1"], m["slot_f1"], "{m}");
    assert!(m["all_tasks_accuracy"].as_f64().unwrap() > 0.6, "{m}");

    let mut c = edgetune(&cache);
    c.args(["eval", "--run"])
        .arg(&run)
        .args(["--data", "data/demo", "--split", "test", "-q"]);
    let table = ok(c);
    assert!(
        table.contains("set_temperature") && table.contains("precision"),
        "{table}"
    );

    let input = tmp.path().join("lines.txt");
    std::fs::write(
        &input,
        "turn on the lights in the kitchen\n\n  set the thermostat to 21 degrees\n",
    )
    .unwrap();
    let mut c = edgetune(&cache);
    c.args(["infer", "--run"]).arg(&run).arg(&input);
    let lines: Vec<serde_json::Value> = ok(c)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["intent"]["label"], "turn_on", "{}", lines[0]);
    let p = lines[0]["intent"]["prob"].as_f64().unwrap();
    assert!(p > 0.5 && p <= 1.0);
    let room = lines[0]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "room")
        .expect("a room slot");
    assert_eq!(room["text"], "kitchen");
    assert_eq!(
        (room["start"].as_u64(), room["end"].as_u64()),
        (Some(6), Some(7))
    );
    assert_eq!(
        &"turn on the lights in the kitchen"[room["char_start"].as_u64().unwrap() as usize
            ..room["char_end"].as_u64().unwrap() as usize],
        "kitchen"
    );
    assert_eq!(lines[1]["error"], "empty input");
    assert_eq!(
        lines[2]["intent"]["label"], "set_temperature",
        "{}",
        lines[2]
    );
    let value = lines[2]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "value")
        .expect("a value slot");
    assert_eq!(value["text"], "21");
    let line = "  set the thermostat to 21 degrees";
    assert_eq!(
        value["char_start"].as_u64(),
        Some(line.find("21").unwrap() as u64),
        "offsets are into the original line, leading spaces included"
    );

    // A corrupted run is an error naming the file, never a panic.
    let w = run.join("heads.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    std::fs::write(&w, bytes).unwrap();
    let mut c = edgetune(&cache);
    c.args(["infer", "--run"]).arg(&run).arg(&input);
    let err = fails(c);
    assert!(
        err.contains("heads.safetensors") && err.contains("hash"),
        "{err}"
    );
}

/// `--max-memory`: a budget that fits is reported with the chosen batch sizes; one that cannot fit
/// is a clear error before any work.
#[test]
fn max_memory_budget() {
    common::require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let mut c = common::edgetune(&cache);
    c.args([
        "train",
        "--data",
        "data/demo",
        "--dry-run",
        "--max-memory",
        "2G",
        "--out",
    ])
    .arg(&run);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("memory budget 2048 MiB") && err.contains("training batch 64"),
        "{err}"
    );

    let mut c = common::edgetune(&cache);
    c.args([
        "train",
        "--data",
        "data/demo",
        "--dry-run",
        "--max-memory",
        "20M",
        "--out",
    ])
    .arg(&run);
    let err = common::fails(c);
    assert!(err.contains("--max-memory 20 MiB is too small"), "{err}");

    assert!(!run.join("config.json").exists());
}
