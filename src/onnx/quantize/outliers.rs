//! Choosing outlier channels: the few activation channels multiplied in fp32 beside the int8 MatMul.

use super::options::{MAX_OUTLIER_FRACTION, MIN_OUTLIER_GAIN};

/// Outlier channels of one activation: those with `amax > ratio * median(amax)`, largest first,
/// capped at `max(1, K / MAX_OUTLIER_FRACTION)`, returned in ascending channel order; empty when
/// removing them would shrink the range by less than [`MIN_OUTLIER_GAIN`].
pub fn outlier_channels(amax: &[f32], ratio: f32) -> Vec<usize> {
    if ratio <= 0.0 || amax.is_empty() {
        return Vec::new();
    }
    let mut sorted = amax.to_vec();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    if median <= 0.0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..amax.len())
        .filter(|&j| amax[j] > ratio * median)
        .collect();
    idx.sort_by(|&a, &b| amax[b].total_cmp(&amax[a]));
    idx.truncate((amax.len() / MAX_OUTLIER_FRACTION).max(1));
    idx.sort_unstable();
    let all = sorted[sorted.len() - 1];
    let rest = (0..amax.len())
        .filter(|j| idx.binary_search(j).is_err())
        .map(|j| amax[j])
        .fold(0f32, f32::max);
    if idx.is_empty() || all < MIN_OUTLIER_GAIN * rest {
        return Vec::new();
    }
    idx
}
