//! Human-readable one-line descriptions of rules and actions.

use std::fmt;

use super::{Action, DutySource, GpioAction, I2cAction, PwmAction, PwmUnit, Rule};

impl fmt::Display for GpioAction {
    /// `gpio /dev/gpiochip0:17 -> high (pulse 500 ms)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gpio {} -> {}", self.pin, self.level.as_str())?;
        if let Some(pulse) = self.pulse {
            write!(f, " (pulse {} ms)", pulse.as_millis())?;
        }
        Ok(())
    }
}

impl fmt::Display for PwmAction {
    /// `pwm pwmchip0/pwm0 (period 1000000 ns) <- duty from slot "value" (percent, 0..100)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pwm pwmchip{}/pwm{} (period {} ns) <- ",
            self.chip, self.channel, self.period_ns
        )?;
        match &self.duty {
            DutySource::Fixed(fraction) => write!(f, "duty {:.1}%", fraction * 100.0),
            DutySource::Slot {
                kind,
                unit,
                min,
                max,
            } => {
                let unit = match unit {
                    PwmUnit::Percent => "percent",
                    PwmUnit::Raw => "raw",
                };
                write!(f, "duty from slot \"{kind}\" ({unit}, {min}..{max})")
            }
        }
    }
}

impl fmt::Display for I2cAction {
    /// `i2c /dev/i2c-1 @0x42 <- [0x01, 0xff]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "i2c {} @{:#04x} <- {}",
            self.bus,
            self.address,
            hex_bytes(&self.bytes)
        )
    }
}

/// `[0x01, 0xff]`
pub(crate) fn hex_bytes(bytes: &[u8]) -> String {
    let items: Vec<String> = bytes.iter().map(|b| format!("{b:#04x}")).collect();
    format!("[{}]", items.join(", "))
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Gpio(a) => a.fmt(f),
            Action::Pwm(a) => a.fmt(f),
            Action::I2c(a) => a.fmt(f),
        }
    }
}

impl fmt::Display for Rule {
    /// `rule 1 "kitchen light on": when intent = turn_on (p >= 0.7), slots.room = kitchen: gpio ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {} \"{}\": when ", self.index, self.name)?;
        let mut conditions = Vec::new();
        for cond in &self.labels {
            let mut text = format!("{} = {}", cond.field, cond.labels.join("|"));
            if let Some(p) = self.min_prob {
                text.push_str(&format!(" (p >= {p})"));
            }
            conditions.push(text);
        }
        for cond in &self.spans {
            conditions.push(format!("{} = {}", cond.field, cond.values.join("|")));
        }
        write!(f, "{}: {}", conditions.join(", "), self.action)
    }
}
