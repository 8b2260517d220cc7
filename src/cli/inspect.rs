//! `edgetune inspect`: what a run folder, a model folder or a merged model holds
//! ([`edgetune::inspect`]).

use std::path::PathBuf;

/// Flags of `edgetune inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run folder, a model folder (with manifest.json) or a merged model (.onnx).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// For a run: which version to describe (default: the current one).
    #[arg(long = "version", value_name = "N")]
    pub run_version: Option<u64>,
}

pub fn run(g: &super::common::Global, a: Args) -> anyhow::Result<()> {
    let path = if a.path.join(edgetune::run::CONFIG_FILE).is_file() {
        edgetune::run::versions::resolve(&a.path, a.run_version)?.1
    } else {
        anyhow::ensure!(
            a.run_version.is_none(),
            "--version applies to a run folder only"
        );
        a.path.clone()
    };
    let found = edgetune::inspect::inspect(&path)?;
    if g.json {
        super::common::print_json(&found)?;
    } else {
        print!("{}", found.text());
    }
    Ok(())
}
