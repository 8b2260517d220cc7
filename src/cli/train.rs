//! `edgetune train`.

use std::path::PathBuf;

use anyhow::{bail, Context};

use edgetune::backbone::ModelFiles;
use edgetune::data::{self, Format};
use edgetune::heads::{IntentHeadConfig, SlotHeadConfig};
use edgetune::train::{self, checkpoint, fmt_metrics, TrainJob, TrainSettings};

use super::common;
use super::Global;

/// Flags of `edgetune train`.
///
/// Freezing scenarios: by default the backbone is frozen and both heads train on cached features.
/// `--init-from RUN --freeze-intent` (or `--freeze-slot`) keeps one head exactly as in RUN while the
/// other trains; with both frozen there is nothing to train (use `eval`/`infer`/`export` on the run).
/// `--unfreeze-top N` (transfer learning) also trains the backbone's top N layers, in candle, on the
/// cached token states of the layer below them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset directory: splits train, valid (optional) and test (optional), as JointBERT folders
    /// or train.jsonl / train.txt / train.conll / train.tsv / train.csv files.
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Run directory to write (weights, config, metrics).
    #[arg(long, value_name = "RUN", required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted run from its checkpoint (same data and settings as it was started with).
    #[arg(long, value_name = "RUN", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Dataset format (default: detected from file names).
    #[arg(long)]
    pub format: Option<Format>,
    /// Backbone: a model directory or an .onnx file with tokenizer.json beside it (default: $EDGETUNE_MODEL,
    /// then set-up's .models/default).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Truncate inputs to this many tokens (default: the tokenizer's own limit).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Feature cache directory (default: $EDGETUNE_CACHE, else ~/.cache/edgetune).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Hidden states the heads read, comma-separated (0 = embeddings, L = last layer; default: the top four).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Random seed (initialisation, shuffling, dropout, held-out split).
    #[arg(long, default_value_t = 13)]
    pub seed: u64,
    /// Epochs (the learning-rate schedule spans them; early stopping may end sooner). Default: enough
    /// for about 1,200 optimizer steps, at least 6 and at most 100 (6 on SNIPS' 13,084 sentences,
    /// more on small datasets), also with --unfreeze-top.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Early stopping: epochs without improvement on valid.
    #[arg(long, default_value_t = 6)]
    pub patience: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate of the heads (AdamW, warm-up then cosine decay).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Fraction of train held out for validation when the dataset has no valid split.
    #[arg(long, default_value_t = 0.1)]
    pub holdout: f64,
    /// GRU units per direction in the slot head (default: 128; 256 with --unfreeze-top).
    #[arg(long, value_name = "N")]
    pub slot_gru: Option<usize>,
    /// Hidden width of the intent head's MLP (default: 256; 512 with --unfreeze-top).
    #[arg(long, value_name = "N")]
    pub intent_hidden: Option<usize>,
    /// Whether the intent head also reads the slot head's recurrent states, pooled with its own word
    /// attention and trained jointly (default: true with --unfreeze-top, false otherwise; off when
    /// the data lacks intents or slot tags). The slot types a sentence contains are evidence of its intent.
    #[arg(long, value_name = "BOOL")]
    pub intent_reads_slots: Option<bool>,
    /// Memory budget, e.g. `512M` or `1G`: batch sizes and ONNX Runtime settings are chosen so the
    /// expected peak fits (an error if it cannot); the measured peak is reported at the end.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<usize>,
    /// Dropout in both heads.
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f32,
    /// Initialise both heads from a finished run.
    #[arg(long, value_name = "RUN")]
    pub init_from: Option<PathBuf>,
    /// Keep the intent head exactly as in --init-from (byte-identical) while the slot head trains.
    #[arg(long, requires = "init_from")]
    pub freeze_intent: bool,
    /// Keep the slot head exactly as in --init-from (byte-identical) while the intent head trains.
    #[arg(long, requires = "init_from")]
    pub freeze_slot: bool,
    /// Transfer learning: train the top N transformer layers (1..=L) together with the heads. The
    /// frozen layers' output is cached per token; the top layers run in candle from the fp32 weights
    /// of --hf-weights, with layer-wise learning rates (--layer-lr, --layer-lr-decay) and dropout 0.1.
    #[arg(long, value_name = "N")]
    pub unfreeze_top: Option<usize>,
    /// The backbone's Hugging Face checkpoint (config.json + model.safetensors, fp32) for
    /// --unfreeze-top (default: set-up's .models/minilm-hf, found like .models/default).
    #[arg(long, value_name = "DIR", requires = "unfreeze_top")]
    pub hf_weights: Option<PathBuf>,
    /// Peak learning rate of the top unfrozen layer.
    #[arg(long, default_value_t = train::DEFAULT_LAYER_LR, requires = "unfreeze_top")]
    pub layer_lr: f64,
    /// Learning-rate factor per layer below the top one.
    #[arg(long, default_value_t = train::DEFAULT_LAYER_LR_DECAY, requires = "unfreeze_top")]
    pub layer_lr_decay: f64,
    /// With --unfreeze-top: epochs at the start during which only the heads learn (the layers run
    /// forward-only, which is about three times cheaper); the layers then warm up over one epoch.
    #[arg(long, value_name = "N", default_value_t = train::DEFAULT_HEADS_FIRST, requires = "unfreeze_top")]
    pub heads_first: usize,
    /// Print the plan (trainable parameters, cache size, expected peak memory) and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the final metrics as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Validated options.
struct Options {
    data: PathBuf,
    out: PathBuf,
    resume: bool,
    format: Option<Format>,
    model: Option<PathBuf>,
    max_tokens: Option<usize>,
    cache_dir: Option<PathBuf>,
    holdout: f64,
    settings: TrainSettings,
    dry_run: bool,
    max_memory: Option<usize>,
    json: bool,
    quiet: bool,
}

fn validate(a: Args) -> anyhow::Result<Options> {
    let (out, resume) = match (&a.resume, &a.out) {
        (Some(r), _) => (r.clone(), true),
        (None, Some(o)) => (o.clone(), false),
        (None, None) => bail!("--out RUN is required"),
    };
    if a.batch_size == 0 || a.epochs == Some(0) || a.patience == 0 {
        bail!("--batch-size, --epochs and --patience must be at least 1");
    }
    if !(0.0..1.0).contains(&a.holdout) || a.holdout == 0.0 {
        bail!("--holdout must be in (0, 1)");
    }
    if !(0.0..1.0).contains(&a.dropout) {
        bail!("--dropout must be in [0, 1)");
    }
    if !(a.lr > 0.0 && a.lr.is_finite()) {
        bail!("--lr must be positive");
    }
    if a.unfreeze_top == Some(0) {
        bail!("--unfreeze-top must be at least 1 (without it the backbone stays frozen)");
    }
    if !(a.layer_lr > 0.0 && a.layer_lr.is_finite()) {
        bail!("--layer-lr must be positive");
    }
    if !(a.layer_lr_decay > 0.0 && a.layer_lr_decay <= 1.0) {
        bail!("--layer-lr-decay must be in (0, 1]");
    }
    let hf_weights = match (a.unfreeze_top, &a.hf_weights) {
        (None, _) => None,
        (Some(_), Some(d)) => Some(d.clone()),
        (Some(_), None) => Some(
            edgetune::backbone::find_models_dir(edgetune::backbone::DEFAULT_HF_DIR).with_context(
                || {
                    format!(
                        "--unfreeze-top needs the backbone's fp32 weights and no .models/{} was found \
                         (beside the executable or in the working directory and their parents); pass \
                         --hf-weights DIR (a Hugging Face checkpoint with config.json and model.safetensors)",
                        edgetune::backbone::DEFAULT_HF_DIR
                    )
                },
            )?,
        ),
    };
    let hf_weights = match hf_weights {
        Some(d) => {
            if !d.join("config.json").is_file() || !d.join("model.safetensors").is_file() {
                bail!(
                    "--hf-weights {}: expected a Hugging Face checkpoint directory with config.json and model.safetensors",
                    d.display()
                );
            }
            Some(std::fs::canonicalize(&d).unwrap_or(d))
        }
        None => None,
    };
    if a.freeze_intent && a.freeze_slot {
        bail!(
            "nothing to train: --freeze-intent and --freeze-slot freeze every head. A fully frozen model needs no \
             training: use `edgetune eval`, `edgetune infer` or `edgetune export` on the run directly"
        );
    }
    if a.slot_gru == Some(0) || a.intent_hidden == Some(0) {
        bail!("--slot-gru and --intent-hidden must be at least 1");
    }
    let (default_intent, default_slot) = train::default_heads(a.unfreeze_top.unwrap_or(0));
    let mut settings = TrainSettings {
        epochs: a.epochs.unwrap_or(0),
        patience: a.patience,
        batch_size: a.batch_size,
        lr: a.lr,
        weight_decay: a.weight_decay,
        seed: a.seed,
        states: a.layers,
        intent_head: IntentHeadConfig {
            hidden: a.intent_hidden.unwrap_or(default_intent.hidden),
            dropout: a.dropout,
            slot_states: a.intent_reads_slots.unwrap_or(default_intent.slot_states),
        },
        slot_head: SlotHeadConfig {
            gru_hidden: a.slot_gru.unwrap_or(default_slot.gru_hidden),
            dropout: a.dropout,
        },
        freeze_intent: a.freeze_intent,
        freeze_slot: a.freeze_slot,
        init_from: a.init_from,
        unfreeze_top: a.unfreeze_top.unwrap_or(0),
        layer_lr: a.layer_lr,
        layer_lr_decay: a.layer_lr_decay,
        heads_first: if a.unfreeze_top.is_some() {
            a.heads_first
        } else {
            0
        },
        hf_weights,
    };
    let mut data = a.data.clone();
    if resume {
        let saved = checkpoint::read_settings(&out.join(checkpoint::DIR))?;
        let recorded = out.join(checkpoint::DIR).join("job.json");
        let job: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&recorded).with_context(|| recorded.display().to_string())?,
        )?;
        settings = saved;
        if data.is_none() {
            data = job["data"].as_str().map(PathBuf::from);
        }
    }
    if !resume && out.join(edgetune::run::CONFIG_FILE).exists() {
        bail!(
            "{} already holds a finished run; choose another --out",
            out.display()
        );
    }
    Ok(Options {
        data: data.context("--data DIR is required")?,
        out,
        resume,
        format: a.format,
        model: a.model,
        max_tokens: a.max_tokens,
        cache_dir: a.cache_dir,
        holdout: a.holdout,
        settings,
        dry_run: a.dry_run,
        max_memory: a.max_memory,
        json: a.json,
        quiet: a.quiet,
    })
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let o = validate(a)?;
    let threads = common::setup_threads(g)?;
    let dataset = data::load_dataset(&o.data, o.format, o.holdout, o.settings.seed)?;
    common::init_runtime(g)?;
    let files = ModelFiles::from_arg(o.model.as_deref())?;
    let mut ctx =
        common::feature_context(files, o.max_tokens, threads, o.cache_dir.clone(), !o.quiet)?;
    let (intents, tags) = train::label_lists(&dataset.train);
    if !o.quiet {
        eprintln!(
            "data: {} train / {} valid{} / {} test examples; {} intents, {} tags; backbone {} ({} layers)",
            dataset.train.examples.len(),
            dataset.valid.examples.len(),
            if dataset.valid_held_out { " (held out of train)" } else { "" },
            dataset.test.as_ref().map_or(0, |t| t.examples.len()),
            intents.len(),
            tags.len(),
            ctx.files.onnx.display(),
            ctx.layers(),
        );
    }
    let mut o = o;
    if let Some(budget) = o.max_memory {
        let fit = train::fit_memory(&dataset, &mut ctx, &mut o.settings, budget)?;
        if !o.quiet || o.dry_run {
            eprintln!("{fit}");
        }
    }
    if o.dry_run {
        let plan = train::plan(&dataset, &ctx, &o.settings);
        println!("{plan}");
        return Ok(());
    }
    if !o.resume {
        std::fs::create_dir_all(o.out.join(checkpoint::DIR))
            .with_context(|| o.out.display().to_string())?;
        let job =
            serde_json::json!({ "data": std::fs::canonicalize(&o.data).unwrap_or(o.data.clone()) });
        let p = o.out.join(checkpoint::DIR).join("job.json");
        edgetune::fsutil::write_atomic(&p, job.to_string().as_bytes())
            .with_context(|| p.display().to_string())?;
    }
    if !o.quiet {
        eprintln!("{}", train::plan(&dataset, &ctx, &o.settings));
    }
    let outcome = train::train(TrainJob {
        dataset: &dataset,
        ctx: &mut ctx,
        out: o.out.clone(),
        settings: o.settings,
        verbose: !o.quiet,
        resume: o.resume,
    })?;
    if let (Some(budget), Some(peak)) = (o.max_memory, train::peak_rss()) {
        let msg = format!("peak RSS {} MiB (budget {} MiB)", peak >> 20, budget >> 20);
        if peak > budget {
            eprintln!("warning: {msg}: over budget");
        } else if !o.quiet {
            eprintln!("{msg}");
        }
    }
    if o.json {
        let mut v = serde_json::json!({ "valid": outcome.valid });
        if let Some((m, _)) = &outcome.test {
            v["test"] = serde_json::to_value(m)?;
        }
        println!("{v}");
    } else {
        println!("run written to {}", o.out.display());
        println!("valid: {}", fmt_metrics(&outcome.valid));
        if let Some((m, _)) = &outcome.test {
            println!("test:  {} ({} examples)", fmt_metrics(m), m.examples);
        }
    }
    Ok(())
}

/// Parses `512M`, `1G`, `800MiB`, `1.5GB` or plain bytes.
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512M, 1G)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        u => return Err(format!("unknown size unit `{u}` in `{s}` (use K, M or G)")),
    };
    if v <= 0.0 {
        return Err(format!("`{s}`: the size must be positive"));
    }
    Ok((v * mult) as usize)
}
