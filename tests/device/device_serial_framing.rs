//! Line framing over a scripted `embedded_io` reader, and JSON lines over a writer.

use std::collections::VecDeque;
use std::time::Instant;

use edgetune::device::serial::{write_json_line, LineError, SerialLineReader};
use edgetune::Prediction;
use embedded_io::{ErrorKind, ErrorType, Read, Write};

#[derive(Debug)]
struct ScriptError(ErrorKind);

impl core::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl core::error::Error for ScriptError {}

impl embedded_io::Error for ScriptError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

enum Step {
    Bytes(Vec<u8>),
    Fail(ErrorKind),
}

/// Delivers each scripted chunk by one `read` (split if the buffer is smaller), then EOF.
struct Script {
    steps: VecDeque<Step>,
    reads: usize,
    last_delivery: Option<Instant>,
}

impl Script {
    fn new(steps: Vec<Step>) -> Self {
        Self {
            steps: steps.into(),
            reads: 0,
            last_delivery: None,
        }
    }

    fn chunks(chunks: &[&[u8]]) -> Self {
        Self::new(chunks.iter().map(|c| Step::Bytes(c.to_vec())).collect())
    }
}

impl ErrorType for Script {
    type Error = ScriptError;
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ScriptError> {
        self.reads += 1;
        match self.steps.pop_front() {
            None => Ok(0),
            Some(Step::Fail(kind)) => Err(ScriptError(kind)),
            Some(Step::Bytes(mut bytes)) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                if n < bytes.len() {
                    self.steps.push_front(Step::Bytes(bytes.split_off(n)));
                }
                self.last_delivery = Some(Instant::now());
                Ok(n)
            }
        }
    }
}

/// Every item until `None`: Ok(text) or Err(description).
fn drain<R: Read>(reader: &mut SerialLineReader<R>) -> Vec<Result<String, String>> {
    let mut items = Vec::new();
    while let Some(item) = reader.next_line() {
        items.push(item.map(|l| l.text).map_err(|e| e.to_string()));
        assert!(items.len() < 1000, "runaway reader");
    }
    items
}

fn ok(s: &str) -> Result<String, String> {
    Ok(s.to_owned())
}

#[test]
fn a_line_split_across_many_reads() {
    let text = b"turn on the kitchen light\r\nset brightness to 40%\n";
    let one_byte_chunks: Vec<&[u8]> = text.chunks(1).collect();
    let mut reader = SerialLineReader::new(Script::chunks(&one_byte_chunks), 64);
    assert_eq!(
        drain(&mut reader),
        [ok("turn on the kitchen light"), ok("set brightness to 40%")]
    );
    assert!(reader.get_mut().reads >= text.len(), "one read per byte");

    let mut reader = SerialLineReader::new(
        Script::chunks(&[b"turn on", b" the", b" light\nsecond\n"]),
        64,
    );
    assert_eq!(drain(&mut reader), [ok("turn on the light"), ok("second")]);
}

#[test]
fn empty_lines_are_skipped_and_only_one_cr_is_stripped() {
    let mut reader = SerialLineReader::new(Script::chunks(&[b"\n\r\n  \nA\r\r\nB\n"]), 64);
    assert_eq!(drain(&mut reader), [ok("  "), ok("A\r"), ok("B")]);
}

#[test]
fn an_over_long_line_is_discarded_whole_and_the_stream_continues() {
    let long = vec![b'x'; 1000];
    let mut chunks: Vec<&[u8]> = vec![b"first\nxx"];
    chunks.extend(long.chunks(97));
    chunks.push(b"\nafter\n");
    let mut reader = SerialLineReader::new(Script::chunks(&chunks), 100);
    assert_eq!(
        drain(&mut reader),
        [
            ok("first"),
            Err("line too long: 1002 bytes (limit 100); discarded".to_owned()),
            ok("after")
        ]
    );
}

#[test]
fn the_limit_is_inclusive_and_excludes_the_line_ending() {
    let at = "y".repeat(10);
    let input = format!("{at}\n{at}\r\n{at}z\n");
    let mut reader = SerialLineReader::new(Script::chunks(&[input.as_bytes()]), 10);
    let items = drain(&mut reader);
    assert_eq!(items[..2], [ok(&at), ok(&at)]);
    assert_eq!(
        items[2],
        Err("line too long: 11 bytes (limit 10); discarded".to_owned())
    );
    assert_eq!(items.len(), 3);
}

#[test]
fn invalid_utf8_fails_that_line_only() {
    let mut reader = SerialLineReader::new(
        Script::chunks(&[b"ok 1\nbad \xff\xfe here\n", "ok 2 é\n".as_bytes()]),
        64,
    );
    let mut items = Vec::new();
    while let Some(item) = reader.next_line() {
        items.push(item);
    }
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0].as_ref().map(|l| l.text.as_str()).ok(),
        Some("ok 1")
    );
    assert!(
        matches!(items[1], Err(LineError::NotUtf8 { valid_up_to: 4 })),
        "{:?}",
        items[1]
    );
    assert_eq!(
        items[2].as_ref().map(|l| l.text.as_str()).ok(),
        Some("ok 2 é")
    );
}

#[test]
fn eof_returns_trailing_text_then_none_forever() {
    let mut reader = SerialLineReader::new(Script::chunks(&[b"a\nunterminated"]), 64);
    assert_eq!(drain(&mut reader), [ok("a"), ok("unterminated")]);
    assert!(reader.next_line().is_none());
    assert!(reader.next_line().is_none());

    let mut reader = SerialLineReader::new(Script::chunks(&[b"a\n0123456789abc"]), 10);
    assert_eq!(
        drain(&mut reader),
        [
            ok("a"),
            Err("line too long: 13 bytes (limit 10); discarded".to_owned())
        ]
    );

    let mut reader = SerialLineReader::new(Script::chunks(&[]), 10);
    assert!(reader.next_line().is_none());
}

#[test]
fn a_timeout_mid_line_loses_nothing() {
    let script = Script::new(vec![
        Step::Bytes(b"turn on".to_vec()),
        Step::Fail(ErrorKind::TimedOut),
        Step::Bytes(b" the light\n".to_vec()),
        Step::Fail(ErrorKind::Other),
        Step::Bytes(b"next\n".to_vec()),
    ]);
    let mut reader = SerialLineReader::new(script, 64);
    let first = reader.next_line().expect("an item");
    assert!(matches!(&first, Err(e) if e.is_timeout()), "{first:?}");
    let line = reader
        .next_line()
        .expect("an item")
        .expect("the line completes");
    assert_eq!(line.text, "turn on the light");
    let other = reader.next_line().expect("an item");
    assert!(
        matches!(&other, Err(e @ LineError::Read(_)) if !e.is_timeout()),
        "{other:?}"
    );
    assert_eq!(
        reader.next_line().expect("an item").expect("line").text,
        "next"
    );
    assert!(reader.next_line().is_none());
}

#[test]
fn received_at_is_when_the_last_byte_arrived() {
    let mut reader = SerialLineReader::new(Script::chunks(&[b"hel", b"lo\n"]), 64);
    let line = reader.next_line().expect("item").expect("line");
    let delivered = reader.get_mut().last_delivery.expect("delivered");
    assert!(
        line.received_at >= delivered,
        "stamped before the last chunk arrived"
    );
    assert!(line.received_at.duration_since(delivered).as_millis() < 100);
}

/// Accepts at most 3 bytes per write; records flushes.
#[derive(Default)]
struct Trickle {
    bytes: Vec<u8>,
    flushes: usize,
}

impl ErrorType for Trickle {
    type Error = ScriptError;
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ScriptError> {
        let n = buf.len().min(3);
        self.bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), ScriptError> {
        self.flushes += 1;
        Ok(())
    }
}

#[test]
fn json_lines_are_one_line_each_and_round_trip() {
    let answer = Prediction::new("turn on\nthe \"kitchen\" light")
        .with_intent("turn_on", 0.5)
        .with_slot("room", "kitchen", 0.25);
    let mut out = Trickle::default();
    write_json_line(&mut out, &answer).expect("write");
    write_json_line(&mut out, &answer).expect("write");
    assert_eq!(out.flushes, 2);
    let text = String::from_utf8(out.bytes).expect("utf-8");
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(text.ends_with('\n'));
    // The prediction's JSON, `infer`'s answer format.
    assert_eq!(lines[0], serde_json::to_string(&answer).unwrap());
    let back: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
    assert_eq!(back["text"], "turn on\nthe \"kitchen\" light");
    assert_eq!(back["slots"][0]["text"], "kitchen");
    assert!(
        lines[0].starts_with(r#"{"intent":{"label":"turn_on","prob":0.5},"slots":[{"#),
        "{}",
        lines[0]
    );
}
