//! Evaluation: conlleval chunk semantics and span F1 against hand-computed cases, intent scores,
//! sentence accuracy, unseen labels, per-token accuracy of token tasks that are not BIO, every
//! task's scores and the all-tasks accuracy, the JSON contract and the text report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use edgetune::data::{Example, Labels, Origin, Split, TaskInfo, TaskKind};
use edgetune::eval::render_table;
use edgetune::metrics::{evaluate, spans, EvalReport, Prf, Span};

fn tags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn span(kind: &str, start: usize, end: usize) -> Span {
    Span {
        kind: kind.to_string(),
        start,
        end,
    }
}

/// Labels with an optional `intent` and optional `tags`.
fn labels_of(intent: Option<&str>, tag_str: Option<&str>) -> Labels {
    let mut l = Labels::default();
    if let Some(i) = intent {
        l.sentence.insert("intent".into(), i.into());
    }
    if let Some(t) = tag_str {
        l.token.insert("tags".into(), tags(t));
    }
    l
}

fn example(intent: Option<&str>, tag_str: Option<&str>, line: usize) -> Example {
    let n = tag_str.map_or(1, |t| tags(t).len());
    Example {
        words: (0..n).map(|i| format!("w{i}")).collect(),
        labels: labels_of(intent, tag_str),
        origin: Origin {
            file: PathBuf::from("gold.jsonl"),
            line,
        },
    }
}

fn pred(intent: Option<&str>, tag_str: Option<&str>) -> Labels {
    labels_of(intent, tag_str)
}

/// The model's tasks: `intent` with these labels and the span task `tags` with B-/I- tags of these
/// slot types (each left out when its list is empty).
fn labels(intents: &[&str], slot_types: &[&str]) -> Vec<TaskInfo> {
    let mut t = Vec::new();
    if !intents.is_empty() {
        t.push(TaskInfo {
            name: "intent".into(),
            kind: TaskKind::Sentence,
            labels: intents.iter().map(|s| s.to_string()).collect(),
        });
    }
    if !slot_types.is_empty() {
        let mut l = vec!["O".to_string()];
        for s in slot_types {
            l.push(format!("B-{s}"));
            l.push(format!("I-{s}"));
        }
        t.push(TaskInfo {
            name: "tags".into(),
            kind: TaskKind::Spans,
            labels: l,
        });
    }
    t
}

fn approx(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

fn prf(tp: usize, fp: usize, fn_: usize) -> Prf {
    Prf { tp, fp, fn_ }
}

// ---------------------------------------------------------------- chunks

#[test]
fn spans_bio() {
    assert_eq!(
        spans(&tags("B-a I-a O B-b")),
        vec![span("a", 0, 2), span("b", 3, 4)]
    );
    assert_eq!(spans(&tags("O O")), vec![]);
    assert_eq!(spans(&[]), vec![]);
    // A chunk running to the end of the sentence.
    assert_eq!(spans(&tags("O B-a I-a I-a")), vec![span("a", 1, 4)]);
    // B after B of the same type starts a new chunk.
    assert_eq!(
        spans(&tags("B-a B-a I-a")),
        vec![span("a", 0, 1), span("a", 1, 3)]
    );
}

#[test]
fn spans_iob1_and_type_changes() {
    // I-X after O (or at the start) opens a chunk.
    assert_eq!(
        spans(&tags("I-a I-a O I-a")),
        vec![span("a", 0, 2), span("a", 3, 4)]
    );
    // I-X after a tag of another type closes the old chunk and opens a new one.
    assert_eq!(
        spans(&tags("B-a I-b I-b B-b I-a")),
        vec![
            span("a", 0, 1),
            span("b", 1, 3),
            span("b", 3, 4),
            span("a", 4, 5)
        ]
    );
    // Types with hyphens and dots: the type is everything after the first hyphen.
    assert_eq!(
        spans(&tags("B-from.city-name I-from.city-name")),
        vec![span("from.city-name", 0, 2)]
    );
}

#[test]
fn spans_treat_malformed_tags_as_o() {
    assert_eq!(
        spans(&tags("B-a junk I-a")),
        vec![span("a", 0, 1), span("a", 2, 3)]
    );
    assert_eq!(spans(&tags("B- I-a E-a S-b")), vec![span("a", 1, 2)]);
    assert_eq!(spans(&tags("B-a I-")), vec![span("a", 0, 1)]);
}

// ---------------------------------------------------------------- counts

#[test]
fn prf_ratios_and_undefined_cases() {
    let p = prf(3, 1, 2);
    approx(p.precision(), 0.75);
    approx(p.recall(), 0.6);
    approx(p.f1(), 2.0 * 0.75 * 0.6 / 1.35);
    assert_eq!(p.support(), 5);
    let zero = prf(0, 0, 0);
    assert_eq!(
        (zero.precision(), zero.recall(), zero.f1()),
        (0.0, 0.0, 0.0)
    );
    let only_fp = prf(0, 4, 0);
    assert_eq!(
        (only_fp.precision(), only_fp.recall(), only_fp.f1()),
        (0.0, 0.0, 0.0)
    );
}

#[test]
fn partial_match_counts_as_fp_and_fn() {
    let gold = [example(None, Some("B-per I-per O B-loc"), 1)];
    let p = [pred(None, Some("B-per O O B-loc"))];
    let r = evaluate(&gold, &p, &labels(&[], &["per", "loc"]));
    assert_eq!(r.tasks["tags"].labels["per"], prf(0, 1, 1));
    assert_eq!(r.tasks["tags"].labels["loc"], prf(1, 0, 0));
    approx(r.metrics.slot_precision.unwrap(), 0.5);
    approx(r.metrics.slot_recall.unwrap(), 0.5);
    approx(r.metrics.slot_f1.unwrap(), 0.5);
    assert_eq!(r.metrics.intent_accuracy, None);
    assert_eq!(r.metrics.sentence_accuracy, None);
}

#[test]
fn conlleval_micro_f1_over_sentences() {
    // Hand-computed, chunk by chunk:
    //   1: a[0,2) right; gold b[3,4) missed; predicted c[3,4) wrong     -> tp 1, fp 1, fn 1
    //   2: predicted a[0,1) where gold has nothing                      -> fp 1
    //   3: gold b[0,3) split into b[0,2) + b[2,3) (boundary error)      -> fp 2, fn 1
    //   4: gold IOB1 I-d I-d equals predicted B-d I-d                    -> tp 1
    // total tp 2, fp 4, fn 2: P = 2/6, R = 2/4, F1 = 2PR/(P+R) = 0.4
    let gold = [
        example(None, Some("B-a I-a O B-b"), 1),
        example(None, Some("O O"), 2),
        example(None, Some("B-b I-b I-b"), 3),
        example(None, Some("I-d I-d O"), 4),
    ];
    let p = [
        pred(None, Some("B-a I-a O B-c")),
        pred(None, Some("B-a O")),
        pred(None, Some("B-b I-b B-b")),
        pred(None, Some("B-d I-d O")),
    ];
    let r = evaluate(&gold, &p, &labels(&[], &["a", "b", "c", "d"]));
    approx(r.metrics.slot_precision.unwrap(), 2.0 / 6.0);
    approx(r.metrics.slot_recall.unwrap(), 0.5);
    approx(r.metrics.slot_f1.unwrap(), 0.4);
    let expected: BTreeMap<String, Prf> = [
        ("a", prf(1, 1, 0)),
        ("b", prf(0, 2, 2)),
        ("c", prf(0, 1, 0)),
        ("d", prf(1, 0, 0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(r.tasks["tags"].labels, expected);
    assert_eq!(r.metrics.examples, 4);
}

#[test]
fn no_predicted_chunks_gives_zero_not_nan() {
    let gold = [example(None, Some("B-a O"), 1)];
    let r = evaluate(&gold, &[pred(None, Some("O O"))], &labels(&[], &["a"]));
    assert_eq!(r.metrics.slot_precision, Some(0.0));
    assert_eq!(r.metrics.slot_recall, Some(0.0));
    assert_eq!(r.metrics.slot_f1, Some(0.0));
}

#[test]
fn intent_scores_and_confusions() {
    let gold = [
        example(Some("on"), None, 1),
        example(Some("on"), None, 2),
        example(Some("on"), None, 3),
        example(Some("off"), None, 4),
        example(Some("off"), None, 5),
    ];
    let p = [
        pred(Some("on"), None),
        pred(Some("off"), None),
        pred(Some("off"), None),
        pred(Some("off"), None),
        pred(Some("play"), None),
    ];
    let r = evaluate(&gold, &p, &labels(&["on", "off", "play"], &[]));
    approx(r.metrics.intent_accuracy.unwrap(), 0.4);
    assert_eq!(r.tasks["intent"].labels["on"], prf(1, 0, 2));
    assert_eq!(r.tasks["intent"].labels["off"], prf(1, 2, 1));
    assert_eq!(r.tasks["intent"].labels["play"], prf(0, 1, 0));
    assert_eq!(
        r.tasks["intent"].confusions(),
        vec![
            ("on".to_string(), "off".to_string(), 2),
            ("off".to_string(), "play".to_string(), 1)
        ]
    );
    assert_eq!(r.metrics.slot_f1, None);
    assert_eq!(r.metrics.sentence_accuracy, None);
}

#[test]
fn sentence_accuracy_needs_intent_and_all_chunks() {
    let gold = [
        example(Some("x"), Some("B-a O"), 1),
        example(Some("x"), Some("B-a O"), 2),
        example(Some("y"), Some("O B-b"), 3),
        example(Some("y"), Some("I-b I-b"), 4),
    ];
    let p = [
        pred(Some("x"), Some("B-a O")),   // both right
        pred(Some("x"), Some("B-a B-a")), // an extra chunk
        pred(Some("x"), Some("O B-b")),   // wrong intent
        pred(Some("y"), Some("B-b I-b")), // same chunk as IOB1 gold: right
    ];
    let r = evaluate(&gold, &p, &labels(&["x", "y"], &["a", "b"]));
    approx(r.metrics.sentence_accuracy.unwrap(), 0.5);
    approx(r.metrics.intent_accuracy.unwrap(), 0.75);
    // Slots: tp 4 (a, a, b, b), fp 1 (extra a), fn 0.
    approx(r.metrics.slot_precision.unwrap(), 0.8);
    approx(r.metrics.slot_recall.unwrap(), 1.0);
}

#[test]
fn missing_task_or_prediction_counts_as_miss() {
    let gold = [
        example(Some("x"), Some("B-a"), 1),
        example(Some("x"), Some("O"), 2),
        example(Some("x"), Some("B-a"), 3),
    ];
    // The first two predictions have no tags (even "O" is then not right); the third is missing.
    let p = [pred(Some("x"), None), pred(Some("x"), None)];
    let r = evaluate(&gold, &p, &labels(&["x"], &["a"]));
    assert_eq!(r.metrics.examples, 3);
    approx(r.metrics.intent_accuracy.unwrap(), 2.0 / 3.0);
    assert_eq!(r.tasks["tags"].labels["a"], prf(0, 0, 2));
    assert_eq!(r.metrics.sentence_accuracy, Some(0.0));
    assert_eq!(
        r.tasks["intent"].confusions(),
        vec![("x".to_string(), "(none)".to_string(), 1)]
    );
}

#[test]
fn unseen_labels_are_misses_and_listed() {
    let gold = [
        example(Some("a"), Some("B-x O B-y"), 1),
        example(Some("c"), Some("B-y I-y O"), 2),
        example(Some("c"), Some("O O B-x"), 3),
    ];
    let p = [
        pred(Some("a"), Some("B-x O O")),
        pred(Some("a"), Some("O O O")),
        pred(Some("b"), Some("O O B-x")),
    ];
    let r = evaluate(&gold, &p, &labels(&["a", "b"], &["x"]));
    assert_eq!(r.unseen_intents(), BTreeMap::from([("c".to_string(), 2)]));
    assert_eq!(
        r.unseen_slot_types(),
        BTreeMap::from([("y".to_string(), 2)])
    );
    approx(r.metrics.intent_accuracy.unwrap(), 1.0 / 3.0);
    assert_eq!(r.tasks["intent"].labels["c"], prf(0, 0, 2));
    assert_eq!(r.tasks["tags"].labels["y"], prf(0, 0, 2));
    assert_eq!(r.tasks["tags"].labels["x"], prf(2, 0, 0));
    approx(r.metrics.slot_recall.unwrap(), 0.5);
    approx(r.metrics.slot_precision.unwrap(), 1.0);
    assert_eq!(
        r.tasks["intent"].confusions(),
        vec![
            ("c".to_string(), "a".to_string(), 1),
            ("c".to_string(), "b".to_string(), 1)
        ]
    );
}

#[test]
fn label_sets_from_examples() {
    // The tasks of a split: labels sorted; for `tags` always a span task with `O` first (here
    // unseen `O`s and a malformed tag in the gold data do not change that).
    let split = Split {
        name: "gold".into(),
        source: PathBuf::from("gold.jsonl"),
        format: edgetune::data::Format::Jsonl,
        examples: vec![
            example(Some("a"), Some("B-x I-x O junk"), 1),
            example(Some("b"), Some("I-y"), 2),
        ],
    };
    let t = split.tasks();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].name, "intent");
    assert_eq!(t[0].kind, TaskKind::Sentence);
    assert_eq!(t[0].labels, vec!["a", "b"]);
    assert_eq!(t[1].name, "tags");
    assert_eq!(t[1].kind, TaskKind::Spans);
    assert_eq!(t[1].labels, vec!["O", "B-x", "I-x", "I-y", "junk"]);
    // The chunk types seen are x and y: gold chunks of those types are not "unseen".
    let r = evaluate(
        &split.examples,
        &[
            pred(Some("a"), Some("B-x I-x O O")),
            pred(Some("b"), Some("I-y")),
        ],
        &t,
    );
    assert!(
        r.unseen_slot_types().is_empty(),
        "{:?}",
        r.unseen_slot_types()
    );
    assert_eq!(r.metrics.slot_f1, Some(1.0));
}

// ---------------------------------------------------------------- output

#[test]
fn metrics_json_field_names() {
    let gold = [example(Some("x"), Some("B-a O"), 1)];
    let r = evaluate(
        &gold,
        &[pred(Some("x"), Some("B-a O"))],
        &labels(&["x"], &["a"]),
    );
    let json = serde_json::to_value(&r.metrics).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "all_tasks_accuracy",
        "examples",
        "intent_accuracy",
        "sentence_accuracy",
        "slot_f1",
        "slot_precision",
        "slot_recall",
        "tasks",
    ];
    expected.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, expected);
    assert_eq!(json["examples"], 1);
    assert_eq!(json["slot_f1"], 1.0);
    assert_eq!(json["all_tasks_accuracy"], 1.0);
    assert_eq!(
        json["tasks"],
        serde_json::json!({
            "intent": {"examples": 1, "accuracy": 1.0},
            "tags": {"examples": 1, "span_f1": 1.0, "precision": 1.0, "recall": 1.0},
        })
    );

    // Intent-only gold: the slot, sentence and all-tasks fields are left out, not null.
    let gold = [example(Some("x"), None, 1), example(Some("y"), None, 2)];
    let r = evaluate(
        &gold,
        &[pred(Some("x"), None), pred(Some("x"), None)],
        &labels(&["x", "y"], &[]),
    );
    let json = serde_json::to_value(&r.metrics).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"examples": 2, "intent_accuracy": 0.5,
                           "tasks": {"intent": {"examples": 2, "accuracy": 0.5}}})
    );

    // The whole report serializes too; Prf's false negatives are "fn".
    let report = serde_json::to_value(&r).unwrap();
    assert_eq!(
        report["tasks"]["intent"]["labels"]["y"],
        serde_json::json!({"tp": 0, "fp": 0, "fn": 1})
    );
    assert_eq!(report["tasks"]["intent"]["kind"], "sentence");
    let back: EvalReport = serde_json::from_value(report).unwrap();
    assert_eq!(back, r);
}

#[test]
fn render_table_shows_metrics_labels_confusions_and_unseen() {
    let gold = [
        example(Some("on"), Some("B-dev O"), 1),
        example(Some("on"), Some("B-dev O"), 2),
        example(Some("new"), Some("B-room O"), 3),
    ];
    let p = [
        pred(Some("on"), Some("B-dev O")),
        pred(Some("off"), Some("B-dev O")),
        pred(Some("on"), Some("O O")),
    ];
    let text = render_table(&evaluate(&gold, &p, &labels(&["on", "off"], &["dev"])));
    for part in [
        "examples: 3",
        "intent accuracy",
        "33.33%",
        "slot F1",
        "80.00%", // tp 2, fp 0, fn 1: P 1, R 2/3, F1 0.8
        "sentence accuracy",
        "precision",
        "support",
        "on -> off",
        "new -> on",
        "intents not seen in training",
        "slot types not seen in training",
        "room",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

// ---------------------------------------------------------------- named tasks

/// An example with any sentence and token tasks (`words` as many as the first token task's labels).
fn multi(sentence: &[(&str, &str)], token: &[(&str, &str)], line: usize) -> Example {
    let l = multi_labels(sentence, token);
    let n = l.token.values().next().map_or(1, Vec::len);
    Example {
        words: (0..n).map(|i| format!("w{i}")).collect(),
        labels: l,
        origin: Origin {
            file: PathBuf::from("gold.jsonl"),
            line,
        },
    }
}

fn multi_labels(sentence: &[(&str, &str)], token: &[(&str, &str)]) -> Labels {
    Labels {
        sentence: sentence
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        token: token
            .iter()
            .map(|(k, v)| (k.to_string(), tags(v)))
            .collect(),
    }
}

fn task(name: &str, kind: TaskKind, labels: &str) -> TaskInfo {
    TaskInfo {
        name: name.into(),
        kind,
        labels: tags(labels),
    }
}

/// Per-token accuracy for a token task that is not BIO: every word counts once; labels, the
/// confusion counts and unseen labels are per word; a missing prediction is a miss.
#[test]
fn token_task_per_token_accuracy() {
    let pos = task("pos", TaskKind::Tokens, "DET NOUN VERB");
    let gold = [
        multi(&[], &[("pos", "VERB DET NOUN")], 1),
        multi(&[], &[("pos", "VERB ADJ")], 2),
        multi(&[], &[("pos", "NOUN")], 3),
    ];
    let p = [
        multi_labels(&[], &[("pos", "VERB NOUN NOUN")]),
        multi_labels(&[], &[("pos", "VERB NOUN")]),
    ];
    let r = evaluate(&gold, &p, std::slice::from_ref(&pos));
    let s = &r.metrics.tasks["pos"];
    assert_eq!(s.examples, 3);
    // Words: 6; right: VERB, NOUN (ex. 1), VERB (ex. 2) = 3.
    approx(s.token_accuracy.unwrap(), 0.5);
    assert_eq!((s.accuracy, s.span_f1), (None, None));
    let t = &r.tasks["pos"];
    assert_eq!(t.kind, TaskKind::Tokens);
    assert_eq!(t.labels["VERB"], prf(2, 0, 0));
    assert_eq!(t.labels["DET"], prf(0, 0, 1));
    assert_eq!(t.labels["NOUN"], prf(1, 2, 1));
    assert_eq!(t.unseen, BTreeMap::from([("ADJ".to_string(), 1)]));
    assert_eq!(t.counts["DET"]["NOUN"], 1);
    assert_eq!(t.counts["NOUN"]["(none)"], 1);
    // Legacy keys describe `intent` and `tags` only; with one task there is no all-tasks accuracy.
    assert_eq!(r.metrics.intent_accuracy, None);
    assert_eq!(r.metrics.slot_f1, None);
    assert_eq!(r.metrics.all_tasks_accuracy, None);
    approx(r.metrics.score(), 0.5);
}

/// Four tasks (two sentence tasks, the span task `tags`, a per-word task): each task's scores under
/// `tasks`, the all-tasks accuracy over examples with every task right, and the legacy keys with the
/// values they had for `intent` + `tags` alone.
#[test]
fn every_task_scored_and_legacy_keys_unchanged() {
    let tasks = vec![
        task("domain", TaskKind::Sentence, "info media power"),
        task("intent", TaskKind::Sentence, "off on play"),
        task("pos", TaskKind::Tokens, "DET NOUN VERB"),
        task("tags", TaskKind::Spans, "O B-dev I-dev"),
    ];
    let g = |d: &str, i: &str, pos: &str, t: &str, line| {
        multi(
            &[("domain", d), ("intent", i)],
            &[("pos", pos), ("tags", t)],
            line,
        )
    };
    let p = |d: &str, i: &str, pos: &str, t: &str| {
        multi_labels(
            &[("domain", d), ("intent", i)],
            &[("pos", pos), ("tags", t)],
        )
    };
    let gold = [
        g("power", "on", "VERB DET NOUN", "O O B-dev", 1),
        g("power", "off", "VERB NOUN", "O B-dev", 2),
        g("media", "play", "VERB NOUN", "O O", 3),
        g("info", "play", "VERB", "O", 4),
    ];
    let preds = [
        p("power", "on", "VERB DET NOUN", "O O B-dev"), // all right
        p("power", "off", "VERB VERB", "O B-dev"),      // pos wrong on one word
        p("media", "play", "VERB NOUN", "O O"),         // all right
        p("media", "play", "VERB", "O"),                // domain wrong
    ];
    let r = evaluate(&gold, &preds, &tasks);
    let m = &r.metrics;
    approx(m.tasks["domain"].accuracy.unwrap(), 0.75);
    approx(m.tasks["intent"].accuracy.unwrap(), 1.0);
    approx(m.tasks["pos"].token_accuracy.unwrap(), 7.0 / 8.0);
    approx(m.tasks["tags"].span_f1.unwrap(), 1.0);
    approx(m.all_tasks_accuracy.unwrap(), 0.5);
    // Legacy: intent accuracy, slot P/R/F1 of `tags`, sentence accuracy over intent + tags only.
    assert_eq!(m.intent_accuracy, m.tasks["intent"].accuracy);
    assert_eq!(m.slot_f1, m.tasks["tags"].span_f1);
    assert_eq!(m.slot_precision, m.tasks["tags"].precision);
    assert_eq!(m.slot_recall, m.tasks["tags"].recall);
    approx(m.sentence_accuracy.unwrap(), 1.0);
    // The same gold and predictions restricted to intent + tags give the same legacy values.
    let legacy = evaluate(
        &gold,
        &preds,
        &tasks
            .iter()
            .filter(|t| t.name == "intent" || t.name == "tags")
            .cloned()
            .collect::<Vec<_>>(),
    );
    for (a, b) in [
        (m.intent_accuracy, legacy.metrics.intent_accuracy),
        (m.slot_f1, legacy.metrics.slot_f1),
        (m.slot_precision, legacy.metrics.slot_precision),
        (m.slot_recall, legacy.metrics.slot_recall),
        (m.sentence_accuracy, legacy.metrics.sentence_accuracy),
    ] {
        assert_eq!(a, b);
    }
    // Early stopping's score: the mean of the headline scores and the all-tasks accuracy.
    approx(m.score(), (0.75 + 1.0 + 7.0 / 8.0 + 1.0 + 0.5) / 5.0);
    let json = serde_json::to_value(m).unwrap();
    assert_eq!(json["all_tasks_accuracy"], 0.5);
    assert_eq!(json["tasks"]["pos"]["token_accuracy"], 0.875);
    assert_eq!(json["tasks"]["domain"]["accuracy"], 0.75);
    // The table names every task.
    let text = render_table(&r);
    for part in [
        "domain accuracy",
        "pos token accuracy",
        "all tasks accuracy",
        "slot F1",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

/// A span task not named `tags` is scored by span F1 under its own name; the `slot_*` keys stay
/// absent. Tasks the gold data lacks are left out.
#[test]
fn other_span_task_and_tasks_missing_from_gold() {
    let tasks = vec![
        task("intent", TaskKind::Sentence, "a b"),
        task("ner", TaskKind::Spans, "O B-per I-per"),
    ];
    let gold = [multi(&[], &[("ner", "B-per I-per O")], 1)];
    let r = evaluate(
        &gold,
        &[multi_labels(&[("intent", "a")], &[("ner", "B-per O O")])],
        &tasks,
    );
    assert_eq!(r.metrics.slot_f1, None);
    assert_eq!(r.metrics.intent_accuracy, None);
    assert!(!r.metrics.tasks.contains_key("intent"));
    assert_eq!(r.metrics.tasks["ner"].span_f1, Some(0.0));
    assert_eq!(r.tasks["ner"].labels["per"], prf(0, 1, 1));
    assert_eq!(r.metrics.all_tasks_accuracy, None);
}
