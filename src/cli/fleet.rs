//! `edgetune fleet join`: flags into [`ParticipantOptions`] and [`JoinOptions`]; the client is
//! the library's (`edgetune::fleet`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use edgetune::fleet::{FleetClient, JoinOptions, Participant, ParticipantOptions};
use edgetune::serve::journal::Journal;
use edgetune::serve::layout::Layout;
use edgetune::serve::options::{DEFAULT_CORRECTION_COPIES, DEFAULT_SWAP_MARGIN};
use edgetune::serve::signals::catch_termination;

use super::common::{self, Global};

/// Fleet learning on Flower.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Take part in federated rounds: train the heads the server sends on this device's data and
    /// corrections, send back only the updated heads, the example count and scores; adopt a
    /// round's global heads as a new version of the run when they pass the device's held-out
    /// check and answer every correction as given.
    Join(JoinArgs),
}

/// Flags of `edgetune fleet join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The SuperLink's Fleet API (`flower-superlink --fleet-api-type rest`), HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    superlink: String,
    /// The device's run (its versions and corrections journal are in RUN/serve).
    #[arg(long, value_name = "RUN")]
    run: PathBuf,
    /// Local training data (default: the run's recorded training data).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Backbone override (must be the run's).
    #[arg(long, value_name = "PATH")]
    backbone: Option<PathBuf>,
    /// Feature cache directory (default: $EDGETUNE_CACHE, else ~/.cache/edgetune).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Leave after N train rounds (default: stay until stopped).
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Leave after this many seconds without an instruction, once rounds have begun.
    #[arg(long, value_name = "SECS")]
    idle_exit: Option<u64>,
    /// Leave when the SuperLink stays unreachable this long.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    give_up_after: u64,
    /// Pause between pulls while idle, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    poll_ms: u64,
    /// Seconds the node promises the SuperLink to ping within (pings go every third of it); a
    /// node silent longer is dropped from the rounds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    ping_interval: f64,
    /// Bound of connecting and of each read and write, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// Copies of each correction among the local training examples.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CORRECTION_COPIES)]
    correction_copies: usize,
    /// The global heads become the version served only if their held-out score is at most this
    /// much below the served version's (and they answer every correction as given).
    #[arg(long, value_name = "M", default_value_t = DEFAULT_SWAP_MARGIN)]
    swap_margin: f64,
    /// Write the session's report here (JSON): every call sent (type, body bytes), every round
    /// (seconds, bytes, adoption), the totals.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// Runs `edgetune fleet ...`.
pub fn run(g: &Global, args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Join(a) => join(g, a),
    }
}

fn join(g: &Global, a: JoinArgs) -> anyhow::Result<()> {
    if a.superlink
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        bail!("--superlink {}: expected HOST:PORT", a.superlink);
    }
    if !(a.ping_interval >= 1.0 && a.ping_interval <= 3600.0) {
        bail!(
            "--ping-interval {}: expected 1 to 3600 seconds",
            a.ping_interval
        );
    }
    if a.rounds == Some(0) {
        bail!("--rounds must be at least 1");
    }
    let threads = common::setup_threads(g)?;
    common::init_runtime(g)?;
    let layout = Layout::new(&a.run);
    if !a.run.join(edgetune::run::CONFIG_FILE).is_file() {
        bail!(
            "--run {}: not a finished edgetune run (no config.json)",
            a.run.display()
        );
    }
    layout.prepare()?;
    // One writer of the run's versions: a `serve` on this run takes part with `--fleet` instead.
    let _lock = layout.lock()?;
    let (journal, warning) = Journal::open(&layout.journal())?;
    if let Some(w) = warning {
        eprintln!("edgetune fleet: {w}");
    }
    let participant = Participant::open(
        ParticipantOptions {
            run: a.run.clone(),
            data: a.data.clone(),
            backbone: a.backbone.clone(),
            cache_dir: a.cache_dir.clone(),
            threads,
            correction_copies: a.correction_copies.max(1),
            swap_margin: a.swap_margin,
        },
        journal.live(),
        journal.last_seq(),
    )
    .with_context(|| format!("preparing {} for the fleet", a.run.display()))?;
    let (examples, held) = participant.sizes();
    eprintln!(
        "edgetune fleet: {examples} local examples ({} corrections), {held} held out",
        journal.live().len()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    catch_termination()
        .and_then(|t| t.on_signal(move |_| flag.store(true, Ordering::SeqCst)))
        .context("catching SIGTERM and SIGINT")?;
    let client = FleetClient::new(
        JoinOptions {
            superlink: a.superlink.clone(),
            tls: None,
            timeout: Duration::from_secs(a.timeout.max(1)),
            poll: Duration::from_millis(a.poll_ms.max(10)),
            ping_interval: a.ping_interval,
            max_rounds: a.rounds,
            give_up_after: Duration::from_secs(a.give_up_after),
            idle_exit: a.idle_exit.map(Duration::from_secs),
            on_version: Some(Box::new(|v, dir| {
                eprintln!(
                    "edgetune fleet: version {v} is served now ({})",
                    dir.display()
                )
            })),
        },
        participant,
    );
    let (report, result) = client.run(&stop);
    if g.json {
        common::print_json(&report)?;
    }
    eprintln!(
        "edgetune fleet: left ({}): {} rounds answered, {} B sent, {} B received",
        report.ended,
        report.rounds.len(),
        report.bytes_sent,
        report.bytes_received
    );
    if let Some(path) = &a.report {
        let json = serde_json::to_vec_pretty(&report)?;
        edgetune::fsutil::write_atomic(path, &json)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    result?;
    Ok(())
}
