//! `edgetune quantize`: a model directory's backbone into `backbone.int8.onnx`, checked and
//! recorded in its manifest.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::calibrate::activation_stats;
use super::error::QuantizeError;
use super::measure::{
    fidelity, fused_op_counts, layer_fidelity, model_bytes, throughput, Fidelity, LayerCosine,
    ModelBytes,
};
use super::options::{QuantizeOptions, QuantizeSummary};
use super::rewrite::quantize_model;
use crate::backbone::raw as runtime;
use crate::fsutil;
use crate::graph::{load_model, save_model, OnnxError};
use crate::onnx::import::{Manifest, BACKBONE_FILE, INT8_FILE, TOKENIZER_FILE};
use crate::report::{write_layer_fidelity, FidelityChart, LayerFidelity};

/// Options of [`quantize_dir`].
#[derive(Debug, Clone)]
pub struct QuantizeDirOptions {
    /// Model directory written by `edgetune import` (backbone.onnx, tokenizer.json, manifest.json).
    pub model_dir: PathBuf,
    /// Output file (default `MODEL_DIR/backbone.int8.onnx`).
    pub out: Option<PathBuf>,
    /// Quantization settings.
    pub quant: QuantizeOptions,
    /// Sentences for the fidelity report (default: built-in samples).
    pub sentences: Option<Vec<String>>,
    /// Warn when the mean pooled cosine is below this.
    pub warn_cosine: f32,
    /// Threads for ONNX Runtime.
    pub threads: Option<usize>,
    /// Also measure throughput (batch 32, length-sorted) of fp32 vs int8.
    pub measure_speed: bool,
    /// Activation smoothing strength (`None` or 0 = off); statistics come from `calibration`.
    pub smooth_alpha: Option<f32>,
    /// Calibration sentences for smoothing (default: the built-in samples).
    pub calibration: Option<Vec<String>>,
    /// Choose the smoothing strength per activation by simulating the int8 MatMuls on calibration
    /// rows (see [`ActivationStats::samples`]); false = `smooth_alpha` everywhere.
    pub auto_alpha: bool,
    /// Replace an existing output file.
    pub force: bool,
    /// Show the progress of calibration and the fidelity runs on stderr.
    pub progress: bool,
    /// Also measure the fidelity of every hidden state and draw it into this folder
    /// ([`LAYER_FIDELITY_STEM`] `.svg`, `.png`, `.json`).
    pub plots: Option<PathBuf>,
}

/// Stem of the per-layer fidelity chart in [`QuantizeDirOptions::plots`].
pub const LAYER_FIDELITY_STEM: &str = "layer_fidelity";

/// Report of [`quantize_dir`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantizeReport {
    /// Written file.
    pub out: PathBuf,
    /// Graph changes.
    pub summary: QuantizeSummary,
    /// Fidelity vs fp32.
    pub fidelity: Fidelity,
    /// Fused int8 MatMuls in ORT's optimized graph: `DynamicQuantizeMatMul` (quantization folded in)
    /// plus `MatMulIntegerToFloat` (used when several MatMuls share one `DynamicQuantizeLinear`).
    pub fused_nodes: usize,
    /// Unfused `MatMulInteger` nodes left in ORT's optimized graph.
    pub unfused_nodes: usize,
    /// fp32 and int8 sentences/second, when measured.
    pub speed: Option<(f64, f64)>,
    /// Warning text when fidelity is below the threshold.
    pub warning: Option<String>,
    /// The written model's bytes by part.
    #[serde(default)]
    pub bytes: ModelBytes,
    /// Fidelity per hidden state, when measured (with [`QuantizeDirOptions::plots`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerCosine>,
    /// The per-layer chart's files (SVG, PNG, JSON), when drawn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plot_files: Vec<PathBuf>,
}

/// Draws the per-layer fidelity of `int8` against `fp32` into `dir`; returns the files written.
pub fn write_layer_chart(
    dir: &std::path::Path,
    layers: &[LayerCosine],
    fp32: &std::path::Path,
    int8: &std::path::Path,
    sentences: usize,
) -> Result<Vec<PathBuf>, QuantizeError> {
    let name = |p: &std::path::Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let chart = FidelityChart {
        title: format!(
            "Per-layer fidelity of {} vs {} ({sentences} sentences)",
            name(int8),
            name(fp32)
        ),
        layers: layers
            .iter()
            .map(|l| LayerFidelity {
                name: if l.state == 0 {
                    "embeddings (state 0)".to_string()
                } else {
                    format!("layer {} (state {})", l.state, l.state)
                },
                cosine: Some(f64::from(l.mean_cosine)),
                max_abs_diff: Some(f64::from(l.max_abs_diff)),
            })
            .collect(),
        cosine_threshold: None,
        max_abs_diff_threshold: None,
    };
    let f = write_layer_fidelity(&dir.join(LAYER_FIDELITY_STEM), &chart)?;
    Ok(vec![f.svg, f.png, f.json])
}

/// Quantizes a model directory's backbone, checks ORT's fusion, reports fidelity (and speed), and
/// records the result in the manifest.
pub fn quantize_dir(opts: &QuantizeDirOptions) -> Result<QuantizeReport, QuantizeError> {
    let src = opts.model_dir.join(BACKBONE_FILE);
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| opts.model_dir.join(INT8_FILE));
    if out.exists() && !opts.force {
        return Err(QuantizeError::Invalid(format!(
            "{} exists; pass --force to replace it",
            out.display()
        )));
    }
    let tok = runtime::load_tokenizer(&opts.model_dir.join(TOKENIZER_FILE))?;
    let alpha = opts.smooth_alpha.unwrap_or(0.0);
    let quant = calibrated(opts, &src, &tok, alpha)?;
    let mut model = load_model(&src)?;
    let summary = quantize_model(&mut model, &quant)?;
    if summary.quantized.is_empty() {
        return Err(QuantizeError::Graph(OnnxError::Graph {
            path: src.display().to_string(),
            message: "no weight MatMul to quantize".into(),
        }));
    }
    let how = describe(opts, &summary, alpha);
    crate::graph::set_metadata(&mut model, "edgetune.quantization", &how);
    let bytes = model_bytes(&model);
    save_model(&out, &model)?;
    let report = measure(opts, &src, &out, &tok, summary, bytes)?;
    record_in_manifest(opts, &out, &report)?;
    Ok(report)
}

/// The quantization options with the calibration statistics (smoothing at `alpha`, outlier
/// channels), when either is asked for.
fn calibrated(
    opts: &QuantizeDirOptions,
    src: &Path,
    tok: &tokenizers::Tokenizer,
    alpha: f32,
) -> Result<QuantizeOptions, QuantizeError> {
    let mut quant = opts.quant.clone();
    if !(0.0..=1.0).contains(&alpha) {
        return Err(QuantizeError::Invalid(format!(
            "smoothing alpha {alpha} must be in [0, 1]"
        )));
    }
    if quant.outlier_ratio.is_nan() || quant.outlier_ratio < 0.0 {
        return Err(QuantizeError::Invalid(format!(
            "outlier ratio {} must be >= 0",
            quant.outlier_ratio
        )));
    }
    if alpha > 0.0 || quant.outlier_ratio > 0.0 {
        let cal = sentences_or_default(&opts.calibration);
        let refs: Vec<&str> = cal.iter().map(String::as_str).collect();
        let mut stats = activation_stats(src, tok, &refs, alpha, opts.threads, opts.progress)?;
        if !opts.auto_alpha || alpha == 0.0 {
            stats.samples.clear();
        }
        quant.calibration = Some(stats);
    }
    Ok(quant)
}

/// `given` when it holds sentences, else the built-in verification sentences.
fn sentences_or_default(given: &Option<Vec<String>>) -> Vec<String> {
    match given {
        Some(s) if !s.is_empty() => s.clone(),
        _ => crate::onnx::import::VERIFY_SENTENCES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// The model's `edgetune.quantization` metadata: how it was quantized.
fn describe(opts: &QuantizeDirOptions, summary: &QuantizeSummary, alpha: f32) -> String {
    format!(
        "dynamic int8, {} weights, {} bit, {} MatMuls int8, {} fp32, smoothing alpha {}, {} outlier channels fp32",
        if opts.quant.per_channel {
            "per-channel"
        } else {
            "per-tensor"
        },
        if opts.quant.reduce_range { 7 } else { 8 },
        summary.quantized.len(),
        summary.kept_fp32.len(),
        alpha,
        summary.outlier_channels
    )
}

/// What the written model `out` does against `src`: ORT's fused int8 nodes, pooled fidelity,
/// speed and per-layer fidelity (with its chart) when asked for.
fn measure(
    opts: &QuantizeDirOptions,
    src: &Path,
    out: &Path,
    tok: &tokenizers::Tokenizer,
    summary: QuantizeSummary,
    bytes: ModelBytes,
) -> Result<QuantizeReport, QuantizeError> {
    let counts = fused_op_counts(out)?;
    let count = |op: &str| counts.get(op).copied().unwrap_or(0);
    let sentences = sentences_or_default(&opts.sentences);
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let fid = fidelity(src, out, tok, &refs, opts.threads, opts.progress)?;
    let speed = if opts.measure_speed {
        let t = opts.threads.unwrap_or(2);
        let v = throughput(&[src, out], tok, &refs, 32, t, 5)?;
        Some((v[0], v[1]))
    } else {
        None
    };
    let warning = (fid.mean_cosine < opts.warn_cosine).then(|| {
        format!(
            "fidelity below threshold: mean pooled cosine {:.4} < {:.4} (min {:.4}); keep sensitive MatMuls fp32 with --keep-fp32",
            fid.mean_cosine, opts.warn_cosine, fid.min_cosine
        )
    });
    let (layers, plot_files) = match &opts.plots {
        Some(dir) => {
            let layers = layer_fidelity(src, out, tok, &refs, opts.threads, opts.progress)?;
            let files = write_layer_chart(dir, &layers, src, out, refs.len())?;
            (layers, files)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(QuantizeReport {
        out: out.to_path_buf(),
        summary,
        fidelity: fid,
        fused_nodes: count("DynamicQuantizeMatMul") + count("MatMulIntegerToFloat"),
        unfused_nodes: count("MatMulInteger"),
        speed,
        warning,
        bytes,
        layers,
        plot_files,
    })
}

/// Records the output's hash and the report in the model directory's manifest, when the output
/// is inside that directory.
fn record_in_manifest(
    opts: &QuantizeDirOptions,
    out: &Path,
    report: &QuantizeReport,
) -> Result<(), QuantizeError> {
    let Ok(mut m) = Manifest::load(&opts.model_dir) else {
        return Ok(());
    };
    if out.parent() != Some(opts.model_dir.as_path()) {
        return Ok(());
    }
    let name = out
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let sha = fsutil::sha256_file(out).map_err(|e| QuantizeError::io(out, e))?;
    m.files.insert(name, sha);
    let value = serde_json::to_value(report).map_err(|e| QuantizeError::Invalid(e.to_string()))?;
    m.extra.insert("quantization".into(), value);
    m.save(&opts.model_dir)?;
    Ok(())
}
