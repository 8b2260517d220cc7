//! Command-line front end: one module per subcommand, each with raw `Args` and a `run` function.

use clap::{Parser, Subcommand};

mod actions;
mod bench;
mod cache;
mod choose;
mod common;
mod completions;
mod data;
mod eval;
mod export;
mod fleet;
mod history;
mod import;
mod infer;
mod inspect;
mod quantize;
mod rollback;
mod serve;
mod train;

use common::Global;

#[derive(Debug, Parser)]
#[command(
    name = "edgetune",
    version,
    about = "Adapt transformer models to new tasks on the edge device itself."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a head per task of a dataset (backbone frozen, features cached).
    Train(train::Args),
    /// Evaluate a run on a split: per task accuracy, span F1 (conlleval) or token accuracy.
    Eval(eval::Args),
    /// Predict every task for text lines (a file or stdin), one JSON line each.
    Infer(infer::Args),
    /// Measure this device: cold start, batch-1 latency (p50/p99) of a merged model, backbone
    /// extraction throughput, peak memory.
    Bench(bench::Args),
    /// Convert a Hugging Face BERT-family checkpoint to ONNX (self-verified against candle).
    Import(import::Args),
    /// Write one merged ONNX model (backbone, word pooling and every head), verified against the run.
    /// A run trained with --unfreeze-top gets its fine-tuned layers spliced in (int8 unless
    /// --fp32-layers).
    Export(export::Args),
    /// Dynamic int8 quantization (per-channel weight scales) of a model directory's backbone.
    Quantize(quantize::Args),
    /// Device actions (actions.toml): check a file against a model's labels.
    Actions(actions::Args),
    /// A long-running service: JSON-line requests on stdin, a Unix socket, TCP and a serial line;
    /// learns from corrections (background retrain, safe swap); fires device actions.
    Serve(serve::Args),
    /// Fleet learning on Flower: `fleet join` takes part in federated rounds (Flower 1.18
    /// SuperLink, REST Fleet API); only the updated heads, example counts and scores leave.
    Fleet(fleet::Args),
    /// Describe a run folder, a model folder or a merged model: tasks and labels, backbone and
    /// hashes, quantization, parameter counts, training settings and metrics, inputs and outputs.
    Inspect(inspect::Args),
    /// Check a dataset: label counts per task, duplicates, conflicting labels, empty and overlong
    /// lines, one-label tasks and labels of valid/test that train lacks.
    Data(data::Args),
    /// The feature cache: list its entries, prune them by age or to a size, or clear it.
    Cache(cache::Args),
    /// List the versions of a run: what made each (train, retrain, rollback, fleet), when and
    /// why, the corrections it was trained with, its metrics, whether it was swapped in and why.
    History(history::Args),
    /// Make an earlier version of a run current again (a running `serve` answers with it from its
    /// next request).
    Rollback(rollback::Args),
    /// Compare backbones (and unfrozen layers) on this device: train, export and measure each
    /// (scores, latency, cold start, memory, bytes), then recommend one within the limits.
    Choose(choose::Args),
    /// Print a shell completion script (bash, zsh, fish), generated from this binary's flags.
    Completions(completions::Args),
    /// Print the man page (roff), generated from this binary's flags: `edgetune man > edgetune.1`.
    Man(completions::ManArgs),
}

/// Entry point: parse, run, and turn errors into a message and a non-zero exit code.
pub fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let json_wanted = args.iter().any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return parse_error(e, json_wanted),
    };
    if !cli.global.quiet && !cli.global.json {
        for note in common::deprecation_notes(&args) {
            eprintln!("{note}");
        }
    }
    let json = cli.global.json;
    let result = match cli.command {
        Command::Train(a) => train::run(&cli.global, a),
        Command::Bench(a) => bench::run(&cli.global, a),
        Command::Eval(a) => eval::run(&cli.global, a),
        Command::Infer(a) => infer::run(&cli.global, a),
        Command::Import(a) => import::run(&cli.global, a),
        Command::Quantize(a) => quantize::run(&cli.global, a),
        Command::Export(a) => export::run(&cli.global, a),
        Command::Actions(a) => actions::run(&cli.global, a),
        Command::Serve(a) => serve::run(&cli.global, a),
        Command::Inspect(a) => inspect::run(&cli.global, a),
        Command::Choose(a) => choose::run(&cli.global, a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => completions::run_man(a),
        Command::Fleet(a) => fleet::run(&cli.global, a),
        Command::Data(a) => data::run(&cli.global, a),
        Command::Cache(a) => cache::run(&cli.global, a),
        Command::History(a) => history::run(&cli.global, a),
        Command::Rollback(a) => rollback::run(&cli.global, a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fatal(&common::error_text(&e), json, 1),
    }
}

/// A flag clap refused (or `--help` / `--version`, which are not errors).
fn parse_error(e: clap::Error, json: bool) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if json && !informational {
        let text = e.render().to_string();
        let message = text
            .split("\n\n")
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        fatal(&message, true, e.exit_code());
    }
    let _ = e.print();
    std::process::ExitCode::from(e.exit_code() as u8)
}

/// Prints a fatal error (also as `{"error": MESSAGE}` on stdout with `--json`) and ends the
/// process while holding stderr, so that no other thread prints after it.
fn fatal(message: &str, json: bool, code: i32) -> ! {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    if json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", serde_json::json!({ "error": message }));
        let _ = out.flush();
    }
    let _ = writeln!(err, "edgetune: error: {message}");
    let _ = err.flush();
    std::process::exit(code)
}
