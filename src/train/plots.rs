//! The pictures of a finished run, in its folder: `plots/` (training curves from the per-epoch
//! history; the evaluation pictures of the test split, or of valid when there is no test split)
//! and `report.html`, one self-contained page tying them to the metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::checkpoint::EpochLog;
use super::settings::TrainSettings;
use crate::data::TaskKind;
use crate::metrics::{EvalReport, Metrics, TaskScore};
use crate::model::ModelConfig;
use crate::report::{
    write_eval_plots, write_html_report, write_training_curves, EpochPoint, HtmlReport, MetricRow,
    ReportError, TrainingCurves,
};
use crate::run::RunConfig;

/// Folder of the pictures inside a run.
pub const PLOTS_DIR: &str = "plots";
/// The report page inside a run.
pub const REPORT_FILE: &str = "report.html";
/// Stem of the training-curves chart inside [`PLOTS_DIR`].
pub const CURVES_STEM: &str = "training_curves";

/// How training went, for the curves and the report page.
pub struct RunSummary<'a> {
    /// The per-epoch history.
    pub history: &'a [EpochLog],
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// The planned number of epochs.
    pub planned_epochs: usize,
    /// Why training ended (see `fit::stop_reason`).
    pub stop: String,
    /// Facts shown at the top of the page (backbone, data, settings), in order.
    pub facts: Vec<(String, String)>,
}

/// What [`write_run_plots`] wrote.
#[derive(Debug, Clone)]
pub struct RunPlots {
    /// `report.html`.
    pub report: PathBuf,
    /// Every chart file (SVG, PNG, JSON).
    pub files: Vec<PathBuf>,
}

/// The facts at the top of a run's page: data, backbone (file, size, hash) and settings.
pub fn run_facts(rc: &RunConfig, settings: &TrainSettings, data: &Path) -> Vec<(String, String)> {
    let b = &rc.backbone;
    let unfrozen = if settings.unfreeze_top > 0 {
        format!(" · top {} layers unfrozen", settings.unfreeze_top)
    } else {
        String::new()
    };
    vec![
        ("data".into(), data.display().to_string()),
        (
            "backbone".into(),
            format!(
                "{} ({} layers, width {}, sha256 {})",
                b.onnx.display(),
                b.layers,
                b.hidden,
                b.onnx_sha256
            ),
        ),
        (
            "settings".into(),
            format!(
                "epochs {} · patience {} · batch {} · lr {} · hidden states {:?}{unfrozen} · seed {}",
                settings.epochs,
                settings.patience,
                settings.batch_size,
                settings.lr,
                settings.hidden_states,
                settings.seed
            ),
        ),
    ]
}

/// A task's validation scores of one epoch, keyed as the curves name them.
pub fn epoch_scores(m: &Metrics) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, s) in &m.tasks {
        if let Some((what, v)) = headline(s) {
            out.insert(format!("{name} {what}"), v);
        }
    }
    if m.tasks.len() >= 2 {
        if let Some(v) = m.all_tasks_accuracy {
            out.insert("all tasks accuracy".into(), v);
        }
    }
    out
}

fn headline(s: &TaskScore) -> Option<(&'static str, f64)> {
    s.accuracy
        .map(|v| ("accuracy", v))
        .or(s.span_f1.map(|v| ("span F1", v)))
        .or(s.token_accuracy.map(|v| ("token accuracy", v)))
}

/// The training curves of a history: the loss, every task's headline validation score and the
/// score that picks the kept epoch ([`Metrics::score`]) per epoch, the kept epoch and, when
/// training stopped before `planned_epochs`, the early stop.
pub fn curves_of(summary: &RunSummary) -> TrainingCurves {
    let run = summary.history.last().map_or(0, |h| h.epoch);
    TrainingCurves {
        title: "Training curves".into(),
        points: summary
            .history
            .iter()
            .map(|h| EpochPoint {
                epoch: h.epoch,
                loss: h.loss,
                scores: epoch_scores(&h.valid),
                selection_score: Some(h.valid.score()),
            })
            .collect(),
        best_epoch: (summary.best_epoch > 0).then_some(summary.best_epoch),
        early_stop_epoch: (run > 0 && run < summary.planned_epochs).then_some(run),
        max_epochs: Some(summary.planned_epochs),
    }
}

/// One score of a task's scores.
type Pick = fn(&TaskScore) -> Option<f64>;

/// The metrics table: per task its scores on valid and test, then the all-tasks figures.
pub fn metric_rows(model: &ModelConfig, valid: &Metrics, test: Option<&Metrics>) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for t in &model.tasks {
        let (v, s) = (
            valid.tasks.get(&t.name),
            test.and_then(|m| m.tasks.get(&t.name)),
        );
        let metrics: &[(&str, Pick)] = match t.kind {
            TaskKind::Sentence => &[("accuracy", |x| x.accuracy)],
            TaskKind::Spans => &[
                ("span F1", |x| x.span_f1),
                ("precision", |x| x.precision),
                ("recall", |x| x.recall),
            ],
            TaskKind::Tokens => &[("token accuracy", |x| x.token_accuracy)],
        };
        for (metric, pick) in metrics {
            let (valid, test) = (v.and_then(pick), s.and_then(pick));
            if valid.is_some() || test.is_some() {
                rows.push(MetricRow {
                    task: t.name.clone(),
                    metric: metric.to_string(),
                    valid,
                    test,
                    ..MetricRow::default()
                });
            }
        }
    }
    let all = [
        (
            "intent + tags",
            "sentence accuracy",
            valid.sentence_accuracy,
            test.and_then(|m| m.sentence_accuracy),
        ),
        (
            "all tasks",
            "accuracy",
            valid.all_tasks_accuracy,
            test.and_then(|m| m.all_tasks_accuracy),
        ),
    ];
    for (task, metric, v, t) in all {
        if v.is_some() || t.is_some() {
            rows.push(MetricRow {
                task: task.into(),
                metric: metric.into(),
                valid: v,
                test: t,
                ..MetricRow::default()
            });
        }
    }
    rows
}

/// Writes `plots/` and `report.html` into the run folder `out`: the training curves, the pictures
/// of `eval` (the report of split `split`) and the page with `valid`/`test` metrics.
pub fn write_run_plots(
    out: &Path,
    model: &ModelConfig,
    summary: &RunSummary,
    eval: (&str, &EvalReport),
    valid: &Metrics,
    test: Option<&Metrics>,
) -> Result<RunPlots, ReportError> {
    let dir = out.join(PLOTS_DIR);
    let curves = write_training_curves(&dir.join(CURVES_STEM), &curves_of(summary))?;
    let (split, report) = eval;
    let pictures = write_eval_plots(&dir, report, split)?;
    let mut figures = vec![curves.figure("Training curves (validation scores and training loss)")];
    figures.extend(pictures.figures);
    let mut files = vec![curves.svg, curves.png, curves.json];
    files.extend(pictures.files);
    let name = std::fs::canonicalize(out)
        .unwrap_or_else(|_| out.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| out.display().to_string());
    let mut facts = vec![("run".to_string(), out.display().to_string())];
    facts.extend(summary.facts.iter().cloned());
    facts.push((
        "tasks".into(),
        model
            .tasks
            .iter()
            .map(|t| {
                format!(
                    "{} ({}, {} labels)",
                    t.name,
                    kind_name(t.kind),
                    t.labels.len()
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    ));
    facts.push(("training".into(), summary.stop.clone()));
    let page = HtmlReport {
        title: format!("edgetune run {name}"),
        facts,
        metrics: metric_rows(model, valid, test),
        figures,
        notes: vec![
            format!(
                "The evaluation pictures are of the {split} split ({} examples).",
                report.metrics.examples
            ),
            "Each chart is also in plots/ as SVG, PNG and JSON (the plotted data).".into(),
        ],
    };
    let report = write_html_report(&out.join(REPORT_FILE), &page)?;
    Ok(RunPlots { report, files })
}

fn kind_name(k: TaskKind) -> &'static str {
    match k {
        TaskKind::Sentence => "sentence",
        TaskKind::Spans => "spans",
        TaskKind::Tokens => "tokens",
    }
}
