//! `examples/actions.toml` is valid for a matching model, agrees with docs/wiring.md's status LED
//! and button lines, and does what its comments say.

use std::path::Path;

use edgetune::device::{
    Actions, DryRunHardware, Executor, ManualClock, ModelLabels, PinRole, ReservedPin,
};
use edgetune::Prediction;

fn example() -> Actions {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/actions.toml");
    Actions::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn example_is_valid_for_its_model_and_wiring() {
    let actions = example();
    let model = ModelLabels::default()
        .with_sentence_task(
            "intent",
            &[
                "turn_on",
                "turn_off",
                "set_brightness",
                "unlock_door",
                "lock_door",
                "play_music",
            ],
        )
        .with_span_task("tags", &["room", "value", "unit", "device"]);
    actions
        .check_labels(&model)
        .unwrap_or_else(|e| panic!("{e}"));
    let reserved = [
        ReservedPin {
            pin: "gpiochip0:22".parse().expect("pin"),
            role: PinRole::StatusLed,
            source: "--status-led".into(),
        },
        ReservedPin {
            pin: "gpiochip0:27".parse().expect("pin"),
            role: PinRole::FeedbackButton,
            source: "--feedback-button".into(),
        },
    ];
    actions
        .check_pins(&reserved)
        .unwrap_or_else(|e| panic!("{e}"));
    let described: Vec<String> = actions.rules.iter().map(ToString::to_string).collect();
    assert_eq!(
        described[0],
        "rule 1 \"kitchen light on\": when intent = turn_on (p >= 0.7), slots.room = kitchen: gpio /dev/gpiochip0:17 -> high"
    );
}

#[test]
fn example_dry_run() {
    let clock = ManualClock::new();
    let mut exec =
        Executor::with_clock(&example(), DryRunHardware, clock.clone()).expect("dry run");
    let script = [
        Prediction::new("turn on the kitchen light")
            .with_intent("turn_on", 0.93)
            .with_slot("room", "kitchen", 0.9),
        Prediction::new("set the brightness to 3")
            .with_intent("set_brightness", 0.8)
            .with_slot("value", "3", 0.9),
        Prediction::new("switch off the lounge")
            .with_intent("turn_off", 0.9)
            .with_slot("room", "Lounge", 0.9),
        Prediction::new("open the door")
            .with_intent("unlock_door", 0.95)
            .with_slot("device", "front door", 0.9),
        Prediction::new("open the door?")
            .with_intent("unlock_door", 0.6)
            .with_slot("device", "door", 0.9),
    ];
    let mut lines = Vec::new();
    for answer in &script {
        lines.extend(exec.execute(answer).iter().map(ToString::to_string));
    }
    clock.advance(std::time::Duration::from_millis(300));
    lines.extend(exec.service().iter().map(ToString::to_string));
    assert_eq!(
        lines,
        [
            "rule \"kitchen light on\": gpio /dev/gpiochip0:17 -> high",
            "rule \"dimmer\": pwm pwmchip0/pwm0 -> duty 5.0% (from \"3\", clamped)",
            "rule \"dimmer off\": pwm pwmchip0/pwm0 -> duty 0.0%",
            "rule \"unlock door\": i2c /dev/i2c-1 @0x42 <- [0x01, 0x00]",
            "rule \"door buzzer\": gpio /dev/gpiochip0:23 -> high (pulse 300 ms)",
            "rule \"door buzzer\": gpio /dev/gpiochip0:23 -> low (end of pulse)",
        ]
    );
}

#[test]
fn the_actions_file_of_docs_device_md_is_valid_for_the_demo_model() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/device.md"))
        .expect("docs/device.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("its end");
    let actions =
        Actions::parse(&doc[start..end], "docs/device.md").unwrap_or_else(|e| panic!("{e}"));
    let model = ModelLabels::default()
        .with_sentence_task(
            "intent",
            &[
                "turn_on",
                "turn_off",
                "set_brightness",
                "unlock_door",
                "lock_door",
            ],
        )
        .with_span_task("tags", &["room", "value", "unit", "device"]);
    actions
        .check_labels(&model)
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = actions.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["kitchen light on", "kitchen light off", "dimmer"]);
}
