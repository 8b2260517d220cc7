//! Request counts, answer latency and the last retrain's outcome, for `{"cmd": "stats"}`.
//!
//! Latency percentiles are over the last [`LATENCY_WINDOW`] answers (a ring buffer, so memory
//! stays flat however long the service runs).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use super::protocol::ErrorCode;
use crate::infer::percentile;
use crate::metrics::Metrics;

/// Answers whose latency the percentiles are computed over.
pub const LATENCY_WINDOW: usize = 10_000;

/// What came of one retrain.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainReport {
    /// Seconds since the Unix epoch when it started.
    pub started: f64,
    /// Wall time, in seconds.
    pub seconds: f64,
    /// Live corrections it trained on.
    pub corrections: usize,
    /// Training examples whose words equal a correction's and whose labels it overrode.
    pub overridden: usize,
    /// Whether the new model replaced the serving one.
    pub swapped: bool,
    /// Why it did or did not.
    pub reason: String,
    /// The version now serving.
    pub version: u64,
    /// Held-out score ([`Metrics::score`]) of the serving model before the retrain.
    pub old_score: Option<f64>,
    /// Held-out score of the retrained model.
    pub new_score: Option<f64>,
    /// The retrained model's held-out metrics.
    pub new_metrics: Option<Metrics>,
    /// Corrections the retrained model answers as given.
    pub fixed: usize,
    /// Numbers of the corrections it does not.
    pub unfixed: Vec<u64>,
    /// Seconds of each phase done: data, features, train, evaluate, publish (export included).
    pub phases: BTreeMap<String, f64>,
    /// With `--max-memory`: the plan that fits the retrain in the budget (batch sizes and the
    /// expected peak).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

#[derive(Default)]
struct Inner {
    answers: u64,
    commands: u64,
    corrections: u64,
    errors: BTreeMap<&'static str, u64>,
    latencies: Vec<f64>,
    next: usize,
    retrains: u64,
    swaps: u64,
    retraining: bool,
    last: Option<RetrainReport>,
}

/// The service's counters (shared by every connection).
pub struct Stats {
    started: Instant,
    inner: Mutex<Inner>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            inner: Mutex::default(),
        }
    }
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters stay meaningful after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an answer that took `ms` milliseconds.
    pub fn answer(&self, ms: f64) {
        let mut s = self.lock();
        s.answers += 1;
        if s.latencies.len() < LATENCY_WINDOW {
            s.latencies.push(ms);
        } else {
            let i = s.next;
            s.latencies[i] = ms;
        }
        s.next = (s.next + 1) % LATENCY_WINDOW;
    }

    /// Counts a command.
    pub fn command(&self) {
        self.lock().commands += 1;
    }

    /// Counts a journalled correction.
    pub fn correction(&self) {
        self.lock().corrections += 1;
    }

    /// Counts an error reply.
    pub fn error(&self, code: ErrorCode) {
        *self.lock().errors.entry(code.as_str()).or_default() += 1;
    }

    /// A retrain started (`true`) or ended.
    pub fn set_retraining(&self, on: bool) {
        let mut s = self.lock();
        s.retraining = on;
        if on {
            s.retrains += 1;
        }
    }

    /// Records a finished retrain.
    pub fn retrained(&self, report: RetrainReport) {
        let mut s = self.lock();
        if report.swapped {
            s.swaps += 1;
        }
        s.last = Some(report);
    }

    /// The `stats` reply, with the serving model's description.
    pub fn to_json(&self, model: Value, journal: Value) -> Value {
        let s = self.lock();
        let mut sorted = s.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let errors: u64 = s.errors.values().sum();
        json!({
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "requests": {
                "total": s.answers + s.commands + s.corrections + errors,
                "answers": s.answers,
                "commands": s.commands,
                "corrections": s.corrections,
                "errors": errors,
                "errors_by_code": s.errors,
            },
            "latency_ms": {
                "window": sorted.len(),
                "p50": percentile(&sorted, 0.5),
                "p99": percentile(&sorted, 0.99),
            },
            "model": model,
            "journal": journal,
            "retrain": {
                "running": s.retraining,
                "runs": s.retrains,
                "swaps": s.swaps,
                "last": s.last,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_the_last_answers() {
        let s = Stats::default();
        for i in 0..(LATENCY_WINDOW + 10) {
            s.answer(if i < 10 { 1000.0 } else { 1.0 });
        }
        s.error(ErrorCode::BadJson);
        let v = s.to_json(json!({}), json!({}));
        assert_eq!(v["latency_ms"]["window"], LATENCY_WINDOW);
        assert_eq!(
            v["latency_ms"]["p99"], 1.0,
            "the 10 slow answers left the window"
        );
        assert_eq!(v["requests"]["errors_by_code"]["bad_json"], 1);
        assert_eq!(v["requests"]["total"], (LATENCY_WINDOW + 11) as u64);
    }
}
