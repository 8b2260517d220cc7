//! The backend trait the executor opens devices through.

use embedded_hal::digital::OutputPin;
use embedded_hal::i2c::I2c;
use embedded_hal::pwm::SetDutyCycle;
use thiserror::Error;

use super::super::config::Level;
use super::super::pin_spec::PinSpec;

/// Why a backend could not open a device.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct OpenError {
    /// What went wrong, e.g. `No such file or directory (os error 2)`.
    pub message: String,
}

impl OpenError {
    /// An error with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Opens the devices rules act on. The executor calls each method once per distinct
/// device at start-up, so a bad path fails before the first answer, naming the rule.
pub trait Hardware {
    /// A GPIO output line.
    type Out: OutputPin;
    /// A PWM channel.
    type Pwm: SetDutyCycle;
    /// An I2C bus (addresses are given per transaction).
    type I2c: I2c;

    /// Opens a GPIO line as an output, driven to `initial`.
    fn output(&mut self, pin: &PinSpec, initial: Level) -> Result<Self::Out, OpenError>;

    /// Opens PWM `channel` of sysfs chip `chip` with the given period, enabled at 0 % duty.
    fn pwm(&mut self, chip: u32, channel: u32, period_ns: u64) -> Result<Self::Pwm, OpenError>;

    /// Opens an I2C bus device, e.g. `/dev/i2c-1`.
    fn i2c(&mut self, bus: &str) -> Result<Self::I2c, OpenError>;
}
