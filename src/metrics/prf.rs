//! Precision, recall and F1 from counts, with conlleval's conventions for empty denominators.

use serde::{Deserialize, Serialize};

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

    /// Adds another set of counts.
    pub fn add(&mut self, other: Prf) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }
}

/// `num / den`, 0 when `den` is 0.
pub fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}
