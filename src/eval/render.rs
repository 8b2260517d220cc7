//! Plain-text rendering of an [`EvalReport`], aligned for any label text (wide characters take
//! two terminal columns).

use std::collections::BTreeMap;
use std::fmt::Write;

use unicode_width::UnicodeWidthStr;

use crate::data::{TaskKind, INTENT, TAGS};
use crate::metrics::{EvalReport, Prf};

/// How many confusions the table lists per task.
const TOP_CONFUSIONS: usize = 10;

fn pct(x: f64) -> String {
    format!("{:6.2}%", 100.0 * x)
}

/// `s` padded with spaces to `width` terminal columns.
fn pad(s: &str, width: usize) -> String {
    let w = UnicodeWidthStr::width(s);
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

fn push_metric(out: &mut String, name: &str, value: Option<f64>) {
    if let Some(v) = value {
        let _ = writeln!(out, "  {} {}", pad(name, 24), pct(v));
    }
}

fn push_prf_table(out: &mut String, title: &str, rows: &BTreeMap<String, Prf>) {
    if rows.is_empty() {
        return;
    }
    let width = rows
        .keys()
        .map(|k| UnicodeWidthStr::width(k.as_str()))
        .max()
        .unwrap_or(0)
        .max(UnicodeWidthStr::width(title));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{}  {:>9}  {:>9}  {:>9}  {:>7}  {:>7}",
        pad(title, width),
        "precision",
        "recall",
        "f1",
        "support",
        "pred"
    );
    for (label, prf) in rows {
        let _ = writeln!(
            out,
            "{}  {:>9}  {:>9}  {:>9}  {:>7}  {:>7}",
            pad(label, width),
            pct(prf.precision()),
            pct(prf.recall()),
            pct(prf.f1()),
            prf.support(),
            prf.tp + prf.fp
        );
    }
}

/// Readable text: the headline metrics in percent, per task a per-label precision/recall/F1/support
/// table, the most frequent confusions and labels training never saw.
pub fn render_table(report: &EvalReport) -> String {
    let m = &report.metrics;
    let mut out = String::new();
    let _ = writeln!(out, "examples: {}", m.examples);
    push_metric(&mut out, "intent accuracy", m.intent_accuracy);
    push_metric(&mut out, "slot precision", m.slot_precision);
    push_metric(&mut out, "slot recall", m.slot_recall);
    push_metric(&mut out, "slot F1", m.slot_f1);
    for (name, s) in &m.tasks {
        if name == INTENT || (name == TAGS && m.slot_f1.is_some()) {
            continue;
        }
        push_metric(&mut out, &format!("{name} accuracy"), s.accuracy);
        push_metric(&mut out, &format!("{name} precision"), s.precision);
        push_metric(&mut out, &format!("{name} recall"), s.recall);
        push_metric(&mut out, &format!("{name} F1"), s.span_f1);
        push_metric(&mut out, &format!("{name} token accuracy"), s.token_accuracy);
    }
    push_metric(&mut out, "sentence accuracy", m.sentence_accuracy);
    if m.tasks.len() > 2 || m.sentence_accuracy.is_none() {
        push_metric(&mut out, "all tasks accuracy", m.all_tasks_accuracy);
    }

    for (name, t) in &report.tasks {
        let title = match (name.as_str(), t.kind) {
            (TAGS, TaskKind::Spans) => "slot type".to_string(),
            (_, TaskKind::Spans) => format!("{name} type"),
            _ => name.clone(),
        };
        push_prf_table(&mut out, &title, &t.labels);
    }
    for (name, t) in &report.tasks {
        let confusions = t.confusions();
        if confusions.is_empty() {
            continue;
        }
        let _ = writeln!(out);
        let shown = confusions.len().min(TOP_CONFUSIONS);
        let _ = writeln!(
            out,
            "top {name} confusions (gold -> predicted), {shown} of {}:",
            confusions.len()
        );
        for (gold, pred, n) in confusions.iter().take(TOP_CONFUSIONS) {
            let _ = writeln!(out, "  {n:>5}  {gold} -> {pred}");
        }
    }
    for (name, t) in &report.tasks {
        if t.unseen.is_empty() {
            continue;
        }
        let title = match (name.as_str(), t.kind) {
            (INTENT, _) => "intents not seen in training".to_string(),
            (TAGS, TaskKind::Spans) => "slot types not seen in training".to_string(),
            _ => format!("{name} labels not seen in training"),
        };
        let _ = writeln!(out);
        let _ = writeln!(out, "{title} (counted as misses):");
        for (label, n) in &t.unseen {
            let _ = writeln!(out, "  {n:>5}  {label}");
        }
    }
    out
}
