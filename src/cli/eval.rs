//! `edgetune eval`.

use std::path::PathBuf;

use anyhow::bail;

use edgetune::data::{self, Format};
use edgetune::eval::{self, LabelSets};
use edgetune::train::{predict_split, slot_types, SplitData};

use super::common;
use super::Global;

/// Flags of `edgetune eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finished run directory.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// A dataset directory (with --split) or a single data file / JointBERT folder.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Which split of the dataset directory to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Data format (default: detected).
    #[arg(long)]
    pub format: Option<Format>,
    /// Backbone override (must be the one the run was trained on).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Feature cache directory.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print one JSON object (examples, intent_accuracy, slot_f1, sentence_accuracy, ...) on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let threads = common::setup_threads(g)?;
    let (rc, heads) = edgetune::run::load_run(&a.run)?;
    let split = if a.data.is_dir() && !a.data.join("seq.in").is_file() {
        match data::load_split(&a.data, &a.split, a.format)? {
            Some(s) => s,
            None => bail!("{}: no `{}` split", a.data.display(), a.split),
        }
    } else {
        data::read_file_split(&a.data, a.format)?
    };
    common::init_runtime(g)?;
    let files = common::run_model(&rc, a.model.as_deref())?;
    let mut ctx = common::feature_context(
        files,
        Some(rc.backbone.max_tokens),
        threads,
        a.cache_dir,
        !a.quiet,
    )?;
    let feats = ctx.load_or_extract(&split, &rc.features)?;
    let truncated = feats.meta.truncated.len();
    let data = SplitData {
        split: &split,
        feats,
    };
    let preds = predict_split(&heads, &data, 128)?;
    let labels = LabelSets {
        intents: heads.config.intents.iter().cloned().collect(),
        slot_types: slot_types(&heads.config.tags),
    };
    // A task the run has no head for cannot be scored: drop its gold labels.
    let gold: Vec<_> = split
        .examples
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if heads.intent.is_none() {
                e.intent = None;
            }
            if heads.slot.is_none() {
                e.tags = None;
            }
            e
        })
        .collect();
    let report = eval::evaluate(&gold, &preds, &labels);
    if a.json {
        let mut v = serde_json::to_value(&report.metrics)?;
        if truncated > 0 {
            v["truncated_examples"] = truncated.into();
        }
        if !report.unseen_intents.is_empty() {
            v["unseen_intents"] = serde_json::to_value(&report.unseen_intents)?;
        }
        if !report.unseen_slot_types.is_empty() {
            v["unseen_slot_types"] = serde_json::to_value(&report.unseen_slot_types)?;
        }
        println!("{v}");
    } else {
        println!(
            "{} ({} examples, run {})",
            split.source.display(),
            split.examples.len(),
            a.run.display()
        );
        if truncated > 0 {
            println!("note: {truncated} examples were truncated at {} tokens; their cut words count as tagged O", rc.backbone.max_tokens);
        }
        print!("{}", eval::render_table(&report));
    }
    Ok(())
}
