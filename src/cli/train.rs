//! `edgetune train`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};

use edgetune::backbone::{find_models_dir, ModelFiles, DEFAULT_HF_DIR};
use edgetune::data::{self, check_task_name, Format, ReadOptions, INTENT, TAGS};
use edgetune::model::{SentenceHeadConfig, TokenHeadConfig};
use edgetune::train::checkpoint::{self, Job};
use edgetune::train::{
    self, default_heads, fmt_metrics, SettingError, TrainError, TrainJob, TrainSettings,
};

use super::common;
use super::common::Global;

/// Flags of `edgetune train`.
///
/// Freezing scenarios: by default the backbone is frozen and every task's head trains on cached
/// features. `--init-from RUN --freeze TASK` keeps that head exactly as in RUN while the others
/// train; a task of RUN the data lacks is carried over unchanged, and a task of the data RUN lacks
/// gets a new head. `--unfreeze-top N` (transfer learning) also trains the backbone's top N layers,
/// in candle, on the cached token states of the layer below them.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "edgetune train --data DIR --out RUN [OPTIONS]\n       edgetune train --resume RUN [OPTIONS]"
)]
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
    /// Start over in an --out that holds an interrupted run (its checkpoint is discarded), or
    /// replace a finished run there (the old run is kept aside until the new one is complete).
    #[arg(long)]
    pub force: bool,
    /// Dataset format (default: detected from file names).
    #[arg(long)]
    pub format: Option<Format>,
    /// CoNLL column names, e.g. `word,pos,chunk,ner`: the `word` column holds the words, `_` skips
    /// a column, every other column is a token task (default: words first, `tags` last).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// TSV/CSV: the name of the text column in the header row (default: a column named `text`,
    /// `sentence` or `utterance`, anywhere in the row; without such a header row the file is
    /// `label<TAB>text`). Not recorded for --resume: give it again.
    #[arg(long, value_name = "NAME")]
    pub text_column: Option<String>,
    /// Train only these tasks of the data, comma-separated (default: every task found).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Backbone: a model directory or an .onnx file with tokenizer.json beside it (default:
    /// $EDGETUNE_MODEL, then set-up's .models/default).
    #[arg(long, alias = "model", value_name = "PATH")]
    pub backbone: Option<PathBuf>,
    /// Truncate inputs to this many tokens (default: the tokenizer's own limit).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Feature cache directory (default: $EDGETUNE_CACHE, else ~/.cache/edgetune).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Keep the feature cache under SIZE (e.g. 500M): least recently used entries are removed
    /// before training and after it (this run's own entries last; see `edgetune cache`).
    #[arg(long, value_name = "SIZE", value_parser = common::parse_size)]
    pub max_cache: Option<usize>,
    /// Hidden states the heads read, comma-separated (0 = embeddings, L = last layer; default: the top four).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Random seed (initialisation, shuffling, dropout, held-out split).
    #[arg(long, default_value_t = TrainSettings::default().seed)]
    pub seed: u64,
    /// Epochs (the learning-rate schedule spans them; early stopping may end sooner). Default: enough
    /// for about 1,200 optimizer steps, at least 6 and at most 100 (6 on SNIPS' 13,084 sentences,
    /// more on small datasets), also with --unfreeze-top.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Early stopping: epochs without improvement on valid.
    #[arg(long, default_value_t = TrainSettings::default().patience)]
    pub patience: usize,
    /// Examples per optimizer step.
    #[arg(long, default_value_t = TrainSettings::default().batch_size)]
    pub batch_size: usize,
    /// Peak learning rate of the heads (AdamW, warm-up then cosine decay).
    #[arg(long, default_value_t = TrainSettings::default().lr)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = TrainSettings::default().weight_decay)]
    pub weight_decay: f64,
    /// Fraction of train held out for validation when the dataset has no valid split.
    #[arg(long, default_value_t = 0.1)]
    pub holdout: f64,
    /// GRU units per direction of token heads (default: 128; 256 with --unfreeze-top).
    #[arg(long, alias = "slot-gru", value_name = "N")]
    pub gru_units: Option<usize>,
    /// Hidden width of sentence heads' MLP (default: 256; 512 with --unfreeze-top).
    #[arg(long, alias = "intent-hidden", value_name = "N")]
    pub mlp_width: Option<usize>,
    /// Whether sentence heads also read a token task's recurrent states (the first span task),
    /// pooled with their own word attention and trained jointly (default: true with
    /// --unfreeze-top, false otherwise; off when the data lacks either kind of task).
    #[arg(long, alias = "intent-reads-slots", value_name = "BOOL")]
    pub sentence_reads_tokens: Option<bool>,
    /// Loss weight of a task, `NAME=W` (repeatable; default 1).
    #[arg(long, value_name = "NAME=W")]
    pub task_weight: Vec<String>,
    /// Memory budget, e.g. `512M` or `1G`: batch sizes and ONNX Runtime settings are chosen so the
    /// expected peak fits (an error if it cannot); the measured peak is reported at the end.
    #[arg(long, value_name = "SIZE", value_parser = common::parse_size)]
    pub max_memory: Option<usize>,
    /// Dropout in every head.
    #[arg(long, default_value_t = edgetune::model::DEFAULT_DROPOUT)]
    pub dropout: f32,
    /// Initialise the heads from a finished run.
    #[arg(long, value_name = "RUN")]
    pub init_from: Option<PathBuf>,
    /// Keep the head of TASK exactly as in --init-from (byte-identical); repeatable.
    #[arg(long, value_name = "TASK", requires = "init_from")]
    pub freeze: Vec<String>,
    /// Train only TASK's head: every other head of --init-from stays exactly as it is.
    #[arg(
        long,
        value_name = "TASK",
        requires = "init_from",
        conflicts_with = "freeze"
    )]
    pub train_only: Option<String>,
    /// Same as `--freeze intent` (deprecated).
    #[arg(long, requires = "init_from", hide = true)]
    pub freeze_intent: bool,
    /// Same as `--freeze tags` (deprecated).
    #[arg(long, requires = "init_from", hide = true)]
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
    #[arg(long, default_value_t = TrainSettings::default().layer_lr, requires = "unfreeze_top")]
    pub layer_lr: f64,
    /// Learning-rate factor per layer below the top one.
    #[arg(long, default_value_t = TrainSettings::default().layer_lr_decay, requires = "unfreeze_top")]
    pub layer_lr_decay: f64,
    /// With --unfreeze-top: epochs at the start during which only the heads learn (the layers run
    /// forward-only, which is about three times cheaper); the layers then warm up over one epoch.
    #[arg(long, value_name = "N", default_value_t = TrainSettings::default().heads_first, requires = "unfreeze_top")]
    pub heads_first: usize,
    /// Run every check of the real run, print the tasks found with their number of labels and
    /// the plan (trainable parameters, cache size, expected peak memory), and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Copy the training data into the run (`RUN/data/`, so that it retrains anywhere) when its
    /// files total at most SIZE (e.g. `64M`, the default); larger data is recorded by its absolute
    /// path and content hash instead, and a retrain refuses it once it changed.
    #[arg(long, value_name = "SIZE", value_parser = common::parse_size)]
    pub snapshot_limit: Option<usize>,
    /// Do not draw the run's pictures (`plots/` and `report.html`); the run is the same.
    #[arg(long)]
    pub no_plots: bool,
}

/// Validated options.
struct Options {
    job: Job,
    out: PathBuf,
    resume: bool,
    backbone: Option<PathBuf>,
    max_tokens: Option<usize>,
    cache_dir: Option<PathBuf>,
    settings: TrainSettings,
    dry_run: bool,
    max_memory: Option<usize>,
    json: bool,
    quiet: bool,
    plots: bool,
    force: bool,
    train_only: Option<String>,
    task_weights: Vec<String>,
    text_column: Option<String>,
    max_cache: Option<usize>,
    snapshot_limit: u64,
}

fn parse_weights(pairs: &[String]) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let (name, w) = p
            .split_once('=')
            .with_context(|| format!("--task-weight {p}: expected NAME=W"))?;
        check_task_name(name).map_err(|m| anyhow::anyhow!("--task-weight {p}: {m}"))?;
        let w: f64 = w
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite() && *w >= 0.0)
            .with_context(|| format!("--task-weight {p}: the weight must be a number >= 0"))?;
        out.insert(name.to_string(), w);
    }
    Ok(out)
}

/// The command-line flag of a training setting (`batch_size` -> `--batch-size`).
fn flag_of(setting: &str) -> String {
    match setting.split_once('.') {
        Some(("task_weights", task)) => format!("--task-weight {task}"),
        Some((_, "mlp_width")) => "--mlp-width".into(),
        Some((_, "gru_units")) => "--gru-units".into(),
        Some((_, "dropout")) => "--dropout".into(),
        _ if setting == "hidden_states" => "--layers".into(),
        _ => format!("--{}", setting.replace('_', "-")),
    }
}

/// A setting's error with its flag in place of its name.
fn flag_error(e: SettingError) -> anyhow::Error {
    anyhow::anyhow!("{} {}", flag_of(&e.setting), e.message)
}

/// A training error, with settings named by their flags.
fn train_error(e: TrainError) -> anyhow::Error {
    match e {
        TrainError::Setting(s) => flag_error(s),
        e => e.into(),
    }
}

/// The flags that are not training settings, and the values of settings flags the settings
/// cannot express (`--epochs 0` would mean "automatic" there).
fn check_flags(a: &Args) -> anyhow::Result<()> {
    if a.epochs == Some(0) {
        bail!("--epochs must be at least 1 (without it the number is chosen from the data)");
    }
    if !(a.holdout > 0.0 && a.holdout < 1.0) {
        bail!("--holdout must be in (0, 1)");
    }
    if a.unfreeze_top == Some(0) {
        bail!("--unfreeze-top must be at least 1 (without it the backbone stays frozen)");
    }
    if let Some(t) = &a.max_tokens {
        if !edgetune::run::TOKEN_LIMITS.contains(t) {
            bail!("--max-tokens must be in 3..=65536");
        }
    }
    if a.freeze_intent && a.freeze_slot && a.freeze.is_empty() {
        bail!(
            "nothing to train: --freeze-intent and --freeze-slot freeze every head. A fully frozen model needs no \
             training: use `edgetune eval`, `edgetune infer` or `edgetune export` on the run directly"
        );
    }
    Ok(())
}

/// The fp32 checkpoint of the layers `--unfreeze-top` trains: `--hf-weights`, else set-up's.
fn hf_weights(a: &Args) -> anyhow::Result<Option<PathBuf>> {
    let dir = match (a.unfreeze_top, &a.hf_weights) {
        (None, _) => return Ok(None),
        (Some(_), Some(d)) => d.clone(),
        (Some(_), None) => find_models_dir(DEFAULT_HF_DIR).with_context(|| {
            format!(
                "--unfreeze-top needs the backbone's fp32 weights and no .models/{DEFAULT_HF_DIR} was found \
                 (beside the executable or in the working directory and their parents); pass \
                 --hf-weights DIR (a Hugging Face checkpoint with config.json and model.safetensors)"
            )
        })?,
    };
    if !dir.join("config.json").is_file() || !dir.join("model.safetensors").is_file() {
        bail!(
            "--hf-weights {}: expected a Hugging Face checkpoint directory with config.json and model.safetensors",
            dir.display()
        );
    }
    Ok(Some(std::fs::canonicalize(&dir).unwrap_or(dir)))
}

/// The settings the flags give (not yet validated).
fn settings_of(a: &Args) -> anyhow::Result<TrainSettings> {
    let mut freeze = a.freeze.clone();
    if a.freeze_intent {
        freeze.push(INTENT.to_string());
    }
    if a.freeze_slot {
        freeze.push(TAGS.to_string());
    }
    let unfreeze = a.unfreeze_top.unwrap_or(0);
    let (sentence_default, token_default, reads_default) = default_heads(unfreeze);
    Ok(TrainSettings {
        epochs: a.epochs.unwrap_or(0),
        patience: a.patience,
        batch_size: a.batch_size,
        lr: a.lr,
        weight_decay: a.weight_decay,
        seed: a.seed,
        hidden_states: a.layers.clone(),
        sentence_head: SentenceHeadConfig {
            mlp_width: a.mlp_width.unwrap_or(sentence_default.mlp_width),
            dropout: a.dropout,
            reads: None,
        },
        token_head: TokenHeadConfig {
            gru_units: a.gru_units.unwrap_or(token_default.gru_units),
            dropout: a.dropout,
        },
        sentence_reads_tokens: a.sentence_reads_tokens.unwrap_or(reads_default),
        freeze,
        task_weights: parse_weights(&a.task_weight)?,
        tasks: a.tasks.clone(),
        init_from: a.init_from.clone(),
        unfreeze_top: unfreeze,
        layer_lr: a.layer_lr,
        layer_lr_decay: a.layer_lr_decay,
        heads_first: if unfreeze > 0 { a.heads_first } else { 0 },
        hf_weights: hf_weights(a)?,
    })
}

/// `--train-only TASK`: every other head of the --init-from run frozen, only TASK trained.
fn train_only(settings: &mut TrainSettings, only: &str) -> anyhow::Result<()> {
    check_task_name(only).map_err(|m| anyhow::anyhow!("--train-only: {m}"))?;
    let dir = settings
        .init_from
        .as_ref()
        .context("--train-only needs --init-from")?;
    let rc = edgetune::run::read_config(dir)?;
    if rc.model.task(only).is_none()
        && !settings.tasks.is_empty()
        && !settings.tasks.iter().any(|t| t == only)
    {
        bail!("--train-only {only}: neither the --init-from run nor --tasks has that task");
    }
    settings.freeze = rc
        .model
        .tasks
        .iter()
        .filter(|t| t.name != only)
        .map(|t| t.name.clone())
        .collect();
    settings.tasks = vec![only.to_string()];
    Ok(())
}

/// The job (data and how to read it) and the settings: from the checkpoint when resuming, else
/// from the flags, refusing an --out that holds a finished or an interrupted run.
fn job_of(
    a: &Args,
    out: &std::path::Path,
    resume: bool,
    settings: TrainSettings,
) -> anyhow::Result<(Job, TrainSettings)> {
    let ckpt = out.join(checkpoint::DIR);
    if resume {
        let job = checkpoint::load_job(&ckpt)?;
        let settings = checkpoint::read_settings(&ckpt)?;
        let data = a.data.clone().unwrap_or(job.data.clone());
        return Ok((Job { data, ..job }, settings));
    }
    if out.join(edgetune::run::CONFIG_FILE).exists() && !a.force {
        bail!(
            "--out {} already holds a finished run; choose another --out, or pass --force to replace it",
            out.display()
        );
    }
    if checkpoint::exists(&ckpt) && !a.force {
        bail!(
            "{} holds an interrupted run; continue it with `edgetune train --resume {}`, or pass --force to start over",
            out.display(),
            out.display()
        );
    }
    let job = Job {
        data: a.data.clone().context("--data DIR is required")?,
        format: a.format,
        columns: a.columns.clone(),
        holdout: a.holdout,
    };
    Ok((job, settings))
}

/// The paths the flags name: each of the kind its flag takes.
fn check_paths(a: &Args) -> anyhow::Result<()> {
    if let Some(d) = &a.data {
        if !d.exists() {
            bail!("--data {}: no such file or folder", d.display());
        }
    }
    if let Some(b) = &a.backbone {
        common::check_backbone(b, &["--backbone"])?;
    }
    if let Some(r) = &a.init_from {
        if common::PathKind::of(r) != common::PathKind::Run {
            bail!("--init-from {}: not a finished run folder", r.display());
        }
    }
    Ok(())
}

/// Checks the flags and turns them into the job and its validated settings before any work.
fn validate(g: &Global, a: Args) -> anyhow::Result<Options> {
    let (out, resume) = match (&a.resume, &a.out) {
        (Some(r), _) => (r.clone(), true),
        (None, Some(o)) => (o.clone(), false),
        (None, None) => bail!("--out RUN is required"),
    };
    check_flags(&a)?;
    check_paths(&a)?;
    let mut settings = settings_of(&a)?;
    settings.validate().map_err(flag_error)?;
    if let Some(only) = &a.train_only {
        train_only(&mut settings, only)?;
    }
    let (job, settings) = job_of(&a, &out, resume, settings)?;
    Ok(Options {
        job,
        out,
        resume,
        backbone: a.backbone,
        max_tokens: a.max_tokens,
        cache_dir: a.cache_dir,
        settings,
        dry_run: a.dry_run,
        max_memory: a.max_memory,
        json: g.json,
        quiet: g.quiet || g.json,
        plots: !a.no_plots,
        force: a.force,
        train_only: a.train_only,
        task_weights: a.task_weight,
        text_column: a.text_column,
        max_cache: a.max_cache,
        snapshot_limit: a
            .snapshot_limit
            .map_or(edgetune::run::snapshot::DEFAULT_SNAPSHOT_LIMIT, |s| {
                s as u64
            }),
    })
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let mut o = validate(g, a)?;
    let threads = common::setup_threads(g)?;
    let dataset = load_data(&o)?;
    common::init_runtime(g)?;
    let files = ModelFiles::from_arg(o.backbone.as_deref())?;
    let mut ctx =
        common::feature_context(files, o.max_tokens, threads, o.cache_dir.clone(), !o.quiet)?;
    if !o.quiet || (o.dry_run && !o.json) {
        eprintln!("{}", describe_data(&dataset, &ctx));
    }
    let plan = plan(&mut o, &dataset, &mut ctx)?;
    if o.dry_run {
        return print_dry_run(&o, &dataset, &plan);
    }
    let started = std::time::SystemTime::now();
    bound_cache(&o, &ctx, None)?;
    let aside = if o.resume { None } else { move_aside(&o)? };
    let lock = train::lock_run(&o.out)?;
    if !o.resume {
        start_checkpoint(&o)?;
        record_data(&o, &dataset)?;
    }
    if !o.quiet {
        eprintln!("{}", plan.text);
    }
    let outcome = match train::train(TrainJob {
        dataset: &dataset,
        ctx: &mut ctx,
        out: o.out.clone(),
        settings: o.settings.clone(),
        verbose: !o.quiet,
        resume: o.resume,
        lock: Some(lock),
        plots: o.plots,
    }) {
        Ok(outcome) => outcome,
        Err(e) => {
            put_back(aside.as_deref(), &o.out);
            return Err(train_error(e));
        }
    };
    if let Some(old) = aside {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("removing the replaced run kept at {}", old.display()))?;
    }
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    bound_cache(&o, &ctx, Some(started))?;
    report_memory(&o);
    print_outcome(&o, &outcome)
}

/// The dataset (only the tasks asked for), its warnings printed.
fn load_data(o: &Options) -> anyhow::Result<data::Dataset> {
    let read = ReadOptions {
        format: o.job.format,
        columns: o.job.columns.clone(),
        text_column: o.text_column.clone(),
    };
    let mut dataset = data::load_dataset(&o.job.data, &read, o.job.holdout, o.settings.seed)?;
    let names: Vec<String> = dataset.train.tasks().into_iter().map(|t| t.name).collect();
    let unknown = |name: &str| !names.iter().any(|n| n == name);
    if let Some(only) = o.train_only.as_deref().filter(|t| unknown(t)) {
        bail!(
            "--train-only {only}: the data has no task `{only}` (its tasks: {})",
            names.join(", ")
        );
    }
    if let Some(w) = o
        .task_weights
        .iter()
        .find(|w| unknown(w.split('=').next().unwrap_or("")))
    {
        bail!(
            "--task-weight {w}: the data has no task of that name (its tasks: {})",
            names.join(", ")
        );
    }
    if !o.settings.tasks.is_empty() {
        dataset.select_tasks(&o.settings.tasks)?;
    }
    dataset.check_tasks()?;
    for w in dataset
        .warnings()
        .into_iter()
        .chain(dataset.unknown_labels())
    {
        eprintln!("warning: {w}");
    }
    Ok(dataset)
}

/// One line: the splits' sizes and the backbone.
fn describe_data(dataset: &data::Dataset, ctx: &edgetune::features::FeatureContext) -> String {
    format!(
        "data: {} train / {} valid{} / {} test examples; backbone {} ({} layers)",
        dataset.train.examples.len(),
        dataset.valid.examples.len(),
        if dataset.valid_held_out {
            " (held out of train)"
        } else {
            ""
        },
        dataset.test.as_ref().map_or(0, |t| t.examples.len()),
        ctx.files.onnx.display(),
        ctx.layers(),
    )
}

/// The plan of the run (trainable parameters, cache size, expected peak memory), after fitting
/// the settings to `--max-memory`.
fn plan(
    o: &mut Options,
    dataset: &data::Dataset,
    ctx: &mut edgetune::features::FeatureContext,
) -> anyhow::Result<train::Plan> {
    let layers = ctx.layers();
    let states = train::head_states(&o.settings, layers).map_err(train_error)?;
    let first = layers.saturating_sub(o.settings.unfreeze_top);
    let mut start = train::plan_model(&dataset.train.tasks(), &o.settings, &states, first, layers)
        .map_err(train_error)?;
    if o.settings.unfreeze_top == 0 && !start.training_tasks().contains(&true) {
        bail!(
            "nothing to train: every head is frozen ({}). A fully frozen model needs no training: \
             use `edgetune eval`, `edgetune infer` or `edgetune export` on the --init-from run",
            start.frozen.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    start.config.backbone_width = ctx.hidden();
    if let Some(budget) = o.max_memory {
        let fit = train::fit_memory(dataset, ctx, &mut o.settings, &start, &states, budget)?;
        if !o.quiet || o.dry_run {
            eprintln!("{fit}");
        }
    }
    Ok(train::plan(dataset, ctx, &o.settings, &start, &states))
}

/// With --force over a finished run: moves the old run aside in one rename (to
/// `OUT.replaced-PID`, beside it), where it stays whole until the new run is complete; returns
/// where it is kept.
fn move_aside(o: &Options) -> anyhow::Result<Option<PathBuf>> {
    if !(o.force && o.out.join(edgetune::run::CONFIG_FILE).exists()) {
        return Ok(None);
    }
    let mut name = o.out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".replaced-{}", std::process::id()));
    let aside = o.out.with_file_name(name);
    std::fs::rename(&o.out, &aside).with_context(|| {
        format!(
            "--out {}: moving the finished run aside to {}",
            o.out.display(),
            aside.display()
        )
    })?;
    Ok(Some(aside))
}

/// A failed run that was to replace a finished one: the finished run is put back.
fn put_back(aside: Option<&std::path::Path>, out: &std::path::Path) {
    let Some(old) = aside else { return };
    let restored = std::fs::remove_dir_all(out).and_then(|()| std::fs::rename(old, out));
    if let Err(e) = restored {
        eprintln!(
            "warning: the replaced run is kept at {} (putting it back to {} failed: {e})",
            old.display(),
            out.display()
        );
    }
}

/// Records the job in a new checkpoint folder (discarding an interrupted run's with --force).
fn start_checkpoint(o: &Options) -> anyhow::Result<()> {
    let ckpt = o.out.join(checkpoint::DIR);
    if o.force && ckpt.exists() {
        std::fs::remove_dir_all(&ckpt).with_context(|| ckpt.display().to_string())?;
    }
    let job = Job {
        data: std::fs::canonicalize(&o.job.data).unwrap_or(o.job.data.clone()),
        ..o.job.clone()
    };
    checkpoint::save_job(&ckpt, &job)?;
    Ok(())
}

/// `--dry-run`: the plan as text, or with --json as one object (`dry_run`, `data`, `tasks`,
/// `plan`, `expected_peak_bytes`).
fn print_dry_run(o: &Options, dataset: &data::Dataset, plan: &train::Plan) -> anyhow::Result<()> {
    if !o.json {
        println!("{}", plan.text);
        return Ok(());
    }
    let tasks: Vec<serde_json::Value> = dataset
        .train
        .tasks()
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "kind": t.kind.name(),
                "labels": t.labels.len(),
                "label_counts": dataset.train.label_counts(&t.name),
            })
        })
        .collect();
    common::print_json(&serde_json::json!({
        "dry_run": true,
        "data": {
            "train": dataset.train.examples.len(),
            "valid": dataset.valid.examples.len(),
            "valid_held_out": dataset.valid_held_out,
            "test": dataset.test.as_ref().map_or(0, |t| t.examples.len()),
        },
        "tasks": tasks,
        "plan": plan.text,
        "expected_peak_bytes": plan.peak,
    }))
}

/// `--max-cache`: removes least recently used cache entries until the cache fits, keeping the
/// entries used since `since` (this run's) unless nothing else is left to remove.
fn bound_cache(
    o: &Options,
    ctx: &edgetune::features::FeatureContext,
    since: Option<std::time::SystemTime>,
) -> anyhow::Result<()> {
    use edgetune::features::manage::{list, prune};
    let Some(budget) = o.max_cache else {
        return Ok(());
    };
    let dir = &ctx.cache_dir;
    let since = since.map_or(u64::MAX, |t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let keep: Vec<String> = list(dir)
        .with_context(|| format!("feature cache {}", dir.display()))?
        .into_iter()
        .filter(|e| e.last_used >= since)
        .map(|e| e.key)
        .collect();
    let r = prune(dir, None, Some(budget as u64), &keep)
        .with_context(|| format!("feature cache {}", dir.display()))?;
    if !r.keys.is_empty() && !o.quiet {
        eprintln!(
            "--max-cache: removed {} cache entries ({} bytes); {} bytes left",
            r.keys.len(),
            r.bytes,
            r.left_bytes
        );
    }
    if r.left_bytes > budget as u64 {
        eprintln!(
            "warning: --max-cache: this run's features alone take {} bytes, over the budget",
            r.left_bytes
        );
    }
    Ok(())
}

/// Keeps the training data with the run (and its `--init-from` lineage), so that it can be
/// trained again from anywhere ([`edgetune::run::snapshot`]).
fn record_data(o: &Options, dataset: &data::Dataset) -> anyhow::Result<()> {
    use edgetune::run::snapshot;
    let flags = snapshot::DataFlags {
        format: o.job.format,
        columns: o.job.columns.clone(),
        text_column: o.text_column.clone(),
        holdout: o.job.holdout,
        tasks: o.settings.tasks.clone(),
    };
    let source = snapshot::record_data(&o.out, &o.job.data, dataset, &flags, o.snapshot_limit)?;
    if let snapshot::Stored::External { path } = &source.stored {
        eprintln!(
            "note: the training data ({} MiB) is over --snapshot-limit: the run records {} and its hash, not a copy",
            source.bytes >> 20,
            path.display()
        );
    }
    if let Some(parent) = &o.settings.init_from {
        let rc = edgetune::run::read_config(parent)?;
        let frozen = if rc.training.frozen.is_empty() {
            rc.training.settings.freeze.clone()
        } else {
            rc.training.frozen.clone()
        };
        let tasks = rc.model.tasks.iter().map(|t| t.name.clone()).collect();
        snapshot::record_lineage(&o.out, parent, tasks, frozen)?;
    }
    Ok(())
}

/// The measured peak against `--max-memory`.
fn report_memory(o: &Options) {
    if let (Some(budget), Some(peak)) = (o.max_memory, edgetune::sys::peak_rss()) {
        let msg = format!("peak RSS {} MiB (budget {} MiB)", peak >> 20, budget >> 20);
        if peak > budget {
            eprintln!("warning: {msg}: over budget");
        } else if !o.quiet {
            eprintln!("{msg}");
        }
    }
}

/// The final metrics: one JSON object with --json, else where the run and its report are.
fn print_outcome(o: &Options, outcome: &train::TrainOutcome) -> anyhow::Result<()> {
    if o.json {
        let mut v = serde_json::json!({ "valid": outcome.valid });
        if let Some((m, _)) = &outcome.test {
            v["test"] = serde_json::to_value(m)?;
        }
        println!("{v}");
        return Ok(());
    }
    println!("run written to {}", o.out.display());
    if let Some(plots) = &outcome.plots {
        println!(
            "report: {} (pictures in {})",
            plots.report.display(),
            o.out.join(edgetune::train::plots::PLOTS_DIR).display()
        );
    }
    println!("valid: {}", fmt_metrics(&outcome.valid));
    if let Some((m, _)) = &outcome.test {
        println!("test:  {} ({} examples)", fmt_metrics(m), m.examples);
    }
    Ok(())
}
