//! Tiny random checkpoints in the shapes of the encoders edgetune imports besides BERT with
//! WordPiece, written by the tests into temporary folders (config.json, model.safetensors,
//! tokenizer.json):
//!
//! - MPNet (all-mpnet-base-v2's shape): `attention.attn.{q,k,v,o}`, `attention.LayerNorm`, the
//!   shared `encoder.relative_attention_bias`, no token types, RoBERTa positions, the WordPiece
//!   tokenizer with `<s>`/`</s>` and a `RobertaProcessing` post-processor;
//! - XLM-R (paraphrase-multilingual-mpnet's shape): BERT's tensor names under `roberta.`, one
//!   token type, RoBERTa positions, a SentencePiece (Unigram) tokenizer with `▁` word starts;
//! - multilingual BERT (paraphrase-multilingual-MiniLM's and multilingual-e5's shape): BERT with
//!   absolute positions and the same Unigram tokenizer.
//!
//! The Unigram vocabulary can be padded to 250,002 pieces (the multilingual models' vocabulary):
//! a 250k-row embedding table.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use serde_json::json;

/// Hidden width of every tiny checkpoint.
pub const HIDDEN: usize = 32;
/// Attention heads.
pub const HEADS: usize = 4;
/// FFN width.
pub const INTER: usize = 64;
/// Position rows.
pub const MAX_POS: usize = 40;
/// Token limit written into the tokenizers (positions must stay below [`MAX_POS`]).
pub const MAX_TOKENS: usize = 32;
/// The multilingual models' vocabulary size (XLM-R's SentencePiece).
pub const MULTILINGUAL_VOCAB: usize = 250_002;
/// The Unigram tokenizer's word-start marker.
pub const SPACE: char = '\u{2581}';

/// Words whose `▁word` piece exists (so they are one token).
pub const WORDS: &[&str] = &[
    "play",
    "some",
    "jazz",
    "music",
    "by",
    "miles",
    "davis",
    "turn",
    "on",
    "off",
    "the",
    "lights",
    "in",
    "kitchen",
    "bedroom",
    "set",
    "a",
    "timer",
    "for",
    "minutes",
    "weather",
    "lisbon",
    "tomorrow",
    "spiel",
    "musik",
    "von",
    "licht",
    "küche",
    "encienda",
    "la",
    "luz",
    "en",
    "cocina",
    "włącz",
    "światło",
    "w",
    "kuchni",
    "pogoda",
    "jutro",
    "5",
    "10",
    "please",
    "now",
];

/// Words without a `▁word` piece: SentencePiece writes a lone `▁` and then pieces without one
/// (`▁ Kra ków`), or `▁` + a first piece + more (`▁Mün chen`).
pub const SPLIT_WORDS: &[&str] = &["Kraków", "München", "Wrocław", "Zürich"];

/// Pieces (without `▁`) that spell [`SPLIT_WORDS`].
const SPLIT_PIECES: &[&str] = &["Kra", "ków", "chen", "Wro", "cław", "Zü", "rich"];

/// Pieces with `▁` that begin a split word (`▁Mün`).
const START_PIECES: &[&str] = &["Mün"];

/// The Unigram vocabulary: `<s> <pad> </s> <unk>`, `▁`, the words, the pieces, every letter of
/// them with and without `▁`, filler pieces up to `size - 1`, and `<mask>` last.
pub fn unigram_pieces(size: usize) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = ["<s>", "<pad>", "</s>", "<unk>"]
        .iter()
        .map(|s| (s.to_string(), 0.0))
        .collect();
    v.push((SPACE.to_string(), -9.0));
    for w in WORDS {
        v.push((format!("{SPACE}{w}"), -5.0));
    }
    for p in START_PIECES {
        v.push((format!("{SPACE}{p}"), -6.0));
    }
    for p in SPLIT_PIECES {
        v.push((p.to_string(), -6.0));
    }
    let mut chars: Vec<char> = WORDS
        .iter()
        .chain(SPLIT_WORDS)
        .flat_map(|w| w.chars())
        .collect();
    chars.sort_unstable();
    chars.dedup();
    for c in chars {
        v.push((c.to_string(), -12.0));
        v.push((format!("{SPACE}{c}"), -12.5));
    }
    let mut n = 0;
    while v.len() + 1 < size {
        v.push((format!("{SPACE}zq{n}"), -20.0));
        n += 1;
    }
    v.push(("<mask>".to_string(), 0.0));
    v
}

fn special(id: usize, s: &str) -> serde_json::Value {
    json!({"id": id, "special": true, "content": s, "single_word": false, "lstrip": false,
           "rstrip": false, "normalized": false})
}

/// An XLM-R style `tokenizer.json`: Metaspace pre-tokenizer (`▁` prepended to every word),
/// Unigram model, `<s> $A </s>` post-processor, truncation at [`MAX_TOKENS`].
pub fn write_unigram_tokenizer(path: &Path, pieces: &[(String, f64)]) {
    let mask = pieces.len() - 1;
    let meta = json!({"type": "Metaspace", "replacement": SPACE.to_string(), "prepend_scheme": "always", "split": true});
    let tok = json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": MAX_TOKENS, "strategy": "LongestFirst", "stride": 0},
        "padding": null,
        "added_tokens": [special(0, "<s>"), special(1, "<pad>"), special(2, "</s>"), special(3, "<unk>"), special(mask, "<mask>")],
        "normalizer": null,
        "pre_tokenizer": meta,
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}, "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
        "decoder": meta,
        "model": {"type": "Unigram", "unk_id": 3, "byte_fallback": false,
                  "vocab": pieces.iter().map(|(p, s)| json!([p, s])).collect::<Vec<_>>()}
    });
    std::fs::write(path, serde_json::to_string(&tok).unwrap()).unwrap();
}

/// MPNet's tokenizer shape: lower-casing BERT normalizer and pre-tokenizer, WordPiece, and a
/// `RobertaProcessing` post-processor (`<s> $A </s>`). Returns the vocabulary in id order.
pub fn write_mpnet_tokenizer(path: &Path) -> Vec<String> {
    let mut vocab: Vec<String> = ["<s>", "<pad>", "</s>", "<unk>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    vocab.extend(WORDS.iter().map(|w| w.to_string()));
    vocab.extend(["##s", "##ing", "[UNK]"].iter().map(|s| s.to_string()));
    vocab.push("<mask>".into());
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), json!(i)))
        .collect();
    let unk = vocab.len() - 2;
    let tok = json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": MAX_TOKENS, "strategy": "LongestFirst", "stride": 0},
        "padding": null,
        "added_tokens": [special(0, "<s>"), special(1, "<pad>"), special(2, "</s>"), special(3, "<unk>"),
                         special(unk, "[UNK]"), special(vocab.len() - 1, "<mask>")],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": true, "add_prefix_space": false},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": map}
    });
    std::fs::write(path, serde_json::to_string(&tok).unwrap()).unwrap();
    vocab
}

/// The shapes [`write_checkpoint`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// all-mpnet-base-v2.
    MPNet,
    /// XLM-R (weights under `roberta.`).
    XlmR,
    /// BERT with a multilingual Unigram tokenizer.
    MultilingualBert,
}

/// Writes a tiny random checkpoint of `shape` into `dir` (`layers` layers, width [`HIDDEN`]);
/// the Unigram shapes get a vocabulary of `vocab` pieces (at least the test words'). Returns the
/// vocabulary size.
pub fn write_checkpoint(dir: &Path, shape: Shape, layers: usize, vocab: usize, seed: u64) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let tok = dir.join("tokenizer.json");
    let v = match shape {
        Shape::MPNet => write_mpnet_tokenizer(&tok).len(),
        Shape::XlmR | Shape::MultilingualBert => {
            let pieces = unigram_pieces(vocab);
            write_unigram_tokenizer(&tok, &pieces);
            pieces.len()
        }
    };
    let (model_type, pad, types) = match shape {
        Shape::MPNet => ("mpnet", 1, 0),
        Shape::XlmR => ("xlm-roberta", 1, 1),
        Shape::MultilingualBert => ("bert", 0, 2),
    };
    let mut config = json!({
        "model_type": model_type, "hidden_act": "gelu", "hidden_size": HIDDEN,
        "num_hidden_layers": layers, "num_attention_heads": HEADS, "intermediate_size": INTER,
        "vocab_size": v, "max_position_embeddings": MAX_POS, "layer_norm_eps": 1e-5,
        "pad_token_id": pad,
    });
    if types > 0 {
        config["type_vocab_size"] = json!(types);
    }
    if shape == Shape::MPNet {
        config["relative_attention_num_buckets"] = json!(32);
    }
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let prefix = if shape == Shape::XlmR { "roberta." } else { "" };
    let tensors = random_tensors(shape, layers, v, types, seed);
    write_safetensors(&dir.join("model.safetensors"), prefix, tensors);
    v
}

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn random_tensors(shape: Shape, layers: usize, v: usize, types: usize, seed: u64) -> Tensors {
    let (h, inter) = (HIDDEN, INTER);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut t = Tensors::new();
    let mut add = |name: &str, shape: Vec<usize>, scale: f32, offset: f32| {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| offset + scale * (rng.random::<f32>() * 2.0 - 1.0))
            .collect();
        t.insert(name.to_string(), (shape, data));
    };
    add("embeddings.word_embeddings.weight", vec![v, h], 1.0, 0.0);
    add(
        "embeddings.position_embeddings.weight",
        vec![MAX_POS, h],
        0.5,
        0.0,
    );
    if types > 0 {
        add(
            "embeddings.token_type_embeddings.weight",
            vec![types, h],
            0.5,
            0.0,
        );
    }
    add("embeddings.LayerNorm.weight", vec![h], 0.2, 1.0);
    add("embeddings.LayerNorm.bias", vec![h], 0.1, 0.0);
    let mpnet = shape == Shape::MPNet;
    if mpnet {
        add(
            "encoder.relative_attention_bias.weight",
            vec![32, HEADS],
            1.0,
            0.0,
        );
    }
    let (q, k, vv, o, ln) = if mpnet {
        (
            "attention.attn.q",
            "attention.attn.k",
            "attention.attn.v",
            "attention.attn.o",
            "attention.LayerNorm",
        )
    } else {
        (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
        )
    };
    for i in 0..layers {
        let p = format!("encoder.layer.{i}");
        for (n, out, inn) in [
            (q, h, h),
            (k, h, h),
            (vv, h, h),
            (o, h, h),
            ("intermediate.dense", inter, h),
            ("output.dense", h, inter),
        ] {
            add(&format!("{p}.{n}.weight"), vec![out, inn], 0.3, 0.0);
            add(&format!("{p}.{n}.bias"), vec![out], 0.1, 0.0);
        }
        for n in [ln, "output.LayerNorm"] {
            add(&format!("{p}.{n}.weight"), vec![h], 0.2, 1.0);
            add(&format!("{p}.{n}.bias"), vec![h], 0.1, 0.0);
        }
    }
    t
}

fn write_safetensors(path: &Path, prefix: &str, tensors: Tensors) {
    let bytes: BTreeMap<String, (Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, (s, d))| {
            (
                format!("{prefix}{k}"),
                (s, bytemuck::cast_slice(&d).to_vec()),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, (s, d))| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d);
            (k.clone(), view.unwrap())
        })
        .collect();
    let st = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(path, st).unwrap();
}

/// A small JSON-lines dataset (train / valid / test) over [`WORDS`] and [`SPLIT_WORDS`] with a
/// sentence task `intent` and a span task `tags` (`B-city`, `B-room`, ...), `n` training lines.
pub fn write_dataset(dir: &Path, n: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let cities = ["lisbon", "Kraków", "München", "Wrocław", "Zürich"];
    let rooms = ["kitchen", "bedroom", "küche", "cocina", "kuchni"];
    let line = |rng: &mut rand_chacha::ChaCha8Rng| -> String {
        let (words, tags, intent): (Vec<&str>, Vec<&str>, &str) = match rng.random_range(0..3) {
            0 => {
                let c = cities[rng.random_range(0..cities.len())];
                (
                    vec!["weather", "in", c, "tomorrow"],
                    vec!["O", "O", "B-city", "B-date"],
                    "weather",
                )
            }
            1 => {
                let r = rooms[rng.random_range(0..rooms.len())];
                let on = ["turn", "on", "the", "lights", "in", r];
                (
                    on.to_vec(),
                    vec!["O", "O", "O", "O", "O", "B-room"],
                    "lights",
                )
            }
            _ => {
                let who = if rng.random_bool(0.5) {
                    ["miles", "davis"]
                } else {
                    ["München", "jazz"]
                };
                (
                    vec!["play", "music", "by", who[0], who[1]],
                    vec!["O", "O", "O", "B-artist", "I-artist"],
                    "music",
                )
            }
        };
        json!({"words": words, "tags": tags, "intent": intent}).to_string()
    };
    for (split, count) in [("train", n), ("valid", n / 4 + 4), ("test", n / 4 + 4)] {
        let lines: Vec<String> = (0..count).map(|_| line(&mut rng)).collect();
        std::fs::write(dir.join(format!("{split}.jsonl")), lines.join("\n") + "\n").unwrap();
    }
}
