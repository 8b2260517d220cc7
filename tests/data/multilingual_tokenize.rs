//! Multilingual shapes without ONNX Runtime: SentencePiece (Unigram) tokenizers with `▁` word
//! starts, XLM-R and multilingual-BERT graphs as imported (position conventions, inputs), and the
//! 250k-row embedding table stored in int8. The whole chain run in ONNX Runtime (import verified
//! against candle, quantize, train, export, Python parity) is `multilingual_e2e.rs`.

use crate::support::tiny_checkpoints;

use edgetune::graph;
use edgetune::onnx::merged::MergedInputs;
use edgetune::onnx::{import, quantize};
use edgetune::tokenize::WordTokenizer;
use tiny_checkpoints::{Shape, SPACE};

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// A word SentencePiece splits as `▁ Kra ków` (a lone `▁` first) or `▁Mün chen` keeps all of its
/// pieces, the `▁` included, and every other word its own; specials belong to no word.
#[test]
fn unigram_words_starting_with_a_lone_metaspace_keep_all_their_pieces() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tokenizer.json");
    tiny_checkpoints::write_unigram_tokenizer(&path, &tiny_checkpoints::unigram_pieces(300));
    let tok = WordTokenizer::from_file(&path, None).unwrap();
    assert_eq!(tok.pad_id(), 1, "<pad> is id 1 in XLM-R's vocabulary");
    assert_eq!(tok.max_tokens(), tiny_checkpoints::MAX_TOKENS);
    let inner = tokenizers::Tokenizer::from_file(&path).unwrap();
    let piece = |id: u32| inner.id_to_token(id).unwrap();

    let t = tok
        .encode_words(&words("weather in Kraków tomorrow"), &|| "t".into())
        .unwrap();
    let pieces: Vec<String> = t.ids.iter().map(|&i| piece(i)).collect();
    let lone = SPACE.to_string();
    assert_eq!(
        pieces,
        [
            "<s>",
            "▁weather",
            "▁in",
            lone.as_str(),
            "Kra",
            "ków",
            "▁tomorrow",
            "</s>"
        ]
    );
    assert_eq!(t.word_tokens, vec![(1, 2), (2, 3), (3, 6), (6, 7)]);
    assert!(t.type_ids.iter().all(|&x| x == 0));
    assert!(!t.truncated);

    let t = tok
        .encode_words(&words("play music by München jazz"), &|| "t".into())
        .unwrap();
    let pieces: Vec<String> = t.ids.iter().map(|&i| piece(i)).collect();
    assert_eq!(&pieces[4..6], ["▁Mün", "chen"]);
    assert_eq!(t.word_tokens[3], (4, 6));

    // The merged model's word pooling reads the same ranges: 1/3 on each of `▁ Kra ków`.
    let t = tok
        .encode_words(&words("weather in Kraków"), &|| "t".into())
        .unwrap();
    let x = MergedInputs::new(&[&t], tok.pad_id());
    let row: Vec<f32> = (0..x.word_pool.shape()[2])
        .map(|j| x.word_pool[[0, 2, j]])
        .collect();
    let third = 1.0 / 3.0;
    assert_eq!(row, vec![0.0, 0.0, 0.0, third, third, third, 0.0]);
    assert_eq!(x.word_mask.row(0).to_vec(), vec![1.0, 1.0, 1.0]);

    // Accented words of several scripts are whole pieces; an unknown character is `<unk>` but
    // still its word's token.
    let t = tok
        .encode_words(&words("włącz światło w kuchni ?"), &|| "t".into())
        .unwrap();
    assert_eq!(t.word_tokens.len(), 5);
    assert!(t.word_tokens.iter().all(|(s, e)| e > s), "{t:?}");
}

/// Truncation at the tokenizer's limit keeps whole words' ranges and flags the example.
#[test]
fn unigram_truncation_cuts_words_not_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tokenizer.json");
    tiny_checkpoints::write_unigram_tokenizer(&path, &tiny_checkpoints::unigram_pieces(300));
    let tok = WordTokenizer::from_file(&path, Some(8)).unwrap();
    let t = tok
        .encode_words(&words("weather in Kraków Kraków tomorrow"), &|| {
            "t".into()
        })
        .unwrap();
    assert!(t.truncated);
    assert!(t.ids.len() <= 8);
    assert_eq!(*t.ids.last().unwrap(), 2, "</s> kept");
    for &(s, e) in &t.word_tokens {
        assert!((e as usize) < t.ids.len(), "{t:?}");
        assert!(s <= e);
    }
}

fn import_tiny(shape: Shape, vocab: usize) -> (tempfile::TempDir, graph::proto::ModelProto) {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    tiny_checkpoints::write_checkpoint(&hf, shape, 2, vocab, 3);
    let mut opts = import::ImportOptions::new(&hf, tmp.path().join("m"));
    opts.verify = false;
    let r = import::import(&opts).unwrap();
    let model = graph::load_model(&r.backbone).unwrap();
    (tmp, model)
}

fn inputs(m: &graph::proto::ModelProto) -> Vec<String> {
    m.graph
        .as_ref()
        .unwrap()
        .input
        .iter()
        .filter_map(|i| i.name.clone())
        .collect()
}

fn ops(m: &graph::proto::ModelProto, op: &str) -> usize {
    m.graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some(op))
        .count()
}

/// XLM-R: weights under `roberta.`, positions counted from `pad + 1` over non-padding ids
/// (`CumSum`), its one token-type row a constant (no `token_type_ids` input).
#[test]
fn xlm_r_graph_counts_positions_from_the_padding_id() {
    let (_tmp, m) = import_tiny(Shape::XlmR, 300);
    assert_eq!(inputs(&m), ["input_ids", "attention_mask"]);
    assert_eq!(ops(&m, "CumSum"), 1);
    assert_eq!(ops(&m, "Range"), 0, "no relative position bias");
    assert_eq!(graph::count_layers(&m).unwrap(), 2);
}

/// Multilingual BERT (paraphrase-multilingual-MiniLM, multilingual-e5): absolute positions and
/// token types, whatever the tokenizer.
#[test]
fn multilingual_bert_graph_keeps_absolute_positions() {
    let (_tmp, m) = import_tiny(Shape::MultilingualBert, 300);
    assert_eq!(
        inputs(&m),
        ["input_ids", "attention_mask", "token_type_ids"]
    );
    assert_eq!(ops(&m, "CumSum"), 0);
}

/// The 250,002-row table: in int8 with per-row scales it is a quarter of its fp32 bytes (plus
/// one f32 scale per row), and every weight MatMul is int8.
#[test]
fn a_250k_vocabulary_table_is_stored_in_int8() {
    let (_tmp, m) = import_tiny(Shape::XlmR, tiny_checkpoints::MULTILINGUAL_VOCAB);
    let fp32 = quantize::measure::model_bytes(&m);
    let mut q = m.clone();
    let s = quantize::quantize_model(
        &mut q,
        &quantize::QuantizeOptions {
            int8_embeddings: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.quantized.len(), 12);
    assert!(s
        .int8_embeddings
        .iter()
        .any(|n| n.contains("word_embeddings")));
    let int8 = quantize::measure::model_bytes(&q);
    let table = tiny_checkpoints::MULTILINGUAL_VOCAB * tiny_checkpoints::HIDDEN;
    eprintln!(
        "250,002 x {} table: fp32 model {} bytes (embeddings {}), int8 model {} bytes (embeddings {})",
        tiny_checkpoints::HIDDEN,
        fp32.total,
        fp32.embeddings,
        int8.total,
        int8.embeddings
    );
    assert!(fp32.embeddings >= 4 * table);
    assert!(int8.embeddings <= table + 4 * tiny_checkpoints::MULTILINGUAL_VOCAB + 4 * 4096);
}
