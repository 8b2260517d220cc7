//! `edgetune quantize`.

/// Flags of `edgetune quantize`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &super::Global, _a: Args) -> anyhow::Result<()> {
    anyhow::bail!("`edgetune quantize` is not available in this build yet")
}
