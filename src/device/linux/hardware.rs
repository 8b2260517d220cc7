//! The board's devices behind the executor's [`Hardware`] trait, and single GPIO lines for the
//! status LED and the feedback button.

use std::path::PathBuf;

use gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::{CdevPin, I2cdev};

use super::pwm::{SysfsPwm, SYSFS_PWM_ROOT};

use super::super::config::Level;
use super::super::executor::{Hardware, OpenError};
use super::super::pin_spec::PinSpec;

/// Consumer label shown by `gpioinfo` for lines this crate holds.
pub const GPIO_CONSUMER: &str = "edgetune";

/// The real devices of a Linux board.
#[derive(Debug, Clone)]
pub struct LinuxHardware {
    pwm_root: PathBuf,
}

impl LinuxHardware {
    /// The board's devices, PWM under [`SYSFS_PWM_ROOT`].
    pub fn new() -> Self {
        Self {
            pwm_root: PathBuf::from(SYSFS_PWM_ROOT),
        }
    }

    /// Same, with the sysfs PWM class directory elsewhere (for tests).
    pub fn with_pwm_root(pwm_root: impl Into<PathBuf>) -> Self {
        Self {
            pwm_root: pwm_root.into(),
        }
    }
}

impl Default for LinuxHardware {
    fn default() -> Self {
        Self::new()
    }
}

impl Hardware for LinuxHardware {
    type Out = CdevPin;
    type Pwm = SysfsPwm;
    type I2c = I2cdev;

    fn output(&mut self, pin: &PinSpec, initial: Level) -> Result<CdevPin, OpenError> {
        open_output(pin, initial, false)
    }

    fn pwm(&mut self, chip: u32, channel: u32, period_ns: u64) -> Result<SysfsPwm, OpenError> {
        SysfsPwm::open(&self.pwm_root, chip, channel, period_ns)
            .map_err(|e| OpenError::new(e.to_string()))
    }

    fn i2c(&mut self, bus: &str) -> Result<I2cdev, OpenError> {
        device_node(bus)?;
        I2cdev::new(bus).map_err(|e| OpenError::new(e.to_string()))
    }
}

/// Refuses a device path that is not a character device (a FIFO there would block the open for
/// ever; a regular file is no device), before anything opens it.
fn device_node(path: &str) -> Result<(), OpenError> {
    crate::fsutil::check_char_device(std::path::Path::new(path))
        .map_err(|e| OpenError::new(format!("{path}: {e}")))
}

fn request(pin: &PinSpec, flags: LineRequestFlags, value: u8) -> Result<CdevPin, OpenError> {
    device_node(&pin.chip)?;
    let mut chip = Chip::new(&pin.chip).map_err(|e| OpenError::new(e.to_string()))?;
    if pin.line >= chip.num_lines() {
        return Err(OpenError::new(format!(
            "line {} is out of range: {} has {} lines",
            pin.line,
            pin.chip,
            chip.num_lines()
        )));
    }
    let handle = chip
        .get_line(pin.line)
        .and_then(|line| line.request(flags, value, GPIO_CONSUMER))
        .map_err(|e| {
            OpenError::new(format!(
                "{e} (is the line used by another program or a dtoverlay?)"
            ))
        })?;
    CdevPin::new(handle).map_err(|e| OpenError::new(e.to_string()))
}

/// Opens a line as an output driven to `initial` (a logical level: with `active_low`,
/// `High` drives the wire low). Used for rule outputs and the status LED.
pub fn open_output(pin: &PinSpec, initial: Level, active_low: bool) -> Result<CdevPin, OpenError> {
    let mut flags = LineRequestFlags::OUTPUT;
    if active_low {
        flags |= LineRequestFlags::ACTIVE_LOW;
    }
    request(pin, flags, u8::from(initial == Level::High))
}

/// Opens a line as an input (the feedback button). The v1 GPIO character-device API used
/// here cannot set a bias: use an external pull-up, or `gpio=N=ip,pu` in `config.txt`.
pub fn open_input(pin: &PinSpec) -> Result<CdevPin, OpenError> {
    request(pin, LineRequestFlags::INPUT, 0)
}
