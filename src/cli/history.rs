//! `edgetune history`: the versions of a run ([`edgetune::run::versions`]).

use std::path::PathBuf;

use edgetune::run::versions::{VersionInfo, Versions};

/// Flags of `edgetune history`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run folder. With the global `--json`: one JSON object on stdout, `run`, `current` and
    /// `versions` (each with `version`, `dir`, `current`, `made_by`, `created`, `why`, `parent`,
    /// `journal_seq`, `corrections`, `swapped`, `decision`, `old_score`, `new_score`, `metrics`).
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
}

pub fn run(g: &super::common::Global, a: Args) -> anyhow::Result<()> {
    edgetune::run::read_config(&a.run)?;
    let versions = Versions::new(&a.run);
    let list = versions.list()?;
    let current = list.iter().find(|v| v.current).map_or(0, |v| v.version);
    if g.json {
        return super::common::print_json(&serde_json::json!({
            "run": a.run,
            "current": current,
            "versions": list,
        }));
    }
    println!(
        "{} ({} versions, current {current})",
        a.run.display(),
        list.len()
    );
    for v in &list {
        println!("{}", line(v));
    }
    Ok(())
}

/// One version as a text line.
fn line(v: &VersionInfo) -> String {
    let r = &v.record;
    let score = v
        .metrics
        .get("valid")
        .map(|m| format!("valid score {:.4}", m.score()))
        .unwrap_or_default();
    format!(
        "{} {:>3}  {:<8} {}  {}{}; {} correction(s){}; {}{}",
        if v.current { "*" } else { " " },
        v.version,
        r.made_by.name(),
        r.created,
        r.why,
        r.parent.map(|p| format!(" (from {p})")).unwrap_or_default(),
        r.corrections.len(),
        if score.is_empty() {
            String::new()
        } else {
            format!("; {score}")
        },
        if r.swapped {
            "swapped in"
        } else {
            "not swapped in"
        },
        if r.decision.is_empty() {
            String::new()
        } else {
            format!(": {}", r.decision)
        },
    )
}
