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
    let layers = ctx.layers();
    let h = start.config.backbone_width;
    let k = states.len();
    let n_train = dataset.train.examples.len();
    let steps = n_train.div_ceil(settings.batch_size.max(1));
    let epochs = if settings.epochs == 0 {
        auto_epochs(n_train, settings.batch_size)
    } else {
        settings.epochs
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
    let words: usize = dataset
        .splits()
        .map(|s| s.examples.iter().map(|e| e.words.len()).sum::<usize>())
        .sum();
    let examples: usize = dataset.splits().map(|s| s.examples.len()).sum();
    // With unfrozen layers the cache holds token-level states (the heads' states up to the first
    // unfrozen layer's input, and that input): about 1.3 tokens per word plus [CLS] and [SEP].
    let first = layers - n_top;
    let cached_k = if n_top > 0 {
        Unfrozen::cached_states(states, first).len()
    } else {
        k
    };
    let rows = if n_top > 0 {
        words * 13 / 10 + 2 * examples
    } else {
        words
    };
    let cache = rows * cached_k * h * 2 + examples * h * 4;
    let model_bytes = std::fs::metadata(&ctx.files.onnx)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let longest = dataset
        .train
        .examples
        .iter()
        .map(|e| e.words.len())
        .max()
        .unwrap_or(1)
        .min(ctx.tokenizer.max_tokens());
    // ORT holds the model about three times over (weights, prepacked copies, arena); one batch of
    // activations per state; candle keeps weights, two Adam moments, gradients and the batch graph.
    let extraction = 3 * model_bytes
        + ctx.batch_size * ctx.tokenizer.max_tokens().min(4 * longest) * h * 4 * (layers + 2) * 2;
    let longest_tokens = (longest * 2 + 2).min(ctx.tokenizer.max_tokens());
    // Per unfrozen layer and token the backward pass keeps about 16 hidden-sized activations, two
    // FFN-sized ones and the attention scores of every head.
    let heads_n = (h / 32).max(1);
    let layer_acts = n_top
        * settings.batch_size
        * longest_tokens
        * (16 * h + 2 * ffn + 3 * heads_n * longest_tokens)
        * 4;
    let all_params: usize = head_params.iter().sum::<usize>() + layer_params;
    // Weights, gradients and two Adam moments (4 copies of f32), the best weights kept serialized,
    // and at each epoch's checkpoint the moments serialized (a copy and the file's bytes):
    // measured on data/demo with `--unfreeze-top 2` (5.1 M parameters), the checkpoint is the peak
    // of small batches.
    let training = 4 * 4 * all_params
        + 4 * 4 * all_params
        + settings.batch_size * longest * (k + 6) * h * 4 * 3
        + layer_acts
        + if n_top > 0 {
            2 * settings.batch_size * longest_tokens * cached_k * h * 4
        } else {
            0
        };
    // With unfrozen layers candle's autograd keeps more than the activations counted above (views,
    // broadcast copies, the graph itself): measured peaks on data/demo (`--unfreeze-top 2`, batches
    // 16 to 64) were up to a quarter above the count.
    let training = if n_top > 0 {
        training * 5 / 4
    } else {
        training
    };
    let tokenizer_bytes = std::fs::metadata(&ctx.files.tokenizer)
        .map(|m| m.len() as usize * 8)
        .unwrap_or(0);
    let peak = 40 * MIB + tokenizer_bytes + extraction.max(training) + examples * h * 4;

    let mut frozen: Vec<String> = start.frozen.iter().map(|t| format!("{t} head")).collect();
    if n_top == 0 {
        frozen.push("backbone".into());
    } else {
        frozen.push(if first > 0 {
            format!("embeddings and backbone layers 0..{first}")
        } else {
            "embeddings".to_string()
        });
    }
    let heads: Vec<String> = cfg
        .tasks
        .iter()
        .zip(&head_params)
        .enumerate()
        .map(|(i, (t, n))| {
            let reads = cfg
                .reads(i)
                .map(|r| format!(", reading the {} head's states", cfg.tasks[r].name))
                .unwrap_or_default();
            format!("{} head {n}{reads}", t.name)
        })
        .collect();
    let top = if n_top > 0 {
        format!(
            ", top {n_top} backbone layers {layer_params} (layers {first}..{layers}, LR {:e} x {} per layer below{})",
            settings.layer_lr,
            settings.layer_lr_decay,
            if settings.heads_first > 0 {
                format!(", from epoch {}", settings.heads_first + 1)
            } else {
                String::new()
            }
        )
    } else {
        String::new()
    };
    let cache_kind = if n_top > 0 {
        format!(
            "token-level states {:?}",
            Unfrozen::cached_states(states, first)
        )
    } else {
        "word-level".to_string()
    };
    let tasks: Vec<String> = cfg
        .tasks
        .iter()
        .map(|t| format!("{} ({}, {} labels)", t.name, t.kind.name(), t.labels.len()))
        .collect();
    let text = format!(
        "tasks: {}\nplan: heads read hidden states {states:?} of {layers}; {epochs} epochs of {steps} steps; \
         trainable parameters {trainable} ({}{top}); frozen: {}; feature cache ({cache_kind}) ~{:.1} MiB; \
         expected peak memory ~{:.0} MiB",
        tasks.join(", "),
        heads.join(", "),
        frozen.join(", "),
        cache as f64 / MIB as f64,
        peak as f64 / MIB as f64
    );
    Plan { text, peak }
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
