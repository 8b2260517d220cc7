//! A PWM channel through the Linux sysfs interface, implementing `SetDutyCycle`.
//!
//! No maintained crate implements embedded-hal 1.0's `SetDutyCycle` over sysfs
//! (`sysfs-pwm` 0.1 predates embedded-hal 1.0), so this is a small one:
//! `/sys/class/pwm/pwmchipN/{export,npwm}` and `pwmchipN/pwmM/{period,duty_cycle,enable}`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use embedded_hal::pwm::{self, SetDutyCycle};
use thiserror::Error;

/// Where the kernel exposes PWM chips.
pub const SYSFS_PWM_ROOT: &str = "/sys/class/pwm";

/// How long to wait for an exported channel to appear and become writable (udev may
/// still be fixing its permissions right after export).
const EXPORT_WAIT: Duration = Duration::from_secs(1);
const EXPORT_POLL: Duration = Duration::from_millis(10);

/// A sysfs PWM failure.
#[derive(Debug, Error)]
pub enum PwmError {
    /// The chip directory does not exist.
    #[error("{0}: no such PWM chip (is the PWM overlay enabled, e.g. dtoverlay=pwm?)")]
    NoChip(PathBuf),
    /// The channel number is not below the chip's `npwm`.
    #[error("{chip}: channel {channel} out of range (the chip has {npwm})")]
    NoChannel {
        /// The chip directory.
        chip: PathBuf,
        /// The channel asked for.
        channel: u32,
        /// Channels the chip has.
        npwm: u32,
    },
    /// The exported channel did not appear in time.
    #[error("{0}: did not appear after export")]
    ExportTimeout(PathBuf),
    /// A sysfs file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl pwm::Error for PwmError {
    fn kind(&self) -> pwm::ErrorKind {
        pwm::ErrorKind::Other
    }
}

/// An exported, enabled sysfs PWM channel with a fixed period. Full scale
/// ([`SetDutyCycle::max_duty_cycle`]) is `u16::MAX`, mapped onto the period in ns.
/// Dropping it leaves the channel as it is (a dimmer keeps its level).
#[derive(Debug)]
pub struct SysfsPwm {
    dir: PathBuf,
    period_ns: u64,
}

fn write(path: &Path, value: &str) -> Result<(), PwmError> {
    fs::write(path, value).map_err(|source| PwmError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_u64(path: &Path) -> Result<u64, PwmError> {
    let text = fs::read_to_string(path).map_err(|source| PwmError::Io {
        path: path.to_owned(),
        source,
    })?;
    text.trim().parse().map_err(|_| PwmError::Io {
        path: path.to_owned(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a number: {:?}", text.trim()),
        ),
    })
}

/// Writes, retrying while permission is denied (udev race right after export).
fn write_retrying(path: &Path, value: &str, until: Instant) -> Result<(), PwmError> {
    loop {
        match fs::write(path, value) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && Instant::now() < until => {
                thread::sleep(EXPORT_POLL);
            }
            result => {
                return result.map_err(|source| PwmError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
}

impl SysfsPwm {
    /// Exports (if needed) channel `channel` of `root/pwmchip{chip}`, sets its period,
    /// sets duty 0 and enables it.
    pub fn open(root: &Path, chip: u32, channel: u32, period_ns: u64) -> Result<Self, PwmError> {
        let chip_dir = root.join(format!("pwmchip{chip}"));
        if !chip_dir.is_dir() {
            return Err(PwmError::NoChip(chip_dir));
        }
        let npwm_path = chip_dir.join("npwm");
        if npwm_path.exists() {
            let npwm = read_u64(&npwm_path)?;
            if u64::from(channel) >= npwm {
                return Err(PwmError::NoChannel {
                    chip: chip_dir,
                    channel,
                    npwm: u32::try_from(npwm).unwrap_or(u32::MAX),
                });
            }
        }
        let dir = chip_dir.join(format!("pwm{channel}"));
        let until = Instant::now() + EXPORT_WAIT;
        if !dir.is_dir() {
            write(&chip_dir.join("export"), &channel.to_string())?;
            while !dir.join("period").exists() {
                if Instant::now() >= until {
                    return Err(PwmError::ExportTimeout(dir));
                }
                thread::sleep(EXPORT_POLL);
            }
        }
        // The kernel rejects a period shorter than the current duty, so zero the duty first.
        let duty_path = dir.join("duty_cycle");
        if read_u64(&duty_path)? > period_ns {
            write_retrying(&duty_path, "0", until)?;
        }
        write_retrying(&dir.join("period"), &period_ns.to_string(), until)?;
        write_retrying(&duty_path, "0", until)?;
        write_retrying(&dir.join("enable"), "1", until)?;
        Ok(Self { dir, period_ns })
    }

    /// The channel's sysfs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The period in ns.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Sets the duty in ns directly (clamped to the period).
    pub fn set_duty_ns(&mut self, duty_ns: u64) -> Result<(), PwmError> {
        write(
            &self.dir.join("duty_cycle"),
            &duty_ns.min(self.period_ns).to_string(),
        )
    }

    /// Disables the output.
    pub fn disable(&mut self) -> Result<(), PwmError> {
        write(&self.dir.join("enable"), "0")
    }
}

impl pwm::ErrorType for SysfsPwm {
    type Error = PwmError;
}

impl SetDutyCycle for SysfsPwm {
    fn max_duty_cycle(&self) -> u16 {
        u16::MAX
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), PwmError> {
        let max = u128::from(u16::MAX);
        // Rounded to the nearest ns; duty <= max, so duty_ns <= period_ns, which fits in u64.
        let duty_ns = (u128::from(self.period_ns) * u128::from(duty) + max / 2) / max;
        self.set_duty_ns(duty_ns as u64)
    }
}
