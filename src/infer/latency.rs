//! Measuring answer latency: the built-in utterances `bench` and the service benchmarks time, and
//! the quantile of a set of timings.

/// Utterances timed when no input file is given: short and long smart-home commands.
pub const BENCH_SENTENCES: &[&str] = &[
    "turn on the lights in the kitchen",
    "set the thermostat in the living room to twenty one degrees",
    "play some jazz by miles davis",
    "what is the weather in lisbon tomorrow morning",
    "lock the front door",
    "dim the bedroom lamp to forty percent",
    "set a timer for ten minutes",
    "turn off the fan",
    "could you please switch off every light downstairs before i go to bed tonight",
    "is it going to rain in rio de janeiro this weekend",
];

/// The `p`-quantile (0..=1, nearest rank) of ascending `sorted` values; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}
