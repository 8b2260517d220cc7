//! Multilingual shapes end to end in ONNX Runtime, on tiny checkpoints with XLM-R's 250,002-piece
//! SentencePiece (Unigram) vocabulary that the test writes (`tiny_checkpoints`): XLM-R
//! (RoBERTa positions, weights under `roberta.`) and multilingual BERT (absolute positions). Each
//! is imported (verified against candle-transformers' XLMRobertaModel / BertModel), quantized
//! (int8 weights and embedding tables: the bytes are printed), trained on a sentence task and a
//! span task whose words include ones SentencePiece starts with a lone `▁`, exported (self-check
//! against training), and the merged model run in Rust and in Python's onnxruntime on the same
//! inputs (ids equal, logits within 1e-4); `infer --run` and `infer --model` agree.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::tiny_checkpoints;

use std::path::Path;
use std::process::Command;

use edgetune::backbone::{open_session, SessionOptions, SessionSource};
use edgetune::onnx::merged::{run_merged, MergedInputs, TaskArrays};
use edgetune::tokenize::{Tokenized, WordTokenizer};
use tiny_checkpoints::Shape;

fn edgetune(cache: &Path, args: &[&str]) -> String {
    let mut c = common::edgetune(cache);
    c.args(args);
    common::ok(c)
}

const LINES: &[&str] = &[
    "weather in Kraków tomorrow",
    "play music by München jazz",
    "turn on the lights in küche",
    "weather in Zürich tomorrow",
    "turn on the lights in kuchni",
    "play music by miles davis",
    "weather in Wrocław tomorrow please",
];

fn end_to_end(shape: Shape) {
    common::require_setup();
    common::require_python_onnxruntime();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let hf = tmp.path().join("hf");
    let v =
        tiny_checkpoints::write_checkpoint(&hf, shape, 2, tiny_checkpoints::MULTILINGUAL_VOCAB, 29);
    assert_eq!(v, 250_002);
    let model = tmp.path().join("model");
    let out = edgetune(&cache, &["import", &s(&hf), "--out", &s(&model)]);
    assert!(out.contains("verified vs candle-transformers"), "{out}");
    let q = edgetune(&cache, &["quantize", &s(&model), "--report"]);
    eprintln!("{shape:?}: {q}");
    let fp32 = std::fs::metadata(model.join("backbone.onnx"))
        .unwrap()
        .len();
    let int8 = std::fs::metadata(model.join("backbone.int8.onnx"))
        .unwrap()
        .len();
    eprintln!("{shape:?}: backbone fp32 {fp32} bytes, int8 {int8} bytes (250,002 x 32 table)");
    assert!(int8 * 3 < fp32, "int8 {int8} vs fp32 {fp32}");

    let data = tmp.path().join("data");
    tiny_checkpoints::write_dataset(&data, 80, 2);
    let run = tmp.path().join("run");
    let m = edgetune(
        &cache,
        &[
            "train",
            "--data",
            &s(&data),
            "--out",
            &s(&run),
            "--backbone",
            &s(&model),
            "--epochs",
            "8",
            "-q",
            "--json",
        ],
    );
    let m: serde_json::Value = serde_json::from_str(m.trim()).unwrap();
    eprintln!("{shape:?} test metrics: {}", m["test"]);
    let merged = tmp.path().join("deploy").join("model.onnx");
    let e = edgetune(
        &cache,
        &["export", "--run", &s(&run), "--out", &s(&merged), "--json"],
    );
    eprintln!("{shape:?} export: {}", e.trim());

    let input = tmp.path().join("lines.txt");
    std::fs::write(&input, LINES.join("\n") + "\n").unwrap();
    let by_run = edgetune(&cache, &["infer", "--run", &s(&run), &s(&input)]);
    let by_model = edgetune(&cache, &["infer", "--model", &s(&merged), &s(&input)]);
    // Labels and spans equal; probabilities within 1e-4.
    let split = |out: &str| -> (Vec<serde_json::Value>, Vec<f64>) {
        let mut probs = Vec::new();
        let labels = out
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                probs.push(v["intent"]["prob"].as_f64().unwrap());
                for span in v["slots"].as_array_mut().unwrap() {
                    probs.push(span["prob"].as_f64().unwrap());
                    span.as_object_mut().unwrap().remove("prob");
                }
                serde_json::json!([v["intent"]["label"], v["slots"]])
            })
            .collect();
        (labels, probs)
    };
    let ((la, pa), (lb, pb)) = (split(&by_run), split(&by_model));
    assert_eq!(la, lb, "infer --run vs --model");
    assert_eq!(pa.len(), pb.len());
    assert!(
        pa.iter().zip(&pb).all(|(a, b)| (a - b).abs() <= 1e-4),
        "{pa:?} vs {pb:?}"
    );
    python_parity(&merged, &run, tmp.path());
}

/// The merged model in Rust and in Python on one batch of [`LINES`]: the same ids, logits within
/// 1e-4 (the int8 backbone quantizes activations per batch: both sides see the same batch).
fn python_parity(merged: &Path, run: &Path, tmp: &Path) {
    edgetune::backbone::init_runtime(None).unwrap();
    let tok = WordTokenizer::from_file(&merged.with_file_name("tokenizer.json"), None).unwrap();
    let toks: Vec<Tokenized> = LINES
        .iter()
        .map(|l| tok.encode_text(l, &|| "t".into()).unwrap())
        .collect();
    // Words SentencePiece starts with a lone `▁` keep all their pieces.
    assert_eq!(
        toks[0].word_tokens[2].1 - toks[0].word_tokens[2].0,
        3,
        "▁ Kra ków"
    );
    let refs: Vec<&Tokenized> = toks.iter().collect();
    let x = MergedInputs::new(&refs, tok.pad_id());
    let rc = edgetune::run::read_config(run).unwrap();
    let tasks: Vec<_> = rc.model.tasks.iter().map(|t| t.info()).collect();
    let mut session = open_session(
        SessionSource::File(merged),
        &SessionOptions::with_threads(1),
    )
    .unwrap();
    let rust = run_merged(&mut session, &x, &tasks, 2).unwrap();
    let spec = |shape: &[usize], dtype: &str, data: serde_json::Value| serde_json::json!({"shape": shape, "dtype": dtype, "data": data});
    let inputs = serde_json::json!({
        "input_ids": spec(x.input_ids.shape(), "int64", serde_json::json!(x.input_ids.iter().collect::<Vec<_>>())),
        "attention_mask": spec(x.attention_mask.shape(), "int64", serde_json::json!(x.attention_mask.iter().collect::<Vec<_>>())),
        "token_type_ids": spec(x.token_type_ids.shape(), "int64", serde_json::json!(x.token_type_ids.iter().collect::<Vec<_>>())),
        "word_pool": spec(x.word_pool.shape(), "float32", serde_json::json!(x.word_pool.iter().collect::<Vec<_>>())),
        "word_mask": spec(x.word_mask.shape(), "float32", serde_json::json!(x.word_mask.iter().collect::<Vec<_>>())),
    });
    let path = tmp.join("inputs.json");
    std::fs::write(&path, inputs.to_string()).unwrap();
    let o = Command::new("python3")
        .arg(common::root().join("tests/export_parity.py"))
        .arg(merged)
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let py: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut worst = 0f64;
    for (t, arrays) in tasks.iter().zip(&rust) {
        let p = &py["tasks"][&t.name];
        let (logits, ids): (Vec<f32>, Vec<i64>) = match arrays {
            TaskArrays::Sentence { logits, ids, .. } => {
                (logits.iter().copied().collect(), ids.clone())
            }
            TaskArrays::Token { logits, ids, .. } => (
                logits.iter().copied().collect(),
                ids.iter().copied().collect(),
            ),
        };
        let flat = |v: &serde_json::Value| -> Vec<f64> {
            fn walk(v: &serde_json::Value, out: &mut Vec<f64>) {
                match v {
                    serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                    x => out.push(x.as_f64().unwrap()),
                }
            }
            let mut out = Vec::new();
            walk(v, &mut out);
            out
        };
        let py_ids: Vec<i64> = flat(&p["ids"]).iter().map(|&v| v as i64).collect();
        assert_eq!(py_ids, ids, "task {}", t.name);
        let py_logits = flat(&p["logits"]);
        assert_eq!(py_logits.len(), logits.len());
        for (a, b) in py_logits.iter().zip(&logits) {
            worst = worst.max((a - f64::from(*b)).abs());
        }
    }
    eprintln!("Rust vs Python onnxruntime: ids equal, max |logit diff| {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");
}

#[test]
fn xlm_r_shape_end_to_end() {
    end_to_end(Shape::XlmR);
}

#[test]
fn multilingual_bert_shape_end_to_end() {
    end_to_end(Shape::MultilingualBert);
}
