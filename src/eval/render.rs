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

/// Headline metrics, one per line, names padded to a common width (at least 24 columns).
#[derive(Default)]
struct Headlines(Vec<(String, f64)>);

impl Headlines {
    fn push(&mut self, name: impl Into<String>, value: Option<f64>) {
        if let Some(v) = value {
            self.0.push((name.into(), v));
        }
    }

    fn write(&self, out: &mut String) {
        let width = self
            .0
            .iter()
            .map(|(n, _)| UnicodeWidthStr::width(n.as_str()))
            .max()
            .unwrap_or(0)
            .max(24);
        for (name, v) in &self.0 {
            let _ = writeln!(out, "  {} {}", pad(name, width), pct(*v));
        }
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
    let mut h = Headlines::default();
    h.push("intent accuracy", m.intent_accuracy);
    h.push("slot precision", m.slot_precision);
    h.push("slot recall", m.slot_recall);
    h.push("slot F1", m.slot_f1);
    for (name, s) in &m.tasks {
        if name == INTENT || (name == TAGS && m.slot_f1.is_some()) {
            continue;
        }
        h.push(format!("{name} accuracy"), s.accuracy);
        h.push(format!("{name} precision"), s.precision);
        h.push(format!("{name} recall"), s.recall);
        h.push(format!("{name} F1"), s.span_f1);
        h.push(format!("{name} token accuracy"), s.token_accuracy);
    }
    h.push("sentence accuracy", m.sentence_accuracy);
    if m.tasks.len() > 2 || m.sentence_accuracy.is_none() {
        h.push("all tasks accuracy", m.all_tasks_accuracy);
    }
    h.write(&mut out);

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

#[cfg(test)]
mod tests {
    use unicode_width::UnicodeWidthStr;

    use super::render_table;
    use crate::data::{Example, Labels, Origin, TaskInfo, TaskKind};
    use crate::metrics::evaluate;

    fn example(words: &[&str], intent: &str, tags: &[&str]) -> Example {
        let mut labels = Labels::default();
        labels.sentence.insert("意図".into(), intent.into());
        labels
            .token
            .insert("タグ".into(), tags.iter().map(|t| t.to_string()).collect());
        Example {
            words: words.iter().map(|w| w.to_string()).collect(),
            labels,
            origin: Origin {
                file: "test.jsonl".into(),
                line: 1,
            },
        }
    }

    /// Display column just after each `%` of a line (wide characters count two).
    fn percent_columns(line: &str) -> Vec<usize> {
        line.char_indices()
            .filter(|(_, c)| *c == '%')
            .map(|(i, _)| UnicodeWidthStr::width(&line[..=i]))
            .collect()
    }

    #[test]
    fn cjk_labels_and_long_names_stay_aligned() {
        let gold = vec![
            example(
                &["明日", "東京", "の", "天気"],
                "天気を調べる",
                &["B-日付", "B-場所", "O", "O"],
            ),
            example(&["音楽", "を", "かけて"], "音楽を再生", &["O", "O", "O"]),
            example(&["play", "jazz"], "play", &["O", "B-genre"]),
            example(
                &["明日", "の", "天気"],
                "天気を調べる",
                &["B-日付", "O", "O"],
            ),
        ];
        let mut pred: Vec<Labels> = gold.iter().map(|e| e.labels.clone()).collect();
        pred[1].sentence.insert("意図".into(), "play".into());
        pred[2]
            .token
            .insert("タグ".into(), vec!["O".into(), "O".into()]);
        let tasks = vec![
            TaskInfo {
                name: "意図".into(),
                kind: TaskKind::Sentence,
                labels: vec!["天気を調べる".into(), "音楽を再生".into(), "play".into()],
            },
            TaskInfo {
                name: "タグ".into(),
                kind: TaskKind::Spans,
                labels: ["O", "B-日付", "B-場所", "B-genre"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            },
            TaskInfo {
                name: "a_task_with_a_rather_long_name".into(),
                kind: TaskKind::Tokens,
                labels: vec!["x".into()],
            },
        ];
        let mut gold = gold;
        for g in &mut gold {
            let n = g.words.len();
            g.labels
                .token
                .insert("a_task_with_a_rather_long_name".into(), vec!["x".into(); n]);
        }
        for (p, g) in pred.iter_mut().zip(&gold) {
            p.token.insert(
                "a_task_with_a_rather_long_name".into(),
                vec!["x".into(); g.words.len()],
            );
        }
        let text = render_table(&evaluate(&gold, &pred, &tasks));
        let blocks: Vec<&str> = text.split("\n\n").collect();

        // Headline metrics: every value ends in the same column, the long task name included.
        let head: Vec<&str> = blocks[0].lines().filter(|l| l.contains('%')).collect();
        assert!(
            head.iter()
                .any(|l| l.contains("a_task_with_a_rather_long_name token accuracy")),
            "{text}"
        );
        assert!(head.len() >= 4, "{text}");
        let cols: Vec<Vec<usize>> = head.iter().map(|l| percent_columns(l)).collect();
        assert!(
            cols.iter().all(|c| c.len() == 1 && c == &cols[0]),
            "headline values misaligned:\n{text}"
        );

        // Per-label tables: the header's columns and every row's figures end in the same columns.
        let mut tables = 0;
        for b in blocks
            .iter()
            .filter(|b| b.contains("precision") && b.contains("support"))
        {
            let lines: Vec<&str> = b.lines().collect();
            let header_end = UnicodeWidthStr::width(lines[0]);
            let rows = &lines[1..];
            assert!(!rows.is_empty(), "{b}");
            let first = percent_columns(rows[0]);
            assert_eq!(first.len(), 3, "{b}");
            for r in rows {
                assert_eq!(percent_columns(r), first, "misaligned row {r:?} in\n{b}");
                assert_eq!(
                    UnicodeWidthStr::width(*r),
                    header_end,
                    "row {r:?} ends elsewhere than the header in\n{b}"
                );
            }
            tables += 1;
        }
        assert_eq!(tables, 3, "{text}");
        assert!(
            text.contains("天気を調べる") && text.contains("日付"),
            "{text}"
        );
    }
}
