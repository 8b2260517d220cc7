//! The checked rules of an actions file, and loading one.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::super::pin_spec::PinSpec;
use super::build;
use super::error::ConfigError;

/// Longest accepted `gpio.pulse_ms` (one minute); longer is almost surely a unit mistake.
pub const MAX_PULSE_MS: u64 = 60_000;

/// Longest accepted `pwm.period_ns` (one second, i.e. 1 Hz).
pub const MAX_PERIOD_NS: u64 = 1_000_000_000;

/// Most bytes accepted in one `i2c.bytes` write.
pub const MAX_I2C_BYTES: usize = 256;

/// Highest `pwm.chip` and `pwm.channel` number accepted.
pub const MAX_PWM_INDEX: u32 = 1023;

/// A checked actions file: rules in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Actions {
    /// The file name used in messages (as given to [`Actions::parse`] / [`Actions::load`]).
    pub file: String,
    /// The rules, in file order (which is also the order they fire in).
    pub rules: Vec<Rule>,
}

/// One rule: conditions on an answer, and the action to run when all of them hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// 1-based position in the file.
    pub index: usize,
    /// The rule's unique name.
    pub name: String,
    /// Sentence-level label conditions (from `intent` and `[rule.when]`); all must hold.
    pub labels: Vec<LabelCondition>,
    /// Span conditions (from `[rule.slots]` and `[rule.spans.TASK]`); all must hold.
    pub spans: Vec<SpanCondition>,
    /// Minimum probability of every label in [`Rule::labels`].
    pub min_prob: Option<f32>,
    /// What the rule does.
    pub action: Action,
}

/// "Task `task` answered one of `labels`".
#[derive(Debug, Clone, PartialEq)]
pub struct LabelCondition {
    /// Sentence-level task, e.g. `intent`.
    pub task: String,
    /// Accepted labels (exact match).
    pub labels: Vec<String>,
    /// The `actions.toml` key it came from (`intent` or `when.TASK`), for messages.
    pub field: String,
}

/// "Token task `task` found a span of type `kind` whose text is one of `values`".
#[derive(Debug, Clone, PartialEq)]
pub struct SpanCondition {
    /// Token task, e.g. `tags`.
    pub task: String,
    /// Span type, e.g. `room`.
    pub kind: String,
    /// Accepted texts, trimmed and lower-cased (matching ignores case and outer spaces).
    pub values: Vec<String>,
    /// The `actions.toml` key it came from (`slots.KIND` or `spans.TASK.KIND`), for messages.
    pub field: String,
}

/// The hardware action of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Drive a GPIO output.
    Gpio(GpioAction),
    /// Set a PWM duty cycle.
    Pwm(PwmAction),
    /// Write bytes to an I2C device.
    I2c(I2cAction),
}

/// A logic level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Logic low.
    Low,
    /// Logic high.
    High,
}

impl Level {
    /// The other level.
    pub fn inverse(self) -> Level {
        match self {
            Level::Low => Level::High,
            Level::High => Level::Low,
        }
    }

    /// `"low"` or `"high"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::High => "high",
        }
    }
}

/// `[rule.gpio]`: set a line, optionally only for a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct GpioAction {
    /// The line (`chip` + `line` keys).
    pub pin: PinSpec,
    /// `value`: the level to set.
    pub level: Level,
    /// `pulse_ms` (1..=[`MAX_PULSE_MS`]): set `level`, wait, then restore the level the line
    /// had before. Restoring is deferred, not blocking (see [`super::executor`]).
    pub pulse: Option<Duration>,
    /// `initial`: level the line is set to when opened at start-up (default `low`). Rules
    /// on one line that give it must agree; see [`Actions::initial_level`].
    pub initial: Option<Level>,
}

/// How the number in a slot maps to a duty cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PwmUnit {
    /// The number is a percentage of full duty; `min`/`max` (default 0/100) are limits.
    Percent,
    /// The number is on the scale `min..=max` (both required), mapped linearly to 0..=100 %.
    Raw,
}

/// Where a PWM rule's duty cycle comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum DutySource {
    /// From the number in a slot (`slot`, `unit`, `min`, `max`).
    Slot {
        /// Span type in the `tags` task holding the number (default `value`).
        kind: String,
        /// How to read the number.
        unit: PwmUnit,
        /// Lower end of the input range (numbers below are clamped up to it).
        min: f64,
        /// Upper end of the input range (numbers above are clamped down to it).
        max: f64,
    },
    /// A fixed duty (`duty_percent`), e.g. 0 for an "off" rule; stored as a fraction 0..=1.
    Fixed(f64),
}

/// `[rule.pwm]`: set the duty cycle of a Linux sysfs PWM channel.
#[derive(Debug, Clone, PartialEq)]
pub struct PwmAction {
    /// `chip`: the N of `/sys/class/pwm/pwmchipN`.
    pub chip: u32,
    /// `channel`: the M of `pwmchipN/pwmM`.
    pub channel: u32,
    /// `period_ns` (1..=[`MAX_PERIOD_NS`]); all rules on one channel must agree on it.
    pub period_ns: u64,
    /// Where the duty comes from.
    pub duty: DutySource,
}

/// `[rule.i2c]`: write bytes to a 7-bit I2C address.
#[derive(Debug, Clone, PartialEq)]
pub struct I2cAction {
    /// `bus`: the I2C character device, e.g. `/dev/i2c-1` (`i2c-1` is accepted too).
    pub bus: String,
    /// `address` (0x00..=0x7f).
    pub address: u8,
    /// `bytes` (1..=[`MAX_I2C_BYTES`] of them), written in one transaction.
    pub bytes: Vec<u8>,
}

/// Largest actions file read: 16 MiB (100,000 rules take about 6 MiB).
pub const MAX_ACTIONS_BYTES: u64 = 16 << 20;

impl Actions {
    /// Reads and checks an actions file (steps: syntax, schema, values). The file name in
    /// messages is `path` as given.
    pub fn load(path: &Path) -> Result<Actions, ConfigError> {
        let file = path.display().to_string();
        // A regular file only, read with a bound (a FIFO or a device is refused without blocking).
        let text =
            crate::fsutil::read_bounded_text(path, MAX_ACTIONS_BYTES, crate::fsutil::Links::Follow)
                .map_err(|source| ConfigError::Read {
                    file: file.clone(),
                    source,
                })?;
        Actions::parse(&text, &file)
    }

    /// Checks the text of an actions file; `file` is the name used in messages.
    pub fn parse(text: &str, file: &str) -> Result<Actions, ConfigError> {
        let raw = build::deserialize(text, file)?;
        build::build(file, raw)
    }

    /// Start-up level of a GPIO line: the `initial` some rule on it gives, else low.
    pub fn initial_level(&self, pin: &PinSpec) -> Level {
        self.rules
            .iter()
            .filter_map(|r| match &r.action {
                Action::Gpio(g) if &g.pin == pin => g.initial,
                _ => None,
            })
            .next()
            .unwrap_or(Level::Low)
    }

    /// The rule with the given name.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}
