//! Recording mocks of GPIO, PWM and I2C for tests, with injectable faults.
//!
//! Every operation is appended to a shared [`IoLog`] with the time it happened (read from
//! the log's [`Clock`]), so a test can assert the exact sequence of pin transitions, duty
//! cycles and I2C writes, and measure latency, e.g. from a serial line's last byte to the
//! pin change. [`Faults`] makes the next N operations on a device fail.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use embedded_hal::digital::{self, InputPin, OutputPin};
use embedded_hal::i2c::{self, I2c, Operation, SevenBitAddress};
use embedded_hal::pwm::{self, SetDutyCycle};

use super::clock::{Clock, SystemClock};
use super::config::Level;
use super::executor::{Hardware, OpenError};
use super::pin_spec::PinSpec;

/// One hardware operation seen by a mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoEvent {
    /// A GPIO line was opened as an output at `initial`.
    OutputOpened {
        /// The line.
        pin: PinSpec,
        /// Its start-up level.
        initial: Level,
    },
    /// A GPIO output was set.
    Pin {
        /// The line.
        pin: PinSpec,
        /// The level set.
        level: Level,
    },
    /// A PWM channel was opened.
    PwmOpened {
        /// Chip number.
        chip: u32,
        /// Channel number.
        channel: u32,
        /// Period.
        period_ns: u64,
    },
    /// A PWM duty cycle was set to `duty` out of `max`.
    Duty {
        /// Chip number.
        chip: u32,
        /// Channel number.
        channel: u32,
        /// Duty set.
        duty: u16,
        /// Full scale ([`SetDutyCycle::max_duty_cycle`]).
        max: u16,
    },
    /// An I2C bus was opened.
    I2cOpened {
        /// Bus device.
        bus: String,
    },
    /// Bytes were written to an I2C address.
    I2cWrite {
        /// Bus device.
        bus: String,
        /// 7-bit address.
        address: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Bytes were read from an I2C address (the mock returns zeros).
    I2cRead {
        /// Bus device.
        bus: String,
        /// 7-bit address.
        address: u8,
        /// How many bytes.
        len: usize,
    },
}

/// An [`IoEvent`] with the time it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When (the log's clock).
    pub at: Instant,
    /// What.
    pub event: IoEvent,
}

/// A shared, timestamped log of mock operations. Clones share the same log.
#[derive(Clone)]
pub struct IoLog {
    records: Arc<Mutex<Vec<Record>>>,
    clock: Arc<dyn Clock + Send + Sync>,
}

impl fmt::Debug for IoLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoLog")
            .field("records", &self.records())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep the data readable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl IoLog {
    /// An empty log stamping events with `clock`.
    pub fn new(clock: impl Clock + Send + Sync + 'static) -> Self {
        Self {
            records: Arc::new(Mutex::new(Vec::new())),
            clock: Arc::new(clock),
        }
    }

    /// Appends an event, stamped now.
    pub fn push(&self, event: IoEvent) {
        let at = self.clock.now();
        lock(&self.records).push(Record { at, event });
    }

    /// All records so far.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.records).clone()
    }

    /// All events so far, without times.
    pub fn events(&self) -> Vec<IoEvent> {
        lock(&self.records)
            .iter()
            .map(|r| r.event.clone())
            .collect()
    }

    /// Removes and returns all events so far.
    pub fn take(&self) -> Vec<IoEvent> {
        lock(&self.records).drain(..).map(|r| r.event).collect()
    }
}

impl Default for IoLog {
    fn default() -> Self {
        Self::new(SystemClock)
    }
}

/// Fault injection shared by a backend's devices: make the next N operations on a device
/// fail. Devices are named `/dev/gpiochip0:17`, `pwmchip0/pwm0`, `/dev/i2c-1`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    remaining: Arc<Mutex<HashMap<String, u32>>>,
}

impl Faults {
    /// The next `times` operations on `device` return [`MockError`].
    pub fn fail_next(&self, device: &str, times: u32) {
        lock(&self.remaining).insert(device.to_owned(), times);
    }

    fn check(&self, device: &str, operation: &'static str) -> Result<(), MockError> {
        let mut remaining = lock(&self.remaining);
        match remaining.get_mut(device) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(MockError {
                    device: device.to_owned(),
                    operation,
                })
            }
            _ => Ok(()),
        }
    }
}

/// An injected failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockError {
    /// The device.
    pub device: String,
    /// The operation that failed, e.g. `set_high`.
    pub operation: &'static str,
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected fault: {} on {}", self.operation, self.device)
    }
}

impl std::error::Error for MockError {}

impl digital::Error for MockError {
    fn kind(&self) -> digital::ErrorKind {
        digital::ErrorKind::Other
    }
}

impl pwm::Error for MockError {
    fn kind(&self) -> pwm::ErrorKind {
        pwm::ErrorKind::Other
    }
}

impl i2c::Error for MockError {
    fn kind(&self) -> i2c::ErrorKind {
        i2c::ErrorKind::Other
    }
}

/// A backend of recording mocks.
#[derive(Debug, Clone)]
pub struct MockHardware {
    log: IoLog,
    faults: Faults,
    fail_open: HashSet<String>,
    pwm_max: u16,
}

/// Default full scale of [`MockPwm`], so percentages give round numbers.
pub const MOCK_PWM_MAX: u16 = 1000;

impl MockHardware {
    /// Mocks stamping events with the real clock.
    pub fn new() -> Self {
        Self::with_log(IoLog::default())
    }

    /// Mocks stamping events with `clock`.
    pub fn with_clock(clock: impl Clock + Send + Sync + 'static) -> Self {
        Self::with_log(IoLog::new(clock))
    }

    /// Mocks writing to an existing log.
    pub fn with_log(log: IoLog) -> Self {
        Self {
            log,
            faults: Faults::default(),
            fail_open: HashSet::new(),
            pwm_max: MOCK_PWM_MAX,
        }
    }

    /// Sets the full scale reported by PWM mocks (default [`MOCK_PWM_MAX`]).
    pub fn with_pwm_max(mut self, max: u16) -> Self {
        self.pwm_max = max;
        self
    }

    /// Opening `device` will fail (to test start-up errors).
    pub fn fail_open(&mut self, device: &str) {
        self.fail_open.insert(device.to_owned());
    }

    /// The shared log.
    pub fn log(&self) -> IoLog {
        self.log.clone()
    }

    /// The shared fault injector.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    fn open(&self, device: &str) -> Result<(), OpenError> {
        if self.fail_open.contains(device) {
            Err(OpenError::new(format!("injected open failure on {device}")))
        } else {
            Ok(())
        }
    }
}

impl Default for MockHardware {
    fn default() -> Self {
        Self::new()
    }
}

impl Hardware for MockHardware {
    type Out = MockOutputPin;
    type Pwm = MockPwm;
    type I2c = MockI2c;

    fn output(&mut self, pin: &PinSpec, initial: Level) -> Result<MockOutputPin, OpenError> {
        self.open(&pin.to_string())?;
        self.log.push(IoEvent::OutputOpened {
            pin: pin.clone(),
            initial,
        });
        Ok(MockOutputPin::new(
            pin.clone(),
            self.log.clone(),
            self.faults.clone(),
        ))
    }

    fn pwm(&mut self, chip: u32, channel: u32, period_ns: u64) -> Result<MockPwm, OpenError> {
        self.open(&format!("pwmchip{chip}/pwm{channel}"))?;
        self.log.push(IoEvent::PwmOpened {
            chip,
            channel,
            period_ns,
        });
        Ok(MockPwm {
            chip,
            channel,
            max: self.pwm_max,
            log: self.log.clone(),
            faults: self.faults.clone(),
        })
    }

    fn i2c(&mut self, bus: &str) -> Result<MockI2c, OpenError> {
        self.open(bus)?;
        self.log.push(IoEvent::I2cOpened {
            bus: bus.to_owned(),
        });
        Ok(MockI2c {
            bus: bus.to_owned(),
            log: self.log.clone(),
            faults: self.faults.clone(),
        })
    }
}

/// A GPIO output that logs each `set_*` with its time.
#[derive(Debug, Clone)]
pub struct MockOutputPin {
    pin: PinSpec,
    name: String,
    log: IoLog,
    faults: Faults,
}

impl MockOutputPin {
    /// A pin named `pin`, logging to `log`, failing as `faults` says.
    pub fn new(pin: PinSpec, log: IoLog, faults: Faults) -> Self {
        Self {
            name: pin.to_string(),
            pin,
            log,
            faults,
        }
    }

    fn set(&mut self, level: Level, operation: &'static str) -> Result<(), MockError> {
        self.faults.check(&self.name, operation)?;
        self.log.push(IoEvent::Pin {
            pin: self.pin.clone(),
            level,
        });
        Ok(())
    }
}

impl digital::ErrorType for MockOutputPin {
    type Error = MockError;
}

impl OutputPin for MockOutputPin {
    fn set_low(&mut self) -> Result<(), MockError> {
        self.set(Level::Low, "set_low")
    }

    fn set_high(&mut self) -> Result<(), MockError> {
        self.set(Level::High, "set_high")
    }
}

/// A PWM channel that logs each duty cycle.
#[derive(Debug, Clone)]
pub struct MockPwm {
    chip: u32,
    channel: u32,
    max: u16,
    log: IoLog,
    faults: Faults,
}

impl pwm::ErrorType for MockPwm {
    type Error = MockError;
}

impl SetDutyCycle for MockPwm {
    fn max_duty_cycle(&self) -> u16 {
        self.max
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), MockError> {
        self.faults.check(
            &format!("pwmchip{}/pwm{}", self.chip, self.channel),
            "set_duty_cycle",
        )?;
        self.log.push(IoEvent::Duty {
            chip: self.chip,
            channel: self.channel,
            duty,
            max: self.max,
        });
        Ok(())
    }
}

/// An I2C bus that logs each write (reads return zeros).
#[derive(Debug, Clone)]
pub struct MockI2c {
    bus: String,
    log: IoLog,
    faults: Faults,
}

impl i2c::ErrorType for MockI2c {
    type Error = MockError;
}

impl I2c<SevenBitAddress> for MockI2c {
    fn transaction(
        &mut self,
        address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), MockError> {
        self.faults.check(&self.bus, "transaction")?;
        for op in operations {
            let event = match op {
                Operation::Write(bytes) => IoEvent::I2cWrite {
                    bus: self.bus.clone(),
                    address,
                    bytes: bytes.to_vec(),
                },
                Operation::Read(buf) => {
                    buf.fill(0);
                    IoEvent::I2cRead {
                        bus: self.bus.clone(),
                        address,
                        len: buf.len(),
                    }
                }
            };
            self.log.push(event);
        }
        Ok(())
    }
}

/// A GPIO input whose level the test sets. Clones share the level.
#[derive(Debug, Clone)]
pub struct MockInputPin {
    level: Arc<Mutex<Level>>,
    name: String,
    faults: Faults,
}

impl MockInputPin {
    /// An input named `name` (for faults) reading `level` until changed.
    pub fn new(name: &str, level: Level, faults: Faults) -> Self {
        Self {
            level: Arc::new(Mutex::new(level)),
            name: name.to_owned(),
            faults,
        }
    }

    /// Changes the level the pin reads.
    pub fn set(&self, level: Level) {
        *lock(&self.level) = level;
    }
}

impl digital::ErrorType for MockInputPin {
    type Error = MockError;
}

impl InputPin for MockInputPin {
    fn is_high(&mut self) -> Result<bool, MockError> {
        self.faults.check(&self.name, "is_high")?;
        Ok(*lock(&self.level) == Level::High)
    }

    fn is_low(&mut self) -> Result<bool, MockError> {
        self.is_high().map(|high| !high)
    }
}
