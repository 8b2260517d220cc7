//! `edgetune serve` over real sockets: answers, commands, every kind of bad request (each gets a
//! JSON error while another client keeps being answered), TCP, standard input, SIGTERM, and a model
//! whose task names collide with the service's own keys.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::serve as serve_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use serve_support::{edgetune, fresh_run, intent, Client, Server};

#[test]
fn answers_carry_infer_json_latency_version_and_ids() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(&run, dir.path(), &[]);
    let mut c = server.connect();
    let a = c.request("turn on the kitchen light");
    assert_eq!(intent(&a), "turn_on");
    assert_eq!(a["text"], "turn on the kitchen light");
    assert!(a["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(a["version"], 0);
    assert!(a["slots"].is_array());
    assert!(a.get("intent_logits").is_none(), "logits only on request");
    let b = c.request(r#"{"text": "set the lamp to 40 percent", "id": "x1", "logits": true}"#);
    assert_eq!(b["id"], "x1");
    assert_eq!(intent(&b), "set_brightness");
    assert_eq!(b["intent_logits"].as_array().unwrap().len(), 9);
    let s = c.request(r#"{"cmd": "stats", "id": 3}"#);
    assert_eq!(s["id"], 3);
    assert_eq!(s["requests"]["answers"], 2);
    assert_eq!(s["model"]["version"], 0);
    assert_eq!(s["model"]["kind"], "run");
    assert!(
        s["model"]["metrics"]["valid"]["intent_accuracy"]
            .as_f64()
            .unwrap()
            > 0.9
    );
    assert!(s["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(s["latency_ms"]["p99"].as_f64().unwrap() >= s["latency_ms"]["p50"].as_f64().unwrap());
}

/// A second client asking all the time must get a right answer to every request while the first
/// one sends every kind of bad request.
#[test]
fn bad_requests_get_json_errors_and_other_clients_are_unaffected() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(&run, dir.path(), &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let mut other = server.connect();
    let flag = Arc::clone(&stop);
    let steady = std::thread::spawn(move || {
        let mut n = 0;
        while !flag.load(Ordering::SeqCst) {
            let a = other.request("lock the front door");
            assert_eq!(intent(&a), "lock_door", "{a}");
            n += 1;
        }
        n
    });

    let mut c = server.connect();
    let code = |v: &Value| {
        v["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error: {v}"))
            .to_string()
    };
    let e = c.request("{turn on the light");
    assert_eq!(code(&e), "bad_json");
    assert_eq!(e["line"], 1);
    assert_eq!(
        code(&c.request(r#"{"cmd": "reboot", "id": 9}"#)),
        "unknown_command"
    );
    let e = c.request(
        r#"{"correct": {"text": "turn on the kitchen light", "tags": ["O", "O"]}, "id": 5}"#,
    );
    assert_eq!(code(&e), "bad_correction");
    assert_eq!(e["id"], 5);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("2 labels but the text has 5 words"),
        "{e}"
    );
    assert_eq!(
        code(&c.request(r#"{"correct": {"text": "hi", "intent": "dance"}}"#)),
        "bad_correction"
    );
    // 1 MB on one line: refused without being kept in memory.
    let mut big = vec![b'a'; 1 << 20];
    big.push(b'\n');
    c.send(&big);
    let e = c.reply();
    assert_eq!(code(&e), "too_long");
    assert_eq!(e["line"], 5);
    // Binary garbage: invalid UTF-8, then control characters.
    c.send(b"\xff\xfe\x00\x01garbage\x80\n");
    assert_eq!(code(&c.reply()), "bad_text");
    c.send(b"\x00\x01\x02\x03\n");
    assert_eq!(code(&c.reply()), "bad_text");
    assert_eq!(code(&c.request("")), "bad_text");
    // Still answering on the same connection after all that.
    assert_eq!(intent(&c.request("turn off the fan")), "turn_off");

    // A client that sends half a line and closes its side gets an error for that line.
    let mut half = server.connect();
    half.send(b"turn on the li");
    half.writer.shutdown(std::net::Shutdown::Write).unwrap();
    let rest = half.rest();
    let v: Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(v["code"], "incomplete", "{rest}");
    // One that vanishes mid-line entirely.
    let mut gone = server.connect();
    gone.send(b"{\"text\": \"turn on");
    drop(gone);

    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let answered = steady
        .join()
        .expect("the other client saw only right answers");
    assert!(answered > 0);
    let s = c.request(r#"{"cmd": "stats"}"#);
    let errors = &s["requests"]["errors_by_code"];
    for (k, n) in [
        ("bad_json", 1),
        ("unknown_command", 1),
        ("bad_correction", 2),
        ("too_long", 1),
        ("bad_text", 3),
    ] {
        assert_eq!(errors[k], n, "{k}: {s}");
    }
    assert!(errors["incomplete"].as_u64().unwrap() >= 1, "{s}");
    let (status, log) = server.term();
    assert!(status.success(), "{status}\n{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn tcp_and_standard_input() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    // Standard input as a filter: answers in order, the service ends with its input.
    let mut child = edgetune()
        .args(["--threads", "2", "serve", "--run"])
        .arg(&run)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"turn on the kitchen light\n{\"cmd\": \"ping\"}\nunlock the back door")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(intent(&lines[0]), "turn_on");
    assert_eq!(lines[1]["ok"], true);
    assert_eq!(
        intent(&lines[2]),
        "unlock_door",
        "a last line without a line end is answered on stdin"
    );

    // TCP on a free loopback port (printed on standard error).
    let server = Server::start(&run, dir.path(), &["--listen", "127.0.0.1:0"]);
    let log = server.log();
    let addr = log
        .lines()
        .find_map(|l| l.strip_prefix("edgetune serve: listening on tcp "))
        .unwrap_or_else(|| panic!("no TCP address in {log}"))
        .to_string();
    let stream = TcpStream::connect(&addr).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    w.write_all(b"play some jazz\n").unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(intent(&v), "play_music");
    // Not on a public address.
    let err = edgetune()
        .args(["serve", "--run"])
        .arg(&run)
        .args(["--listen", "0.0.0.0:0", "--no-stdin"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("only loopback addresses"));
}

#[test]
fn sigterm_finishes_the_requests_in_flight_and_exits_0() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(&run, dir.path(), &[]);
    let mut clients: Vec<Client> = (0..3).map(|_| server.connect()).collect();
    // Requests sent, replies not read yet: in flight (or queued on the model) when SIGTERM comes.
    for c in &mut clients {
        for _ in 0..5 {
            c.send(b"turn on the porch light\n");
        }
    }
    std::thread::sleep(Duration::from_millis(20));
    let (status, log) = server.term();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("finishing the requests in flight"), "{log}");
    for mut c in clients {
        // Every request received before the stop is answered, whole, then the connection ends.
        let rest = c.rest();
        assert!(rest.ends_with('\n'), "{rest:?}");
        let answers: Vec<Value> = rest
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(answers.len(), 5, "{rest}");
        for v in answers {
            assert_eq!(intent(&v), "turn_on", "{v}");
        }
    }
    assert!(
        !dir.path().join("s.sock").exists(),
        "the socket file is removed"
    );
}

#[test]
fn sigint_exits_0_and_the_restart_has_the_journal() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(&run, dir.path(), &[]);
    let mut c = server.connect();
    let ack = c.request(r#"{"correct": {"text": "kill the music", "intent": "turn_off"}}"#);
    assert_eq!(ack["ok"], true, "{ack}");
    // One service per run: a second one is refused while the first runs.
    let second = edgetune()
        .args(["serve", "--run"])
        .arg(&run)
        .arg("--socket")
        .arg(dir.path().join("second.sock"))
        .args(["--no-stdin"])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another edgetune serve runs on this run"),
        "{err}"
    );
    let (status, log) = server.signal(libc::SIGINT);
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("signal 2"), "{log}");
    let server = Server::start(&run, dir.path(), &[]);
    let s = server.connect().request(r#"{"cmd": "stats"}"#);
    assert_eq!(s["journal"]["corrections"], 1, "{s}");
    assert_eq!(s["journal"]["since_retrain"], 1, "{s}");
}

/// Task names are keys of an answer, beside the keys the service adds: a model with a task named
/// like one of those is refused at start, naming the task, before anything is opened or written.
/// The restriction is the service's own: `actions check` reads the same model.
#[test]
fn a_task_named_like_a_reply_key_is_refused_at_start() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let config = run.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let mut renamed = 0;
    for t in v["model"]["tasks"].as_array_mut().unwrap() {
        if t["name"] == "urgency" {
            t["name"] = "latency_ms".into();
            renamed += 1;
        }
    }
    assert_eq!(renamed, 1, "the demo run has a task `urgency`");
    std::fs::write(&config, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let out = edgetune()
        .args(["serve", "--run"])
        .arg(&run)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("task \"latency_ms\"") && err.contains("serve adds to its answers"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !run.join("serve").exists(),
        "nothing is written before the refusal"
    );
    // `actions check` reads the same tasks and has no such restriction.
    let actions = dir.path().join("actions.toml");
    std::fs::write(
        &actions,
        "[[rule]]\nname = \"r\"\nintent = \"turn_on\"\ngpio = { chip = \"gpiochip0\", line = 1, value = \"high\" }\n",
    )
    .unwrap();
    let out = edgetune()
        .args(["actions", "check"])
        .arg(&actions)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
