//! Scoring predictions against gold examples, per task and over all tasks.
//!
//! Span tasks are scored as conlleval does: tags are turned into chunks ([`spans`]) and a predicted
//! chunk counts as correct only if its type, start and end all match a gold chunk; micro
//! precision/recall/F1 come from the summed counts. Sentence tasks get accuracy, token tasks that
//! are not BIO per-token accuracy.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::prf::{ratio, Prf};
use super::spans::{parse_tag, spans, Span};
use crate::data::{Example, Labels, TaskInfo, TaskKind, INTENT, TAGS};

/// The scores of one task. Values are fractions in `[0, 1]`; the JSON field names are a public
/// contract (`eval --json`'s `tasks`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    /// Gold examples that have this task.
    pub examples: usize,
    /// Sentence tasks: fraction of examples whose label was predicted right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Span tasks: conlleval micro F1 over chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_f1: Option<f64>,
    /// Span tasks: micro precision over chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Span tasks: micro recall over chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Token tasks that are not BIO: fraction of words labelled right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_accuracy: Option<f64>,
}

impl TaskScore {
    /// The task's headline score (accuracy, span F1 or token accuracy).
    pub fn headline(&self) -> Option<f64> {
        self.accuracy.or(self.span_f1).or(self.token_accuracy)
    }
}

/// Headline metrics. A metric is `None` when its task does not apply to the gold data. Values are
/// fractions in `[0, 1]`. The JSON field names are a public contract: `intent_accuracy`,
/// `slot_*` and `sentence_accuracy` describe the tasks `intent` and `tags`, `tasks` every task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Number of gold examples.
    pub examples: usize,
    /// Fraction of examples whose intent was predicted right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_accuracy: Option<f64>,
    /// conlleval micro precision over the chunks of `tags`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_precision: Option<f64>,
    /// conlleval micro recall over the chunks of `tags`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_recall: Option<f64>,
    /// conlleval micro F1 over the chunks of `tags`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_f1: Option<f64>,
    /// Fraction of examples with the intent and every slot chunk right (only when both apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentence_accuracy: Option<f64>,
    /// Every task, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, TaskScore>,
    /// Fraction of examples with every task right (only when two or more tasks apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_tasks_accuracy: Option<f64>,
}

/// `Err((field, message))` when a recorded fraction is not in `[0, 1]`.
fn check_fraction(field: &str, v: Option<f64>) -> Result<(), (String, String)> {
    match v {
        Some(v) if !(0.0..=1.0).contains(&v) => Err((
            field.to_string(),
            format!("{v} is not a fraction in [0, 1]"),
        )),
        _ => Ok(()),
    }
}

impl TaskScore {
    /// Checks a recorded score: fractions in `[0, 1]`, at most `examples` examples.
    fn validate(&self, examples: usize) -> Result<(), (String, String)> {
        if self.examples > examples {
            return Err((
                "examples".into(),
                format!("{} is more than the split's {examples}", self.examples),
            ));
        }
        check_fraction("accuracy", self.accuracy)?;
        check_fraction("span_f1", self.span_f1)?;
        check_fraction("precision", self.precision)?;
        check_fraction("recall", self.recall)?;
        check_fraction("token_accuracy", self.token_accuracy)
    }
}

impl Metrics {
    /// Checks metrics read from a file: every score a fraction in `[0, 1]`, no task with more
    /// examples than the split. `Err((field, message))` names the field (`tasks.intent.accuracy`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        check_fraction("intent_accuracy", self.intent_accuracy)?;
        check_fraction("slot_precision", self.slot_precision)?;
        check_fraction("slot_recall", self.slot_recall)?;
        check_fraction("slot_f1", self.slot_f1)?;
        check_fraction("sentence_accuracy", self.sentence_accuracy)?;
        check_fraction("all_tasks_accuracy", self.all_tasks_accuracy)?;
        for (name, t) in &self.tasks {
            t.validate(self.examples)
                .map_err(|(f, m)| (format!("tasks.{name}.{f}"), m))?;
        }
        Ok(())
    }

    /// The validation score that early stopping maximises: the mean of the tasks' headline scores,
    /// and with two or more tasks the all-tasks accuracy too (for `intent` + `tags`: intent
    /// accuracy, slot F1 and sentence accuracy).
    pub fn score(&self) -> f64 {
        let v: Vec<f64> = self
            .tasks
            .values()
            .filter_map(TaskScore::headline)
            .chain(self.all_tasks_accuracy)
            .collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }
}

/// The detailed result of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// What the task predicts.
    pub kind: TaskKind,
    /// Per label (sentence and token tasks) or per chunk type (span tasks): `tp` = gold and
    /// predicted, `fn` = gold but not predicted, `fp` = predicted but not gold.
    pub labels: BTreeMap<String, Prf>,
    /// `(gold, predicted, count)` for every pair (right ones included) of a sentence task or a
    /// token task that is not BIO: the confusion matrix.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    /// Gold labels (or chunk types) that training never saw, with their counts (they count as misses).
    pub unseen: BTreeMap<String, usize>,
}

impl TaskReport {
    /// `(gold, predicted, count)` for gold != predicted, most frequent first (ties by name).
    pub fn confusions(&self) -> Vec<(String, String, usize)> {
        let mut v: Vec<(String, String, usize)> = self
            .counts
            .iter()
            .flat_map(|(g, row)| {
                row.iter()
                    .filter(move |(p, _)| *p != g)
                    .map(move |(p, n)| (g.clone(), p.clone(), *n))
            })
            .collect();
        // Stable sort: equal counts keep the (gold, predicted) name order.
        v.sort_by_key(|c| std::cmp::Reverse(c.2));
        v
    }
}

/// The full result of [`evaluate`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Headline metrics.
    pub metrics: Metrics,
    /// Per task, by name.
    pub tasks: BTreeMap<String, TaskReport>,
}

impl EvalReport {
    /// Gold intents training never saw (`eval --json`'s `unseen_intents`).
    pub fn unseen_intents(&self) -> BTreeMap<String, usize> {
        self.tasks
            .get(INTENT)
            .map(|t| t.unseen.clone())
            .unwrap_or_default()
    }

    /// Gold slot types of `tags` training never saw (`eval --json`'s `unseen_slot_types`).
    pub fn unseen_slot_types(&self) -> BTreeMap<String, usize> {
        self.tasks
            .get(TAGS)
            .map(|t| t.unseen.clone())
            .unwrap_or_default()
    }
}

/// How a missing prediction appears among the confusions.
pub const NO_PREDICTION: &str = "(none)";

/// Scores predictions against gold examples; `pred[i]` pairs with `gold[i]`. `tasks` are the
/// model's tasks with the labels training saw; a task is scored on the examples whose gold data has
/// it, and tasks the gold data lacks are left out.
///
/// A gold example without a prediction (when `pred` is shorter) is scored as if nothing was
/// predicted; extra predictions are ignored. For span tasks "all right" means the predicted chunks
/// are exactly the gold chunks (so `I-X` and `B-X` opening a chunk are the same, as in conlleval).
pub fn evaluate(gold: &[Example], pred: &[Labels], tasks: &[TaskInfo]) -> EvalReport {
    let none = Labels::default();
    let pred_of = |i: usize| pred.get(i).unwrap_or(&none);
    let mut report = EvalReport::default();
    let mut scores: BTreeMap<String, TaskScore> = BTreeMap::new();
    // Per example: was each scored task right?
    let mut right: Vec<Vec<bool>> = vec![Vec::new(); gold.len()];
    for task in tasks {
        let mut tally = Tally::new(task);
        for (i, g) in gold.iter().enumerate() {
            if let Some(correct) = tally.example(&g.labels, pred_of(i)) {
                right[i].push(correct);
            }
        }
        if let Some((score, rep)) = tally.finish() {
            scores.insert(task.name.clone(), score);
            report.tasks.insert(task.name.clone(), rep);
        }
    }
    let tags = report
        .tasks
        .get(TAGS)
        .is_some_and(|t| t.kind == TaskKind::Spans);
    let sentence = match report.tasks.contains_key(INTENT) && tags {
        true => legacy_sentence_accuracy(gold, &pred_of),
        false => None,
    };
    let all_tasks = (report.tasks.len() >= 2).then(|| {
        let rows: Vec<&Vec<bool>> = right.iter().filter(|r| !r.is_empty()).collect();
        let all = rows.iter().filter(|r| r.iter().all(|&b| b)).count();
        ratio(all, rows.len())
    });
    let slot = scores.get(TAGS).filter(|_| tags);
    report.metrics = Metrics {
        examples: gold.len(),
        intent_accuracy: scores.get(INTENT).and_then(|s| s.accuracy),
        slot_precision: slot.and_then(|s| s.precision),
        slot_recall: slot.and_then(|s| s.recall),
        slot_f1: slot.and_then(|s| s.span_f1),
        sentence_accuracy: sentence,
        tasks: scores,
        all_tasks_accuracy: all_tasks,
    };
    report
}

/// The legacy sentence accuracy: intent and every tags chunk right, over the examples that have
/// both (`None` when none has).
fn legacy_sentence_accuracy<'a>(
    gold: &[Example],
    pred_of: &dyn Fn(usize) -> &'a Labels,
) -> Option<f64> {
    let (mut total, mut ok) = (0usize, 0usize);
    for (i, g) in gold.iter().enumerate() {
        let (Some(gi), Some(gt)) = (g.intent(), g.tags()) else {
            continue;
        };
        let p = pred_of(i);
        total += 1;
        let tags_ok = p.tags().is_some_and(|pt| spans(pt) == spans(gt));
        ok += usize::from(p.intent() == Some(gi) && tags_ok);
    }
    (total > 0).then(|| ratio(ok, total))
}

/// The counts of one task over the gold examples that have it.
struct Tally<'a> {
    task: &'a TaskInfo,
    /// The labels (span tasks: chunk types) training saw.
    seen: BTreeSet<&'a str>,
    rep: TaskReport,
    /// Examples scored, and those with the task all right.
    examples: usize,
    right: usize,
    /// Span tasks: chunk counts.
    chunks: Prf,
    /// Token tasks: words scored and words right.
    words: usize,
    words_right: usize,
}

impl<'a> Tally<'a> {
    fn new(task: &'a TaskInfo) -> Self {
        let seen = match task.kind {
            TaskKind::Spans => task
                .labels
                .iter()
                .filter_map(|t| match parse_tag(t) {
                    ('O', _) => None,
                    (_, kind) => Some(kind),
                })
                .collect(),
            _ => task.labels.iter().map(String::as_str).collect(),
        };
        Tally {
            task,
            seen,
            rep: TaskReport {
                kind: task.kind,
                labels: BTreeMap::new(),
                counts: BTreeMap::new(),
                unseen: BTreeMap::new(),
            },
            examples: 0,
            right: 0,
            chunks: Prf::default(),
            words: 0,
            words_right: 0,
        }
    }

    /// Scores one example: `None` when its gold data lacks the task, else whether the task is all
    /// right.
    fn example(&mut self, gold: &Labels, pred: &Labels) -> Option<bool> {
        let name = &self.task.name;
        let correct = match self.task.kind {
            TaskKind::Sentence => {
                let gl = gold.sentence.get(name)?;
                self.label(gl, pred.sentence.get(name))
            }
            TaskKind::Spans => self.spans(gold.token.get(name)?, pred.token.get(name)),
            TaskKind::Tokens => {
                let (gt, pt) = (gold.token.get(name)?, pred.token.get(name));
                let mut all = pt.is_some();
                for (w, gl) in gt.iter().enumerate() {
                    let hit = self.label(gl, pt.and_then(|t| t.get(w)));
                    self.words += 1;
                    self.words_right += usize::from(hit);
                    all &= hit;
                }
                all
            }
        };
        self.examples += 1;
        self.right += usize::from(correct);
        Some(correct)
    }

    /// One gold label against its prediction (a sentence's, or a word's of a token task):
    /// unseen labels, true/false positives and negatives per label, the confusion count.
    fn label(&mut self, gold: &String, pred: Option<&String>) -> bool {
        let rep = &mut self.rep;
        if !self.seen.contains(gold.as_str()) {
            *rep.unseen.entry(gold.clone()).or_default() += 1;
        }
        let hit = pred == Some(gold);
        let entry = rep.labels.entry(gold.clone()).or_default();
        if hit {
            entry.tp += 1;
        } else {
            entry.fn_ += 1;
            if let Some(p) = pred {
                rep.labels.entry(p.clone()).or_default().fp += 1;
            }
        }
        let shown = pred.cloned().unwrap_or_else(|| NO_PREDICTION.to_string());
        let row = rep.counts.entry(gold.clone()).or_default();
        *row.entry(shown).or_default() += 1;
        hit
    }

    /// A span task's chunks: a gold chunk is found when a predicted chunk has its type, start and
    /// end; every other predicted chunk is a false positive. All right: the same chunks.
    fn spans(&mut self, gold: &[String], pred: Option<&Vec<String>>) -> bool {
        let gold_spans = spans(gold);
        let pred_spans: Vec<Span> = pred.map(|t| spans(t)).unwrap_or_default();
        for s in &gold_spans {
            if !self.seen.contains(s.kind.as_str()) {
                *self.rep.unseen.entry(s.kind.clone()).or_default() += 1;
            }
            let hit = pred_spans.contains(s);
            self.chunk(&s.kind, usize::from(hit), 0, usize::from(!hit));
        }
        for s in pred_spans.iter().filter(|s| !gold_spans.contains(s)) {
            self.chunk(&s.kind, 0, 1, 0);
        }
        pred.is_some() && pred_spans == gold_spans
    }

    fn chunk(&mut self, kind: &str, tp: usize, fp: usize, fn_: usize) {
        let c = Prf { tp, fp, fn_ };
        self.rep.labels.entry(kind.to_string()).or_default().add(c);
        self.chunks.add(c);
    }

    /// The task's score and report (`None` when no gold example has the task).
    fn finish(self) -> Option<(TaskScore, TaskReport)> {
        if self.examples == 0 {
            return None;
        }
        let fraction = |r: usize, t: usize| (t > 0).then(|| ratio(r, t));
        let examples = self.examples;
        let score = match self.task.kind {
            TaskKind::Sentence => TaskScore {
                examples,
                accuracy: fraction(self.right, examples),
                ..TaskScore::default()
            },
            TaskKind::Spans => TaskScore {
                examples,
                span_f1: Some(self.chunks.f1()),
                precision: Some(self.chunks.precision()),
                recall: Some(self.chunks.recall()),
                ..TaskScore::default()
            },
            TaskKind::Tokens => TaskScore {
                examples,
                token_accuracy: fraction(self.words_right, self.words),
                ..TaskScore::default()
            },
        };
        Some((score, self.rep))
    }
}
