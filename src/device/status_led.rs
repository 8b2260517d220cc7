//! A status LED: steady on while serving, blinking while retraining, off otherwise.
//!
//! [`StatusLed`] is a tick-driven state machine over any [`OutputPin`] (deterministic in
//! tests). [`StatusLedThread`] drives one from a background thread, so the LED keeps
//! blinking even while the serving loop is busy (e.g. retraining on the same thread).

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use embedded_hal::digital::OutputPin;

/// What the LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedState {
    /// LED off.
    Off,
    /// Steady on: serving answers.
    Serving,
    /// Blinking: retraining.
    Retraining,
}

/// Default blink rate while retraining: 2 Hz (on 250 ms, off 250 ms).
pub const DEFAULT_BLINK_PERIOD: Duration = Duration::from_millis(500);

/// A status LED state machine. Writes the pin only when the level must change.
#[derive(Debug)]
pub struct StatusLed<P: OutputPin> {
    pin: P,
    state: LedState,
    half_period: Duration,
    /// Last level written successfully; `None` at start and after a failed write, so the
    /// next `tick` writes again.
    lit: Option<bool>,
    next_toggle: Option<Instant>,
}

impl<P: OutputPin> StatusLed<P> {
    /// An LED in state [`LedState::Off`] (nothing written until the first state/tick),
    /// blinking at [`DEFAULT_BLINK_PERIOD`].
    pub fn new(pin: P) -> Self {
        Self::with_blink_period(pin, DEFAULT_BLINK_PERIOD)
    }

    /// Like [`new`](Self::new) with another blink period (one on + one off phase).
    pub fn with_blink_period(pin: P, period: Duration) -> Self {
        Self {
            pin,
            state: LedState::Off,
            half_period: (period / 2).max(Duration::from_millis(1)),
            lit: None,
            next_toggle: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> LedState {
        self.state
    }

    /// Whether the LED was last set on (`None` if unknown).
    pub fn is_lit(&self) -> Option<bool> {
        self.lit
    }

    /// When the next blink toggle is due, if blinking.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_toggle
    }

    /// Switches state and drives the pin at once (retraining starts with the LED on).
    pub fn set_state(&mut self, state: LedState, now: Instant) -> Result<(), P::Error> {
        self.state = state;
        match state {
            LedState::Off => {
                self.next_toggle = None;
                self.write(false)
            }
            LedState::Serving => {
                self.next_toggle = None;
                self.write(true)
            }
            LedState::Retraining => {
                self.next_toggle = Some(now + self.half_period);
                self.write(true)
            }
        }
    }

    /// Advances blinking to `now`; call it at least every half blink period.
    pub fn tick(&mut self, now: Instant) -> Result<(), P::Error> {
        match self.state {
            LedState::Off => self.write(false),
            LedState::Serving => self.write(true),
            LedState::Retraining => {
                let due = self.next_toggle.unwrap_or(now);
                if now < due {
                    return match self.lit {
                        Some(_) => Ok(()),
                        None => self.write(true),
                    };
                }
                // After a long gap, resume the rhythm from now rather than catching up.
                self.next_toggle = Some(if now - due >= self.half_period {
                    now + self.half_period
                } else {
                    due + self.half_period
                });
                let on = !self.lit.unwrap_or(false);
                self.write(on)
            }
        }
    }

    /// Gives the pin back.
    pub fn into_inner(self) -> P {
        self.pin
    }

    fn write(&mut self, on: bool) -> Result<(), P::Error> {
        if self.lit == Some(on) {
            return Ok(());
        }
        self.lit = None;
        if on {
            self.pin.set_high()?;
        } else {
            self.pin.set_low()?;
        }
        self.lit = Some(on);
        Ok(())
    }
}

enum Command {
    Set(LedState),
    Stop,
}

/// A [`StatusLed`] driven by its own thread. Dropping it turns the LED off and joins.
pub struct StatusLedThread {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    last_error: Arc<Mutex<Option<String>>>,
}

/// Longest the LED thread sleeps when nothing is due (it also wakes on every command).
const IDLE_WAKE: Duration = Duration::from_millis(250);

impl StatusLedThread {
    /// Starts the thread; the LED starts in `initial`.
    pub fn spawn<P>(mut led: StatusLed<P>, initial: LedState) -> std::io::Result<Self>
    where
        P: OutputPin + Send + 'static,
        P::Error: std::fmt::Debug,
    {
        let (commands, rx) = mpsc::channel();
        let last_error = Arc::new(Mutex::new(None));
        let errors = Arc::clone(&last_error);
        let record = move |result: Result<(), P::Error>| {
            if let Err(e) = result {
                *errors.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{e:?}"));
            }
        };
        let thread = thread::Builder::new()
            .name("status-led".into())
            .spawn(move || {
                record(led.set_state(initial, Instant::now()));
                loop {
                    let wait = led
                        .next_deadline()
                        .map_or(IDLE_WAKE, |d| d.saturating_duration_since(Instant::now()))
                        .min(IDLE_WAKE);
                    match rx.recv_timeout(wait) {
                        Ok(Command::Set(state)) => record(led.set_state(state, Instant::now())),
                        Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            record(led.set_state(LedState::Off, Instant::now()));
                            return;
                        }
                        Err(RecvTimeoutError::Timeout) => record(led.tick(Instant::now())),
                    }
                }
            })?;
        Ok(Self {
            commands,
            thread: Some(thread),
            last_error,
        })
    }

    /// Changes the LED state.
    pub fn set(&self, state: LedState) {
        // If the thread is gone, there is no LED left to drive; nothing to report.
        let _ = self.commands.send(Command::Set(state));
    }

    /// The last pin error the thread hit, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for StatusLedThread {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
