//! Task discovery in every format: which keys, columns and files become which named tasks, of
//! which kind (sentence, BIO spans, per-word tokens), with which labels; the errors of ambiguous
//! or inconsistent task data (naming file, line and field); `Dataset::select_tasks`.

use std::fs;
use std::path::{Path, PathBuf};

use edgetune::data::{
    load_dataset, load_split, DataError, Format, ReadOptions, Split, TaskInfo, TaskKind,
};

fn write(dir: &Path, rel: &str, content: &str) -> PathBuf {
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

fn load_with(dir: &Path, opts: &ReadOptions) -> Result<Split, DataError> {
    load_split(dir, "train", opts).map(|s| s.expect("split exists"))
}

fn load(dir: &Path) -> Split {
    load_with(dir, &ReadOptions::default()).unwrap()
}

fn err(dir: &Path, opts: &ReadOptions) -> String {
    match load_with(dir, opts) {
        Ok(s) => panic!("expected an error, got {:?}", s.tasks()),
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

fn info(name: &str, kind: TaskKind, labels: &str) -> TaskInfo {
    TaskInfo {
        name: name.into(),
        kind,
        labels: strings(labels),
    }
}

// ---------------------------------------------------------------- JSON lines

#[test]
fn jsonl_string_keys_are_sentence_tasks_and_list_keys_token_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        concat!(
            r#"{"id": "a1", "text": "play some jazz", "intent": "play", "sentiment": "pos", "tags": ["O", "O", "B-genre"], "pos": ["VERB", "DET", "NOUN"], "ner": ["O", "O", "B-misc"], "meta": {"x": 1}, "score": 0.5}"#,
            "\n",
            r#"{"id": 7, "words": ["stop", "it"], "intent": "stop", "sentiment": "neg", "tags": ["O", "O"], "pos": ["VERB", "O"], "ner": ["O", "O"], "meta": null}"#,
            "\n",
        ),
    );
    let split = load(tmp.path());
    let e = &split.examples[0];
    assert_eq!(e.labels.sentence.len(), 2, "{:?}", e.labels);
    assert_eq!(e.labels.sentence["sentiment"], "pos");
    assert_eq!(e.labels.token["pos"], strings("VERB DET NOUN"));
    assert!(
        !e.labels.sentence.contains_key("id") && !e.labels.sentence.contains_key("text"),
        "reserved keys are not tasks: {:?}",
        e.labels
    );
    // Sentence tasks first, then token tasks, each group by name. `tags` and any all-BIO token
    // task are span tasks with `O` as class 0; other token tasks are per-word tasks, with `O`
    // first when it occurs.
    assert_eq!(
        split.tasks(),
        vec![
            info("intent", TaskKind::Sentence, "play stop"),
            info("sentiment", TaskKind::Sentence, "neg pos"),
            info("ner", TaskKind::Spans, "O B-misc"),
            info("pos", TaskKind::Tokens, "O DET NOUN VERB"),
            info("tags", TaskKind::Spans, "O B-genre"),
        ]
    );
}

#[test]
fn bio_detection_always_puts_o_first() {
    let tmp = tempfile::tempdir().unwrap();
    // A BIO task whose data never uses `O` still gets it as class 0 (decoding and truncated words
    // need it); a task with one non-BIO label is per-word.
    write(
        tmp.path(),
        "train.jsonl",
        concat!(
            r#"{"words": ["new", "york"], "city": ["B-city", "I-city"], "case": ["lower", "lower"]}"#,
            "\n",
            r#"{"words": ["Paris"], "city": ["B-city"], "case": ["Title"]}"#,
            "\n",
        ),
    );
    assert_eq!(
        load(tmp.path()).tasks(),
        vec![
            info("case", TaskKind::Tokens, "Title lower"),
            info("city", TaskKind::Spans, "O B-city I-city"),
        ]
    );
}

#[test]
fn jsonl_token_list_of_the_wrong_length_names_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        concat!(
            r#"{"text": "a b", "intent": "x", "pos": ["N", "V"]}"#,
            "\n\n",
            r#"{"text": "a b c", "intent": "x", "pos": ["N", "V"]}"#,
            "\n",
        ),
    );
    assert_contains(
        &err(tmp.path(), &ReadOptions::default()),
        &["train.jsonl:3:", "field \"pos\"", "2 labels for 3 words"],
    );
}

#[test]
fn jsonl_key_given_twice_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        "{\"text\": \"a\", \"intent\": \"x\"}\n{\"text\": \"b\", \"intent\": \"x\", \"intent\": \"y\"}\n",
    );
    assert_contains(
        &err(tmp.path(), &ReadOptions::default()),
        &["train.jsonl:2:", "\"intent\"", "twice"],
    );
}

#[test]
fn jsonl_text_and_words_must_agree() {
    let tmp = tempfile::tempdir().unwrap();
    // Both given and equal: fine.
    write(
        tmp.path(),
        "ok/train.jsonl",
        "{\"text\": \"play  jazz\", \"words\": [\"play\", \"jazz\"], \"intent\": \"x\"}\n",
    );
    assert_eq!(
        load(&tmp.path().join("ok")).examples[0].words,
        strings("play jazz")
    );
    write(
        tmp.path(),
        "bad/train.jsonl",
        "{\"text\": \"play some jazz\", \"words\": [\"play\", \"jazz\"], \"intent\": \"x\"}\n",
    );
    assert_contains(
        &err(&tmp.path().join("bad"), &ReadOptions::default()),
        &["train.jsonl:1:", "\"text\"", "\"words\"", "disagree"],
    );
}

#[test]
fn jsonl_intent_and_tags_keep_their_types() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (line, expected)) in [
        (r#"{"text": "a", "tags": "O"}"#, "field \"tags\""),
        (
            r#"{"text": "a b", "intent": ["x", "y"]}"#,
            "field \"intent\"",
        ),
        (r#"{"text": "a", "intent": 3}"#, "field \"intent\""),
        (r#"{"text": "a", "tags": 3}"#, "field \"tags\""),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(i.to_string());
        write(&dir, "train.jsonl", &format!("{line}\n"));
        assert_contains(
            &err(&dir, &ReadOptions::default()),
            &["train.jsonl:1:", expected],
        );
    }
}

#[test]
fn jsonl_unusable_task_names_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        "{\"text\": \"a\", \"my label\": \"x\"}\n",
    );
    assert_contains(
        &err(tmp.path(), &ReadOptions::default()),
        &["train.jsonl:1:", "my label"],
    );
}

// ---------------------------------------------------------------- TSV / CSV

#[test]
fn tsv_and_csv_headers_name_sentence_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "t/train.tsv",
        "intent\tsentiment\ttext\nturn_on\tpos\tturn on\tthe light\nturn_off\tneg\tlights off\n",
    );
    let split = load(&tmp.path().join("t"));
    assert_eq!(
        split.tasks(),
        vec![
            info("intent", TaskKind::Sentence, "turn_off turn_on"),
            info("sentiment", TaskKind::Sentence, "neg pos"),
        ]
    );
    assert_eq!(split.examples[0].words, strings("turn on the light"));
    assert_eq!(split.examples[0].origin.line, 2);

    write(
        tmp.path(),
        "c/train.csv",
        "Intent,topic,Text\nplay,music,\"play jazz, loud\"\n",
    );
    let split = load(&tmp.path().join("c"));
    assert_eq!(
        split.tasks(),
        vec![
            info("intent", TaskKind::Sentence, "play"),
            info("topic", TaskKind::Sentence, "music"),
        ]
    );
    assert_eq!(split.examples[0].words, strings("play jazz, loud"));
}

#[test]
fn label_header_is_intent_and_no_header_is_one_intent_task() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a/train.tsv", "label\ttext\non\tturn on\n");
    write(tmp.path(), "b/train.tsv", "on\tturn on\noff\tturn off\n");
    write(tmp.path(), "c/train.csv", "on,turn on\n");
    for d in ["a", "b", "c"] {
        assert_eq!(
            load(&tmp.path().join(d))
                .tasks()
                .iter()
                .map(|t| (t.name.as_str(), t.kind))
                .collect::<Vec<_>>(),
            vec![("intent", TaskKind::Sentence)],
            "{d}"
        );
    }
}

#[test]
fn header_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "a/train.tsv",
        "intent\tintent\ttext\nx\ty\thi\n",
    );
    assert_contains(
        &err(&tmp.path().join("a"), &ReadOptions::default()),
        &["train.tsv:1:", "intent", "twice"],
    );
    // `label` is `intent`: both in one header is the same task twice.
    write(tmp.path(), "b/train.csv", "label,intent,text\nx,y,hi\n");
    assert_contains(
        &err(&tmp.path().join("b"), &ReadOptions::default()),
        &["train.csv:1:", "intent", "twice"],
    );
    // A data row with too few columns for the header.
    write(
        tmp.path(),
        "c/train.tsv",
        "intent\tsentiment\ttext\nx\tpos\thi\ny\thello\n",
    );
    assert_contains(
        &err(&tmp.path().join("c"), &ReadOptions::default()),
        &["train.tsv:3:", "3 tab-separated columns"],
    );
}

// ---------------------------------------------------------------- CoNLL

const CONLL: &str = "\
-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
";

#[test]
fn conll_named_columns_are_token_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train.conll", CONLL);
    let opts = ReadOptions {
        format: None,
        columns: Some(strings("word pos chunk ner")),
        text_column: None,
    };
    let split = load_with(tmp.path(), &opts).unwrap();
    assert_eq!(split.examples.len(), 2);
    assert_eq!(split.examples[0].words, strings("EU rejects German"));
    let t = split.tasks();
    let names: Vec<(&str, TaskKind)> = t.iter().map(|t| (t.name.as_str(), t.kind)).collect();
    assert_eq!(
        names,
        vec![
            ("chunk", TaskKind::Spans),
            ("ner", TaskKind::Spans),
            ("pos", TaskKind::Tokens),
        ]
    );
    assert_eq!(t[2].labels, strings("JJ NNP VBZ"));
    assert_eq!(
        split.examples[1].labels.token["ner"],
        strings("B-PER I-PER")
    );

    // `_` skips a column; `token` names the words too.
    let opts = ReadOptions {
        format: None,
        columns: Some(strings("token _ _ ner")),
        text_column: None,
    };
    let split = load_with(tmp.path(), &opts).unwrap();
    assert_eq!(
        split.tasks(),
        vec![info("ner", TaskKind::Spans, "O B-MISC B-ORG B-PER I-PER")]
    );
}

#[test]
fn conll_without_column_names_has_the_last_column_as_tags() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train.conll", CONLL);
    let split = load(tmp.path());
    assert_eq!(
        split.tasks(),
        vec![info("tags", TaskKind::Spans, "O B-MISC B-ORG B-PER I-PER")]
    );
}

#[test]
fn conll_column_errors_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.conll",
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP\n",
    );
    let opts = ReadOptions {
        format: None,
        columns: Some(strings("word pos chunk ner")),
        text_column: None,
    };
    assert_contains(
        &err(tmp.path(), &opts),
        &["train.conll:2:", "expected 4 columns", "found 3"],
    );

    for (cols, expected) in [
        ("pos chunk ner", "`word`"),
        ("word word ner", "more than one"),
        ("word ner ner", "twice"),
        ("word _ _", "no task column"),
    ] {
        let opts = ReadOptions {
            format: None,
            columns: Some(cols.split(' ').map(str::to_string).collect()),
            text_column: None,
        };
        assert_contains(
            &err(tmp.path(), &opts),
            &["train.conll", "--columns", expected],
        );
    }
    // Column names apply to CoNLL only.
    write(
        tmp.path(),
        "j/train.jsonl",
        "{\"text\": \"a\", \"intent\": \"x\"}\n",
    );
    let opts = ReadOptions {
        format: None,
        columns: Some(strings("word ner")),
        text_column: None,
    };
    assert_contains(
        &err(&tmp.path().join("j"), &opts),
        &["train.jsonl", "--columns", "jsonl"],
    );
}

// ---------------------------------------------------------------- JointBERT

#[test]
fn jointbert_has_intent_and_tags() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train/seq.in", "turn on the light\nplay jazz\n");
    write(tmp.path(), "train/seq.out", "O O O B-device\nO B-genre\n");
    write(tmp.path(), "train/label", "turn_on\nplay_music\n");
    let split = load(tmp.path());
    assert_eq!(split.format, Format::JointBert);
    assert_eq!(
        split.tasks(),
        vec![
            info("intent", TaskKind::Sentence, "play_music turn_on"),
            info("tags", TaskKind::Spans, "O B-device B-genre"),
        ]
    );
}

// ---------------------------------------------------------------- datasets

#[test]
fn every_split_must_have_the_same_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.jsonl",
        "{\"text\": \"a\", \"intent\": \"x\", \"sentiment\": \"pos\"}\n",
    );
    write(
        tmp.path(),
        "valid.jsonl",
        "{\"text\": \"a\", \"intent\": \"x\"}\n",
    );
    let e = load_dataset(tmp.path(), &ReadOptions::default(), 0.1, 0)
        .unwrap_err()
        .to_string();
    assert_contains(
        &e,
        &["valid.jsonl", "tasks intent", "tasks intent, sentiment"],
    );
}

#[test]
fn select_tasks_keeps_only_the_named_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let line = |i: usize| {
        format!(
            "{{\"words\": [\"w{i}\", \"x\"], \"intent\": \"i{}\", \"sentiment\": \"s{}\", \"tags\": [\"O\", \"B-t\"], \"pos\": [\"A\", \"B\"]}}\n",
            i % 2,
            i % 3
        )
    };
    write(
        tmp.path(),
        "train.jsonl",
        &(0..6).map(line).collect::<String>(),
    );
    write(tmp.path(), "test.jsonl", &line(9));
    let mut d = load_dataset(tmp.path(), &ReadOptions::default(), 0.34, 1).unwrap();
    d.select_tasks(&["sentiment".to_string(), "tags".to_string()])
        .unwrap();
    for s in d.splits() {
        let names: Vec<String> = s.tasks().into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec!["sentiment", "tags"], "{}", s.name);
    }
    let e = d
        .select_tasks(&["topic".to_string()])
        .unwrap_err()
        .to_string();
    assert_contains(&e, &["train.jsonl", "`topic`", "sentiment, tags"]);
}
