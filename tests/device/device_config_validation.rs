//! Loading `actions.toml`: syntax, schema, values, model labels and pin roles. Every bad
//! input must produce an error that names the rule (index and name) and the field.

use edgetune::device::config::{Action, DutySource, PwmUnit};
use edgetune::device::{
    Actions, ConfigError, Level, ModelLabels, PinRole, PinSpec, Problem, ReservedPin, RuleRef,
};

const FILE: &str = "actions.toml";

fn invalid(text: &str) -> Vec<Problem> {
    match Actions::parse(text, FILE) {
        Ok(actions) => panic!("expected the file to be rejected, got {actions:#?}"),
        Err(ConfigError::Invalid { file, problems }) => {
            assert_eq!(file, FILE);
            assert!(!problems.is_empty());
            problems
        }
        Err(other) => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

/// Exactly one problem, in rule `index` named `name`, field `field`; returns its message.
fn one(text: &str, index: usize, name: Option<&str>, field: Option<&str>) -> String {
    let problems = invalid(text);
    assert_eq!(
        problems.len(),
        1,
        "expected exactly one problem: {problems:#?}"
    );
    let p = &problems[0];
    assert_eq!(
        p.rule,
        Some(RuleRef {
            index,
            name: name.map(str::to_owned)
        }),
        "{p:?}"
    );
    assert_eq!(p.field.as_deref(), field, "{p:?}");
    p.message.clone()
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in {haystack:?}"
    );
}

const GOOD_FIRST: &str = r#"
[[rule]]
name = "kitchen light on"
intent = "turn_on"
slots = { room = "kitchen" }
gpio = { chip = "/dev/gpiochip0", line = 17, value = "high" }
"#;

/// The good first rule followed by a second rule with the given body.
fn second(body: &str) -> String {
    format!("{GOOD_FIRST}\n[[rule]]\nname = \"second\"\n{body}\n")
}

#[test]
fn the_documented_message_format() {
    let text = format!(
        "{GOOD_FIRST}\n[[rule]]\nname = \"dimmer\"\nintent = \"set_brightness\"\n\
         pwm = {{ chip = 0, channel = 0, period_ns = 1000000, min = 80, max = 20 }}\n"
    );
    let err = Actions::parse(&text, FILE).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"actions.toml: rule 2 "dimmer": field "pwm.max": must be greater than "pwm.min" (80)"#
    );
}

#[test]
fn a_good_file_parses_into_typed_rules() {
    let text = r#"
version = 1
[[rule]]
name = "  kitchen light on "
intent = ["turn_on", "switch_on"]
min_prob = 0.75
slots = { room = ["  Kitchen", "KÜCHE"] }
[rule.when]
sentiment = "neutral"
[rule.spans.ner]
location = "Home"
[rule.gpio]
chip = "gpiochip0"
line = 17
value = "high"
pulse_ms = 500
initial = "low"

[[rule]]
name = "door"
intent = "unlock"
i2c = { bus = "i2c-1", address = 0x42, bytes = [0x01, 0xFF] }

[[rule]]
name = "dimmer"
intent = "set_brightness"
pwm = { chip = 0, channel = 1, period_ns = 20000, unit = "raw", min = 0, max = 10 }
"#;
    let actions = Actions::parse(text, FILE).expect("valid file");
    assert_eq!(actions.rules.len(), 3);
    let r = &actions.rules[0];
    assert_eq!((r.index, r.name.as_str()), (1, "kitchen light on"));
    assert_eq!(r.min_prob, Some(0.75));
    assert_eq!(r.labels.len(), 2);
    assert_eq!(r.labels[0].task, "intent");
    assert_eq!(r.labels[0].labels, ["turn_on", "switch_on"]);
    assert_eq!(r.labels[1].field, "when.sentiment");
    let tags = r
        .spans
        .iter()
        .find(|s| s.task == "tags")
        .expect("slot condition");
    assert_eq!(
        (tags.kind.as_str(), tags.field.as_str()),
        ("room", "slots.room")
    );
    assert_eq!(
        tags.values,
        ["kitchen", "küche"],
        "span values are trimmed and lower-cased"
    );
    let ner = r
        .spans
        .iter()
        .find(|s| s.task == "ner")
        .expect("ner condition");
    assert_eq!(
        (ner.kind.as_str(), ner.values[0].as_str()),
        ("location", "home")
    );
    let Action::Gpio(gpio) = &r.action else {
        panic!("gpio action expected")
    };
    assert_eq!(gpio.pin, PinSpec::new("/dev/gpiochip0", 17).expect("pin"));
    assert_eq!(gpio.level, Level::High);
    assert_eq!(gpio.pulse, Some(std::time::Duration::from_millis(500)));
    let Action::I2c(i2c) = &actions.rules[1].action else {
        panic!("i2c action expected")
    };
    assert_eq!(
        (i2c.bus.as_str(), i2c.address, i2c.bytes.as_slice()),
        ("/dev/i2c-1", 0x42, &[1u8, 255][..])
    );
    let Action::Pwm(pwm) = &actions.rules[2].action else {
        panic!("pwm action expected")
    };
    assert_eq!((pwm.chip, pwm.channel, pwm.period_ns), (0, 1, 20_000));
    assert_eq!(
        pwm.duty,
        DutySource::Slot {
            kind: "value".into(),
            unit: PwmUnit::Raw,
            min: 0.0,
            max: 10.0
        }
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    let text = "[[rule]]\nname = \"x\"\nintent = turn_on\n";
    match Actions::parse(text, FILE) {
        Err(ConfigError::Syntax {
            file,
            line,
            column,
            message,
        }) => {
            assert_eq!((file.as_str(), line, column), (FILE, 3, 10), "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let err = Actions::parse(text, FILE).unwrap_err().to_string();
    assert!(
        err.starts_with("actions.toml:3:10: TOML syntax error: "),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_rule_field_and_position() {
    let text = second("intent = \"x\"\ncolour = \"red\"\ngpio = { chip = \"gpiochip0\", line = 4, value = \"low\" }");
    let problems = invalid(&text);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = &problems[0];
    assert_eq!(
        p.rule,
        Some(RuleRef {
            index: 2,
            name: Some("second".into())
        })
    );
    assert_eq!(p.field.as_deref(), Some("colour"));
    assert_contains(&p.message, "unknown field `colour`");
    let (line, _) = p.position.expect("schema errors carry a position");
    assert_eq!(
        text.lines().nth(line - 1).map(str::trim_start),
        Some("colour = \"red\"")
    );

    // Inside an action table: the field path goes through the table.
    let text = second("intent = \"x\"\ngpio = { chip = \"gpiochip0\", lien = 4, value = \"low\" }");
    let p = &invalid(&text)[0];
    assert_eq!(p.rule.as_ref().map(|r| r.index), Some(2));
    assert_eq!(p.field.as_deref(), Some("gpio.lien"));
    assert_contains(&p.message, "unknown field `lien`");

    // At the top level: no rule.
    let p = &invalid(&format!("colour = 1\n{GOOD_FIRST}"))[0];
    assert_eq!(p.rule, None);
    assert_contains(&p.message, "unknown field `colour`");
}

#[test]
fn wrong_types_name_the_field() {
    let text =
        second("intent = \"x\"\ngpio = { chip = \"gpiochip0\", line = \"4\", value = \"low\" }");
    let msg = one(&text, 2, Some("second"), Some("gpio.line"));
    assert_contains(&msg, "invalid type");

    let text = second("intent = \"x\"\ngpio = { chip = \"gpiochip0\", line = 4, value = \"on\" }");
    let msg = one(&text, 2, Some("second"), Some("gpio.value"));
    assert_contains(&msg, "unknown variant `on`");

    let text = second("intent = 3\ngpio = { chip = \"gpiochip0\", line = 4, value = \"low\" }");
    let msg = one(&text, 2, Some("second"), Some("intent"));
    assert_contains(&msg, "a string or an array of strings");

    let text = second("intent = \"x\"\ngpio = { line = 4, value = \"low\" }");
    let msg = one(&text, 2, Some("second"), Some("gpio"));
    assert_contains(&msg, "missing field `chip`");
}

#[test]
fn file_level_problems() {
    let problems = invalid("version = 1\n");
    assert_eq!(problems.len(), 1);
    assert_eq!(
        (problems[0].rule.clone(), problems[0].field.as_deref()),
        (None, Some("rule"))
    );
    assert_contains(&problems[0].message, "no rules");

    let problems = invalid(&format!("version = 2\n{GOOD_FIRST}"));
    assert_eq!(problems[0].field.as_deref(), Some("version"));
    assert_contains(&problems[0].message, "unsupported version 2");
}

#[test]
fn names_are_required_and_unique() {
    let text = format!("{GOOD_FIRST}\n[[rule]]\nintent = \"x\"\ngpio = {{ chip = \"gpiochip0\", line = 4, value = \"low\" }}\n");
    assert_contains(&one(&text, 2, None, Some("name")), "required");

    let text = format!("{GOOD_FIRST}\n[[rule]]\nname = \"kitchen light on\"\nintent = \"x\"\ngpio = {{ chip = \"gpiochip0\", line = 4, value = \"low\" }}\n");
    assert_eq!(
        one(&text, 2, Some("kitchen light on"), Some("name")),
        "same name as rule 1; names must be unique"
    );
}

#[test]
fn conditions_and_actions_are_required_and_exclusive() {
    let msg = one(
        &second("gpio = { chip = \"gpiochip0\", line = 4, value = \"low\" }"),
        2,
        Some("second"),
        None,
    );
    assert_contains(&msg, "no condition");

    let msg = one(&second("intent = \"x\""), 2, Some("second"), None);
    assert_contains(&msg, "no action");

    let msg = one(
        &second("intent = \"x\"\ngpio = { chip = \"gpiochip0\", line = 4, value = \"low\" }\ni2c = { bus = \"/dev/i2c-1\", address = 1, bytes = [1] }"),
        2,
        Some("second"),
        Some("i2c"),
    );
    assert_contains(&msg, "exactly one action");

    let msg = one(
        &second("intent = \"x\"\nwhen = { intent = \"y\" }\ngpio = { chip = \"gpiochip0\", line = 4, value = \"low\" }"),
        2,
        Some("second"),
        Some("when.intent"),
    );
    assert_contains(&msg, "already given");

    let msg = one(
        &second("intent = []\ngpio = { chip = \"gpiochip0\", line = 4, value = \"low\" }"),
        2,
        Some("second"),
        Some("intent"),
    );
    assert_contains(&msg, "empty list");

    let msg = one(
        &second("intent = \"x\"\nslots = { room = \"  \" }\ngpio = { chip = \"gpiochip0\", line = 4, value = \"low\" }"),
        2,
        Some("second"),
        Some("slots.room"),
    );
    assert_contains(&msg, "empty");

    let msg = one(
        &second("intent = \"x\"\nslots = { room = \"a\" }\nspans = { tags = { room = \"b\" } }\ngpio = { chip = \"gpiochip0\", line = 4, value = \"low\" }"),
        2,
        Some("second"),
        Some("spans.tags.room"),
    );
    assert_contains(&msg, "already given as \"slots.room\"");
}

#[test]
fn min_prob_must_be_a_probability_on_labels() {
    for bad in ["1.5", "-0.1", "nan"] {
        let text = second(&format!("intent = \"x\"\nmin_prob = {bad}\ngpio = {{ chip = \"gpiochip0\", line = 4, value = \"low\" }}"));
        assert_contains(
            &one(&text, 2, Some("second"), Some("min_prob")),
            "must be between 0 and 1",
        );
    }
    let text = second("slots = { room = \"a\" }\nmin_prob = 0.5\ngpio = { chip = \"gpiochip0\", line = 4, value = \"low\" }");
    assert_contains(
        &one(&text, 2, Some("second"), Some("min_prob")),
        "the rule has none",
    );
}

#[test]
fn gpio_values_are_checked() {
    let gpio = |fields: &str| second(&format!("intent = \"x\"\ngpio = {{ {fields} }}"));
    assert_eq!(
        one(
            &gpio("chip = \"gpiochip0\", line = -1, value = \"low\""),
            2,
            Some("second"),
            Some("gpio.line")
        ),
        "must be between 0 and 511, got -1"
    );
    assert_eq!(
        one(
            &gpio("chip = \"gpiochip0\", line = 600, value = \"low\""),
            2,
            Some("second"),
            Some("gpio.line")
        ),
        "must be between 0 and 511, got 600"
    );
    assert_contains(
        &one(
            &gpio("chip = \"chip0\", line = 1, value = \"low\""),
            2,
            Some("second"),
            Some("gpio.chip"),
        ),
        "chip must be gpiochipN",
    );
    assert_eq!(
        one(
            &gpio("chip = \"gpiochip0\", line = 1, value = \"low\", pulse_ms = 0"),
            2,
            Some("second"),
            Some("gpio.pulse_ms")
        ),
        "must be between 1 and 60000, got 0"
    );
    assert_eq!(
        one(
            &gpio("chip = \"gpiochip0\", line = 1, value = \"low\", pulse_ms = 3600000"),
            2,
            Some("second"),
            Some("gpio.pulse_ms")
        ),
        "must be between 1 and 60000, got 3600000"
    );
}

#[test]
fn i2c_values_are_checked() {
    let i2c = |fields: &str| second(&format!("intent = \"x\"\ni2c = {{ {fields} }}"));
    assert_eq!(
        one(
            &i2c("bus = \"/dev/i2c-1\", address = 0x80, bytes = [1]"),
            2,
            Some("second"),
            Some("i2c.address")
        ),
        "0x80 is not a 7-bit I2C address (0x00..=0x7f)"
    );
    assert_eq!(
        one(
            &i2c("bus = \"/dev/i2c-1\", address = -1, bytes = [1]"),
            2,
            Some("second"),
            Some("i2c.address")
        ),
        "-1 is not a 7-bit I2C address (0x00..=0x7f)"
    );
    assert_eq!(
        one(
            &i2c("bus = \"/dev/i2c-1\", address = 0x42, bytes = []"),
            2,
            Some("second"),
            Some("i2c.bytes")
        ),
        "must not be empty"
    );
    assert_eq!(
        one(
            &i2c("bus = \"/dev/i2c-1\", address = 0x42, bytes = [1, 2, 0x100]"),
            2,
            Some("second"),
            Some("i2c.bytes[2]")
        ),
        "256 is not a byte (0..=255)"
    );
    let many = vec!["0"; 257].join(", ");
    assert_eq!(
        one(
            &i2c(&format!(
                "bus = \"/dev/i2c-1\", address = 0x42, bytes = [{many}]"
            )),
            2,
            Some("second"),
            Some("i2c.bytes")
        ),
        "at most 256 bytes per write, got 257"
    );
    assert_contains(
        &one(
            &i2c("bus = \"i2c\", address = 0x42, bytes = [1]"),
            2,
            Some("second"),
            Some("i2c.bus"),
        ),
        "expected a device path",
    );
}

#[test]
fn pwm_values_are_checked() {
    let pwm = |fields: &str| {
        second(&format!(
            "intent = \"x\"\npwm = {{ chip = 0, channel = 0, {fields} }}"
        ))
    };
    assert_eq!(
        one(
            &pwm("period_ns = 0"),
            2,
            Some("second"),
            Some("pwm.period_ns")
        ),
        "must be between 1 and 1000000000, got 0"
    );
    assert_eq!(
        one(
            &pwm("period_ns = 1000, unit = \"raw\", max = 10"),
            2,
            Some("second"),
            Some("pwm.min")
        ),
        "required when unit is \"raw\""
    );
    assert_eq!(
        one(
            &pwm("period_ns = 1000, max = 150"),
            2,
            Some("second"),
            Some("pwm.max")
        ),
        "must be between 0 and 100 when unit is \"percent\", got 150"
    );
    assert_eq!(
        one(
            &pwm("period_ns = 1000, unit = \"raw\", min = 5, max = 5"),
            2,
            Some("second"),
            Some("pwm.max")
        ),
        "must be greater than \"pwm.min\" (5)"
    );
    assert_eq!(
        one(
            &pwm("period_ns = 1000, duty_percent = 10, slot = \"value\""),
            2,
            Some("second"),
            Some("pwm.duty_percent")
        ),
        "a fixed duty cannot be combined with \"pwm.slot\""
    );
    assert_eq!(
        one(
            &pwm("period_ns = 1000, duty_percent = 101"),
            2,
            Some("second"),
            Some("pwm.duty_percent")
        ),
        "must be between 0 and 100, got 101"
    );
    assert_eq!(
        one(
            &pwm("period_ns = 1000, slot = \"\""),
            2,
            Some("second"),
            Some("pwm.slot")
        ),
        "must not be empty"
    );
    // A repeated key is a TOML error, reported with its position.
    match Actions::parse(&pwm("channel = 1, period_ns = 1000"), FILE) {
        Err(ConfigError::Syntax { line, message, .. }) => {
            assert_eq!(line, 11);
            assert_contains(&message, "duplicate key");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn shared_devices_must_agree() {
    let text = format!(
        "{GOOD_FIRST}\n[[rule]]\nname = \"a\"\nintent = \"x\"\ngpio = {{ chip = \"gpiochip0\", line = 4, value = \"high\", initial = \"high\" }}\n\
         [[rule]]\nname = \"b\"\nintent = \"y\"\ngpio = {{ chip = \"/dev/gpiochip0\", line = 4, value = \"low\", initial = \"low\" }}\n"
    );
    assert_eq!(
        one(&text, 3, Some("b"), Some("gpio.initial")),
        "\"low\" conflicts with \"high\" given by rule 2 for the same line /dev/gpiochip0:4"
    );
    let text = format!(
        "{GOOD_FIRST}\n[[rule]]\nname = \"a\"\nintent = \"x\"\npwm = {{ chip = 0, channel = 0, period_ns = 1000 }}\n\
         [[rule]]\nname = \"b\"\nintent = \"y\"\npwm = {{ chip = 0, channel = 0, period_ns = 2000, duty_percent = 0 }}\n"
    );
    assert_eq!(
        one(&text, 3, Some("b"), Some("pwm.period_ns")),
        "2000 differs from 1000 given by rule 2 for the same channel pwmchip0/pwm0"
    );
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let text = format!(
        "{GOOD_FIRST}\n[[rule]]\nname = \"bad\"\nintent = \"x\"\nmin_prob = 2\n\
         i2c = {{ bus = \"/dev/i2c-1\", address = 0x99, bytes = [] }}\n"
    );
    let problems = invalid(&text);
    let fields: Vec<_> = problems
        .iter()
        .map(|p| p.field.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(fields, ["min_prob", "i2c.address", "i2c.bytes"]);
    assert!(problems
        .iter()
        .all(|p| p.rule.as_ref().map(|r| r.index) == Some(2)));
    let rendered = Actions::parse(&text, FILE).unwrap_err().to_string();
    assert_eq!(rendered.lines().count(), 3, "{rendered}");
}

#[test]
fn missing_file_names_the_file() {
    let err = Actions::load("/nonexistent/actions.toml".as_ref()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert_contains(&err.to_string(), "/nonexistent/actions.toml: cannot read");
}

fn model() -> ModelLabels {
    ModelLabels::default()
        .with_sentence_task("intent", &["turn_on", "turn_off", "set_brightness"])
        .with_sentence_task("sentiment", &["negative", "neutral", "positive"])
        .with_span_task("tags", &["room", "value"])
        .with_span_task("ner", &["location"])
}

#[test]
fn validate_against_model_labels() {
    let ok = r#"
[[rule]]
name = "ok"
intent = "turn_on"
when = { sentiment = "negative" }
slots = { room = "kitchen" }
spans = { ner = { location = "home" } }
pwm = { chip = 0, channel = 0, period_ns = 1000 }
"#;
    Actions::parse(ok, FILE)
        .expect("parses")
        .check_labels(&model())
        .expect("valid for the model");

    let bad = r#"
[[rule]]
name = "one"
intent = ["turn_on", "turn_onn"]
when = { mood = "sad" }
gpio = { chip = "gpiochip0", line = 1, value = "high" }

[[rule]]
name = "two"
intent = "turn_off"
when = { sentiment = "angry" }
slots = { rooom = "kitchen" }
spans = { pos = { noun = "x" } }
pwm = { chip = 0, channel = 0, period_ns = 1000, slot = "level" }
"#;
    let actions = Actions::parse(bad, FILE).expect("parses: labels are checked separately");
    let err = actions.check_labels(&model()).unwrap_err();
    let got: Vec<(usize, String, String)> = err
        .problems()
        .iter()
        .map(|p| {
            (
                p.rule.as_ref().map_or(0, |r| r.index),
                p.field.clone().unwrap_or_default(),
                p.message.clone(),
            )
        })
        .collect();
    let expected = [
        (1, "intent", "unknown label \"turn_onn\" for task \"intent\" (known: turn_on, turn_off, set_brightness)"),
        (1, "when.mood", "the model has no sentence-level task \"mood\" (it has: intent, sentiment)"),
        (2, "when.sentiment", "unknown label \"angry\" for task \"sentiment\" (known: negative, neutral, positive)"),
        (2, "spans.pos.noun", "the model has no token task \"pos\" (it has: ner, tags)"),
        (2, "slots.rooom", "unknown span type \"rooom\" for task \"tags\" (known: room, value)"),
        (2, "pwm.slot", "unknown span type \"level\" for task \"tags\" (known: room, value)"),
    ];
    let expected: Vec<(usize, String, String)> = expected
        .iter()
        .map(|(i, f, m)| (*i, (*f).to_owned(), (*m).to_owned()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn reserved_pins_conflict_with_rule_outputs_and_each_other() {
    let actions = Actions::parse(GOOD_FIRST, FILE).expect("valid");
    let led = ReservedPin {
        pin: "gpiochip0:22".parse().expect("pin"),
        role: PinRole::StatusLed,
        source: "--status-led".into(),
    };
    let button = ReservedPin {
        pin: "0:27".parse().expect("pin"),
        role: PinRole::FeedbackButton,
        source: "--feedback-button".into(),
    };
    actions
        .check_pins(&[led.clone(), button.clone()])
        .expect("no conflict");

    // The same line written differently is still the same line.
    let clash = ReservedPin {
        pin: "gpiochip0:17".parse().expect("pin"),
        ..button.clone()
    };
    let err = actions.check_pins(&[led.clone(), clash]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "actions.toml: rule 1 \"kitchen light on\": field \"gpio.line\": /dev/gpiochip0:17 is also \
         the feedback button (--feedback-button); a line has one role"
    );

    let same = ReservedPin {
        pin: "/dev/gpiochip0:22".parse().expect("pin"),
        ..button
    };
    let err = actions.check_pins(&[led, same]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "actions.toml: field \"--feedback-button\": /dev/gpiochip0:22 would be both the status LED \
         (--status-led) and the feedback button"
    );
}
