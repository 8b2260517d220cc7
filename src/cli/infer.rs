//! `edgetune infer`: a streaming filter from text lines to JSON lines.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use edgetune::backbone::Backbone;
use edgetune::data::split_words;
use edgetune::eval::spans;
use edgetune::infer::{run_examples, to_prediction, SlotSpan};
use edgetune::tokenize::WordTokenizer;

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
    let reader: Box<dyn BufRead> = match &a.input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| p.display().to_string())?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let interactive = a.input.is_none();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut pending: Vec<String> = Vec::new();
    let mut flush = |pending: &mut Vec<String>, out: &mut dyn Write| -> anyhow::Result<()> {
        let mut toks = Vec::with_capacity(pending.len());
        for text in pending.iter() {
            let words: Vec<String> = split_words(text)
                .into_iter()
                .map(|(s, e)| text[s..e].to_string())
                .collect();
            toks.push(tokenizer.encode_words(&words, &|| "input".into())?);
        }
        let idx: Vec<usize> = (0..pending.len())
            .filter(|&i| !toks[i].word_tokens.is_empty())
            .collect();
        let live: Vec<_> = idx.iter().map(|&i| toks[i].clone()).collect();
        let results = run_examples(&mut backbone, &heads, &rc.features.states, &live, 32)?;
        let mut results = idx.into_iter().zip(results).peekable();
        for (i, text) in pending.iter().enumerate() {
            let v = match results.peek() {
                Some((j, _)) if *j == i => {
                    let (_, (d, kept)) = results.next().expect("peeked");
                    answer(text, &heads, &d, &kept, toks[i].truncated, a.logits)
                }
                _ => json!({ "text": text, "error": "empty input" }),
            };
            writeln!(out, "{v}")?;
        }
        out.flush()?;
        pending.clear();
        Ok(())
    };
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| {
            format!(
                "{}: line {}: not UTF-8 text",
                a.input
                    .as_ref()
                    .map_or("stdin".into(), |p| p.display().to_string()),
                n + 1
            )
        })?;
        pending.push(line.trim_end_matches('\r').to_string());
        if interactive || pending.len() >= 64 {
            flush(&mut pending, &mut out)?;
        }
    }
    flush(&mut pending, &mut out)?;
    Ok(())
}
