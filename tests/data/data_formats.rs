//! Reading datasets: every format, format detection and override, held-out validation splits,
//! and the error messages for bad input (which must name the file and the line).

use std::fs;
use std::path::{Path, PathBuf};

use edgetune::data::{
    load_dataset, load_split, read_file_split, split_words, validate_tag, DataError, Dataset,
    Format, ReadOptions, Split,
};

fn write(dir: &Path, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, content).unwrap();
    path
}

fn strings(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn load(dir: &Path, name: &str) -> Split {
    load_split(dir, name, &ReadOptions::default())
        .unwrap()
        .expect("split exists")
}

/// The error message of loading split `name`, which must fail.
fn load_err(dir: &Path, name: &str, format: Option<Format>) -> String {
    match load_split(dir, name, &ReadOptions::format(format)) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "message {message:?} does not contain {part:?}"
        );
    }
}

// ---------------------------------------------------------------- formats

#[test]
fn jointbert_folder() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train/seq.in",
        "turn on the light \nplay jazz\n\n",
    );
    write(tmp.path(), "train/seq.out", "O O O B-device\nO B-genre\n");
    write(tmp.path(), "train/label", "turn_on\nplay_music\n");
    let split = load(tmp.path(), "train");
    assert_eq!(split.format, Format::JointBert);
    assert_eq!(split.name, "train");
    assert_eq!(split.source, tmp.path().join("train"));
    assert_eq!(split.examples.len(), 2);
    let e = &split.examples[0];
    assert_eq!(e.words, strings("turn on the light"));
    assert_eq!(e.tags(), Some(strings("O O O B-device").as_slice()));
    assert_eq!(e.intent(), Some("turn_on"));
    assert_eq!(e.origin.file, tmp.path().join("train/seq.in"));
    assert_eq!(split.examples[1].origin.line, 2);
    assert!(split.has_intent() && split.has_tags());
}

#[test]
fn jointbert_folder_without_seq_out_is_intent_only() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train/seq.in", "turn on the light\nplay jazz\n");
    write(tmp.path(), "train/label", "turn_on\nplay_music\n");
    let split = load(tmp.path(), "train");
    assert!(split.has_intent());
    assert!(!split.has_tags());
    assert_eq!(split.examples[1].tags(), None);
}

#[test]
fn jsonl_text_and_words_forms() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        concat!(
            "{\"text\": \"  turn  on\\tthe light \", \"intent\": \"turn_on\", \"id\": 7}\n",
            "\n",
            "   \n",
            "{\"words\": [\"play\", \"jazz\"], \"intent\": \"play_music\", \"extra\": {\"x\": 1}}\n",
        ),
    );
    let split = load(tmp.path(), "train");
    assert_eq!(split.format, Format::Jsonl);
    assert_eq!(split.examples.len(), 2);
    assert_eq!(split.examples[0].words, strings("turn on the light"));
    assert_eq!(split.examples[0].origin.line, 1);
    assert_eq!(split.examples[1].words, strings("play jazz"));
    assert_eq!(split.examples[1].origin.line, 4);
    assert!(split.has_intent());
    assert!(!split.has_tags());
}

#[test]
fn jsonl_tags_without_intent() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        "{\"words\": [\"play\", \"bossa\", \"nova\"], \"tags\": [\"O\", \"B-genre\", \"I-genre\"]}\n\
         {\"text\": \"play rock\", \"tags\": [\"O\", \"B-genre\"], \"intent\": null}\n",
    );
    let split = load(tmp.path(), "train");
    assert!(split.has_tags());
    assert!(!split.has_intent());
    assert_eq!(
        split.examples[1].tags(),
        Some(strings("O B-genre").as_slice())
    );
}

#[test]
fn conll_sentences_docstart_and_columns() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.conll",
        concat!(
            "-DOCSTART- -X- O O\n", // 1
            "\n",                   // 2
            "EU NNP B-NP B-ORG\n",  // 3
            "rejects VBZ B-VP O\n", // 4
            "German JJ B-NP B-MISC\n",
            " \t \n",                  // 6: whitespace-only separates sentences
            "Peter\tNNP\tI-PER\n",     // 7: IOB1 is accepted
            "Blackburn\tNNP\tI-PER\n", // 8
            "\n\n",                    // 9, 10
            "-DOCSTART- O\n",          // 11
            "\n",                      // 12
            "Hi O\r\n",                // 13: CRLF
        ),
    );
    let split = load(tmp.path(), "train");
    assert_eq!(split.format, Format::Conll);
    assert_eq!(split.examples.len(), 3);
    let lines: Vec<usize> = split.examples.iter().map(|e| e.origin.line).collect();
    assert_eq!(lines, vec![3, 7, 13]);
    assert_eq!(split.examples[0].words, strings("EU rejects German"));
    assert_eq!(
        split.examples[0].tags(),
        Some(strings("B-ORG O B-MISC").as_slice())
    );
    assert_eq!(
        split.examples[1].tags(),
        Some(strings("I-PER I-PER").as_slice())
    );
    assert_eq!(split.examples[2].tags(), Some(strings("O").as_slice()));
    assert!(split.has_tags() && !split.has_intent());
}

#[test]
fn conll_txt_extension() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "test.txt", "play O\njazz B-genre\n");
    let split = load(tmp.path(), "test");
    assert_eq!(split.format, Format::Conll);
    assert_eq!(split.examples[0].words, strings("play jazz"));
}

#[test]
fn tsv_with_header_and_tabs_in_text() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.tsv",
        "Label\tText\nturn_on\tturn on\tthe light\n\nplay_music\tplay jazz\n",
    );
    let split = load(tmp.path(), "train");
    assert_eq!(split.format, Format::Tsv);
    assert_eq!(split.examples.len(), 2);
    assert_eq!(split.examples[0].words, strings("turn on the light"));
    assert_eq!(split.examples[0].intent(), Some("turn_on"));
    assert_eq!(split.examples[0].origin.line, 2);
    assert_eq!(split.examples[1].origin.line, 4);
    assert!(split.has_intent() && !split.has_tags());
}

#[test]
fn csv_rfc4180_quoting() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.csv",
        concat!(
            "Intent,TEXT\r\n",                           // 1: header
            "turn_on,turn on the light\r\n",             // 2
            "say,\"he said \"\"hi\"\", then left\"\r\n", // 3
            "\r\n",                                      // 4
            "\"note\",\"two\nlines\"\n",                 // 5-6
            " \"greet\" ,\t\"hi there\" \n",             // 7: blanks around quoted fields
            "play_music,play jazz",                      // 8, no final newline
        ),
    );
    let split = load(tmp.path(), "train");
    assert_eq!(split.format, Format::Csv);
    let got: Vec<(usize, &str, Vec<String>)> = split
        .examples
        .iter()
        .map(|e| (e.origin.line, e.intent().unwrap(), e.words.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "turn_on", strings("turn on the light")),
            (3, "say", strings("he said \"hi\", then left")),
            (5, "note", strings("two lines")),
            (7, "greet", strings("hi there")),
            (8, "play_music", strings("play jazz")),
        ]
    );
}

#[test]
fn format_override_parses_whatever_the_extension() {
    let tmp = tempfile::tempdir().unwrap();
    // JSON lines in a .txt file: detected as CoNLL (and failing), parsed fine with the override.
    write(
        tmp.path(),
        "train.txt",
        "{\"text\": \"play jazz\", \"intent\": \"play_music\"}\n",
    );
    let detected = load_err(tmp.path(), "train", None);
    assert_contains(&detected, &["train.txt:1"]);
    let split = load_split(
        tmp.path(),
        "train",
        &ReadOptions::format(Some(Format::Jsonl)),
    )
    .unwrap()
    .unwrap();
    assert_eq!(split.format, Format::Jsonl);
    assert_eq!(split.examples[0].words, strings("play jazz"));

    // A file given directly, with an extension no format claims.
    let odd = write(tmp.path(), "my.data", "play_music\tplay jazz\n");
    let err = read_file_split(&odd, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert_contains(&err, &["my.data", "extension"]);
    let split = read_file_split(&odd, &ReadOptions::format(Some(Format::Tsv))).unwrap();
    assert_eq!(split.name, "my");
    assert_eq!(split.examples[0].intent(), Some("play_music"));

    // A JointBERT folder given directly, and a folder with a file format forced on it.
    write(tmp.path(), "jb/seq.in", "hi there\n");
    write(tmp.path(), "jb/label", "greet\n");
    assert_eq!(
        read_file_split(&tmp.path().join("jb"), &ReadOptions::default())
            .unwrap()
            .format,
        Format::JointBert
    );
    let err = read_file_split(
        &tmp.path().join("jb"),
        &ReadOptions::format(Some(Format::Csv)),
    )
    .unwrap_err()
    .to_string();
    assert_contains(&err, &["jb", "csv"]);
}

#[test]
fn format_names_round_trip() {
    for (name, format) in [
        ("jointbert", Format::JointBert),
        ("jsonl", Format::Jsonl),
        ("conll", Format::Conll),
        ("tsv", Format::Tsv),
        ("csv", Format::Csv),
    ] {
        assert_eq!(name.parse::<Format>().unwrap(), format);
        assert_eq!(format.to_string(), name);
        assert_eq!(
            serde_json::to_string(&format).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(
            serde_json::from_str::<Format>(&format!("\"{name}\"")).unwrap(),
            format
        );
    }
    assert_eq!("JSONL".parse::<Format>().unwrap(), Format::Jsonl);
    let err = "xml".parse::<Format>().unwrap_err().to_string();
    assert_contains(&err, &["xml", "jointbert"]);
}

#[test]
fn split_words_gives_byte_spans() {
    let text = "  turn\ton  the caf\u{e9}\u{a0}light ";
    let spans = split_words(text);
    let words: Vec<&str> = spans.iter().map(|&(s, e)| &text[s..e]).collect();
    assert_eq!(words, vec!["turn", "on", "the", "caf\u{e9}", "light"]);
    assert_eq!(spans[0], (2, 6));
    assert!(split_words(" \t\n").is_empty());
}

#[test]
fn validate_tag_accepts_bio_only() {
    for ok in ["O", "B-city", "I-city", "B-from.city_name", "I-x-y"] {
        assert_eq!(validate_tag(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "o",
        "B-",
        "I-",
        "B",
        "E-city",
        "S-city",
        "B_city",
        "b-city",
        "B-new york",
    ] {
        assert!(validate_tag(bad).is_err(), "{bad:?} should be rejected");
    }
}

// ---------------------------------------------------------------- datasets

fn numbered_jsonl(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"text\": \"utterance number {i}\", \"intent\": \"i{}\"}}\n",
                i % 3
            )
        })
        .collect()
}

fn ids(split: &Split) -> Vec<usize> {
    split
        .examples
        .iter()
        .map(|e| e.words[2].parse().unwrap())
        .collect()
}

#[test]
fn held_out_valid_is_deterministic_and_disjoint() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train.jsonl", numbered_jsonl(20));
    let a: Dataset = load_dataset(tmp.path(), &ReadOptions::default(), 0.25, 42).unwrap();
    let b = load_dataset(tmp.path(), &ReadOptions::default(), 0.25, 42).unwrap();
    let c = load_dataset(tmp.path(), &ReadOptions::default(), 0.25, 43).unwrap();
    assert!(a.valid_held_out);
    assert!(a.test.is_none());
    assert_eq!(a.valid.examples.len(), 5);
    assert_eq!(a.train.examples.len(), 15);
    assert_eq!(a.valid.name, "valid");
    assert_eq!(ids(&a.valid), ids(&b.valid));
    assert_eq!(ids(&a.train), ids(&b.train));
    assert_ne!(
        ids(&a.valid),
        ids(&c.valid),
        "another seed should hold out other examples"
    );
    // Disjoint, complete, and each part in file order.
    let mut all = ids(&a.train);
    all.extend(ids(&a.valid));
    all.sort();
    assert_eq!(all, (0..20).collect::<Vec<_>>());
    assert!(ids(&a.valid).windows(2).all(|w| w[0] < w[1]));
    assert!(ids(&a.train).windows(2).all(|w| w[0] < w[1]));
    // Origins still point into train.jsonl.
    let first_valid = &a.valid.examples[0];
    assert_eq!(first_valid.origin.line, ids(&a.valid)[0] + 1);
}

#[test]
fn held_out_valid_keeps_at_least_one_each_side() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train.jsonl", numbered_jsonl(3));
    let tiny = load_dataset(tmp.path(), &ReadOptions::default(), 0.01, 1).unwrap();
    assert_eq!(
        (tiny.train.examples.len(), tiny.valid.examples.len()),
        (2, 1)
    );
    let huge = load_dataset(tmp.path(), &ReadOptions::default(), 0.99, 1).unwrap();
    assert_eq!(
        (huge.train.examples.len(), huge.valid.examples.len()),
        (1, 2)
    );

    let one = tempfile::tempdir().unwrap();
    write(one.path(), "train.jsonl", numbered_jsonl(1));
    let err = load_dataset(one.path(), &ReadOptions::default(), 0.1, 1)
        .unwrap_err()
        .to_string();
    assert_contains(&err, &["train.jsonl", "valid"]);
    let err = load_dataset(tmp.path(), &ReadOptions::default(), 1.5, 1)
        .unwrap_err()
        .to_string();
    assert_contains(&err, &["train.jsonl", "1.5"]);
}

#[test]
fn dataset_with_all_splits_in_mixed_formats() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train/seq.in", "play jazz\nturn on\n");
    write(tmp.path(), "train/label", "play_music\nturn_on\n");
    write(tmp.path(), "valid.tsv", "play_music\tplay rock\n");
    write(tmp.path(), "test.csv", "turn_on,\"turn on, now\"\n");
    let d = load_dataset(tmp.path(), &ReadOptions::default(), 0.1, 0).unwrap();
    assert!(!d.valid_held_out);
    assert_eq!(d.train.examples.len(), 2);
    assert_eq!(d.valid.format, Format::Tsv);
    assert_eq!(d.test.as_ref().unwrap().format, Format::Csv);
    assert_eq!(d.test.unwrap().examples[0].words, strings("turn on, now"));
}

#[test]
fn absent_split_is_none_and_missing_train_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(load_split(tmp.path(), "test", &ReadOptions::default())
        .unwrap()
        .is_none());
    let err = load_dataset(tmp.path(), &ReadOptions::default(), 0.1, 0).unwrap_err();
    assert!(matches!(err, DataError::MissingSplit { .. }), "{err:?}");
    assert_contains(&err.to_string(), &["train"]);
}

#[test]
fn demo_dataset_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo");
    let d = load_dataset(&dir, &ReadOptions::default(), 0.1, 0).unwrap();
    assert!(!d.valid_held_out);
    let test = d.test.as_ref().expect("demo has a test split");
    for split in [&d.train, &d.valid, test] {
        assert_eq!(split.format, Format::Jsonl);
        assert!(split.has_intent() && split.has_tags(), "{}", split.name);
        for e in &split.examples {
            assert!(
                e.words.iter().all(|w| *w == w.to_lowercase()),
                "{}: not lowercase",
                e.origin
            );
        }
    }
    assert_eq!(d.train.examples.len(), 519);
    assert_eq!(d.valid.examples.len(), 80);
    assert_eq!(test.examples.len(), 101);
    let intents = |s: &Split| {
        s.examples
            .iter()
            .map(|e| e.intent().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(intents(&d.train).len(), 9);
    assert_eq!(intents(&d.valid), intents(&d.train));
    assert_eq!(intents(test), intents(&d.train));
    let slot_types: std::collections::BTreeSet<String> = d
        .train
        .examples
        .iter()
        .flat_map(|e| e.tags().unwrap().to_vec())
        .filter_map(|t| t.strip_prefix("B-").map(str::to_string))
        .collect();
    assert_eq!(
        slot_types.into_iter().collect::<Vec<_>>(),
        strings("artist city device duration genre room time unit value")
    );
}

// ---------------------------------------------------------------- errors

#[test]
fn error_tag_count_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        "{\"words\": [\"a\"], \"tags\": [\"O\"]}\n\n{\"words\": [\"a\", \"b\", \"c\"], \"tags\": [\"O\", \"O\"]}\n",
    );
    let err = load_err(tmp.path(), "train", None);
    assert_contains(
        &err,
        &["train.jsonl:3:", "field \"tags\"", "2 tags for 3 words"],
    );

    write(tmp.path(), "jb/train/seq.in", "a b\nc d e\n");
    write(tmp.path(), "jb/train/seq.out", "O O\nO B-x\n");
    let err = load_err(&tmp.path().join("jb"), "train", None);
    assert_contains(&err, &["seq.out:2:", "2 tags for 3 words"]);
}

#[test]
fn error_jointbert_line_count_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train/seq.in", "a b\nc d\ne\n");
    write(tmp.path(), "train/label", "x\ny\n");
    let err = load_err(tmp.path(), "train", None);
    assert_contains(&err, &["label:3:", "2 lines", "seq.in has 3"]);
}

#[test]
fn error_malformed_tag() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train.conll", "a O\nb B-x\n\nc O\nd E-x\n");
    let err = load_err(tmp.path(), "train", None);
    assert_contains(&err, &["train.conll:5:", "\"E-x\""]);

    write(
        tmp.path(),
        "j/train.jsonl",
        "{\"words\": [\"a\", \"b\"], \"tags\": [\"O\", \"B-\"]}\n",
    );
    let err = load_err(&tmp.path().join("j"), "train", None);
    assert_contains(&err, &["train.jsonl:1:", "field \"tags\"", "tag 2", "B-"]);
}

#[test]
fn error_conll_single_column() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train.conll", "a O\nb\n");
    let err = load_err(tmp.path(), "train", None);
    assert_contains(&err, &["train.conll:2:", "2 columns"]);
}

#[test]
fn error_empty_split() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (file, content)) in [
        ("train.jsonl", "\n  \n"),
        ("train.conll", "-DOCSTART- O\n\n"),
        ("train.tsv", "label\ttext\n"),
        ("train.csv", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(i.to_string());
        write(&dir, file, content);
        let err = load_err(&dir, "train", None);
        assert_contains(&err, &[file, "no examples"]);
    }
    write(tmp.path(), "jb/train/seq.in", "");
    write(tmp.path(), "jb/train/label", "");
    let err = load_err(&tmp.path().join("jb"), "train", None);
    assert_contains(&err, &["seq.in", "no examples"]);
}

#[test]
fn error_text_without_words() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train.tsv", "a\tplay jazz\nb\t   \n");
    let err = load_err(tmp.path(), "train", None);
    assert_contains(&err, &["train.tsv:2:", "no words"]);

    write(tmp.path(), "c/train.csv", "a,play jazz\n,play\n");
    let err = load_err(&tmp.path().join("c"), "train", None);
    assert_contains(&err, &["train.csv:2:", "label column", "empty label"]);

    write(
        tmp.path(),
        "j/train.jsonl",
        "{\"text\": \"hi\", \"intent\": \"x\"}\n{\"text\": \" \", \"intent\": \"x\"}\n",
    );
    let err = load_err(&tmp.path().join("j"), "train", None);
    assert_contains(&err, &["train.jsonl:2:", "field \"text\"", "no words"]);
}

#[test]
fn error_non_utf8() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.tsv",
        b"a\tplay jazz\nb\tplay rock\nc\tcaf\xe9 music\n".as_slice(),
    );
    let err = load_err(tmp.path(), "train", None);
    assert_contains(&err, &["train.tsv:3:", "UTF-8"]);

    write(tmp.path(), "jb/train/seq.in", "a\nb\n");
    write(tmp.path(), "jb/train/label", b"x\n\xff\n".as_slice());
    let err = load_err(&tmp.path().join("jb"), "train", None);
    assert_contains(&err, &["label:2:", "UTF-8"]);
}

#[test]
fn error_bad_json_and_wrong_types() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{\"text\": \"a\", \"intent\": \"x\"}\n{\"text\": \"b\", \"intent\": }\n",
            &["train.jsonl:2:", "invalid JSON"][..],
        ),
        (
            "{\"text\": \"a\", \"intent\": \"x\"}\n[1, 2]\n",
            &["train.jsonl:2:", "JSON object"][..],
        ),
        (
            "{\"text\": 5, \"intent\": \"x\"}\n",
            &["train.jsonl:1:", "field \"text\"", "number"][..],
        ),
        (
            "{\"words\": [\"a\", 3], \"intent\": \"x\"}\n",
            &["train.jsonl:1:", "field \"words\"", "element 2"][..],
        ),
        (
            "{\"words\": \"a b\", \"intent\": \"x\"}\n",
            &["train.jsonl:1:", "field \"words\"", "array"][..],
        ),
        (
            "{\"words\": [\"a b\"], \"intent\": \"x\"}\n",
            &["train.jsonl:1:", "field \"words\"", "whitespace"][..],
        ),
        (
            "{\"text\": \"a\", \"intent\": 1}\n",
            &["train.jsonl:1:", "field \"intent\""][..],
        ),
        (
            "{\"text\": \"a\", \"tags\": \"O\"}\n",
            &["train.jsonl:1:", "field \"tags\""][..],
        ),
        (
            "\n\n{\"intent\": \"x\"}\n",
            &["train.jsonl:3:", "\"text\""][..],
        ),
        (
            "{\"text\": \"a\"}\n",
            &["train.jsonl:1:", "\"intent\"", "\"tags\""][..],
        ),
    ];
    for (i, (content, expected)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(i.to_string());
        write(&dir, "train.jsonl", content);
        let err = load_err(&dir, "train", None);
        assert_contains(&err, expected);
    }
}

#[test]
fn error_inconsistent_tasks_within_a_split() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        concat!(
            "{\"words\": [\"a\"], \"tags\": [\"O\"], \"intent\": \"x\"}\n",
            "{\"words\": [\"b\"], \"tags\": [\"O\"], \"intent\": \"y\"}\n",
            "\n",
            "{\"words\": [\"c\"], \"intent\": \"x\"}\n",
            "{\"words\": [\"d\"], \"tags\": [\"O\"]}\n",
        ),
    );
    let err = load_err(tmp.path(), "train", None);
    assert_contains(
        &err,
        &[
            "train.jsonl:4:",
            "has tasks intent,",
            "has tasks intent, tags",
        ],
    );
}

#[test]
fn error_inconsistent_tasks_across_splits() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        "{\"words\": [\"a\"], \"tags\": [\"O\"], \"intent\": \"x\"}\n",
    );
    write(tmp.path(), "valid.tsv", "x\ta\n");
    let err = load_dataset(tmp.path(), &ReadOptions::default(), 0.1, 0)
        .unwrap_err()
        .to_string();
    assert_contains(
        &err,
        &[
            "valid.tsv",
            "has tasks intent,",
            "train.jsonl",
            "has tasks intent, tags",
        ],
    );
}

#[test]
fn error_two_candidates_for_a_split() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        "{\"text\": \"a\", \"intent\": \"x\"}\n",
    );
    write(tmp.path(), "train.tsv", "x\ta\n");
    let err = load_err(tmp.path(), "train", None);
    assert_contains(&err, &["train.jsonl", "train.tsv", "\"train\""]);

    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "valid/seq.in", "a\n");
    write(tmp.path(), "valid/label", "x\n");
    write(tmp.path(), "valid.csv", "x,a\n");
    let err = load_err(tmp.path(), "valid", Some(Format::Csv));
    assert_contains(&err, &["valid.csv", "valid\"", "ambiguous"]);
}

#[test]
fn error_csv_structure() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (content, expected)) in [
        ("x,a\ny,b,c\n", &["train.csv:2:", "found 3"][..]),
        (
            "x,a\ny,\"open\nz,c\n",
            &["train.csv:2:", "unterminated"][..],
        ),
        ("x,\"a\"b\n", &["train.csv:1:", "closing quote"][..]),
        ("x,a\nonly\n", &["train.csv:2:", "found 1"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(i.to_string());
        write(&dir, "train.csv", content);
        assert_contains(&load_err(&dir, "train", None), expected);
    }
    write(tmp.path(), "t/train.tsv", "x\ta\nno tab here\n");
    assert_contains(
        &load_err(&tmp.path().join("t"), "train", None),
        &["train.tsv:2:", "tab"],
    );
}

#[test]
fn error_values_expose_path_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "train.jsonl",
        "{\"text\": \"a\", \"intent\": \"x\"}\n{oops}\n",
    );
    let err = load_split(tmp.path(), "train", &ReadOptions::default()).unwrap_err();
    assert_eq!(err.path(), file.as_path());
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2: invalid JSON", file.display())),
        "{err}"
    );
}
