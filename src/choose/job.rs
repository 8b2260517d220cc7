//! The comparison, step by step: the data written once for every candidate, then per candidate
//! training, export and the two measurements, each in a child `edgetune` process; then the
//! decision and its files (`choose.json`, `choose.txt`, `pareto.svg/.png/.json`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::candidates::{slug, Candidate};
use super::child::{run_child, ChildRun};
use super::error::ChooseError;
use super::measure::{AnswerFigures, ExtractionFigures};
use super::summary::{chart, decide, table, CandidateResult, Choice, Device, Limits};
use crate::data::{load_dataset, Dataset, ReadOptions, Split};
use crate::fsutil;
use crate::progress::fmt_duration;

/// What to compare and how (validated by the command line).
#[derive(Debug, Clone)]
pub struct ChooseOptions {
    /// The `edgetune` executable the steps run in.
    pub exe: PathBuf,
    /// Global flags passed to every child (`--threads N`, `--ort-lib PATH`).
    pub global_args: Vec<String>,
    /// The dataset folder.
    pub data: PathBuf,
    /// The candidates, in order.
    pub candidates: Vec<Candidate>,
    /// The output folder (runs, data, table, JSON, picture).
    pub out: PathBuf,
    /// Write into an output folder that already holds files.
    pub force: bool,
    /// Train on the first N training examples (and N/3, at least 20, of valid and test).
    pub limit: Option<usize>,
    /// The device's limits.
    pub limits: Limits,
    /// Batch-1 answers timed per candidate.
    pub predictions: usize,
    /// Epochs (default: training's own).
    pub epochs: Option<usize>,
    /// Seed of training (the same for every candidate).
    pub seed: u64,
    /// Feature cache folder (default: training's own).
    pub cache_dir: Option<PathBuf>,
    /// Threads each child uses (for the record).
    pub threads: usize,
    /// Progress on stderr (the children's own lines, prefixed).
    pub progress: bool,
}

/// Files `choose` writes into its output folder.
pub const CHOICE_JSON: &str = "choose.json";
/// The table and recommendation as text.
pub const CHOICE_TXT: &str = "choose.txt";
/// Stem of the Pareto picture.
pub const PARETO_STEM: &str = "pareto";

/// Runs the comparison and writes its files into `o.out`; returns the result.
pub fn choose(o: &ChooseOptions) -> Result<Choice, ChooseError> {
    prepare_out(&o.out, o.force)?;
    let data_dir = o.out.join("data");
    let dataset = load_dataset(&o.data, &ReadOptions::default(), 0.1, o.seed)?;
    let sentences = write_data(&dataset, o.limit, &data_dir)?;
    let mut choice = Choice {
        device: Device {
            cpu: crate::sys::cpu_model(),
            arch: std::env::consts::ARCH.to_string(),
            threads: o.threads,
        },
        data: o.data.clone(),
        limit: o.limit,
        limits: o.limits,
        ..Choice::default()
    };
    let start = Instant::now();
    let n = o.candidates.len();
    for (i, c) in o.candidates.iter().enumerate() {
        let eta = if i == 0 {
            "ETA after the first candidate".to_string()
        } else {
            let per = start.elapsed().as_secs_f64() / i as f64;
            format!("ETA {}", fmt_duration(per * (n - i) as f64))
        };
        note(
            o,
            &format!(
                "[{}/{n}] {} ({} elapsed, {eta})",
                i + 1,
                c.name,
                fmt_duration(start.elapsed().as_secs_f64())
            ),
        );
        let dir = o
            .out
            .join("runs")
            .join(format!("{:02}-{}", i + 1, slug(&c.name)));
        let mut r = CandidateResult {
            name: c.name.clone(),
            backbone: c.backbone.clone(),
            unfreeze_top: c.unfreeze_top,
            backbone_bytes: std::fs::metadata(&c.files.onnx).ok().map(|m| m.len()),
            ..CandidateResult::default()
        };
        if let Err(e) = candidate(o, c, &data_dir, &sentences, &dir, &mut r) {
            note(o, &format!("  {} failed: {e}", c.name));
            r.error = Some(e.to_string());
        }
        choice.candidates.push(r);
    }
    decide(&mut choice);
    write_outputs(&o.out, &choice)?;
    note(
        o,
        &format!(
            "compared {n} candidates in {}",
            fmt_duration(start.elapsed().as_secs_f64())
        ),
    );
    Ok(choice)
}

fn note(o: &ChooseOptions, s: &str) {
    if o.progress {
        eprintln!("choose: {s}");
    }
}

/// The sentence files the measuring children read.
struct Sentences {
    /// Validation utterances (latency).
    answers: PathBuf,
    /// Training utterances, at most 256 (extraction throughput).
    extraction: PathBuf,
}

/// Refuses a used output folder without `force`; with it, removes what an earlier `choose`
/// wrote there (its `runs/` and `data/` folders and its files), nothing else.
fn prepare_out(out: &Path, force: bool) -> Result<(), ChooseError> {
    if out.exists() && !out.is_dir() {
        return Err(ChooseError::Invalid(format!(
            "--out {}: is a file",
            out.display()
        )));
    }
    let used = std::fs::read_dir(out)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if used && !force {
        return Err(ChooseError::Invalid(format!(
            "--out {}: the folder already holds files; pass --force to replace an earlier comparison there",
            out.display()
        )));
    }
    for sub in ["runs", "data"] {
        let p = out.join(sub);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::remove_file(&p).map_err(|e| ChooseError::io(&p, e))?
            }
            Ok(_) => std::fs::remove_dir_all(&p).map_err(|e| ChooseError::io(&p, e))?,
            Err(_) => {}
        }
    }
    std::fs::create_dir_all(out.join("runs")).map_err(|e| ChooseError::io(out, e))
}

/// Writes the (limited) splits as JSON lines into `dir`, and the sentence files.
fn write_data(d: &Dataset, limit: Option<usize>, dir: &Path) -> Result<Sentences, ChooseError> {
    std::fs::create_dir_all(dir).map_err(|e| ChooseError::io(dir, e))?;
    let cut = |s: &Split, n: Option<usize>| -> Vec<String> {
        let n = n.unwrap_or(usize::MAX);
        s.examples.iter().take(n).map(example_json).collect()
    };
    let (n_train, n_eval) = match limit {
        Some(n) if n > 0 => (Some(n), Some((n / 3).max(20))),
        _ => (None, None),
    };
    let mut splits = vec![
        ("train", cut(&d.train, n_train)),
        ("valid", cut(&d.valid, n_eval)),
    ];
    if let Some(t) = &d.test {
        splits.push(("test", cut(t, n_eval)));
    }
    for (name, lines) in &splits {
        let p = dir.join(format!("{name}.jsonl"));
        fsutil::write_atomic(&p, (lines.join("\n") + "\n").as_bytes())
            .map_err(|e| ChooseError::io(&p, e))?;
    }
    let text = |s: &Split, n: usize| -> String {
        s.examples
            .iter()
            .take(n)
            .map(|e| e.words.join(" ") + "\n")
            .collect()
    };
    let answers = dir.join("answer-sentences.txt");
    let extraction = dir.join("extraction-sentences.txt");
    for (p, t) in [
        (
            &answers,
            text(&d.valid, n_eval.unwrap_or(usize::MAX).min(200)),
        ),
        (&extraction, text(&d.train, 256)),
    ] {
        fsutil::write_atomic(p, t.as_bytes()).map_err(|e| ChooseError::io(p, e))?;
    }
    Ok(Sentences {
        answers,
        extraction,
    })
}

/// One example as a JSON line: `words` and every task's label(s).
fn example_json(e: &crate::data::Example) -> String {
    let mut m = serde_json::Map::new();
    m.insert("words".into(), serde_json::json!(e.words));
    for (k, v) in &e.labels.sentence {
        m.insert(k.clone(), serde_json::json!(v));
    }
    for (k, v) in &e.labels.token {
        m.insert(k.clone(), serde_json::json!(v));
    }
    serde_json::Value::Object(m).to_string()
}

fn child(o: &ChooseOptions) -> Command {
    let mut c = Command::new(&o.exe);
    c.args(&o.global_args);
    c
}

/// Entries in the feature cache (to tell whether training extracted).
fn cache_entries(o: &ChooseOptions) -> usize {
    let dir = o
        .cache_dir
        .clone()
        .unwrap_or_else(crate::features::default_cache_dir);
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Trains, exports and measures one candidate into `r`.
fn candidate(
    o: &ChooseOptions,
    c: &Candidate,
    data: &Path,
    s: &Sentences,
    dir: &Path,
    r: &mut CandidateResult,
) -> Result<(), ChooseError> {
    let prefix = format!("  {} | ", c.name);
    let before = cache_entries(o);
    let train = run_child(train_command(o, c, data, dir), &prefix, o.progress)?;
    r.extracted = Some(cache_entries(o) > before);
    r.peak_rss_training = Some(train.peak_rss);
    r.train_seconds = Some(train.wall.as_secs_f64());
    r.run = Some(dir.to_path_buf());
    let rc = crate::run::read_config(dir).map_err(|e| ChooseError::Measure(e.to_string()))?;
    if let Some(v) = rc.metrics.get("valid") {
        r.score = Some(v.score());
        r.tasks = v
            .tasks
            .iter()
            .filter_map(|(k, t)| t.headline().map(|h| (k.clone(), h)))
            .collect();
        r.valid = Some(v.clone());
    }
    r.test = rc.metrics.get("test").cloned();

    let model = dir.join("merged").join("model.onnx");
    let mut export = child(o);
    export
        .arg("export")
        .arg("--run")
        .arg(dir)
        .arg("--out")
        .arg(&model);
    run_child(export, &prefix, o.progress)?;
    r.model_bytes = std::fs::metadata(&model).ok().map(|m| m.len());
    r.model = Some(model.clone());

    let mut answer = child(o);
    answer
        .args(["choose", "--measure-model"])
        .arg(&model)
        .arg("--sentences")
        .arg(&s.answers)
        .arg("--predictions")
        .arg(o.predictions.to_string());
    let run = run_child(answer, &prefix, o.progress)?;
    let a: AnswerFigures = last_json(&run)?;
    r.cold_start_ms = run.line_times.first().map(|d| d.as_secs_f64() * 1e3);
    r.p50_ms = Some(a.p50_ms);
    r.p99_ms = Some(a.p99_ms);
    r.peak_rss_answering = Some(run.peak_rss);

    let mut extract = child(o);
    extract
        .args(["choose", "--measure-backbone"])
        .arg(&c.files.onnx)
        .arg("--sentences")
        .arg(&s.extraction);
    let x: ExtractionFigures = last_json(&run_child(extract, &prefix, o.progress)?)?;
    r.extraction_per_s = Some(x.per_s);
    r.extraction_per_cpu_s = Some(x.per_cpu_s);
    Ok(())
}

fn train_command(o: &ChooseOptions, c: &Candidate, data: &Path, dir: &Path) -> Command {
    let mut t = child(o);
    t.arg("train")
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(dir)
        .arg("--backbone")
        .arg(&c.files.onnx)
        .args(["--seed", &o.seed.to_string(), "--json"]);
    if !o.progress {
        t.arg("-q");
    }
    if let Some(e) = o.epochs {
        t.args(["--epochs", &e.to_string()]);
    }
    if let Some(d) = &o.cache_dir {
        t.arg("--cache-dir").arg(d);
    }
    if c.unfreeze_top > 0 {
        t.args(["--unfreeze-top", &c.unfreeze_top.to_string()]);
        if let Some(h) = &c.hf_weights {
            t.arg("--hf-weights").arg(h);
        }
    }
    t
}

/// The last line of a child's stdout, as JSON.
fn last_json<T: serde::de::DeserializeOwned>(run: &ChildRun) -> Result<T, ChooseError> {
    let line = run.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|e| ChooseError::Measure(format!("unreadable measurement {line:?}: {e}")))
}

fn write_outputs(out: &Path, choice: &Choice) -> Result<(), ChooseError> {
    let json =
        serde_json::to_string_pretty(choice).map_err(|e| ChooseError::Invalid(e.to_string()))?;
    for (name, bytes) in [
        (CHOICE_JSON, json.into_bytes()),
        (CHOICE_TXT, table(choice).into_bytes()),
    ] {
        let p = out.join(name);
        fsutil::write_atomic(&p, &bytes).map_err(|e| ChooseError::io(&p, e))?;
    }
    crate::report::write_pareto(&out.join(PARETO_STEM), &chart(choice))?;
    Ok(())
}
