//! End to end through a real pseudo-terminal pair: bytes written into the master are read
//! as lines from the slave, opened by path as a serial port (raw mode, 115200 baud); the
//! answers written back on the port are read from the master. Also measures the latency
//! from a line's last byte to the pin change it causes.
#![cfg(feature = "linux")]

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use edgetune::device::mock::{IoEvent, MockHardware};
use edgetune::device::serial::{write_json_line, LineError, SerialLineReader, SerialPort};
use edgetune::device::{Actions, Executor, Level};
use edgetune::Prediction;
use nix::sys::termios::{self, InputFlags, LocalFlags, OutputFlags};

const ACTIONS: &str = r#"
[[rule]]
name = "kitchen on"
intent = "turn_on"
slots = { room = "kitchen" }
gpio = { chip = "gpiochip0", line = 17, value = "high" }
"#;

/// A stand-in model: enough to turn the test utterances into answers.
fn model(text: &str) -> Prediction {
    let answer = Prediction::new(text);
    if text.contains("turn on") && text.contains("kitchen") {
        answer
            .with_intent("turn_on", 0.97)
            .with_slot("room", "kitchen", 0.9)
    } else if let Some(value) = text.strip_prefix("set brightness to ") {
        answer
            .with_intent("set_brightness", 0.9)
            .with_slot("value", value, 0.8)
    } else {
        answer.with_intent("unknown", 0.4)
    }
}

#[test]
fn lines_in_and_answers_out_through_a_pty() {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .expect("slave path")
        .to_string_lossy()
        .into_owned();
    assert!(slave_path.starts_with("/dev/pts/"), "{slave_path}");

    let port = SerialPort::open(&slave_path, 115_200, Duration::from_millis(20))
        .expect("open the slave as a serial port");
    assert_eq!(port.path(), slave_path);

    // The port really is in raw mode at the requested speed.
    // Read back through the kernel's termios2 view too: the speed is the real one, not a flag.
    // SAFETY: TCGETS2 fills a termios2 on a valid tty fd; the struct is plain data.
    let mut t2: nix::libc::termios2 = unsafe { std::mem::zeroed() };
    let rc = unsafe { nix::libc::ioctl(pty.slave.as_raw_fd(), nix::libc::TCGETS2, &mut t2) };
    assert_eq!(rc, 0, "TCGETS2 failed");
    assert_eq!((t2.c_ispeed, t2.c_ospeed), (115_200, 115_200));
    assert_eq!(port.baud_rate().expect("baud"), 115_200);
    let attrs = termios::tcgetattr(&pty.slave).expect("tcgetattr");
    assert!(!attrs
        .local_flags
        .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG));
    assert!(!attrs
        .input_flags
        .intersects(InputFlags::ICRNL | InputFlags::IXON));
    assert!(!attrs.output_flags.contains(OutputFlags::OPOST));

    let mut out = port.try_clone().expect("second handle");
    let mut lines = SerialLineReader::new(port, 64);

    let mut master_in = File::from(pty.master);
    let mut master_out = master_in.try_clone().expect("clone master");
    let (tx, from_master) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends with EIO once every slave handle is closed.
        while let Ok(n) = master_out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    let writer = thread::spawn(move || {
        let long = format!("{}\n", "z".repeat(200));
        let pieces: [&[u8]; 6] = [
            b"turn on the kit",
            b"chen light\r\n",
            long.as_bytes(),
            b"bad \xff\xfe line\n",
            b"set brightness",
            b" to 40%\n",
        ];
        for piece in pieces {
            master_in.write_all(piece).expect("write to master");
            thread::sleep(Duration::from_millis(50));
        }
        master_in
    });

    let actions = Actions::parse(ACTIONS, "actions.toml").expect("valid");
    let hw = MockHardware::new();
    let io_log = hw.log();
    let mut exec = Executor::new(&actions, hw).expect("opens");

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut items = Vec::new();
    let mut timeouts = 0;
    let mut sent = Vec::new();
    let mut kitchen_received_at = None;
    while items.len() < 4 {
        assert!(Instant::now() < deadline, "only got {items:?}");
        let item = lines
            .next_line()
            .expect("a serial port has no end of stream");
        match item {
            Err(e) if e.is_timeout() => timeouts += 1,
            Err(LineError::Read(e)) => panic!("read failed: {e:?}"),
            Err(e) => items.push(Err(e.to_string())),
            Ok(line) => {
                let answer = model(&line.text);
                let fired = exec.execute(&answer);
                if line.text.contains("kitchen") {
                    assert_eq!(fired.len(), 1, "{fired:?}");
                    kitchen_received_at = Some(line.received_at);
                }
                write_json_line(&mut out, &answer).expect("write answer");
                sent.push(answer);
                items.push(Ok(line.text));
            }
        }
    }
    assert!(
        timeouts > 0,
        "the 20 ms read timeout must tick while the writer pauses"
    );
    assert_eq!(
        items,
        [
            Ok("turn on the kitchen light".to_owned()),
            Err("line too long: 200 bytes (limit 64); discarded".to_owned()),
            Err("line is not valid UTF-8 (first bad byte at offset 4); discarded".to_owned()),
            Ok("set brightness to 40%".to_owned()),
        ]
    );

    // The master reads exactly the JSON lines written back (no echo, no \r added).
    let mut received = Vec::new();
    while received.iter().filter(|b| **b == b'\n').count() < sent.len() {
        let chunk = from_master
            .recv_timeout(Duration::from_secs(5))
            .expect("answers reach the master");
        received.extend(chunk);
    }
    let text = String::from_utf8(received).expect("utf-8 from master");
    assert!(!text.contains('\r'), "{text:?}");
    let back: Vec<&str> = text.lines().collect();
    let want: Vec<String> = sent
        .iter()
        .map(|p| serde_json::to_string(p).unwrap())
        .collect();
    assert_eq!(back, want);

    // Latency from the line's last byte to the pin change, from the mock's timestamps.
    let pin_set = io_log
        .records()
        .into_iter()
        .find(|r| {
            matches!(
                &r.event,
                IoEvent::Pin {
                    level: Level::High,
                    ..
                }
            )
        })
        .expect("the kitchen rule set the pin");
    let received_at = kitchen_received_at.expect("kitchen line seen");
    let latency = pin_set
        .at
        .checked_duration_since(received_at)
        .expect("the pin changed after the line arrived");
    eprintln!("serial line -> pin latency: {latency:?}");
    assert!(latency < Duration::from_millis(500), "{latency:?}");

    let _master = writer.join().expect("writer thread");
}

#[test]
fn opening_a_missing_port_names_the_path() {
    let err = SerialPort::open("/dev/does-not-exist", 9600, Duration::from_millis(10))
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(
        msg.starts_with("/dev/does-not-exist: cannot open serial port at 9600 baud: "),
        "{msg}"
    );
}
