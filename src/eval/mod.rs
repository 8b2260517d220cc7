//! Evaluation: intent accuracy, conlleval span F1, sentence accuracy and readable reports.
//!
//! Slot scores follow conlleval exactly: tags are turned into chunks with conlleval's chunk
//! semantics ([`spans`]), and a predicted chunk counts as correct only if its type, start and end
//! all match a gold chunk. Micro precision/recall/F1 are computed from the summed counts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::data::Example;

mod render;

pub use render::render_table;

/// A chunk of consecutive words with one slot type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    /// The slot type (`X` of `B-X`/`I-X`).
    pub kind: String,
    /// Index of the first word.
    pub start: usize,
    /// Index one past the last word.
    pub end: usize,
}

/// Splits a tag into conlleval's (prefix, type); anything but `O`, `B-X`, `I-X` counts as `O`.
fn parse_tag(tag: &str) -> (char, &str) {
    if let Some(kind) = tag.strip_prefix("B-").filter(|k| !k.is_empty()) {
        ('B', kind)
    } else if let Some(kind) = tag.strip_prefix("I-").filter(|k| !k.is_empty()) {
        ('I', kind)
    } else {
        ('O', "")
    }
}

/// The chunks of a tag sequence, with conlleval's semantics for BIO and IOB1: a chunk starts at
/// `B-X`, or at `I-X` after `O` or after a tag of another type; it ends before `O`, `B-*`, or a tag
/// of another type. Malformed tags are treated as `O`. Never fails.
pub fn spans(tags: &[String]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize)> = None;
    let (mut prev_tag, mut prev_kind) = ('O', "");
    for (i, tag) in tags.iter().enumerate() {
        let (tag, kind) = parse_tag(tag);
        // conlleval's endOfChunk and startOfChunk, restricted to B/I/O.
        let in_chunk = prev_tag != 'O';
        let ends = in_chunk && (tag == 'B' || tag == 'O' || prev_kind != kind);
        let starts = tag == 'B' || (tag == 'I' && (prev_tag == 'O' || prev_kind != kind));
        if ends {
            if let Some((k, s)) = open.take() {
                out.push(Span {
                    kind: k,
                    start: s,
                    end: i,
                });
            }
        }
        if starts {
            open = Some((kind.to_string(), i));
        }
        (prev_tag, prev_kind) = (tag, kind);
    }
    if let Some((kind, start)) = open {
        out.push(Span {
            kind,
            start,
            end: tags.len(),
        });
    }
    out
}

/// True-positive, false-positive and false-negative counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prf {
    /// Predicted and correct.
    pub tp: usize,
    /// Predicted but wrong.
    pub fp: usize,
    /// In the gold data but not predicted.
    #[serde(rename = "fn")]
    pub fn_: usize,
}

impl Prf {
    /// `tp / (tp + fp)`, 0 when nothing was predicted (as conlleval).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// `tp / (tp + fn)`, 0 when there is nothing to find (as conlleval).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall, 0 when both are 0 (as conlleval).
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Number of gold occurrences, `tp + fn`.
    pub fn support(&self) -> usize {
        self.tp + self.fn_
    }

    fn add(&mut self, other: Prf) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// A model's output for one example; a task the model does not have is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// The predicted intent.
    pub intent: Option<String>,
    /// The predicted tags, one per word.
    pub tags: Option<Vec<String>>,
}

/// The labels seen in training; gold labels outside these are reported as unseen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSets {
    /// Intent labels.
    pub intents: BTreeSet<String>,
    /// Slot types (`X` of `B-X`/`I-X`).
    pub slot_types: BTreeSet<String>,
}

impl LabelSets {
    /// The intents and slot types (of well-formed tags) occurring in `examples`.
    pub fn from_examples(examples: &[Example]) -> LabelSets {
        let mut labels = LabelSets::default();
        for e in examples {
            if let Some(intent) = &e.intent {
                labels.intents.insert(intent.clone());
            }
            for tag in e.tags.iter().flatten() {
                let (prefix, kind) = parse_tag(tag);
                if prefix != 'O' {
                    labels.slot_types.insert(kind.to_string());
                }
            }
        }
        labels
    }
}

/// Headline metrics. A metric is `None` when its task does not apply to the gold data.
/// Values are fractions in `[0, 1]`. The JSON field names are a public contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Number of gold examples.
    pub examples: usize,
    /// Fraction of examples whose intent was predicted right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_accuracy: Option<f64>,
    /// conlleval micro precision over slot chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_precision: Option<f64>,
    /// conlleval micro recall over slot chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_recall: Option<f64>,
    /// conlleval micro F1 over slot chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_f1: Option<f64>,
    /// Fraction of examples with the intent and every slot chunk right (only when both tasks apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentence_accuracy: Option<f64>,
}

/// The full result of [`evaluate`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Headline metrics.
    pub metrics: Metrics,
    /// Per-intent counts: `tp` = gold and predicted, `fn` = gold but predicted otherwise,
    /// `fp` = predicted but gold is another intent.
    pub intents: BTreeMap<String, Prf>,
    /// Per-slot-type exact-span counts.
    pub slots: BTreeMap<String, Prf>,
    /// `(gold, predicted, count)` for gold != predicted, most frequent first (ties by name).
    /// A missing intent prediction is shown as [`NO_PREDICTION`].
    pub intent_confusions: Vec<(String, String, usize)>,
    /// Gold intents training never saw, with their counts (they count as misses).
    pub unseen_intents: BTreeMap<String, usize>,
    /// Gold slot types training never saw, with their chunk counts (they count as misses).
    pub unseen_slot_types: BTreeMap<String, usize>,
}

/// How a missing intent prediction appears in [`EvalReport::intent_confusions`].
pub const NO_PREDICTION: &str = "(none)";

/// Scores predictions against gold examples; `pred[i]` pairs with `gold[i]`.
///
/// A gold example without a prediction (when `pred` is shorter) is scored as if nothing was
/// predicted; extra predictions are ignored. For sentence accuracy, "all tags right" means the
/// predicted chunks are exactly the gold chunks (so `I-X` and `B-X` opening a chunk are the same,
/// as in conlleval).
pub fn evaluate(gold: &[Example], pred: &[Prediction], labels: &LabelSets) -> EvalReport {
    let mut report = EvalReport::default();
    let none = Prediction::default();
    let (mut intent_total, mut intent_right) = (0usize, 0usize);
    let (mut tagged_total, mut slot_total) = (0usize, Prf::default());
    let (mut sentence_total, mut sentence_right) = (0usize, 0usize);
    let mut confusions: BTreeMap<(String, String), usize> = BTreeMap::new();

    for (i, g) in gold.iter().enumerate() {
        let p = pred.get(i).unwrap_or(&none);

        let intent_ok = g.intent.as_ref().map(|gi| {
            intent_total += 1;
            if !labels.intents.contains(gi) {
                *report.unseen_intents.entry(gi.clone()).or_default() += 1;
            }
            if p.intent.as_ref() == Some(gi) {
                intent_right += 1;
                report.intents.entry(gi.clone()).or_default().tp += 1;
                true
            } else {
                report.intents.entry(gi.clone()).or_default().fn_ += 1;
                if let Some(pi) = &p.intent {
                    report.intents.entry(pi.clone()).or_default().fp += 1;
                }
                let shown = p
                    .intent
                    .clone()
                    .unwrap_or_else(|| NO_PREDICTION.to_string());
                *confusions.entry((gi.clone(), shown)).or_default() += 1;
                false
            }
        });

        let tags_ok = g.tags.as_ref().map(|gt| {
            tagged_total += 1;
            let gold_spans = spans(gt);
            let pred_spans = p.tags.as_deref().map(spans).unwrap_or_default();
            for s in &gold_spans {
                if !labels.slot_types.contains(&s.kind) {
                    *report.unseen_slot_types.entry(s.kind.clone()).or_default() += 1;
                }
                let hit = pred_spans.contains(s);
                let counts = Prf {
                    tp: hit as usize,
                    fp: 0,
                    fn_: (!hit) as usize,
                };
                report.slots.entry(s.kind.clone()).or_default().add(counts);
                slot_total.add(counts);
            }
            for s in pred_spans.iter().filter(|s| !gold_spans.contains(s)) {
                let counts = Prf {
                    tp: 0,
                    fp: 1,
                    fn_: 0,
                };
                report.slots.entry(s.kind.clone()).or_default().add(counts);
                slot_total.add(counts);
            }
            p.tags.is_some() && pred_spans == gold_spans
        });

        if let (Some(intent_ok), Some(tags_ok)) = (intent_ok, tags_ok) {
            sentence_total += 1;
            if intent_ok && tags_ok {
                sentence_right += 1;
            }
        }
    }

    let mut confusions: Vec<(String, String, usize)> = confusions
        .into_iter()
        .map(|((g, p), n)| (g, p, n))
        .collect();
    // Stable sort: equal counts keep the (gold, predicted) name order of the BTreeMap.
    confusions.sort_by_key(|c| std::cmp::Reverse(c.2));
    report.intent_confusions = confusions;

    let fraction = |right: usize, total: usize| (total > 0).then(|| ratio(right, total));
    report.metrics = Metrics {
        examples: gold.len(),
        intent_accuracy: fraction(intent_right, intent_total),
        slot_precision: (tagged_total > 0).then(|| slot_total.precision()),
        slot_recall: (tagged_total > 0).then(|| slot_total.recall()),
        slot_f1: (tagged_total > 0).then(|| slot_total.f1()),
        sentence_accuracy: fraction(sentence_right, sentence_total),
    };
    report
}
