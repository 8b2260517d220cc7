//! `edgetune infer`: a streaming filter from text lines to JSON lines.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

use edgetune::backbone::SessionOptions;
use edgetune::infer::{Line, LineReader, RunPredictor, MAX_LINE_BYTES};
use edgetune::onnx::merged::MergedModel;

use super::common;
use super::common::Global;

/// Flags of `edgetune infer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub source: common::ModelArgs,
    /// Input text file, one utterance per line (default: standard input, answered line by line).
    pub input: Option<PathBuf>,
    /// Also print each sentence task's logits (`NAME_logits`).
    #[arg(long)]
    pub logits: bool,
}

/// What answers the lines.
enum Answerer {
    Run(Box<RunPredictor>),
    Merged(Box<MergedModel>),
}

impl Answerer {
    fn answer(&mut self, texts: &[String], logits: bool) -> anyhow::Result<Vec<Value>> {
        Ok(match self {
            Answerer::Run(p) => p.answer_lines(texts, logits)?,
            Answerer::Merged(m) => m.answer_lines(texts, logits)?,
        })
    }
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let threads = common::setup_threads(g)?;
    // EDGETUNE_PROFILE: the start-up phases and the first answer's time on stderr.
    let profile = std::env::var_os("EDGETUNE_PROFILE").is_some();
    let t0 = Instant::now();
    if profile {
        edgetune::backbone::init_runtime(g.ort_lib.as_deref())?;
    } else {
        common::init_runtime(g)?;
    }
    let library = t0.elapsed();
    let opts = SessionOptions::with_threads(threads);
    let mut answerer = match (&a.source.model, &a.source.run) {
        (Some(m), _) => {
            let (model, t) = MergedModel::open_timed(m, &opts)?;
            if profile {
                eprintln!(
                    "startup: library {:.1} ms, metadata {:.1} ms, session {:.1} ms, tokenizer {:.1} ms (beside the session), open {:.1} ms",
                    ms(library), ms(t.metadata), ms(t.session), ms(t.tokenizer), ms(t.total)
                );
            }
            Answerer::Merged(Box::new(model))
        }
        (None, Some(r)) => Answerer::Run(Box::new(RunPredictor::open(
            r,
            a.source.backbone.as_deref(),
            &opts,
        )?)),
        (None, None) => anyhow::bail!("--run RUN or --model MERGED.onnx is required"),
    };
    let mut first = profile;
    stream_lines(a.input.as_deref(), |texts| {
        let t = Instant::now();
        let out = answerer.answer(texts, a.logits);
        if std::mem::take(&mut first) {
            eprintln!(
                "first answer: {:.1} ms ({} lines); {:.1} ms since start",
                ms(t.elapsed()),
                texts.len(),
                ms(t0.elapsed())
            );
        }
        out
    })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The streaming filter: reads text lines from `input` (or stdin, answered line by line, so it
/// works interactively), hands them to `answer_chunk` (up to 64 at a time from a file), and writes
/// the JSON values it returns, one line each, in input order. A line that is too long or not UTF-8
/// gets `{"line", "error"}` and the stream goes on.
fn stream_lines(
    input: Option<&Path>,
    mut answer_chunk: impl FnMut(&[String]) -> anyhow::Result<Vec<Value>>,
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
    // Answers in input order: text lines wait in `pending`, bad lines are answered in place.
    let mut pending: Vec<(usize, String)> = Vec::new();
    let mut slots: Vec<Option<Value>> = Vec::new();
    let mut lines = LineReader::new(reader, MAX_LINE_BYTES);
    loop {
        let next = lines
            .next_line()
            .with_context(|| format!("reading {name}"))?;
        if let Some((n, line)) = next.as_ref() {
            match line {
                Line::Text(t) => {
                    pending.push((slots.len(), t.clone()));
                    slots.push(None);
                }
                Line::Bad(why) => slots.push(Some(json!({ "line": n, "error": why }))),
            }
        }
        if !slots.is_empty() && (next.is_none() || pending.len() >= chunk || pending.is_empty()) {
            let texts: Vec<String> = pending.iter().map(|(_, t)| t.clone()).collect();
            if !texts.is_empty() {
                for ((i, _), v) in pending.iter().zip(answer_chunk(&texts)?) {
                    slots[*i] = Some(v);
                }
            }
            for v in slots.drain(..).flatten() {
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
