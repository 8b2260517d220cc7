//! The request protocol: one request per line in, one JSON object per line out.
//!
//! A line is either a text to answer (anything that does not start with `{`) or a JSON object:
//! - `{"text": "...", "logits": false}`: answer a text (`logits`: also each sentence task's
//!   logits);
//! - `{"correct": {"text": "...", "intent": "...", "tags": [...]}}`: a correction (any task of the
//!   model: a sentence task's label, or a token task's labels, one per word);
//! - `{"forget": SEQ}`: withdraw the correction journalled as `SEQ`;
//! - `{"cmd": "stats"}`, `{"cmd": "retrain", "wait": false}`, `{"cmd": "ping"}`.
//!
//! Every object may carry an `"id"` (any JSON value), echoed in its reply. A request that cannot be
//! served gets `{"error": MESSAGE, "code": CODE, "line": N}` ([`ErrorCode`]); the connection and
//! the service go on.
//!
//! An answer is the prediction's JSON (`crate::predict::json`: `text`, a key per task, ...) with
//! the service's own keys added ([`REPLY_KEYS`]). Task names are keys of the same object, so the
//! service refuses at start a model with a task named like one of them ([`check_reply_keys`]);
//! the library and the other commands accept such names.

use serde_json::{json, Map, Value};

use crate::data::TaskInfo;

/// The keys the service adds to a prediction's JSON in its answers: `actions` (the rules fired),
/// `id` (the request's), `latency_ms`, `unknown` (below `--min-prob`), `version` (of the model).
pub const REPLY_KEYS: &[&str] = &["actions", "id", "latency_ms", "unknown", "version"];

/// Checks that no task of the model is named like a key the service adds to its answers
/// ([`REPLY_KEYS`]): such an answer could not be told apart from the service's own key. On error,
/// returns the reason, naming the task.
pub fn check_reply_keys(tasks: &[TaskInfo]) -> Result<(), String> {
    match tasks.iter().find(|t| REPLY_KEYS.contains(&t.name.as_str())) {
        Some(t) => Err(format!(
            "the model's task {:?} is named like a key serve adds to its answers ({}); serve \
             cannot answer with it unambiguously: rename the task (train again) or answer with \
             `edgetune infer`",
            t.name,
            REPLY_KEYS.join(", ")
        )),
        None => Ok(()),
    }
}

/// Why a request got an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The line starts with `{` but is not a JSON object.
    BadJson,
    /// A JSON object that is not a valid request (unknown or missing keys, wrong types).
    BadRequest,
    /// `cmd` names no command.
    UnknownCommand,
    /// The line is longer than the limit.
    TooLong,
    /// The line is not UTF-8, or its text holds control characters.
    BadText,
    /// The connection closed in the middle of the line.
    Incomplete,
    /// A correction that does not fit the model (unknown task or label, tags not one per word).
    BadCorrection,
    /// The request needs something this service does not have (e.g. a correction while serving a
    /// merged model, which cannot be retrained).
    Unavailable,
    /// Too many clients are connected.
    Busy,
    /// The correction was not journalled: the disk is full, or the journal reached
    /// `--max-journal-bytes`. Nothing was acknowledged.
    Full,
    /// A TCP connection's first line was not `{"token": ...}` with the `--token-file` secret.
    Unauthorized,
    /// The connection sent nothing for `--idle-timeout` seconds and is closed.
    Idle,
    /// The model or a file failed; the message says which.
    Internal,
}

impl ErrorCode {
    /// The code's name in replies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::TooLong => "too_long",
            ErrorCode::BadText => "bad_text",
            ErrorCode::Incomplete => "incomplete",
            ErrorCode::BadCorrection => "bad_correction",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Busy => "busy",
            ErrorCode::Full => "full",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Idle => "idle",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A request that cannot be served: its code and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The kind of problem.
    pub code: ErrorCode,
    /// What is wrong, naming the key or value.
    pub message: String,
}

impl RequestError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A command (`{"cmd": ...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Request counts, latency, the model's version and metrics, the last retrain.
    Stats,
    /// Start a retrain now; with `wait`, reply when it has finished (with its outcome).
    Retrain {
        /// Reply only when the retrain is over.
        wait: bool,
    },
    /// Reply `{"ok": true}` (a liveness check).
    Ping,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Answer a text.
    Answer {
        /// The text.
        text: String,
        /// Also return each sentence task's logits.
        logits: bool,
    },
    /// Journal a correction (the object under `correct`, checked against the model later).
    Correct(Map<String, Value>),
    /// Withdraw a journalled correction.
    Forget(u64),
    /// A command.
    Command(Command),
}

/// A parsed request and the `id` to echo.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The client's `id`, if any.
    pub id: Option<Value>,
    /// The request.
    pub request: Request,
}

/// Checks a text to answer: no control characters (tab aside), which no utterance has and binary
/// data nearly always has.
pub fn check_text(text: &str) -> Result<(), RequestError> {
    match text
        .char_indices()
        .find(|(_, c)| c.is_control() && *c != '\t')
    {
        Some((i, c)) => Err(RequestError::new(
            ErrorCode::BadText,
            format!(
                "control character U+{:04X} at byte {i}: not a text",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

/// Parses one line. On error, also returns the `id` when one could be read.
pub fn parse(line: &str) -> Result<Parsed, (Option<Value>, RequestError)> {
    if !line.trim_start().starts_with('{') {
        check_text(line).map_err(|e| (None, e))?;
        return Ok(Parsed {
            id: None,
            request: Request::Answer {
                text: line.to_string(),
                logits: false,
            },
        });
    }
    let value: Value = serde_json::from_str(line).map_err(|e| {
        (
            None,
            RequestError::new(
                ErrorCode::BadJson,
                format!("not a JSON object: {e} (a text to answer must not start with '{{')"),
            ),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err((
            None,
            RequestError::new(ErrorCode::BadJson, "not a JSON object"),
        ));
    };
    let id = obj.remove("id");
    parse_object(obj)
        .map_err(|e| (id.clone(), e))
        .map(|request| Parsed { id, request })
}

fn bad(message: impl Into<String>) -> RequestError {
    RequestError::new(ErrorCode::BadRequest, message)
}

/// Removes `key` as a boolean (absent = false).
fn take_bool(obj: &mut Map<String, Value>, key: &str) -> Result<bool, RequestError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(other) => Err(bad(format!("\"{key}\" must be true or false, got {other}"))),
    }
}

fn no_more_keys(obj: &Map<String, Value>, what: &str) -> Result<(), RequestError> {
    match obj.keys().next() {
        Some(k) => Err(bad(format!("unknown key \"{k}\" in a {what} request"))),
        None => Ok(()),
    }
}

fn parse_object(mut obj: Map<String, Value>) -> Result<Request, RequestError> {
    let kinds: Vec<&str> = ["text", "correct", "forget", "cmd"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    match kinds.as_slice() {
        [] => {
            return Err(bad(
                "expected one of the keys \"text\", \"correct\", \"forget\" or \"cmd\"",
            ))
        }
        [_] => {}
        [a, b, ..] => return Err(bad(format!("\"{a}\" and \"{b}\" cannot be in one request"))),
    }
    match kinds[0] {
        "text" => {
            let text = match obj.remove("text") {
                Some(Value::String(s)) => s,
                Some(other) => return Err(bad(format!("\"text\" must be a string, got {other}"))),
                None => unreachable!("checked above"),
            };
            check_text(&text)?;
            let logits = take_bool(&mut obj, "logits")?;
            no_more_keys(&obj, "text")?;
            Ok(Request::Answer { text, logits })
        }
        "correct" => match obj.remove("correct") {
            Some(Value::Object(c)) => {
                no_more_keys(&obj, "correct")?;
                Ok(Request::Correct(c))
            }
            Some(other) => Err(RequestError::new(
                ErrorCode::BadCorrection,
                format!("\"correct\" must be an object like {{\"text\": ..., \"intent\": ...}}, got {other}"),
            )),
            None => unreachable!("checked above"),
        },
        "forget" => {
            let seq = obj.remove("forget").and_then(|v| v.as_u64()).ok_or_else(|| {
                bad("\"forget\" must be the number (seq) of a journalled correction")
            })?;
            no_more_keys(&obj, "forget")?;
            Ok(Request::Forget(seq))
        }
        _ => {
            let cmd = match obj.remove("cmd") {
                Some(Value::String(s)) => s,
                Some(other) => return Err(bad(format!("\"cmd\" must be a string, got {other}"))),
                None => unreachable!("checked above"),
            };
            let command = match cmd.as_str() {
                "stats" => Command::Stats,
                "ping" => Command::Ping,
                "retrain" => Command::Retrain {
                    wait: take_bool(&mut obj, "wait")?,
                },
                other => {
                    return Err(RequestError::new(
                        ErrorCode::UnknownCommand,
                        format!("unknown command \"{other}\" (commands: stats, retrain, ping)"),
                    ))
                }
            };
            no_more_keys(&obj, "cmd")?;
            Ok(Request::Command(command))
        }
    }
}

/// The reply to a request that failed: `{"error", "code", "line"}` (and `"id"`).
pub fn error_reply(error: &RequestError, line: usize, id: Option<&Value>) -> Value {
    let mut v = json!({ "error": error.message, "code": error.code.as_str(), "line": line });
    if let Some(id) = id {
        v["id"] = id.clone();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str) -> ErrorCode {
        parse(line).expect_err(line).1.code
    }

    #[test]
    fn texts_and_objects() {
        assert_eq!(
            parse("turn on the light").unwrap().request,
            Request::Answer {
                text: "turn on the light".into(),
                logits: false
            }
        );
        let p = parse(r#"{"text": "hi", "logits": true, "id": [1]}"#).unwrap();
        assert_eq!(p.id, Some(json!([1])));
        assert_eq!(
            p.request,
            Request::Answer {
                text: "hi".into(),
                logits: true
            }
        );
        assert_eq!(
            parse(r#"{"cmd": "retrain", "wait": true}"#)
                .unwrap()
                .request,
            Request::Command(Command::Retrain { wait: true })
        );
        assert_eq!(
            parse(r#"{"forget": 3}"#).unwrap().request,
            Request::Forget(3)
        );
    }

    #[test]
    fn task_names_that_are_reply_keys_are_refused() {
        let task = |name: &str| TaskInfo {
            name: name.into(),
            kind: crate::data::TaskKind::Sentence,
            labels: vec!["a".into()],
        };
        assert!(check_reply_keys(&[task("intent"), task("cmd"), task("correct")]).is_ok());
        for key in REPLY_KEYS {
            let e = check_reply_keys(&[task("intent"), task(key)]).unwrap_err();
            assert!(e.contains(&format!("{key:?}")), "{e}");
        }
    }

    #[test]
    fn bad_requests_have_codes() {
        assert_eq!(code("{not json"), ErrorCode::BadJson);
        assert_eq!(code("{}"), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"cmd": "reboot"}"#), ErrorCode::UnknownCommand);
        assert_eq!(code(r#"{"cmd": "stats", "x": 1}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"text": 5}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"text": "a", "cmd": "stats"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(code(r#"{"correct": "a"}"#), ErrorCode::BadCorrection);
        assert_eq!(code("a\u{0}b"), ErrorCode::BadText);
        let (id, _) = parse(r#"{"cmd": "x", "id": 7}"#).unwrap_err();
        assert_eq!(id, Some(json!(7)));
    }
}
