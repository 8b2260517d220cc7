//! Pin roles: one GPIO line has one role (rule output, status LED, feedback button), and
//! lines / PWM channels shared by several rules must agree on their settings.

use std::collections::HashMap;

use super::super::pin_spec::PinSpec;
use super::error::Problems;
use super::{Action, Actions, ConfigError, Level, RuleRef};

/// The role of a GPIO line that is not driven by rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRole {
    /// The status LED (an output owned by [`super::super::StatusLed`]).
    StatusLed,
    /// The feedback button (an input read by [`super::super::FeedbackButton`]).
    FeedbackButton,
}

impl PinRole {
    fn describe(self) -> &'static str {
        match self {
            PinRole::StatusLed => "the status LED",
            PinRole::FeedbackButton => "the feedback button",
        }
    }
}

/// A GPIO line reserved for a role outside the rules, registered for the conflict check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedPin {
    /// The line.
    pub pin: PinSpec,
    /// What it is used for.
    pub role: PinRole,
    /// Where it was configured, for messages (e.g. `--status-led`).
    pub source: String,
}

impl Actions {
    /// Checks that no reserved line (status LED, feedback button) is also driven by a rule,
    /// and that no two reserved lines are the same. Each conflict names the rule and field
    /// (or the option) involved.
    pub fn check_pins(&self, reserved: &[ReservedPin]) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        for (i, a) in reserved.iter().enumerate() {
            if let Some(b) = reserved[..i].iter().find(|b| b.pin == a.pin) {
                problems.general(
                    None,
                    Some(&a.source),
                    format!(
                        "{} would be both {} ({}) and {}",
                        a.pin,
                        b.role.describe(),
                        b.source,
                        a.role.describe()
                    ),
                );
            }
        }
        for rule in &self.rules {
            let Action::Gpio(gpio) = &rule.action else {
                continue;
            };
            for r in reserved.iter().filter(|r| r.pin == gpio.pin) {
                problems.rule(
                    &rule_ref(rule.index, &rule.name),
                    "gpio.line",
                    format!(
                        "{} is also {} ({}); a line has one role",
                        gpio.pin,
                        r.role.describe(),
                        r.source
                    ),
                );
            }
        }
        problems.finish(&self.file)
    }
}

fn rule_ref(index: usize, name: &str) -> RuleRef {
    RuleRef {
        index,
        name: Some(name.to_owned()),
    }
}

/// Rules sharing a GPIO line must agree on `initial`; rules sharing a PWM channel must
/// agree on `period_ns` (one device, opened once, has one setting).
pub(super) fn check_rule_pins(actions: &Actions, problems: &mut Problems) {
    let mut initial_by_pin: HashMap<PinSpec, (usize, Level)> = HashMap::new();
    let mut period_by_channel = HashMap::new();
    for rule in &actions.rules {
        match &rule.action {
            Action::Gpio(gpio) => {
                let Some(initial) = gpio.initial else {
                    continue;
                };
                match initial_by_pin.get(&gpio.pin) {
                    Some(&(first, level)) if level != initial => problems.rule(
                        &rule_ref(rule.index, &rule.name),
                        "gpio.initial",
                        format!(
                            "\"{}\" conflicts with \"{}\" given by rule {first} for the same line {}",
                            initial.as_str(),
                            level.as_str(),
                            gpio.pin
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        initial_by_pin.insert(gpio.pin.clone(), (rule.index, initial));
                    }
                }
            }
            Action::Pwm(pwm) => {
                let key = (pwm.chip, pwm.channel);
                match period_by_channel.get(&key) {
                    Some(&(first, period)) if period != pwm.period_ns => problems.rule(
                        &rule_ref(rule.index, &rule.name),
                        "pwm.period_ns",
                        format!(
                            "{} differs from {period} given by rule {first} for the same channel pwmchip{}/pwm{}",
                            pwm.period_ns, pwm.chip, pwm.channel
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        period_by_channel.insert(key, (rule.index, pwm.period_ns));
                    }
                }
            }
            Action::I2c(_) => {}
        }
    }
}
