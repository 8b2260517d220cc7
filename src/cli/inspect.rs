//! `edgetune inspect`: what a run folder, a model folder or a merged model holds
//! ([`edgetune::inspect`]).

use std::path::PathBuf;

/// Flags of `edgetune inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run folder, a model folder (with manifest.json) or a merged model (.onnx).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_g: &super::Global, a: Args) -> anyhow::Result<()> {
    let found = edgetune::inspect::inspect(&a.path)?;
    if a.json {
        println!("{}", serde_json::to_string(&found)?);
    } else {
        print!("{}", found.text());
    }
    Ok(())
}
