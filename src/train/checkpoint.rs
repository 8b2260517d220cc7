//! Training checkpoints that survive a kill at any instruction: weights, optimizer moments,
//! early-stopping state and the epoch.
//!
//! Each epoch's checkpoint is a generation folder `checkpoint/gen-{epoch}` written as a whole:
//! the tensor files first, then `state.json` (atomically, recording the files' hashes), then the
//! folder is fsynced; only after that is the previous generation removed. Loading takes the newest
//! generation whose `state.json` exists and whose files match it; anything newer (a generation a
//! kill interrupted) is ignored and removed. So at every instant at least one complete checkpoint
//! exists. The random stream of epoch `e` is derived from (seed, e), so a run resumed at an epoch
//! boundary draws exactly what the uninterrupted run would have drawn.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::optim::AdamW;
use super::settings::TrainSettings;
use crate::fsutil;
use crate::nn::{Param, ParamSet};
pub use crate::run::EpochLog;
use crate::run::{self, RunError};

/// Folder of the checkpoint inside the run directory.
pub const DIR: &str = "checkpoint";

/// Progress of a training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Epochs completed.
    pub epoch: usize,
    /// Best validation score so far.
    pub best_score: f64,
    /// The epoch it was reached at (1-based; 0 = none yet).
    pub best_epoch: usize,
    /// Epochs since the best one.
    pub bad_epochs: usize,
    /// Optimizer steps taken.
    pub optimizer_step: u64,
    /// One line per epoch run.
    pub history: Vec<EpochLog>,
    /// The settings the run was started with.
    pub settings: TrainSettings,
    /// Hashes of `current.safetensors`, `best.safetensors`, `optim.safetensors`.
    pub hashes: HashMap<String, String>,
    /// The best weights (safetensors bytes), when loaded from a checkpoint.
    #[serde(skip)]
    pub best_weights: Option<Vec<u8>>,
}

impl State {
    /// The state before the first epoch.
    pub fn new(settings: &TrainSettings) -> Self {
        Self {
            epoch: 0,
            best_score: f64::NEG_INFINITY,
            best_epoch: 0,
            bad_epochs: 0,
            optimizer_step: 0,
            history: Vec::new(),
            settings: settings.clone(),
            hashes: HashMap::new(),
            best_weights: None,
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn optim_bytes(opt: &AdamW, params: &ParamSet) -> candle_core::Result<Vec<u8>> {
    let mut ps = ParamSet::default();
    for p in &params.params {
        if let Some((m, v)) = opt.moments.get(&p.name) {
            for (prefix, t) in [("m", m), ("v", v)] {
                ps.params.push(Param {
                    name: format!("{prefix}.{}", p.name),
                    group: p.group,
                    var: candle_core::Var::from_tensor(t)?,
                });
            }
        }
    }
    run::weights_bytes(&ps)
}

/// Prefix of a generation folder inside the checkpoint folder.
const GEN_PREFIX: &str = "gen-";

/// The generation folders of `dir`, oldest first (`(epoch, path)`).
fn generations(dir: &Path) -> Vec<(usize, std::path::PathBuf)> {
    let mut gens: Vec<(usize, std::path::PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(GEN_PREFIX)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    gens.sort();
    gens
}

/// Whether `dir` holds a checkpoint to resume from (a generation with its `state.json`).
pub fn exists(dir: &Path) -> bool {
    generations(dir)
        .iter()
        .any(|(_, g)| g.join("state.json").is_file())
}

/// Writes the checkpoint of `state.epoch` as a new generation, then removes the older ones.
pub fn save(
    dir: &Path,
    state: &State,
    params: &ParamSet,
    opt: &AdamW,
    best: &[u8],
) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let gen = dir.join(format!("{GEN_PREFIX}{}", state.epoch));
    // A folder of this name can only be the leftover of an interrupted write of this very epoch.
    if gen.exists() {
        std::fs::remove_dir_all(&gen).map_err(io(&gen))?;
    }
    std::fs::create_dir(&gen).map_err(io(&gen))?;
    fsutil::fault_point();
    let mut state = state.clone();
    state.optimizer_step = opt.step;
    state.hashes.clear();
    let corrupt = |e: candle_core::Error| RunError::Corrupt {
        path: dir.into(),
        message: e.to_string(),
    };
    // One serialized file in memory at a time (they are as large as the model, three times over).
    let mut put = |name: &str, bytes: &[u8]| -> Result<(), RunError> {
        let p = gen.join(name);
        fsutil::write_atomic(&p, bytes).map_err(io(&p))?;
        state
            .hashes
            .insert(name.to_string(), fsutil::sha256_bytes(bytes));
        Ok(())
    };
    put(
        "current.safetensors",
        &run::weights_bytes(params).map_err(corrupt)?,
    )?;
    put("best.safetensors", best)?;
    put(
        "optim.safetensors",
        &optim_bytes(opt, params).map_err(corrupt)?,
    )?;
    let p = gen.join("state.json");
    let json = serde_json::to_vec_pretty(&state).map_err(|e| RunError::Corrupt {
        path: p.clone(),
        message: e.to_string(),
    })?;
    fsutil::write_atomic(&p, &json).map_err(io(&p))?;
    fsutil::sync_dir_itself(dir).map_err(io(dir))?;
    fsutil::fault_point();
    for (n, old) in generations(dir) {
        if n != state.epoch {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
            fsutil::fault_point();
        }
    }
    Ok(())
}

/// The newest complete generation of `dir` and its state (files hash-checked); newer incomplete
/// generations are removed.
fn newest(
    dir: &Path,
) -> Result<(std::path::PathBuf, State, HashMap<&'static str, Vec<u8>>), RunError> {
    let mut last_err = None;
    for (_, gen) in generations(dir).into_iter().rev() {
        match read_generation(&gen) {
            Ok((state, files)) => return Ok((gen, state, files)),
            Err(e) => {
                // Interrupted before its state.json was written: never a checkpoint.
                if !gen.join("state.json").exists() {
                    let _ = std::fs::remove_dir_all(&gen);
                }
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| RunError::NotARun {
        path: dir.parent().unwrap_or(dir).to_path_buf(),
        message: "no checkpoint to resume from".into(),
    }))
}

fn read_generation(gen: &Path) -> Result<(State, HashMap<&'static str, Vec<u8>>), RunError> {
    let p = gen.join("state.json");
    let bytes = std::fs::read(&p).map_err(io(&p))?;
    let state: State = serde_json::from_slice(&bytes).map_err(|e| RunError::Corrupt {
        path: p.clone(),
        message: e.to_string(),
    })?;
    state.settings.validate().map_err(|e| RunError::Corrupt {
        path: p.clone(),
        message: format!("field \"settings.{}\": {}", e.setting, e.message),
    })?;
    let mut files = HashMap::new();
    for name in [
        "current.safetensors",
        "best.safetensors",
        "optim.safetensors",
    ] {
        let fp = gen.join(name);
        let b = std::fs::read(&fp).map_err(io(&fp))?;
        if state.hashes.get(name).map(String::as_str) != Some(fsutil::sha256_bytes(&b).as_str()) {
            return Err(RunError::Corrupt {
                path: fp,
                message: "content does not match state.json".into(),
            });
        }
        files.insert(name, b);
    }
    Ok((state, files))
}

/// Reads the checkpoint's settings only (to restart a run with its original options).
pub fn read_settings(dir: &Path) -> Result<TrainSettings, RunError> {
    Ok(newest(dir)?.1.settings)
}

/// Loads the newest complete checkpoint into `params` and `opt`.
pub fn load(dir: &Path, params: &ParamSet, opt: &mut AdamW) -> Result<State, RunError> {
    let (gen, mut state, mut files) = newest(dir)?;
    run::load_weights(
        &files["current.safetensors"],
        params,
        &gen.join("current.safetensors"),
    )?;
    let optim_path = gen.join("optim.safetensors");
    let st = safetensors::SafeTensors::deserialize(&files["optim.safetensors"]).map_err(|e| {
        RunError::Corrupt {
            path: optim_path.clone(),
            message: e.to_string(),
        }
    })?;
    opt.moments.clear();
    for p in &params.params {
        let (Ok(m), Ok(v)) = (
            st.tensor(&format!("m.{}", p.name)),
            st.tensor(&format!("v.{}", p.name)),
        ) else {
            continue;
        };
        let to_t = |view: safetensors::tensor::TensorView| -> Result<Tensor, RunError> {
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Tensor::from_vec(data, view.shape(), &Device::Cpu).map_err(|e| RunError::Corrupt {
                path: optim_path.clone(),
                message: e.to_string(),
            })
        };
        opt.moments.insert(p.name.clone(), (to_t(m)?, to_t(v)?));
    }
    opt.step = state.optimizer_step;
    state.best_weights = files.remove("best.safetensors");
    Ok(state)
}

/// Removes a finished run's checkpoint (best effort: a leftover checkpoint is harmless).
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// How the data of a run was read: recorded in the checkpoint so that `--resume` reads the same
/// data the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The dataset directory.
    pub data: std::path::PathBuf,
    /// The format given with `--format`, if any.
    #[serde(default)]
    pub format: Option<crate::data::Format>,
    /// CoNLL column names given with `--columns`, if any.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The hold-out fraction for a dataset without a valid split.
    #[serde(default = "default_holdout")]
    pub holdout: f64,
}

fn default_holdout() -> f64 {
    0.1
}

/// File of the [`Job`] inside the checkpoint folder.
pub const JOB_FILE: &str = "job.json";

/// Writes the job record (atomically) into the checkpoint folder `dir`.
pub fn save_job(dir: &Path, job: &Job) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let p = dir.join(JOB_FILE);
    let bytes = serde_json::to_vec_pretty(job).map_err(|e| RunError::Corrupt {
        path: p.clone(),
        message: e.to_string(),
    })?;
    fsutil::write_atomic(&p, &bytes).map_err(io(&p))
}

/// Reads the job record of the checkpoint folder `dir`.
pub fn load_job(dir: &Path) -> Result<Job, RunError> {
    let p = dir.join(JOB_FILE);
    let bytes = std::fs::read(&p).map_err(|_| RunError::NotARun {
        path: dir.parent().unwrap_or(dir).to_path_buf(),
        message: "no checkpoint to resume from".into(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| RunError::Corrupt {
        path: p,
        message: e.to_string(),
    })
}
