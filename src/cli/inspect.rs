//! `edgetune inspect`: what a run folder, a model folder or a merged model holds
//! ([`edgetune::inspect`]).

use std::path::PathBuf;

/// Flags of `edgetune inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run folder, a model folder (with manifest.json) or a merged model (.onnx).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

pub fn run(g: &super::common::Global, a: Args) -> anyhow::Result<()> {
    let found = edgetune::inspect::inspect(&a.path)?;
    if g.json {
        super::common::print_json(&found)?;
    } else {
        print!("{}", found.text());
    }
    Ok(())
}
