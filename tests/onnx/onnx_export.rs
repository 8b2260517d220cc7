//! The merged export end to end: train a tiny run on the demo data with the CLI, export it (the
//! export checks itself, refuses to overwrite without `--force`), then compare `infer --model` with
//! `infer --run`, the library's predictions and `examples/embed.rs` with `infer --model` (to the
//! byte), both answers with the format they had before predictions were typed, the merged model in
//! Python's onnxruntime with the training pipeline (every task's ids and logits, the format-1
//! `slot_*` aliases), and check that the self-check would catch a model that disagrees.

#![cfg(feature = "real-model")]

use crate::support as common;
#[path = "../../examples/embed.rs"]
#[allow(dead_code)]
mod embed_example;

use std::path::{Path, PathBuf};
use std::process::Command;

use edgetune::backbone::{open_session, Backbone, ModelFiles, SessionOptions, SessionSource};
use edgetune::model::{argmax, TaskOutput};
use edgetune::onnx::export::{self, MergeSpec};
use edgetune::onnx::merged::MergedInputs;
use edgetune::tokenize::{Tokenized, WordTokenizer};
use edgetune::{MergedModel, Predict};

fn root() -> PathBuf {
    common::root()
}

fn edgetune(args: &[&str], cache: &Path) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_edgetune"))
        .args(args)
        .args(["--threads", "1"])
        .env("EDGETUNE_CACHE", cache)
        .current_dir(root())
        .output()
        .expect("edgetune runs");
    assert!(
        out.status.success(),
        "edgetune {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Same structure and strings, floats within `tol`; returns the largest float difference.
fn compare(a: &serde_json::Value, b: &serde_json::Value, tol: f64, path: &str) -> f64 {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) if x.is_f64() || y.is_f64() => {
            let d = (x.as_f64().unwrap() - y.as_f64().unwrap()).abs();
            assert!(d <= tol, "{path}: {x} vs {y}");
            d
        }
        (V::Object(x), V::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{path}: keys differ"
            );
            x.iter()
                .map(|(k, v)| compare(v, &y[k], tol, &format!("{path}.{k}")))
                .fold(0.0, f64::max)
        }
        (V::Array(x), V::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths differ");
            x.iter()
                .zip(y)
                .enumerate()
                .map(|(i, (p, q))| compare(p, q, tol, &format!("{path}[{i}]")))
                .fold(0.0, f64::max)
        }
        _ => {
            assert_eq!(a, b, "{path}");
            0.0
        }
    }
}

/// Checks that `out` (`infer`'s JSON lines) has the format of the answers before they were typed:
/// each line a `serde_json::Value` object printed compactly (keys in byte order: printing the
/// parsed line again gives the same text, floats aside, which serde_json's default parser may read
/// one ulp off), every float an f32 figure widened to f64 and printed as serde_json prints an f64
/// (`0.8999999761581421`, not `0.9`).
fn assert_untyped_format(out: &str, what: &str) {
    let mut n = 0;
    for (i, line) in out.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (shape, floats) = float_tokens(line);
        assert_eq!(
            float_tokens(&v.to_string()).0,
            shape,
            "{what}, line {}",
            i + 1
        );
        for f in floats {
            let x: f64 = f.parse().unwrap();
            assert_eq!(
                x,
                (x as f32) as f64,
                "{what}, line {}: {f} is not an f32",
                i + 1
            );
            assert_eq!(
                serde_json::to_string(&x).unwrap(),
                f,
                "{what}, line {}",
                i + 1
            );
        }
        n += 1;
    }
    assert!(n > 40, "{what}: {n} lines");
}

/// The JSON text `s` with every float number replaced by `F`, and those numbers.
fn float_tokens(s: &str) -> (String, Vec<String>) {
    let (mut shape, mut floats) = (String::new(), Vec::new());
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            shape.push(c);
            (in_string, escaped) = (escaped || c != '"', !escaped && c == '\\');
            continue;
        }
        if c == '-' || c.is_ascii_digit() {
            let mut token = c.to_string();
            while let Some(&d) = chars.peek().filter(|d| "+-.eE0123456789".contains(**d)) {
                token.push(d);
                chars.next();
            }
            if token.contains(['.', 'e', 'E']) {
                shape.push('F');
                floats.push(token);
            } else {
                shape += &token;
            }
            continue;
        }
        in_string = c == '"';
        shape.push(c);
    }
    (shape, floats)
}

/// Sentences of the demo test split, plus an empty line and one longer than the token limit.
fn sentences() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("data/demo/test.jsonl")).unwrap();
    let mut out: Vec<String> = text
        .lines()
        .take(40)
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
    out.push(String::new());
    // A word without tokens in the middle, and a line of only such a word.
    out.push("play \u{200b} jazz".into());
    out.push("\u{200b}".into());
    out.push(["play unbelievably loud jazz in the kitchen"; 40].join(" "));
    out
}

#[test]
fn export_matches_run_in_rust_and_python() {
    common::require_setup();
    common::require_python_onnxruntime();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let out_dir = tmp.path().join("deploy");
    let merged = out_dir.join("merged.onnx");
    let (run_s, merged_s) = (run.to_str().unwrap(), merged.to_str().unwrap());
    edgetune(
        &[
            "train",
            "--data",
            "data/demo",
            "--out",
            run_s,
            "--epochs",
            "2",
            "-q",
        ],
        &cache,
    );

    // Export: self-checked, tokenizer beside the model.
    let o = edgetune(&["export", "--run", run_s, "--out", merged_s], &cache);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("self-check passed"), "{err}");
    eprintln!("{}", err.trim());
    assert!(out_dir.join("tokenizer.json").is_file());

    // An existing model is not replaced without --force.
    let o = Command::new(env!("CARGO_BIN_EXE_edgetune"))
        .args(["export", "--run", run_s, "--out", merged_s])
        .env("EDGETUNE_CACHE", &cache)
        .current_dir(root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--force"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    edgetune(
        &["export", "--run", run_s, "--out", merged_s, "--force"],
        &cache,
    );

    // More check sentences than one batch (32): both sides of the self-check batch alike, so the
    // int8 backbone's per-batch activation scales agree and the check still passes.
    let check_file = tmp.path().join("check.txt");
    let many = sentences();
    assert!(many.len() > 32);
    std::fs::write(&check_file, many.join("\n") + "\n").unwrap();
    let merged2 = out_dir.join("merged2.onnx");
    let o = edgetune(
        &[
            "export",
            "--run",
            run_s,
            "--out",
            merged2.to_str().unwrap(),
            "--check-file",
            check_file.to_str().unwrap(),
        ],
        &cache,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("self-check passed"), "{err}");

    // --fp32-layers is for runs with fine-tuned layers: refused on this one, nothing written.
    let merged3 = out_dir.join("merged3.onnx");
    let o = Command::new(env!("CARGO_BIN_EXE_edgetune"))
        .args(["export", "--fp32-layers", "--run", run_s, "--out"])
        .arg(&merged3)
        .env("EDGETUNE_CACHE", &cache)
        .current_dir(root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--unfreeze-top"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!merged3.exists());

    // infer --model vs infer --run on the same lines: same labels and spans, numbers within 1e-4.
    let input = tmp.path().join("input.txt");
    let lines = sentences();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let run_out = String::from_utf8(
        edgetune(
            &["infer", "--run", run_s, input.to_str().unwrap(), "--logits"],
            &cache,
        )
        .stdout,
    )
    .unwrap();
    let model_out = String::from_utf8(
        edgetune(
            &[
                "infer",
                "--model",
                merged_s,
                input.to_str().unwrap(),
                "--logits",
            ],
            &cache,
        )
        .stdout,
    )
    .unwrap();
    assert_untyped_format(&run_out, "infer --run");
    assert_untyped_format(&model_out, "infer --model");
    let (a, b) = (
        json_lines(run_out.as_bytes()),
        json_lines(model_out.as_bytes()),
    );
    assert_eq!(a.len(), lines.len());
    let d = compare(
        &serde_json::Value::Array(a.clone()),
        &serde_json::Value::Array(b),
        1e-4,
        "infer",
    );
    eprintln!(
        "infer --run vs infer --model: {} lines, max |diff| {d:.2e}",
        a.len()
    );
    assert!(
        a.iter().any(|v| v["truncated"] == true),
        "the long line is truncated"
    );

    edgetune::backbone::init_runtime(None).unwrap();
    // The library answers as `infer --model` does, to the byte: the same lines in one call (infer
    // reads up to 64 lines of a file at a time and runs them in the same length-sorted batches).
    let mut library = MergedModel::open(&merged, &SessionOptions::with_threads(1)).unwrap();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let predictions = library.predict_batch(&refs).unwrap();
    assert_eq!(predictions.len(), lines.len());
    for (p, line) in predictions.iter().zip(model_out.lines()) {
        assert_eq!(serde_json::to_string(&p.json(true)).unwrap(), line);
    }
    assert!(predictions.iter().any(|p| !p.slots().is_empty()));
    // `examples/embed.rs` on the merged model: its JSON line is `infer --model`'s for that line
    // alone (a batch of one).
    let line = "turn on the lights in the living room";
    let one = tmp.path().join("one.txt");
    std::fs::write(&one, format!("{line}\n")).unwrap();
    let infer_one = edgetune(
        &["infer", "--model", merged_s, one.to_str().unwrap()],
        &cache,
    );
    let printed = embed_example::embed(merged_s, line).unwrap();
    assert_eq!(
        printed.lines().last().unwrap(),
        String::from_utf8(infer_one.stdout).unwrap().trim_end()
    );
    let answer: serde_json::Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
    let slots = answer["slots"].as_array().unwrap();
    assert!(
        !slots.is_empty() && printed.starts_with("intent: "),
        "{printed}"
    );
    for slot in slots {
        let shown = format!("slot {}: {}", slot["type"].as_str().unwrap(), slot["text"]);
        assert!(printed.contains(&shown), "{shown} in {printed}");
    }

    // The training pipeline, in process.
    let (rc, model) = edgetune::run::load_run(&run).unwrap();
    let files = ModelFiles {
        onnx: rc.backbone.onnx.clone(),
        tokenizer: rc.backbone.tokenizer.clone(),
    };
    let tokenizer = WordTokenizer::from_file(
        &out_dir.join("tokenizer.json"),
        Some(rc.backbone.max_tokens),
    )
    .unwrap();
    let toks: Vec<Tokenized> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| tokenizer.encode_text(l, &|| "t".into()).unwrap())
        .filter(|t| !t.word_tokens.is_empty())
        .collect();
    let mut states = rc.features.states.clone();
    states.push(rc.backbone.layers);
    let opts = SessionOptions::with_threads(1);
    let mut backbone = Backbone::load(&files, &states, tokenizer.pad_id(), &opts).unwrap();
    // One batch of all sentences, like the Python run below: the default int8 backbone quantizes
    // activations with one scale per batch, so both sides must see the same batch.
    let reference = edgetune::model::decode_examples(
        &mut backbone,
        &model,
        &rc.features.states,
        &toks,
        toks.len(),
    )
    .unwrap();

    // Python's onnxruntime on the merged model, fed the same inputs (one padded batch).
    let refs: Vec<&Tokenized> = toks.iter().collect();
    let x = MergedInputs::new(&refs, tokenizer.pad_id());
    let spec = |shape: &[usize], dtype: &str, data: serde_json::Value| serde_json::json!({ "shape": shape, "dtype": dtype, "data": data });
    let inputs = serde_json::json!({
        "input_ids": spec(x.input_ids.shape(), "int64", serde_json::json!(x.input_ids.iter().collect::<Vec<_>>())),
        "attention_mask": spec(x.attention_mask.shape(), "int64", serde_json::json!(x.attention_mask.iter().collect::<Vec<_>>())),
        "token_type_ids": spec(x.token_type_ids.shape(), "int64", serde_json::json!(x.token_type_ids.iter().collect::<Vec<_>>())),
        "word_pool": spec(x.word_pool.shape(), "float32", serde_json::json!(x.word_pool.iter().collect::<Vec<_>>())),
        "word_mask": spec(x.word_mask.shape(), "float32", serde_json::json!(x.word_mask.iter().collect::<Vec<_>>())),
    });
    let inputs_path = tmp.path().join("inputs.json");
    std::fs::write(&inputs_path, inputs.to_string()).unwrap();
    let o = Command::new("python3")
        .arg(root().join("tests/export_parity.py"))
        .arg(&merged)
        .arg(&inputs_path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "export_parity.py failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(py["format_version"], "2");
    let names: Vec<&str> = model.config.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        py["tasks"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        {
            let mut n = names.clone();
            n.sort();
            n
        }
    );
    // The format-1 names carry exactly the `tags` outputs.
    for alias in ["slot_logits", "slot_probs", "slot_ids"] {
        assert_eq!(py["aliases"][alias], 0.0, "{alias}: {}", py["aliases"]);
    }
    let (mut logit_diff, mut sentences, mut words) = (0f32, 0usize, 0usize);
    for (k, task) in model.config.tasks.iter().enumerate() {
        let p = &py["tasks"][&task.name];
        assert_eq!(p["labels"], serde_json::json!(task.labels), "{}", task.name);
        assert!(p["max_prob_error"].as_f64().unwrap() < 1e-5, "{p}");
        for (i, (d, kept)) in reference.iter().enumerate() {
            match d.tasks[k].as_ref().expect("every task predicts") {
                TaskOutput::Sentence { id, logits, .. } => {
                    assert_eq!(
                        p["ids"][i].as_u64().unwrap() as usize,
                        *id,
                        "sentence {i}: {}",
                        task.name
                    );
                    assert_eq!(p["predicted"][i], task.labels[*id].as_str());
                    for (j, l) in logits.iter().enumerate() {
                        logit_diff =
                            logit_diff.max((p["logits"][i][j].as_f64().unwrap() as f32 - l).abs());
                    }
                    sentences += 1;
                }
                TaskOutput::Token { probs } => {
                    for (w, (pr, k)) in probs.iter().zip(kept).enumerate() {
                        let got = p["ids"][i][w].as_u64().unwrap() as usize;
                        let want = argmax(pr).0;
                        assert!(
                            !k || got == want,
                            "sentence {i} word {w} ({}): {got} vs {want}",
                            task.name
                        );
                        words += usize::from(*k);
                    }
                }
            }
        }
    }
    eprintln!(
        "python onnxruntime vs pipeline: {} sentences, {sentences} sentence labels and {words} word labels identical, max |diff sentence logit| {logit_diff:.2e}",
        toks.len()
    );
    assert!(sentences > 0 && words > 0);
    assert!(logit_diff <= 1e-4, "sentence logits differ by {logit_diff}");

    // The self-check catches a model that disagrees: heads perturbed after the merge.
    let backbone_model = edgetune::graph::load_model(&rc.backbone.onnx).unwrap();
    let spec = MergeSpec {
        states: rc.features.states.clone(),
        tokenizer_sha256: rc.backbone.tokenizer_sha256.clone(),
        max_tokens: rc.backbone.max_tokens,
        pad_id: tokenizer.pad_id(),
    };
    let bytes = edgetune::graph::encode_model(
        &export::build_merged(backbone_model, &model, &spec).unwrap(),
    );
    let mut session =
        open_session(SessionSource::Bytes(&bytes, Path::new("<merged>")), &opts).unwrap();
    let ok = export::verify(
        &mut session,
        &mut backbone,
        &model,
        &rc.features.states,
        &toks[..4],
        tokenizer.pad_id(),
        &mut edgetune::progress::Progress::new("check", 4, "sentences", false),
    )
    .unwrap();
    assert!(ok.max_diff() <= 1e-4 && ok.id_mismatches() == 0, "{ok:?}");
    let p = model
        .params
        .params
        .iter()
        .find(|p| p.name == "tags.out.bias")
        .unwrap();
    p.var.set(&(p.var.as_tensor() + 0.01).unwrap()).unwrap();
    let bad = export::verify(
        &mut session,
        &mut backbone,
        &model,
        &rc.features.states,
        &toks[..4],
        tokenizer.pad_id(),
        &mut edgetune::progress::Progress::new("check", 4, "sentences", false),
    )
    .unwrap();
    assert!(
        bad.token().max_diff > 1e-3,
        "perturbed heads must be detected: {bad:?}"
    );
}
