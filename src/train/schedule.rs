//! The order of examples and the learning-rate schedule.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Shuffled batches of similar-length examples: shuffle, sort windows of 32 batches by length,
/// cut into batches, shuffle the batch order. Less padding, same randomness from the seed.
pub fn bucketed_batches(
    lengths: &[u32],
    batch_size: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in order.chunks(batch_size.max(1) * 32) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| lengths[i]);
        batches.extend(w.chunks(batch_size.max(1)).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}

/// The seed of epoch `epoch`'s random stream (shuffling, dropout): derived from the run's seed and
/// the epoch alone, so a run resumed at an epoch boundary draws what the uninterrupted run drew.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64 + 1)
}

/// The learning-rate factor of optimizer step `done` (0-based) of `total`: linear warm-up over the
/// first epoch (`steps_per_epoch` steps), then cosine decay to a tenth.
pub fn lr_factor(done: usize, steps_per_epoch: usize, total: usize) -> f64 {
    let warm = (done as f64 + 1.0) / steps_per_epoch.max(1) as f64;
    let cos = 0.5 * (1.0 + (std::f64::consts::PI * done as f64 / total.max(1) as f64).cos());
    warm.min(1.0) * (0.1 + 0.9 * cos)
}

/// The unfrozen layers' own warm-up factor when they start after `heads_first` epochs: 0 before,
/// rising linearly over one epoch, then 1 (always 1 without `heads_first`).
pub fn layer_warmup(done: usize, steps_per_epoch: usize, heads_first: usize) -> f64 {
    if heads_first == 0 {
        return 1.0;
    }
    let start = heads_first * steps_per_epoch;
    ((done as f64 + 1.0 - start as f64) / steps_per_epoch.max(1) as f64).clamp(0.0, 1.0)
}
