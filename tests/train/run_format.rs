//! The run folder: format 1 runs (intent and slot heads, written before named tasks) still load as
//! the tasks `intent` and `tags`; sizes read from `config.json` are checked before anything is
//! allocated; damaged weights are refused with the file named.

use std::path::Path;

use candle_core::Device;
use edgetune::data::TaskKind;
use edgetune::model::{
    HeadConfig, ModelConfig, SentenceHeadConfig, TaskConfig, TaskModel, TokenHeadConfig,
};
use edgetune::run::{load_run, read_config, weights_bytes, CONFIG_FILE, WEIGHTS_FILE};

fn strings(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// The format-2 model equivalent to a format-1 run with these heads.
fn equivalent(hidden: usize, states: usize, slot_states: bool) -> TaskModel {
    let config = ModelConfig {
        backbone_width: hidden,
        mixed_states: states,
        tasks: vec![
            TaskConfig {
                name: "intent".into(),
                kind: TaskKind::Sentence,
                labels: strings("off on play"),
                head: HeadConfig::Sentence(SentenceHeadConfig {
                    mlp_width: 12,
                    dropout: 0.1,
                    reads: slot_states.then(|| "tags".to_string()),
                }),
            },
            TaskConfig {
                name: "tags".into(),
                kind: TaskKind::Spans,
                labels: strings("O B-room I-room"),
                head: HeadConfig::Token(TokenHeadConfig {
                    gru_units: 5,
                    dropout: 0.1,
                }),
            },
        ],
    };
    TaskModel::new(config, 11, &Device::Cpu).unwrap()
}

/// Writes a run folder as format 1 wrote it: `config.json` with `"format": 1` and `heads`
/// (`intent_head`, `slot_head`), weights named `intent.*` and `slot.*`. Returns the tensors
/// written, by their format-2 names.
fn write_format1(dir: &Path, slot_states: bool) -> Vec<(String, Vec<f32>)> {
    std::fs::create_dir_all(dir).unwrap();
    let (hidden, states) = (16, 2);
    let m = equivalent(hidden, states, slot_states);
    let bytes = weights_bytes(&m.params).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let old = match n.strip_prefix("tags.") {
                Some(rest) => format!("slot.{rest}"),
                None => n,
            };
            (old, v.shape().to_vec(), v.data().to_vec())
        })
        .collect();
    assert!(renamed
        .iter()
        .any(|(n, _, _)| n == "slot.gru.fwd.weight_ih"));
    let views: Vec<(String, safetensors::tensor::TensorView)> = renamed
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    let wbytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(dir.join(WEIGHTS_FILE), &wbytes).unwrap();
    let config = serde_json::json!({
        "format": 1,
        "edgetune_version": "0.1.0",
        "backbone": {
            "onnx": "/nonexistent/backbone.int8.onnx",
            "onnx_sha256": "00",
            "tokenizer": "/nonexistent/tokenizer.json",
            "tokenizer_sha256": "00",
            "layers": 6,
            "hidden": hidden,
            "max_tokens": 128
        },
        "features": {"states": [5, 6], "unit": "words"},
        "heads": {
            "hidden": hidden,
            "states": states,
            "intents": ["off", "on", "play"],
            "tags": ["O", "B-room", "I-room"],
            "intent_head": {"hidden": 12, "dropout": 0.1, "slot_states": slot_states},
            "slot_head": {"gru_hidden": 5, "dropout": 0.1}
        },
        "weights": {"file": WEIGHTS_FILE, "sha256": edgetune::fsutil::sha256_bytes(&wbytes)},
        "training": {"epochs": 3, "seed": 13},
        "metrics": {
            "valid": {"examples": 80, "intent_accuracy": 0.95, "slot_f1": 0.9, "slot_precision": 0.9,
                      "slot_recall": 0.9, "sentence_accuracy": 0.8},
            "test": {"examples": 101, "intent_accuracy": 0.93}
        }
    });
    std::fs::write(
        dir.join(CONFIG_FILE),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    m.params
        .params
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect()
}

#[test]
fn format1_runs_load_as_intent_and_tags() {
    for slot_states in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let written = write_format1(tmp.path(), slot_states);
        let (rc, model) = load_run(tmp.path()).unwrap();
        assert_eq!(rc.format, 1);
        let names: Vec<(&str, TaskKind)> = rc
            .model
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t.kind))
            .collect();
        assert_eq!(
            names,
            vec![("intent", TaskKind::Sentence), ("tags", TaskKind::Spans)]
        );
        assert_eq!(rc.model.tasks[1].labels, strings("O B-room I-room"));
        assert_eq!(rc.model.reads(0), slot_states.then_some(1));
        assert_eq!(rc.metrics["valid"].intent_accuracy, Some(0.95));
        assert_eq!(rc.metrics["valid"].slot_f1, Some(0.9));
        assert!(rc.metrics["valid"].tasks.is_empty());
        // Every tensor as written, `slot.*` read into `tags.*`.
        let by_name = model.params.by_name();
        assert_eq!(by_name.len(), written.len());
        for (name, values) in &written {
            let got: Vec<f32> = by_name[name.as_str()]
                .var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(got == *values, "`{name}` differs");
        }
        // And it predicts.
        let b = edgetune::model::Batch {
            words: candle_core::Tensor::randn(0f32, 1.0, (1, 3, 2, 16), &Device::Cpu).unwrap(),
            mask: candle_core::Tensor::ones((1, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
            pooled: candle_core::Tensor::randn(0f32, 1.0, (1, 16), &Device::Cpu).unwrap(),
            width: 3,
        };
        let d = edgetune::model::decode_batch(&model, &b, &[3]).unwrap();
        let tasks: Vec<_> = model.config.tasks.iter().map(|t| t.info()).collect();
        let l = edgetune::model::to_labels(&tasks, &d[0], &[true, true, true]);
        assert!(l.intent().is_some() && l.tags().map(<[String]>::len) == Some(3));
    }
}

#[test]
fn format1_run_with_a_missing_slot_tensor_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    write_format1(tmp.path(), false);
    // Drop one tensor and fix the recorded hash: the error names the tensor by its stored name.
    let bytes = std::fs::read(tmp.path().join(WEIGHTS_FILE)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "slot.out.bias")
        .collect();
    let w = safetensors::serialize(kept, None).unwrap();
    std::fs::write(tmp.path().join(WEIGHTS_FILE), &w).unwrap();
    let cpath = tmp.path().join(CONFIG_FILE);
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cpath).unwrap()).unwrap();
    c["weights"]["sha256"] = edgetune::fsutil::sha256_bytes(&w).into();
    std::fs::write(&cpath, serde_json::to_vec(&c).unwrap()).unwrap();
    let e = load_run(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("slot.out.bias") && e.contains(WEIGHTS_FILE),
        "{e}"
    );
}

/// Edits `config.json` of a format-1 run with `f` and returns `read_config`'s error.
fn config_error(f: &dyn Fn(&mut serde_json::Value)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    write_format1(tmp.path(), false);
    let cpath = tmp.path().join(CONFIG_FILE);
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cpath).unwrap()).unwrap();
    f(&mut c);
    std::fs::write(&cpath, serde_json::to_vec(&c).unwrap()).unwrap();
    let e = match load_run(tmp.path()) {
        Ok(_) => panic!("a bad config loaded: {c}"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(CONFIG_FILE) || e.contains(WEIGHTS_FILE), "{e}");
    e
}

#[test]
fn bad_configs_are_refused_before_allocation() {
    let cases: Vec<(Box<dyn Fn(&mut serde_json::Value)>, &str)> = vec![
        (Box::new(|c| c["format"] = 3.into()), "run format 3"),
        (
            Box::new(|c| c["heads"]["hidden"] = 1_000_000.into()),
            "backbone_width",
        ),
        (
            Box::new(|c| c["heads"]["intent_head"]["hidden"] = 1_000_000_000.into()),
            "head width",
        ),
        (
            Box::new(|c| c["heads"]["intents"] = serde_json::json!(["a", "a"])),
            "appears twice",
        ),
        (
            Box::new(|c| c["heads"]["states"] = 3.into()),
            "hidden states",
        ),
        (
            Box::new(|c| c["heads"]["slot_head"] = serde_json::json!({})),
            "field \"heads\"",
        ),
        // Within every bound, but more weights than the file holds.
        (
            Box::new(|c| c["heads"]["slot_head"]["gru_hidden"] = 4000.into()),
            "bytes of weights",
        ),
        (
            Box::new(|c| c["weights"]["sha256"] = "ab".into()),
            "content hash",
        ),
    ];
    for (f, expected) in cases {
        let e = config_error(&*f);
        assert!(e.contains(expected), "{e:?} does not say {expected:?}");
    }
}

#[test]
fn not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let e = read_config(&tmp.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a finished edgetune run"), "{e}");
    let e = read_config(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    std::fs::write(tmp.path().join(CONFIG_FILE), "{\"format\": 2,").unwrap();
    let e = read_config(tmp.path()).unwrap_err().to_string();
    assert!(e.contains(CONFIG_FILE) && e.contains("line 1"), "{e}");
}

/// A valid format-2 `config.json` (a small intent + tags model on a 6-layer backbone), as `train`
/// writes it.
fn format2_config() -> serde_json::Value {
    use edgetune::metrics::Metrics;
    use edgetune::run::{EpochLog, TrainSettings, TrainingRecord};
    let model = equivalent(16, 2, false).config;
    let valid = Metrics {
        examples: 80,
        intent_accuracy: Some(0.95),
        ..Metrics::default()
    };
    let training = TrainingRecord {
        settings: TrainSettings {
            epochs: 3,
            hidden_states: vec![5, 6],
            ..TrainSettings::default()
        },
        best_epoch: 2,
        epochs_run: 3,
        data: Some("data/train.jsonl".into()),
        frozen: Vec::new(),
        truncated_train_examples: 0,
        history: (1..=3)
            .map(|epoch| EpochLog {
                epoch,
                loss: 1.0 / epoch as f64,
                valid: valid.clone(),
                seconds: 0.5,
            })
            .collect(),
        fleet: None,
    };
    serde_json::json!({
        "format": 2,
        "edgetune_version": "0.1.0",
        "backbone": {
            "onnx": "/nonexistent/backbone.int8.onnx", "onnx_sha256": "00",
            "tokenizer": "/nonexistent/tokenizer.json", "tokenizer_sha256": "00",
            "layers": 6, "hidden": 16, "max_tokens": 128
        },
        "features": {"states": [5, 6], "unit": "words"},
        "model": model,
        "weights": {"file": WEIGHTS_FILE, "sha256": "00"},
        "training": training,
        "metrics": {"valid": valid, "test": valid}
    })
}

/// Every size, count and rate of a run's `config.json`, at zero, huge or negative (where the
/// field can hold it), is refused by `read_config` with an error naming `config.json` and the
/// field: `"batch_size": 0` in a run used to divide by zero in training (reachable from `serve`'s
/// retrain).
#[test]
fn every_numeric_field_of_a_run_config_is_range_checked() {
    use serde_json::json;
    let huge = json!(1u64 << 40);
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("/backbone/layers", json!(0), "backbone.layers"),
        ("/backbone/layers", huge.clone(), "backbone.layers"),
        ("/backbone/layers", json!(-1), "backbone.layers"),
        ("/backbone/hidden", json!(0), "backbone.hidden"),
        ("/backbone/hidden", huge.clone(), "backbone.hidden"),
        ("/backbone/max_tokens", json!(0), "backbone.max_tokens"),
        ("/backbone/max_tokens", huge.clone(), "backbone.max_tokens"),
        ("/features/states", json!([]), "features.states"),
        ("/features/states", json!([5, 99]), "features.states"),
        ("/features/states/0", json!(-1), "features.states"),
        ("/model/backbone_width", json!(0), "backbone_width"),
        ("/model/backbone_width", huge.clone(), "backbone_width"),
        ("/model/backbone_width", json!(8), "model.backbone_width"),
        ("/model/mixed_states", json!(0), "mixed_states"),
        ("/model/mixed_states", huge.clone(), "mixed_states"),
        (
            "/model/tasks/0/head/sentence/mlp_width",
            json!(0),
            "\"intent\": head width",
        ),
        (
            "/model/tasks/0/head/sentence/mlp_width",
            huge.clone(),
            "\"intent\": head width",
        ),
        (
            "/model/tasks/0/head/sentence/dropout",
            json!(-0.5),
            "\"intent\": dropout",
        ),
        (
            "/model/tasks/0/head/sentence/dropout",
            json!(1.5),
            "\"intent\": dropout",
        ),
        (
            "/model/tasks/1/head/token/gru_units",
            json!(0),
            "\"tags\": head width",
        ),
        (
            "/model/tasks/1/head/token/gru_units",
            json!(-3),
            "model.tasks[1].head.token.gru_units",
        ),
        (
            "/model/tasks/1/head/token/dropout",
            json!(1.0),
            "\"tags\": dropout",
        ),
        ("/model/tasks/0/labels", json!([]), "\"intent\": 0 labels"),
        (
            "/weights/file",
            json!("../heads.safetensors"),
            "weights.file",
        ),
        ("/training/epochs", huge.clone(), "training.epochs"),
        ("/training/patience", json!(0), "training.patience"),
        ("/training/patience", huge.clone(), "training.patience"),
        ("/training/batch_size", json!(0), "training.batch_size"),
        ("/training/batch_size", huge.clone(), "training.batch_size"),
        ("/training/batch_size", json!(-1), "batch_size"),
        ("/training/lr", json!(0.0), "training.lr"),
        ("/training/lr", json!(-0.1), "training.lr"),
        ("/training/lr", json!(1e300), "training.lr"),
        (
            "/training/weight_decay",
            json!(-1.0),
            "training.weight_decay",
        ),
        (
            "/training/weight_decay",
            json!(1e300),
            "training.weight_decay",
        ),
        ("/training/seed", json!(-1), "seed"),
        (
            "/training/hidden_states",
            json!([99]),
            "training.hidden_states",
        ),
        (
            "/training/hidden_states",
            json!([5, 5]),
            "training.hidden_states",
        ),
        (
            "/training/sentence_head/mlp_width",
            json!(0),
            "training.sentence_head.mlp_width",
        ),
        (
            "/training/sentence_head/mlp_width",
            huge.clone(),
            "training.sentence_head.mlp_width",
        ),
        (
            "/training/sentence_head/dropout",
            json!(1.0),
            "training.sentence_head.dropout",
        ),
        (
            "/training/token_head/gru_units",
            json!(0),
            "training.token_head.gru_units",
        ),
        (
            "/training/token_head/dropout",
            json!(-0.1),
            "training.token_head.dropout",
        ),
        (
            "/training/task_weights",
            json!({"intent": -1.0}),
            "training.task_weights.intent",
        ),
        (
            "/training/task_weights",
            json!({"intent": 1e300}),
            "training.task_weights.intent",
        ),
        ("/training/unfreeze_top", json!(7), "training.unfreeze_top"),
        (
            "/training/unfreeze_top",
            huge.clone(),
            "training.unfreeze_top",
        ),
        ("/training/layer_lr", json!(0.0), "training.layer_lr"),
        ("/training/layer_lr", json!(1e300), "training.layer_lr"),
        (
            "/training/layer_lr_decay",
            json!(0.0),
            "training.layer_lr_decay",
        ),
        (
            "/training/layer_lr_decay",
            json!(2.0),
            "training.layer_lr_decay",
        ),
        ("/training/heads_first", json!(1), "training.heads_first"),
        (
            "/training/heads_first",
            huge.clone(),
            "training.heads_first",
        ),
        ("/training/best_epoch", json!(4), "training.best_epoch"),
        ("/training/epochs_run", huge.clone(), "training.epochs_run"),
        (
            "/training/history/0/epoch",
            json!(0),
            "training.history[0].epoch",
        ),
        (
            "/training/history/0/seconds",
            json!(-1.0),
            "training.history[0].seconds",
        ),
        (
            "/training/history/1/valid/intent_accuracy",
            json!(2.0),
            "training.history[1].valid.intent_accuracy",
        ),
        (
            "/metrics/valid/intent_accuracy",
            json!(-0.1),
            "metrics.valid.intent_accuracy",
        ),
        (
            "/metrics/test/intent_accuracy",
            json!(1.5),
            "metrics.test.intent_accuracy",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join(CONFIG_FILE),
        serde_json::to_vec(&format2_config()).unwrap(),
    )
    .unwrap();
    read_config(tmp.path()).expect("the valid config loads");
    let mut missed = Vec::new();
    for (pointer, value, field) in cases {
        let mut c = format2_config();
        *c.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = value.clone();
        std::fs::write(
            tmp.path().join(CONFIG_FILE),
            serde_json::to_vec(&c).unwrap(),
        )
        .unwrap();
        match read_config(tmp.path()) {
            Ok(_) => missed.push(format!("{pointer} = {value}: loaded")),
            Err(e) => {
                let e = e.to_string();
                if !(e.contains(CONFIG_FILE) && e.contains(field)) {
                    missed.push(format!(
                        "{pointer} = {value}: {e:?} does not name {field:?}"
                    ));
                }
            }
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// A training record keeps its keys sorted at every depth (the layout of every run written so
/// far) and reads back to the same record; records of older runs that lack settings still load.
#[test]
fn the_training_record_is_written_sorted_and_reads_back() {
    let c = format2_config();
    let rc: edgetune::run::RunConfig = serde_json::from_value(c.clone()).unwrap();
    let text = serde_json::to_string_pretty(&rc).unwrap();
    let training = &text[text.find("\"training\"").unwrap()..text.find("\"metrics\": {").unwrap()];
    let keys: Vec<&str> = training
        .lines()
        .filter(|l| l.starts_with("    \"") && l.contains("\":"))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert!(
        keys.contains(&"batch_size") && keys.contains(&"history"),
        "{keys:?}"
    );
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["training"], c["training"]);
    let mut old = c;
    old["training"] = serde_json::json!({"data": "data/demo/train.jsonl"});
    let rc: edgetune::run::RunConfig = serde_json::from_value(old).unwrap();
    assert_eq!(
        rc.training.settings,
        edgetune::run::TrainSettings::default()
    );
    assert_eq!(rc.training.data.as_deref(), Some("data/demo/train.jsonl"));
}
