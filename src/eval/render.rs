//! Plain-text rendering of an [`EvalReport`].

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{EvalReport, Prf};

/// How many intent confusions the table lists.
const TOP_CONFUSIONS: usize = 10;

fn pct(x: f64) -> String {
    format!("{:6.2}%", 100.0 * x)
}

fn push_metric(out: &mut String, name: &str, value: Option<f64>) {
    if let Some(v) = value {
        let _ = writeln!(out, "  {name:<20} {}", pct(v));
    }
}

fn push_prf_table(out: &mut String, title: &str, rows: &BTreeMap<String, Prf>) {
    if rows.is_empty() {
        return;
    }
    let width = rows
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0)
        .max(title.len());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{title:<width$}  {:>9}  {:>9}  {:>9}  {:>7}  {:>7}",
        "precision", "recall", "f1", "support", "pred"
    );
    for (label, prf) in rows {
        let _ = writeln!(
            out,
            "{label:<width$}  {:>9}  {:>9}  {:>9}  {:>7}  {:>7}",
            pct(prf.precision()),
            pct(prf.recall()),
            pct(prf.f1()),
            prf.support(),
            prf.tp + prf.fp
        );
    }
}

/// Readable text: the headline metrics in percent, per-intent and per-slot-type
/// precision/recall/F1/support tables, the most frequent intent confusions and unseen labels.
pub fn render_table(report: &EvalReport) -> String {
    let m = &report.metrics;
    let mut out = String::new();
    let _ = writeln!(out, "examples: {}", m.examples);
    push_metric(&mut out, "intent accuracy", m.intent_accuracy);
    push_metric(&mut out, "slot precision", m.slot_precision);
    push_metric(&mut out, "slot recall", m.slot_recall);
    push_metric(&mut out, "slot F1", m.slot_f1);
    push_metric(&mut out, "sentence accuracy", m.sentence_accuracy);

    push_prf_table(&mut out, "intent", &report.intents);
    push_prf_table(&mut out, "slot type", &report.slots);

    if !report.intent_confusions.is_empty() {
        let _ = writeln!(out);
        let shown = report.intent_confusions.len().min(TOP_CONFUSIONS);
        let _ = writeln!(
            out,
            "top intent confusions (gold -> predicted), {shown} of {}:",
            report.intent_confusions.len()
        );
        for (gold, pred, n) in report.intent_confusions.iter().take(TOP_CONFUSIONS) {
            let _ = writeln!(out, "  {n:>5}  {gold} -> {pred}");
        }
    }
    for (title, unseen) in [
        ("intents not seen in training", &report.unseen_intents),
        ("slot types not seen in training", &report.unseen_slot_types),
    ] {
        if !unseen.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "{title} (counted as misses):");
            for (label, n) in unseen {
                let _ = writeln!(out, "  {n:>5}  {label}");
            }
        }
    }
    out
}
