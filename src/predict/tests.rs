//! The JSON of a prediction, pinned to the bytes `infer` wrote before predictions were typed
//! (the strings below were printed by `infer::answer` on the same decoded outputs), and the rules
//! around it.

use super::*;
use crate::data::{TaskInfo, TaskKind};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn tasks() -> Vec<TaskInfo> {
    let task = |name: &str, kind, labels: &[&str]| TaskInfo {
        name: name.into(),
        kind,
        labels: strings(labels),
    };
    vec![
        task(
            "intent",
            TaskKind::Sentence,
            &["turn_on", "turn_off", "play_music"],
        ),
        task(
            "tags",
            TaskKind::Spans,
            &["O", "B-room", "I-room", "B-value"],
        ),
        task("mood", TaskKind::Sentence, &["neg", "pos"]),
        task("pos", TaskKind::Tokens, &["NOUN", "VERB", "DET"]),
        task("ner", TaskKind::Spans, &["O", "B-PER", "I-PER"]),
    ]
}

fn sentence(id: usize, prob: f32, logits: Vec<f32>) -> Option<TaskOutput> {
    Some(TaskOutput::Sentence { id, prob, logits })
}

fn token(probs: Vec<Vec<f32>>) -> Option<TaskOutput> {
    Some(TaskOutput::Token { probs })
}

/// `(text, decoded, kept, truncated)`: every task kind; the `tags` -> `slots` key; spans with
/// multi-byte characters, tabs and quotes; a line cut by truncation (words without features, token
/// outputs shorter than the line); a class id outside the labels, NaN and infinite figures, a task
/// without an output.
fn cases() -> Vec<(&'static str, Decoded, Vec<bool>, bool)> {
    let one = Decoded {
        tasks: vec![
            sentence(0, 0.9, vec![3.5, -1.25, 0.1]),
            token(vec![
                vec![0.9, 0.05, 0.03, 0.02],
                vec![0.8, 0.1, 0.05, 0.05],
                vec![0.7, 0.1, 0.1, 0.1],
                vec![0.1, 0.6, 0.2, 0.1],
                vec![0.05, 0.05, 0.85, 0.05],
                vec![0.2, 0.1, 0.6, 0.1],
            ]),
            sentence(1, 1.0 / 3.0, vec![1e10, -1e-7]),
            token(vec![vec![0.1, 0.8, 0.1]; 6]),
            token(vec![
                vec![0.5, 0.3, 0.2],
                vec![0.1, 0.2, 0.7],
                vec![0.9, 0.05, 0.05],
                vec![0.9, 0.05, 0.05],
                vec![0.3, 0.6, 0.1],
                vec![0.2, 0.1, 0.7],
            ]),
        ],
    };
    let two = Decoded {
        tasks: vec![
            sentence(2, 0.123_456_79, vec![f32::MIN_POSITIVE, 0.0, -0.0]),
            token(vec![
                vec![0.1, 0.1, 0.7, 0.1],
                vec![0.1, 0.1, 0.7, 0.1],
                vec![0.1, 0.7, 0.1, 0.1],
                vec![0.6, 0.2, 0.1, 0.1],
            ]),
            None,
            token(vec![vec![0.2, 0.3, 0.5]; 4]),
            token(vec![vec![0.0, 1.0, 0.0]; 4]),
        ],
    };
    let three = Decoded {
        tasks: vec![
            sentence(7, 0.5, vec![0.0; 3]),
            token(vec![vec![0.0, 0.0, 0.0, 1.0]]),
            sentence(0, f32::NAN, vec![f32::NAN, f32::INFINITY]),
            token(vec![]),
            None,
        ],
    };
    vec![
        (
            "turn  on the \"living\"\troom caf\u{e9}",
            one,
            vec![true; 6],
            false,
        ),
        (
            "play jazz in the kids room",
            two,
            vec![true, true, true, false, false, false],
            true,
        ),
        ("x\u{200b}", three, vec![true], false),
    ]
}

/// What `infer::answer` wrote for [`cases`], without and with logits, then the empty line (with
/// the span offsets of issue 25: characters in `char_*`, UTF-8 bytes in `byte_*`).
const BEFORE: &[&str] = &[
    r#"{"intent":{"label":"turn_on","prob":0.8999999761581421},"mood":{"label":"pos","prob":0.3333333432674408},"ner":[{"byte_end":8,"byte_start":0,"char_end":8,"char_start":0,"end":2,"prob":0.5,"start":0,"text":"turn  on","type":"PER"},{"byte_end":32,"byte_start":22,"char_end":31,"char_start":22,"end":6,"prob":0.6499999761581421,"start":4,"text":"room café","type":"PER"}],"pos":["VERB","VERB","VERB","VERB","VERB","VERB"],"slots":[{"byte_end":32,"byte_start":13,"char_end":31,"char_start":13,"end":6,"prob":0.6833333969116211,"start":3,"text":"\"living\"\troom café","type":"room"}],"text":"turn  on the \"living\"\troom café"}"#,
    r#"{"intent":{"label":"turn_on","prob":0.8999999761581421},"intent_logits":[3.5,-1.25,0.10000000149011612],"mood":{"label":"pos","prob":0.3333333432674408},"mood_logits":[10000000000.0,-1.0000000116860974e-7],"ner":[{"byte_end":8,"byte_start":0,"char_end":8,"char_start":0,"end":2,"prob":0.5,"start":0,"text":"turn  on","type":"PER"},{"byte_end":32,"byte_start":22,"char_end":31,"char_start":22,"end":6,"prob":0.6499999761581421,"start":4,"text":"room café","type":"PER"}],"pos":["VERB","VERB","VERB","VERB","VERB","VERB"],"slots":[{"byte_end":32,"byte_start":13,"char_end":31,"char_start":13,"end":6,"prob":0.6833333969116211,"start":3,"text":"\"living\"\troom café","type":"room"}],"text":"turn  on the \"living\"\troom café"}"#,
    r#"{"intent":{"label":"play_music","prob":0.12345679104328156},"ner":[{"byte_end":4,"byte_start":0,"char_end":4,"char_start":0,"end":1,"prob":1.0,"start":0,"text":"play","type":"PER"},{"byte_end":9,"byte_start":5,"char_end":9,"char_start":5,"end":2,"prob":1.0,"start":1,"text":"jazz","type":"PER"},{"byte_end":12,"byte_start":10,"char_end":12,"char_start":10,"end":3,"prob":1.0,"start":2,"text":"in","type":"PER"}],"pos":["DET","DET","DET","NOUN","NOUN","NOUN"],"slots":[{"byte_end":9,"byte_start":0,"char_end":9,"char_start":0,"end":2,"prob":0.4000000059604645,"start":0,"text":"play jazz","type":"room"},{"byte_end":12,"byte_start":10,"char_end":12,"char_start":10,"end":3,"prob":0.699999988079071,"start":2,"text":"in","type":"room"}],"text":"play jazz in the kids room","truncated":true}"#,
    r#"{"intent":{"label":"play_music","prob":0.12345679104328156},"intent_logits":[1.1754943508222875e-38,0.0,-0.0],"ner":[{"byte_end":4,"byte_start":0,"char_end":4,"char_start":0,"end":1,"prob":1.0,"start":0,"text":"play","type":"PER"},{"byte_end":9,"byte_start":5,"char_end":9,"char_start":5,"end":2,"prob":1.0,"start":1,"text":"jazz","type":"PER"},{"byte_end":12,"byte_start":10,"char_end":12,"char_start":10,"end":3,"prob":1.0,"start":2,"text":"in","type":"PER"}],"pos":["DET","DET","DET","NOUN","NOUN","NOUN"],"slots":[{"byte_end":9,"byte_start":0,"char_end":9,"char_start":0,"end":2,"prob":0.4000000059604645,"start":0,"text":"play jazz","type":"room"},{"byte_end":12,"byte_start":10,"char_end":12,"char_start":10,"end":3,"prob":0.699999988079071,"start":2,"text":"in","type":"room"}],"text":"play jazz in the kids room","truncated":true}"#,
    "{\"mood\":{\"label\":\"neg\",\"prob\":null},\"pos\":[\"NOUN\"],\"slots\":[{\"byte_end\":4,\"byte_start\":0,\"char_end\":2,\"char_start\":0,\"end\":1,\"prob\":1.0,\"start\":0,\"text\":\"x\u{200B}\",\"type\":\"value\"}],\"text\":\"x\u{200B}\"}",
    "{\"mood\":{\"label\":\"neg\",\"prob\":null},\"mood_logits\":[null,null],\"pos\":[\"NOUN\"],\"slots\":[{\"byte_end\":4,\"byte_start\":0,\"char_end\":2,\"char_start\":0,\"end\":1,\"prob\":1.0,\"start\":0,\"text\":\"x\u{200B}\",\"type\":\"value\"}],\"text\":\"x\u{200B}\"}",
    r#"{"error":"empty input","text":" \t"}"#,
];

#[test]
fn json_is_byte_identical_to_the_untyped_answers() {
    let tasks = tasks();
    let mut got = Vec::new();
    for (text, decoded, kept, truncated) in cases() {
        let p = Prediction::from_decoded(text, &tasks, &decoded, &kept, truncated);
        for logits in [false, true] {
            got.push(serde_json::to_string(&p.json(logits)).unwrap());
        }
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            serde_json::to_string(&p.json(false)).unwrap()
        );
    }
    let empty = Prediction::unanswered(" \t", Unanswered::EmptyInput);
    got.push(serde_json::to_string(&empty).unwrap());
    assert_eq!(got.len(), BEFORE.len());
    for (g, b) in got.iter().zip(BEFORE) {
        assert_eq!(g, b);
    }
    // Through a `serde_json::Value` (what `serve` adds its keys to), the same bytes.
    let p = Prediction::from_decoded(cases()[0].0, &tasks, &cases()[0].1, &[true; 6], false);
    let v = serde_json::to_value(p.json(true)).unwrap();
    assert_eq!(v.to_string(), BEFORE[1]);
}

#[test]
fn typed_values_read_what_the_answer_says() {
    let tasks = tasks();
    let (text, decoded, kept, truncated) = cases().remove(1);
    let p = Prediction::from_decoded(text, &tasks, &decoded, &kept, truncated);
    assert!(p.is_answered() && p.truncated);
    assert_eq!(p.label("intent").map(|l| l.0), Some("play_music"));
    assert_eq!(p.intent().map(|l| l.0), Some("play_music"));
    assert!(p.label("mood").is_none(), "no output, no prediction");
    let slots: Vec<&str> = p.slots().iter().map(|s| s.text.as_str()).collect();
    assert_eq!(slots, ["play jazz", "in"]);
    assert_eq!(p.spans_of("tags", "room").count(), 2);
    assert_eq!(p.spans("ner").len(), 3);
    let labels = p.labels();
    assert_eq!(labels.intent(), Some("play_music"));
    assert_eq!(
        labels.tags().unwrap(),
        strings(&["B-room", "I-room", "B-room", "O", "O", "O"])
    );
    assert_eq!(labels.token["pos"].len(), 6);
    // The runner-up is the second-highest logit; non-finite logits rank last.
    let intent = p.task("intent").unwrap();
    assert_eq!(intent.runner_up(&tasks[0].labels), Some("turn_off"));
    let (text, decoded, kept, truncated) = cases().remove(2);
    let p = Prediction::from_decoded(text, &tasks, &decoded, &kept, truncated);
    assert_eq!(
        p.task("mood").unwrap().runner_up(&tasks[2].labels),
        Some("pos")
    );
}

#[test]
fn builders_place_spans_on_the_words_of_the_line() {
    let p = Prediction::new("turn on the  Living Room lamp")
        .with_intent("turn_on", 0.75)
        .with_slot("room", "Living Room", 0.5)
        .with_slot("device", "not in the line", 0.5);
    assert_eq!(p.intent(), Some(("turn_on", 0.75)));
    let s = &p.slots()[0];
    assert_eq!((s.start, s.end, s.char_start, s.char_end), (3, 5, 13, 24));
    assert_eq!((s.byte_start, s.byte_end), (13, 24));
    assert_eq!(&p.text[s.byte_start..s.byte_end], "Living Room");
    assert_eq!((p.slots()[1].start, p.slots()[1].end), (0, 0));
    assert_eq!(
        p.labels().tags().unwrap(),
        strings(&["O", "O", "O", "B-room", "I-room", "O"])
    );
}

#[test]
fn task_names_that_are_answer_keys_are_refused() {
    let t = |name: &str, kind| TaskInfo {
        name: name.into(),
        kind,
        labels: strings(&["a"]),
    };
    assert!(check_answer_keys(&tasks()).is_ok());
    for name in ["text", "slots", "truncated", "error"] {
        let e = check_answer_keys(&[t(name, TaskKind::Sentence)]).unwrap_err();
        assert!(e.contains(&format!("{name:?}")), "{e}");
    }
    let e = check_answer_keys(&[t("a", TaskKind::Sentence), t("a_logits", TaskKind::Tokens)])
        .unwrap_err();
    assert!(e.contains("\"a_logits\"") && e.contains("\"a\""), "{e}");
    // The logits of a token task are not in the answers: no collision.
    assert!(
        check_answer_keys(&[t("a", TaskKind::Tokens), t("a_logits", TaskKind::Sentence)]).is_ok()
    );
    // Words of the serve protocol are task names like any other here.
    for name in [
        "cmd",
        "correct",
        "latency_ms",
        "unknown",
        "version",
        "actions",
        "id",
    ] {
        assert!(
            check_answer_keys(&[t(name, TaskKind::Sentence)]).is_ok(),
            "{name}"
        );
    }
}
