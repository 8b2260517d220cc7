//! Raw file -> checked [`Actions`]: every check that needs only the file itself.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_path_to_error::Segment;

use super::super::pin_spec::{normalize_chip, PinSpec, MAX_LINE};
use super::error::{line_column, Problems};
use super::raw::{OneOrMany, RawFile, RawGpio, RawI2c, RawPwm, RawRule};
use super::{
    Action, Actions, ConfigError, DutySource, GpioAction, I2cAction, LabelCondition, Problem,
    PwmAction, PwmUnit, Rule, RuleRef, SpanCondition, MAX_I2C_BYTES, MAX_PERIOD_NS, MAX_PULSE_MS,
    MAX_PWM_INDEX,
};
use crate::data::{INTENT, TAGS};

/// Parses TOML and applies the schema. Syntax errors and schema errors both carry a
/// line/column; schema errors also name the rule and field when they are inside one.
pub(super) fn deserialize(text: &str, file: &str) -> Result<RawFile, ConfigError> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| {
        let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
        ConfigError::Syntax {
            file: file.to_owned(),
            line,
            column,
            message: e.message().trim_end().to_owned(),
        }
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut segments: Vec<Segment> = e.path().iter().cloned().collect();
        let inner = e.into_inner();
        let mut rule = None;
        if let [Segment::Map { key }, Segment::Seq { index }, ..] = segments.as_slice() {
            if key == "rule" {
                rule = Some(RuleRef {
                    index: index + 1,
                    name: rule_name(text, *index),
                });
                segments.drain(..2);
            }
        }
        let field = field_path(&segments);
        ConfigError::Invalid {
            file: file.to_owned(),
            problems: vec![Problem {
                position: inner.span().map(|s| line_column(text, s.start)),
                rule,
                field: (!field.is_empty()).then_some(field),
                message: inner.message().trim_end().to_owned(),
            }],
        }
    })
}

/// The `name` of the `index`-th rule, read loosely so it works on files that fail the schema.
fn rule_name(text: &str, index: usize) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let rules = table.get("rule")?.as_array()?;
    Some(rules.get(index)?.get("name")?.as_str()?.to_owned())
}

fn field_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// Checks every value and builds the typed rules; reports all problems at once.
pub(super) fn build(file: &str, raw: RawFile) -> Result<Actions, ConfigError> {
    let mut problems = Problems::default();
    if let Some(version) = raw.version {
        if version != 1 {
            problems.general(
                None,
                Some("version"),
                format!("unsupported version {version} (this build reads version 1)"),
            );
        }
    }
    if raw.rule.is_empty() {
        problems.general(None, Some("rule"), "no rules: add at least one [[rule]]");
    }
    let mut rules = Vec::with_capacity(raw.rule.len());
    let mut first_with_name: HashMap<String, usize> = HashMap::new();
    for (i, raw_rule) in raw.rule.into_iter().enumerate() {
        let rule_ref = RuleRef {
            index: i + 1,
            name: raw_rule.name.clone(),
        };
        let name = raw_rule
            .name
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            problems.rule(
                &rule_ref,
                "name",
                "required: a short unique name used in every report",
            );
        } else if let Some(first) = first_with_name.get(&name) {
            problems.rule(
                &rule_ref,
                "name",
                format!("same name as rule {first}; names must be unique"),
            );
        } else {
            first_with_name.insert(name.clone(), i + 1);
        }
        if let Some(rule) = build_rule(&rule_ref, &name, raw_rule, &mut problems) {
            rules.push(rule);
        }
    }
    let actions = Actions {
        file: file.to_owned(),
        rules,
    };
    super::pins::check_rule_pins(&actions, &mut problems);
    problems.finish(file)?;
    Ok(actions)
}

fn build_rule(
    rule_ref: &RuleRef,
    name: &str,
    raw: RawRule,
    problems: &mut Problems,
) -> Option<Rule> {
    let labels = label_conditions(rule_ref, raw.intent, raw.when, problems);
    let spans = span_conditions(rule_ref, raw.slots, raw.spans, problems);
    if labels.is_empty() && spans.is_empty() {
        problems.general(
            Some(rule_ref),
            None,
            "no condition: give intent, [rule.when], [rule.slots] or [rule.spans.TASK]",
        );
    }
    let min_prob = min_prob(rule_ref, raw.min_prob, !labels.is_empty(), problems);
    let action = build_action(rule_ref, raw.gpio, raw.pwm, raw.i2c, problems)?;
    Some(Rule {
        index: rule_ref.index,
        name: name.to_owned(),
        labels,
        spans,
        min_prob,
        action,
    })
}

/// The label conditions: `intent` (the task `intent`) and `[rule.when]` (any sentence task).
fn label_conditions(
    rule_ref: &RuleRef,
    intent: Option<OneOrMany>,
    when: BTreeMap<String, OneOrMany>,
    problems: &mut Problems,
) -> Vec<LabelCondition> {
    let mut labels = Vec::new();
    if let Some(intent) = intent {
        if when.contains_key(INTENT) {
            problems.rule(
                rule_ref,
                "when.intent",
                "intent is already given by the rule's \"intent\" key",
            );
        }
        labels.push(LabelCondition {
            task: INTENT.to_owned(),
            labels: strings(rule_ref, "intent", intent, false, problems),
            field: "intent".to_owned(),
        });
    }
    for (task, values) in when {
        let field = format!("when.{task}");
        if task.trim().is_empty() {
            problems.rule(rule_ref, &field, "task name must not be empty");
        }
        labels.push(LabelCondition {
            labels: strings(rule_ref, &field, values, false, problems),
            task,
            field,
        });
    }
    labels
}

/// The span conditions: `[rule.slots]` (spans of the task `tags`) and `[rule.spans.TASK]`.
fn span_conditions(
    rule_ref: &RuleRef,
    slots: BTreeMap<String, OneOrMany>,
    spans_by_task: BTreeMap<String, BTreeMap<String, OneOrMany>>,
    problems: &mut Problems,
) -> Vec<SpanCondition> {
    let mut token_tasks: BTreeMap<String, BTreeMap<String, (OneOrMany, String)>> = BTreeMap::new();
    for (kind, values) in slots {
        let field = format!("slots.{kind}");
        token_tasks
            .entry(TAGS.to_owned())
            .or_default()
            .insert(kind, (values, field));
    }
    for (task, kinds) in spans_by_task {
        for (kind, values) in kinds {
            let field = format!("spans.{task}.{kind}");
            let entry = token_tasks.entry(task.clone()).or_default();
            if let Some((_, earlier)) = entry.get(&kind) {
                problems.rule(rule_ref, &field, format!("already given as \"{earlier}\""));
                continue;
            }
            entry.insert(kind, (values, field));
        }
    }
    let mut spans = Vec::new();
    for (task, kinds) in token_tasks {
        for (kind, (values, field)) in kinds {
            if task.trim().is_empty() || kind.trim().is_empty() {
                problems.rule(
                    rule_ref,
                    &field,
                    "task and span type names must not be empty",
                );
            }
            spans.push(SpanCondition {
                values: strings(rule_ref, &field, values, true, problems),
                task: task.clone(),
                kind,
                field,
            });
        }
    }
    spans
}

/// `min_prob`: within 0..=1, and only for a rule with label conditions.
fn min_prob(
    rule_ref: &RuleRef,
    min_prob: Option<f64>,
    has_labels: bool,
    problems: &mut Problems,
) -> Option<f32> {
    match min_prob {
        None => None,
        Some(p) if (0.0..=1.0).contains(&p) => {
            if !has_labels {
                problems.rule(
                    rule_ref,
                    "min_prob",
                    "applies to the intent/when labels, but the rule has none",
                );
            }
            Some(p as f32)
        }
        Some(p) => {
            problems.rule(
                rule_ref,
                "min_prob",
                format!("must be between 0 and 1, got {p}"),
            );
            None
        }
    }
}

/// The rule's one action.
fn build_action(
    rule_ref: &RuleRef,
    gpio: Option<RawGpio>,
    pwm: Option<RawPwm>,
    i2c: Option<RawI2c>,
    problems: &mut Problems,
) -> Option<Action> {
    let given: Vec<&str> = [
        gpio.as_ref().map(|_| "gpio"),
        pwm.as_ref().map(|_| "pwm"),
        i2c.as_ref().map(|_| "i2c"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        problems.rule(
            rule_ref,
            given[1],
            format!(
                "a rule has exactly one action, but [rule.{}] is also given",
                given[0]
            ),
        );
        return None;
    }
    if let Some(gpio) = gpio {
        build_gpio(rule_ref, gpio, problems).map(Action::Gpio)
    } else if let Some(pwm) = pwm {
        build_pwm(rule_ref, pwm, problems).map(Action::Pwm)
    } else if let Some(i2c) = i2c {
        build_i2c(rule_ref, i2c, problems).map(Action::I2c)
    } else {
        problems.general(
            Some(rule_ref),
            None,
            "no action: give exactly one of [rule.gpio], [rule.pwm], [rule.i2c]",
        );
        None
    }
}

/// Checks a list of alternatives: not empty, no empty strings. Span texts are trimmed and
/// lower-cased for case-insensitive matching; labels are kept exact.
fn strings(
    rule_ref: &RuleRef,
    field: &str,
    values: OneOrMany,
    fold_case: bool,
    problems: &mut Problems,
) -> Vec<String> {
    if values.0.is_empty() {
        problems.rule(rule_ref, field, "empty list: give at least one value");
    }
    values
        .0
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let v = if fold_case {
                v.trim().to_lowercase()
            } else {
                v.trim().to_owned()
            };
            if v.is_empty() {
                problems.rule(rule_ref, field, format!("value {} is empty", i + 1));
                None
            } else {
                Some(v)
            }
        })
        .collect()
}

fn in_range(
    rule_ref: &RuleRef,
    field: &str,
    value: i64,
    lo: i64,
    hi: i64,
    problems: &mut Problems,
) -> Option<i64> {
    if (lo..=hi).contains(&value) {
        Some(value)
    } else {
        problems.rule(
            rule_ref,
            field,
            format!("must be between {lo} and {hi}, got {value}"),
        );
        None
    }
}

fn build_gpio(rule_ref: &RuleRef, raw: RawGpio, problems: &mut Problems) -> Option<GpioAction> {
    let chip = normalize_chip(&raw.chip)
        .map_err(|e| problems.rule(rule_ref, "gpio.chip", e.to_string()))
        .ok();
    let line = in_range(
        rule_ref,
        "gpio.line",
        raw.line,
        0,
        i64::from(MAX_LINE),
        problems,
    );
    let pulse = match raw.pulse_ms {
        None => Some(None),
        Some(ms) => in_range(
            rule_ref,
            "gpio.pulse_ms",
            ms,
            1,
            MAX_PULSE_MS as i64,
            problems,
        )
        .map(|ms| Some(Duration::from_millis(ms as u64))),
    };
    Some(GpioAction {
        pin: PinSpec {
            chip: chip?,
            line: u32::try_from(line?).ok()?,
        },
        level: raw.value,
        pulse: pulse?,
        initial: raw.initial,
    })
}

fn build_pwm(rule_ref: &RuleRef, raw: RawPwm, problems: &mut Problems) -> Option<PwmAction> {
    let max_index = i64::from(MAX_PWM_INDEX);
    let chip = in_range(rule_ref, "pwm.chip", raw.chip, 0, max_index, problems);
    let channel = in_range(rule_ref, "pwm.channel", raw.channel, 0, max_index, problems);
    let period = in_range(
        rule_ref,
        "pwm.period_ns",
        raw.period_ns,
        1,
        MAX_PERIOD_NS as i64,
        problems,
    );
    let duty = build_duty(rule_ref, &raw, problems);
    Some(PwmAction {
        chip: u32::try_from(chip?).ok()?,
        channel: u32::try_from(channel?).ok()?,
        period_ns: u64::try_from(period?).ok()?,
        duty: duty?,
    })
}

fn build_duty(rule_ref: &RuleRef, raw: &RawPwm, problems: &mut Problems) -> Option<DutySource> {
    if let Some(percent) = raw.duty_percent {
        let mut ok = true;
        for (given, key) in [
            (raw.slot.is_some(), "slot"),
            (raw.unit.is_some(), "unit"),
            (raw.min.is_some(), "min"),
            (raw.max.is_some(), "max"),
        ] {
            if given {
                problems.rule(
                    rule_ref,
                    "pwm.duty_percent",
                    format!("a fixed duty cannot be combined with \"pwm.{key}\""),
                );
                ok = false;
            }
        }
        if !(0.0..=100.0).contains(&percent) {
            problems.rule(
                rule_ref,
                "pwm.duty_percent",
                format!("must be between 0 and 100, got {percent}"),
            );
            ok = false;
        }
        return ok.then_some(DutySource::Fixed(percent / 100.0));
    }

    let kind = raw.slot.as_deref().unwrap_or("value").trim().to_owned();
    let mut ok = true;
    if kind.is_empty() {
        problems.rule(rule_ref, "pwm.slot", "must not be empty");
        ok = false;
    }
    let unit = raw.unit.unwrap_or(PwmUnit::Percent);
    let (min, max) = match unit {
        PwmUnit::Percent => (raw.min.unwrap_or(0.0), raw.max.unwrap_or(100.0)),
        PwmUnit::Raw => {
            for (value, key) in [(raw.min, "pwm.min"), (raw.max, "pwm.max")] {
                if value.is_none() {
                    problems.rule(rule_ref, key, "required when unit is \"raw\"");
                    ok = false;
                }
            }
            (raw.min.unwrap_or(0.0), raw.max.unwrap_or(0.0))
        }
    };
    for (value, key) in [(min, "pwm.min"), (max, "pwm.max")] {
        if !value.is_finite() {
            problems.rule(rule_ref, key, "must be a finite number");
            ok = false;
        } else if unit == PwmUnit::Percent && !(0.0..=100.0).contains(&value) {
            problems.rule(
                rule_ref,
                key,
                format!("must be between 0 and 100 when unit is \"percent\", got {value}"),
            );
            ok = false;
        }
    }
    if ok && max <= min {
        problems.rule(
            rule_ref,
            "pwm.max",
            format!("must be greater than \"pwm.min\" ({min})"),
        );
        ok = false;
    }
    ok.then_some(DutySource::Slot {
        kind,
        unit,
        min,
        max,
    })
}

fn build_i2c(rule_ref: &RuleRef, raw: RawI2c, problems: &mut Problems) -> Option<I2cAction> {
    let bus = raw.bus.trim();
    let bus =
        if bus.starts_with("i2c-") && bus[4..].bytes().all(|b| b.is_ascii_digit()) && bus.len() > 4
        {
            Some(format!("/dev/{bus}"))
        } else if bus.starts_with('/') && bus.len() > 1 {
            Some(bus.to_owned())
        } else {
            problems.rule(
                rule_ref,
                "i2c.bus",
                format!("\"{bus}\": expected a device path like /dev/i2c-1 (or i2c-1)"),
            );
            None
        };
    let address = if (0..=0x7f).contains(&raw.address) {
        Some(raw.address as u8)
    } else if raw.address < 0 {
        problems.rule(
            rule_ref,
            "i2c.address",
            format!("{} is not a 7-bit I2C address (0x00..=0x7f)", raw.address),
        );
        None
    } else {
        problems.rule(
            rule_ref,
            "i2c.address",
            format!(
                "{:#04x} is not a 7-bit I2C address (0x00..=0x7f)",
                raw.address
            ),
        );
        None
    };
    let mut bytes_ok = true;
    if raw.bytes.is_empty() {
        problems.rule(rule_ref, "i2c.bytes", "must not be empty");
        bytes_ok = false;
    } else if raw.bytes.len() > MAX_I2C_BYTES {
        problems.rule(
            rule_ref,
            "i2c.bytes",
            format!(
                "at most {MAX_I2C_BYTES} bytes per write, got {}",
                raw.bytes.len()
            ),
        );
        bytes_ok = false;
    }
    let mut bytes = Vec::with_capacity(raw.bytes.len());
    for (i, b) in raw.bytes.iter().enumerate() {
        match u8::try_from(*b) {
            Ok(b) => bytes.push(b),
            Err(_) => {
                problems.rule(
                    rule_ref,
                    &format!("i2c.bytes[{i}]"),
                    format!("{b} is not a byte (0..=255)"),
                );
                bytes_ok = false;
            }
        }
    }
    Some(I2cAction {
        bus: bus?,
        address: address?,
        bytes: bytes_ok.then_some(bytes)?,
    })
}
