//! The plan printed before training and the memory model behind `--max-memory`.

use super::init::Start;
use super::settings::{auto_epochs, TrainSettings};
use crate::data::Dataset;
use crate::features::FeatureContext;
use crate::model::Unfrozen;

const MIB: usize = 1 << 20;

/// What training will do and need, worked out before any work starts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The plan in words (what `train` prints, and all that `--dry-run` prints).
    pub text: String,
    /// The expected peak memory, in bytes.
    pub peak: usize,
}

/// The plan of a run: tasks with label counts, trainable parameters per head and for the layers,
/// what is frozen, the feature cache's size and the expected peak memory. `start` describes the
/// model ([`super::init::plan_model`]) with its `backbone_width` set.
pub fn plan(
    dataset: &Dataset,
    ctx: &FeatureContext,
    settings: &TrainSettings,
    start: &Start,
    states: &[usize],
) -> Plan {
    let sizes = Sizes::of(dataset, ctx, settings, start, states);
    Plan {
        text: describe(&sizes, settings, start, states),
        peak: sizes.peak,
    }
}

/// The counts and sizes behind a plan.
struct Sizes {
    layers: usize,
    /// Unfrozen top layers, and the first of them.
    n_top: usize,
    first: usize,
    epochs: usize,
    steps: usize,
    head_params: Vec<usize>,
    layer_params: usize,
    trainable: usize,
    /// Bytes of the feature cache and of the expected peak.
    cache: usize,
    peak: usize,
}

impl Sizes {
    fn of(
        dataset: &Dataset,
        ctx: &FeatureContext,
        settings: &TrainSettings,
        start: &Start,
        states: &[usize],
    ) -> Self {
        let layers = ctx.layers();
        let h = start.config.backbone_width;
        let n_train = dataset.train.examples.len();
        let epochs = match settings.epochs {
            0 => auto_epochs(n_train, settings.batch_size),
            e => e,
        };
        let cfg = &start.config;
        let head_params: Vec<usize> = (0..cfg.tasks.len()).map(|i| cfg.head_params(i)).collect();
        // Unfrozen layers: attention (4 dense h×h), FFN (h×4h, 4h×h), two layer norms, per layer.
        let n_top = settings.unfreeze_top.min(layers);
        let ffn = 4 * h;
        let layer_params = n_top * (4 * (h * h + h) + (h * ffn + ffn) + (ffn * h + h) + 4 * h);
        let trainable: usize = cfg
            .tasks
            .iter()
            .zip(&head_params)
            .filter(|(t, _)| !start.frozen.contains(&t.name))
            .map(|(_, n)| n)
            .sum::<usize>()
            + layer_params;
        let all_params = head_params.iter().sum::<usize>() + layer_params;
        let first = layers - n_top;
        let (cache, peak) = memory(
            dataset,
            ctx,
            settings,
            (h, first, n_top),
            states,
            all_params,
        );
        Sizes {
            layers,
            n_top,
            first,
            epochs,
            steps: n_train.div_ceil(settings.batch_size.max(1)),
            head_params,
            layer_params,
            trainable,
            cache,
            peak,
        }
    }
}

/// The feature cache's bytes and the expected peak memory of extraction or training, whichever is
/// larger, for a backbone of width `h` with `n_top` layers unfrozen from `first` on.
fn memory(
    dataset: &Dataset,
    ctx: &FeatureContext,
    settings: &TrainSettings,
    (h, first, n_top): (usize, usize, usize),
    states: &[usize],
    all_params: usize,
) -> (usize, usize) {
    let layers = ctx.layers();
    let k = states.len();
    let words: usize = dataset
        .splits()
        .map(|s| s.examples.iter().map(|e| e.words.len()).sum::<usize>())
        .sum();
    let examples: usize = dataset.splits().map(|s| s.examples.len()).sum();
    // With unfrozen layers the cache holds token-level states (the heads' states up to the first
    // unfrozen layer's input, and that input): about 1.3 tokens per word plus [CLS] and [SEP].
    let (cached_k, rows) = match n_top {
        0 => (k, words),
        _ => (
            Unfrozen::cached_states(states, first).len(),
            words * 13 / 10 + 2 * examples,
        ),
    };
    let cache = rows * cached_k * h * 2 + examples * h * 4;
    let model_bytes = std::fs::metadata(&ctx.files.onnx)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let max_tokens = ctx.tokenizer.max_tokens();
    let longest = dataset
        .train
        .examples
        .iter()
        .map(|e| e.words.len())
        .max()
        .unwrap_or(1)
        .min(max_tokens);
    // ORT holds the model about three times over (weights, prepacked copies, arena); one batch of
    // activations per state; candle keeps weights, two Adam moments, gradients and the batch graph.
    let extraction =
        3 * model_bytes + ctx.batch_size * max_tokens.min(4 * longest) * h * 4 * (layers + 2) * 2;
    let longest_tokens = (longest * 2 + 2).min(max_tokens);
    // Per unfrozen layer and token the backward pass keeps about 16 hidden-sized activations, two
    // FFN-sized ones and the attention scores of every head.
    let (batch, heads_n, ffn) = (settings.batch_size, (h / 32).max(1), 4 * h);
    let layer_acts =
        n_top * batch * longest_tokens * (16 * h + 2 * ffn + 3 * heads_n * longest_tokens) * 4;
    // Weights, gradients and two Adam moments (4 copies of f32), the best weights kept serialized,
    // and at each epoch's checkpoint the moments serialized (a copy and the file's bytes):
    // measured on data/demo with `--unfreeze-top 2` (5.1 M parameters), the checkpoint is the peak
    // of small batches.
    let mut training = 4 * 4 * all_params
        + 4 * 4 * all_params
        + batch * longest * (k + 6) * h * 4 * 3
        + layer_acts;
    if n_top > 0 {
        training += 2 * batch * longest_tokens * cached_k * h * 4;
        // candle's autograd keeps more than the activations counted above (views, broadcast
        // copies, the graph itself): measured peaks on data/demo (`--unfreeze-top 2`, batches 16
        // to 64) were up to a quarter above the count.
        training = training * 5 / 4;
    }
    let tokenizer_bytes = std::fs::metadata(&ctx.files.tokenizer)
        .map(|m| m.len() as usize * 8)
        .unwrap_or(0);
    let peak = 40 * MIB + tokenizer_bytes + extraction.max(training) + examples * h * 4;
    (cache, peak)
}

/// The plan in words: tasks, hidden states, epochs and steps, trainable parameters per head (and
/// the layers'), what is frozen, the cache and the expected peak.
fn describe(z: &Sizes, settings: &TrainSettings, start: &Start, states: &[usize]) -> String {
    let (cfg, first, layers, n_top) = (&start.config, z.first, z.layers, z.n_top);
    let mut frozen: Vec<String> = start.frozen.iter().map(|t| format!("{t} head")).collect();
    frozen.push(match (n_top, first) {
        (0, _) => "backbone".into(),
        (_, 0) => "embeddings".to_string(),
        _ => format!("embeddings and backbone layers 0..{first}"),
    });
    let heads: Vec<String> = cfg
        .tasks
        .iter()
        .zip(&z.head_params)
        .enumerate()
        .map(|(i, (t, n))| {
            let reads = cfg
                .reads(i)
                .map(|r| format!(", reading the {} head's states", cfg.tasks[r].name))
                .unwrap_or_default();
            format!("{} head {n}{reads}", t.name)
        })
        .collect();
    let (top, cache_kind) = match n_top {
        0 => (String::new(), "word-level".to_string()),
        _ => {
            let from = match settings.heads_first {
                0 => String::new(),
                e => format!(", from epoch {}", e + 1),
            };
            let top = format!(
                ", top {n_top} backbone layers {} (layers {first}..{layers}, LR {:e} x {} per layer below{from})",
                z.layer_params, settings.layer_lr, settings.layer_lr_decay,
            );
            let cached = Unfrozen::cached_states(states, first);
            (top, format!("token-level states {cached:?}"))
        }
    };
    let tasks: Vec<String> = cfg
        .tasks
        .iter()
        .map(|t| format!("{} ({}, {} labels)", t.name, t.kind.name(), t.labels.len()))
        .collect();
    format!(
        "tasks: {}\nplan: heads read hidden states {states:?} of {layers}; {} epochs of {} steps; \
         trainable parameters {} ({}{top}); frozen: {}; feature cache ({cache_kind}) ~{:.1} MiB; \
         expected peak memory ~{:.0} MiB",
        tasks.join(", "),
        z.epochs,
        z.steps,
        z.trainable,
        heads.join(", "),
        frozen.join(", "),
        z.cache as f64 / MIB as f64,
        z.peak as f64 / MIB as f64
    )
}

/// Fits `train` into `budget` bytes: turns off ONNX Runtime's arena and memory-pattern planning
/// and halves the extraction batch (down to 4) and then the training batch (down to 16) until the
/// expected peak fits. Returns what was chosen, or an error naming the smallest expected peak.
pub fn fit_memory(
    dataset: &Dataset,
    ctx: &mut FeatureContext,
    settings: &mut TrainSettings,
    start: &Start,
    states: &[usize],
    budget: usize,
) -> Result<String, super::error::TrainError> {
    ctx.session.memory_pattern = false;
    ctx.session.arena = false;
    loop {
        let peak = plan(dataset, ctx, settings, start, states).peak;
        if peak <= budget {
            return Ok(format!(
                "memory budget {} MiB: extraction batch {}, training batch {}, ONNX Runtime arena and memory \
                 patterns off; expected peak ~{} MiB",
                budget / MIB,
                ctx.batch_size,
                settings.batch_size,
                peak / MIB
            ));
        }
        if ctx.batch_size > 4 {
            ctx.batch_size /= 2;
        } else if settings.batch_size > 16 {
            settings.batch_size /= 2;
        } else {
            return Err(super::error::TrainError::Config(format!(
                "--max-memory {} MiB is too small: even with batches of {} (extraction) and {} \
                 (training) this job is expected to need ~{} MiB",
                budget / MIB,
                ctx.batch_size,
                settings.batch_size,
                peak / MIB
            )));
        }
    }
}
