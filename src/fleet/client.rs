//! The node loop: register with the SuperLink, keep the node alive with pings from a thread of its
//! own, pull instructions, answer each, and unregister when stopped.
//!
//! Instructions (Flower 1.18's legacy strategies, `DefaultWorkflow`): `train` (global heads +
//! config -> [`Participant::train_round`] -> `fitres.*`), `evaluate` (global heads ->
//! held-out metrics, `evaluateres.*`), `get_parameters` (the served heads). Anything else gets an
//! error reply. A SuperLink that is unreachable (restarting) is retried until
//! [`JoinOptions::give_up_after`]; a node the SuperLink no longer knows registers again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::error::FleetError;
use super::http::{HttpClient, Secure, Traffic};
use super::link::{FleetLink, Sent};
use super::local::LocalFit;
use super::participant::{Adoption, Participant};
use super::proto::{self, Metadata, RecordDict};
use super::records::{
    config_get, config_record, metric_float, metric_int, record_from_tensors, tensors_from_record,
    Value,
};
use super::spec::SPEC_KEY;

/// Flower's error code of a ClientApp that raised (`flwr.common.constant.ErrorCode`).
const CLIENT_APP_RAISED_EXCEPTION: i64 = 2;

/// How to reach the SuperLink and how long to stay.
pub struct JoinOptions {
    /// `HOST:PORT` of the SuperLink's Fleet API (REST).
    pub superlink: String,
    /// TLS (`None`: plain HTTP, as the SuperLink's `--insecure`).
    pub tls: Option<Arc<dyn Secure>>,
    /// Bound of connecting and of each read and write.
    pub timeout: Duration,
    /// Pause between pulls while idle.
    pub poll: Duration,
    /// Seconds the node promises to ping within (Flower's `ping_interval`).
    pub ping_interval: f64,
    /// Leave after this many `train` rounds.
    pub max_rounds: Option<usize>,
    /// Leave when the SuperLink stays unreachable this long.
    pub give_up_after: Duration,
    /// Leave after this long without an instruction (after the first one).
    pub idle_exit: Option<Duration>,
    /// Called with the version and its folder each time a round's global heads become the
    /// version served (a serving device swaps its model in here).
    pub on_version: Option<VersionHook>,
}

/// See [`JoinOptions::on_version`].
pub type VersionHook = Box<dyn Fn(u64, &std::path::Path) + Send>;

/// One answered instruction, as the session report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RoundLog {
    /// `train`, `evaluate`, ...
    pub message_type: String,
    /// The server's round (its `group_id`).
    pub server_round: i64,
    /// Seconds from pulling the instruction to pushing the reply.
    pub seconds: f64,
    /// Bytes sent and received for it (pull and push).
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Local examples reported.
    pub examples: usize,
    /// Whether the global heads became the version served.
    pub adopted: bool,
    /// The version served after it.
    pub version: u64,
    /// Held-out score of the global heads.
    pub global_score: f64,
    /// Held-out score after local training (train only).
    pub local_score: Option<f64>,
}

/// What a session did: every call the device made (type and body size), the rounds, the bytes.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SessionReport {
    /// The node ids the SuperLink gave (more than one after a re-registration).
    pub node_ids: Vec<u64>,
    /// Every call: the main loop's in order, then the pings.
    pub calls: Vec<SentJson>,
    /// Every answered instruction.
    pub rounds: Vec<RoundLog>,
    /// Bytes sent in total (pings included).
    pub bytes_sent: u64,
    /// Bytes received in total.
    pub bytes_received: u64,
    /// Why the session ended.
    pub ended: String,
}

/// A call as reported.
#[derive(Debug, Clone, Serialize)]
pub struct SentJson {
    /// The Fleet API call.
    pub call: &'static str,
    /// Its protobuf body's bytes.
    pub bytes: usize,
}

impl From<&Sent> for SentJson {
    fn from(s: &Sent) -> Self {
        Self {
            call: s.call,
            bytes: s.body_bytes,
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The pinger: a thread that pings every third of the interval; it raises `lost` when the
/// SuperLink says it does not know the node.
struct Pinger {
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    node: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<(Traffic, Vec<Sent>)>>,
}

impl Pinger {
    fn start(mut link: FleetLink, interval: f64, node: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let node = Arc::new(AtomicU64::new(node));
        let (s, l, n) = (stop.clone(), lost.clone(), node.clone());
        let thread = std::thread::Builder::new()
            .name("fleet-ping".into())
            .spawn(move || {
                let every = Duration::from_secs_f64((interval / 3.0).max(0.5));
                let mut next = Instant::now() + every;
                while !s.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                    if Instant::now() < next {
                        continue;
                    }
                    next = Instant::now() + every;
                    if let Ok(false) = link.ping(n.load(Ordering::SeqCst), interval) {
                        l.store(true, Ordering::SeqCst);
                    }
                }
                (link.traffic(), link.log)
            })
            .ok();
        Self {
            stop,
            lost,
            node,
            thread,
        }
    }

    /// Stops the pings; their bytes and calls.
    fn finish(mut self) -> (Traffic, Vec<Sent>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// A device in a fleet.
pub struct FleetClient {
    opts: JoinOptions,
    link: FleetLink,
    participant: Participant,
    fit: LocalFit,
    report: SessionReport,
    /// The last version passed to [`JoinOptions::on_version`].
    announced: u64,
}

impl FleetClient {
    /// A client of the SuperLink in `opts` for the device `participant`.
    pub fn new(opts: JoinOptions, participant: Participant) -> Self {
        let http = HttpClient::new(&opts.superlink, opts.timeout, opts.tls.clone());
        Self {
            announced: participant.version(),
            link: FleetLink::new(http),
            participant,
            fit: LocalFit::default(),
            report: SessionReport::default(),
            opts,
        }
    }

    /// Calls `f` until the SuperLink answers, for at most [`JoinOptions::give_up_after`].
    fn patiently<T>(
        &mut self,
        stop: &AtomicBool,
        mut f: impl FnMut(&mut FleetLink) -> Result<T, FleetError>,
    ) -> Result<Option<T>, FleetError> {
        let since = Instant::now();
        let mut pause = Duration::from_millis(500);
        loop {
            match f(&mut self.link) {
                Ok(v) => return Ok(Some(v)),
                Err(e @ FleetError::Link { .. }) => {
                    if since.elapsed() > self.opts.give_up_after {
                        return Err(e);
                    }
                    eprintln!(
                        "edgetune fleet: {e}; retrying in {:.1} s",
                        pause.as_secs_f64()
                    );
                }
                Err(e) => return Err(e),
            }
            let until = Instant::now() + pause;
            while Instant::now() < until {
                if stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    fn register(&mut self, stop: &AtomicBool) -> Result<Option<u64>, FleetError> {
        let interval = self.opts.ping_interval;
        let id = self.patiently(stop, |l| l.create_node(interval))?;
        if let Some(id) = id {
            self.report.node_ids.push(id);
            eprintln!(
                "edgetune fleet: joined {} as node {id} (run {}, serving version {})",
                self.opts.superlink,
                self.participant.run().display(),
                self.participant.version()
            );
        }
        Ok(id)
    }

    /// Takes part in rounds until `stop` is raised, the rounds are done, the SuperLink stays away
    /// or the server's spec does not fit (an error). The report of the session.
    pub fn run(mut self, stop: &AtomicBool) -> (SessionReport, Result<(), FleetError>) {
        let result = self.run_inner(stop);
        let t = self.link.traffic();
        self.report.bytes_sent += t.sent;
        self.report.bytes_received += t.received;
        self.report.calls = self
            .link
            .log
            .iter()
            .map(SentJson::from)
            .chain(std::mem::take(&mut self.report.calls))
            .collect();
        (self.report, result)
    }

    fn run_inner(&mut self, stop: &AtomicBool) -> Result<(), FleetError> {
        let Some(mut node) = self.register(stop)? else {
            self.report.ended = "stopped".into();
            return Ok(());
        };
        let ping_link = FleetLink::new(HttpClient::new(
            &self.opts.superlink,
            self.opts.timeout,
            self.opts.tls.clone(),
        ));
        let pinger = Pinger::start(ping_link, self.opts.ping_interval, node);
        let result = self.serve_rounds(stop, &mut node, &pinger);
        let (ping_traffic, pings) = pinger.finish();
        self.report.bytes_sent += ping_traffic.sent;
        self.report.bytes_received += ping_traffic.received;
        self.report.calls.extend(pings.iter().map(SentJson::from));
        if self.link.delete_node(node).is_err() {
            eprintln!(
                "edgetune fleet: could not unregister node {node} (the SuperLink will drop it)"
            );
        }
        result
    }

    fn serve_rounds(
        &mut self,
        stop: &AtomicBool,
        node: &mut u64,
        pinger: &Pinger,
    ) -> Result<(), FleetError> {
        let mut trained = 0usize;
        let mut last_instruction: Option<Instant> = None;
        loop {
            if stop.load(Ordering::SeqCst) {
                self.report.ended = "stopped".into();
                return Ok(());
            }
            if pinger.lost.swap(false, Ordering::SeqCst) {
                eprintln!(
                    "edgetune fleet: the SuperLink no longer knows node {node}; registering again"
                );
                match self.register(stop)? {
                    Some(id) => {
                        *node = id;
                        pinger.node.store(id, Ordering::SeqCst);
                    }
                    None => continue,
                }
            }
            let id = *node;
            let before = self.link.traffic();
            let pulled = match self.patiently(stop, |l| l.pull(id)) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    self.report.ended = format!("the SuperLink stayed unreachable: {e}");
                    return Err(e);
                }
            };
            let Some(msg) = pulled else {
                if let (Some(idle), Some(last)) = (self.opts.idle_exit, last_instruction) {
                    if last.elapsed() > idle {
                        self.report.ended = format!("no instruction for {} s", idle.as_secs());
                        return Ok(());
                    }
                }
                std::thread::sleep(self.opts.poll);
                continue;
            };
            last_instruction = Some(Instant::now());
            let is_train = msg
                .metadata
                .as_ref()
                .is_some_and(|m| m.message_type == "train");
            self.answer(id, msg, before)?;
            trained += usize::from(is_train);
            if self.opts.max_rounds.is_some_and(|m| trained >= m) {
                self.report.ended = format!("{trained} rounds done");
                return Ok(());
            }
        }
    }

    /// Answers one instruction. A spec mismatch is answered with an error reply and ends the
    /// session (returned); other failures are answered with an error reply and logged.
    fn answer(
        &mut self,
        node: u64,
        msg: proto::Message,
        before: Traffic,
    ) -> Result<(), FleetError> {
        let t0 = Instant::now();
        let meta = msg.metadata.clone().unwrap_or_default();
        let server_round = meta.group_id.parse::<i64>().unwrap_or(0);
        let outcome = match (&msg.content, &msg.error) {
            (Some(content), None) => self.handle(&meta, content, server_round),
            _ => {
                eprintln!(
                    "edgetune fleet: message {} carries an error or no content; ignored",
                    meta.message_id
                );
                return Ok(());
            }
        };
        let (reply, log, fatal) = match outcome {
            Ok((content, log)) => (Ok(content), Some(log), None),
            Err(e @ FleetError::Spec { .. }) => (Err(e.to_string()), None, Some(e)),
            Err(e) => {
                eprintln!(
                    "edgetune fleet: {} {}: {e}",
                    meta.message_type, meta.message_id
                );
                (Err(e.to_string()), None, None)
            }
        };
        let reply = make_reply(node, &meta, reply);
        match self.link.push(node, reply) {
            Ok(()) => {}
            Err(e) => eprintln!(
                "edgetune fleet: the reply to {} was not stored: {e}",
                meta.message_id
            ),
        }
        if let Some(mut log) = log {
            let newer = log.adopted && log.version > self.announced;
            if let (true, Some(hook)) = (newer, &self.opts.on_version) {
                self.announced = log.version;
                hook(log.version, &self.participant.version_dir());
            }
            let after = self.link.traffic();
            log.seconds = t0.elapsed().as_secs_f64();
            log.bytes_sent = after.sent - before.sent;
            log.bytes_received = after.received - before.received;
            eprintln!(
                "edgetune fleet: round {} {}: {} examples, global held-out {:.4}{}, {} ({:.1} s, {} B sent)",
                log.server_round,
                log.message_type,
                log.examples,
                log.global_score,
                log.local_score.map_or(String::new(), |s| format!(", local {s:.4}")),
                if log.adopted {
                    format!("adopted as version {}", log.version)
                } else {
                    format!("kept version {}", log.version)
                },
                log.seconds,
                log.bytes_sent
            );
            self.report.rounds.push(log);
        }
        match fatal {
            Some(e) => {
                self.report.ended = "refused the fleet's task spec".into();
                Err(e)
            }
            None => Ok(()),
        }
    }

    fn handle(
        &mut self,
        meta: &Metadata,
        content: &RecordDict,
        server_round: i64,
    ) -> Result<(RecordDict, RoundLog), FleetError> {
        let bad = |message: String| FleetError::Message {
            message_id: meta.message_id.clone(),
            message_type: meta.message_type.clone(),
            message,
        };
        let kind = meta.message_type.as_str();
        let mut log = RoundLog {
            message_type: kind.to_string(),
            server_round,
            seconds: 0.0,
            bytes_sent: 0,
            bytes_received: 0,
            examples: 0,
            adopted: false,
            version: self.participant.version(),
            global_score: f64::NAN,
            local_score: None,
        };
        if kind == "get_parameters" {
            let mut out = RecordDict::default();
            out.arrays.insert(
                "getparametersres.parameters".into(),
                record_from_tensors(&self.participant.serving_tensors()?),
            );
            out.configs
                .insert("getparametersres.status".into(), ok_status());
            return Ok((out, log));
        }
        let prefix = match kind {
            "train" => "fitins",
            "evaluate" => "evaluateins",
            other => return Err(bad(format!("message type {other:?} is not handled"))),
        };
        let config = content
            .configs
            .get(&format!("{prefix}.config"))
            .ok_or_else(|| bad(format!("no {prefix}.config record")))?;
        match config_get(config, SPEC_KEY) {
            Some(Value::Str(s)) => self.participant.check_spec(&s)?,
            _ => {
                return Err(FleetError::Spec {
                    run: self.participant.run().to_path_buf(),
                    message: format!(
                        "the server sent no task spec ({SPEC_KEY}); it is not an edgetune fleet \
                         (fleet/edgetune_fleet's ServerApp sends one every round)"
                    ),
                })
            }
        }
        let arrays = content
            .arrays
            .get(&format!("{prefix}.parameters"))
            .ok_or_else(|| bad(format!("no {prefix}.parameters record")))?;
        let global = tensors_from_record(arrays).map_err(bad)?;
        let run_id = meta.run_id;
        let round = match config_get(config, "server_round") {
            Some(Value::Int(r)) => r,
            _ => server_round,
        };
        log.server_round = round;
        let mut out = RecordDict::default();
        if kind == "train" {
            let fit = fit_of(config, &self.fit);
            let r = self.participant.train_round(&global, &fit, run_id, round)?;
            fill_adoption(&mut log, &r.adoption);
            log.examples = r.examples;
            log.local_score = Some(r.held_out.score());
            out.arrays
                .insert("fitres.parameters".into(), record_from_tensors(&r.tensors));
            out.metrics.insert(
                "fitres.num_examples".into(),
                metric_int("num_examples", r.examples as i64),
            );
            let mut m = adoption_metrics(&r.adoption);
            m.push(("train_loss", Value::Float(r.loss)));
            m.push(("local_score", Value::Float(r.held_out.score())));
            out.configs
                .insert("fitres.metrics".into(), config_record(&m));
            out.configs.insert("fitres.status".into(), ok_status());
        } else {
            let (metrics, adoption) = self.participant.evaluate_round(&global, run_id, round)?;
            fill_adoption(&mut log, &adoption);
            log.examples = metrics.examples;
            out.metrics.insert(
                "evaluateres.loss".into(),
                metric_float("loss", 1.0 - metrics.score()),
            );
            out.metrics.insert(
                "evaluateres.num_examples".into(),
                metric_int("num_examples", metrics.examples as i64),
            );
            let m = adoption_metrics(&adoption);
            out.configs
                .insert("evaluateres.metrics".into(), config_record(&m));
            out.configs.insert("evaluateres.status".into(), ok_status());
        }
        Ok((out, log))
    }
}

fn fill_adoption(log: &mut RoundLog, a: &Adoption) {
    log.adopted = a.adopted;
    log.version = a.version;
    log.global_score = a.new_score;
}

/// The metrics a device reports about the global heads: numbers only (no text of any example).
fn adoption_metrics(a: &Adoption) -> Vec<(&'static str, Value)> {
    vec![
        ("global_score", Value::Float(a.new_score)),
        ("served_score", Value::Float(a.old_score)),
        ("adopted", Value::Int(i64::from(a.adopted))),
        (
            "broken_corrections",
            Value::Int(a.broken_corrections as i64),
        ),
        ("version", Value::Int(a.version as i64)),
    ]
}

/// The round's local work: the server's `edgetune.epochs`, `edgetune.lr`, `edgetune.batch_size`
/// where given, else `default`.
fn fit_of(config: &proto::ConfigRecord, default: &LocalFit) -> LocalFit {
    let mut fit = default.clone();
    if let Some(Value::Int(e)) = config_get(config, "edgetune.epochs") {
        fit.epochs = e.clamp(1, 1000) as usize;
    }
    if let Some(Value::Float(lr)) = config_get(config, "edgetune.lr") {
        if lr.is_finite() && lr > 0.0 && lr < 1.0 {
            fit.lr = lr;
        }
    }
    if let Some(Value::Int(b)) = config_get(config, "edgetune.batch_size") {
        fit.batch_size = b.clamp(1, 4096) as usize;
    }
    fit
}

fn ok_status() -> proto::ConfigRecord {
    config_record(&[
        ("code", Value::Int(0)),
        ("message", Value::Str("Success".into())),
    ])
}

/// The reply to `meta`: `content`, or an error with its reason.
fn make_reply(node: u64, meta: &Metadata, content: Result<RecordDict, String>) -> proto::Message {
    let created_at = now();
    // A reply lives no longer than the instruction it answers (the SuperLink refuses it otherwise).
    let ttl = (meta.created_at + meta.ttl - created_at).max(1e-3);
    let metadata = Metadata {
        run_id: meta.run_id,
        message_id: String::new(),
        src_node_id: node,
        dst_node_id: meta.src_node_id,
        reply_to_message_id: meta.message_id.clone(),
        group_id: meta.group_id.clone(),
        ttl,
        message_type: meta.message_type.clone(),
        created_at,
    };
    match content {
        Ok(c) => proto::Message {
            metadata: Some(metadata),
            content: Some(c),
            error: None,
        },
        Err(reason) => proto::Message {
            metadata: Some(metadata),
            content: None,
            error: Some(proto::Error {
                code: CLIENT_APP_RAISED_EXCEPTION,
                reason,
            }),
        },
    }
}
