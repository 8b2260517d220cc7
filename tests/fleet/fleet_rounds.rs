//! Fleet rounds against the real Flower 1.18 SuperLink (`.venv-fleet`, set up by `./setup.sh test`)
//! with the real MiniLM: two devices train on halves of `data/demo` for two rounds; every byte one
//! of them sends passes through a recording proxy and is decoded: only Fleet API calls, only the
//! head tensors, the example count and numeric scores, no text, no label of any example.

#![cfg(feature = "real-model")]

use crate::support as common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgetune::fleet::proto;
use edgetune::fleet::records::{npy_decode, Value};
use prost::Message as _;

fn venv() -> PathBuf {
    let v = common::root().join(".venv-fleet");
    assert!(
        v.join("bin/flower-superlink").is_file() && v.join("bin/flwr").is_file(),
        "the fleet tests need the pinned Flower in {}; run ./setup.sh test (fleet/setup-venv.sh)",
        v.display()
    );
    v
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, child: &mut Child) {
    let until = Instant::now() + Duration::from_secs(90);
    while Instant::now() < until {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the SuperLink ended early"
        );
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the SuperLink does not listen on {port}");
}

/// A SuperLink with the REST Fleet API on free ports; killed (its process group) on drop.
struct SuperLink {
    child: Child,
    fleet: u16,
    appio: u16,
    exec: u16,
    home: PathBuf,
}

impl SuperLink {
    fn start(dir: &Path) -> Self {
        let (fleet, appio, exec) = (free_port(), free_port(), free_port());
        let home = dir.join("flwr-home");
        let log = std::fs::File::create(dir.join("superlink.log")).unwrap();
        let mut child = superlink_command(fleet, appio, exec, &home)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_port(fleet, &mut child);
        wait_port(exec, &mut child);
        Self {
            child,
            fleet,
            appio,
            exec,
            home,
        }
    }

    /// `flwr run` of the edgetune ServerApp with `config` overrides; waits (at most 5 minutes)
    /// for the run to end.
    fn run(&self, dir: &Path, config: &str) {
        let app = dir.join("app");
        if !app.exists() {
            copy_dir(&common::root().join("fleet/app"), &app);
        }
        let log = dir.join("flwr-run.log");
        let mut child = Command::new(venv().join("bin/flwr"))
            .arg("run")
            .arg(&app)
            .args(["local", "--stream", "--run-config", config])
            .arg("--federation-config")
            .arg(format!("address='127.0.0.1:{}'", self.exec))
            .env("FLWR_HOME", &self.home)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(300);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > until {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            status.is_some_and(|s| s.success()),
            "flwr run failed or did not end in 5 minutes:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Kills the SuperLink (its process group) and starts a new one on the same ports.
    fn restart(&mut self, dir: &Path) {
        kill_group(&mut self.child);
        let log = std::fs::File::create(dir.join("superlink-2.log")).unwrap();
        self.child = superlink_command(self.fleet, self.appio, self.exec, &self.home)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_port(self.fleet, &mut self.child);
        wait_port(self.exec, &mut self.child);
    }
}

fn superlink_command(fleet: u16, appio: u16, exec: u16, home: &Path) -> Command {
    let mut c = Command::new(venv().join("bin/flower-superlink"));
    c.args(["--insecure", "--fleet-api-type", "rest"])
        .arg("--fleet-api-address")
        .arg(format!("127.0.0.1:{fleet}"))
        .arg("--serverappio-api-address")
        .arg(format!("127.0.0.1:{appio}"))
        .arg("--exec-api-address")
        .arg(format!("127.0.0.1:{exec}"))
        .env("FLWR_HOME", home)
        .process_group(0);
    c
}

fn kill_group(child: &mut Child) {
    let pg = -(child.id() as i32);
    // SAFETY: kill(2) on the process group of a SuperLink this test started.
    unsafe {
        libc::kill(pg, libc::SIGKILL);
    }
    let _ = child.wait();
}

impl Drop for SuperLink {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// A TCP proxy to `port` recording, per connection, every byte the client sends.
fn recording_proxy(port: u16) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let me = l.local_addr().unwrap().port();
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let s = sessions.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut client) = conn else { return };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let record = s.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 65536];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 || server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                let _ = server.shutdown(std::net::Shutdown::Write);
                record.lock().unwrap().push(seen);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (me, sessions)
}

/// (path, body) of one recorded HTTP request.
fn parse_request(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = std::str::from_utf8(&bytes[..end]).unwrap();
    let path = head.split_whitespace().nth(1).unwrap().to_string();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let body = bytes[end + 4..].to_vec();
    assert_eq!(body.len(), len, "{path}: one request per connection");
    (path, body)
}

fn seed_run(dir: &Path, cache: &Path) -> PathBuf {
    let seed = dir.join("seed");
    let mut c = common::edgetune(cache);
    c.args(["train", "--data", "data/demo", "--epochs", "3", "--out"])
        .arg(&seed);
    common::ok(c);
    seed
}

fn device(dir: &Path, seed: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::write(d.join("data/train.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::create_dir_all(d.join("run")).unwrap();
    for f in ["config.json", "heads.safetensors"] {
        std::fs::copy(seed.join(f), d.join("run").join(f)).unwrap();
    }
    d
}

fn join(cache: &Path, superlink: String, d: &Path) -> Child {
    let mut c = common::edgetune(cache);
    c.args(["--threads", "1", "fleet", "join", "--superlink", &superlink])
        .args(["--ping-interval", "5", "--run"])
        .arg(d.join("run"))
        .arg("--data")
        .arg(d.join("data"))
        .arg("--report")
        .arg(d.join("session.json"))
        .args(["--poll-ms", "300"])
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(d.join("join.log"))
                .unwrap(),
        );
    c.spawn().unwrap()
}

fn stop(mut child: Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) with SIGTERM on a child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap()
}

/// The text (words joined) of every example of `lines` (JSON lines of data/demo) and every label
/// of four characters or more (shorter strings occur by chance in kilobytes of float32 values).
fn private_strings(lines: &[&str]) -> (Vec<String>, BTreeSet<String>) {
    let mut texts = Vec::new();
    let mut labels = BTreeSet::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        for (k, x) in v.as_object().unwrap() {
            let strings: Vec<String> = match x {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            };
            if k == "words" || k == "text" {
                texts.push(strings.join(" "));
            } else {
                labels.extend(strings.into_iter().filter(|s| s.len() >= 4));
            }
        }
    }
    assert!(
        texts.len() == lines.len() && labels.len() > 10,
        "{texts:?} {labels:?}"
    );
    (texts, labels)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A temporary folder with a feature cache, the seed run (3 epochs on data/demo) and the demo's
/// training lines.
struct Fixture {
    dir: tempfile::TempDir,
    cache: PathBuf,
    seed: PathBuf,
    text: String,
}

fn fixture() -> Fixture {
    common::require_setup();
    venv();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let seed = seed_run(dir.path(), &cache);
    let text = std::fs::read_to_string(common::root().join("data/demo/train.jsonl")).unwrap();
    Fixture {
        dir,
        cache,
        seed,
        text,
    }
}

#[test]
fn a_recorded_session_sends_only_heads_counts_and_scores() {
    let Fixture {
        dir,
        cache,
        seed,
        text,
    } = fixture();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let d0 = device(dir.path(), &seed, "d0", a);
    let d1 = device(dir.path(), &seed, "d1", b);
    let link = SuperLink::start(dir.path());
    let (proxy, recorded) = recording_proxy(link.fleet);
    let j0 = join(&cache, format!("127.0.0.1:{proxy}"), &d0);
    let j1 = join(&cache, format!("127.0.0.1:{}", link.fleet), &d1);
    let server = dir.path().join("server");
    link.run(
        dir.path(),
        &format!(
            "seed-run='{}' out='{}' num-rounds=2 sampled=2 min-available=2 evaluate-fraction=1.0",
            seed.display(),
            server.display()
        ),
    );
    assert!(stop(j0).success(), "device 0 ended with an error");
    assert!(stop(j1).success(), "device 1 ended with an error");

    // The server side: two rounds, both devices in each, the global heads written as a run.
    let rounds: Vec<serde_json::Value> = std::fs::read_to_string(server.join("rounds.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r.get("evaluate").is_none())
        .collect();
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    for r in &rounds {
        assert_eq!(r["replies"], 2, "{r}");
        assert_eq!(r["failures"], 0, "{r}");
    }
    let mut c = common::edgetune(&cache);
    c.args([
        "eval",
        "--data",
        "data/demo",
        "--split",
        "test",
        "--json",
        "--run",
    ])
    .arg(server.join("global"));
    let m: serde_json::Value = serde_json::from_str(common::ok(c).trim()).unwrap();
    assert!(m["intent_accuracy"].as_f64().unwrap() > 0.5, "{m}");

    // Every byte device 0 sent, decoded.
    let spec: serde_json::Value = {
        let rc = edgetune::run::read_config(&seed).unwrap();
        let (_, model) = edgetune::run::load_run(&seed).unwrap();
        edgetune::fleet::spec::spec_of(&rc, &model).unwrap()
    };
    let shapes: Vec<Vec<usize>> = spec["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| serde_json::from_value(t[1].clone()).unwrap())
        .collect();
    let (texts, labels) = private_strings(a);
    let sessions = recorded.lock().unwrap().clone();
    let mut calls: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut pushes = 0;
    for bytes in &sessions {
        let (path, body) = parse_request(bytes);
        let call = path
            .strip_prefix("/api/v0/fleet/")
            .expect("a Fleet API path")
            .to_string();
        let e = calls.entry(call.clone()).or_default();
        e.0 += 1;
        e.1 += body.len();
        for t in &texts {
            assert!(!contains(&body, t), "{call} sent the text {t:?}");
            for w in t.split_whitespace().filter(|w| w.len() >= 6) {
                assert!(!contains(&body, w), "{call} sent the word {w:?}");
            }
        }
        for l in &labels {
            assert!(!contains(&body, l), "{call} sent the label {l:?}");
        }
        match call.as_str() {
            "create-node" | "ping" | "pull-messages" | "delete-node" => {}
            "push-messages" => {
                pushes += 1;
                check_reply(&body, &shapes);
            }
            other => panic!("an unexpected call {other}"),
        }
    }
    eprintln!("device 0 sent (call: count, body bytes): {calls:?}");
    assert!(pushes >= 2, "{calls:?}");
    for call in ["create-node", "pull-messages", "push-messages"] {
        assert!(calls.contains_key(call), "no {call}: {calls:?}");
    }

    // The device's own account of the session agrees.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d0.join("session.json")).unwrap()).unwrap();
    let trained = report["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["message_type"] == "train")
        .count();
    assert_eq!(trained, 2, "{report}");
    // Each adopted global model is a version of the run.
    let adopted: BTreeSet<u64> = report["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["adopted"] == true)
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    let versions = std::fs::read_dir(d0.join("run/versions"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u64>().is_ok())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(versions, adopted.len(), "{report}");
}

/// A reply holds the head tensors (the spec's shapes), the example count and numbers only.
fn check_reply(body: &[u8], shapes: &[Vec<usize>]) {
    let req = proto::PushMessagesRequest::decode(body).unwrap();
    for msg in req.messages_list {
        assert!(msg.error.is_none(), "an error reply: {:?}", msg.error);
        let c = msg.content.unwrap();
        let kind = msg.metadata.unwrap().message_type;
        let prefix = if kind == "train" {
            "fitres"
        } else {
            "evaluateres"
        };
        for k in c
            .arrays
            .keys()
            .chain(c.metrics.keys())
            .chain(c.configs.keys())
        {
            assert!(k.starts_with(prefix), "record {k} in a {kind} reply");
        }
        if kind == "train" {
            let arrays = &c.arrays["fitres.parameters"];
            assert_eq!(arrays.data_values.len(), shapes.len());
            for (a, shape) in arrays.data_values.iter().zip(shapes) {
                assert_eq!(&npy_decode(&a.data).unwrap().shape, shape);
            }
        } else {
            assert!(c.arrays.is_empty());
        }
        for (name, rec) in &c.configs {
            for key in rec.data.keys() {
                let v = edgetune::fleet::records::config_get(rec, key);
                let text_ok = name.ends_with(".status") && key == "message";
                assert!(
                    !matches!(v, Some(Value::Str(_))) || text_ok,
                    "a string in {name}.{key}: {v:?}"
                );
            }
        }
    }
}

#[test]
fn a_device_with_another_label_set_is_refused() {
    let Fixture {
        dir,
        cache,
        seed,
        text,
    } = fixture();
    let lines: Vec<&str> = text.lines().collect();
    let d = device(dir.path(), &seed, "other", &lines[..100]);
    // The same heads, but one intent named differently: the fleet's labels are not this device's.
    let cfg = std::fs::read_to_string(d.join("run/config.json")).unwrap();
    assert!(cfg.contains("\"turn_on\""));
    std::fs::write(
        d.join("run/config.json"),
        cfg.replace("\"turn_on\"", "\"switch_on\""),
    )
    .unwrap();
    let link = SuperLink::start(dir.path());
    let mut j = join(&cache, format!("127.0.0.1:{}", link.fleet), &d);
    link.run(
        dir.path(),
        &format!(
            "seed-run='{}' num-rounds=1 sampled=1 min-available=1 round-timeout=60.0",
            seed.display()
        ),
    );
    let until = Instant::now() + Duration::from_secs(60);
    while j.try_wait().unwrap().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = match j.try_wait().unwrap() {
        Some(s) => s,
        None => stop(j),
    };
    let log = std::fs::read_to_string(d.join("join.log")).unwrap();
    assert!(!status.success(), "the device took part: {log}");
    assert!(
        log.contains("the fleet's task spec does not fit this device's run")
            && log.contains("task `intent`: labels is")
            && log.contains("switch_on"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

fn report(d: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(d.join("session.json")).unwrap()).unwrap()
}

fn trained_rounds(r: &serde_json::Value) -> usize {
    r["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["message_type"] == "train")
        .count()
}

#[test]
fn a_device_that_reconnects_takes_part_again() {
    let Fixture {
        dir,
        cache,
        seed,
        text,
    } = fixture();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let d0 = device(dir.path(), &seed, "d0", a);
    let d1 = device(dir.path(), &seed, "d1", b);
    let link = SuperLink::start(dir.path());
    let addr = format!("127.0.0.1:{}", link.fleet);
    let j0 = join(&cache, addr.clone(), &d0);
    let mut j1 = join(&cache, addr.clone(), &d1);
    // Device 1 dies (as on a power loss) and comes back: a new process on the same run.
    std::thread::sleep(Duration::from_secs(3));
    j1.kill().unwrap();
    j1.wait().unwrap();
    let j1 = join(&cache, addr, &d1);
    // Its old node stops pinging and is dropped (after twice the ping interval); the rounds wait
    // for two live devices.
    std::thread::sleep(Duration::from_secs(11));
    let server = dir.path().join("server");
    link.run(
        dir.path(),
        &format!(
            "seed-run='{}' out='{}' num-rounds=2 sampled=2 min-available=2 round-timeout=60.0",
            seed.display(),
            server.display()
        ),
    );
    assert!(stop(j0).success());
    assert!(stop(j1).success());
    let rounds = std::fs::read_to_string(server.join("rounds.jsonl")).unwrap();
    for l in rounds.lines() {
        let r: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(r["replies"], 2, "{rounds}");
    }
    assert_eq!(trained_rounds(&report(&d1)), 2, "{}", report(&d1));
}

#[test]
fn a_superlink_restart_is_survived() {
    let Fixture {
        dir,
        cache,
        seed,
        text,
    } = fixture();
    let lines: Vec<&str> = text.lines().collect();
    let d0 = device(dir.path(), &seed, "d0", &lines[..200]);
    let mut link = SuperLink::start(dir.path());
    let j0 = join(&cache, format!("127.0.0.1:{}", link.fleet), &d0);
    std::thread::sleep(Duration::from_secs(3));
    // The SuperLink goes away and comes back without its state (in-memory): the device retries
    // while it is away and registers again when the new one does not know its node.
    link.restart(dir.path());
    std::thread::sleep(Duration::from_secs(8));
    let server = dir.path().join("server");
    link.run(
        dir.path(),
        &format!(
            "seed-run='{}' out='{}' num-rounds=1 sampled=1 min-available=1 round-timeout=60.0",
            seed.display(),
            server.display()
        ),
    );
    assert!(stop(j0).success());
    let r = report(&d0);
    assert_eq!(r["node_ids"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(trained_rounds(&r), 1, "{r}");
    let m = std::fs::read_to_string(server.join("rounds.jsonl")).unwrap();
    assert!(m.contains("\"replies\": 1"), "{m}");
}
