//! Words to sub-word tokens with a WordPiece `tokenizer.json` the test writes: every sub-token is
//! mapped to its word, truncation at the token limit is reported and cuts whole words, a
//! tokenizer's own fixed padding is not used, and bad tokenizer files are clear errors.

use crate::support as common;

use std::path::{Path, PathBuf};

use edgetune::tokenize::WordTokenizer;

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "un", "##bel", "##ie", "##va", "##bly",
    "loud", "music", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "the", "##s",
];

/// Writes the test's `tokenizer.json` into `dir` (with `edit` applied to its JSON).
fn tokenizer_file(dir: &Path, edit: &dyn Fn(&mut serde_json::Value)) -> PathBuf {
    let p = dir.join("tokenizer.json");
    let vocab: Vec<String> = VOCAB.iter().map(|s| s.to_string()).collect();
    common::write_tiny_tokenizer(&p, &vocab);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn sub_tokens_map_to_their_words() {
    let tmp = tempfile::tempdir().unwrap();
    let t = WordTokenizer::from_file(&tokenizer_file(tmp.path(), &|_| {}), None).unwrap();
    let w = words("play unbelievably loud music");
    let enc = t.encode_words(&w, &|| "test".into()).unwrap();
    assert_eq!(enc.word_tokens.len(), 4);
    assert_eq!(enc.word_tokens[0], (1, 2), "[CLS] comes first");
    assert_eq!(
        enc.word_tokens[1],
        (2, 7),
        "'unbelievably' is un ##bel ##ie ##va ##bly"
    );
    assert_eq!(enc.word_tokens[2].0, 7, "spans are contiguous");
    assert!(!enc.truncated);
    assert_eq!(
        enc.ids.len() as u32,
        enc.word_tokens[3].1 + 1,
        "[SEP] comes last"
    );
    assert_eq!(enc.ids[0], 2);
    assert_eq!(*enc.ids.last().unwrap(), 3);
    assert!(enc.type_ids.iter().all(|&t| t == 0));
    // Case is normalised; an unknown word is one [UNK]; a word without any token (a format
    // character) keeps an empty range and no features.
    let enc = t
        .encode_words(&words("PLAY zzz \u{200b} music"), &|| "test".into())
        .unwrap();
    assert_eq!(enc.ids, vec![2, 5, 1, 12, 3]);
    assert_eq!(enc.word_tokens[2].0, enc.word_tokens[2].1);
    assert_eq!(enc.kept_words(), 3);
    // A raw line is split at any whitespace, as the data readers split text.
    let line = t
        .encode_text("play\tloud\u{a0} music ", &|| "line".into())
        .unwrap();
    let same = t
        .encode_words(&words("play loud music"), &|| "line".into())
        .unwrap();
    assert_eq!(line, same);
}

#[test]
fn long_inputs_are_truncated_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let t = WordTokenizer::from_file(&tokenizer_file(tmp.path(), &|_| {}), Some(8)).unwrap();
    assert_eq!(t.max_tokens(), 8);
    let w = words("one two three four five six seven eight nine ten");
    let enc = t.encode_words(&w, &|| "test".into()).unwrap();
    assert_eq!(enc.ids.len(), 8);
    assert_eq!(*enc.ids.last().unwrap(), 3, "[SEP] kept");
    assert!(enc.truncated);
    assert_eq!(enc.kept_words(), 6);
    assert_eq!(enc.word_tokens[9], (0, 0));
    // A word cut among its sub-tokens: the input is reported as truncated.
    let enc = t
        .encode_words(&words("play play play play unbelievably"), &|| {
            "test".into()
        })
        .unwrap();
    assert!(enc.truncated);
    assert_eq!(enc.ids.len(), 8);
    // Exactly at the limit: not truncated.
    let enc = t
        .encode_words(&words("one two three four five six"), &|| "test".into())
        .unwrap();
    assert_eq!(enc.ids.len(), 8);
    assert!(!enc.truncated);
}

#[test]
fn the_files_padding_is_ignored_and_its_truncation_is_the_default_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tokenizer_file(tmp.path(), &|v| {
        v["truncation"] =
            serde_json::json!({"max_length": 10, "strategy": "LongestFirst", "stride": 0});
        v["padding"] = serde_json::json!({"strategy": {"Fixed": 16}, "direction": "Right",
            "pad_to_multiple_of": null, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"});
    });
    let t = WordTokenizer::from_file(&p, None).unwrap();
    assert_eq!(t.max_tokens(), 10);
    let enc = t
        .encode_words(&words("play music"), &|| "t".into())
        .unwrap();
    assert_eq!(enc.ids.len(), 4, "no padding to 16: {:?}", enc.ids);
    assert_eq!(
        WordTokenizer::from_file(&p, Some(5)).unwrap().max_tokens(),
        5
    );
    assert_eq!(t.pad_id(), 0);
}

#[test]
fn pad_id_is_the_vocabularys() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("tokenizer.json");
    let mut vocab: Vec<String> = VOCAB.iter().map(|s| s.to_string()).collect();
    vocab.swap(0, 5); // "[PAD]" at id 5
    common::write_tiny_tokenizer(&p, &vocab);
    assert_eq!(WordTokenizer::from_file(&p, None).unwrap().pad_id(), 5);
}

#[test]
fn bad_tokenizer_files_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.json");
    let e = WordTokenizer::from_file(&missing, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nope.json"), "{e}");
    let junk = tmp.path().join("junk.json");
    std::fs::write(&junk, "{\"model\": 3}").unwrap();
    let e = WordTokenizer::from_file(&junk, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("junk.json"), "{e}");
    let good = tokenizer_file(tmp.path(), &|_| {});
    let e = WordTokenizer::from_file(&good, Some(2))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("too small"), "{e}");
}
