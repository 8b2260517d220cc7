//! Evaluation: conlleval chunk semantics and span F1 against hand-computed cases, intent scores,
//! sentence accuracy, unseen labels, the JSON contract and the text report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use edgetune::data::{Example, Origin};
use edgetune::eval::{evaluate, render_table, spans, EvalReport, LabelSets, Prediction, Prf, Span};

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

fn example(intent: Option<&str>, tag_str: Option<&str>, line: usize) -> Example {
    let n = tag_str.map_or(1, |t| tags(t).len());
    Example {
        words: (0..n).map(|i| format!("w{i}")).collect(),
        tags: tag_str.map(tags),
        intent: intent.map(str::to_string),
        origin: Origin {
            file: PathBuf::from("gold.jsonl"),
            line,
        },
    }
}

fn pred(intent: Option<&str>, tag_str: Option<&str>) -> Prediction {
    Prediction {
        intent: intent.map(str::to_string),
        tags: tag_str.map(tags),
    }
}

fn labels(intents: &[&str], slot_types: &[&str]) -> LabelSets {
    LabelSets {
        intents: intents.iter().map(|s| s.to_string()).collect(),
        slot_types: slot_types.iter().map(|s| s.to_string()).collect(),
    }
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
    assert_eq!(r.slots["per"], prf(0, 1, 1));
    assert_eq!(r.slots["loc"], prf(1, 0, 0));
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
    assert_eq!(r.slots, expected);
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
    assert_eq!(r.intents["on"], prf(1, 0, 2));
    assert_eq!(r.intents["off"], prf(1, 2, 1));
    assert_eq!(r.intents["play"], prf(0, 1, 0));
    assert_eq!(
        r.intent_confusions,
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
    assert_eq!(r.slots["a"], prf(0, 0, 2));
    assert_eq!(r.metrics.sentence_accuracy, Some(0.0));
    assert_eq!(
        r.intent_confusions,
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
    assert_eq!(r.unseen_intents, BTreeMap::from([("c".to_string(), 2)]));
    assert_eq!(r.unseen_slot_types, BTreeMap::from([("y".to_string(), 2)]));
    approx(r.metrics.intent_accuracy.unwrap(), 1.0 / 3.0);
    assert_eq!(r.intents["c"], prf(0, 0, 2));
    assert_eq!(r.slots["y"], prf(0, 0, 2));
    assert_eq!(r.slots["x"], prf(2, 0, 0));
    approx(r.metrics.slot_recall.unwrap(), 0.5);
    approx(r.metrics.slot_precision.unwrap(), 1.0);
    assert_eq!(
        r.intent_confusions,
        vec![
            ("c".to_string(), "a".to_string(), 1),
            ("c".to_string(), "b".to_string(), 1)
        ]
    );
}

#[test]
fn label_sets_from_examples() {
    let ex = [
        example(Some("a"), Some("B-x I-x O junk"), 1),
        example(Some("b"), Some("I-y"), 2),
    ];
    assert_eq!(
        LabelSets::from_examples(&ex),
        labels(&["a", "b"], &["x", "y"])
    );
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
        "examples",
        "intent_accuracy",
        "sentence_accuracy",
        "slot_f1",
        "slot_precision",
        "slot_recall",
    ];
    expected.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, expected);
    assert_eq!(json["examples"], 1);
    assert_eq!(json["slot_f1"], 1.0);

    // Intent-only gold: the slot and sentence fields are left out, not null.
    let gold = [example(Some("x"), None, 1), example(Some("y"), None, 2)];
    let r = evaluate(
        &gold,
        &[pred(Some("x"), None), pred(Some("x"), None)],
        &labels(&["x", "y"], &[]),
    );
    let json = serde_json::to_value(&r.metrics).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"examples": 2, "intent_accuracy": 0.5})
    );

    // The whole report serializes too; Prf's false negatives are "fn".
    let report = serde_json::to_value(&r).unwrap();
    assert_eq!(
        report["intents"]["y"],
        serde_json::json!({"tp": 0, "fp": 0, "fn": 1})
    );
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
