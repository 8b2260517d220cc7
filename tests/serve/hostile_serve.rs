//! `edgetune serve` under hostile conditions (issue 23), over real sockets with the real model:
//! links and special files in the run's serve folder, a disk that fills, oversized and unlearnable
//! corrections, idle connections, local users on the socket and the TCP port, and retrains with
//! nothing new. Each test fails on the code before the issue.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::hostile as hostile_support;
use crate::support::serve as serve_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hostile_support::Tmpfs;
use serde_json::Value;
use serve_support::{edgetune, fresh_run, wait_stats, Server};

/// `serve --run RUN` expected to fail at start: its standard error, within 120 s (a start-up that
/// blocks on a FIFO or reads /dev/zero fails the test).
fn start_fails(run: &Path) -> String {
    let mut child = edgetune()
        .args(["--threads", "2", "serve", "--run"])
        .arg(run)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert!(!status.success(), "serve started: {err}");
            return err;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("serve still starting after 120 s (blocked on a special file?)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo of a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn no_link_in_the_serve_folder_is_followed_and_no_content_is_echoed() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let victim = outside.join("victim.txt");
    std::fs::write(&victim, "root:x:0:0:SECRET-LINE\n").unwrap();
    std::fs::create_dir(outside.join(".tmp-gen-000001")).unwrap();
    std::fs::write(outside.join(".tmp-gen-000001/keep"), "x").unwrap();

    // The journal as a link to an outside file: refused, the file untouched.
    let run = fresh_run(&dir.path().join("a"));
    std::fs::create_dir(run.join("serve")).unwrap();
    symlink(&victim, run.join("serve/journal.jsonl")).unwrap();
    let e = start_fails(&run);
    assert!(
        e.contains("journal.jsonl") && e.contains("symbolic link"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root:x:0:0:SECRET-LINE\n"
    );

    // The models folder as a link: nothing deleted where it points.
    let run = fresh_run(&dir.path().join("b"));
    std::fs::create_dir(run.join("serve")).unwrap();
    symlink(&outside, run.join("serve/models")).unwrap();
    let e = start_fails(&run);
    assert!(e.contains("models") && e.contains("symbolic link"), "{e}");
    assert!(
        outside.join(".tmp-gen-000001/keep").exists(),
        "a file outside the run was deleted"
    );

    // The versions folder as a link: refused, nothing deleted where it points.
    let run = fresh_run(&dir.path().join("b2"));
    symlink(&outside, run.join("versions")).unwrap();
    let e = start_fails(&run);
    assert!(e.contains("versions") && e.contains("symbolic link"), "{e}");
    assert!(
        outside.join(".tmp-gen-000001/keep").exists(),
        "a file outside the run was deleted"
    );
    std::fs::create_dir(outside.join(".tmp-1-1")).unwrap();
    let e = start_fails(&run);
    assert!(e.contains("symbolic link"), "{e}");
    assert!(
        outside.join(".tmp-1-1").exists(),
        "a folder outside the run was deleted"
    );

    // `current` as a link to a secret: refused, and the secret is not in the message.
    let run = fresh_run(&dir.path().join("c"));
    std::fs::create_dir(run.join("serve")).unwrap();
    symlink(&victim, run.join("serve/current")).unwrap();
    let e = start_fails(&run);
    assert!(
        !e.contains("SECRET-LINE"),
        "a file's content is echoed: {e}"
    );
    // `current` naming a model folder that is a link out of the run.
    std::fs::remove_file(run.join("serve/current")).unwrap();
    std::fs::write(run.join("serve/current"), "models/gen-000001\n").unwrap();
    std::fs::create_dir_all(run.join("serve/models")).unwrap();
    let other = fresh_run(&dir.path().join("d"));
    symlink(&other, run.join("serve/models/gen-000001")).unwrap();
    let e = start_fails(&run);
    assert!(e.contains("not a folder of the run"), "{e}");

    // The weights as a link out of the run.
    let run = fresh_run(&dir.path().join("e"));
    let w = run.join("heads.safetensors");
    std::fs::rename(&w, outside.join("heads.safetensors")).unwrap();
    symlink(outside.join("heads.safetensors"), &w).unwrap();
    let e = start_fails(&run);
    assert!(e.contains("leads outside"), "{e}");
}

#[test]
fn special_files_in_a_run_fail_start_up_at_once() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["serve/current", "serve/journal.jsonl", "config.json"]
        .iter()
        .enumerate()
    {
        for fifo in [true, false] {
            let run = fresh_run(&dir.path().join(format!("{i}{fifo}")));
            std::fs::create_dir_all(run.join("serve")).unwrap();
            let path = run.join(name);
            let _ = std::fs::remove_file(&path);
            if fifo {
                mkfifo(&path);
            } else {
                symlink("/dev/zero", &path).unwrap();
            }
            let e = start_fails(&run);
            assert!(
                e.contains("not a regular file") || e.contains("symbolic link"),
                "{name}: {e}"
            );
        }
    }
}

#[test]
fn a_full_disk_is_an_error_answer_and_loses_no_acknowledged_correction() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let disk = Tmpfs::mount(&run.join("serve"), "128k");
    let server = Server::start(&run, dir.path(), &["--no-stdin"]);
    let mut c = server.connect();
    // Fill the disk but for a little.
    {
        let mut f = std::fs::File::create(disk.0.join("filler")).unwrap();
        while f.write_all(&[b'x'; 512]).is_ok() {}
    }
    let mut acked = 0;
    let mut full = 0;
    for i in 0..400 {
        let r = c.request(&format!(
            r#"{{"correct": {{"text": "switch the hall lamp on please number {i} of many more words", "intent": "turn_on"}}}}"#
        ));
        if r["ok"] == true {
            acked += 1;
        } else {
            assert_eq!(r["code"], "full", "{r}");
            full += 1;
            if full == 3 {
                break;
            }
        }
    }
    assert_eq!(full, 3, "the disk never filled");
    // Still answering.
    assert!(c.request("turn on the kitchen light")["intent"].is_object());
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    let r = c.request(r#"{"correct": {"text": "after the disk was freed", "intent": "turn_on"}}"#);
    assert_eq!(r["ok"], true, "{r}");
    acked += 1;
    drop(c);
    server.kill9();
    let server = Server::start(&run, dir.path(), &["--no-stdin"]);
    let mut c = server.connect();
    let s = wait_stats(&mut c, |_| true);
    assert_eq!(
        s["journal"]["corrections"],
        acked,
        "acknowledged corrections lost after a full disk: {s}\n{}",
        server.log()
    );
    drop(c);
    drop(server);
}

#[test]
fn corrections_are_capped_validated_and_a_full_journal_is_an_error_answer() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(
        &run,
        dir.path(),
        &["--no-stdin", "--max-journal-bytes", "4K"],
    );
    let mut c = server.connect();
    let words = "word ".repeat(300);
    let r = c.request(&format!(
        r#"{{"correct": {{"text": "{words}", "intent": "turn_on"}}}}"#
    ));
    assert_eq!(r["code"], "bad_correction", "{r}");
    let r = c.request(
        r#"{"correct": {"text": "night light on", "tags": ["I-device", "I-device", "O"]}}"#,
    );
    assert_eq!(r["code"], "bad_correction", "{r}");
    assert!(r["error"].as_str().unwrap().contains("invalid BIO"), "{r}");
    let r = c.request(r#"{"correct": {"text": "lamp please", "intent": "turn_on"}}"#);
    let first = r["seq"].as_u64().unwrap_or_else(|| panic!("{r}"));
    let r = c.request(r#"{"correct": {"text": "Lamp please", "intent": "turn_off"}}"#);
    assert_eq!(r["code"], "bad_correction", "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains(&format!("\"forget\": {first}")),
        "{r}"
    );
    let mut acked = 1;
    let mut last = Value::Null;
    for i in 0..100 {
        last = c.request(&format!(
            r#"{{"correct": {{"text": "lamp number {i}", "intent": "turn_on"}}}}"#
        ));
        if last["ok"] != true {
            break;
        }
        acked += 1;
    }
    assert_eq!(last["code"], "full", "{last}");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("--max-journal-bytes"),
        "{last}"
    );
    let r = c.request(&format!(r#"{{"forget": {first}}}"#));
    assert_eq!(r["ok"], true, "a withdrawal is taken when full: {r}");
    acked -= 1;
    drop(c);
    server.kill9();
    let server = Server::start(
        &run,
        dir.path(),
        &["--no-stdin", "--max-journal-bytes", "4K"],
    );
    let mut c = server.connect();
    let s = wait_stats(&mut c, |_| true);
    assert_eq!(s["journal"]["corrections"], acked, "{s}");
}

#[test]
fn a_retrain_with_nothing_new_is_skipped_and_bad_replayed_entries_are_skipped() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let server = Server::start(&run, dir.path(), &["--no-stdin"]);
    let mut c = server.connect();
    let r = c.request(r#"{"cmd": "retrain", "wait": true}"#);
    let reason = r["retrain"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("skipped: nothing new"), "{r}");
    assert_eq!(r["retrain"]["swapped"], false);
    assert!(
        !run.join("serve/models/gen-000001").exists(),
        "a version was written for nothing"
    );
    // Two corrections, then one of them made unlearnable behind the service's back.
    for t in ["lamp please", "the night light now"] {
        let r = c.request(&format!(
            r#"{{"correct": {{"text": "{t}", "intent": "turn_on"}}}}"#
        ));
        assert_eq!(r["ok"], true, "{r}");
    }
    drop(c);
    server.kill9();
    let journal = run.join("serve/journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[1] = lines[1].replace("\"turn_on\"", "\"dance\"");
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let server = Server::start(&run, dir.path(), &["--no-stdin"]);
    let mut c = server.connect();
    let r = c.request(r#"{"cmd": "retrain", "wait": true}"#);
    let reason = r["retrain"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!reason.contains("retrain failed"), "{r}");
    assert_eq!(r["retrain"]["corrections"], 1, "{r}");
    drop(c);
    let (_, log) = server.term();
    assert!(
        log.contains("journal.jsonl:2: correction 2 skipped"),
        "no warning naming the journal line: {log}"
    );
}

/// The `tcp ADDR` the service printed.
fn tcp_addr(server: &Server) -> String {
    let log = server.log();
    log.lines()
        .find_map(|l| l.strip_prefix("edgetune serve: listening on tcp "))
        .unwrap_or_else(|| panic!("no TCP address in {log}"))
        .to_string()
}

fn tcp(addr: &str) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    (s.try_clone().unwrap(), BufReader::new(s))
}

fn line(r: &mut BufReader<TcpStream>) -> Value {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"))
}

#[test]
fn idle_connections_time_out_and_tcp_leaves_a_slot_to_the_socket() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let args = [
        "--no-stdin",
        "--listen",
        "127.0.0.1:0",
        "--max-clients",
        "3",
        "--idle-timeout",
        "8",
    ];
    let server = Server::start(&run, dir.path(), &args);
    let addr = tcp_addr(&server);
    // The start-up's ping connection has ended (it held a slot until then).
    std::thread::sleep(Duration::from_millis(1000));
    let idle: Vec<_> = (0..2).map(|_| tcp(&addr)).collect();
    std::thread::sleep(Duration::from_millis(1000));
    let (_w, mut r) = tcp(&addr);
    assert_eq!(line(&mut r)["code"], "busy");
    let mut local = server.connect();
    assert_eq!(
        local.request(r#"{"cmd": "ping"}"#)["ok"],
        true,
        "the socket's slot was taken"
    );
    for (_, mut r) in idle {
        let t0 = Instant::now();
        assert_eq!(line(&mut r)["code"], "idle");
        assert!(t0.elapsed() < Duration::from_secs(30));
        let mut rest = String::new();
        assert_eq!(
            r.read_line(&mut rest).unwrap(),
            0,
            "still open after the idle reply"
        );
    }
}

#[test]
fn the_socket_is_owner_only_and_tcp_needs_the_token() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let token = dir.path().join("token");
    std::fs::write(&token, "correct-horse-battery-staple\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let socket = dir.path().join("s.sock");
    let serve = |extra: &[&str]| {
        let mut cmd = edgetune();
        cmd.args(["--threads", "2", "serve", "--no-stdin", "--run"])
            .arg(&run)
            .arg("--socket")
            .arg(&socket)
            .args(["--listen", "127.0.0.1:0", "--token-file"])
            .arg(&token)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: umask(2) in the child before exec; async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        cmd
    };
    let out = serve(&[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = serve(&[]).spawn().unwrap();
    let t0 = Instant::now();
    let mut log = String::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut l = String::new();
        assert!(stderr.read_line(&mut l).unwrap() > 0, "serve ended: {log}");
        log.push_str(&l);
        if let Some(a) = l.trim().strip_prefix("edgetune serve: listening on tcp ") {
            break a.to_string();
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "{log}");
    };
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket follows the umask");
    let (mut w, mut r) = tcp(&addr);
    w.write_all(b"{\"cmd\": \"ping\"}\n").unwrap();
    assert_eq!(line(&mut r)["code"], "unauthorized");
    let mut rest = String::new();
    assert_eq!(
        r.read_line(&mut rest).unwrap(),
        0,
        "still open after a wrong token"
    );
    let (mut w, mut r) = tcp(&addr);
    w.write_all(b"{\"token\": \"correct-horse-battery-staple\"}\n{\"cmd\": \"ping\"}\n")
        .unwrap();
    assert_eq!(line(&mut r)["ok"], true);
    assert_eq!(line(&mut r)["ok"], true);
    let _ = child.kill();
    let _ = child.wait();
}
