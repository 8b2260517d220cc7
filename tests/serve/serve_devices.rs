//! The service driving devices (recording mocks; the demo model answers): exact pin transitions,
//! duty cycles and I2C writes for a script of utterances, rules that must not fire, a hardware
//! error that is answered while the service goes on, the feedback button and the status LED.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::serve as serve_support;

use std::path::Path;
use std::time::{Duration, Instant};

use edgetune::device::mock::{Faults, IoEvent, IoLog, MockHardware, MockInputPin, MockOutputPin};
use edgetune::device::{
    Actions, Executor, FeedbackButton, LedState, Level, PinSpec, StatusLed, StatusLedThread,
    DEFAULT_DEBOUNCE,
};
use edgetune::serve::devices::check_actions;
use edgetune::serve::{DeviceHub, ServeOptions, Service};
use edgetune::ModelPath;
use serde_json::Value;
use serve_support::{fresh_run, intent};

const ACTIONS: &str = r#"
[[rule]]
name = "kitchen on"
intent = "turn_on"
min_prob = 0.7
slots = { room = "kitchen" }
gpio = { chip = "gpiochip0", line = 17, value = "high" }

[[rule]]
name = "kitchen off"
intent = "turn_off"
min_prob = 0.7
slots = { room = "kitchen" }
gpio = { chip = "gpiochip0", line = 17, value = "low" }

[[rule]]
name = "dimmer"
intent = "set_brightness"
pwm = { chip = 0, channel = 0, period_ns = 1000000, min = 5, max = 100 }

[[rule]]
name = "unlock"
intent = "unlock_door"
min_prob = 0.9
slots = { device = ["front door", "door"] }
i2c = { bus = "/dev/i2c-1", address = 0x42, bytes = [0x01, 0x00] }

[[rule]]
name = "buzzer"
intent = "unlock_door"
min_prob = 0.9
slots = { device = ["front door", "door"] }
gpio = { chip = "gpiochip0", line = 23, value = "high", pulse_ms = 300 }

[[rule]]
name = "lock"
intent = "lock_door"
i2c = { bus = "/dev/i2c-1", address = 0x42, bytes = [0x01, 0xFF] }
"#;

fn pin(line: u32) -> PinSpec {
    PinSpec::new("gpiochip0", line).unwrap()
}

fn service(run: &Path, min_prob: f32) -> Service {
    edgetune::backbone::init_runtime(None).expect("ONNX Runtime");
    let mut opts = ServeOptions::new(ModelPath::Run(run.to_path_buf()), 2);
    opts.stdin = false;
    opts.min_prob = min_prob;
    opts.cache_dir = Some(serve_support::cache());
    opts.retrain_priority = edgetune::serve::priority::Priority::Normal;
    Service::load(opts).expect("service loads")
}

fn with_mocks(svc: &Service) -> (IoLog, Faults) {
    let actions = Actions::parse(ACTIONS, "actions.toml").unwrap();
    check_actions(&actions, svc.tasks(), None, None).expect("the rules fit the demo model");
    let hw = MockHardware::new();
    let (log, faults) = (hw.log(), hw.faults());
    let exec = Executor::new(&actions, hw).unwrap();
    svc.start(DeviceHub {
        actions: Some(Box::new(exec)),
        ..DeviceHub::default()
    })
    .unwrap();
    (log, faults)
}

fn fired(v: &Value) -> Vec<(String, bool)> {
    v["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["rule"].as_str().unwrap().to_string(),
                        f["ok"].as_bool().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_script_of_utterances_drives_exact_transitions() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let svc = service(&run, 0.5);
    let (log, faults) = with_mocks(&svc);
    assert_eq!(
        log.take(),
        [
            IoEvent::OutputOpened {
                pin: pin(17),
                initial: Level::Low
            },
            IoEvent::PwmOpened {
                chip: 0,
                channel: 0,
                period_ns: 1_000_000
            },
            IoEvent::I2cOpened {
                bus: "/dev/i2c-1".into()
            },
            IoEvent::OutputOpened {
                pin: pin(23),
                initial: Level::Low
            },
        ],
        "each device opened once, in the order of the rules first using it"
    );
    let mut n = 0;
    let mut say = |text: &str| {
        n += 1;
        svc.handle_line(text, n)
    };
    let script: [(&str, &[&str], Vec<IoEvent>); 8] = [
        (
            "turn on the light in the kitchen",
            &["kitchen on"],
            vec![IoEvent::Pin {
                pin: pin(17),
                level: Level::High,
            }],
        ),
        // Another room: no rule.
        ("turn on the light in the garage", &[], vec![]),
        (
            "set the desk lamp to 40 percent",
            &["dimmer"],
            vec![IoEvent::Duty {
                chip: 0,
                channel: 0,
                duty: 400,
                max: 1000,
            }],
        ),
        // Below the rule's minimum: clamped to 5 %.
        (
            "dim the lights to 3 percent",
            &["dimmer"],
            vec![IoEvent::Duty {
                chip: 0,
                channel: 0,
                duty: 50,
                max: 1000,
            }],
        ),
        (
            "unlock the front door",
            &["unlock", "buzzer"],
            vec![
                IoEvent::I2cWrite {
                    bus: "/dev/i2c-1".into(),
                    address: 0x42,
                    bytes: vec![0x01, 0x00],
                },
                IoEvent::Pin {
                    pin: pin(23),
                    level: Level::High,
                },
            ],
        ),
        ("what is the weather in paris", &[], vec![]),
        (
            "turn off the light in the kitchen",
            &["kitchen off"],
            vec![IoEvent::Pin {
                pin: pin(17),
                level: Level::Low,
            }],
        ),
        (
            "lock the front door",
            &["lock"],
            vec![IoEvent::I2cWrite {
                bus: "/dev/i2c-1".into(),
                address: 0x42,
                bytes: vec![0x01, 0xFF],
            }],
        ),
    ];
    for (text, rules, events) in script {
        let v = say(text);
        let names: Vec<String> = fired(&v)
            .into_iter()
            .map(|(r, ok)| {
                assert!(ok, "{text}: {v}");
                r
            })
            .collect();
        assert_eq!(names, rules, "{text}: {v}");
        assert_eq!(log.take(), events, "{text}");
    }
    // The buzzer's pulse ends 300 ms after it started, on the device thread.
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(
        log.take(),
        [IoEvent::Pin {
            pin: pin(23),
            level: Level::Low
        }]
    );

    // A hardware error: answered (with the error), nothing written, and the service goes on.
    faults.fail_next("/dev/i2c-1", 1);
    let v = say("lock the front door");
    assert_eq!(intent(&v), "lock_door");
    assert_eq!(fired(&v), [("lock".to_string(), false)]);
    let error = v["actions"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("/dev/i2c-1") && error.contains("transaction"),
        "{v}"
    );
    assert_eq!(log.take(), []);
    let v = say("lock the front door");
    assert_eq!(fired(&v), [("lock".to_string(), true)]);
    assert_eq!(log.take().len(), 1);
    assert_eq!(svc.finish(), 0);
}

#[test]
fn unknown_answers_fire_nothing() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    // Every answer below probability 1 is "unknown".
    let svc = service(&run, 1.0);
    let (log, _) = with_mocks(&svc);
    log.take();
    let v = svc.handle_line("turn on the light in the kitchen", 1);
    assert_eq!(v["unknown"], true, "{v}");
    assert!(v.get("actions").is_none());
    assert_eq!(log.take(), []);
    svc.finish();
}

#[test]
fn the_button_journals_the_last_answer_as_wrong_and_the_led_blinks_while_retraining() {
    common::require_setup();
    let dir = tempfile::tempdir().unwrap();
    let run = fresh_run(dir.path());
    let svc = service(&run, 0.5);
    let led_log = IoLog::default();
    let led_pin = MockOutputPin::new(pin(22), led_log.clone(), Faults::default());
    let led = StatusLedThread::spawn(
        StatusLed::with_blink_period(led_pin, Duration::from_millis(100)),
        LedState::Serving,
    )
    .unwrap();
    let button_pin = MockInputPin::new("/dev/gpiochip0:27", Level::High, Faults::default());
    let button = FeedbackButton::new(button_pin.clone(), Level::Low, DEFAULT_DEBOUNCE);
    svc.start(DeviceHub {
        actions: None,
        led: Some(led),
        button: Some(Box::new(button)),
    })
    .unwrap();

    let v = svc.handle_line("i am freezing in here", 1);
    let wrong = intent(&v).to_string();
    assert_ne!(wrong, "set_temperature");
    // Press for 300 ms (debounced: one press), then release. The device thread polls every 5 ms;
    // on a machine busy with other work a poll can come late, so the press is repeated (up to 5
    // times) until it is seen.
    let mut stats = Value::Null;
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        button_pin.set(Level::Low);
        std::thread::sleep(Duration::from_millis(300));
        button_pin.set(Level::High);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            stats = svc.handle_line(r#"{"cmd": "stats"}"#, 2);
            if stats["journal"]["corrections"] != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if stats["journal"]["corrections"] != 0 {
            break;
        }
    }
    assert_eq!(
        stats["journal"]["corrections"], 1,
        "one press, one correction: {stats}"
    );
    let journal = std::fs::read_to_string(run.join("serve/journal.jsonl")).unwrap();
    let entry: Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    let c = &entry["correct"];
    assert_eq!(c["text"], "i am freezing in here");
    assert_eq!(c["source"]["kind"], "button");
    assert_eq!(c["source"]["rejected"]["intent"], wrong.as_str());
    assert_ne!(
        c["labels"]["sentence"]["intent"],
        wrong.as_str(),
        "the runner-up is taken as right"
    );
    assert_eq!(c["given"], serde_json::json!(["intent"]));

    // The LED: steady on while serving, blinking while the retrain runs, steady again after.
    let r = svc.handle_line(r#"{"cmd": "retrain", "wait": true}"#, 3);
    assert_eq!(r["ok"], true, "{r}");
    std::thread::sleep(Duration::from_millis(150));
    let levels: Vec<Level> = led_log
        .events()
        .into_iter()
        .map(|e| match e {
            IoEvent::Pin { level, .. } => level,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(levels.first(), Some(&Level::High), "{levels:?}");
    assert_eq!(levels.last(), Some(&Level::High), "{levels:?}");
    let lows = levels.iter().filter(|l| **l == Level::Low).count();
    assert!(lows >= 2, "the LED blinked during the retrain: {levels:?}");
    for w in levels.windows(2) {
        assert_ne!(w[0], w[1], "only changes are written: {levels:?}");
    }
    svc.finish();
    assert_eq!(
        led_log.events().last(),
        Some(&IoEvent::Pin {
            pin: pin(22),
            level: Level::Low
        }),
        "off at the end"
    );
}
