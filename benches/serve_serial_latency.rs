//! Latency from a serial line's last byte to the pin change it causes, against `bench`'s batch-1
//! p50 for the same merged model.
//!
//! The service (library, 2 threads) reads utterances from the slave side of a pseudo-terminal pair
//! (real termios, 115200 baud) and fires rules on recording mock pins, which timestamp every
//! change. The benchmark writes each line into the master, notes when the write of its last byte
//! returned, and reads the answer back; the latency is the pin change's timestamp minus that
//! instant. Utterances alternate "on" and "off", so every one changes the pin.
//!
//! Run: `cargo bench --bench serve_serial_latency` (needs `.runtime/` and `.models/default`;
//! utterances: `EDGETUNE_BENCH_REQUESTS`, default 1,000).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::time::Instant;

use edgetune::device::mock::{IoEvent, MockHardware};
use edgetune::device::{Actions, Executor};
use edgetune::serve::{DeviceHub, ServeOptions, Service};
use edgetune::ModelPath;
use support::bench::{bench_latency, merged_model, quantile};

const ACTIONS: &str = r#"
[[rule]]
name = "kitchen on"
intent = "turn_on"
slots = { room = "kitchen" }
gpio = { chip = "gpiochip0", line = 17, value = "high" }

[[rule]]
name = "kitchen off"
intent = "turn_off"
slots = { room = "kitchen" }
gpio = { chip = "gpiochip0", line = 17, value = "low" }
"#;

const LINES: [&str; 2] = [
    "turn on the light in the kitchen",
    "turn off the light in the kitchen",
];

fn main() {
    let n: usize = std::env::var("EDGETUNE_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let model = merged_model();
    // `bench` times the same two sentences.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sentences.txt");
    std::fs::write(&input, LINES.join("\n")).unwrap();
    let (bench_p50, _) = bench_latency(&model, 2, 2000, Some(&input));

    std::env::set_var("RAYON_NUM_THREADS", "2");
    edgetune::backbone::init_runtime(None).expect("ONNX Runtime");
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut opts = ServeOptions::new(ModelPath::Merged(model.clone()), 2);
    opts.stdin = false;
    opts.min_prob = 0.0;
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

    let mut master = File::from(pty.master);
    let mut replies = BufReader::new(master.try_clone().unwrap());
    let mut reply = String::new();
    let mut to_pin = Vec::with_capacity(n);
    let mut answer_ms = Vec::with_capacity(n);
    for i in 0..(n + 50) {
        log.take();
        let line = format!("{}\n", LINES[i % 2]);
        master.write_all(line.as_bytes()).unwrap();
        let sent = Instant::now();
        reply.clear();
        replies.read_line(&mut reply).unwrap();
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        let changed = log
            .records()
            .into_iter()
            .find(|r| matches!(r.event, IoEvent::Pin { .. }))
            .unwrap_or_else(|| panic!("no pin change for {line:?}: {reply}"));
        // The first 50 warm the model up.
        if i >= 50 {
            to_pin.push(changed.at.saturating_duration_since(sent).as_secs_f64() * 1e3);
            answer_ms.push(v["latency_ms"].as_f64().unwrap());
        }
    }
    svc.finish();
    to_pin.sort_by(f64::total_cmp);
    answer_ms.sort_by(f64::total_cmp);
    let p50 = quantile(&to_pin, 0.5);
    println!("model: {}", model.display());
    println!("bench (in process, batch 1, 2 threads, spinning as serve, the same 2 sentences): p50 {bench_p50:.2} ms");
    println!(
        "serial last byte -> pin change over {n} utterances: p50 {p50:.2} ms, p99 {:.2} ms; p50 - bench p50 = {:+.2} ms",
        quantile(&to_pin, 0.99),
        p50 - bench_p50
    );
    println!(
        "the service's own answer latency (latency_ms): p50 {:.2} ms",
        quantile(&answer_ms, 0.5)
    );
}
