//! Whether a retrained model may replace the serving one: scored on the held-out split and on the
//! corrections, from the feature cache.

use crate::data::{Labels, Split, TaskInfo};
use crate::features::SplitFeatures;
use crate::metrics::{evaluate, Metrics};
use crate::model::TaskModel;
use crate::train::{predict_split, SplitData, TrainError};

/// Examples per prediction batch.
const BATCH: usize = 128;

/// Held-out metrics of `model` on `split` (features `feats`).
pub fn held_out(
    model: &TaskModel,
    split: &Split,
    feats: SplitFeatures,
    tasks: &[TaskInfo],
) -> Result<(Metrics, SplitFeatures), TrainError> {
    let data = SplitData { split, feats };
    let preds = predict_split(model, &data, BATCH)?;
    Ok((evaluate(&split.examples, &preds, tasks).metrics, data.feats))
}

/// Per correction: whether `model` answers every task it gives as given.
pub fn fixed(
    model: &TaskModel,
    corrections: &Split,
    given: &[Vec<String>],
    feats: SplitFeatures,
) -> Result<Vec<bool>, TrainError> {
    if corrections.examples.is_empty() {
        return Ok(Vec::new());
    }
    let data = SplitData {
        split: corrections,
        feats,
    };
    let preds = predict_split(model, &data, BATCH)?;
    Ok(corrections
        .examples
        .iter()
        .zip(&preds)
        .zip(given)
        .map(|((ex, pred), tasks)| tasks.iter().all(|t| agrees(&ex.labels, pred, t)))
        .collect())
}

fn agrees(gold: &Labels, pred: &Labels, task: &str) -> bool {
    match (gold.sentence.get(task), gold.token.get(task)) {
        (Some(g), _) => pred.sentence.get(task) == Some(g),
        (None, Some(g)) => pred.token.get(task) == Some(g),
        (None, None) => true,
    }
}

/// The swap decision: `Ok(reason)` to swap, `Err(reason)` to keep the serving model.
pub fn decide(
    old_score: f64,
    new_score: f64,
    margin: f64,
    unfixed: &[u64],
) -> Result<String, String> {
    if new_score < old_score - margin {
        return Err(format!(
            "held-out score fell from {:.4} to {:.4}, more than the margin {margin}",
            old_score, new_score
        ));
    }
    if !unfixed.is_empty() {
        let list: Vec<String> = unfixed.iter().map(u64::to_string).collect();
        return Err(format!(
            "the retrained model still answers {} correction(s) differently: seq {} (withdraw one with \
             {{\"forget\": SEQ}} if it cannot be learned)",
            unfixed.len(),
            list.join(", ")
        ));
    }
    Ok(format!(
        "held-out score {:.4} -> {:.4} (margin {margin}), every correction answered as given",
        old_score, new_score
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_and_corrections_decide() {
        assert!(decide(0.9, 0.89, 0.02, &[]).is_ok());
        let e = decide(0.9, 0.87, 0.02, &[]).unwrap_err();
        assert!(e.contains("fell from 0.9000 to 0.8700"), "{e}");
        let e = decide(0.9, 0.95, 0.02, &[3, 5]).unwrap_err();
        assert!(e.contains("seq 3, 5"), "{e}");
    }
}
