//! Linux backend: GPIO through the character device (`/dev/gpiochipN`, via
//! `linux-embedded-hal`'s `CdevPin`), I2C through `/dev/i2c-N` (`I2cdev`), and PWM through
//! sysfs (`/sys/class/pwm`, this crate's [`SysfsPwm`]).

mod hardware;
mod pwm;

pub use hardware::{open_input, open_output, LinuxHardware, GPIO_CONSUMER};
pub use linux_embedded_hal::{CdevPin, I2cdev};
pub use pwm::{PwmError, SysfsPwm, SYSFS_PWM_ROOT};
