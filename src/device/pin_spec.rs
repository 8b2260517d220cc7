//! GPIO pin addresses: a character-device chip plus a line offset, written `chip:line`.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Highest line offset accepted. Real chips have far fewer lines (a Raspberry Pi's
/// `gpiochip0` has 54 or 58); the exact count is checked when the chip is opened.
pub const MAX_LINE: u32 = 511;

/// A GPIO line on a Linux GPIO character device, e.g. `/dev/gpiochip0:17`.
///
/// `chip` is always normalised to a path (`gpiochip0` and `0` become `/dev/gpiochip0`),
/// so two specs naming the same line compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PinSpec {
    /// Path of the GPIO character device, e.g. `/dev/gpiochip0`.
    pub chip: String,
    /// Line offset on that chip (the BCM GPIO number on a Raspberry Pi's `gpiochip0`).
    pub line: u32,
}

/// Why a pin spec or chip name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PinSpecError {
    /// No `:` separating chip and line.
    #[error("\"{0}\": expected CHIP:LINE, e.g. gpiochip0:27 or /dev/gpiochip0:27")]
    MissingColon(String),
    /// The chip part is not a gpiochip name, number or absolute path.
    #[error("\"{0}\": chip must be gpiochipN, /dev/gpiochipN, N, or an absolute device path")]
    BadChip(String),
    /// The line part is not a non-negative integer.
    #[error("\"{0}\": line must be a non-negative integer")]
    BadLine(String),
    /// The line is above [`MAX_LINE`].
    #[error("line {0} is out of range (0..={max})", max = MAX_LINE)]
    LineOutOfRange(u64),
}

impl PinSpec {
    /// A spec from a chip name (normalised, see [`normalize_chip`]) and a line offset.
    pub fn new(chip: &str, line: u32) -> Result<Self, PinSpecError> {
        if line > MAX_LINE {
            return Err(PinSpecError::LineOutOfRange(u64::from(line)));
        }
        Ok(Self {
            chip: normalize_chip(chip)?,
            line,
        })
    }
}

/// Normalises a GPIO chip name: `gpiochip0`, `0` and `/dev/gpiochip0` all give
/// `/dev/gpiochip0`; any other absolute path is kept as is (e.g. a udev symlink).
pub fn normalize_chip(chip: &str) -> Result<String, PinSpecError> {
    let chip = chip.trim();
    if chip.starts_with('/') && chip.len() > 1 && !chip.ends_with('/') {
        return Ok(chip.to_owned());
    }
    let number = chip.strip_prefix("gpiochip").unwrap_or(chip);
    if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(format!("/dev/gpiochip{number}"));
    }
    Err(PinSpecError::BadChip(chip.to_owned()))
}

impl FromStr for PinSpec {
    type Err = PinSpecError;

    /// Parses `gpiochip0:27`, `/dev/gpiochip0:27` or `0:27`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (chip, line) = s
            .rsplit_once(':')
            .ok_or_else(|| PinSpecError::MissingColon(s.to_owned()))?;
        let line = line.trim();
        if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinSpecError::BadLine(line.to_owned()));
        }
        let line: u64 = line
            .parse()
            .map_err(|_| PinSpecError::LineOutOfRange(u64::MAX))?;
        let line = u32::try_from(line)
            .ok()
            .filter(|l| *l <= MAX_LINE)
            .ok_or(PinSpecError::LineOutOfRange(line))?;
        PinSpec::new(chip, line)
    }
}

impl fmt::Display for PinSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.chip, self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_accepted_forms_to_the_same_pin() {
        let expected = PinSpec {
            chip: "/dev/gpiochip0".into(),
            line: 27,
        };
        for text in [
            "gpiochip0:27",
            "/dev/gpiochip0:27",
            "0:27",
            " gpiochip0:27 ",
        ] {
            assert_eq!(text.parse::<PinSpec>(), Ok(expected.clone()), "{text}");
        }
        assert_eq!(expected.to_string(), "/dev/gpiochip0:27");
    }

    #[test]
    fn keeps_other_absolute_paths() {
        let pin: PinSpec = "/dev/gpio-rp1:4".parse().expect("absolute path");
        assert_eq!(pin.chip, "/dev/gpio-rp1");
        assert_eq!(pin.line, 4);
    }

    #[test]
    fn rejects_bad_specs_with_the_reason() {
        assert_eq!(
            "gpiochip0".parse::<PinSpec>(),
            Err(PinSpecError::MissingColon("gpiochip0".into()))
        );
        assert_eq!(
            "gpiochip0:".parse::<PinSpec>(),
            Err(PinSpecError::BadLine(String::new()))
        );
        assert_eq!(
            "gpiochip0:-1".parse::<PinSpec>(),
            Err(PinSpecError::BadLine("-1".into()))
        );
        assert_eq!(
            "gpiochip0:x7".parse::<PinSpec>(),
            Err(PinSpecError::BadLine("x7".into()))
        );
        assert_eq!(
            "gpiochip0:512".parse::<PinSpec>(),
            Err(PinSpecError::LineOutOfRange(512))
        );
        assert_eq!(
            "gpiochip0:99999999999".parse::<PinSpec>(),
            Err(PinSpecError::LineOutOfRange(99_999_999_999))
        );
        assert_eq!(
            "chip0:3".parse::<PinSpec>(),
            Err(PinSpecError::BadChip("chip0".into()))
        );
        assert_eq!(
            ":3".parse::<PinSpec>(),
            Err(PinSpecError::BadChip(String::new()))
        );
        let msg = "gpiochip0".parse::<PinSpec>().unwrap_err().to_string();
        assert!(msg.contains("expected CHIP:LINE"), "{msg}");
    }
}
