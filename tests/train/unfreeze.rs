//! `--unfreeze-top N` end to end on the real backbone: the heads and the top backbone layers train
//! together.
//!
//! - through the CLI on the demo data: `train --unfreeze-top 1`, `eval --json` (same metrics as
//!   training reported), `infer --run`, a resume after a kill;
//! - export of the fine-tuned layers into the merged model: splicing a backbone's own layers back
//!   into it changes nothing; `export` with `--fp32-layers` matches `infer --run` within 1e-4 and
//!   with int8 layers agrees on the labels; a model with the original layers instead does not match.
//!
//! (Gradients of heads and layers: `top_layers.rs` on a tiny checkpoint, `top_layers_minilm.rs` on
//! MiniLM.)

#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::PathBuf;

use edgetune::backbone::raw as runtime;
use edgetune::backbone::SessionOptions;
use edgetune::hf::{BertConfig, Weights};

use common::{edgetune, fails, ok, require_setup};

fn minilm() -> PathBuf {
    require_setup();
    common::root().join(".models/minilm-hf")
}

#[test]
fn train_eval_infer_with_the_top_layer_unfrozen() {
    minilm();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let train_args = |out: &std::path::Path, n: &str| -> Vec<String> {
        [
            "train",
            "--data",
            "data/demo",
            "--unfreeze-top",
            n,
            "--threads",
            "2",
            "--epochs",
            "8",
            "--json",
            "-q",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let mut c = edgetune(&cache);
    c.args(train_args(&run, "1"));
    let v: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();

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
    // 9 intents (chance ~11%), 9 slot types.
    assert_eq!(m["examples"], 101);
    assert!(m["intent_accuracy"].as_f64().unwrap() > 0.85, "{m}");
    assert!(m["slot_f1"].as_f64().unwrap() > 0.80, "{m}");
    assert!(m["sentence_accuracy"].as_f64().unwrap() > 0.6, "{m}");
    assert_eq!(
        m, v["test"],
        "eval (fine-tuned layers rebuilt) reproduces train's test metrics"
    );

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["top_layers"]["first"], 5);
    assert_eq!(config["features"]["unit"], "tokens");
    // With unfrozen layers the default heads are twice the frozen-backbone width, and the intent
    // head reads the tags head's states.
    let task = |name: &str| {
        config["model"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no task {name}: {config}"))
            .clone()
    };
    for sentence_task in ["intent", "urgency"] {
        let t = task(sentence_task);
        assert_eq!(t["head"]["sentence"]["mlp_width"], 512, "{t}");
        assert_eq!(t["head"]["sentence"]["reads"], "tags", "{t}");
    }
    assert_eq!(task("tags")["head"]["token"]["gru_units"], 256, "{config}");

    let input = tmp.path().join("lines.txt");
    std::fs::write(&input, "turn on the lights in the kitchen\n").unwrap();
    let mut c = edgetune(&cache);
    c.args(["infer", "--run"]).arg(&run).arg(&input);
    let line: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();
    assert_eq!(line["intent"]["label"], "turn_on", "{line}");
    assert!(
        line["slots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["type"] == "room" && s["text"] == "kitchen"),
        "{line}"
    );

    // A bad checkpoint is a clear error.
    let mut c = edgetune(&cache);
    c.args(train_args(&tmp.path().join("r2"), "1"))
        .arg("--hf-weights")
        .arg(tmp.path());
    let err = fails(c);
    assert!(err.contains("--hf-weights"), "{err}");
    let mut c = edgetune(&cache);
    c.args(train_args(&tmp.path().join("r3"), "7"));
    let err = fails(c);
    assert!(err.contains("6 layers"), "{err}");
}

/// A run with unfrozen layers killed after its first checkpoint and resumed ends with the same
/// weights (heads and layers) as an uninterrupted one: the checkpoint holds the layers and their
/// AdamW moments. With `--heads-first 1` the layers are still the checkpoint's after epoch 1 and
/// differ at the end.
#[test]
fn resume_with_unfrozen_layers_matches_uninterrupted_run() {
    minilm();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let args = |out: &std::path::Path| -> Vec<String> {
        [
            "train",
            "--data",
            "data/demo",
            "--unfreeze-top",
            "1",
            "--threads",
            "1",
            "--epochs",
            "3",
            "--heads-first",
            "1",
            "--patience",
            "10",
            "-q",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let a = tmp.path().join("a");
    let mut c = edgetune(&cache);
    c.args(args(&a));
    ok(c);

    let b = tmp.path().join("b");
    let mut c = edgetune(&cache);
    c.args(args(&b));
    common::kill_after_epochs(c, &b, 1);
    let hf = Weights::load(&minilm().join("model.safetensors")).unwrap();
    let layer_tensor = |w: &Weights| w.get(LAYER5, &[384, 384]).unwrap().to_vec();
    let gen = b
        .join("checkpoint")
        .join(format!("gen-{}", common::checkpoint_epoch(&b)));
    let after_one = Weights::load(&gen.join("current.safetensors")).unwrap();
    assert!(
        layer_tensor(&after_one) == layer_tensor(&hf),
        "--heads-first 1: the layers changed during the heads-only epoch"
    );
    let mut c = edgetune(&cache);
    c.args(["train", "--threads", "1", "-q", "--resume"])
        .arg(&b);
    ok(c);
    let end = Weights::load(&b.join("heads.safetensors")).unwrap();
    assert!(
        layer_tensor(&end) != layer_tensor(&hf),
        "the layers did not train after the heads-only epoch"
    );
    // No epoch left for the layers: a clear error before any work.
    let mut c = edgetune(&cache);
    c.args([
        "train",
        "--data",
        "data/demo",
        "--unfreeze-top",
        "1",
        "--epochs",
        "2",
    ])
    .args(["--heads-first", "2", "--out"])
    .arg(tmp.path().join("c"));
    let e = fails(c);
    assert!(e.contains("--heads-first 2"), "{e}");
    let wa = std::fs::read(a.join("heads.safetensors")).unwrap();
    let wb = std::fs::read(b.join("heads.safetensors")).unwrap();
    assert!(
        wa == wb,
        "resumed weights differ from the uninterrupted run's"
    );
    let st = safetensors::SafeTensors::deserialize(&wa).unwrap();
    assert!(st.tensor("encoder.layer.5.output.dense.weight").is_ok());
}

const LAYER5: &str = "encoder.layer.5.attention.self.query.weight";

/// Encoder outputs of an in-memory model (written to `dir` first) on a few sentences.
fn encode(
    model: &edgetune::graph::proto::ModelProto,
    dir: &std::path::Path,
    outputs: &[&str],
) -> (Vec<Vec<f32>>, Vec<i64>) {
    let path = dir.join("encoder.onnx");
    edgetune::graph::save_model(&path, model).unwrap();
    let mut s = runtime::open_file(&path, &SessionOptions::default()).unwrap();
    let tok =
        runtime::load_tokenizer(&common::root().join(".models/default/tokenizer.json")).unwrap();
    let b = runtime::EncoderBatch::tokenize(
        &tok,
        &[
            "play some jazz",
            "turn on the lights in the kitchen and dim the ones in the hall",
            "hello",
        ],
        64,
    )
    .unwrap();
    let o = runtime::run_encoder(&mut s, &b, outputs).unwrap();
    (o.into_iter().map(|o| o.data).collect(), b.attention_mask)
}

/// Replacing a backbone's top layers by a graph built from the same checkpoint weights reproduces
/// the backbone (fp32: same hidden states; int8 layers: close), removes the old layers' nodes, and
/// names the new hidden states in the metadata. A layer count that does not fit is an error.
#[test]
fn splicing_a_backbones_own_layers_back_reproduces_it() {
    use edgetune::graph::hidden::hidden_state_tensors;
    use edgetune::onnx::export::{build_top_layers, splice_top_layers};
    use edgetune::onnx::quantize::{quantize_model, QuantizeOptions};
    let hf = minilm();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let w = Weights::load(&hf.join("model.safetensors")).unwrap();
    let top = build_top_layers(&cfg, &w, 4).unwrap();
    assert_eq!(top.graph.as_ref().unwrap().output.len(), 2);

    let fp32 =
        edgetune::graph::load_model(&common::root().join(".models/default/backbone.onnx")).unwrap();
    let spliced = splice_top_layers(fp32.clone(), &top, 4).unwrap();
    assert_eq!(edgetune::graph::count_layers(&spliced).unwrap(), 6);
    let before = hidden_state_tensors(&fp32).unwrap();
    let after = hidden_state_tensors(&spliced).unwrap();
    assert_eq!(
        before[..=4],
        after[..=4],
        "states up to 4 are the backbone's own"
    );
    assert!(
        after[5].starts_with("top/") && after[6] == "last_hidden_state",
        "{after:?}"
    );
    let g = spliced.graph.as_ref().unwrap();
    for n in &g.node {
        let name = n.name.as_deref().unwrap_or("");
        assert!(
            !(name.starts_with("encoder.layer.4.") || name.starts_with("encoder.layer.5.")),
            "old layer node {name} still in the graph"
        );
    }
    let old_weight = "encoder.layer.5.output.dense.weight";
    assert!(g
        .initializer
        .iter()
        .all(|t| t.name.as_deref() != Some(old_weight)));
    assert!(g
        .initializer
        .iter()
        .any(|t| t.name.as_deref() == Some(&format!("top/{old_weight}"))));
    let outs = ["last_hidden_state", "hidden_state_3", "hidden_state_5"];
    let (a, _) = encode(&fp32, tmp.path(), &outs);
    let (b, _) = encode(&spliced, tmp.path(), &outs);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let d = runtime::max_abs_diff(x, y);
        assert!(d <= 1e-5, "{}: max |diff| {d}", outs[i]);
    }

    // The int8 backbone with int8 layers 4..6 of its own checkpoint stays close to it.
    let int8 =
        edgetune::graph::load_model(&common::root().join(".models/default/backbone.int8.onnx"))
            .unwrap();
    let mut q = top.clone();
    let summary = quantize_model(&mut q, &QuantizeOptions::default()).unwrap();
    assert_eq!(summary.quantized.len(), 12, "6 weight MatMuls per layer");
    let spliced8 = splice_top_layers(int8.clone(), &q, 4).unwrap();
    let (a, mask) = encode(&int8, tmp.path(), &["last_hidden_state"]);
    let (b, _) = encode(&spliced8, tmp.path(), &["last_hidden_state"]);
    let n = mask.len() / 3;
    let pa = runtime::mean_pool(&a[0], &mask, 3, n, 384);
    let pb = runtime::mean_pool(&b[0], &mask, 3, n, 384);
    for (x, y) in pa.iter().zip(&pb) {
        let c = runtime::cosine(x, y);
        assert!(c > 0.99, "pooled cosine {c}");
    }
    assert!(runtime::max_abs_diff(&a[0], &b[0]) > 0.0);

    // Two layers do not replace layers 3..6.
    let err = splice_top_layers(fp32, &top, 3).unwrap_err().to_string();
    assert!(err.contains("do not fit"), "{err}");
}

/// `infer` output lines as JSON.
fn infer_lines(cache: &std::path::Path, args: &[&std::ffi::OsStr]) -> Vec<serde_json::Value> {
    let mut c = edgetune(cache);
    c.arg("infer")
        .args(args)
        .args(["--logits", "--threads", "1"]);
    ok(c)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The labels of an `infer` line: intent and slot spans.
fn labels(v: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    let slots: Vec<serde_json::Value> = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::json!([s["type"], s["start"], s["end"]]))
        .collect();
    (v["intent"]["label"].clone(), serde_json::json!(slots))
}

/// Largest |difference| of the intent logits of two `infer --logits` outputs (same lines).
fn max_logit_diff(a: &[serde_json::Value], b: &[serde_json::Value]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut d = 0f64;
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (
            x["intent_logits"].as_array().unwrap(),
            y["intent_logits"].as_array().unwrap(),
        );
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(y) {
            d = d.max((p.as_f64().unwrap() - q.as_f64().unwrap()).abs());
        }
    }
    d
}

/// `export` of a run with the top layer fine-tuned: with `--fp32-layers` the merged model
/// reproduces `infer --run` (labels identical, logits within 1e-4); by default the layers are int8,
/// the graph is proven with fp32 layers first, and the labels agree; a merged model built with the
/// checkpoint's original layers instead does not reproduce the run (the fine-tuned weights are in
/// the export).
#[test]
fn export_with_the_top_layer_fine_tuned() {
    use edgetune::onnx::export::{build_merged, build_top_layers, splice_top_layers, MergeSpec};
    use std::ffi::OsStr;
    let hf = minilm();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let mut c = edgetune(&cache);
    c.args([
        "train",
        "--data",
        "data/demo",
        "--unfreeze-top",
        "1",
        "--threads",
        "1",
        "--epochs",
        "8",
        "-q",
        "--out",
    ])
    .arg(&run);
    ok(c);

    let export = |out: &std::path::Path, fp32: bool| -> serde_json::Value {
        let mut c = edgetune(&cache);
        c.args(["export", "--json", "--threads", "1", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(out);
        if fp32 {
            c.arg("--fp32-layers");
        }
        let v: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();
        eprintln!("export (fp32 layers: {fp32}): {v}");
        v
    };
    let m32 = tmp.path().join("fp32").join("model.onnx");
    let m8 = tmp.path().join("int8").join("model.onnx");
    let v32 = export(&m32, true);
    let v8 = export(&m8, false);

    // Self-check figures: fp32 layers match the pipeline; int8 layers agree on the ids.
    assert_eq!(v32["layers"]["precision"], "fp32");
    assert_eq!(v32["layers"]["first"], 5);
    assert!(
        v32["check"]["max_diff_logit"].as_f64().unwrap() <= 1e-4,
        "{v32}"
    );
    assert_eq!(v32["check"]["id_mismatches"], 0, "{v32}");
    assert!(v32["check"]["slot_ids"].as_u64().unwrap() > 50, "{v32}");
    assert!(v32.get("graph_check").is_none());
    assert_eq!(v8["layers"]["precision"], "int8");
    assert_eq!(v8["layers"]["quantized_matmuls"], 6, "{v8}");
    assert!(
        v8["graph_check"]["max_diff_logit"].as_f64().unwrap() <= 1e-4,
        "{v8}"
    );
    assert_eq!(v8["graph_check"]["id_mismatches"], 0, "{v8}");
    assert!(
        v8["check"]["id_agreement"].as_f64().unwrap() >= 0.98,
        "{v8}"
    );
    // Quantized layers do change the logits a little, and the file shrinks (6 MatMuls of 1.8 M
    // weights to int8: about 5 MB).
    assert!(
        v8["check"]["max_diff_logit"].as_f64().unwrap() > 1e-4,
        "{v8}"
    );
    let (s32, s8) = (
        std::fs::metadata(&m32).unwrap().len(),
        std::fs::metadata(&m8).unwrap().len(),
    );
    assert!(s32 > s8 + 4_000_000, "fp32 {s32} bytes, int8 {s8}");

    // infer --model on the exports vs infer --run, on the demo test sentences.
    let text = std::fs::read_to_string(common::root().join("data/demo/test.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let words: Vec<&str> = v["words"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect();
            words.join(" ")
        })
        .collect();
    let input = tmp.path().join("lines.txt");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let inp = input.as_os_str();
    let by_run = infer_lines(&cache, &[OsStr::new("--run"), run.as_os_str(), inp]);
    let by_m32 = infer_lines(&cache, &[OsStr::new("--model"), m32.as_os_str(), inp]);
    let by_m8 = infer_lines(&cache, &[OsStr::new("--model"), m8.as_os_str(), inp]);
    assert_eq!(by_run.len(), lines.len());
    for (r, m) in by_run.iter().zip(&by_m32) {
        assert_eq!(labels(r), labels(m), "fp32 layers: {r} vs {m}");
    }
    let d32 = max_logit_diff(&by_run, &by_m32);
    assert!(d32 <= 1e-4, "fp32 layers: intent logits differ by {d32}");
    let same8 = by_run
        .iter()
        .zip(&by_m8)
        .filter(|(r, m)| labels(r) == labels(m))
        .count();
    let d8 = max_logit_diff(&by_run, &by_m8);
    eprintln!(
        "infer --model vs --run on {} sentences: fp32 layers max |diff intent logit| {d32:.2e}; \
         int8 layers {d8:.2e}, identical labels {same8}",
        lines.len()
    );
    assert!(
        same8 as f64 >= 0.98 * lines.len() as f64,
        "int8 layers: labels identical on only {same8} of {} sentences",
        lines.len()
    );

    // Regression: the same merge with the checkpoint's original layer 5 does not reproduce the run.
    let (rc, model) = edgetune::run::load_run(&run).unwrap();
    let t = rc.top_layers.as_ref().unwrap();
    let original = Weights::load(&hf.join("model.safetensors")).unwrap();
    let top = build_top_layers(&t.config, &original, t.first).unwrap();
    let backbone = edgetune::graph::load_model(&rc.backbone.onnx).unwrap();
    let spliced = splice_top_layers(backbone, &top, t.first).unwrap();
    let tokenizer = edgetune::tokenize::WordTokenizer::from_file(
        &rc.backbone.tokenizer,
        Some(rc.backbone.max_tokens),
    )
    .unwrap();
    let spec = MergeSpec {
        states: edgetune::run::head_states(&rc),
        tokenizer_sha256: rc.backbone.tokenizer_sha256.clone(),
        max_tokens: rc.backbone.max_tokens,
        pad_id: tokenizer.pad_id(),
    };
    let merged = build_merged(spliced, &model, &spec).unwrap();
    let orig = tmp.path().join("fp32").join("original-layers.onnx");
    edgetune::graph::save_model(&orig, &merged).unwrap();
    let by_orig = infer_lines(&cache, &[OsStr::new("--model"), orig.as_os_str(), inp]);
    let d_orig = max_logit_diff(&by_run, &by_orig);
    eprintln!(
        "original layers instead of the fine-tuned ones: max |diff intent logit| {d_orig:.2e}"
    );
    assert!(
        d_orig > 1e-2,
        "the original layers give the run's logits ({d_orig}): the export would not show whether the fine-tuned weights are in it"
    );
}
