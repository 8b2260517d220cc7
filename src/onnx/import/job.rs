//! `edgetune import`: a Hugging Face checkpoint into a model directory (whole, or its first K
//! layers), self-verified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::encoder::build_encoder_graph;
use super::manifest::{Manifest, BACKBONE_FILE, MANIFEST_FILE, TOKENIZER_FILE};
use super::verify::{verify_against_candle, Verification, VERIFY_SENTENCES, VERIFY_TOLERANCE};
use crate::backbone::raw as runtime;
use crate::fsutil;
use crate::graph::hidden::hidden_state_name;
use crate::graph::{save_model, OnnxError};
use crate::hf::{BertConfig, Weights};

/// Options of [`import`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Hugging Face directory with config.json, model.safetensors, tokenizer.json.
    pub hf_dir: PathBuf,
    /// Output model directory (created if missing).
    pub out_dir: PathBuf,
    /// Hidden states exposed as `hidden_state_{k}` outputs; `None` = all `0..=L`.
    pub hidden_states: Option<Vec<usize>>,
    /// Keep only the first K transformer layers (`--layers K`, a shallower variant); `None` = all.
    pub layers: Option<usize>,
    /// Run the self-verification against candle (default true).
    pub verify: bool,
    /// Threads for ONNX Runtime during verification (`None` = default).
    pub threads: Option<usize>,
    /// Replace an existing, non-empty output directory (as a whole).
    pub force: bool,
}

impl ImportOptions {
    /// Defaults: all hidden states, verification on.
    pub fn new(hf_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        ImportOptions {
            hf_dir: hf_dir.into(),
            out_dir: out_dir.into(),
            hidden_states: None,
            layers: None,
            verify: true,
            threads: None,
            force: false,
        }
    }
}

/// What [`import`] produced.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The written `backbone.onnx`.
    pub backbone: PathBuf,
    /// The written manifest.
    pub manifest: PathBuf,
    /// Parsed config (`num_hidden_layers` = the layers kept).
    pub config: BertConfig,
    /// The checkpoint's layer count when only the first layers were kept.
    pub source_layers: Option<usize>,
    /// Exposed hidden-state outputs.
    pub hidden_outputs: Vec<String>,
    /// Verification figures (when run).
    pub verification: Option<Verification>,
}

/// Parses `--hidden-states`: `all`, or a comma-separated list of indices.
pub fn parse_hidden_states(s: &str) -> Result<Option<Vec<usize>>, OnnxError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    if s.is_empty() || s.eq_ignore_ascii_case("none") {
        return Ok(Some(Vec::new()));
    }
    s.split(',')
        .map(|p| {
            p.trim().parse::<usize>().map_err(|_| {
                OnnxError::Invalid(format!("--hidden-states: {p:?} is not a layer index"))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Imports a Hugging Face BERT-family checkpoint (its first `opts.layers` layers when set): writes `backbone.onnx`, `tokenizer.json` and
/// `manifest.json` into `opts.out_dir`, verifying the graph against candle (max |diff| <=
/// [`VERIFY_TOLERANCE`]) unless `opts.verify` is false.
///
/// The folder is built as a whole in a temporary folder beside it and then renamed into place, so
/// it is never half old, half new (an older `backbone.int8.onnx` cannot survive a re-import), and a
/// failed import leaves nothing. An existing, non-empty `out_dir` is refused unless `opts.force`.
pub fn import(opts: &ImportOptions) -> Result<ImportReport, OnnxError> {
    let final_dir = opts.out_dir.clone();
    let non_empty = std::fs::read_dir(&final_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if final_dir.exists() && !final_dir.is_dir() {
        return Err(OnnxError::Invalid(format!(
            "{} exists and is not a directory",
            final_dir.display()
        )));
    }
    if non_empty && !opts.force {
        return Err(OnnxError::Invalid(format!(
            "{} exists and is not empty; pass --force to replace it as a whole",
            final_dir.display()
        )));
    }
    let parent = final_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| OnnxError::io(&parent, e))?;
    // Removed on every error path (the guard's drop); kept by `keep()` on success.
    let staging = tempfile::Builder::new()
        .prefix(".edgetune-import-")
        .tempdir_in(&parent)
        .map_err(|e| OnnxError::io(&parent, e))?;
    let inner = ImportOptions {
        out_dir: staging.path().to_path_buf(),
        ..opts.clone()
    };
    let mut report = import_into(&inner)?;
    let built = staging.keep();
    if final_dir.exists() {
        let old = parent.join(format!(".edgetune-import-old-{}", std::process::id()));
        std::fs::rename(&final_dir, &old).map_err(|e| OnnxError::io(&final_dir, e))?;
        std::fs::rename(&built, &final_dir).map_err(|e| OnnxError::io(&final_dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&built, &final_dir).map_err(|e| OnnxError::io(&final_dir, e))?;
    }
    fsutil::sync_dir(&final_dir).map_err(|e| OnnxError::io(&final_dir, e))?;
    report.backbone = final_dir.join(BACKBONE_FILE);
    report.manifest = final_dir.join(MANIFEST_FILE);
    Ok(report)
}

/// [`import`] into a fresh folder.
fn import_into(opts: &ImportOptions) -> Result<ImportReport, OnnxError> {
    let cfg_path = opts.hf_dir.join("config.json");
    let st_path = opts.hf_dir.join("model.safetensors");
    let tok_path = opts.hf_dir.join(TOKENIZER_FILE);
    let mut c = BertConfig::load(&cfg_path)?;
    let source_layers = c.num_hidden_layers;
    if let Some(k) = opts.layers {
        if k == 0 || k > source_layers {
            return Err(OnnxError::Invalid(format!(
                "--layers {k}: the checkpoint has {source_layers} layers (keep 1..={source_layers})"
            )));
        }
        c.num_hidden_layers = k;
    }
    for p in [&st_path, &tok_path] {
        if !p.is_file() {
            return Err(OnnxError::Source {
                path: p.clone(),
                message: "missing".into(),
            });
        }
    }
    let tokenizer = runtime::load_tokenizer(&tok_path)?;
    let l = c.num_hidden_layers;
    let states = match &opts.hidden_states {
        None => (0..=l).collect::<Vec<_>>(),
        Some(v) => v.clone(),
    };
    if let Some(&bad) = states.iter().find(|&&k| k > l) {
        return Err(OnnxError::Invalid(format!(
            "hidden state {bad} requested, the model has 0..={l}"
        )));
    }
    // Only the kept layers' tensors are read (a cut keeps layers 0..l).
    let kept = |name: &str| {
        name.split("encoder.layer.")
            .nth(1)
            .and_then(|rest| rest.split('.').next())
            .and_then(|i| i.parse::<usize>().ok())
            .is_none_or(|i| i < l)
    };
    let weights = Weights::load_filtered(&st_path, &kept)?;
    let model = build_encoder_graph(&c, &weights, &states)?;
    drop(weights);

    std::fs::create_dir_all(&opts.out_dir).map_err(|e| OnnxError::io(&opts.out_dir, e))?;
    let backbone = opts.out_dir.join(BACKBONE_FILE);
    // Verify a staged copy, so a failing import never leaves a backbone behind.
    let staged = opts.out_dir.join(format!(".{BACKBONE_FILE}.staged"));
    save_model(&staged, &model)?;
    let verification = if opts.verify {
        let v = verify_against_candle(
            &staged,
            &c,
            &st_path,
            &tokenizer,
            VERIFY_SENTENCES,
            opts.threads,
        );
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(e);
            }
        };
        if !(v.max_abs_diff_hidden <= VERIFY_TOLERANCE && v.max_abs_diff_pooled <= VERIFY_TOLERANCE)
        {
            let _ = std::fs::remove_file(&staged);
            return Err(OnnxError::Verify {
                path: backbone,
                message: format!(
                    "ONNX Runtime vs candle on {} sentences: max |diff| last_hidden_state {:.3e}, pooled {:.3e} (tolerance {:.0e})",
                    v.sentences, v.max_abs_diff_hidden, v.max_abs_diff_pooled, VERIFY_TOLERANCE
                ),
            });
        }
        Some(v)
    } else {
        None
    };
    std::fs::rename(&staged, &backbone).map_err(|e| OnnxError::io(&backbone, e))?;
    fsutil::sync_dir(&backbone).map_err(|e| OnnxError::io(&backbone, e))?;

    let tok_out = opts.out_dir.join(TOKENIZER_FILE);
    let tok_bytes = std::fs::read(&tok_path).map_err(|e| OnnxError::io(&tok_path, e))?;
    fsutil::write_atomic(&tok_out, &tok_bytes).map_err(|e| OnnxError::io(&tok_out, e))?;

    let sha = |p: &Path| fsutil::sha256_file(p).map_err(|e| OnnxError::io(p, e));
    let mut files = BTreeMap::new();
    files.insert(BACKBONE_FILE.to_string(), sha(&backbone)?);
    files.insert(TOKENIZER_FILE.to_string(), fsutil::sha256_bytes(&tok_bytes));
    let mut source_files = BTreeMap::new();
    for p in [&cfg_path, &st_path, &tok_path] {
        source_files.insert(
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            sha(p)?,
        );
    }
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::graph("no graph"))?;
    let hidden_outputs: Vec<String> = states.iter().map(|&k| hidden_state_name(k)).collect();
    let manifest = Manifest {
        format: "edgetune-model/1".into(),
        config: c.clone(),
        num_layers: l,
        hidden_size: c.hidden_size,
        inputs: g.input.iter().filter_map(|i| i.name.clone()).collect(),
        outputs: g.output.iter().filter_map(|o| o.name.clone()).collect(),
        source_dir: opts.hf_dir.display().to_string(),
        source_layers: (l < source_layers).then_some(source_layers),
        files,
        source_files,
        verification,
        extra: BTreeMap::new(),
    };
    manifest.save(&opts.out_dir)?;
    Ok(ImportReport {
        backbone,
        manifest: opts.out_dir.join(MANIFEST_FILE),
        config: c,
        source_layers: (l < source_layers).then_some(source_layers),
        hidden_outputs,
        verification,
    })
}
