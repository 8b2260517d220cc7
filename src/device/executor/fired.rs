//! Reports of what the executor did.

use std::fmt;
use std::time::{Duration, Instant};

use super::super::config::Level;
use super::super::matching::Duty;
use super::super::pin_spec::PinSpec;

/// What a fired rule did (or tried to do) to the hardware.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A GPIO line was set; `pulse` when it will be restored after that long.
    Gpio {
        /// The line.
        pin: PinSpec,
        /// The level set.
        level: Level,
        /// Pulse length, for momentary rules.
        pulse: Option<Duration>,
    },
    /// The end of a pulse: the line was restored.
    PulseEnd {
        /// The line.
        pin: PinSpec,
        /// The level restored.
        level: Level,
    },
    /// A PWM duty cycle was set (`duty` is `None` when the rule was skipped).
    Pwm {
        /// sysfs PWM chip number.
        chip: u32,
        /// Channel on that chip.
        channel: u32,
        /// The duty computed from the answer.
        duty: Option<Duty>,
    },
    /// Bytes were written to an I2C device.
    I2c {
        /// Bus device path.
        bus: String,
        /// 7-bit address.
        address: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// How the action went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done.
    Done,
    /// The rule matched but its action could not be computed (e.g. no number in the slot).
    Skipped(String),
    /// The hardware returned an error (the executor carries on with the next action).
    Failed(String),
}

/// One rule that fired for an answer (or a pulse that ended), and what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// 1-based index of the rule in the actions file.
    pub rule_index: usize,
    /// The rule's name.
    pub rule: String,
    /// What it did.
    pub effect: Effect,
    /// How that went.
    pub outcome: Outcome,
    /// When the executor acted (its clock).
    pub at: Instant,
}

impl Fired {
    /// True when the action was carried out.
    pub fn is_done(&self) -> bool {
        self.outcome == Outcome::Done
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Gpio { pin, level, pulse } => {
                write!(f, "gpio {pin} -> {}", level.as_str())?;
                if let Some(pulse) = pulse {
                    write!(f, " (pulse {} ms)", pulse.as_millis())?;
                }
                Ok(())
            }
            Effect::PulseEnd { pin, level } => {
                write!(f, "gpio {pin} -> {} (end of pulse)", level.as_str())
            }
            Effect::Pwm {
                chip,
                channel,
                duty,
            } => {
                write!(f, "pwm pwmchip{chip}/pwm{channel}")?;
                if let Some(duty) = duty {
                    write!(f, " -> duty {:.1}%", duty.fraction * 100.0)?;
                    match (&duty.input, duty.clamped) {
                        (Some(input), true) => write!(f, " (from \"{input}\", clamped)")?,
                        (Some(input), false) => write!(f, " (from \"{input}\")")?,
                        (None, _) => {}
                    }
                }
                Ok(())
            }
            Effect::I2c {
                bus,
                address,
                bytes,
            } => write!(
                f,
                "i2c {bus} @{address:#04x} <- {}",
                super::super::config::hex_bytes(bytes)
            ),
        }
    }
}

impl fmt::Display for Fired {
    /// `rule "kitchen light on": gpio /dev/gpiochip0:17 -> high (pulse 500 ms)`, with
    /// `: skipped: ...` or `: FAILED: ...` appended when it did not happen.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule \"{}\": {}", self.rule, self.effect)?;
        match &self.outcome {
            Outcome::Done => Ok(()),
            Outcome::Skipped(reason) => write!(f, ": skipped: {reason}"),
            Outcome::Failed(error) => write!(f, ": FAILED: {error}"),
        }
    }
}
