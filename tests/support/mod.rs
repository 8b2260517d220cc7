//! The one test-support layer, shared by every test group (`tests/<stage>/main.rs` declares it with
//! `#[path = "../support/mod.rs"] mod support;`) and by the benchmarks (`benches/*.rs`, the same
//! way): the binary, the set-up check, a tiny BERT checkpoint written by the test, and feature-cache
//! entries written through the library's writer (so training runs without ONNX Runtime).
//!
//! - [`bench`]: the set-up of the `serve` benchmarks (a merged model of the demo run, `bench`'s
//!   latency, a process's memory);
//! - [`hostile`]: a small disk (tmpfs) for the hostile tests;
//! - [`serve`]: a demo run trained once, a service process with its sockets, JSON-line clients;
//! - [`tiny_checkpoints`]: tiny BERT / RoBERTa / XLM-R / MPNet checkpoints and tokenizers.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgetune::data::{Example, Format, Labels, Origin, Split};
use edgetune::features::{ExampleFeatures, FeatureContext, FeatureSpec, Unit};
use rand::{Rng, SeedableRng};

pub mod bench;
pub mod hostile;
pub mod serve;
pub mod tiny_checkpoints;

/// The repository root.
/// A split named `name` of `texts` (words split at whitespace), each labelled `intent` = `x`:
/// enough for the feature cache, which reads only the words.
pub fn text_split(name: &str, texts: &[&str]) -> Split {
    Split {
        name: name.into(),
        source: PathBuf::from("mem"),
        format: Format::Jsonl,
        examples: texts
            .iter()
            .enumerate()
            .map(|(i, t)| Example {
                words: t.split_whitespace().map(str::to_string).collect(),
                labels: Labels {
                    sentence: [("intent".to_string(), "x".to_string())].into(),
                    ..Labels::default()
                },
                origin: Origin {
                    file: "mem".into(),
                    line: i + 1,
                },
            })
            .collect(),
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails with set-up instructions when ONNX Runtime, the default model or the MiniLM checkpoint
/// is missing. Every test of the `real-model` feature calls it first: a missing set-up is a
/// failure, never a pass.
pub fn require_setup() {
    let r = root();
    let lib = r
        .join(".runtime")
        .join(std::env::consts::ARCH)
        .join("libonnxruntime.so");
    let model = r.join(".models").join("default");
    let hf = r.join(".models").join("minilm-hf");
    let missing: Vec<String> = [
        (lib.is_file(), lib.display().to_string()),
        (
            model.join("tokenizer.json").is_file(),
            model.join("tokenizer.json").display().to_string(),
        ),
        (
            hf.join("model.safetensors").is_file(),
            hf.join("model.safetensors").display().to_string(),
        ),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, p)| p)
    .collect();
    assert!(
        missing.is_empty(),
        "the real-model tests need ONNX Runtime and the models; missing: {}. Run ./setup.sh test",
        missing.join(", ")
    );
}

/// Fails with set-up instructions when Python's onnxruntime (with numpy) is missing.
pub fn require_python_onnxruntime() {
    let ok = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the merged-model parity test needs python3 with onnxruntime and numpy. Run ./setup.sh test"
    );
}

/// `edgetune` with an isolated feature cache.
pub fn edgetune(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgetune"));
    c.env("EDGETUNE_CACHE", cache)
        .env_remove("EDGETUNE_MODEL")
        .current_dir(root());
    c
}

/// Runs a command and asserts success, returning stdout.
pub fn ok(mut c: Command) -> String {
    let out: Output = c.output().expect("edgetune starts");
    assert!(
        out.status.success(),
        "command failed: {c:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs a command and asserts failure, returning stderr.
pub fn fails(mut c: Command) -> String {
    let out: Output = c.output().expect("edgetune starts");
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded: {c:?}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert!(
        !err.contains("panicked"),
        "a panic instead of an error: {err}"
    );
    err
}

/// Starts a `train` command, waits until its checkpoint in `run` records at least `epochs`
/// finished epochs, then kills it with SIGKILL (the run must still be unfinished then).
pub fn kill_after_epochs(mut c: Command, run: &Path, epochs: u64) {
    let mut child = c.spawn().unwrap();
    let start = std::time::Instant::now();
    loop {
        let epoch = checkpoint_epoch(run);
        if epoch >= epochs {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "training finished before it could be killed"
        );
        assert!(start.elapsed().as_secs() < 600, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// The newest epoch a run's checkpoint records (its generation folders `checkpoint/gen-N` with a
/// `state.json`), 0 when there is none.
pub fn checkpoint_epoch(run: &Path) -> u64 {
    std::fs::read_dir(run.join("checkpoint"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("state.json").is_file())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("gen-")
                .and_then(|n| n.parse::<u64>().ok())
        })
        .max()
        .unwrap_or(0)
}

/// Largest absolute element of `a - b` (candle tensors of the same shape).
pub fn tensor_max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    a.sub(b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// The tensors of a run's weights file, by name, as raw bytes.
pub fn run_tensors(run: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(run.join("heads.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect()
}

/// Asserts that every tensor of `a` named `prefix*` is byte-identical in `b` (`same`) or differs
/// (`!same`); there must be at least one.
pub fn assert_tensors(
    a: &BTreeMap<String, Vec<u8>>,
    b: &BTreeMap<String, Vec<u8>>,
    prefix: &str,
    same: bool,
) {
    let mut n = 0;
    for (name, v) in a.iter().filter(|(n, _)| n.starts_with(prefix)) {
        n += 1;
        let other = b
            .get(name)
            .unwrap_or_else(|| panic!("tensor `{name}` missing"));
        if same {
            assert!(other == v, "frozen tensor `{name}` changed");
        } else {
            assert!(other != v, "trained tensor `{name}` did not change");
        }
    }
    assert!(n > 0, "no tensors named {prefix}*");
}

/// Words of the tiny BERT's WordPiece vocabulary (after the special tokens).
pub const TINY_WORDS: &[&str] = &[
    "play", "some", "jazz", "book", "a", "table", "for", "two", "tonight", "what", "is", "the",
    "weather", "in", "paris", "add", "song", "to", "my", "playlist", "rate", "this", "novel",
    "stars", "hello", "##s", "##ing",
];

/// Writes a tiny random BERT (`layers` layers, hidden 32, 4 heads, 40 positions) into `dir` as a
/// Hugging Face checkpoint (config.json, model.safetensors, WordPiece tokenizer.json), optionally
/// with `bert.`-prefixed weight names.
pub fn write_tiny_bert(dir: &Path, layers: usize, prefixed: bool, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let (h, inter, max_pos, types) = (32usize, 64usize, 40usize, 2usize);
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    vocab.extend(TINY_WORDS.iter().map(|s| s.to_string()));
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
    write_tiny_tokenizer(&dir.join("tokenizer.json"), &vocab);
}

/// A BERT WordPiece `tokenizer.json` over `vocab` (`[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`
/// first).
pub fn write_tiny_tokenizer(path: &Path, vocab: &[String]) {
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
    std::fs::write(path, serde_json::to_string(&tok).unwrap()).unwrap();
}

/// A tiny backbone model directory (`backbone.onnx`, `tokenizer.json`, `manifest.json`) imported
/// from a 2-layer [`write_tiny_bert`] checkpoint without the ONNX Runtime self-check, under `dir`.
/// Returns `(model dir, checkpoint dir)`.
pub fn tiny_backbone(dir: &Path) -> (PathBuf, PathBuf) {
    let hf = dir.join("hf");
    let model = dir.join("model");
    write_tiny_bert(&hf, 2, false, 21);
    let mut opts = edgetune::onnx::import::ImportOptions::new(&hf, &model);
    opts.verify = false;
    edgetune::onnx::import::import(&opts).unwrap();
    (model, hf)
}

/// A feature context on the tiny backbone in `model` with the cache in `cache` (nothing loads
/// ONNX Runtime until a cache entry is missing).
pub fn tiny_context(model: &Path, cache: &Path) -> FeatureContext {
    let files = edgetune::backbone::ModelFiles::resolve(model).unwrap();
    let mut ctx = FeatureContext::new(
        files,
        Some(32),
        edgetune::backbone::SessionOptions::with_threads(1),
        cache.to_path_buf(),
    )
    .unwrap();
    ctx.progress = false;
    ctx
}

/// A fixed pseudo-random vector in [-1, 1] for `key`.
fn hashed_vector(key: &str, hidden: usize) -> Vec<f32> {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    let seed = u64::from_le_bytes(d[..8].try_into().unwrap());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..hidden)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect()
}

/// A stand-in for a backbone's hidden state `state` of `word`: a fixed pseudo-random vector of
/// the whole word plus those of its character trigrams (fastText-like), so that the word is
/// identified and words that look alike (numbers, inflections) have similar vectors.
pub fn word_vector(word: &str, state: usize, hidden: usize) -> Vec<f32> {
    let mut v = hashed_vector(&format!("{state}\u{0}{word}"), hidden);
    let chars: Vec<char> = format!("<{word}>").chars().collect();
    let grams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    let scale = 1.0 / (grams.len() as f32).sqrt();
    for g in &grams {
        for (a, b) in v
            .iter_mut()
            .zip(hashed_vector(&format!("{state}\u{1}{g}"), hidden))
        {
            *a += b * scale;
        }
    }
    v
}

/// Writes the feature-cache entry of `split` under `spec` (word units) through the library's
/// writer, with [`word_vector`] features of width `hidden`, so that
/// `FeatureContext::load_or_extract` finds it and never runs the backbone.
pub fn write_word_features(ctx: &FeatureContext, split: &Split, spec: &FeatureSpec, hidden: usize) {
    assert_eq!(spec.unit, Unit::Words);
    ctx.write_entry(split, spec, hidden, |e, t| {
        let mut f = ExampleFeatures {
            states: Vec::new(),
            pooled: vec![0f32; hidden],
        };
        for w in &e.words[..t.feature_words()] {
            for &s in &spec.states {
                f.states.extend(word_vector(w, s, hidden));
            }
            for (m, v) in f.pooled.iter_mut().zip(word_vector(w, usize::MAX, hidden)) {
                *m += v / e.words.len() as f32;
            }
        }
        f
    })
    .unwrap();
}

/// Writes the feature-cache entry of `split` under `spec` with token units (what unfrozen top
/// layers read) through the library's writer: per token the [`word_vector`] of its word (of
/// `[CLS]`/`[SEP]` for the special tokens), so that `FeatureContext::load_or_extract` finds it
/// and never runs the backbone.
pub fn write_token_features(
    ctx: &FeatureContext,
    split: &Split,
    spec: &FeatureSpec,
    hidden: usize,
) {
    assert_eq!(spec.unit, Unit::Tokens);
    ctx.write_entry(split, spec, hidden, |e, t| {
        let n = t.ids.len();
        let owner = |tok: usize| -> &str {
            match t
                .word_tokens
                .iter()
                .position(|&(s, e)| (s as usize..e as usize).contains(&tok))
            {
                Some(w) => &e.words[w],
                None if tok == 0 => "[CLS]",
                None => "[SEP]",
            }
        };
        let mut f = ExampleFeatures {
            states: Vec::new(),
            pooled: vec![0f32; hidden],
        };
        for tok in 0..n {
            for &s in &spec.states {
                f.states.extend(word_vector(owner(tok), s, hidden));
            }
            for (m, v) in f
                .pooled
                .iter_mut()
                .zip(word_vector(owner(tok), usize::MAX, hidden))
            {
                *m += v / n as f32;
            }
        }
        f
    })
    .unwrap();
}

/// The `domain` of a demo intent: a second sentence task over the demo data, learnable from the
/// words like the intent.
pub fn domain_of(intent: &str) -> &'static str {
    match intent {
        "turn_on" | "turn_off" => "power",
        "set_brightness" | "set_temperature" => "level",
        "set_timer" | "get_weather" => "info",
        "play_music" => "media",
        _ => "security",
    }
}

/// The `shape` of a word: a token task that is not BIO (per-word labels, like part of speech).
pub fn shape_of(word: &str) -> &'static str {
    if word.chars().any(|c| c.is_ascii_digit()) {
        "num"
    } else if ["the", "a", "an", "my", "some", "this"].contains(&word) {
        "det"
    } else if word.len() <= 3 {
        "short"
    } else {
        "long"
    }
}

/// Writes `data/demo`'s splits into `out` as JSON lines, each example rewritten by `f` (which
/// gets the demo's object with `words`, `tags`, `intent`; the demo's `urgency` task is left out,
/// so that a test's tasks are the two it starts from and those `f` adds).
pub fn write_demo_variant(out: &Path, f: &dyn Fn(&serde_json::Value) -> serde_json::Value) {
    std::fs::create_dir_all(out).unwrap();
    for split in ["train", "valid", "test"] {
        let text =
            std::fs::read_to_string(root().join(format!("data/demo/{split}.jsonl"))).unwrap();
        let mut s = String::new();
        for line in text.lines() {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            v.as_object_mut().unwrap().remove("urgency");
            s.push_str(&f(&v).to_string());
            s.push('\n');
        }
        std::fs::write(out.join(format!("{split}.jsonl")), s).unwrap();
    }
}

/// The demo data with the sentence task `domain` added (and `intent`, `tags` kept).
pub fn demo_with_domain(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    let d = domain_of(v["intent"].as_str().unwrap());
    v["domain"] = d.into();
    v
}

/// Checks shared by the tests of the trainable top layers, on any BERT checkpoint (the tiny one
/// written by [`write_tiny_bert`] in the fast suite, the real MiniLM with `real-model`).
pub mod layers {
    use std::path::Path;

    use candle_core::backprop::GradStore;
    use candle_core::{Device, Tensor, Var};
    use edgetune::backbone::layers::TopLayers;
    use edgetune::data::TaskKind;
    use edgetune::features::TokenRows;
    use edgetune::hf::{BertConfig, Weights};
    use edgetune::model::{
        make_token_batch, HeadConfig, ModelConfig, SentenceHeadConfig, TaskConfig, TaskModel,
        TokenHeadConfig,
    };
    use edgetune::nn::{Group, ParamBuilder, ParamSet};
    use edgetune::train::optim::{AdamW, GroupSettings};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Layers `first..L` of the checkpoint in `hf`, with their parameters.
    pub fn load(hf: &Path, first: usize) -> (ParamSet, TopLayers, BertConfig) {
        let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
        let w = Weights::load(&hf.join("model.safetensors")).unwrap();
        let mut ps = ParamSet::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let top = {
            let mut vb = ParamBuilder::new(&mut ps, &mut rng, Group::Layer(first), &Device::Cpu)
                .with_source(&w);
            TopLayers::load(&mut vb, &cfg, first).unwrap()
        };
        (ps, top, cfg)
    }

    /// A seeded `[2, 7, H]` input (second row: 3 padding positions), its mask, and a fixed random
    /// projection for the loss.
    pub fn inputs(h: usize) -> (Var, Tensor, Tensor) {
        let (b, t) = (2, 7);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut randn = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| rng.random::<f32>() * 2.0 - 1.0)
                .collect::<Vec<_>>()
        };
        let x =
            Var::from_tensor(&Tensor::from_vec(randn(b * t * h), (b, t, h), &Device::Cpu).unwrap())
                .unwrap();
        let r = Tensor::from_vec(randn(b * t * h), (b, t, h), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(
            vec![1f32, 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 0., 0.],
            (b, t),
            &Device::Cpu,
        )
        .unwrap();
        (x, mask, r)
    }

    /// Sum of squares of a random projection of the output over real tokens.
    pub fn loss(out: &Tensor, mask: &Tensor, r: &Tensor) -> Tensor {
        out.broadcast_mul(&mask.unsqueeze(2).unwrap())
            .unwrap()
            .mul(r)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    }

    /// The Euclidean norm of a gradient.
    pub fn norm(g: &Tensor) -> f32 {
        g.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Checks the gradients: parameters of layers in `trained` have a non-zero one, others none.
    ///
    /// Exception: the key bias. Adding `q . b_k` to every score of a query row does not change the
    /// softmax, so its gradient is exactly zero in exact arithmetic (rounding noise in floats); it
    /// must exist and be negligible next to the query bias's.
    pub fn assert_grads(ps: &ParamSet, grads: &GradStore, trained: &[usize]) {
        let mut checked = 0;
        for p in &ps.params {
            let Group::Layer(i) = p.group else {
                panic!("`{}` is not in a layer group", p.name)
            };
            assert!(
                p.name.starts_with(&format!("encoder.layer.{i}.")),
                "`{}` in group Layer({i})",
                p.name
            );
            let g = grads.get(p.var.as_tensor());
            if !trained.contains(&i) {
                assert!(
                    g.is_none(),
                    "frozen tensor `{}` received a gradient",
                    p.name
                );
                continue;
            }
            let g =
                g.unwrap_or_else(|| panic!("trainable tensor `{}` received no gradient", p.name));
            let n = norm(g);
            assert!(n.is_finite(), "tensor `{}`: gradient norm {n}", p.name);
            if p.name.ends_with("attention.self.key.bias") {
                let q = ps
                    .by_name()
                    .get(p.name.replace(".key.", ".query.").as_str())
                    .and_then(|q| grads.get(q.var.as_tensor()))
                    .map(norm)
                    .expect("query bias gradient");
                assert!(
                    n <= 1e-3 * q,
                    "key bias `{}`: gradient norm {n:.3e} should be ~0 (query bias {q:.3e})",
                    p.name
                );
            } else {
                assert!(
                    n > 0.0,
                    "trainable tensor `{}` received an all-zero gradient",
                    p.name
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 16 * trained.len(), "tensors checked");
    }

    /// Every parameter of every loaded layer `first..L` gets a gradient, through the lowest
    /// layer's layer norms down to its input; padded input positions get none.
    pub fn every_parameter_gets_a_gradient(hf: &Path, first: usize) {
        let (ps, top, cfg) = load(hf, first);
        assert_eq!(top.first, first);
        let (x, mask, r) = inputs(cfg.hidden_size);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let out = top
            .forward(x.as_tensor(), &mask, Some((0.1, &mut rng)))
            .unwrap();
        let grads = loss(&out, &mask, &r).backward().unwrap();
        let trained: Vec<usize> = (first..cfg.num_hidden_layers).collect();
        assert_grads(&ps, &grads, &trained);
        let by_name = ps.by_name();
        for name in [
            format!("encoder.layer.{first}.attention.output.LayerNorm.weight"),
            format!("encoder.layer.{first}.output.LayerNorm.weight"),
        ] {
            let g = grads
                .get(by_name[name.as_str()].var.as_tensor())
                .unwrap_or_else(|| panic!("`{name}` received no gradient"));
            assert!(norm(g) > 0.0, "`{name}`: zero gradient");
        }
        let gx = grads
            .get(x.as_tensor())
            .expect("the input receives a gradient");
        assert!(norm(gx) > 0.0, "zero gradient at the input");
        // Padding positions of the output do not enter the loss, and padded keys get zero
        // attention: the padded input positions receive no gradient.
        let pad = gx.narrow(0, 1, 1).unwrap().narrow(1, 4, 3).unwrap();
        assert_eq!(norm(&pad), 0.0, "padding positions received a gradient");
    }

    /// Heads reading `states` over layers `first..L` of the checkpoint in `hf`: `intent` (reading
    /// the `tags` states, the default with unfrozen layers) and `tags`.
    pub fn unfrozen_model(hf: &Path, states: Vec<usize>, first: usize) -> TaskModel {
        let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
        let w = Weights::load(&hf.join("model.safetensors")).unwrap();
        let config = ModelConfig {
            backbone_width: cfg.hidden_size,
            mixed_states: states.len(),
            tasks: vec![
                TaskConfig {
                    name: "intent".into(),
                    kind: TaskKind::Sentence,
                    labels: vec!["a".into(), "b".into(), "c".into()],
                    head: HeadConfig::Sentence(SentenceHeadConfig {
                        mlp_width: 16,
                        dropout: 0.1,
                        reads: Some("tags".into()),
                    }),
                },
                TaskConfig {
                    name: "tags".into(),
                    kind: TaskKind::Spans,
                    labels: vec!["O".into(), "B-x".into(), "I-x".into()],
                    head: HeadConfig::Token(TokenHeadConfig {
                        gru_units: 8,
                        dropout: 0.1,
                    }),
                },
            ],
        };
        let mut model = TaskModel::new(config, 3, &Device::Cpu).unwrap();
        let cached = edgetune::model::Unfrozen::cached_states(&states, first);
        edgetune::train::init::attach_top_layers(&mut model, &cfg, &w, first, cached, states)
            .unwrap();
        model
    }

    /// Two sentences of cached token states (the second shorter, with a multi-token word and a
    /// word cut by truncation): `[tokens, k states, hidden]`.
    pub fn token_rows(k: usize, hidden: usize) -> Vec<TokenRows> {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut ex = |tokens: usize, word_tokens: Vec<(u32, u32)>| TokenRows {
            rows: (0..tokens * k * hidden)
                .map(|_| rng.random::<f32>() * 2.0 - 1.0)
                .collect(),
            tokens,
            word_tokens,
        };
        vec![
            ex(7, vec![(1, 2), (2, 4), (4, 5), (5, 6)]),
            ex(5, vec![(1, 2), (2, 4), (4, 4)]),
        ]
    }

    /// The joint loss of the heads that train (`intent` only if `intent`), with dropout, through
    /// the unfrozen layers.
    pub fn unfrozen_loss(model: &TaskModel, intent: bool) -> Tensor {
        let top = model.top.as_ref().unwrap();
        let hidden = model.config.backbone_width;
        let rows = token_rows(top.cached.len(), hidden);
        let refs: Vec<&TokenRows> = rows.iter().collect();
        let tb = make_token_batch(&refs, top.cached.len(), hidden, &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let b = model.token_inputs(&tb, Some((0.1, &mut rng))).unwrap();
        assert_eq!(b.words.dims(), &[2, 4, top.head_states.len(), hidden]);
        let mut out = model.forward(&b, &[intent, true], Some(&mut rng)).unwrap();
        let tags = Tensor::from_vec(vec![0u32, 1, 2, 0, 1, 0, 0, 0], 8, &Device::Cpu).unwrap();
        let slot = out.logits[1].take().unwrap();
        let mut l = candle_nn::loss::cross_entropy(&slot.reshape((8, 3)).unwrap(), &tags).unwrap();
        if intent {
            let y = Tensor::from_vec(vec![0u32, 2], 2, &Device::Cpu).unwrap();
            let il = out.logits[0].take().unwrap();
            l = (l + candle_nn::loss::cross_entropy(&il, &y).unwrap()).unwrap();
        } else {
            assert!(out.logits[0].is_none());
        }
        l
    }

    /// Checks that parameters for which `trained` holds get a non-zero gradient and others none;
    /// returns how many were checked.
    pub fn check_model_grads(
        model: &TaskModel,
        grads: &GradStore,
        trained: &dyn Fn(Group) -> bool,
    ) -> usize {
        let mut n = 0;
        for p in &model.params.params {
            let g = grads.get(p.var.as_tensor());
            if !trained(p.group) {
                assert!(
                    g.is_none(),
                    "frozen tensor `{}` received a gradient",
                    p.name
                );
                continue;
            }
            let g =
                g.unwrap_or_else(|| panic!("trainable tensor `{}` received no gradient", p.name));
            let v = norm(g);
            assert!(v.is_finite(), "`{}`: gradient {v}", p.name);
            // Two biases are gradient-free in exact arithmetic: each adds the same value to every
            // score a softmax normalises (the intent attention over words; the key bias adds
            // q . b_k to every score of a query row). Their gradient must exist; zero (or rounding
            // noise) is allowed.
            if !(p.name == "intent.attn.bias" || p.name.ends_with("attention.self.key.bias")) {
                assert!(v > 0.0, "trainable tensor `{}`: all-zero gradient", p.name);
            }
            n += 1;
        }
        n
    }

    /// Heads and unfrozen layers together: every trainable tensor gets a gradient through the
    /// token-to-word pooling (`layers` loaded layers of 16 tensors each).
    pub fn every_tensor_of_heads_and_layers_gets_a_gradient(model: &TaskModel, layers: usize) {
        let layer_params = model
            .params
            .params
            .iter()
            .filter(|p| matches!(p.group, Group::Layer(_)))
            .count();
        assert_eq!(layer_params, 16 * layers, "{layers} layers of 16 tensors");
        let grads = unfrozen_loss(model, true).backward().unwrap();
        let n = check_model_grads(model, &grads, &|_| true);
        assert_eq!(n, model.params.params.len());
    }

    /// A frozen intent head over unfrozen layers gets no gradient and no optimizer state, and an
    /// optimizer step leaves it byte-identical while `layer_weight` (a tensor of the top layer)
    /// trains.
    pub fn frozen_head_stays_byte_identical(model: &TaskModel, layer_weight: &str) {
        let intent = Group::Head(0);
        let trained = |g: Group| g != intent;
        let snapshot = |m: &TaskModel| -> Vec<Vec<f32>> {
            m.params
                .params
                .iter()
                .filter(|p| p.group == intent)
                .map(|p| p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
                .collect()
        };
        let layer = |m: &TaskModel| -> Vec<f32> {
            m.params.by_name()[layer_weight]
                .var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let before = snapshot(model);
        let layers_before = layer(model);
        let grads = unfrozen_loss(model, false).backward().unwrap();
        check_model_grads(model, &grads, &trained);
        let mut opt = AdamW::default();
        let settings = |g: Group| {
            trained(g).then_some(GroupSettings {
                lr: 1e-3,
                weight_decay: 0.01,
            })
        };
        opt.step(&model.params, &grads, &settings, 1.0).unwrap();
        let after = snapshot(model);
        assert!(!before.is_empty());
        for (a, b) in before.iter().zip(&after) {
            assert!(
                bytemuck::cast_slice::<f32, u8>(a) == bytemuck::cast_slice::<f32, u8>(b),
                "a frozen tensor changed"
            );
        }
        assert!(
            !opt.moments.keys().any(|k| k.starts_with("intent.")),
            "frozen tensors get no optimizer state"
        );
        assert_ne!(layers_before, layer(model), "the unfrozen layer trained");
    }
}
