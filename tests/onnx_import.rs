//! Import and quantization, end to end in ONNX Runtime: a tiny random BERT written by the test
//! (safetensors + config.json + WordPiece tokenizer.json), and the real MiniLM checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgetune::onnx::{self, import, quantize, runtime};
use rand::{Rng, SeedableRng};

const WORDS: &[&str] = &[
    "play", "some", "jazz", "book", "a", "table", "for", "two", "tonight", "what", "is", "the",
    "weather", "in", "paris", "add", "song", "to", "my", "playlist", "rate", "this", "novel",
    "stars", "hello", "##s", "##ing",
];

/// Writes a tiny random BERT (`layers` layers, hidden 32, 4 heads) into `dir`, optionally with
/// `bert.`-prefixed weight names.
fn write_tiny_bert(dir: &Path, layers: usize, prefixed: bool, seed: u64) {
    let (h, inter, max_pos, types) = (32usize, 64usize, 40usize, 2usize);
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    vocab.extend(WORDS.iter().map(|s| s.to_string()));
    let v = vocab.len();
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": h, "num_hidden_layers": layers, "num_attention_heads": 4, "intermediate_size": inter,
        "vocab_size": v, "max_position_embeddings": max_pos, "type_vocab_size": types, "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.1, "initializer_range": 0.02, "pad_token_id": 0,
        "position_embedding_type": "absolute"
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    let mut add = |name: &str, shape: Vec<usize>, scale: f32, offset: f32| {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| offset + scale * (rng.random::<f32>() * 2.0 - 1.0))
            .collect();
        let full = if prefixed {
            format!("bert.{name}")
        } else {
            name.to_string()
        };
        tensors.insert(full, (shape, data));
    };
    add("embeddings.word_embeddings.weight", vec![v, h], 1.0, 0.0);
    add(
        "embeddings.position_embeddings.weight",
        vec![max_pos, h],
        0.5,
        0.0,
    );
    add(
        "embeddings.token_type_embeddings.weight",
        vec![types, h],
        0.5,
        0.0,
    );
    add("embeddings.LayerNorm.weight", vec![h], 0.2, 1.0);
    add("embeddings.LayerNorm.bias", vec![h], 0.1, 0.0);
    for i in 0..layers {
        let p = format!("encoder.layer.{i}");
        for (n, o, inn) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", inter, h),
            ("output.dense", h, inter),
        ] {
            add(&format!("{p}.{n}.weight"), vec![o, inn], 0.3, 0.0);
            add(&format!("{p}.{n}.bias"), vec![o], 0.1, 0.0);
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(&format!("{p}.{n}.weight"), vec![h], 0.2, 1.0);
            add(&format!("{p}.{n}.bias"), vec![h], 0.1, 0.0);
        }
    }
    let bytes: BTreeMap<String, (Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, (s, d))| (k, (s, d.iter().flat_map(|x| x.to_le_bytes()).collect())))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, (s, d))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    let st = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), st).unwrap();

    let vocab_map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), serde_json::json!(i)))
        .collect();
    let special = |id: usize, s: &str| {
        serde_json::json!({"id": id, "special": true, "content": s, "single_word": false, "lstrip": false,
                           "rstrip": false, "normalized": false})
    };
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"), special(3, "[SEP]"), special(4, "[MASK]")],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab_map}
    });
    std::fs::write(
        dir.join("tokenizer.json"),
        serde_json::to_string(&tok).unwrap(),
    )
    .unwrap();
}

#[test]
fn tiny_bert_import_quantize_run() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let out = tmp.path().join("model");
    std::fs::create_dir_all(&hf).unwrap();
    write_tiny_bert(&hf, 2, true, 7);

    let r = import::import(&import::ImportOptions::new(&hf, &out)).unwrap();
    let v = r.verification.expect("verification ran");
    eprintln!("tiny import: {v:?}");
    assert!(
        v.max_abs_diff_hidden <= 1e-4 && v.max_abs_diff_pooled <= 1e-4,
        "{v:?}"
    );
    assert_eq!(
        r.hidden_outputs,
        vec!["hidden_state_0", "hidden_state_1", "hidden_state_2"]
    );
    for f in ["backbone.onnx", "tokenizer.json", "manifest.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let m = import::Manifest::load(&out).unwrap();
    assert_eq!(m.num_layers, 2);
    assert_eq!(m.hidden_size, 32);
    assert_eq!(
        m.files["backbone.onnx"],
        edgetune::fsutil::sha256_file(&out.join("backbone.onnx")).unwrap()
    );
    assert_eq!(
        m.source_files["model.safetensors"],
        edgetune::fsutil::sha256_file(&hf.join("model.safetensors")).unwrap()
    );
    assert_eq!(m.outputs[0], "last_hidden_state");

    // The imported graph: standard ops, hidden states by metadata, last state == last_hidden_state.
    let model = onnx::load_model(&out.join("backbone.onnx")).unwrap();
    assert_eq!(onnx::count_layers(&model).unwrap(), 2);
    let g = model.graph.as_ref().unwrap();
    let lns = g
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("LayerNormalization"))
        .count();
    assert_eq!(lns, 5, "2L+1 LayerNormalization nodes");
    let mut s = runtime::open_session(&out.join("backbone.onnx"), &Default::default()).unwrap();
    let tok = runtime::load_tokenizer(&out.join("tokenizer.json")).unwrap();
    let b = runtime::EncoderBatch::tokenize(
        &tok,
        &["play some jazz", "what is the weather in paris tonight"],
        64,
    )
    .unwrap();
    let o = runtime::run_encoder(
        &mut s,
        &b,
        &["last_hidden_state", "hidden_state_0", "hidden_state_2"],
    )
    .unwrap();
    assert_eq!(o[0].shape, vec![2, b.seq, 32]);
    assert!(o[2].data == o[0].data);
    assert!(runtime::max_abs_diff(&o[1].data, &o[0].data) > 0.1);

    // Quantize: all 12 weight MatMuls become the int8 pattern, ORT fuses it, and output stays close.
    let qr = quantize::quantize_dir(&quantize::QuantizeDirOptions {
        model_dir: out.clone(),
        out: None,
        quant: Default::default(),
        sentences: None,
        warn_cosine: quantize::DEFAULT_WARN_COSINE,
        threads: Some(1),
        measure_speed: false,
        smooth_alpha: Some(0.7),
        calibration: None,
        auto_alpha: false,
    })
    .unwrap();
    eprintln!(
        "tiny quantize: {:?} fused {} unfused {}",
        qr.fidelity, qr.fused_nodes, qr.unfused_nodes
    );
    assert_eq!(qr.summary.quantized.len(), 12);
    assert_eq!(
        qr.summary.dynamic_quantize_nodes, 8,
        "q/k/v share one DynamicQuantizeLinear per layer"
    );
    assert_eq!(qr.fused_nodes, 12, "ORT must fuse every quantized MatMul");
    assert_eq!(qr.unfused_nodes, 0);
    assert!(
        qr.fidelity.mean_cosine > 0.98 && qr.fidelity.mean_cosine <= 1.0 + 1e-6,
        "{:?}",
        qr.fidelity
    );
    let q = onnx::load_model(&out.join("backbone.int8.onnx")).unwrap();
    let qg = q.graph.as_ref().unwrap();
    assert_eq!(
        qg.node
            .iter()
            .filter(|n| n.op_type.as_deref() == Some("MatMulInteger"))
            .count(),
        12
    );
    let int8_weights = qg
        .initializer
        .iter()
        .filter(|t| t.data_type == Some(3))
        .count();
    assert_eq!(int8_weights, 24, "12 int8 weights + 12 int8 zero points");
    let m = import::Manifest::load(&out).unwrap();
    assert!(m.files.contains_key("backbone.int8.onnx"));

    // --keep-fp32 keeps exactly the matching MatMuls.
    let mut q2 = onnx::load_model(&out.join("backbone.onnx")).unwrap();
    let opts = quantize::QuantizeOptions {
        keep_fp32: vec!["layer.1.output.dense".into()],
        ..Default::default()
    };
    let s2 = quantize::quantize_model(&mut q2, &opts).unwrap();
    assert_eq!(s2.quantized.len(), 11);
    assert_eq!(s2.kept_fp32.len(), 1);
    let p2 = tmp.path().join("partial.onnx");
    onnx::save_model(&p2, &q2).unwrap();
    let mut s = runtime::open_session(&p2, &Default::default()).unwrap();
    let o2 = runtime::run_encoder(&mut s, &b, &["last_hidden_state"]).unwrap();
    assert_eq!(o2[0].shape, o[0].shape);
}

#[test]
fn tiny_bert_unprefixed_and_subset_of_hidden_states() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    write_tiny_bert(&hf, 3, false, 11);
    let mut opts = import::ImportOptions::new(&hf, tmp.path().join("m"));
    opts.hidden_states = import::parse_hidden_states("0,3").unwrap();
    let r = import::import(&opts).unwrap();
    assert_eq!(r.hidden_outputs, vec!["hidden_state_0", "hidden_state_3"]);
    let m = import::Manifest::load(&tmp.path().join("m")).unwrap();
    assert_eq!(
        m.outputs,
        vec!["last_hidden_state", "hidden_state_0", "hidden_state_3"]
    );
    // Out-of-range request fails cleanly.
    opts.hidden_states = Some(vec![4]);
    assert!(import::import(&opts).is_err());
}

#[test]
fn import_rejects_wrong_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    write_tiny_bert(&hf, 1, false, 3);
    // Claim a wider model than the weights: the error names the tensor and the file.
    let cfg = std::fs::read_to_string(hf.join("config.json"))
        .unwrap()
        .replace("\"intermediate_size\": 64", "\"intermediate_size\": 65");
    std::fs::write(hf.join("config.json"), cfg).unwrap();
    let e = import::import(&import::ImportOptions::new(&hf, tmp.path().join("m")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("intermediate.dense"),
        "{e}"
    );
    assert!(!tmp.path().join("m/backbone.onnx").exists());
}

fn minilm() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".models/minilm-hf");
    if p.join("model.safetensors").is_file() {
        Some(p)
    } else {
        eprintln!("SKIP: {} missing (run models/setup.sh)", p.display());
        None
    }
}

#[test]
fn real_minilm_import_matches_candle() {
    let Some(hf) = minilm() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let r = import::import(&import::ImportOptions::new(&hf, tmp.path())).unwrap();
    let v = r.verification.unwrap();
    eprintln!("MiniLM import: {v:?}");
    assert!(v.max_abs_diff_hidden <= 1e-4, "{v:?}");
    assert!(v.max_abs_diff_pooled <= 1e-4, "{v:?}");
    assert_eq!(r.hidden_outputs.len(), 7);
    // Our own graph and the third-party int8 export agree on the layer count.
    let model = onnx::load_model(&r.backbone).unwrap();
    assert_eq!(onnx::count_layers(&model).unwrap(), 6);
}

/// Outlier decomposition: one activation channel made 50x larger than the others (through its
/// LayerNorm weight) sets the int8 activation scale of the MatMul it feeds; splitting it off into
/// fp32 must bring the output back close to fp32, keep every int8 MatMul fused by ONNX Runtime,
/// and move the bias `Add` in front of the outlier `Add` (so ORT folds the bias into the int8 op).
#[test]
fn outlier_channels_are_multiplied_in_fp32() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    write_tiny_bert(&hf, 2, false, 5);
    let out = tmp.path().join("m");
    import::import(&import::ImportOptions::new(&hf, &out)).unwrap();
    let fp32 = out.join("backbone.onnx");
    let mut model = onnx::load_model(&fp32).unwrap();
    let ln = "encoder.layer.0.attention.output.LayerNorm.weight";
    {
        let g = model.graph.as_mut().unwrap();
        let t = g
            .initializer
            .iter_mut()
            .find(|t| t.name.as_deref() == Some(ln))
            .unwrap();
        let mut w = onnx::graph::tensor_to_f32(t).unwrap();
        w[3] *= 50.0;
        *t = onnx::graph::tensor(ln, &[w.len() as i64], &w);
    }
    onnx::save_model(&fp32, &model).unwrap();

    let tok = runtime::load_tokenizer(&out.join("tokenizer.json")).unwrap();
    let texts = [
        "play some jazz",
        "what is the weather in paris tonight",
        "book a table for two",
        "add this song to my playlist",
        "rate this novel five stars",
    ];
    let stats = quantize::activation_stats(&fp32, &tok, &texts, 0.0, Some(1)).unwrap();
    let x = "encoder.layer.0.attention.out";
    assert_eq!(
        quantize::outlier_channels(&stats.amax[x], quantize::DEFAULT_OUTLIER_RATIO),
        vec![3],
        "amax {:?}",
        stats.amax[x]
    );
    let b = runtime::EncoderBatch::tokenize(&tok, &texts, 64).unwrap();
    let run = |p: &Path| {
        let mut s = runtime::open_session(p, &Default::default()).unwrap();
        runtime::run_encoder(&mut s, &b, &["last_hidden_state"])
            .unwrap()
            .remove(0)
            .data
    };
    let reference = run(&fp32);
    let mut errors = Vec::new();
    for ratio in [0.0, quantize::DEFAULT_OUTLIER_RATIO] {
        let mut m = onnx::load_model(&fp32).unwrap();
        let s = quantize::quantize_model(
            &mut m,
            &quantize::QuantizeOptions {
                smooth: Some(stats.clone()),
                outlier_ratio: ratio,
                // Only the MatMul the outlier feeds is int8: the error below is its alone.
                keep_fp32: vec!["attention".into(), "output.dense".into(), "layer.1".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let p = tmp.path().join(format!("q{ratio}.onnx"));
        onnx::save_model(&p, &m).unwrap();
        let g = m.graph.as_ref().unwrap();
        let gathers = g
            .node
            .iter()
            .filter(|n| n.op_type.as_deref() == Some("Gather"))
            .filter(|n| n.input[0] == x)
            .count();
        if ratio > 0.0 {
            assert_eq!(s.quantized.len(), 1, "{s:?}");
            assert_eq!(s.outlier_channels, 1, "{s:?}");
            assert_eq!(gathers, 1);
            // The outlier sum comes last: it produces the name the bias Add used to produce.
            let dense = "encoder.layer.0.intermediate.dense.out";
            let producer = g
                .node
                .iter()
                .find(|n| n.output.iter().any(|o| o == dense))
                .unwrap();
            assert!(
                producer.input.iter().any(|i| i.ends_with(".outliers")),
                "{producer:?}"
            );
        } else {
            assert_eq!((s.outlier_channels, gathers), (0, 0));
        }
        let counts = quantize::fused_op_counts(&p).unwrap();
        assert_eq!(counts.get("MatMulInteger"), None, "{counts:?}");
        errors.push(runtime::max_abs_diff(&run(&p), &reference));
    }
    eprintln!(
        "max |diff| to fp32: plain int8 {}, with outlier split {}",
        errors[0], errors[1]
    );
    assert!(
        errors[1] * 3.0 < errors[0],
        "splitting the outlier channel off should cut the error: {errors:?}"
    );
}
