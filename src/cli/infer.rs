//! `edgetune infer`: a streaming filter from text lines to JSON lines.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use edgetune::backbone::Backbone;
use edgetune::data::split_words;
use edgetune::eval::spans;
use edgetune::infer::{run_examples, to_prediction, SlotSpan};
use edgetune::tokenize::{Tokenized, WordTokenizer};

use super::common;
use super::Global;

/// Flags of `edgetune infer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finished run directory.
    #[arg(long, value_name = "RUN", required_unless_present = "model_file")]
    pub run: Option<PathBuf>,
    /// A merged model exported by `edgetune export` (with tokenizer.json beside it) instead of a run.
    #[arg(long = "model", value_name = "MERGED.onnx", conflicts_with = "run")]
    pub model_file: Option<PathBuf>,
    /// Backbone override for --run (must be the one the run was trained on).
    #[arg(long, value_name = "PATH", requires = "run")]
    pub backbone: Option<PathBuf>,
    /// Input text file, one utterance per line (default: standard input, answered line by line).
    pub input: Option<PathBuf>,
    /// Also print the intent logits.
    #[arg(long)]
    pub logits: bool,
}

/// One input line's answer.
pub(super) fn answer(
    text: &str,
    heads: &edgetune::heads::Heads,
    d: &edgetune::infer::Decoded,
    kept: &[bool],
    truncated: bool,
    logits: bool,
) -> serde_json::Value {
    let words = split_words(text);
    let pred = to_prediction(heads, d, kept);
    let mut v = json!({ "text": text });
    if let (Some(label), Some((_, p, l))) = (&pred.intent, &d.intent) {
        v["intent"] = json!({ "label": label, "prob": p });
        if logits {
            v["intent_logits"] = json!(l);
        }
    }
    if let (Some(tags), Some(probs)) = (&pred.tags, &d.tag_probs) {
        let slots: Vec<SlotSpan> = spans(tags)
            .into_iter()
            .map(|s| {
                let (cs, ce) = (words[s.start].0, words[s.end - 1].1);
                let prob = (s.start..s.end)
                    .map(|w| {
                        let id = heads
                            .config
                            .tags
                            .iter()
                            .position(|t| *t == tags[w])
                            .unwrap_or(0);
                        probs[w][id]
                    })
                    .sum::<f32>()
                    / (s.end - s.start) as f32;
                SlotSpan {
                    kind: s.kind,
                    text: text[cs..ce].to_string(),
                    start: s.start,
                    end: s.end,
                    char_start: cs,
                    char_end: ce,
                    prob,
                }
            })
            .collect();
        v["slots"] = json!(slots);
    }
    if truncated {
        v["truncated"] = json!(true);
    }
    v
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let threads = common::setup_threads(g)?;
    if let Some(merged) = &a.model_file {
        return super::merged::infer(g, threads, merged, a.input.as_deref(), a.logits);
    }
    let run_dir = a.run.as_ref().expect("clap requires --run or --model");
    let (rc, heads) = edgetune::run::load_run(run_dir)?;
    common::init_runtime(g)?;
    let files = common::run_model(&rc, a.backbone.as_deref())?;
    let tokenizer = WordTokenizer::from_file(&files.tokenizer, Some(rc.backbone.max_tokens))?;
    let mut states = rc.features.states.clone();
    if !states.contains(&rc.backbone.layers) {
        states.push(rc.backbone.layers);
    }
    let mut backbone = Backbone::load(
        &files,
        &states,
        tokenizer.pad_id(),
        &common::session_config(threads),
    )?;
    let states = rc.features.states.clone();
    stream_lines(a.input.as_deref(), |texts| {
        let toks = texts
            .iter()
            .map(|t| encode_line(&tokenizer, t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let idx: Vec<usize> = (0..texts.len())
            .filter(|&i| !toks[i].word_tokens.is_empty())
            .collect();
        let live: Vec<Tokenized> = idx.iter().map(|&i| toks[i].clone()).collect();
        let mut results = idx
            .into_iter()
            .zip(run_examples(&mut backbone, &heads, &states, &live, 32)?)
            .peekable();
        Ok(texts
            .iter()
            .enumerate()
            .map(|(i, text)| match results.peek() {
                Some((j, _)) if *j == i => {
                    let (_, (d, kept)) = results.next().expect("peeked");
                    answer(text, &heads, &d, &kept, toks[i].truncated, a.logits)
                }
                _ => json!({ "text": text, "error": "empty input" }),
            })
            .collect())
    })
}

/// Words of a raw input line (whitespace-separated, see [`split_words`]), tokenized.
pub(super) fn encode_line(tokenizer: &WordTokenizer, text: &str) -> anyhow::Result<Tokenized> {
    let words: Vec<String> = split_words(text)
        .into_iter()
        .map(|(s, e)| text[s..e].to_string())
        .collect();
    Ok(tokenizer.encode_words(&words, &|| "input".into())?)
}

/// The streaming filter shared by both `infer` modes: reads text lines from `input` (or stdin,
/// answered line by line, so it works interactively), hands them to `answer_chunk` (up to 64 at a
/// time from a file), and writes the JSON values it returns, one line each, in input order.
pub(super) fn stream_lines(
    input: Option<&Path>,
    mut answer_chunk: impl FnMut(&[String]) -> anyhow::Result<Vec<serde_json::Value>>,
) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = match input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| p.display().to_string())?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let name = input.map_or("stdin".into(), |p| p.display().to_string());
    let chunk = if input.is_none() { 1 } else { 64 };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut pending: Vec<String> = Vec::new();
    let mut lines = reader.lines().enumerate();
    loop {
        let next = lines.next();
        if let Some((n, line)) = &next {
            let line = line
                .as_ref()
                .map_err(|e| anyhow::anyhow!("{name}: line {}: not UTF-8 text ({e})", n + 1))?;
            pending.push(line.trim_end_matches('\r').to_string());
        }
        if !pending.is_empty() && (next.is_none() || pending.len() >= chunk) {
            for v in answer_chunk(&pending)? {
                writeln!(out, "{v}")?;
            }
            out.flush()?;
            pending.clear();
        }
        if next.is_none() {
            return Ok(());
        }
    }
}
