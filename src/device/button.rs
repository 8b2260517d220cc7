//! The feedback button: a debounced press means "the last answer was wrong".

use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;

use super::config::Level;

/// Default debounce time: the input must be stable this long to count.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(30);

/// A confirmed button press: the user says the last answer was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackEvent {
    /// When the input first changed to pressed (before debouncing).
    pub pressed_at: Instant,
    /// When the press was confirmed (stable for the debounce time).
    pub confirmed_at: Instant,
}

/// Polls an input with debouncing; one event per press (holding does not repeat).
///
/// A button held down when polling starts gives no event until released and pressed again.
#[derive(Debug)]
pub struct FeedbackButton<P: InputPin> {
    pin: P,
    pressed_level: Level,
    debounce: Duration,
    /// Debounced state (`true` = pressed); `None` until the first read.
    stable: Option<bool>,
    /// A different raw state seen since this instant, not yet stable long enough.
    candidate: Option<(bool, Instant)>,
}

impl<P: InputPin> FeedbackButton<P> {
    /// A button reading `pressed_level` when pressed (`Low` for the usual wiring to ground
    /// with a pull-up), debounced for `debounce`.
    pub fn new(pin: P, pressed_level: Level, debounce: Duration) -> Self {
        Self {
            pin,
            pressed_level,
            debounce,
            stable: None,
            candidate: None,
        }
    }

    /// Whether the button is (debounced) pressed; `None` before the first poll.
    pub fn is_pressed(&self) -> Option<bool> {
        self.stable
    }

    /// Reads the input once; returns an event when a press becomes stable. Poll it at
    /// least a few times per debounce period (e.g. every 5–10 ms).
    pub fn poll(&mut self, now: Instant) -> Result<Option<FeedbackEvent>, P::Error> {
        let high = self.pin.is_high()?;
        let pressed = high == (self.pressed_level == Level::High);
        let Some(stable) = self.stable else {
            self.stable = Some(pressed);
            return Ok(None);
        };
        if pressed == stable {
            self.candidate = None;
            return Ok(None);
        }
        match self.candidate {
            Some((state, since)) if state == pressed => {
                if now.saturating_duration_since(since) < self.debounce {
                    return Ok(None);
                }
                self.stable = Some(pressed);
                self.candidate = None;
                Ok(pressed.then_some(FeedbackEvent {
                    pressed_at: since,
                    confirmed_at: now,
                }))
            }
            _ => {
                self.candidate = Some((pressed, now));
                Ok(None)
            }
        }
    }

    /// Gives the pin back.
    pub fn into_inner(self) -> P {
        self.pin
    }
}
