//! Inference with a trained run: features straight from the backbone (no cache), the task model,
//! decoding to labels and JSON answers.

use std::path::Path;

use candle_core::Device;
use serde_json::{json, Value};

use super::answer::answer;
use super::error::InferError;
use crate::backbone::{Backbone, SessionOptions};
use crate::data::TaskInfo;
use crate::features::{example_rows, token_rows, ExampleRows, TokenRows};
use crate::model::{decode_batch, make_batch, make_token_batch, Decoded, TaskModel};
use crate::run::{self, RunConfig};
use crate::tokenize::{Tokenized, WordTokenizer};

/// Sentences per backbone batch.
pub const BATCH: usize = 32;

/// A run loaded for inference: its model, its backbone and tokenizer.
pub struct RunPredictor {
    /// The run's config.
    pub rc: RunConfig,
    /// The task model.
    pub model: TaskModel,
    /// The tasks as the answers name them.
    pub tasks: Vec<TaskInfo>,
    /// The run's tokenizer, truncating at its token limit.
    pub tokenizer: WordTokenizer,
    backbone: Backbone,
}

impl RunPredictor {
    /// Loads the run in `dir` and its backbone (`backbone`: an override, which must be the file the
    /// run was trained on).
    pub fn open(
        dir: &Path,
        backbone: Option<&Path>,
        opts: &SessionOptions,
    ) -> Result<Self, InferError> {
        let (rc, model) = run::load_run(dir)?;
        Self::new(rc, model, backbone, opts)
    }

    /// A predictor for an already loaded run.
    pub fn new(
        rc: RunConfig,
        model: TaskModel,
        backbone: Option<&Path>,
        opts: &SessionOptions,
    ) -> Result<Self, InferError> {
        let files = run::backbone_files(&rc, backbone)?;
        let tokenizer = WordTokenizer::from_file(&files.tokenizer, Some(rc.backbone.max_tokens))?;
        let mut states = rc.features.states.clone();
        if !states.contains(&rc.backbone.layers) {
            states.push(rc.backbone.layers);
        }
        let backbone = Backbone::load(&files, &states, tokenizer.pad_id(), opts)?;
        let tasks = model.config.tasks.iter().map(|t| t.info()).collect();
        Ok(Self {
            rc,
            model,
            tasks,
            tokenizer,
            backbone,
        })
    }

    /// Swaps in another model of the same run layout (new heads after retraining).
    pub fn replace_model(&mut self, rc: RunConfig, model: TaskModel) {
        self.tasks = model.config.tasks.iter().map(|t| t.info()).collect();
        self.rc = rc;
        self.model = model;
    }

    /// Runs the backbone and the model over tokenized examples in length-sorted batches; returns
    /// the decoded outputs and per-example kept-word flags, in input order.
    pub fn decode(&mut self, toks: &[Tokenized]) -> Result<Vec<(Decoded, Vec<bool>)>, InferError> {
        decode_examples(
            &mut self.backbone,
            &self.model,
            &self.rc.features.states,
            toks,
            BATCH,
        )
    }

    /// Answers text lines: one JSON value each, in order; an empty line gets `{"text", "error"}`.
    pub fn answer_lines(
        &mut self,
        texts: &[String],
        logits: bool,
    ) -> Result<Vec<Value>, InferError> {
        let toks = texts
            .iter()
            .map(|t| self.tokenizer.encode_text(t, &|| "input".into()))
            .collect::<Result<Vec<_>, _>>()?;
        let live: Vec<usize> = (0..texts.len())
            .filter(|&i| !toks[i].word_tokens.is_empty())
            .collect();
        let batch: Vec<Tokenized> = live.iter().map(|&i| toks[i].clone()).collect();
        let decoded = self.decode(&batch)?;
        let mut out: Vec<Value> = texts
            .iter()
            .map(|t| json!({ "text": t, "error": "empty input" }))
            .collect();
        for (&i, (d, kept)) in live.iter().zip(decoded) {
            out[i] = answer(&texts[i], &self.tasks, &d, &kept, toks[i].truncated, logits);
        }
        Ok(out)
    }
}

/// Runs the backbone and model over tokenized examples in batches of `batch_size`, sorted by length;
/// returns decoded outputs and per-example kept-word flags in input order.
pub fn decode_examples(
    backbone: &mut Backbone,
    model: &TaskModel,
    states: &[usize],
    toks: &[Tokenized],
    batch_size: usize,
) -> Result<Vec<(Decoded, Vec<bool>)>, InferError> {
    let (positions, last) = backbone.positions(states)?;
    let mut order: Vec<usize> = (0..toks.len()).collect();
    order.sort_by_key(|&i| (toks[i].ids.len(), i));
    let mut results: Vec<(Decoded, Vec<bool>)> = vec![(Decoded::default(), Vec::new()); toks.len()];
    let dev = Device::Cpu;
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
        let out = backbone.run(&batch)?;
        if model.top.is_some() {
            // Unfrozen top layers: they run on the token states, then pool to words.
            let rows: Vec<TokenRows> = (0..chunk.len())
                .map(|r| token_rows(&out, r, batch[r], &positions))
                .collect();
            let refs: Vec<&TokenRows> = rows.iter().collect();
            let tb = make_token_batch(&refs, states.len(), backbone.hidden, &dev)?;
            let b = model.token_inputs(&tb, None)?;
            let words: Vec<usize> = rows.iter().map(|r| r.word_tokens.len()).collect();
            let decoded = decode_batch(model, &b, &words)?;
            for (&i, d) in chunk.iter().zip(decoded) {
                let kept = toks[i].word_tokens.iter().map(|(s, e)| e > s).collect();
                results[i] = (d, kept);
            }
            continue;
        }
        let rows: Vec<ExampleRows> = (0..chunk.len())
            .map(|r| example_rows(&out, r, batch[r], &positions, last))
            .collect();
        let refs: Vec<&ExampleRows> = rows.iter().collect();
        let b = make_batch(&refs, states.len(), backbone.hidden, &dev)?;
        let words: Vec<usize> = rows.iter().map(|r| r.words).collect();
        let decoded = decode_batch(model, &b, &words)?;
        for (&i, d) in chunk.iter().zip(decoded) {
            let kept = toks[i].word_tokens.iter().map(|(s, e)| e > s).collect();
            results[i] = (d, kept);
        }
    }
    Ok(results)
}
