//! The comparison's result: per candidate figures, the limits that rule candidates out, the
//! Pareto front, the recommendation, and their renderings (table, JSON, picture).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::report::{on_front, ParetoChart, ParetoPoint};

/// The device's limits (`--max-latency`, `--max-memory`, `--max-size`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest batch-1 p50 latency (ms).
    pub max_latency_ms: Option<f64>,
    /// Largest peak RSS, answering or training (bytes).
    pub max_memory_bytes: Option<u64>,
    /// Largest merged model (bytes).
    pub max_size_bytes: Option<u64>,
}

/// One candidate's figures (`None` where a step failed or did not run).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CandidateResult {
    /// Its name.
    pub name: String,
    /// The backbone's ONNX file.
    pub backbone: PathBuf,
    /// Top layers trained with the heads.
    pub unfreeze_top: usize,
    /// The run folder.
    pub run: Option<PathBuf>,
    /// The merged model measured.
    pub model: Option<PathBuf>,
    /// Validation score: the mean of the tasks' headline scores (and the all-tasks accuracy),
    /// the score training selects its epoch by.
    pub score: Option<f64>,
    /// Per task, its validation headline score (accuracy, span F1 or token accuracy).
    pub tasks: BTreeMap<String, f64>,
    /// Validation metrics.
    pub valid: Option<Metrics>,
    /// Test metrics, when the data has a test split (for the record: nothing is chosen on them).
    pub test: Option<Metrics>,
    /// Batch-1 latency, median (ms).
    pub p50_ms: Option<f64>,
    /// Batch-1 latency, 99th percentile (ms).
    pub p99_ms: Option<f64>,
    /// From starting the process to its first answer (ms).
    pub cold_start_ms: Option<f64>,
    /// Peak RSS of the answering process (bytes).
    pub peak_rss_answering: Option<u64>,
    /// Peak RSS of the training process (bytes; feature extraction included when the cache did
    /// not hold the features yet).
    pub peak_rss_training: Option<u64>,
    /// Whether training had to extract features (else they came from the cache).
    pub extracted: Option<bool>,
    /// The merged model's bytes.
    pub model_bytes: Option<u64>,
    /// The backbone file's bytes.
    pub backbone_bytes: Option<u64>,
    /// Feature extraction, sentences per second (batches of 32).
    pub extraction_per_s: Option<f64>,
    /// Feature extraction, sentences per second of CPU time (steadier on a shared machine).
    pub extraction_per_cpu_s: Option<f64>,
    /// Wall time of training (s).
    pub train_seconds: Option<f64>,
    /// On the Pareto front of score and p50 latency.
    pub pareto: bool,
    /// The limits that rule it out, each with the measured value.
    pub ruled_out: Vec<String>,
    /// Why a step failed.
    pub error: Option<String>,
}

impl CandidateResult {
    /// The larger of the answering and training peaks.
    pub fn peak_rss(&self) -> Option<u64> {
        match (self.peak_rss_answering, self.peak_rss_training) {
            (Some(a), Some(t)) => Some(a.max(t)),
            (a, t) => a.or(t),
        }
    }

    fn point(&self) -> Option<ParetoPoint> {
        Some(ParetoPoint {
            name: self.name.clone(),
            score: self.score?,
            latency_ms: self.p50_ms?,
            memory_bytes: self.peak_rss_answering? as f64,
            ruled_out: (!self.ruled_out.is_empty()).then(|| self.ruled_out.join("; ")),
            recommended: false,
        })
    }
}

/// The device the figures are for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Device {
    /// CPU model.
    pub cpu: String,
    /// Architecture.
    pub arch: String,
    /// Threads every process used.
    pub threads: usize,
}

/// The whole comparison (`choose.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Choice {
    /// Where the figures were measured.
    pub device: Device,
    /// The data as given.
    pub data: PathBuf,
    /// `--limit`, when the data was cut.
    pub limit: Option<usize>,
    /// The limits applied.
    pub limits: Limits,
    /// Every candidate, in the order compared.
    pub candidates: Vec<CandidateResult>,
    /// The recommended candidate's name (none when every candidate is ruled out or failed).
    pub recommended: Option<String>,
    /// Why, in one paragraph.
    pub reason: String,
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// The limits each candidate breaks, as messages naming the flag and the measured value.
pub fn ruled_out_by(c: &CandidateResult, l: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(max), Some(v)) = (l.max_latency_ms, c.p50_ms) {
        if v > max {
            out.push(format!("--max-latency {max} ms: p50 {v:.1} ms"));
        }
    }
    if let (Some(max), Some(v)) = (l.max_memory_bytes, c.peak_rss()) {
        if v > max {
            out.push(format!(
                "--max-memory {:.0} MiB: peak RSS {:.0} MiB",
                mib(max),
                mib(v)
            ));
        }
    }
    if let (Some(max), Some(v)) = (l.max_size_bytes, c.model_bytes) {
        if v > max {
            out.push(format!(
                "--max-size {:.1} MiB: model {:.1} MiB",
                mib(max),
                mib(v)
            ));
        }
    }
    out
}

/// Applies the limits and marks the Pareto front; then recommends the best validation score
/// within the limits (the faster of two within 0.1 point).
pub fn decide(choice: &mut Choice) {
    let limits = choice.limits;
    for c in &mut choice.candidates {
        c.ruled_out = ruled_out_by(c, &limits);
    }
    let points: Vec<ParetoPoint> = choice.candidates.iter().filter_map(|c| c.point()).collect();
    for c in &mut choice.candidates {
        c.pareto = c.point().is_some_and(|p| on_front(&p, &points));
    }
    let ok: Vec<&CandidateResult> = choice
        .candidates
        .iter()
        .filter(|c| {
            c.error.is_none() && c.ruled_out.is_empty() && c.score.is_some() && c.p50_ms.is_some()
        })
        .collect();
    let best = ok.iter().copied().max_by(|a, b| {
        let (sa, sb) = (a.score.unwrap_or(0.0), b.score.unwrap_or(0.0));
        if (sa - sb).abs() < 1e-3 {
            b.p50_ms.unwrap_or(0.0).total_cmp(&a.p50_ms.unwrap_or(0.0))
        } else {
            sa.total_cmp(&sb)
        }
    });
    choice.recommended = best.map(|b| b.name.clone());
    choice.reason = reason(choice, best);
}

fn reason(choice: &Choice, best: Option<&CandidateResult>) -> String {
    let mut s = String::new();
    match best {
        None => s.push_str("no candidate fits: every one failed or is ruled out by a limit."),
        Some(b) => {
            let _ = write!(
                s,
                "{}: the best validation score ({:.2}%) within the limits, p50 {:.1} ms, peak RSS {:.0} MiB, model {:.1} MiB.",
                b.name,
                100.0 * b.score.unwrap_or(0.0),
                b.p50_ms.unwrap_or(0.0),
                mib(b.peak_rss().unwrap_or(0)),
                mib(b.model_bytes.unwrap_or(0))
            );
            // A much faster candidate close in score is worth naming.
            let faster = choice
                .candidates
                .iter()
                .filter(|c| c.ruled_out.is_empty() && c.error.is_none() && c.name != b.name)
                .filter(|c| c.p50_ms.unwrap_or(f64::MAX) * 1.3 < b.p50_ms.unwrap_or(0.0))
                .max_by(|x, y| x.score.unwrap_or(0.0).total_cmp(&y.score.unwrap_or(0.0)));
            if let Some(f) = faster {
                let _ = write!(
                    s,
                    " {} is {:.1}x faster for {:+.2} points.",
                    f.name,
                    b.p50_ms.unwrap_or(0.0) / f.p50_ms.unwrap_or(1.0),
                    100.0 * (f.score.unwrap_or(0.0) - b.score.unwrap_or(0.0))
                );
            }
        }
    }
    for c in choice.candidates.iter().filter(|c| !c.ruled_out.is_empty()) {
        let _ = write!(
            s,
            " {} is ruled out by {}.",
            c.name,
            c.ruled_out.join(" and ")
        );
    }
    for c in choice.candidates.iter().filter(|c| c.error.is_some()) {
        let _ = write!(s, " {} failed.", c.name);
    }
    s
}

/// The comparison as an aligned text table, then the recommendation.
pub fn table(choice: &Choice) -> String {
    let tasks: Vec<String> = {
        let mut t: Vec<String> = choice
            .candidates
            .iter()
            .flat_map(|c| c.tasks.keys().cloned())
            .collect();
        t.sort();
        t.dedup();
        t
    };
    let mut head: Vec<String> = vec!["candidate".into(), "score %".into()];
    head.extend(tasks.iter().map(|t| format!("{t} %")));
    head.extend(
        [
            "p50 ms",
            "p99 ms",
            "cold ms",
            "RSS ans MiB",
            "RSS train MiB",
            "model MiB",
            "extract/s",
            "",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    let mut rows: Vec<Vec<String>> = vec![head];
    for c in &choice.candidates {
        let mut r = vec![c.name.clone(), f(c.score.map(|s| 100.0 * s), 2)];
        r.extend(
            tasks
                .iter()
                .map(|t| f(c.tasks.get(t).map(|s| 100.0 * s), 2)),
        );
        r.push(f(c.p50_ms, 1));
        r.push(f(c.p99_ms, 1));
        r.push(f(c.cold_start_ms, 0));
        r.push(f(c.peak_rss_answering.map(mib), 0));
        r.push(f(c.peak_rss_training.map(mib), 0));
        r.push(f(c.model_bytes.map(mib), 1));
        r.push(f(c.extraction_per_s, 0));
        let mark = if c.error.is_some() {
            "failed".to_string()
        } else if !c.ruled_out.is_empty() {
            "ruled out".to_string()
        } else if choice.recommended.as_deref() == Some(c.name.as_str()) {
            "<- recommended".to_string()
        } else if c.pareto {
            "pareto".to_string()
        } else {
            String::new()
        };
        r.push(mark);
        rows.push(r);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(j, v)| {
                if j == 0 || j + 1 == r.len() {
                    format!("{v:<w$}", w = widths[j])
                } else {
                    format!("{v:>w$}", w = widths[j])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nrecommended: {}",
        choice.recommended.as_deref().unwrap_or("none")
    );
    let _ = writeln!(out, "{}", choice.reason);
    for c in choice.candidates.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(
            out,
            "{} failed: {}",
            c.name,
            c.error.as_deref().unwrap_or("")
        );
    }
    out
}

/// The Pareto picture's data.
pub fn chart(choice: &Choice) -> ParetoChart {
    let points = choice
        .candidates
        .iter()
        .filter_map(|c| {
            c.point().map(|mut p| {
                p.recommended = choice.recommended.as_deref() == Some(c.name.as_str());
                p
            })
        })
        .collect();
    ParetoChart {
        title: format!(
            "Backbone choice on {}",
            choice
                .data
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        subtitle: format!(
            "{} ({}, {} threads); validation score vs batch-1 latency of the merged model",
            choice.device.cpu, choice.device.arch, choice.device.threads
        ),
        points,
    }
}
