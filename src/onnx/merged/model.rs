//! [`MergedModel`]: a merged model opened for prediction (`infer --model`, `bench`, `serve`, and
//! embedders through [`crate::predict::Predict`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ort::session::Session;

use super::contract::MergedMeta;
use super::session::{decode_outputs, run_merged, MergedInputs};
use crate::backbone::{open_session, SessionOptions, SessionSource};
use crate::data::TaskInfo;
use crate::fsutil;
use crate::graph::OnnxError;
use crate::predict::{predict_lines, Decoded, Predict, PredictError, Prediction, BATCH};
use crate::tokenize::{Tokenized, WordTokenizer};

/// How long each phase of [`MergedModel::open_timed`] took. The tokenizer loads while the session
/// is created, so `total` is less than the sum.
#[derive(Debug, Clone)]
pub struct OpenTimings {
    /// Reading and checking the metadata and the output shapes.
    pub metadata: Duration,
    /// ONNX Runtime's session creation (parsing, graph optimization, weight prepacking).
    pub session: Duration,
    /// Hashing and loading `tokenizer.json` (on its own thread).
    pub tokenizer: Duration,
    /// The whole of `open`.
    pub total: Duration,
}

/// Loads `tok_path` after checking that it is the tokenizer the model was exported with.
fn load_tokenizer(
    tok_path: &Path,
    sha256: &str,
    max_tokens: usize,
) -> Result<(WordTokenizer, Duration), OnnxError> {
    let t = Instant::now();
    let sha = fsutil::sha256_file(tok_path).map_err(|e| OnnxError::Source {
        path: tok_path.to_path_buf(),
        message: format!("the merged model needs its tokenizer.json beside it ({e})"),
    })?;
    if sha != sha256 {
        return Err(OnnxError::Source {
            path: tok_path.to_path_buf(),
            message: "not the tokenizer this model was exported with (sha256 differs)".into(),
        });
    }
    let tokenizer =
        WordTokenizer::from_file(tok_path, Some(max_tokens)).map_err(|e| OnnxError::Source {
            path: tok_path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok((tokenizer, t.elapsed()))
}

/// A merged model ready to answer: the session, its tasks and the tokenizer beside it.
pub struct MergedModel {
    /// The model file.
    pub path: PathBuf,
    /// Its metadata.
    pub meta: MergedMeta,
    /// The tokenizer (`tokenizer.json` beside the model, hash-checked).
    pub tokenizer: WordTokenizer,
    /// The padding id.
    pub pad_id: u32,
    session: Session,
}

impl MergedModel {
    /// Opens `path` (with `tokenizer.json` beside it): reads and checks the metadata, the
    /// tokenizer's hash, and opens an ONNX Runtime session.
    ///
    /// The file is parsed once, by ONNX Runtime: the metadata and the output shapes are read from
    /// the file's header without its weights ([`MergedMeta::from_file`]), and the tokenizer is
    /// loaded on a second thread while the session is created.
    pub fn open(path: &Path, opts: &SessionOptions) -> Result<Self, PredictError> {
        Self::open_timed(path, opts).map(|(m, _)| m)
    }

    /// [`MergedModel::open`], also returning how long each phase took.
    pub fn open_timed(
        path: &Path,
        opts: &SessionOptions,
    ) -> Result<(Self, OpenTimings), PredictError> {
        let t0 = Instant::now();
        let meta = MergedMeta::from_file(path)?;
        let metadata = t0.elapsed();
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tok_path = dir.join("tokenizer.json");
        let (sha, max_tokens) = (meta.tokenizer_sha256.clone(), meta.max_tokens);
        let tok_job = {
            let tok_path = tok_path.clone();
            std::thread::spawn(move || load_tokenizer(&tok_path, &sha, max_tokens))
        };
        let t1 = Instant::now();
        let session = open_session(SessionSource::File(path), opts);
        let session_time = t1.elapsed();
        let tokenizer = tok_job.join().map_err(|_| OnnxError::Source {
            path: tok_path.clone(),
            message: "the tokenizer could not be loaded (its loader stopped)".into(),
        })?;
        let (tokenizer, tokenizer_time) = tokenizer?;
        let session = session.map_err(|e| OnnxError::Runtime {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let pad_id = meta.pad_id.unwrap_or_else(|| tokenizer.pad_id());
        let timings = OpenTimings {
            metadata,
            session: session_time,
            tokenizer: tokenizer_time,
            total: t0.elapsed(),
        };
        let model = Self {
            path: path.to_path_buf(),
            meta,
            tokenizer,
            pad_id,
            session,
        };
        Ok((model, timings))
    }

    /// Runs the model on tokenized examples in length-sorted batches of `batch_size`; returns the
    /// decoded outputs in input order.
    pub fn decode(
        &mut self,
        toks: &[Tokenized],
        batch_size: usize,
    ) -> Result<Vec<Decoded>, PredictError> {
        decode_sorted(&mut self.session, &self.meta, self.pad_id, toks, batch_size)
    }

    /// The session (for measurement).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// [`MergedModel::decode`] on the model's parts (so that the tokenizer can be borrowed beside it).
fn decode_sorted(
    session: &mut Session,
    meta: &MergedMeta,
    pad_id: u32,
    toks: &[Tokenized],
    batch_size: usize,
) -> Result<Vec<Decoded>, PredictError> {
    let mut order: Vec<usize> = (0..toks.len()).collect();
    order.sort_by_key(|&i| (toks[i].ids.len(), i));
    let mut results = vec![Decoded::default(); toks.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
        let out = run_merged(
            session,
            &MergedInputs::new(&batch, pad_id),
            &meta.tasks,
            meta.format,
        )?;
        for (&i, d) in chunk.iter().zip(decode_outputs(&out, &batch)) {
            results[i] = d;
        }
    }
    Ok(results)
}

impl Predict for MergedModel {
    fn tasks(&self) -> &[TaskInfo] {
        &self.meta.tasks
    }

    fn predict_batch(&mut self, texts: &[&str]) -> Result<Vec<Prediction>, PredictError> {
        let (session, meta, pad_id) = (&mut self.session, &self.meta, self.pad_id);
        predict_lines(texts, &meta.tasks, &self.tokenizer, |batch| {
            decode_sorted(session, meta, pad_id, batch, BATCH)
        })
    }
}
