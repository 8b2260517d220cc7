//! Pieces shared by several subcommands, and the conventions every subcommand follows
//! (docs/cli.md is the user's version of this list):
//!
//! - **One vocabulary.** `--backbone PATH` is always a backbone (a model folder or a backbone
//!   `.onnx` with `tokenizer.json` beside it), `--model MERGED.onnx` always a merged model written
//!   by `edgetune export`, `--run RUN` always a run folder. A path given to the wrong flag is
//!   refused with the flag to use ([`check_run`], [`check_model`], [`check_backbone`]): "runs/demo
//!   is a run folder; use --run runs/demo". Answering commands take [`ModelArgs`].
//! - **Global flags** ([`Global`]) work before or after the subcommand: `--threads`, `--ort-lib`,
//!   `--json`, `-q/--quiet`.
//! - **`--json`**: the command prints exactly one JSON object on stdout (commands that stream,
//!   `infer` and `serve`, print one JSON object per line as always); a failure prints
//!   `{"error": MESSAGE}` on stdout (and the message on stderr), exit code 1 (2 for a flag clap
//!   refuses). Progress and notes stay on stderr.
//! - **`-q`**: no progress and no notes on stderr; warnings and errors still print.
//! - **`--spinning [WHEN]`**: the same syntax everywhere: `true` (also the flag alone), `in-run`
//!   or `false`; only the default differs (`bench`: true, `serve`: in-run).
//! - **Renamed flags** stay as hidden aliases; using one prints a one-line note ([`LEGACY`],
//!   [`deprecation_notes`]).
//! - **Errors** name the flag or file they came from, once ([`error_text`]); nothing is printed
//!   after a fatal error.

use std::path::{Path, PathBuf};

use anyhow::bail;

use edgetune::backbone::{default_threads, ModelFiles, SessionOptions};
use edgetune::features::{default_cache_dir, FeatureContext};
use edgetune::onnx::merged::MergedMeta;
use edgetune::ModelPath;

/// Global flags shared by every subcommand (before or after its name).
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Path to ONNX Runtime's shared library (default: $EDGETUNE_ORT_LIB, then the set-up location).
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<std::path::PathBuf>,
    /// Threads for ONNX Runtime's intra-op pool, candle/rayon and the tokenizer together
    /// (default and maximum: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Machine output: one JSON object on stdout (`infer`/`serve`: one per line), errors as
    /// `{"error": MESSAGE}`; schemas in docs/cli.md.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress and no notes on stderr (warnings and errors still print).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

/// What answers: a finished run or a merged model (`infer`, `serve`, `actions check`, ...).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "source", required = true, multiple = false)]
pub struct ModelArgs {
    /// A finished run folder (`edgetune train --out`).
    #[arg(long, value_name = "RUN", group = "source")]
    pub run: Option<PathBuf>,
    /// A merged model written by `edgetune export` (tokenizer.json beside it).
    #[arg(long, value_name = "MERGED.onnx", group = "source")]
    pub model: Option<PathBuf>,
}

impl ModelArgs {
    /// The model `--run` or `--model` names, after checking that the path is of that kind.
    pub fn model_path(&self) -> anyhow::Result<ModelPath> {
        model_path(self.run.as_ref(), self.model.as_ref())
    }
}

/// The model of a `--run` / `--model` pair of flags (one of them given), each path checked to be
/// of its flag's kind.
pub fn model_path(run: Option<&PathBuf>, model: Option<&PathBuf>) -> anyhow::Result<ModelPath> {
    const FLAGS: &[&str] = &["--run", "--model", "--backbone"];
    match (run, model) {
        (Some(r), _) => {
            check_run(r, FLAGS)?;
            Ok(ModelPath::Run(r.clone()))
        }
        (None, Some(m)) => {
            check_model(m, FLAGS)?;
            Ok(ModelPath::Merged(m.clone()))
        }
        (None, None) => bail!("--run RUN or --model MERGED.onnx is required"),
    }
}

/// What a path holds, as far as a cheap look tells (no weights are read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Nothing there.
    Missing,
    /// A finished run folder (`config.json` and `heads.safetensors`).
    Run,
    /// A merged model (an `.onnx` file whose metadata `edgetune export` wrote).
    Merged,
    /// A backbone: a model folder (manifest.json or backbone*.onnx) or an `.onnx` file with
    /// `tokenizer.json` beside it that is not a merged model.
    Backbone,
    /// A Hugging Face checkpoint folder (config.json and model.safetensors).
    Checkpoint,
    /// Another folder.
    OtherDir,
    /// Another file.
    OtherFile,
}

impl PathKind {
    /// Looks at `p`.
    pub fn of(p: &Path) -> Self {
        let Ok(meta) = std::fs::metadata(p) else {
            return Self::Missing;
        };
        if meta.is_dir() {
            let has = |f: &str| p.join(f).is_file();
            if has(edgetune::run::CONFIG_FILE) && has(edgetune::run::WEIGHTS_FILE) {
                Self::Run
            } else if has("manifest.json") || has("backbone.onnx") || has("backbone.int8.onnx") {
                Self::Backbone
            } else if has("config.json") && has("model.safetensors") {
                Self::Checkpoint
            } else {
                Self::OtherDir
            }
        } else if p.extension().is_some_and(|e| e == "onnx") {
            if MergedMeta::from_file(p).is_ok() {
                Self::Merged
            } else if p.with_file_name("tokenizer.json").is_file() {
                Self::Backbone
            } else {
                Self::OtherFile
            }
        } else {
            Self::OtherFile
        }
    }

    /// The flag that takes this kind of path, and what it is in words.
    fn flag(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Run => Some(("--run", "a run folder")),
            Self::Merged => Some(("--model", "a merged model")),
            Self::Backbone => Some(("--backbone", "a backbone")),
            _ => None,
        }
    }
}

/// The error for `path` given to `flag` while it is of `kind`: names the flag to use when the
/// command has it (`accepted`), else says what the flag takes.
fn wrong_kind(flag: &str, takes: &str, path: &Path, kind: PathKind, accepted: &[&str]) -> String {
    let p = path.display();
    match kind.flag() {
        Some((right, what)) if accepted.contains(&right) => format!("{p} is {what}; use {right} {p}"),
        Some((_, what)) => format!("{flag} {p}: this is {what}, but {flag} takes {takes}"),
        None if kind == PathKind::Checkpoint => format!(
            "{flag} {p}: this is a Hugging Face checkpoint; convert it with `edgetune import {p} --out DIR` and pass --backbone DIR"
        ),
        None if kind == PathKind::Missing => format!("{flag} {p}: no such file or folder"),
        None => format!("{flag} {p}: not {takes}"),
    }
}

/// Checks that `path` given to `--run` is a run folder (a folder that is no run is left to the
/// run's loader, which says what is missing). `accepted`: the command's flags among `--run`,
/// `--model`, `--backbone`.
pub fn check_run(path: &Path, accepted: &[&str]) -> anyhow::Result<()> {
    match PathKind::of(path) {
        PathKind::Run | PathKind::OtherDir => Ok(()),
        PathKind::Missing => bail!(
            "--run {}: not a finished edgetune run (no such folder)",
            path.display()
        ),
        kind => bail!(wrong_kind("--run", "a run folder", path, kind, accepted)),
    }
}

/// Checks that `path` given to `--model` is a merged model; a file that cannot be read as one is
/// refused with the reason.
pub fn check_model(path: &Path, accepted: &[&str]) -> anyhow::Result<()> {
    match PathKind::of(path) {
        PathKind::Merged => Ok(()),
        PathKind::OtherFile => {
            let why = match MergedMeta::from_file(path) {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            };
            let prefix = format!("{}: ", path.display());
            bail!(
                "--model {}: not a merged model written by `edgetune export`: {}",
                path.display(),
                why.strip_prefix(&prefix).unwrap_or(&why)
            )
        }
        kind => bail!(wrong_kind(
            "--model",
            "a merged model (edgetune export's .onnx)",
            path,
            kind,
            accepted
        )),
    }
}

/// Checks that `path` given to `--backbone` is a backbone (a model folder or an `.onnx` file).
pub fn check_backbone(path: &Path, accepted: &[&str]) -> anyhow::Result<()> {
    match PathKind::of(path) {
        PathKind::Backbone | PathKind::OtherFile => Ok(()),
        kind => bail!(wrong_kind(
            "--backbone",
            "a backbone (a model folder, or an .onnx file with tokenizer.json beside it)",
            path,
            kind,
            accepted
        )),
    }
}

/// A renamed flag: `old` of `command` still works (hidden) and prints a note naming `new`.
pub struct Legacy {
    /// The subcommand (`train`).
    pub command: &'static str,
    /// The old spelling (`--slot-gru`).
    pub old: &'static str,
    /// What to write instead (`--gru-units`).
    pub new: &'static str,
}

/// Every renamed flag.
pub const LEGACY: &[Legacy] = &[
    Legacy {
        command: "train",
        old: "--model",
        new: "--backbone",
    },
    Legacy {
        command: "train",
        old: "--slot-gru",
        new: "--gru-units",
    },
    Legacy {
        command: "train",
        old: "--intent-hidden",
        new: "--mlp-width",
    },
    Legacy {
        command: "train",
        old: "--intent-reads-slots",
        new: "--sentence-reads-tokens",
    },
    Legacy {
        command: "train",
        old: "--freeze-intent",
        new: "--freeze intent",
    },
    Legacy {
        command: "train",
        old: "--freeze-slot",
        new: "--freeze tags",
    },
];

/// The deprecation notes for the renamed flags among `args` (the process's arguments, the
/// program's name first): one line each.
pub fn deprecation_notes(args: &[String]) -> Vec<String> {
    let Some(pos) = args
        .iter()
        .skip(1)
        .position(|a| LEGACY.iter().any(|l| l.command == a))
    else {
        return Vec::new();
    };
    let command = &args[pos + 1];
    args[pos + 2..]
        .iter()
        .take_while(|a| *a != "--")
        .filter_map(|a| {
            let flag = a.split('=').next().unwrap_or(a);
            LEGACY
                .iter()
                .find(|l| l.command == command && l.old == flag)
        })
        .map(|l| {
            format!(
                "note: `{} {}` is deprecated; use `{}`",
                l.command, l.old, l.new
            )
        })
        .collect()
}

/// An error as one line: each cause once (a cause whose text its parent already shows, such as
/// an OS error a message quotes, is not repeated).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

/// Prints `value` as the command's one JSON object on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let line = serde_json::to_string(value)?;
    match writeln!(std::io::stdout().lock(), "{line}") {
        // A reader that stopped reading (`| head`) is not an error of ours.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Applies `--threads` to every pool (ONNX Runtime's is set per session): rayon (tokenizer, candle)
/// and candle's matmul, so that nothing oversubscribes the cores. More threads than cores are
/// capped at the cores (with a note). Returns the thread count.
pub fn setup_threads(g: &Global) -> anyhow::Result<usize> {
    let cores = default_threads();
    let n = match g.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) if n > cores => {
            eprintln!(
                "note: --threads {n} is more than this machine's {cores} cores; using {cores}"
            );
            cores
        }
        Some(n) => n,
        None => cores,
    };
    // candle sizes its matmul parallelism from RAYON_NUM_THREADS; set before any tensor work.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(n)
}

/// Loads the library named by `--ort-lib` now; otherwise ONNX Runtime is loaded (from
/// `$EDGETUNE_ORT_LIB` or beside the executable or set-up's folder) only when a session is first
/// opened, so a command that needs none (training on cached features) runs without it.
pub fn init_runtime(g: &Global) -> anyhow::Result<()> {
    if let Some(p) = &g.ort_lib {
        edgetune::backbone::init_runtime(Some(p))?;
    }
    Ok(())
}

/// A feature context for a backbone.
pub fn feature_context(
    files: ModelFiles,
    max_tokens: Option<usize>,
    threads: usize,
    cache_dir: Option<PathBuf>,
    progress: bool,
) -> anyhow::Result<FeatureContext> {
    let mut ctx = FeatureContext::new(
        files,
        max_tokens,
        SessionOptions::with_threads(threads),
        cache_dir.unwrap_or_else(default_cache_dir),
    )?;
    ctx.progress = progress;
    Ok(ctx)
}

/// Refuses an output folder `dir` (named by `flag`) that already holds one of the files
/// `names`, unless `force` (a folder of other files is written into); a file where the folder
/// should be is refused always.
pub fn check_output_dir(
    dir: &std::path::Path,
    force: bool,
    flag: &str,
    names: &[String],
) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("{flag} {}: is a file, not a folder", dir.display());
    }
    let taken: Vec<&String> = names.iter().filter(|n| dir.join(n).exists()).collect();
    if !taken.is_empty() && !force {
        bail!(
            "{flag} {}: {} already there; pass --force to replace {}",
            dir.display(),
            taken
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if taken.len() == 1 { "it" } else { "them" }
        );
    }
    Ok(())
}

/// Parses `512M`, `1G`, `800MiB`, `1.5GB` or plain bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512M, 1G)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        u => return Err(format!("unknown size unit `{u}` in `{s}` (use K, M or G)")),
    };
    if !(v > 0.0 && v.is_finite()) {
        return Err(format!("`{s}`: the size must be positive"));
    }
    Ok((v * mult) as usize)
}
