//! Command-line front end: one module per subcommand, each with raw `Args` and a `run` function.

use clap::{Parser, Subcommand};

mod import;
mod quantize;

/// Global flags shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Path to ONNX Runtime's shared library (default: $EDGETUNE_ORT_LIB, then the set-up location).
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<std::path::PathBuf>,
    /// Threads for ONNX Runtime's intra-op pool, candle/rayon and the tokenizer together
    /// (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, Parser)]
#[command(name = "edgetune", version, about = "Adapt transformer models to new tasks on the edge device itself.")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert a Hugging Face BERT-family checkpoint to ONNX (self-verified against candle).
    Import(import::Args),
    /// Dynamic int8 quantization (per-channel weight scales) of a model directory's backbone.
    Quantize(quantize::Args),
}

/// Entry point: parse, run, and turn errors into a message and a non-zero exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(a) => import::run(&cli.global, a),
        Command::Quantize(a) => quantize::run(&cli.global, a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgetune: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
