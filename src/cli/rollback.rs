//! `edgetune rollback`: make an earlier version of a run current again.

use std::path::PathBuf;

use edgetune::run::versions::Versions;

/// Flags of `edgetune rollback`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run folder.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// The version to go back to (`edgetune history RUN` lists them; 0 is the trained run).
    #[arg(long, value_name = "N")]
    pub to: u64,
}

pub fn run(_g: &super::common::Global, a: Args) -> anyhow::Result<()> {
    edgetune::run::read_config(&a.run)?;
    let versions = Versions::new(&a.run);
    let n = versions.rollback(a.to)?;
    println!(
        "{}: version {n} (a copy of version {}) is now current. A running `edgetune serve` on this \
         run answers with it from its next request (it checks the pointer at most once a second); \
         a service started later starts with it.",
        a.run.display(),
        a.to
    );
    Ok(())
}
