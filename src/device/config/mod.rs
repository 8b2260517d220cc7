//! `actions.toml`: rules that map model answers to hardware actions.
//!
//! Loading happens in three separate steps, so each can run where it makes sense:
//! 1. [`Actions::parse`] / [`Actions::load`]: TOML syntax (with line/column), the schema
//!    (unknown keys rejected), and every value check that needs nothing but the file;
//! 2. [`Actions::check_labels`]: label, task and span-type names against a model's
//!    [`ModelLabels`](super::ModelLabels) (can run offline, without hardware);
//! 3. [`Actions::check_pins`]: GPIO lines also used as the status LED or feedback button.
//!
//! # Schema
//!
//! ```toml
//! version = 1                      # optional; only 1 exists
//!
//! [[rule]]                         # rules are checked, and fire, in file order
//! name = "kitchen light on"        # required, unique; used in every report
//! intent = "turn_on"               # label of the "intent" task (string or array = any of)
//! min_prob = 0.7                   # optional: every sentence label above needs prob >= this
//! slots = { room = "kitchen" }     # spans of the "tags" task, case-insensitive text match
//! # [rule.when]  sentiment = "negative"         # any other sentence-level task
//! # [rule.spans.ner]  location = "kitchen"      # spans of any other token task
//! gpio = { chip = "/dev/gpiochip0", line = 17, value = "high", pulse_ms = 500 }
//!
//! [[rule]]
//! name = "dimmer"
//! intent = "set_brightness"
//! [rule.pwm]
//! chip = 0                         # /sys/class/pwm/pwmchip0
//! channel = 0                      # .../pwm0
//! period_ns = 1000000              # 1 kHz
//! slot = "value"                   # default "value": the number comes from this slot
//! unit = "percent"                 # or "raw" (then min and max are required)
//! min = 0
//! max = 100
//!
//! [[rule]]
//! name = "unlock door"
//! intent = "unlock"
//! i2c = { bus = "/dev/i2c-1", address = 0x42, bytes = [0x01, 0xFF] }
//! ```
//!
//! Exactly one of `gpio`, `pwm`, `i2c` per rule. See [`GpioAction`], [`PwmAction`] and
//! [`I2cAction`] for the meaning and limits of each field.

mod build;
mod describe;
mod error;
mod labels;
mod pins;
mod raw;
mod rules;

pub use error::{ConfigError, Problem, RuleRef};
pub use pins::{PinRole, ReservedPin};
pub use rules::{
    Action, Actions, DutySource, GpioAction, I2cAction, LabelCondition, Level, PwmAction, PwmUnit,
    Rule, SpanCondition, MAX_I2C_BYTES, MAX_PERIOD_NS, MAX_PULSE_MS, MAX_PWM_INDEX,
};

pub(crate) use describe::hex_bytes;
