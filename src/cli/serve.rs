//! `edgetune serve`: flags into [`ServeOptions`] and [`DeviceOptions`]; the service is the library's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};

use edgetune::backbone::Spinning;
use edgetune::device::PinSpec;
use edgetune::serve::journal::DEFAULT_MAX_JOURNAL_BYTES;
use edgetune::serve::options::{
    DEFAULT_CORRECTION_COPIES, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CLIENTS, DEFAULT_MIN_PROB,
    DEFAULT_RETRAIN_EPOCHS, DEFAULT_SPINNING, DEFAULT_SWAP_MARGIN,
};
use edgetune::serve::priority::Priority;
use edgetune::serve::signals::catch_termination;
use edgetune::serve::{devices, DeviceOptions, ServeOptions, Service};

use super::common;
use super::common::Global;

/// Flags of `edgetune serve`.
///
/// Requests are JSON lines (or plain text lines) on standard input, `--socket` and `--listen`;
/// each gets one JSON line back. See docs/serve.md for the protocol.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub source: common::ModelArgs,
    /// Backbone override for --run (must be the one the run was trained on).
    #[arg(long, value_name = "PATH", requires = "run")]
    pub backbone: Option<PathBuf>,
    /// Listen on a Unix socket at PATH.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Listen on a loopback TCP address, e.g. 127.0.0.1:7878 (port 0: any free port, printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Do not read requests from standard input.
    #[arg(long)]
    pub no_stdin: bool,
    /// Answers whose intent probability (the first sentence task's) is below P get
    /// `"unknown": true` and fire no action.
    #[arg(long, value_name = "P", default_value_t = DEFAULT_MIN_PROB)]
    pub min_prob: f32,
    /// Most clients connected at once over the socket and TCP (with --socket, one slot is kept
    /// for the socket).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CLIENTS)]
    pub max_clients: usize,
    /// Close a connection that sends nothing for SECS seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs())]
    pub idle_timeout: u64,
    /// Make the --socket file 0660 and owned by this group (default: 0600, its owner only).
    #[arg(long, value_name = "GROUP", requires = "socket")]
    pub socket_group: Option<String>,
    /// TCP clients must first send {"token": SECRET}, SECRET being this file's first line (mode
    /// 0600, at least 16 characters).
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub token_file: Option<PathBuf>,
    /// Refuse corrections (code "full") once the journal holds SIZE bytes, e.g. 64M.
    #[arg(long, value_name = "SIZE", value_parser = common::parse_size, requires = "run")]
    pub max_journal_bytes: Option<usize>,
    /// Retrain automatically after every N new corrections (also on `{"cmd": "retrain"}`).
    #[arg(long, value_name = "N", requires = "run")]
    pub retrain_every: Option<usize>,
    /// Memory budget of a retrain, e.g. 512M.
    #[arg(long, value_name = "SIZE", value_parser = common::parse_size, requires = "run")]
    pub max_memory: Option<usize>,
    /// Training data of the retrains (default: the run's recorded training data).
    #[arg(long, value_name = "DIR", requires = "run")]
    pub data: Option<PathBuf>,
    /// Feature cache directory (default: $EDGETUNE_CACHE, else ~/.cache/edgetune).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// A retrained model replaces the serving one only if its held-out score is at most this much
    /// lower (and it answers every correction as given).
    #[arg(long, value_name = "M", default_value_t = DEFAULT_SWAP_MARGIN)]
    pub swap_margin: f64,
    /// Epochs of a retrain (starting from the serving heads).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RETRAIN_EPOCHS)]
    pub retrain_epochs: usize,
    /// Copies of each correction among the training examples of a retrain.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CORRECTION_COPIES)]
    pub correction_copies: usize,
    /// After each swap, also write the new model as a merged ONNX model here (self-checked).
    #[arg(long, value_name = "PATH", requires = "run")]
    pub export_on_swap: Option<PathBuf>,
    /// Let --export-on-swap replace an existing file at start.
    #[arg(long)]
    pub force: bool,
    /// When ONNX Runtime's intra-op threads spin while waiting for work: `in-run` (within a
    /// prediction, stopping at its end; the default), `true` (also after it; also the flag
    /// alone) or `false`.
    #[arg(long, value_name = "WHEN", num_args = 0..=1, default_value_t = DEFAULT_SPINNING,
          default_missing_value = "true")]
    pub spinning: Spinning,
    /// Priority of the retrain thread: nice (nice 19), idle (SCHED_IDLE: only on otherwise idle
    /// cores; another busy program can stall it) or normal.
    #[arg(long, value_name = "P", default_value = "nice")]
    pub retrain_priority: Priority,
    /// Answer utterances from this serial port (one per line; one JSON answer line back).
    #[arg(long, value_name = "TTY")]
    pub serial: Option<String>,
    /// Baud rate of --serial.
    #[arg(long, value_name = "N", default_value_t = 115_200, requires = "serial")]
    pub baud: u32,
    /// Fire the rules of this actions file on each answer (checked at start against the model).
    #[arg(long, value_name = "FILE")]
    pub actions: Option<PathBuf>,
    /// Print what each rule would do instead of touching the hardware.
    #[arg(long, requires = "actions")]
    pub dry_run_io: bool,
    /// Status LED, CHIP:LINE (e.g. gpiochip0:22): steady while serving, blinking while retraining.
    #[arg(long, value_name = "CHIP:LINE")]
    pub status_led: Option<PinSpec>,
    /// Feedback button, CHIP:LINE (to ground, pull-up): a press journals "the last answer was wrong".
    #[arg(long, value_name = "CHIP:LINE", requires = "run")]
    pub feedback_button: Option<PinSpec>,
}

fn validate(a: &Args, threads: usize) -> anyhow::Result<(ServeOptions, DeviceOptions)> {
    if !(0.0..=1.0).contains(&a.min_prob) {
        bail!("--min-prob must be between 0 and 1");
    }
    if !(a.swap_margin >= 0.0 && a.swap_margin.is_finite()) {
        bail!("--swap-margin must be a number >= 0");
    }
    if a.retrain_every == Some(0) || a.retrain_epochs == 0 || a.correction_copies == 0 {
        bail!("--retrain-every, --retrain-epochs and --correction-copies must be at least 1");
    }
    if a.retrain_epochs > 1000 || a.correction_copies > 1000 {
        bail!("--retrain-epochs and --correction-copies are at most 1000");
    }
    if a.max_clients == 0 {
        bail!("--max-clients must be at least 1");
    }
    if a.baud == 0 {
        bail!("--baud must be positive");
    }
    if let Some(p) = &a.export_on_swap {
        if p.exists() && !a.force {
            bail!(
                "--export-on-swap {}: exists; pass --force to let swaps replace it",
                p.display()
            );
        }
    }
    if a.no_stdin && a.socket.is_none() && a.listen.is_none() && a.serial.is_none() {
        bail!("--no-stdin leaves nothing to answer: give --socket, --listen or --serial");
    }
    let model = a.source.model_path()?;
    if let Some(b) = &a.backbone {
        common::check_backbone(b, &["--run", "--model", "--backbone"])?;
    }
    if let Some(s) = &a.socket {
        let parent = s.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent.filter(|d| !d.is_dir()) {
            bail!(
                "--socket {}: the folder {} does not exist",
                s.display(),
                dir.display()
            );
        }
    }
    let opts = ServeOptions {
        backbone: a.backbone.clone(),
        min_prob: a.min_prob,
        stdin: !a.no_stdin,
        socket: a.socket.clone(),
        listen: a.listen,
        serial: a.serial.clone().map(|s| (s, a.baud)),
        max_clients: a.max_clients,
        retrain_every: a.retrain_every,
        max_memory: a.max_memory,
        data: a.data.clone(),
        cache_dir: a.cache_dir.clone(),
        swap_margin: a.swap_margin,
        retrain_epochs: a.retrain_epochs,
        correction_copies: a.correction_copies,
        export_on_swap: a.export_on_swap.clone(),
        spinning: a.spinning,
        retrain_priority: a.retrain_priority,
        idle_timeout: (a.idle_timeout > 0).then(|| std::time::Duration::from_secs(a.idle_timeout)),
        socket_group: a.socket_group.clone(),
        token_file: a.token_file.clone(),
        max_journal_bytes: a
            .max_journal_bytes
            .map_or(DEFAULT_MAX_JOURNAL_BYTES, |b| b as u64),
        ..ServeOptions::new(model, threads)
    };
    let devices = DeviceOptions {
        actions: a.actions.clone(),
        dry_run: a.dry_run_io,
        status_led: a.status_led.clone(),
        feedback_button: a.feedback_button.clone(),
    };
    Ok((opts, devices))
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let signals = catch_termination().context("catching SIGTERM/SIGINT")?;
    let threads = common::setup_threads(g)?;
    let (opts, dev) = validate(&a, threads)?;
    common::init_runtime(g)?;
    // A signal while starting ends the process at once (nothing is acknowledged yet); once
    // serving, it finishes the requests in flight.
    let started: Arc<OnceLock<Service>> = Arc::default();
    let on = Arc::clone(&started);
    signals.on_signal(move |sig| match on.get() {
        Some(svc) => {
            eprintln!("edgetune serve: signal {sig}: finishing the requests in flight");
            svc.stop();
        }
        None => {
            eprintln!("edgetune serve: signal {sig} while starting: exiting");
            std::process::exit(128 + sig);
        }
    })?;
    let service = Service::load(opts)?;
    let hub = devices::open(&dev, service.tasks())?;
    service.start(hub)?;
    let _ = started.set(service.clone());
    eprintln!("edgetune serve: ready (version {})", service.version());
    service.wait();
    let left = service.finish();
    if left > 0 {
        bail!("{left} requests were still in flight after the drain timeout");
    }
    Ok(())
}
