//! The device side of the service: the actions fired on each answer, the status LED and the
//! feedback button, behind object-safe handles so the service works the same with the board's
//! devices, the dry run and the test mocks.

use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;
use serde_json::{json, Value};

use super::error::ServeError;
use crate::data::TaskInfo;
use crate::device::{
    Actions, Clock, Executor, FeedbackButton, Fired, Hardware, LedState, ModelLabels, Outcome,
    PinRole, PinSpec, ReservedPin, StatusLedThread,
};
use crate::predict::Prediction;

/// Runs an actions file's rules (an [`Executor`] over any backend).
pub trait ActionSink: Send {
    /// Ends due pulses and fires every rule matching `answer`.
    fn execute(&mut self, answer: &Prediction) -> Vec<Fired>;
    /// Ends due pulses.
    fn service(&mut self) -> Vec<Fired>;
    /// When the next pulse ends, if any.
    fn next_deadline(&self) -> Option<Instant>;
    /// Ends every pulse now (shutdown).
    fn end_all(&mut self) -> Vec<Fired>;
}

impl<H, C> ActionSink for Executor<H, C>
where
    H: Hardware,
    C: Clock,
    Executor<H, C>: Send,
{
    fn execute(&mut self, answer: &Prediction) -> Vec<Fired> {
        Executor::execute(self, answer)
    }

    fn service(&mut self) -> Vec<Fired> {
        Executor::service(self)
    }

    fn next_deadline(&self) -> Option<Instant> {
        Executor::next_deadline(self)
    }

    fn end_all(&mut self) -> Vec<Fired> {
        self.end_all_pulses()
    }
}

/// Reads the feedback button.
pub trait ButtonSource: Send {
    /// Polls once; `Ok(true)` when a press was confirmed now.
    fn pressed(&mut self, now: Instant) -> Result<bool, String>;
}

impl<P> ButtonSource for FeedbackButton<P>
where
    P: InputPin + Send,
    P::Error: std::fmt::Debug,
{
    fn pressed(&mut self, now: Instant) -> Result<bool, String> {
        self.poll(now)
            .map(|e| e.is_some())
            .map_err(|e| format!("{e:?}"))
    }
}

/// The devices a service drives; every part is optional.
#[derive(Default)]
pub struct DeviceHub {
    /// Rules fired on each answer.
    pub actions: Option<Box<dyn ActionSink>>,
    /// The status LED (steady while serving, blinking while retraining).
    pub led: Option<StatusLedThread>,
    /// The feedback button.
    pub button: Option<Box<dyn ButtonSource>>,
}

/// How often the device thread polls the button (the debounce needs a few reads per 30 ms).
pub const BUTTON_POLL: Duration = Duration::from_millis(5);

/// Checks an actions file against a model's tasks and the pins given to the LED and button
/// (before any device is opened).
pub fn check_actions(
    actions: &Actions,
    tasks: &[TaskInfo],
    led: Option<&PinSpec>,
    button: Option<&PinSpec>,
) -> Result<(), ServeError> {
    actions.check_labels(&ModelLabels::from_tasks(tasks))?;
    let mut reserved = Vec::new();
    if let Some(p) = led {
        reserved.push(ReservedPin {
            pin: p.clone(),
            role: PinRole::StatusLed,
            source: "--status-led".into(),
        });
    }
    if let Some(p) = button {
        reserved.push(ReservedPin {
            pin: p.clone(),
            role: PinRole::FeedbackButton,
            source: "--feedback-button".into(),
        });
    }
    actions.check_pins(&reserved)?;
    Ok(())
}

/// One fired rule as JSON for the answer: `{"rule", "effect", "ok"}` plus `"skipped"` or
/// `"error"` when it did not happen.
pub fn fired_json(f: &Fired) -> Value {
    let mut v = json!({ "rule": f.rule, "effect": f.effect.to_string(), "ok": f.is_done() });
    match &f.outcome {
        Outcome::Done => {}
        Outcome::Skipped(why) => v["skipped"] = json!(why),
        Outcome::Failed(e) => v["error"] = json!(e),
    }
    v
}

/// The LED state for "retraining" (`true`) or "serving".
pub fn led_state(retraining: bool) -> LedState {
    if retraining {
        LedState::Retraining
    } else {
        LedState::Serving
    }
}

/// Device flags of `serve`, opened on the board ([`open`], feature `linux`).
#[derive(Debug, Clone, Default)]
pub struct DeviceOptions {
    /// `--actions`.
    pub actions: Option<std::path::PathBuf>,
    /// `--dry-run-io`: print what each rule would do, open nothing.
    pub dry_run: bool,
    /// `--status-led`.
    pub status_led: Option<PinSpec>,
    /// `--feedback-button`.
    pub feedback_button: Option<PinSpec>,
}

/// Opens what `opts` asks for on this board: the actions' devices (or the dry run), the status
/// LED and the feedback button (active low, wired to ground with a pull-up). The actions file is
/// checked against `tasks` first.
pub fn open(opts: &DeviceOptions, tasks: &[TaskInfo]) -> Result<DeviceHub, ServeError> {
    let mut hub = DeviceHub::default();
    if let Some(path) = &opts.actions {
        let actions = Actions::load(path)?;
        check_actions(
            &actions,
            tasks,
            opts.status_led.as_ref(),
            opts.feedback_button.as_ref(),
        )?;
        hub.actions = Some(if opts.dry_run {
            Box::new(Executor::new(&actions, crate::device::DryRunHardware)?)
        } else {
            open_board_actions(&actions)?
        });
    }
    if opts.dry_run {
        if opts.status_led.is_some() || opts.feedback_button.is_some() {
            eprintln!("edgetune serve: dry run: the status LED and feedback button are not opened");
        }
        return Ok(hub);
    }
    open_board_pins(opts, &mut hub)?;
    Ok(hub)
}

#[cfg(feature = "linux")]
fn open_board_actions(actions: &Actions) -> Result<Box<dyn ActionSink>, ServeError> {
    Ok(Box::new(Executor::new(
        actions,
        crate::device::LinuxHardware::new(),
    )?))
}

#[cfg(not(feature = "linux"))]
fn open_board_actions(_actions: &Actions) -> Result<Box<dyn ActionSink>, ServeError> {
    Err(ServeError::Config(
        "--actions needs the board's devices, and this build has no `linux` feature (use --dry-run-io)".into(),
    ))
}

#[cfg(feature = "linux")]
fn open_board_pins(opts: &DeviceOptions, hub: &mut DeviceHub) -> Result<(), ServeError> {
    use crate::device::linux::{open_input, open_output};
    use crate::device::{Level, StatusLed, DEFAULT_DEBOUNCE};
    if let Some(pin) = &opts.status_led {
        let out = open_output(pin, Level::Low, false).map_err(|source| ServeError::Device {
            what: format!("--status-led {pin}"),
            source,
        })?;
        hub.led = Some(
            StatusLedThread::spawn(StatusLed::new(out), LedState::Serving)
                .map_err(ServeError::io("status LED thread"))?,
        );
    }
    if let Some(pin) = &opts.feedback_button {
        let input = open_input(pin).map_err(|source| ServeError::Device {
            what: format!("--feedback-button {pin}"),
            source,
        })?;
        hub.button = Some(Box::new(FeedbackButton::new(
            input,
            Level::Low,
            DEFAULT_DEBOUNCE,
        )));
    }
    Ok(())
}

#[cfg(not(feature = "linux"))]
fn open_board_pins(opts: &DeviceOptions, _hub: &mut DeviceHub) -> Result<(), ServeError> {
    if opts.status_led.is_some() || opts.feedback_button.is_some() {
        return Err(ServeError::Config(
            "--status-led and --feedback-button need GPIO, and this build has no `linux` feature"
                .into(),
        ));
    }
    Ok(())
}
