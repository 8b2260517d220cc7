//! Predicting labels for a split from its cached features (validation during training, `eval`).

use candle_core::Device;

use super::data::SplitData;
use super::error::TrainError;
use crate::data::{Labels, TaskInfo};
use crate::model::{decode_batch, to_labels, TaskModel};

/// Predicts every task's labels for every example of a split, `batch_size` at a time.
pub fn predict_split(
    model: &TaskModel,
    data: &SplitData,
    batch_size: usize,
) -> Result<Vec<Labels>, TrainError> {
    let dev = Device::Cpu;
    let n = data.feats.len();
    let mut scratch = Vec::new();
    let mut preds = Vec::with_capacity(n);
    let tasks: Vec<TaskInfo> = model.config.tasks.iter().map(|t| t.info()).collect();
    for start in (0..n).step_by(batch_size.max(1)) {
        let end = (start + batch_size).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let (input, words, kept) = data.batch(&idx, &mut scratch, &dev)?;
        let b = input.heads_input(model, None)?;
        for (d, k) in decode_batch(model, &b, &words)?.iter().zip(&kept) {
            preds.push(to_labels(&tasks, d, k));
        }
    }
    Ok(preds)
}
