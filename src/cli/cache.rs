//! `edgetune cache`: see and bound the feature cache ([`edgetune::features::manage`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use edgetune::features::default_cache_dir;
use edgetune::features::manage::{clear, list, prune};

use super::common::{self, Global};

/// Flags of `edgetune cache`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Feature cache directory (default: $EDGETUNE_CACHE, else ~/.cache/edgetune).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands of `edgetune cache` (default: `list`).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every entry: key, bytes, examples, last use (least recently used first) and the total.
    List,
    /// Remove entries last used more than --older-than ago, then the least recently used ones
    /// until the cache fits --max-size. An entry is removed whole or not at all.
    Prune(PruneArgs),
    /// Remove every entry.
    Clear,
}

/// Flags of `edgetune cache prune`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = true)]
pub struct PruneArgs {
    /// Age, e.g. `30d`, `12h`, `90m` or seconds.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: Option<Duration>,
    /// Size budget, e.g. `500M`, `2G`.
    #[arg(long, value_name = "SIZE", value_parser = common::parse_size)]
    pub max_size: Option<usize>,
}

/// Parses `30d`, `12h`, `90m`, `45s` or plain seconds.
fn parse_age(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('d') => (&t[..t.len() - 1], 86_400),
        Some('h') => (&t[..t.len() - 1], 3_600),
        Some('m') => (&t[..t.len() - 1], 60),
        Some('s') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an age (e.g. 30d, 12h, 90m)"))?;
    Ok(Duration::from_secs(n * mult))
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let dir = a.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let what = || format!("--cache-dir {}", dir.display());
    match a.command.unwrap_or(Command::List) {
        Command::List => {
            let entries = list(&dir).with_context(what)?;
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            if g.json {
                return common::print_json(&serde_json::json!({
                    "dir": dir, "entries": entries, "bytes": total,
                }));
            }
            for e in &entries {
                println!(
                    "{}  {:>10} bytes  {:>6} examples  last used {}{}",
                    e.key,
                    e.bytes,
                    e.examples,
                    e.last_used,
                    if e.parts.is_empty() {
                        String::new()
                    } else {
                        format!("  (composed of {} parts)", e.parts.len())
                    }
                );
            }
            println!(
                "{}: {} entries, {} bytes",
                dir.display(),
                entries.len(),
                total
            );
        }
        Command::Prune(p) => {
            let r =
                prune(&dir, p.older_than, p.max_size.map(|v| v as u64), &[]).with_context(what)?;
            report(g, &dir, &r)?;
        }
        Command::Clear => {
            let r = clear(&dir).with_context(what)?;
            report(g, &dir, &r)?;
        }
    }
    Ok(())
}

fn report(
    g: &Global,
    dir: &std::path::Path,
    r: &edgetune::features::manage::Removed,
) -> anyhow::Result<()> {
    if g.json {
        return common::print_json(r);
    }
    println!(
        "{}: removed {} entries ({} bytes); {} bytes left",
        dir.display(),
        r.keys.len(),
        r.bytes,
        r.left_bytes
    );
    Ok(())
}
