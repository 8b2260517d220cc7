//! `edgetune infer`: a streaming filter from text lines to JSON lines.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use edgetune::backbone::SessionOptions;
use edgetune::infer::{StreamLine, StreamLineReader, MAX_LINE_BYTES};
use edgetune::{MergedModel, ModelPath, Predict, Prediction};

use super::common;
use super::common::Global;

/// Flags of `edgetune infer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub source: common::ModelArgs,
    /// Backbone override for --run (must be the one the run was trained on).
    #[arg(long, value_name = "PATH", requires = "run")]
    pub backbone: Option<PathBuf>,
    /// Input text file, one utterance per line (default: standard input, answered line by line).
    pub input: Option<PathBuf>,
    /// Also print each sentence task's logits (`NAME_logits`).
    #[arg(long)]
    pub logits: bool,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let source = a.source.model_path()?;
    if let Some(b) = &a.backbone {
        common::check_backbone(b, &["--run", "--model", "--backbone"])?;
    }
    if let Some(p) = a.input.as_deref().filter(|p| !p.exists()) {
        anyhow::bail!("input file {}: no such file", p.display());
    }
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
    let mut predictor: Box<dyn Predict> = match source {
        ModelPath::Merged(m) if profile => {
            let (model, t) = MergedModel::open_timed(&m, &opts)?;
            eprintln!(
                "startup: library {:.1} ms, metadata {:.1} ms, session {:.1} ms, tokenizer {:.1} ms (beside the session), open {:.1} ms",
                ms(library), ms(t.metadata), ms(t.session), ms(t.tokenizer), ms(t.total)
            );
            Box::new(model)
        }
        path => path.open(a.backbone.as_deref(), &opts)?,
    };
    let mut first = profile;
    stream_lines(a.input.as_deref(), a.logits, |texts| {
        let t = Instant::now();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let out = predictor.predict_batch(&refs);
        if std::mem::take(&mut first) {
            eprintln!(
                "first answer: {:.1} ms ({} lines); {:.1} ms since start",
                ms(t.elapsed()),
                texts.len(),
                ms(t0.elapsed())
            );
        }
        Ok(out?)
    })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One output line: a prediction, or a line that could not be read (`{"error", "line"}`).
enum Reply {
    Answer(Prediction),
    Bad(usize, String),
}

/// The streaming filter: reads text lines from `input` (or stdin, answered line by line, so it
/// works interactively), hands them to `predict_chunk` (up to 64 at a time from a file), and writes
/// the predictions' JSON (`logits`: with each sentence task's logits), one line each, in input
/// order. A line that is too long or not UTF-8 gets `{"line", "error"}` and the stream goes on.
fn stream_lines(
    input: Option<&Path>,
    logits: bool,
    mut predict_chunk: impl FnMut(&[String]) -> anyhow::Result<Vec<Prediction>>,
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
    let mut slots: Vec<Option<Reply>> = Vec::new();
    let mut lines = StreamLineReader::new(reader, MAX_LINE_BYTES);
    loop {
        let next = lines
            .next_line()
            .with_context(|| format!("reading {name}"))?;
        if let Some((n, line)) = next.as_ref() {
            match line {
                StreamLine::Text(t) => {
                    pending.push((slots.len(), t.clone()));
                    slots.push(None);
                }
                StreamLine::Bad(why) => slots.push(Some(Reply::Bad(*n, why.clone()))),
            }
        }
        if !slots.is_empty() && (next.is_none() || pending.len() >= chunk || pending.is_empty()) {
            let texts: Vec<String> = pending.iter().map(|(_, t)| t.clone()).collect();
            if !texts.is_empty() {
                for ((i, _), p) in pending.iter().zip(predict_chunk(&texts)?) {
                    slots[*i] = Some(Reply::Answer(p));
                }
            }
            for reply in slots.drain(..).flatten() {
                match reply {
                    Reply::Answer(p) => serde_json::to_writer(&mut out, &p.json(logits))?,
                    Reply::Bad(n, why) => {
                        serde_json::to_writer(&mut out, &json!({ "line": n, "error": why }))?
                    }
                }
                out.write_all(b"\n")?;
            }
            out.flush()?;
            pending.clear();
        }
        if next.is_none() {
            return Ok(());
        }
    }
}
