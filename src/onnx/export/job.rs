//! `export`: a finished run into one merged ONNX file with `tokenizer.json` beside it, checked
//! against the training pipeline before anything is written.
//!
//! A run trained with `--unfreeze-top N` carries fine-tuned layers `first..L`: the backbone is kept
//! as trained up to hidden state `first`, and its top layers are replaced by the fine-tuned ones
//! ([`super::splice`]), re-quantized to dynamic int8 unless `fp32_layers`. The graph is always
//! proven first with fp32 layers (logits within [`TOLERANCE`] of the pipeline, identical ids); the
//! int8 model must then agree with the pipeline on at least [`INT8_MIN_AGREEMENT`] of the predicted
//! ids.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::error::ExportError;
use super::merge::{build_merged, MergeSpec};
use super::splice::{build_top_layers, splice_top_layers, PREFIX};
use super::verify::{agreement, verify, VerifyReport, CHECK_PASSES, SAMPLE_SENTENCES};
use crate::backbone::raw::load_tokenizer;
use crate::backbone::{open_session, Backbone, ModelFiles, SessionOptions, SessionSource};
use crate::data::split_words;
use crate::fsutil;
use crate::graph::proto::ModelProto;
use crate::graph::{encode_model, load_model, save_model, OnnxError};
use crate::hf::Weights;
use crate::model::TaskModel;
use crate::onnx::import::{Manifest, VERIFY_SENTENCES};
use crate::onnx::quantize::{
    activation_stats, quantize_model, QuantizeError, QuantizeOptions, QuantizeSummary,
    DEFAULT_OUTLIER_RATIO,
};
use crate::progress::Progress;
use crate::run;
use crate::tokenize::{Tokenized, WordTokenizer};

/// Largest |logit difference| the self-check accepts (merged model, or fine-tuned layers in fp32).
pub const TOLERANCE: f32 = 1e-4;

/// Smallest fraction of predicted ids (every task's, the check sentences together) on which a
/// model with int8 fine-tuned layers must agree with the training pipeline (fp32 layers in
/// candle). On the built-in sentences (about 70 ids) this allows one differing id.
pub const INT8_MIN_AGREEMENT: f64 = 0.98;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The run directory.
    pub run: PathBuf,
    /// The merged model to write (`tokenizer.json` is written beside it).
    pub out: PathBuf,
    /// Backbone override (must be the one the run was trained on).
    pub backbone: Option<PathBuf>,
    /// Extra check sentences, one per line.
    pub check_file: Option<PathBuf>,
    /// Keep fine-tuned layers fp32.
    pub fp32_layers: bool,
    /// Replace an existing `out` (and its `tokenizer.json`).
    pub force: bool,
    /// Session settings of the checks.
    pub session: SessionOptions,
    /// Show the self-check's progress on stderr.
    pub progress: bool,
}

/// What the export did.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The figures (`export --json`'s object).
    pub json: serde_json::Value,
    /// Lines describing what happened, for the user.
    pub notes: Vec<String>,
    /// Bytes written.
    pub bytes: usize,
}

/// The self-check sentences: the built-in ones, the file's lines, and one longer than the token
/// limit (truncation).
fn check_sentences(
    file: Option<&Path>,
    max_tokens: usize,
) -> Result<Vec<Vec<String>>, ExportError> {
    let words = |s: &str| -> Vec<String> {
        split_words(s)
            .into_iter()
            .map(|(a, b)| s[a..b].to_string())
            .collect()
    };
    let mut out: Vec<Vec<String>> = SAMPLE_SENTENCES.iter().map(|s| words(s)).collect();
    if let Some(p) = file {
        let text = std::fs::read_to_string(p).map_err(|e| OnnxError::io(p, e))?;
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

/// One line of figures of a self-check.
pub fn describe(rep: &VerifyReport) -> String {
    let tasks: Vec<String> = rep
        .tasks
        .iter()
        .map(|(n, _, c)| {
            format!(
                "{n}: max |diff logit| {:.2e}, ids {}/{}",
                c.max_diff,
                c.ids - c.mismatches,
                c.ids
            )
        })
        .collect();
    format!(
        "{} sentences; {}; identical ids {:.2}% of all",
        rep.sentences,
        tasks.join("; "),
        100.0 * rep.id_agreement()
    )
}

/// The figures of a self-check as JSON: the sentence tasks together under `intent_*`, the token
/// tasks under `slot_*` (the keys of format 1), and each task under `tasks`.
pub fn figures(rep: &VerifyReport) -> serde_json::Value {
    let (s, t) = (rep.sentence(), rep.token());
    let tasks: serde_json::Map<String, serde_json::Value> = rep
        .tasks
        .iter()
        .map(|(n, _, c)| {
            (
                n.clone(),
                json!({"max_diff_logit": c.max_diff, "ids": c.ids, "id_mismatches": c.mismatches,
                       "agreement": agreement(c.mismatches, c.ids)}),
            )
        })
        .collect();
    json!({
        "sentences": rep.sentences,
        "max_diff_intent_logit": s.max_diff,
        "max_diff_slot_logit": t.max_diff,
        "max_diff_logit": rep.max_diff(),
        "intent_ids": s.ids,
        "intent_agreement": agreement(s.mismatches, s.ids),
        "slot_ids": t.ids,
        "slot_agreement": agreement(t.mismatches, t.ids),
        "id_agreement": rep.id_agreement(),
        "id_mismatches": rep.id_mismatches(),
        "tasks": tasks,
    })
}

/// Exports a run: builds the merged model, checks it against the training pipeline, and writes it
/// (atomically) with the tokenizer beside it. An existing target is refused unless `force`.
pub fn export_run(opts: &ExportOptions) -> Result<ExportReport, ExportError> {
    let (rc, model) = run::load_run(&opts.run)?;
    if opts.fp32_layers && rc.top_layers.is_none() {
        return Err(ExportError::Invalid(format!(
            "{}: --fp32-layers applies to runs trained with --unfreeze-top; this run's backbone is frozen",
            opts.run.display()
        )));
    }
    let target = Target::check(opts)?;
    let files = run::backbone_files(&rc, opts.backbone.as_deref())?;
    target.check_tokenizer(opts, &rc, &files)?;
    let backbone_model = load_model(&files.onnx)?;
    let mut checker = Checker::new(opts, &rc, &model, &files)?;
    let mut notes = Vec::new();
    let built = build(opts, &rc, &checker, backbone_model, &files, &mut notes)?;
    let (bytes, mut report) = self_check(&mut checker, built, &mut notes)?;
    target.write(&bytes, &files)?;
    notes.push(format!(
        "merged model written to {} ({:.1} MB), tokenizer.json beside it",
        target.out.display(),
        bytes.len() as f64 / 1e6
    ));
    report["out"] = json!(target.out.display().to_string());
    report["bytes"] = json!(bytes.len());
    Ok(ExportReport {
        json: report,
        notes,
        bytes: bytes.len(),
    })
}

/// Where the merged model and its tokenizer go.
struct Target {
    out: PathBuf,
    dir: PathBuf,
    tok_out: PathBuf,
}

impl Target {
    /// `--out` names a file that may be written: not a folder, not an existing file without
    /// `force`.
    fn check(opts: &ExportOptions) -> Result<Self, ExportError> {
        let out = opts.out.clone();
        if out.is_dir() {
            return Err(ExportError::Invalid(format!(
                "{}: is a directory; --out names the .onnx file to write",
                out.display()
            )));
        }
        if out.exists() && !opts.force {
            return Err(ExportError::Invalid(format!(
                "{} exists; pass --force to replace it (and the tokenizer.json beside it)",
                out.display()
            )));
        }
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let tok_out = dir.join("tokenizer.json");
        Ok(Target { out, dir, tok_out })
    }

    /// Whether `tokenizer.json` beside the output is the backbone's own file.
    fn same_tokenizer(&self, files: &ModelFiles) -> bool {
        std::fs::canonicalize(&self.tok_out).ok() == std::fs::canonicalize(&files.tokenizer).ok()
    }

    /// Another tokenizer beside the output is not replaced without `force`.
    fn check_tokenizer(
        &self,
        opts: &ExportOptions,
        rc: &run::RunConfig,
        files: &ModelFiles,
    ) -> Result<(), ExportError> {
        let tok = &self.tok_out;
        if !tok.exists() || self.same_tokenizer(files) || opts.force {
            return Ok(());
        }
        let theirs = fsutil::sha256_file(tok).map_err(|e| OnnxError::io(tok, e))?;
        if theirs != rc.backbone.tokenizer_sha256 {
            return Err(ExportError::Invalid(format!(
                "{} exists and is another tokenizer; pass --force to replace it, or export into another folder",
                tok.display()
            )));
        }
        Ok(())
    }

    /// Writes the model and (unless it is already there) the tokenizer, each atomically.
    fn write(&self, bytes: &[u8], files: &ModelFiles) -> Result<(), ExportError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e| OnnxError::io(&p, e)
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        fsutil::write_atomic(&self.out, bytes).map_err(io(&self.out))?;
        if !self.same_tokenizer(files) {
            let tok = std::fs::read(&files.tokenizer).map_err(io(&files.tokenizer))?;
            fsutil::write_atomic(&self.tok_out, &tok).map_err(io(&self.tok_out))?;
        }
        Ok(())
    }
}

/// The self-check: the check sentences through a candidate merged model and through the training
/// pipeline (the backbone, then the run's heads in candle).
struct Checker<'a> {
    opts: &'a ExportOptions,
    rc: &'a run::RunConfig,
    model: &'a TaskModel,
    spec: MergeSpec,
    toks: Vec<Tokenized>,
    pad_id: u32,
    backbone: Backbone,
}

impl<'a> Checker<'a> {
    fn new(
        opts: &'a ExportOptions,
        rc: &'a run::RunConfig,
        model: &'a TaskModel,
        files: &ModelFiles,
    ) -> Result<Self, ExportError> {
        let tokenizer = WordTokenizer::from_file(&files.tokenizer, Some(rc.backbone.max_tokens))?;
        let sentences = check_sentences(opts.check_file.as_deref(), rc.backbone.max_tokens)?;
        let toks: Vec<Tokenized> = sentences
            .iter()
            .enumerate()
            .map(|(i, w)| tokenizer.encode_words(w, &|| format!("check sentence {}", i + 1)))
            .collect::<Result<_, _>>()?;
        let mut states = rc.features.states.clone();
        if !states.contains(&rc.backbone.layers) {
            states.push(rc.backbone.layers);
        }
        let pad_id = tokenizer.pad_id();
        let backbone = Backbone::load(files, &states, pad_id, &opts.session)?;
        let spec = MergeSpec {
            states: run::head_states(rc),
            tokenizer_sha256: rc.backbone.tokenizer_sha256.clone(),
            max_tokens: rc.backbone.max_tokens,
            pad_id,
        };
        Ok(Checker {
            opts,
            rc,
            model,
            spec,
            toks,
            pad_id,
            backbone,
        })
    }

    /// The merged model of `backbone` and the run's heads.
    fn merge(&self, backbone: ModelProto) -> Result<ModelProto, ExportError> {
        Ok(build_merged(backbone, self.model, &self.spec)?)
    }

    /// Runs the check on the merged model `bytes` (`what` names it in the progress line).
    fn run(&mut self, bytes: &[u8], what: &str) -> Result<VerifyReport, ExportError> {
        let opts = self.opts;
        let mut session = open_session(SessionSource::Bytes(bytes, &opts.out), &opts.session)?;
        let mut progress = Progress::new(
            format!("self-check ({what})"),
            CHECK_PASSES * self.toks.len() as u64,
            "sentence runs",
            opts.progress,
        );
        let rep = verify(
            &mut session,
            &mut self.backbone,
            self.model,
            &self.rc.features.states,
            &self.toks,
            self.pad_id,
            &mut progress,
        )?;
        progress.finish();
        Ok(rep)
    }
}

/// The models to check: the merged model with the backbone as trained (fine-tuned layers in fp32,
/// if any), and with the layers in int8 when they are to be quantized; the `layers` figures.
struct Built {
    merged: ModelProto,
    int8_backbone: Option<ModelProto>,
    layers_json: serde_json::Value,
}

/// Builds the merged model of the run: the backbone and heads, with the fine-tuned layers spliced
/// in (and quantized unless `fp32_layers`) for an `--unfreeze-top` run.
fn build(
    opts: &ExportOptions,
    rc: &run::RunConfig,
    checker: &Checker,
    backbone: ModelProto,
    files: &ModelFiles,
    notes: &mut Vec<String>,
) -> Result<Built, ExportError> {
    let Some(t) = &rc.top_layers else {
        return Ok(Built {
            merged: checker.merge(backbone)?,
            int8_backbone: None,
            layers_json: serde_json::Value::Null,
        });
    };
    let wpath = opts.run.join(&rc.weights.file);
    let weights = Weights::load(&wpath)?;
    let top = build_top_layers(&t.config, &weights, t.first)?;
    drop(weights);
    let count = rc.backbone.layers - t.first;
    let (int8_backbone, layers_json) = if opts.fp32_layers {
        let json = json!({"first": t.first, "count": count, "precision": "fp32"});
        (None, json)
    } else {
        let q = quantize_layers(
            &backbone,
            &top,
            t.first,
            files,
            rc,
            &opts.session,
            opts.progress,
        )?;
        let (q, summary) = q;
        notes.push(int8_note(t.first, rc.backbone.layers, &summary));
        let json = json!({
            "first": t.first,
            "count": count,
            "precision": "int8",
            "quantized_matmuls": summary.quantized.len(),
            "outlier_channels": summary.outlier_channels,
            "kept_fp32": summary.kept_fp32,
        });
        (
            Some(splice_top_layers(backbone.clone(), &q, t.first)?),
            json,
        )
    };
    let spliced = splice_top_layers(backbone, &top, t.first)?;
    Ok(Built {
        merged: checker.merge(spliced)?,
        int8_backbone,
        layers_json,
    })
}

/// What quantizing the fine-tuned layers did, in one line.
fn int8_note(first: usize, layers: usize, summary: &QuantizeSummary) -> String {
    let kept = match summary.kept_fp32.len() {
        0 => String::new(),
        n => format!(", {n} kept fp32 as in the backbone"),
    };
    format!(
        "fine-tuned layers {first}..{layers}: {} MatMuls quantized to dynamic int8 (per-channel, {} outlier channels fp32){kept}",
        summary.quantized.len(),
        summary.outlier_channels,
    )
}

/// Checks the built models: the graph (fp32 layers) must match the pipeline's logits within
/// [`TOLERANCE`] with identical ids; int8 layers must agree on [`INT8_MIN_AGREEMENT`] of the ids.
/// Returns the bytes to write and the `export --json` figures.
fn self_check(
    checker: &mut Checker,
    built: Built,
    notes: &mut Vec<String>,
) -> Result<(Vec<u8>, serde_json::Value), ExportError> {
    let mut bytes = encode_model(&built.merged);
    drop(built.merged);
    let what = match checker.rc.top_layers {
        Some(_) => "merged model with fp32 fine-tuned layers",
        None => "merged model",
    };
    let rep = checker.run(&bytes, what)?;
    let figure = describe(&rep);
    if !(rep.max_diff() <= TOLERANCE) || rep.id_mismatches() > 0 {
        return Err(ExportError::Check(format!(
            "the {what} disagrees with the training pipeline ({figure}; tolerance {TOLERANCE:.0e}, all ids identical)"
        )));
    }
    notes.push(format!("self-check passed ({what}): {figure}"));
    let mut report = json!({ "check": figures(&rep), "layers": built.layers_json });
    let Some(m) = built.int8_backbone else {
        return Ok((bytes, report));
    };
    bytes = encode_model(&checker.merge(m)?);
    let rep8 = checker.run(&bytes, "int8 fine-tuned layers")?;
    let figure = describe(&rep8);
    if rep8.id_agreement() < INT8_MIN_AGREEMENT {
        return Err(ExportError::Check(format!(
            "with int8 fine-tuned layers the merged model agrees with the training pipeline \
             on only {:.2}% of the predicted ids (threshold {:.0}%; {figure}). \
             `--fp32-layers` exports the layers unquantized",
            100.0 * rep8.id_agreement(),
            100.0 * INT8_MIN_AGREEMENT
        )));
    }
    notes.push(format!(
        "self-check passed (int8 fine-tuned layers, at least {:.0}% identical ids required): {figure}",
        100.0 * INT8_MIN_AGREEMENT
    ));
    report["graph_check"] = report["check"].take();
    report["check"] = figures(&rep8);
    Ok((bytes, report))
}

/// The fine-tuned layers `top` quantized to dynamic int8 with the outlier split, as for the
/// default backbone: calibration statistics from the backbone with the fp32 layers spliced in, on
/// the built-in sample sentences; MatMuls the backbone's own quantization kept fp32 stay fp32.
fn quantize_layers(
    backbone: &ModelProto,
    top: &ModelProto,
    first: usize,
    files: &ModelFiles,
    rc: &run::RunConfig,
    session: &SessionOptions,
    progress: bool,
) -> Result<(ModelProto, QuantizeSummary), ExportError> {
    let calib = {
        // A temporary model file, removed on every path (the guard's drop).
        let tmp = tempfile::Builder::new()
            .prefix(".edgetune-calibration-")
            .suffix(".onnx")
            .tempfile()
            .map_err(|e| OnnxError::io(Path::new("<temporary calibration model>"), e))?;
        save_model(
            tmp.path(),
            &splice_top_layers(backbone.clone(), top, first)?,
        )?;
        let hf_tok = load_tokenizer(&files.tokenizer).map_err(QuantizeError::from)?;
        let mut stats = activation_stats(
            tmp.path(),
            &hf_tok,
            VERIFY_SENTENCES,
            0.0,
            session.threads,
            progress,
        )?;
        // Splicing prefixed the layers' tensor names; the standalone `top` has them unprefixed.
        let strip = |m: std::collections::HashMap<String, Vec<f32>>| {
            m.into_iter()
                .map(|(k, v)| (k.strip_prefix(PREFIX).map(str::to_string).unwrap_or(k), v))
                .collect()
        };
        stats.amax = strip(stats.amax);
        stats.samples = strip(stats.samples);
        stats
    };
    let kept = files
        .onnx
        .parent()
        .and_then(|d| Manifest::load(d).ok())
        .map(|m| {
            let name = files.onnx.file_name().unwrap_or_default().to_string_lossy();
            m.kept_fp32(&name, &rc.backbone.onnx_sha256)
        })
        .unwrap_or_default();
    let opts = QuantizeOptions {
        keep_fp32: kept,
        calibration: Some(calib),
        outlier_ratio: DEFAULT_OUTLIER_RATIO,
        ..QuantizeOptions::default()
    };
    let mut q = top.clone();
    let summary = quantize_model(&mut q, &opts)?;
    Ok((q, summary))
}
