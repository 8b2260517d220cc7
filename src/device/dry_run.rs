//! A backend that opens nothing and performs nothing (the CLI's `--dry-run-io`).
//!
//! The executor still matches rules and reports each action in its [`Fired`](super::Fired),
//! whose `Display` is the human-readable line, e.g.
//! `rule "kitchen light on": gpio /dev/gpiochip0:17 -> high (pulse 500 ms)`.

use core::convert::Infallible;

use embedded_hal::digital::{ErrorType as DigitalErrorType, OutputPin};
use embedded_hal::i2c::{ErrorType as I2cErrorType, I2c, Operation, SevenBitAddress};
use embedded_hal::pwm::{ErrorType as PwmErrorType, SetDutyCycle};

use super::config::Level;
use super::executor::{Hardware, OpenError};
use super::pin_spec::PinSpec;

/// Backend whose devices accept every operation and do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct DryRunHardware;

/// A GPIO output that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct DryPin;

/// A PWM channel that does nothing (full scale `u16::MAX`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DryPwm;

/// An I2C bus that does nothing (reads return zeros).
#[derive(Debug, Clone, Copy, Default)]
pub struct DryI2c;

impl Hardware for DryRunHardware {
    type Out = DryPin;
    type Pwm = DryPwm;
    type I2c = DryI2c;

    fn output(&mut self, _pin: &PinSpec, _initial: Level) -> Result<DryPin, OpenError> {
        Ok(DryPin)
    }

    fn pwm(&mut self, _chip: u32, _channel: u32, _period_ns: u64) -> Result<DryPwm, OpenError> {
        Ok(DryPwm)
    }

    fn i2c(&mut self, _bus: &str) -> Result<DryI2c, OpenError> {
        Ok(DryI2c)
    }
}

impl DigitalErrorType for DryPin {
    type Error = Infallible;
}

impl OutputPin for DryPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl PwmErrorType for DryPwm {
    type Error = Infallible;
}

impl SetDutyCycle for DryPwm {
    fn max_duty_cycle(&self) -> u16 {
        u16::MAX
    }

    fn set_duty_cycle(&mut self, _duty: u16) -> Result<(), Infallible> {
        Ok(())
    }
}

impl I2cErrorType for DryI2c {
    type Error = Infallible;
}

impl I2c<SevenBitAddress> for DryI2c {
    fn transaction(
        &mut self,
        _address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Infallible> {
        for op in operations {
            if let Operation::Read(buf) = op {
                buf.fill(0);
            }
        }
        Ok(())
    }
}
