//! `edgetune actions check`: an actions file against a run's labels (its config.json only: no
//! ONNX Runtime, no model files), with every problem named by rule and field.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A run folder whose config.json describes the demo data's tasks (what `train --data data/demo`
/// writes; weights are not needed to read the labels).
fn demo_run(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let config = serde_json::json!({
        "format": 2,
        "edgetune_version": "0.1.0",
        "backbone": {
            "onnx": "backbone.int8.onnx", "onnx_sha256": "0",
            "tokenizer": "tokenizer.json", "tokenizer_sha256": "0",
            "layers": 6, "hidden": 384, "max_tokens": 128
        },
        "features": {"states": [3, 4, 5, 6], "unit": "words"},
        "model": {
            "backbone_width": 384, "mixed_states": 4,
            "tasks": [
                {"name": "intent", "kind": "sentence",
                 "labels": ["get_weather", "lock_door", "play_music", "set_brightness", "set_temperature",
                            "set_timer", "turn_off", "turn_on", "unlock_door"],
                 "head": {"sentence": {"mlp_width": 256, "dropout": 0.1}}},
                {"name": "tags", "kind": "spans",
                 "labels": ["O", "B-artist", "B-city", "B-device", "B-duration", "B-genre", "B-room", "B-time",
                            "B-unit", "B-value", "I-artist", "I-city", "I-device", "I-duration", "I-genre",
                            "I-room", "I-time", "I-unit", "I-value"],
                 "head": {"token": {"gru_units": 128, "dropout": 0.1}}}
            ]
        },
        "weights": {"file": "heads.safetensors", "sha256": "0"},
        "training": {"data": "data/demo/train.jsonl"},
        "metrics": {}
    });
    std::fs::write(
        run.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    run
}

fn check(file: &Path, run: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgetune"))
        .args(["actions", "check"])
        .arg(file)
        .arg("--run")
        .arg(run)
        .current_dir(root())
        .output()
        .expect("edgetune starts")
}

#[test]
fn the_example_file_fits_the_demo_model() {
    let dir = tempfile::tempdir().unwrap();
    let run = demo_run(dir.path());
    let out = check(&root().join("examples/actions.toml"), &run);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("7 rules, valid for the model"), "{stdout}");
    assert!(
        stdout.contains(
            "rule 3 \"dimmer\": when intent = set_brightness (p >= 0.6): pwm pwmchip0/pwm0"
        ),
        "{stdout}"
    );
}

#[test]
fn label_and_slot_type_errors_name_the_rule_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let run = demo_run(dir.path());
    let file = dir.path().join("actions.toml");
    std::fs::write(
        &file,
        r#"
[[rule]]
name = "on"
intent = "turn_onn"
slots = { place = "kitchen" }
gpio = { chip = "gpiochip0", line = 17, value = "high" }

[[rule]]
name = "mood"
when = { sentiment = "happy" }
gpio = { chip = "gpiochip0", line = 18, value = "high" }
"#,
    )
    .unwrap();
    let out = check(&file, &run);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rule 1 \"on\": field \"intent\": unknown label \"turn_onn\" for task \"intent\" (known: get_weather,"),
        "{err}"
    );
    assert!(
        err.contains(
            "rule 1 \"on\": field \"slots.place\": unknown span type \"place\" for task \"tags\""
        ),
        "{err}"
    );
    assert!(
        err.contains("rule 2 \"mood\": field \"when.sentiment\": the model has no sentence-level task \"sentiment\""),
        "{err}"
    );
}

#[test]
fn value_errors_come_with_their_rule_and_field_and_a_missing_run_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = demo_run(dir.path());
    let file = dir.path().join("actions.toml");
    std::fs::write(
        &file,
        "[[rule]]\nname = \"dim\"\nintent = \"set_brightness\"\n\
         pwm = { chip = 0, channel = 0, period_ns = 1000000, min = 80, max = 20 }\n",
    )
    .unwrap();
    let out = check(&file, &run);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rule 1 \"dim\": field \"pwm.max\": must be greater than \"pwm.min\" (80)"),
        "{err}"
    );

    let out = check(&file, &dir.path().join("nothing"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing: not a finished edgetune run"),
        "{err}"
    );
}
