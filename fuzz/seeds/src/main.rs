//! Writes the seed corpora of the fuzz targets: small real inputs, made with edgetune's own writers
//! where it has them (run configs, weights, ONNX graphs) and from the demo data for the text formats.
//! Every seed is checked to be accepted by the entry point its target calls, so the fuzzer starts
//! from inputs that reach deep into each parser.
//!
//! Usage, from the repository root: `cargo run --manifest-path fuzz/seeds/Cargo.toml [CORPUS_DIR]`
//! (default `fuzz/corpus`).

#[path = "../../src/small.rs"]
mod small;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::Device;
use edgetune::backbone::layers::TopLayers;
use edgetune::data::{parse_jointbert, parse_text, Format, ReadOptions, TaskInfo, TaskKind};
use edgetune::features::{FeatureSpec, Unit};
use edgetune::graph::hidden::{META_HIDDEN_SIZE, META_HIDDEN_TENSOR, META_NUM_LAYERS};
use edgetune::graph::proto::tensor_proto::DataType;
use edgetune::graph::proto::ModelProto;
use edgetune::graph::{
    attr_float, attr_int, count_layers, encode_model, expose_hidden_states, set_metadata, tensor,
    Dim, GraphBuilder,
};
use edgetune::hf::Weights;
use edgetune::model::TaskModel;
use edgetune::nn::{Group, ParamBuilder, ParamSet};
use edgetune::onnx::merged::{
    output_names, MergedMeta, META_FORMAT, META_INTENTS, META_MAX_TOKENS, META_PAD_ID, META_STATES,
    META_TAGS, META_TASKS, META_TOKENIZER_SHA,
};
use edgetune::run::{self, BackboneRef, RunConfig, TopLayersRef, WeightsRef};

/// Demo lines taken as they are (the first of `data/demo/train.jsonl`).
const DEMO_LINES: usize = 12;

/// SNIPS-style utterances (written for these seeds): words, BIO tags, intent.
const SNIPS_LIKE: &[(&str, &str, &str)] = &[
    (
        "add step by step to the 50 clásicos playlist",
        "O B-entity_name I-entity_name I-entity_name O O B-playlist I-playlist O",
        "AddToPlaylist",
    ),
    (
        "rate this current novel a 4 out of 6",
        "O B-object_select B-object_type I-object_type O B-rating_value O O B-best_rating",
        "RateBook",
    ),
    (
        "what will the weather be in são paulo at 9 pm",
        "O O O O O O B-city I-city O B-timeRange I-timeRange",
        "GetWeather",
    ),
    (
        "book a table for 3 at a pub in 奈良",
        "O O B-restaurant_type O B-party_size_number O O B-restaurant_type O B-city",
        "BookRestaurant",
    ),
];

struct Seeds {
    root: PathBuf,
}

impl Seeds {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("corpus folder");
        fs::write(dir.join(name), bytes).expect("seed written");
    }
}

/// `(words, tags, intent)` of the first demo lines.
fn demo() -> Vec<(Vec<String>, Vec<String>, String)> {
    let text = fs::read_to_string("data/demo/train.jsonl").expect("run from the repository root");
    let mut out: Vec<(Vec<String>, Vec<String>, String)> = text
        .lines()
        .take(DEMO_LINES)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("demo line");
            let strings = |k: &str| -> Vec<String> {
                serde_json::from_value(v[k].clone()).expect("demo strings")
            };
            (strings("words"), strings("tags"), v["intent"].as_str().unwrap().to_string())
        })
        .collect();
    for (words, tags, intent) in SNIPS_LIKE {
        out.push((
            words.split(' ').map(str::to_string).collect(),
            tags.split(' ').map(str::to_string).collect(),
            intent.to_string(),
        ));
    }
    out
}

fn check_text(format: Format, text: &str, columns: Option<Vec<String>>) {
    let opts = ReadOptions {
        format: Some(format),
        columns,
        text_column: None,
    };
    let got = parse_text(Path::new("seed"), format, text, &opts);
    assert!(
        got.as_ref().is_ok_and(|e| !e.is_empty()),
        "{format} seed rejected: {got:?}"
    );
}

fn text_seeds(s: &Seeds) {
    let data = demo();
    let demo_text = fs::read_to_string("data/demo/train.jsonl").unwrap();
    let demo_lines: String = demo_text
        .lines()
        .take(DEMO_LINES)
        .map(|l| format!("{l}\n"))
        .collect();

    // JSON lines.
    let mut snips = String::new();
    for (w, t, i) in &data[DEMO_LINES..] {
        snips += &serde_json::json!({"words": w, "tags": t, "intent": i}).to_string();
        snips.push('\n');
    }
    let mut text_form = String::new();
    let mut multi = String::new();
    for (n, (w, t, i)) in data.iter().take(6).enumerate() {
        text_form += &serde_json::json!({"text": w.join(" "), "intent": i, "id": n}).to_string();
        text_form.push('\n');
        let pos: Vec<&str> = w.iter().map(|x| if x.len() > 3 { "NOUN" } else { "DET" }).collect();
        multi += &serde_json::json!({
            "text": w.join(" "), "words": w, "tags": t, "pos": pos, "intent": i,
            "sentiment": if n % 2 == 0 { "pos" } else { "neg" }, "id": format!("u{n}"),
        })
        .to_string();
        multi.push('\n');
    }
    let bom_crlf = format!("\u{feff}{}", demo_lines.replace('\n', "\r\n"));
    for (name, text) in [
        ("demo.jsonl", demo_lines.as_str()),
        ("snips_like.jsonl", &snips),
        ("text_intent.jsonl", &text_form),
        ("multi_task.jsonl", &multi),
        ("bom_crlf.jsonl", &bom_crlf),
    ] {
        check_text(Format::Jsonl, text.trim_start_matches('\u{feff}'), None);
        s.put("data_jsonl", name, text.as_bytes());
    }

    // TSV and CSV.
    let mut tsv = String::new();
    let mut tsv_header = String::from("intent\tsentiment\ttext\n");
    let mut csv = String::new();
    let mut csv_header = String::from("label,sentiment,text\r\n");
    for (n, (w, _, i)) in data.iter().enumerate() {
        let text = w.join(" ");
        tsv += &format!("{i}\t{text}\n");
        tsv_header += &format!("{i}\t{}\t{text}\twith a tab\n", ["pos", "neg"][n % 2]);
        let quoted = format!("\"{}, \"\"please\"\"\"", text);
        csv += &format!("{i},{}\n", if n % 3 == 0 { quoted } else { text.clone() });
        csv_header += &format!("{i}, {} ,\"{text}\nsecond line\"\r\n", ["pos", "neg"][n % 2]);
    }
    for (target, format, files) in [
        ("data_tsv", Format::Tsv, [("intent.tsv", &tsv), ("header.tsv", &tsv_header)]),
        ("data_csv", Format::Csv, [("intent.csv", &csv), ("header.csv", &csv_header)]),
    ] {
        for (name, text) in files {
            check_text(format, text, None);
            s.put(target, name, text.as_bytes());
        }
    }

    // CoNLL, by default columns (word ... tag) and named ones.
    let mut conll = String::from("-DOCSTART- -X- O O\n\n");
    let mut named = String::new();
    for (w, t, _) in &data {
        for (word, tag) in w.iter().zip(t) {
            conll += &format!("{word} X {tag}\n");
            let pos = if word.len() > 3 { "NN" } else { "DT" };
            named += &format!("{word}\t{pos}\t-\t{tag}\n");
        }
        conll.push('\n');
        named.push('\n');
    }
    check_text(Format::Conll, &conll, None);
    s.put("data_conll", "tags.conll", conll.as_bytes());
    let columns = "word,pos,_,tags";
    check_text(
        Format::Conll,
        &named,
        Some(columns.split(',').map(str::to_string).collect()),
    );
    s.put(
        "data_conll",
        "columns.conll",
        format!("# columns: {columns}\n{named}").as_bytes(),
    );

    // JointBERT: flags, then seq.in, seq.out and label separated by NUL.
    let seq_in: String = data.iter().map(|(w, _, _)| w.join(" ") + "\n").collect();
    let seq_out: String = data.iter().map(|(_, t, _)| t.join(" ") + " \n").collect();
    let label: String = data.iter().map(|(_, _, i)| i.clone() + "\n").collect();
    assert!(parse_jointbert(Path::new("seed"), &seq_in, Some(&seq_out), Some(&label)).is_ok());
    for (name, flags) in [("both", 3u8), ("tags_only", 1), ("intent_only", 2)] {
        let mut bytes = vec![flags];
        bytes.extend_from_slice(seq_in.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(seq_out.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(label.as_bytes());
        s.put("data_jointbert", name, &bytes);
    }

    // Input lines: limit, read buffer, repeats, then the stream.
    let mut lines = vec![0u8, 15, 0];
    for (w, _, _) in data.iter().take(4) {
        lines.extend_from_slice(w.join(" ").as_bytes());
        lines.push(b'\n');
    }
    s.put("line_reader", "texts", &lines);
    let mut odd = vec![12u8, 2, 3];
    odd.extend_from_slice(b"hello\r\nworld\n\xff\xfe ok\nthis line is longer than twelve\n\nlast");
    s.put("line_reader", "limits", &odd);
}

fn run_config(model: edgetune::model::ModelConfig, top: Option<TopLayersRef>) -> RunConfig {
    let states = match &top {
        Some(t) => vec![t.first],
        None => vec![1, 2],
    };
    RunConfig {
        format: run::RUN_FORMAT,
        edgetune_version: "0.1.0".into(),
        backbone: BackboneRef {
            onnx: ".models/default/backbone.onnx".into(),
            onnx_sha256: "ab".repeat(32),
            tokenizer: ".models/default/tokenizer.json".into(),
            tokenizer_sha256: "cd".repeat(32),
            layers: 2,
            hidden: model.backbone_width,
            max_tokens: 128,
        },
        features: FeatureSpec {
            states,
            unit: if top.is_some() { Unit::Tokens } else { Unit::Words },
        },
        top_layers: top,
        model,
        weights: WeightsRef {
            file: run::WEIGHTS_FILE.into(),
            sha256: "ef".repeat(32),
        },
        training: serde_json::json!({"epochs": 3, "lr": 0.001, "seed": 7}),
        metrics: BTreeMap::new(),
    }
}

fn run_seeds(s: &Seeds) {
    let path = Path::new("config.json");
    let frozen = run_config(small::small_model_config(), None);
    let mut v = serde_json::to_value(&frozen).unwrap();
    v["metrics"] = serde_json::json!({"valid": {"examples": 80, "intent_accuracy": 0.9,
        "slot_f1": 0.8, "tasks": {}}});
    let frozen = serde_json::to_vec_pretty(&v).unwrap();
    run::parse_config(&frozen, path).expect("frozen seed");
    s.put("run_config", "format2_frozen.json", &frozen);

    let top = run_config(
        small::small_model_config(),
        Some(TopLayersRef {
            first: 1,
            head_states: vec![1, 2],
            config: small::small_bert_config(),
            hf_weights: ".models/minilm-hf/model.safetensors".into(),
        }),
    );
    let top = serde_json::to_vec_pretty(&top).unwrap();
    run::parse_config(&top, path).expect("top-layers seed");
    s.put("run_config", "format2_top_layers.json", &top);

    let format1 = serde_json::json!({
        "format": 1,
        "edgetune_version": "0.0.9",
        "backbone": {"onnx": "backbone.onnx", "onnx_sha256": "00", "tokenizer": "tokenizer.json",
            "tokenizer_sha256": "11", "layers": 6, "hidden": 8, "max_tokens": 64},
        "features": {"states": [3, 6], "unit": "words"},
        "heads": {"hidden": 8, "states": 2, "intents": ["off", "on"], "tags": ["O", "B-room", "I-room"],
            "intent_head": {"hidden": 4, "dropout": 0.1, "slot_states": true},
            "slot_head": {"gru_hidden": 3, "dropout": 0.25}},
        "weights": {"file": "heads.safetensors", "sha256": "22"},
        "training": {},
        "metrics": {}
    });
    let format1 = serde_json::to_vec(&format1).unwrap();
    run::parse_config(&format1, path).expect("format-1 seed");
    s.put("run_config", "format1.json", &format1);

    // The small model's weights, as training writes them.
    let model = TaskModel::new(small::small_model_config(), 1, &Device::Cpu).unwrap();
    let bytes = run::weights_bytes(&model.params).unwrap();
    run::load_weights(&bytes, &model.params, path).expect("weights seed");
    s.put("run_weights", "heads.safetensors", &bytes);
}

/// A safetensors file of `(name, dtype, shape)` with deterministic values.
fn safetensors_of(tensors: &[(String, safetensors::Dtype, Vec<usize>)]) -> Vec<u8> {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, dtype, shape)| {
            let n: usize = shape.iter().product();
            let vals = (0..n).map(|i| (i as f32 * 0.37).sin());
            match dtype {
                safetensors::Dtype::F32 => vals.flat_map(f32::to_le_bytes).collect(),
                safetensors::Dtype::F16 => vals
                    .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
                safetensors::Dtype::BF16 => vals
                    .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
                safetensors::Dtype::I64 => (0..n as i64).flat_map(i64::to_le_bytes).collect(),
                other => panic!("no seed values for {other:?}"),
            }
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, dtype, shape), bytes)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    let meta = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    safetensors::serialize(views, meta).unwrap()
}

fn hf_seeds(s: &Seeds) {
    use safetensors::Dtype::{BF16, F16, F32, I64};
    let cfg = small::small_bert_config();
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let mut t: Vec<(String, safetensors::Dtype, Vec<usize>)> = vec![
        ("bert.embeddings.word_embeddings.weight".into(), F16, vec![cfg.vocab_size, h]),
        ("bert.embeddings.LayerNorm.gamma".into(), BF16, vec![h]),
        ("bert.embeddings.LayerNorm.beta".into(), F32, vec![h]),
        ("bert.embeddings.position_ids".into(), I64, vec![1, cfg.max_position_embeddings]),
    ];
    let p = "bert.encoder.layer.1";
    for (name, shape) in [
        ("attention.self.query", vec![h, h]),
        ("attention.self.key", vec![h, h]),
        ("attention.self.value", vec![h, h]),
        ("attention.output.dense", vec![h, h]),
        ("intermediate.dense", vec![i, h]),
        ("output.dense", vec![h, i]),
    ] {
        t.push((format!("{p}.{name}.weight"), F32, shape.clone()));
        t.push((format!("{p}.{name}.bias"), F32, vec![shape[0]]));
    }
    for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
        t.push((format!("{p}.{ln}.weight"), F32, vec![h]));
        t.push((format!("{p}.{ln}.bias"), F32, vec![h]));
    }
    let bytes = safetensors_of(&t);
    let w = Weights::from_bytes(&bytes, Path::new("seed")).expect("hf seed");
    let mut set = ParamSet::default();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut vb = ParamBuilder::new(&mut set, &mut rng, Group::Layer(0), &Device::Cpu).with_source(&w);
    TopLayers::load(&mut vb, &cfg, 1).expect("hf seed has layer 1");
    s.put("hf_weights", "model.safetensors", &bytes);
}

/// A small post-LN encoder in ONNX: embeddings Gather + LayerNormalization, then per layer a MatMul
/// block and a FFN block, each closed by a LayerNormalization (2L + 1 in all).
fn encoder(layers: usize, with_metadata: bool) -> ModelProto {
    let h = 4i64;
    let mut b = GraphBuilder::new("encoder");
    let dims = [Dim::param("batch"), Dim::param("sequence")];
    b.input("input_ids", DataType::Int64, &dims);
    b.input("attention_mask", DataType::Int64, &dims);
    let vals = |n: usize| -> Vec<f32> { (0..n).map(|i| (i as f32 * 0.1).cos()).collect() };
    let emb = b.initializer_f32("embeddings.word_embeddings.weight", &[16, h], &vals(64));
    let x = b.op("Gather", &[&emb, "input_ids"], vec![attr_int("axis", 0)]);
    let ln = |b: &mut GraphBuilder, x: &str, name: &str| -> String {
        let scale = b.initializer_f32(&format!("{name}.weight"), &[h], &[1.0; 4]);
        // One bias as `float_data` (the other form ONNX stores floats in).
        let mut bias = tensor(&format!("{name}.bias"), &[h], &[0.0f32; 4]);
        bias.raw_data = None;
        bias.float_data = vec![0.0; 4];
        let bias = b.initializer(bias);
        b.op_as(
            "LayerNormalization",
            &[x, &scale, &bias],
            vec![attr_int("axis", -1), attr_float("epsilon", 1e-12)],
            name,
        )
    };
    let mut states = vec![ln(&mut b, &x, "embeddings.LayerNorm")];
    for l in 0..layers {
        let prev = states.last().unwrap().clone();
        let a = b.linear(&prev, &vals(16), 4, 4, Some(&[0.0; 4]), &format!("layer{l}.attn"));
        let a = b.op("Add", &[&a, &prev], vec![]);
        let a = ln(&mut b, &a, &format!("layer{l}.attn.LayerNorm"));
        let f = b.linear(&a, &vals(16), 4, 4, None, &format!("layer{l}.ffn"));
        let f = b.op("Add", &[&f, &a], vec![]);
        states.push(ln(&mut b, &f, &format!("layer{l}.out.LayerNorm")));
    }
    let shape = b.initializer_i64("shape", &[3], &[0, 0, h]);
    let last = b.op("Reshape", &[states.last().unwrap(), &shape], vec![]);
    b.output_as(
        &last,
        "last_hidden_state",
        DataType::Float,
        &[Dim::param("batch"), Dim::param("sequence"), Dim::Fixed(h)],
    );
    let mut model = b.into_model("edgetune-fuzz-seeds");
    if with_metadata {
        set_metadata(&mut model, META_NUM_LAYERS, &layers.to_string());
        set_metadata(&mut model, META_HIDDEN_SIZE, &h.to_string());
        for (k, t) in states.iter().enumerate() {
            set_metadata(&mut model, &format!("{META_HIDDEN_TENSOR}{k}"), t);
        }
    }
    model
}

/// A merged model's interface (inputs, the tasks' outputs, metadata) around a stand-in graph.
fn merged(format: u32) -> ModelProto {
    let tasks = vec![
        TaskInfo {
            name: "intent".into(),
            kind: TaskKind::Sentence,
            labels: vec!["turn_off".into(), "turn_on".into()],
        },
        TaskInfo {
            name: "tags".into(),
            kind: TaskKind::Spans,
            labels: vec!["O".into(), "B-room".into(), "I-room".into()],
        },
    ];
    let mut b = GraphBuilder::new("merged");
    let (batch, seq, words) = (Dim::param("batch"), Dim::param("sequence"), Dim::param("words"));
    b.input("input_ids", DataType::Int64, &[batch.clone(), seq.clone()]);
    b.input("attention_mask", DataType::Int64, &[batch.clone(), seq.clone()]);
    b.input("word_pool", DataType::Float, &[batch.clone(), words.clone(), seq.clone()]);
    b.input("word_mask", DataType::Float, &[batch.clone(), words.clone()]);
    for t in &tasks {
        let (logits, probs, ids) = output_names(t, format);
        let n = Dim::Fixed(t.labels.len() as i64);
        let dims = if t.kind.is_token() {
            vec![batch.clone(), words.clone(), n]
        } else {
            vec![batch.clone(), n]
        };
        let l = b.op("Identity", &["word_mask"], vec![]);
        b.output_as(&l, &logits, DataType::Float, &dims);
        let p = b.op("Softmax", &[&logits], vec![attr_int("axis", -1)]);
        b.output_as(&p, &probs, DataType::Float, &dims);
        let i = b.op("ArgMax", &[&logits], vec![attr_int("axis", -1), attr_int("keepdims", 0)]);
        b.output_as(&i, &ids, DataType::Int64, &dims[..dims.len() - 1]);
    }
    let mut model = b.into_model("edgetune");
    set_metadata(&mut model, META_FORMAT, &format.to_string());
    if format == 2 {
        set_metadata(&mut model, META_TASKS, &serde_json::to_string(&tasks).unwrap());
    }
    set_metadata(&mut model, META_INTENTS, &serde_json::to_string(&tasks[0].labels).unwrap());
    set_metadata(&mut model, META_TAGS, &serde_json::to_string(&tasks[1].labels).unwrap());
    set_metadata(&mut model, META_TOKENIZER_SHA, &"0f".repeat(32));
    set_metadata(&mut model, META_MAX_TOKENS, "128");
    set_metadata(&mut model, META_STATES, "[3,6]");
    if format == 2 {
        set_metadata(&mut model, META_PAD_ID, "0");
    }
    model
}

fn onnx_seeds(s: &Seeds) {
    for (name, layers, meta) in [("edgetune_l2.onnx", 2, true), ("foreign_l1.onnx", 1, false)] {
        let model = encoder(layers, meta);
        assert_eq!(count_layers(&model).unwrap(), layers);
        expose_hidden_states(&mut model.clone(), &[0, layers]).expect("seed exposes states");
        s.put("onnx_model", name, &encode_model(&model));
    }
    for format in [1, 2] {
        let model = merged(format);
        MergedMeta::read(&model, Path::new("seed")).expect("merged seed");
        s.put("merged_meta", &format!("format{format}.onnx"), &encode_model(&model));
    }
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fuzz/corpus"));
    let s = Seeds { root };
    text_seeds(&s);
    run_seeds(&s);
    hf_seeds(&s);
    onnx_seeds(&s);
    println!("seeds written to {}", s.root.display());
}
