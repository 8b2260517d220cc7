//! The executor against recording mocks and a manual clock: exact pin transitions, duty
//! cycles and I2C writes for a script of answers, including rules that must not fire,
//! pulses, clamping and hardware errors.

use std::time::{Duration, Instant};

use edgetune::device::mock::{IoEvent, MockHardware};
use edgetune::device::{
    Actions, Clock, DryRunHardware, Duty, Effect, Executor, Fired, Level, ManualClock, Outcome,
    PinSpec,
};
use edgetune::Prediction;

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
pwm = { chip = 0, channel = 0, period_ns = 1000000, min = 10, max = 90 }

[[rule]]
name = "unlock"
intent = "unlock"
min_prob = 0.9
slots = { device = "door" }
i2c = { bus = "/dev/i2c-1", address = 0x42, bytes = [0x01, 0x00] }

[[rule]]
name = "buzzer"
intent = "unlock"
min_prob = 0.9
slots = { device = "door" }
gpio = { chip = "gpiochip0", line = 23, value = "high", pulse_ms = 300 }

[[rule]]
name = "silence"
intent = "stop"
gpio = { chip = "gpiochip0", line = 23, value = "low" }

[[rule]]
name = "complaint"
when = { sentiment = "negative" }
spans = { ner = { location = "office" } }
gpio = { chip = "gpiochip0", line = 24, value = "high" }
"#;

fn actions() -> Actions {
    Actions::parse(ACTIONS, "actions.toml").expect("test actions are valid")
}

fn pin(line: u32) -> PinSpec {
    PinSpec::new("gpiochip0", line).expect("valid pin")
}

fn set(line: u32, level: Level) -> IoEvent {
    IoEvent::Pin {
        pin: pin(line),
        level,
    }
}

fn duty(duty: u16) -> IoEvent {
    IoEvent::Duty {
        chip: 0,
        channel: 0,
        duty,
        max: 1000,
    }
}

fn door_write() -> IoEvent {
    IoEvent::I2cWrite {
        bus: "/dev/i2c-1".into(),
        address: 0x42,
        bytes: vec![0x01, 0x00],
    }
}

fn kitchen(intent: &str, prob: f32, room: &str) -> Prediction {
    Prediction::new("...")
        .with_intent(intent, prob)
        .with_slot("room", room, 0.9)
}

fn brightness(value: &str) -> Prediction {
    Prediction::new("...")
        .with_intent("set_brightness", 0.9)
        .with_slot("value", value, 0.9)
}

fn unlock() -> Prediction {
    Prediction::new("open the door")
        .with_intent("unlock", 0.95)
        .with_slot("device", "door", 0.9)
}

fn names(fired: &[Fired]) -> Vec<&str> {
    fired.iter().map(|f| f.rule.as_str()).collect()
}

fn lines(fired: &[Fired]) -> Vec<String> {
    fired.iter().map(ToString::to_string).collect()
}

struct Rig {
    clock: ManualClock,
    hw_log: edgetune::device::mock::IoLog,
    faults: edgetune::device::mock::Faults,
    exec: Executor<MockHardware, ManualClock>,
}

fn rig() -> Rig {
    let clock = ManualClock::new();
    let hw = MockHardware::with_clock(clock.clone());
    let hw_log = hw.log();
    let faults = hw.faults();
    let exec = Executor::with_clock(&actions(), hw, clock.clone()).expect("mock devices open");
    Rig {
        clock,
        hw_log,
        faults,
        exec,
    }
}

#[test]
fn opens_each_device_once_at_start_in_rule_order() {
    let r = rig();
    assert_eq!(
        r.hw_log.events(),
        vec![
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
            IoEvent::OutputOpened {
                pin: pin(24),
                initial: Level::Low
            },
        ]
    );
}

#[test]
fn script_of_answers_gives_exact_transitions() {
    let mut r = rig();
    r.hw_log.take();

    // Fires.
    let fired = r.exec.execute(&kitchen("turn_on", 0.95, "kitchen"));
    assert_eq!(
        lines(&fired),
        ["rule \"kitchen on\": gpio /dev/gpiochip0:17 -> high"]
    );
    assert_eq!(r.hw_log.take(), [set(17, Level::High)]);

    // Must not fire: below min_prob, wrong slot value, no slot, other intent.
    for answer in [
        kitchen("turn_on", 0.69, "kitchen"),
        kitchen("turn_on", f32::NAN, "kitchen"),
        kitchen("turn_on", 0.95, "bathroom"),
        Prediction::new("...").with_intent("turn_on", 0.95),
        kitchen("turn_up", 0.95, "kitchen"),
        Prediction::new("...")
            .with_intent("unlock", 0.85)
            .with_slot("device", "door", 0.9),
        Prediction::new("...")
            .with_label("sentiment", "negative", 0.9)
            .with_span("ner", "location", "home", 0.9),
        Prediction::new("...")
            .with_label("sentiment", "negative", 0.9)
            .with_span("tags", "location", "office", 0.9),
    ] {
        let fired = r.exec.execute(&answer);
        assert!(
            fired.is_empty(),
            "{answer:?} must not fire, fired {fired:?}"
        );
    }
    assert_eq!(r.hw_log.take(), []);

    // Slot text matching ignores case and outer spaces.
    let fired = r.exec.execute(&kitchen("turn_off", 0.8, "  KITCHEN "));
    assert_eq!(names(&fired), ["kitchen off"]);
    assert_eq!(r.hw_log.take(), [set(17, Level::Low)]);

    // Another sentence task and another token task.
    let fired = r.exec.execute(
        &Prediction::new("...")
            .with_label("sentiment", "negative", 0.6)
            .with_span("ner", "location", "Office", 0.8),
    );
    assert_eq!(names(&fired), ["complaint"]);
    assert_eq!(r.hw_log.take(), [set(24, Level::High)]);
}

#[test]
fn pwm_duty_from_the_slot_is_clamped_to_min_max() {
    let mut r = rig();
    r.hw_log.take();
    for (text, expected, shown) in [
        ("40", 400, "duty 40.0% (from \"40\")"),
        ("40%", 400, "duty 40.0% (from \"40%\")"),
        (
            "forty five percent",
            450,
            "duty 45.0% (from \"forty five percent\")",
        ),
        ("5", 100, "duty 10.0% (from \"5\", clamped)"),
        ("150%", 900, "duty 90.0% (from \"150%\", clamped)"),
    ] {
        let fired = r.exec.execute(&brightness(text));
        assert_eq!(
            lines(&fired),
            [format!("rule \"dimmer\": pwm pwmchip0/pwm0 -> {shown}")],
            "{text}"
        );
        assert_eq!(r.hw_log.take(), [duty(expected)], "{text}");
    }
    // No number: the rule is reported as skipped and nothing is written.
    let fired = r.exec.execute(&brightness("bright"));
    assert_eq!(fired.len(), 1);
    assert!(
        matches!(&fired[0].outcome, Outcome::Skipped(reason) if reason.contains("\"bright\" is not a number")),
        "{fired:?}"
    );
    let fired = r
        .exec
        .execute(&Prediction::new("...").with_intent("set_brightness", 0.9));
    assert_eq!(
        lines(&fired),
        ["rule \"dimmer\": pwm pwmchip0/pwm0: skipped: no \"value\" slot in the answer"]
    );
    assert_eq!(r.hw_log.take(), []);
}

#[test]
fn several_rules_fire_in_file_order_and_pulses_do_not_block() {
    let mut r = rig();
    r.hw_log.take();
    let t0 = r.clock.now();

    let fired = r.exec.execute(&unlock());
    assert_eq!(
        lines(&fired),
        [
            "rule \"unlock\": i2c /dev/i2c-1 @0x42 <- [0x01, 0x00]",
            "rule \"buzzer\": gpio /dev/gpiochip0:23 -> high (pulse 300 ms)",
        ]
    );
    assert_eq!(r.hw_log.take(), [door_write(), set(23, Level::High)]);
    assert_eq!(
        r.exec.next_deadline(),
        Some(t0 + Duration::from_millis(300))
    );

    // Other answers are served during the pulse.
    r.clock.advance(Duration::from_millis(100));
    assert_eq!(
        names(&r.exec.execute(&kitchen("turn_on", 0.9, "kitchen"))),
        ["kitchen on"]
    );
    assert_eq!(r.hw_log.take(), [set(17, Level::High)]);

    r.clock.advance(Duration::from_millis(199));
    assert!(r.exec.service().is_empty(), "299 ms: the pulse is still on");
    assert_eq!(r.hw_log.take(), []);

    r.clock.advance(Duration::from_millis(1));
    let fired = r.exec.service();
    assert_eq!(
        lines(&fired),
        ["rule \"buzzer\": gpio /dev/gpiochip0:23 -> low (end of pulse)"]
    );
    assert_eq!(r.hw_log.take(), [set(23, Level::Low)]);
    assert_eq!(r.exec.next_deadline(), None);
}

#[test]
fn pulse_length_is_visible_in_mock_timestamps() {
    let mut r = rig();
    r.hw_log.take();
    r.exec.execute(&unlock());
    r.clock.advance(Duration::from_millis(300));
    r.exec.service();
    let on_off: Vec<_> = r
        .hw_log
        .records()
        .into_iter()
        .filter(|rec| matches!(&rec.event, IoEvent::Pin { pin: p, .. } if p.line == 23))
        .collect();
    assert_eq!(on_off.len(), 2, "{on_off:?}");
    assert_eq!(on_off[0].event, set(23, Level::High));
    assert_eq!(on_off[1].event, set(23, Level::Low));
    assert_eq!(on_off[1].at - on_off[0].at, Duration::from_millis(300));
}

#[test]
fn a_second_pulse_extends_and_an_explicit_set_cancels() {
    let mut r = rig();
    r.hw_log.take();
    let t0 = r.clock.now();
    r.exec.execute(&unlock());
    r.clock.advance(Duration::from_millis(200));
    r.exec.execute(&unlock());
    assert_eq!(
        r.exec.next_deadline(),
        Some(t0 + Duration::from_millis(500))
    );
    r.clock.advance(Duration::from_millis(100));
    assert!(r.exec.service().is_empty(), "extended: not over at 300 ms");
    r.clock.advance(Duration::from_millis(200));
    assert_eq!(names(&r.exec.service()), ["buzzer"]);
    assert_eq!(
        r.hw_log.take(),
        [
            door_write(),
            set(23, Level::High),
            door_write(),
            set(23, Level::High),
            set(23, Level::Low)
        ],
        "restores the level from before the first pulse"
    );

    r.exec.execute(&unlock());
    let fired = r
        .exec
        .execute(&Prediction::new("stop").with_intent("stop", 0.9));
    assert_eq!(names(&fired), ["silence"]);
    assert_eq!(
        r.exec.next_deadline(),
        None,
        "an explicit level cancels the pending restore"
    );
    r.clock.advance(Duration::from_secs(1));
    assert!(r.exec.service().is_empty());
    assert_eq!(
        r.hw_log.take(),
        [door_write(), set(23, Level::High), set(23, Level::Low)]
    );
}

#[test]
fn hardware_errors_are_reported_and_the_next_answer_works() {
    let mut r = rig();
    r.hw_log.take();

    r.faults.fail_next("/dev/gpiochip0:17", 1);
    let fired = r.exec.execute(&kitchen("turn_on", 0.9, "kitchen"));
    assert_eq!(fired.len(), 1);
    assert!(
        matches!(&fired[0].outcome, Outcome::Failed(e) if e.contains("set_high") && e.contains("/dev/gpiochip0:17")),
        "{fired:?}"
    );
    assert!(fired[0]
        .to_string()
        .starts_with("rule \"kitchen on\": gpio /dev/gpiochip0:17 -> high: FAILED: "));
    assert_eq!(r.hw_log.take(), []);

    let fired = r.exec.execute(&kitchen("turn_on", 0.9, "kitchen"));
    assert!(fired[0].is_done(), "{fired:?}");
    assert_eq!(r.hw_log.take(), [set(17, Level::High)]);

    // A failing rule does not stop the next rule for the same answer.
    r.faults.fail_next("/dev/i2c-1", 1);
    let fired = r.exec.execute(&unlock());
    assert_eq!(names(&fired), ["unlock", "buzzer"]);
    assert!(matches!(fired[0].outcome, Outcome::Failed(_)), "{fired:?}");
    assert!(fired[1].is_done());
    assert_eq!(r.hw_log.take(), [set(23, Level::High)]);

    r.faults.fail_next("pwmchip0/pwm0", 1);
    assert!(matches!(
        r.exec.execute(&brightness("50"))[0].outcome,
        Outcome::Failed(_)
    ));
    assert!(r.exec.execute(&brightness("50"))[0].is_done());
    assert_eq!(r.hw_log.take(), [duty(500)]);
}

#[test]
fn a_failed_pulse_restore_is_retried() {
    let mut r = rig();
    r.exec.execute(&unlock());
    r.hw_log.take();
    r.faults.fail_next("/dev/gpiochip0:23", 1);
    r.clock.advance(Duration::from_millis(300));
    let fired = r.exec.service();
    assert!(
        matches!(&fired[0].outcome, Outcome::Failed(e) if e.contains("will retry in 100 ms")),
        "{fired:?}"
    );
    assert_eq!(r.hw_log.take(), []);
    r.clock.advance(Duration::from_millis(99));
    assert!(r.exec.service().is_empty());
    r.clock.advance(Duration::from_millis(1));
    assert!(r.exec.service()[0].is_done());
    assert_eq!(r.hw_log.take(), [set(23, Level::Low)]);
}

#[test]
fn dropping_the_executor_ends_pending_pulses() {
    let mut r = rig();
    r.exec.execute(&unlock());
    r.hw_log.take();
    drop(r.exec);
    assert_eq!(r.hw_log.take(), [set(23, Level::Low)]);
}

#[test]
fn a_device_that_cannot_be_opened_fails_at_start_naming_the_rule() {
    let mut hw = MockHardware::new();
    hw.fail_open("/dev/i2c-1");
    let err = Executor::new(&actions(), hw)
        .err()
        .expect("start must fail");
    assert_eq!(err.rule.index, 4);
    assert_eq!(err.device, "/dev/i2c-1");
    assert_eq!(
        err.to_string(),
        "actions.toml: rule 4 \"unlock\": cannot open /dev/i2c-1: injected open failure on /dev/i2c-1"
    );
}

#[test]
fn dry_run_reports_what_each_rule_would_do() {
    let mut exec = Executor::new(&actions(), DryRunHardware).expect("dry run opens nothing");
    let mut out = Vec::new();
    let mut all = Vec::new();
    for answer in [
        kitchen("turn_on", 0.9, "kitchen"),
        brightness("40%"),
        unlock(),
        kitchen("turn_on", 0.1, "kitchen"),
    ] {
        let fired = exec.execute(&answer);
        out.extend(lines(&fired));
        all.extend(fired);
    }
    assert_eq!(
        out,
        [
            "rule \"kitchen on\": gpio /dev/gpiochip0:17 -> high",
            "rule \"dimmer\": pwm pwmchip0/pwm0 -> duty 40.0% (from \"40%\")",
            "rule \"unlock\": i2c /dev/i2c-1 @0x42 <- [0x01, 0x00]",
            "rule \"buzzer\": gpio /dev/gpiochip0:23 -> high (pulse 300 ms)",
        ]
    );
    assert!(all.iter().all(Fired::is_done));
    assert_eq!(
        all[1].effect,
        Effect::Pwm {
            chip: 0,
            channel: 0,
            duty: Some(Duty {
                fraction: 0.4,
                input: Some("40%".into()),
                clamped: false
            })
        }
    );
}

#[test]
fn with_the_real_clock_a_pulse_does_not_delay_execute() {
    let hw = MockHardware::new();
    let log = hw.log();
    let mut exec = Executor::new(&actions(), hw).expect("opens");
    let started = Instant::now();
    exec.execute(&unlock());
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "execute waited for the pulse"
    );
    let deadline = exec.next_deadline().expect("pulse pending");
    while exec.next_deadline().is_some() {
        std::thread::sleep(Duration::from_millis(5));
        exec.service();
        assert!(
            Instant::now() < deadline + Duration::from_secs(2),
            "pulse never ended"
        );
    }
    let pins: Vec<_> = log
        .records()
        .into_iter()
        .filter(|r| matches!(&r.event, IoEvent::Pin { .. }))
        .collect();
    assert_eq!(pins.len(), 2);
    let length = pins[1].at - pins[0].at;
    assert!(
        length >= Duration::from_millis(300),
        "pulse lasted {length:?}"
    );
}
