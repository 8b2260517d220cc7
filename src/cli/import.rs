//! `edgetune import`.

/// Flags of `edgetune import`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &super::Global, _a: Args) -> anyhow::Result<()> {
    anyhow::bail!("`edgetune import` is not available in this build yet")
}
