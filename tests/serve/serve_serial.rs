//! The serial path of the service end to end through a pseudo-terminal pair (real termios): the
//! test writes utterances into the master, the service reads them from the slave as a serial
//! port, answers on it (read back from the master) and drives the mock pins; a line split across
//! reads, a too-long line and non-UTF-8 bytes included.
#![cfg(all(feature = "real-model", feature = "linux"))]

use crate::support as common;
use crate::support::serve as serve_support;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

use edgetune::device::mock::{IoEvent, MockHardware};
use edgetune::device::{Actions, Executor, Level, PinSpec};
use edgetune::serve::{DeviceHub, ServeOptions, Service};
use edgetune::ModelPath;
use serde_json::Value;
use serve_support::{fresh_run, intent};

const ACTIONS: &str = r#"
[[rule]]
name = "kitchen on"
intent = "turn_on"
slots = { room = "kitchen" }
gpio = { chip = "gpiochip0", line = 17, value = "high" }

[[rule]]
name = "dimmer"
intent = "set_brightness"
pwm = { chip = 0, channel = 0, period_ns = 1000000 }
"#;

#[test]
fn utterances_in_and_answers_out_through_a_pty() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned();

    edgetune::backbone::init_runtime(None).unwrap();
    let mut opts = ServeOptions::new(ModelPath::Run(run), 2);
    opts.stdin = false;
    opts.serial = Some((slave, 115_200));
    let svc = Service::load(opts).unwrap();
    let actions = Actions::parse(ACTIONS, "actions.toml").unwrap();
    let hw = MockHardware::new();
    let log = hw.log();
    svc.start(DeviceHub {
        actions: Some(Box::new(Executor::new(&actions, hw).unwrap())),
        ..DeviceHub::default()
    })
    .unwrap();
    log.take();

    let mut master = File::from(pty.master);
    let mut replies = BufReader::new(master.try_clone().unwrap());
    let mut next = || {
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };

    // One line in two writes, 50 ms apart: two reads on the port.
    master.write_all(b"turn on the light in the kit").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    master.write_all(b"chen\r\n").unwrap();
    let a = next();
    assert_eq!(intent(&a), "turn_on", "{a}");
    assert_eq!(a["text"], "turn on the light in the kitchen");
    assert_eq!(a["actions"][0]["rule"], "kitchen on");
    assert_eq!(
        log.take(),
        [IoEvent::Pin {
            pin: PinSpec::new("gpiochip0", 17).unwrap(),
            level: Level::High
        }]
    );

    // Longer than the serial limit (1024 bytes): one error, then the port goes on.
    master
        .write_all(format!("{}\n", "x".repeat(3000)).as_bytes())
        .unwrap();
    let e = next();
    assert_eq!(e["code"], "too_long", "{e}");
    master.write_all(b"bad \xff\xfe bytes\n").unwrap();
    let e = next();
    assert_eq!(e["code"], "bad_text", "{e}");
    assert_eq!(e["line"], 3);

    master
        .write_all(b"set the desk lamp to 40 percent\n")
        .unwrap();
    let a = next();
    assert_eq!(intent(&a), "set_brightness", "{a}");
    assert_eq!(
        log.take(),
        [IoEvent::Duty {
            chip: 0,
            channel: 0,
            duty: 400,
            max: 1000
        }]
    );

    // Commands work on the serial line too.
    master.write_all(b"{\"cmd\": \"ping\"}\n").unwrap();
    assert_eq!(next()["ok"], true);
    assert_eq!(svc.finish(), 0);
    drop(pty.slave);
}

/// The binary itself: `edgetune serve --serial PTY --actions examples/actions.toml --dry-run-io`
/// answers on the pseudo-terminal and prints what each rule would do, touching no hardware.
#[test]
fn the_binary_answers_on_a_serial_pty_with_dry_run_io() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // Raw from the start, as the service sets it: otherwise the pty's default echo would send
    // lines written before the service opened the port back to the master.
    let mut raw = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    nix::sys::termios::cfmakeraw(&mut raw);
    nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &raw).unwrap();
    let stderr = dir.path().join("stderr.txt");
    let mut child = serve_support::edgetune()
        .args(["--threads", "2", "serve", "--no-stdin", "--run"])
        .arg(&run)
        .args(["--serial", &slave, "--baud", "115200", "--dry-run-io"])
        .arg("--actions")
        .arg(serve_support::root().join("examples/actions.toml"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut master = File::from(pty.master);
    let mut replies = BufReader::new(master.try_clone().unwrap());
    let mut next = || {
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };
    // Ready once it answers a ping on the line (the port is open from the start: bytes written
    // before the service reads them wait in the pty).
    master.write_all(b"{\"cmd\": \"ping\"}\n").unwrap();
    assert_eq!(next()["ok"], true);
    master.write_all(b"turn on the light in the kit").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    master.write_all(b"chen\n").unwrap();
    let a = next();
    assert_eq!(intent(&a), "turn_on", "{a}");
    assert_eq!(a["actions"][0]["rule"], "kitchen light on", "{a}");
    assert_eq!(a["actions"][0]["ok"], true, "{a}");
    master.write_all(b"\xc3\x28 not utf-8\n").unwrap();
    assert_eq!(next()["code"], "bad_text");
    master
        .write_all(format!("{}\n", "y".repeat(2000)).as_bytes())
        .unwrap();
    assert_eq!(next()["code"], "too_long");
    master
        .write_all(b"turn off the light in the kitchen\n")
        .unwrap();
    let a = next();
    assert_eq!(intent(&a), "turn_off", "{a}");
    // SAFETY: a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(status.success(), "{status}\n{log}");
    assert!(
        log.contains("rule \"kitchen light on\": gpio /dev/gpiochip0:17 -> high"),
        "{log}"
    );
    assert!(
        log.contains("rule \"kitchen light off\": gpio /dev/gpiochip0:17 -> low"),
        "{log}"
    );
    drop(pty.slave);
}
