//! Span offsets on mixed scripts: `char_start`/`char_end` count Unicode scalar values (what
//! Python's `str` slicing counts), `byte_start`/`byte_end` UTF-8 bytes; the same in the library's
//! answer, `infer --model` and the Python client (examples/python/edgetune_client.py).

use crate::support as common;

use edgetune::Prediction;

/// `text[start..end]` in characters (Unicode scalar values), as Python slices a `str`.
fn char_slice(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

/// Every span of every span task of one answer line: its text is the line's characters
/// `char_start..char_end` and its bytes `byte_start..byte_end`.
fn check_spans(answer: &serde_json::Value) -> usize {
    let text = answer["text"].as_str().unwrap();
    let mut differ = 0;
    for (_, v) in answer.as_object().unwrap() {
        for span in v.as_array().into_iter().flatten().filter(|s| s.is_object()) {
            let n = |k: &str| span[k].as_u64().unwrap() as usize;
            let want = span["text"].as_str().unwrap();
            assert_eq!(
                char_slice(text, n("char_start"), n("char_end")),
                want,
                "{span}"
            );
            assert_eq!(&text[n("byte_start")..n("byte_end")], want, "{span}");
            differ += usize::from(n("char_start") != n("byte_start"));
        }
    }
    differ
}

#[test]
fn span_offsets_are_characters_and_bytes_on_mixed_scripts() {
    let line = "Café NAÏVE in Zürich 東京 tomorrow";
    let p = Prediction::new(line).with_span("tags", "city", "Zürich 東京", 0.9);
    let s = &p.slots()[0];
    assert_eq!((s.char_start, s.char_end), (14, 23));
    assert_eq!((s.byte_start, s.byte_end), (16, 30));
    assert_eq!(char_slice(line, s.char_start, s.char_end), "Zürich 東京");
    // The report: the byte offsets sliced as characters gave 'rich 東京 tomorr'.
    assert_eq!(char_slice(line, 16, 30), "rich 東京 tomorr");
    let answer = serde_json::to_value(p.json(false)).unwrap();
    assert_eq!(check_spans(&answer), 1);
    let slot = &answer["slots"][0];
    let keys: Vec<&String> = slot.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "byte_end",
            "byte_start",
            "char_end",
            "char_start",
            "end",
            "prob",
            "start",
            "text",
            "type"
        ]
    );
}

#[cfg(feature = "real-model")]
#[test]
fn infer_and_the_python_client_agree_on_character_offsets() {
    use std::process::Command;
    common::require_setup();
    common::require_python_onnxruntime();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let merged = tmp.path().join("deploy").join("model.onnx");
    let mut c = common::edgetune(&cache);
    c.args([
        "train",
        "--data",
        "data/demo",
        "--epochs",
        "4",
        "-q",
        "--no-plots",
    ])
    .arg("--out")
    .arg(&run);
    common::ok(c);
    let mut c = common::edgetune(&cache);
    c.args(["export", "-q", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&merged);
    common::ok(c);
    let input = tmp.path().join("mixed.txt");
    std::fs::write(
        &input,
        "Café NAÏVE: turn on the lights in the kitchen 東京 tomorrow\n\
         Zürich 東京 dim the lamp in the living room to 40 percent\n\
         выключи свет in the bedroom naïvely at 7 pm\n",
    )
    .unwrap();
    let mut c = common::edgetune(&cache);
    c.args(["infer", "--model"]).arg(&merged).arg(&input);
    let rust = common::ok(c);
    let py = Command::new("python3")
        .arg(common::root().join("examples/python/edgetune_client.py"))
        .arg(&merged)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let py = String::from_utf8(py.stdout).unwrap();
    let (mut spans_off, mut lines) = (0, 0);
    for (r, p) in rust.lines().zip(py.lines()) {
        let (r, p): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(r).unwrap(),
            serde_json::from_str(p).unwrap(),
        );
        assert_eq!(r, p, "infer --model and the Python client differ");
        spans_off += check_spans(&r);
        lines += 1;
    }
    assert_eq!(lines, 3);
    assert!(
        spans_off > 0,
        "no span after a non-ASCII character was found; the test checks nothing: {rust}"
    );
    // Python's own slicing of its answer.
    let check = "import json,sys\n\
        for l in open(sys.argv[1], encoding='utf-8'):\n\
        \x20   a = json.loads(l)\n\
        \x20   for s in a.get('slots', []):\n\
        \x20       assert a['text'][s['char_start']:s['char_end']] == s['text'], s\n\
        \x20       assert a['text'].encode()[s['byte_start']:s['byte_end']].decode() == s['text'], s\n";
    let answers = tmp.path().join("answers.jsonl");
    std::fs::write(&answers, &py).unwrap();
    let o = Command::new("python3")
        .args(["-c", check])
        .arg(&answers)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
