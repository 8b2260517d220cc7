//! `edgetune export`: one ONNX file with the run's backbone, word pooling and both heads, checked
//! against the training pipeline before it is written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use edgetune::backbone::Backbone;
use edgetune::onnx::export::{self, MergeSpec, SAMPLE_SENTENCES};
use edgetune::tokenize::{Tokenized, WordTokenizer};

use super::common;
use super::Global;

/// Largest |logit difference| the self-check accepts.
const TOLERANCE: f32 = 1e-4;

/// Flags of `edgetune export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finished run directory.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The merged model to write (`tokenizer.json` is written beside it).
    #[arg(long, value_name = "MERGED.onnx")]
    pub out: PathBuf,
    /// Backbone override (must be the one the run was trained on).
    #[arg(long, value_name = "PATH")]
    pub backbone: Option<PathBuf>,
    /// Extra sentences for the self-check, one per line (in addition to the built-in ones).
    #[arg(long, value_name = "FILE")]
    pub check_file: Option<PathBuf>,
}

/// The self-check sentences: the built-in ones, the file's lines, and one longer than the token
/// limit (truncation).
fn check_sentences(file: Option<&Path>, max_tokens: usize) -> anyhow::Result<Vec<Vec<String>>> {
    let mut out: Vec<Vec<String>> = SAMPLE_SENTENCES.iter().map(|s| words(s)).collect();
    if let Some(p) = file {
        let text = std::fs::read_to_string(p).with_context(|| p.display().to_string())?;
        out.extend(text.lines().map(words).filter(|w| !w.is_empty()));
    }
    let pool: Vec<String> = SAMPLE_SENTENCES.iter().flat_map(|s| words(s)).collect();
    out.push(
        pool.iter()
            .cycle()
            .take(max_tokens.min(600) + 8)
            .cloned()
            .collect(),
    );
    Ok(out)
}

fn words(s: &str) -> Vec<String> {
    edgetune::data::split_words(s)
        .into_iter()
        .map(|(a, b)| s[a..b].to_string())
        .collect()
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let threads = common::setup_threads(g)?;
    let (rc, heads) = edgetune::run::load_run(&a.run)?;
    if let Some(t) = &rc.top_layers {
        bail!(
            "{}: this run fine-tuned the backbone's top {} layers (--unfreeze-top); exporting them into the \
             merged model is not implemented yet, and exporting the original layers would silently give \
             other predictions. Use `edgetune infer --run` / `eval --run` for this run",
            a.run.display(),
            rc.backbone.layers - t.first
        );
    }
    common::init_runtime(g)?;
    let files = common::run_model(&rc, a.backbone.as_deref())?;
    if a.out.is_dir() {
        bail!(
            "{}: is a directory; --out names the .onnx file to write",
            a.out.display()
        );
    }
    let dir = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;

    let backbone_model = edgetune::onnx::load_model(&files.onnx)?;
    let tokenizer = WordTokenizer::from_file(&files.tokenizer, Some(rc.backbone.max_tokens))?;
    let spec = MergeSpec {
        states: rc.features.states.clone(),
        tokenizer_sha256: rc.backbone.tokenizer_sha256.clone(),
        max_tokens: rc.backbone.max_tokens,
        pad_id: tokenizer.pad_id(),
    };
    let merged = export::build_merged(backbone_model, &heads, &spec)?;
    let bytes = edgetune::onnx::encode_model(&merged);
    drop(merged);

    // Self-check against the training pipeline before anything is written.
    let sentences = check_sentences(a.check_file.as_deref(), rc.backbone.max_tokens)?;
    let toks: Vec<Tokenized> = sentences
        .iter()
        .enumerate()
        .map(|(i, w)| tokenizer.encode_words(w, &|| format!("check sentence {}", i + 1)))
        .collect::<Result<_, _>>()?;
    let cfg = common::session_config(threads);
    let mut states = rc.features.states.clone();
    if !states.contains(&rc.backbone.layers) {
        states.push(rc.backbone.layers);
    }
    let mut backbone = Backbone::load(&files, &states, tokenizer.pad_id(), &cfg)?;
    let mut session = edgetune::backbone::open_session(&bytes, &a.out, &cfg)?;
    let rep = export::verify(
        &mut session,
        &mut backbone,
        &heads,
        &rc.features.states,
        &toks,
        tokenizer.pad_id(),
    )?;
    drop(session);
    drop(backbone);
    let figure = format!(
        "{} sentences, max |diff intent logit| {:.2e}, max |diff slot logit| {:.2e}, {} predicted ids differ",
        rep.sentences, rep.intent_max_diff, rep.slot_max_diff, rep.id_mismatches
    );
    if !(rep.max_diff() <= TOLERANCE) || rep.id_mismatches > 0 {
        bail!("self-check failed: the merged model disagrees with the training pipeline ({figure}; tolerance {TOLERANCE:.0e}); nothing written");
    }

    edgetune::fsutil::write_atomic(&a.out, &bytes).with_context(|| a.out.display().to_string())?;
    let tok_out = dir.join("tokenizer.json");
    let same = std::fs::canonicalize(&tok_out).ok() == std::fs::canonicalize(&files.tokenizer).ok();
    if !same {
        let tok_bytes = std::fs::read(&files.tokenizer)
            .with_context(|| files.tokenizer.display().to_string())?;
        edgetune::fsutil::write_atomic(&tok_out, &tok_bytes)
            .with_context(|| tok_out.display().to_string())?;
    }
    eprintln!("self-check passed: {figure}");
    eprintln!(
        "merged model written to {} ({:.1} MB), tokenizer.json beside it",
        a.out.display(),
        bytes.len() as f64 / 1e6
    );
    Ok(())
}
