//! Device I/O: utterances in over a serial line, model answers out to GPIO, PWM and I2C through
//! embedded-hal 1.0. Used by `serve` and the command line (feature `device`).
//!
//! * Rules read a model's answer, a [`crate::predict::Prediction`] (each sentence task's label and
//!   probability, each span task's spans). [`ModelLabels`] is what a model can output
//!   ([`ModelLabels::from_tasks`]), for checking an actions file offline ([`model_labels`] reads
//!   it from a run or a merged model).
//! * [`Actions`] is a checked `actions.toml` (schema in [`config`]).
//! * [`Executor`] runs the rules against answers through a [`Hardware`] backend:
//!   [`LinuxHardware`] (feature `linux`), [`DryRunHardware`] (`--dry-run-io`), or
//!   [`mock::MockHardware`] in tests.
//! * [`StatusLed`] / [`StatusLedThread`] and [`FeedbackButton`] drive the status LED and
//!   read the "last answer was wrong" button.
//! * [`serial`] frames lines from any `embedded_io::Read` ([`serial::SerialLineReader`]) and
//!   writes JSON lines back; `serial::SerialPort` opens a real tty.
//!
//! # A serving loop
//!
//! Everything time-dependent is tick-driven, and the serial port's read timeout is the tick.
//! (Not run as a doctest: it needs a serial port and GPIO lines; `tests/device/device_serial_pty.rs`
//! runs the same loop over a real pseudo-terminal.)
//!
//! ```ignore
//! use std::time::Duration;
//! use edgetune::device::{serial, Actions, Executor, LinuxHardware};
//! use edgetune::{MergedModel, Predict, SessionOptions};
//!
//! let mut model = MergedModel::open("model.onnx".as_ref(), &SessionOptions::with_threads(1))?;
//! let actions = Actions::load("actions.toml".as_ref())?;
//! let mut executor = Executor::new(&actions, LinuxHardware::new())?;
//! let port = serial::SerialPort::open("/dev/ttyAMA0", 115_200, Duration::from_millis(10))?;
//! let mut out = port.try_clone()?;
//! let mut lines = serial::SerialLineReader::new(port, serial::DEFAULT_MAX_LINE);
//! while let Some(item) = lines.next_line() {
//!     match item {
//!         Ok(line) => {
//!             let answer = model.predict(&line.text)?;
//!             for fired in executor.execute(&answer) {
//!                 eprintln!("{fired}");
//!             }
//!             serial::write_json_line(&mut out, &answer)?;
//!         }
//!         Err(e) if e.is_timeout() => {
//!             for fired in executor.service() {
//!                 eprintln!("{fired}");
//!             }
//!         }
//!         Err(e) => eprintln!("serial: {e}"),
//!     }
//! }
//! ```
//!
//! # Paths
//! The layer's own files refer to each other by `super::` paths; `crate::` items are the
//! prediction rules read, the task-name constants of [`crate::data`], and in `model` (the bridge
//! from edgetune's models) the model's tasks.

mod button;
mod clock;
pub mod config;
mod dry_run;
mod executor;
#[cfg(feature = "linux")]
pub mod linux;
mod matching;
pub mod mock;
mod model;
mod number;
mod pin_spec;
pub mod serial;
mod status_led;

pub use button::{FeedbackButton, FeedbackEvent, DEFAULT_DEBOUNCE};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Action, Actions, ConfigError, Level, PinRole, Problem, ReservedPin, Rule, RuleRef,
};
pub use dry_run::DryRunHardware;
pub use executor::{
    Effect, Executor, Fired, Hardware, OpenError, Outcome, StartError, RESTORE_ATTEMPTS,
    RESTORE_RETRY,
};
#[cfg(feature = "linux")]
pub use linux::LinuxHardware;
pub use matching::Duty;
pub use model::{model_labels, ModelLabels};
pub use number::{parse_quantity, Quantity};
pub use pin_spec::{PinSpec, PinSpecError};
pub use status_led::{LedState, StatusLed, StatusLedThread};
