//! The pictures of an evaluation ([`EvalReport`]): a confusion matrix per sentence task and F1 bars
//! per label for every token task (per chunk type for span tasks), each as SVG + PNG + JSON.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::data::TaskKind;
use crate::metrics::{EvalReport, TaskReport, NO_PREDICTION};
use crate::report::confusion::{write_confusion_matrix, ConfusionMatrix};
use crate::report::error::Result;
use crate::report::html::Figure;
use crate::report::labels::{write_label_f1, LabelF1Chart, LabelScore};

/// The files written by [`write_eval_plots`], in task order.
#[derive(Debug, Clone, Default)]
pub struct EvalPlots {
    /// The figures, for a report page.
    pub figures: Vec<Figure>,
    /// Every file written (SVG, PNG, JSON of each chart).
    pub files: Vec<PathBuf>,
}

/// The confusion matrix of a sentence task: rows are gold labels, columns predicted labels (the
/// labels of either, sorted by name), plus a `(none)` column when an example got no prediction.
/// The counts sum to the number of examples that have the task.
pub fn confusion_of(task: &str, rep: &TaskReport, split: &str) -> ConfusionMatrix {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    let mut none = false;
    for (gold, row) in &rep.counts {
        names.insert(gold);
        for pred in row.keys() {
            if pred == NO_PREDICTION {
                none = true;
            } else {
                names.insert(pred);
            }
        }
    }
    let labels: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let counts = labels
        .iter()
        .map(|gold| {
            let row = rep.counts.get(gold);
            let mut v: Vec<usize> = labels
                .iter()
                .map(|p| row.and_then(|r| r.get(p)).copied().unwrap_or(0))
                .collect();
            if none {
                v.push(row.and_then(|r| r.get(NO_PREDICTION)).copied().unwrap_or(0));
            }
            v
        })
        .collect();
    ConfusionMatrix {
        title: format!("Confusion matrix — {task} ({split})"),
        labels,
        counts,
        extra_column: none.then(|| NO_PREDICTION.to_string()),
    }
}

/// Per-label precision, recall and F1 of a token task (per chunk type for a span task), with the
/// task's micro F1 (span tasks) when the report has it.
pub fn label_f1_of(
    task: &str,
    rep: &TaskReport,
    micro_f1: Option<f64>,
    split: &str,
) -> LabelF1Chart {
    let what = match rep.kind {
        TaskKind::Spans => "F1 per span type",
        _ => "F1 per label",
    };
    LabelF1Chart {
        title: format!("{what} — {task} ({split})"),
        labels: rep
            .labels
            .iter()
            .map(|(label, prf)| LabelScore {
                label: label.clone(),
                f1: prf.f1(),
                support: prf.support(),
                precision: Some(prf.precision()),
                recall: Some(prf.recall()),
            })
            .collect(),
        micro_f1,
        ..LabelF1Chart::default()
    }
}

/// Writes the pictures of `report` (evaluated on `split`) into `dir`: `TASK_confusion_SPLIT` for a
/// sentence task, `TASK_f1_SPLIT` for a token task, each `.svg`, `.png` and `.json`.
pub fn write_eval_plots(dir: &Path, report: &EvalReport, split: &str) -> Result<EvalPlots> {
    let mut out = EvalPlots::default();
    for (task, rep) in &report.tasks {
        match rep.kind {
            TaskKind::Sentence => {
                let stem = dir.join(format!("{task}_confusion_{split}"));
                let f = write_confusion_matrix(&stem, &confusion_of(task, rep, split))?;
                out.figures
                    .push(f.figure(format!("{task}: confusion matrix ({split})")));
                out.files.extend([f.svg, f.png, f.json]);
            }
            TaskKind::Spans | TaskKind::Tokens => {
                let micro = report.metrics.tasks.get(task).and_then(|s| s.span_f1);
                let stem = dir.join(format!("{task}_f1_{split}"));
                let f = write_label_f1(&stem, &label_f1_of(task, rep, micro, split))?;
                out.figures
                    .push(f.figure(format!("{task}: F1 per label ({split})")));
                out.files.extend([f.svg, f.png, f.json]);
            }
        }
    }
    Ok(out)
}
