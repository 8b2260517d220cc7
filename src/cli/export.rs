//! `edgetune export`: one ONNX file with the run's backbone, word pooling and both heads, checked
//! against the training pipeline before it is written.
//!
//! A run trained with `--unfreeze-top N` carries fine-tuned layers `first..L`: the backbone is kept
//! as trained up to hidden state `first`, and its top layers are replaced by the fine-tuned ones
//! ([`edgetune::onnx::top_layers`]), re-quantized to dynamic int8 unless `--fp32-layers`. The graph is
//! always proven first with fp32 layers (logits within [`TOLERANCE`] of the pipeline, identical
//! ids); the int8 model must then agree with the pipeline on at least [`INT8_MIN_AGREEMENT`] of the
//! predicted ids.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::json;

use edgetune::backbone::Backbone;
use edgetune::onnx::export::{self, MergeSpec, VerifyReport, SAMPLE_SENTENCES};
use edgetune::onnx::import::Weights;
use edgetune::onnx::proto::ModelProto;
use edgetune::onnx::quantize::{quantize_model, QuantizeOptions};
use edgetune::onnx::top_layers::{build_top_layers, splice_top_layers};
use edgetune::tokenize::{Tokenized, WordTokenizer};

use super::common;
use super::Global;

/// Largest |logit difference| the self-check accepts (merged model, or fine-tuned layers in fp32).
const TOLERANCE: f32 = 1e-4;

/// Smallest fraction of predicted ids (intents and word tags of the check sentences together) on
/// which a model with int8 fine-tuned layers must agree with the training pipeline (fp32 layers in
/// candle). On the built-in sentences (about 70 ids) this allows one differing id.
const INT8_MIN_AGREEMENT: f64 = 0.98;

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
    /// For a run trained with --unfreeze-top: keep the fine-tuned layers in fp32 (logits match the
    /// run within 1e-4) instead of re-quantizing them to dynamic int8 (smaller, faster; must agree
    /// with the run on at least 98% of the check sentences' predicted ids).
    #[arg(long)]
    pub fp32_layers: bool,
    /// Print the self-check figures as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
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

/// One line of figures of a self-check.
fn describe(rep: &VerifyReport) -> String {
    format!(
        "{} sentences, max |diff intent logit| {:.2e}, max |diff slot logit| {:.2e}, identical ids: \
         intents {}/{}, slot tags {}/{} ({:.2}% of all)",
        rep.sentences,
        rep.intent_max_diff,
        rep.slot_max_diff,
        rep.intent_ids - rep.intent_mismatches,
        rep.intent_ids,
        rep.slot_ids - rep.slot_mismatches,
        rep.slot_ids,
        100.0 * rep.id_agreement()
    )
}

/// The figures of a self-check as JSON.
fn figures(rep: &VerifyReport) -> serde_json::Value {
    json!({
        "sentences": rep.sentences,
        "max_diff_intent_logit": rep.intent_max_diff,
        "max_diff_slot_logit": rep.slot_max_diff,
        "max_diff_logit": rep.max_diff(),
        "intent_ids": rep.intent_ids,
        "intent_agreement": rep.intent_agreement(),
        "slot_ids": rep.slot_ids,
        "slot_agreement": rep.slot_agreement(),
        "id_agreement": rep.id_agreement(),
        "id_mismatches": rep.id_mismatches,
    })
}

/// The MatMuls the backbone's own quantization kept in fp32 (from its `manifest.json`, when the
/// manifest describes this very file), so that re-quantized layers keep the same ones.
fn backbone_kept_fp32(onnx: &Path, sha256: &str) -> Vec<String> {
    let Some(dir) = onnx.parent() else {
        return Vec::new();
    };
    let Ok(m) = edgetune::onnx::import::Manifest::load(dir) else {
        return Vec::new();
    };
    let name = onnx.file_name().unwrap_or_default().to_string_lossy();
    if m.files.get(name.as_ref()).map(String::as_str) != Some(sha256) {
        return Vec::new();
    }
    m.extra
        .get("quantization")
        .and_then(|q| q["summary"]["kept_fp32"].as_array())
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let threads = common::setup_threads(g)?;
    let (rc, heads) = edgetune::run::load_run(&a.run)?;
    if a.fp32_layers && rc.top_layers.is_none() {
        bail!(
            "{}: --fp32-layers applies to runs trained with --unfreeze-top; this run's backbone is frozen",
            a.run.display()
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
        states: edgetune::run::head_states(&rc),
        tokenizer_sha256: rc.backbone.tokenizer_sha256.clone(),
        max_tokens: rc.backbone.max_tokens,
        pad_id: tokenizer.pad_id(),
    };

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
    // Self-checks one merged model against the training pipeline.
    let mut check = |bytes: &[u8]| -> anyhow::Result<VerifyReport> {
        let mut session = edgetune::backbone::open_session(bytes, &a.out, &cfg)?;
        export::verify(
            &mut session,
            &mut backbone,
            &heads,
            &rc.features.states,
            &toks,
            tokenizer.pad_id(),
        )
    };

    // The merged model with the backbone as trained (fine-tuned layers in fp32, if any): its logits
    // must match the training pipeline.
    let mut layers_json = serde_json::Value::Null;
    let mut int8_layers: Option<ModelProto> = None;
    let merged = match &rc.top_layers {
        None => export::build_merged(backbone_model, &heads, &spec)?,
        Some(t) => {
            if t.config.num_hidden_layers != rc.backbone.layers
                || t.config.hidden_size != rc.backbone.hidden
            {
                bail!(
                    "{}: the fine-tuned layers ({} layers, width {}) do not fit the backbone ({} layers, width {})",
                    a.run.display(),
                    t.config.num_hidden_layers,
                    t.config.hidden_size,
                    rc.backbone.layers,
                    rc.backbone.hidden
                );
            }
            let wpath = a.run.join(&rc.weights.file);
            let weights = Weights::load(&wpath)?;
            let top = build_top_layers(&t.config, &weights, t.first)?;
            drop(weights);
            let l = rc.backbone.layers;
            if a.fp32_layers {
                layers_json = json!({"first": t.first, "count": l - t.first, "precision": "fp32"});
            } else {
                let mut q = top.clone();
                // Outlier channels of the new layers, as for the default backbone: calibration
                // statistics from the backbone with the fp32 layers spliced in, on the built-in
                // sample sentences (the layers' MatMuls are the only float-weight ones left).
                let calib = {
                    let tmp =
                        dir.join(format!(".edgetune-calibration-{}.onnx", std::process::id()));
                    edgetune::onnx::save_model(
                        &tmp,
                        &splice_top_layers(backbone_model.clone(), &top, t.first)?,
                    )?;
                    let hf_tok = edgetune::onnx::runtime::load_tokenizer(&files.tokenizer)?;
                    let stats = edgetune::onnx::quantize::activation_stats(
                        &tmp,
                        &hf_tok,
                        edgetune::onnx::import::VERIFY_SENTENCES,
                        0.0,
                        Some(threads),
                    );
                    let _ = std::fs::remove_file(&tmp);
                    // Splicing prefixed the layers' tensor names; `q` has them unprefixed.
                    let mut stats = stats?;
                    let strip = |m: std::collections::HashMap<String, Vec<f32>>| {
                        m.into_iter()
                            .map(|(k, v)| {
                                let k = k
                                    .strip_prefix(edgetune::onnx::top_layers::PREFIX)
                                    .map(str::to_string)
                                    .unwrap_or(k);
                                (k, v)
                            })
                            .collect()
                    };
                    stats.amax = strip(stats.amax);
                    stats.samples = strip(stats.samples);
                    stats
                };
                let opts = QuantizeOptions {
                    keep_fp32: backbone_kept_fp32(&files.onnx, &rc.backbone.onnx_sha256),
                    smooth: Some(calib),
                    outlier_ratio: edgetune::onnx::quantize::DEFAULT_OUTLIER_RATIO,
                    ..QuantizeOptions::default()
                };
                let summary = quantize_model(&mut q, &opts)?;
                eprintln!(
                    "fine-tuned layers {}..{l}: {} MatMuls quantized to dynamic int8 (per-channel, {} outlier channels fp32){}",
                    t.first,
                    summary.quantized.len(),
                    summary.outlier_channels,
                    if summary.kept_fp32.is_empty() {
                        String::new()
                    } else {
                        format!(", {} kept fp32 as in the backbone", summary.kept_fp32.len())
                    }
                );
                layers_json = json!({
                    "first": t.first,
                    "count": l - t.first,
                    "precision": "int8",
                    "quantized_matmuls": summary.quantized.len(),
                    "outlier_channels": summary.outlier_channels,
                    "kept_fp32": summary.kept_fp32,
                });
                int8_layers = Some(splice_top_layers(backbone_model.clone(), &q, t.first)?);
            }
            let spliced = splice_top_layers(backbone_model, &top, t.first)?;
            export::build_merged(spliced, &heads, &spec)?
        }
    };
    let mut bytes = edgetune::onnx::encode_model(&merged);
    drop(merged);

    // Self-check against the training pipeline before anything is written.
    let rep = check(&bytes)?;
    let what = if rc.top_layers.is_some() {
        "merged model with fp32 fine-tuned layers"
    } else {
        "merged model"
    };
    let figure = describe(&rep);
    if !(rep.max_diff() <= TOLERANCE) || rep.id_mismatches > 0 {
        bail!("self-check failed: the {what} disagrees with the training pipeline ({figure}; tolerance {TOLERANCE:.0e}, all ids identical); nothing written");
    }
    eprintln!("self-check passed ({what}): {figure}");
    let mut report = json!({ "check": figures(&rep), "layers": layers_json });

    if let Some(model) = int8_layers {
        let merged = export::build_merged(model, &heads, &spec)?;
        bytes = edgetune::onnx::encode_model(&merged);
        drop(merged);
        let rep8 = check(&bytes)?;
        let figure = describe(&rep8);
        if rep8.id_agreement() < INT8_MIN_AGREEMENT {
            bail!(
                "self-check failed: with int8 fine-tuned layers the merged model agrees with the training pipeline \
                 on only {:.2}% of the predicted ids (threshold {:.0}%; {figure}); nothing written. \
                 `--fp32-layers` exports the layers unquantized",
                100.0 * rep8.id_agreement(),
                100.0 * INT8_MIN_AGREEMENT
            );
        }
        eprintln!(
            "self-check passed (int8 fine-tuned layers, at least {:.0}% identical ids required): {figure}",
            100.0 * INT8_MIN_AGREEMENT
        );
        report["graph_check"] = report["check"].take();
        report["check"] = figures(&rep8);
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
    eprintln!(
        "merged model written to {} ({:.1} MB), tokenizer.json beside it",
        a.out.display(),
        bytes.len() as f64 / 1e6
    );
    if a.json {
        report["out"] = json!(a.out.display().to_string());
        report["bytes"] = json!(bytes.len());
        println!("{report}");
    }
    Ok(())
}
