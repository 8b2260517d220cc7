//! What each request does: answers (with the device actions), corrections, commands, and the
//! feedback button's "the last answer was wrong".

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::super::correction::{self, Correction, Source};
use super::super::devices::fired_json;
use super::super::engine::intent_task;
use super::super::error::ServeError;
use super::super::journal::Journal;
use super::super::protocol::{self, Command, ErrorCode, Parsed, Request, RequestError};
use super::super::sync::lock;
use super::state::{internal, LastAnswer, Service};
use crate::data::Labels;

/// The error answer of a journal write that failed: `full` (nothing acknowledged) or `internal`.
fn journal_error(e: ServeError) -> RequestError {
    match e {
        ServeError::Full { .. } => RequestError::new(ErrorCode::Full, e.to_string()),
        ServeError::Rejected(m) => RequestError::new(ErrorCode::BadCorrection, m),
        e => internal(e),
    }
}

impl Service {
    /// The feedback button: journals "the last answer was wrong" (its intent's runner-up as the
    /// right label). Returns the correction's number, if one was journalled.
    pub fn button_pressed(&self) -> Option<u64> {
        let Some(last) = lock(&self.inner.last).clone() else {
            eprintln!("edgetune serve: feedback button: no answer to mark wrong yet");
            return None;
        };
        let Some(journal) = &self.inner.journal else {
            eprintln!("edgetune serve: feedback button: a merged model cannot learn; ignored");
            return None;
        };
        let intent = intent_task(&self.inner.tasks)?;
        let answered = last.prediction.task(&intent.name)?;
        let (Some(right), Some((wrong, _))) =
            (answered.runner_up(&intent.labels), answered.label())
        else {
            return None;
        };
        let (right, wrong) = (right.to_string(), wrong.to_string());
        let mut given = Labels::default();
        given.sentence.insert(intent.name.clone(), right.clone());
        let c = Correction {
            text: last.prediction.text.clone(),
            words: last.words.clone(),
            labels: correction::complete(&given, &last.prediction.labels()),
            given: vec![intent.name.clone()],
            source: Source::Button {
                rejected: [(intent.name.clone(), wrong.clone())].into(),
            },
        };
        match self.journal_correction(journal, c) {
            Ok(seq) => {
                eprintln!(
                    "edgetune serve: feedback button: \"{}\" is not {wrong}; journalled as {right} (seq {seq})",
                    last.prediction.text
                );
                Some(seq)
            }
            Err(e) => {
                eprintln!("edgetune serve: feedback button: {e}");
                None
            }
        }
    }

    fn journal_correction(
        &self,
        journal: &Mutex<Journal>,
        c: Correction,
    ) -> Result<u64, ServeError> {
        let (seq, pending) = {
            let mut j = lock(journal);
            // Judged under the journal's lock: two conflicting corrections cannot both pass.
            correction::validate(&c, &self.inner.tasks, j.live()).map_err(ServeError::Rejected)?;
            let seq = j.add(c)?;
            (seq, j.pending())
        };
        self.inner.stats.correction();
        if let (Some(every), Some(r)) = (self.inner.opts.retrain_every, self.inner.retrainer.get())
        {
            if pending >= every {
                drop(r.request());
            }
        }
        Ok(seq)
    }

    fn answer(&self, text: &str, logits: bool) -> Result<Value, RequestError> {
        let t0 = Instant::now();
        let (prediction, version) = {
            let mut e = lock(&self.inner.engine);
            (e.predict(text).map_err(internal)?, e.version)
        };
        if let Some(why) = prediction.error {
            return Err(RequestError::new(
                ErrorCode::BadText,
                format!("{why}: the text has no words"),
            ));
        }
        // A non-finite probability (written as null) is not below the threshold.
        let unknown = intent_task(&self.inner.tasks)
            .and_then(|t| prediction.label(&t.name))
            .is_some_and(|(_, p)| p.is_finite() && p < self.inner.opts.min_prob);
        let fired = match lock(&self.inner.actions).as_mut() {
            Some(a) if !unknown => a.execute(&prediction),
            _ => Vec::new(),
        };
        let mut v = serde_json::to_value(prediction.json(logits)).map_err(internal)?;
        if unknown {
            v["unknown"] = json!(true);
        } else if !fired.is_empty() {
            for f in &fired {
                eprintln!("edgetune serve: {f}");
            }
            v["actions"] = Value::Array(fired.iter().map(fired_json).collect());
        }
        *lock(&self.inner.last) = Some(LastAnswer {
            words: correction::words_of(text),
            prediction,
        });
        v["version"] = json!(version);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        v["latency_ms"] = json!(ms);
        self.inner.stats.answer(ms);
        Ok(v)
    }

    fn correct(&self, obj: &Map<String, Value>) -> Result<Value, RequestError> {
        let Some(journal) = &self.inner.journal else {
            return Err(RequestError::new(
                ErrorCode::Unavailable,
                "corrections need a run to retrain (serve --run RUN); this service answers with a merged model",
            ));
        };
        let (text, words, given) = correction::check(obj, &self.inner.tasks)?;
        let predicted = lock(&self.inner.engine)
            .predict(&text)
            .map_err(internal)?
            .labels();
        let c = Correction {
            text,
            words,
            labels: correction::complete(&given, &predicted),
            given: correction::given_tasks(&given),
            source: Source::Client,
        };
        let seq = self.journal_correction(journal, c).map_err(journal_error)?;
        let live = lock(journal).live().len();
        Ok(json!({ "ok": true, "seq": seq, "corrections": live }))
    }

    fn forget(&self, seq: u64) -> Result<Value, RequestError> {
        let Some(journal) = &self.inner.journal else {
            return Err(RequestError::new(
                ErrorCode::Unavailable,
                "no journal: this service answers with a merged model",
            ));
        };
        if lock(journal).forget(seq).map_err(journal_error)? {
            Ok(json!({ "ok": true, "forgotten": seq }))
        } else {
            Err(RequestError::new(
                ErrorCode::BadRequest,
                format!("no live correction has seq {seq}"),
            ))
        }
    }

    fn stats(&self) -> Value {
        let model = {
            let e = lock(&self.inner.engine);
            json!({
                "version": e.version,
                "path": e.model.path(),
                "kind": e.model.kind(),
                "tasks": e.tasks.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
                "metrics": e.metrics,
            })
        };
        let journal = match &self.inner.journal {
            Some(j) => {
                let j = lock(j);
                json!({ "path": j.path(), "corrections": j.live().len(), "since_retrain": j.pending() })
            }
            None => Value::Null,
        };
        self.inner.stats.to_json(model, journal)
    }

    fn command(&self, c: Command) -> Result<Value, RequestError> {
        match c {
            Command::Stats => Ok(self.stats()),
            Command::Ping => Ok(json!({ "ok": true, "version": self.version() })),
            Command::Retrain { wait } => {
                let Some(r) = self.inner.retrainer.get() else {
                    return Err(RequestError::new(
                        ErrorCode::Unavailable,
                        "retraining needs a run (serve --run RUN); this service answers with a merged model",
                    ));
                };
                let rx = r.request();
                if !wait {
                    return Ok(json!({ "ok": true, "retrain": "requested" }));
                }
                loop {
                    match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(report) => return Ok(json!({ "ok": true, "retrain": report })),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !self.is_stopping() => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            return Err(RequestError::new(
                                ErrorCode::Unavailable,
                                "the service is stopping; the retrain is abandoned (its corrections stay journalled)",
                            ))
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            return Err(internal("the retrain thread is not running"))
                        }
                    }
                }
            }
        }
    }

    /// The reply to one request line (number `number` on its stream).
    pub fn handle_line(&self, line: &str, number: usize) -> Value {
        let (id, result) = match protocol::parse(line) {
            Err((id, e)) => (id, Err(e)),
            Ok(Parsed { id, request }) => {
                let r = match request {
                    Request::Answer { text, logits } => self.answer(&text, logits),
                    Request::Correct(obj) => self.correct(&obj),
                    Request::Forget(seq) => {
                        self.inner.stats.command();
                        self.forget(seq)
                    }
                    Request::Command(c) => {
                        self.inner.stats.command();
                        self.command(c)
                    }
                };
                (id, r)
            }
        };
        match result {
            Ok(mut v) => {
                if let Some(id) = id {
                    v["id"] = id;
                }
                v
            }
            Err(e) => {
                self.inner.stats.error(e.code);
                protocol::error_reply(&e, number, id.as_ref())
            }
        }
    }
}
