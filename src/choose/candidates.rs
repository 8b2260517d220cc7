//! What `choose` compares: each backbone of `--backbones` with each count of `--unfreeze-top`,
//! named for the table and the picture.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::ChooseError;
use crate::backbone::ModelFiles;
use crate::onnx::import::Manifest;

/// One candidate: a backbone, and how many of its top layers train with the heads.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Name in the table (`NAME` of `NAME=PATH`, else the backbone folder's name; ` top-N` added
    /// for unfrozen layers).
    pub name: String,
    /// The backbone's ONNX file and tokenizer.
    #[serde(skip)]
    pub files: ModelFiles,
    /// The ONNX file (for the record).
    pub backbone: PathBuf,
    /// Top layers trained with the heads (0 = frozen backbone).
    pub unfreeze_top: usize,
    /// The fp32 checkpoint those layers start from (`unfreeze_top > 0`).
    pub hf_weights: Option<PathBuf>,
}

/// A file-system-safe form of a candidate's name (its run folder).
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// The default name of a backbone: its folder's name (the link's target's, so `.models/default`
/// is named after the model), with the file name when it is not the one the folder resolves to.
fn default_name(arg: &Path, files: &ModelFiles) -> String {
    let dir = if arg.is_dir() {
        arg.to_path_buf()
    } else {
        files
            .onnx
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backbone".into());
    let picked = ModelFiles::resolve(&dir).ok().map(|f| f.onnx);
    if arg.is_dir() || picked.as_deref() == Some(files.onnx.as_path()) {
        base
    } else {
        let file = files.onnx.file_stem().unwrap_or_default().to_string_lossy();
        format!("{base}/{file}")
    }
}

/// The Hugging Face checkpoint a backbone folder was imported from (its manifest's `source_dir`),
/// when it still holds the weights.
pub fn recorded_checkpoint(files: &ModelFiles) -> Option<PathBuf> {
    let m = Manifest::load(files.onnx.parent()?).ok()?;
    let dir = PathBuf::from(m.source_dir);
    dir.join("model.safetensors").is_file().then_some(dir)
}

/// Parses `--backbones A,B,...` (each `PATH` or `NAME=PATH`) with `--unfreeze-top 0,1,...` and
/// optional `--hf-weights` (one checkpoint per backbone, in order; else each backbone's recorded
/// checkpoint) into candidates, backbone by backbone.
pub fn parse_backbones(
    specs: &[String],
    unfreeze: &[usize],
    hf_weights: &[PathBuf],
) -> Result<Vec<Candidate>, ChooseError> {
    if specs.is_empty() {
        return Err(ChooseError::Invalid(
            "--backbones: give at least one backbone".into(),
        ));
    }
    if !hf_weights.is_empty() && hf_weights.len() != specs.len() {
        return Err(ChooseError::Invalid(format!(
            "--hf-weights: {} checkpoints for {} backbones (give one per backbone, in order)",
            hf_weights.len(),
            specs.len()
        )));
    }
    let unfreeze: Vec<usize> = if unfreeze.is_empty() {
        vec![0]
    } else {
        unfreeze.to_vec()
    };
    let mut out: Vec<Candidate> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let (name, path) = match spec.split_once('=') {
            Some((n, p)) if !n.trim().is_empty() => (Some(n.trim().to_string()), p.trim()),
            _ => (None, spec.trim()),
        };
        let arg = PathBuf::from(path);
        let files = ModelFiles::resolve(&arg)?;
        let name = name.unwrap_or_else(|| default_name(&arg, &files));
        let backbone = std::fs::canonicalize(&files.onnx).unwrap_or(files.onnx.clone());
        for &n in &unfreeze {
            let hf = if n == 0 {
                None
            } else {
                let dir = hf_weights
                    .get(i)
                    .cloned()
                    .or_else(|| recorded_checkpoint(&files))
                    .ok_or_else(|| {
                        ChooseError::Invalid(format!(
                            "--unfreeze-top {n} needs the fp32 checkpoint of {path}: its manifest names none \
                             that still exists; pass --hf-weights (one per backbone)"
                        ))
                    })?;
                Some(dir)
            };
            let full = if n == 0 {
                name.clone()
            } else {
                format!("{name} top-{n}")
            };
            if out.iter().any(|c| c.name == full) {
                return Err(ChooseError::Invalid(format!(
                    "two candidates are named `{full}`; name them with NAME=PATH"
                )));
            }
            out.push(Candidate {
                name: full,
                files: files.clone(),
                backbone: backbone.clone(),
                unfreeze_top: n,
                hf_weights: hf,
            });
        }
    }
    Ok(out)
}
