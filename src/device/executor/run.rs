//! The executor: opening devices once, firing rules, pulses and their restores.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use embedded_hal::digital::OutputPin;
use embedded_hal::i2c::I2c;
use embedded_hal::pwm::SetDutyCycle;
use thiserror::Error;

use super::super::clock::{Clock, SystemClock};
use super::super::config::{Action, Actions, Level, Rule, RuleRef};
use super::super::pin_spec::PinSpec;
use super::fired::{Effect, Fired, Outcome};
use super::hardware::{Hardware, OpenError};
use super::pulse::{Pending, PulseQueue};
use crate::predict::Prediction;

/// How many times a failing pulse restore is tried before giving up.
pub const RESTORE_ATTEMPTS: u32 = 3;

/// Delay between restore attempts.
pub const RESTORE_RETRY: Duration = Duration::from_millis(100);

/// A device could not be opened at start-up.
#[derive(Debug, Error)]
#[error("{file}: {rule}: cannot open {device}: {source}")]
pub struct StartError {
    /// The actions file.
    pub file: String,
    /// The first rule using the device.
    pub rule: RuleRef,
    /// The device, e.g. `/dev/gpiochip0:17`, `pwmchip0/pwm0`, `/dev/i2c-1`.
    pub device: String,
    /// The backend's error.
    #[source]
    pub source: OpenError,
}

struct OutputDev<P> {
    pin: P,
    spec: PinSpec,
    level: Level,
}

struct PwmDev<P> {
    pwm: P,
}

struct I2cDev<I> {
    i2c: I,
}

/// Runs rules against answers. See the module docs for ordering and pulse semantics.
pub struct Executor<H: Hardware, C: Clock = SystemClock> {
    rules: Vec<(Rule, usize)>,
    outputs: Vec<OutputDev<H::Out>>,
    pwms: Vec<PwmDev<H::Pwm>>,
    i2cs: Vec<I2cDev<H::I2c>>,
    pulses: PulseQueue,
    clock: C,
    hardware: H,
}

fn error_text<E: Debug>(e: &E) -> String {
    format!("{e:?}")
}

impl<H: Hardware> Executor<H, SystemClock> {
    /// Opens every device the rules use (each once) on the real clock.
    pub fn new(actions: &Actions, hardware: H) -> Result<Self, StartError> {
        Self::with_clock(actions, hardware, SystemClock)
    }
}

impl<H: Hardware, C: Clock> Executor<H, C> {
    /// Opens every device the rules use (each once), reading time from `clock`. Fails on
    /// the first device that cannot be opened, naming the first rule that uses it.
    pub fn with_clock(actions: &Actions, mut hardware: H, clock: C) -> Result<Self, StartError> {
        let mut outputs: Vec<OutputDev<H::Out>> = Vec::new();
        let mut pwm_keys: Vec<(u32, u32)> = Vec::new();
        let mut pwms = Vec::new();
        let mut i2c_buses: Vec<String> = Vec::new();
        let mut i2cs = Vec::new();
        let mut rules = Vec::with_capacity(actions.rules.len());
        for rule in &actions.rules {
            let fail = |device: String, source: OpenError| StartError {
                file: actions.file.clone(),
                rule: RuleRef {
                    index: rule.index,
                    name: Some(rule.name.clone()),
                },
                device,
                source,
            };
            let device = match &rule.action {
                Action::Gpio(gpio) => match outputs.iter().position(|o| o.spec == gpio.pin) {
                    Some(i) => i,
                    None => {
                        let initial = actions.initial_level(&gpio.pin);
                        let pin = hardware
                            .output(&gpio.pin, initial)
                            .map_err(|e| fail(gpio.pin.to_string(), e))?;
                        outputs.push(OutputDev {
                            pin,
                            spec: gpio.pin.clone(),
                            level: initial,
                        });
                        outputs.len() - 1
                    }
                },
                Action::Pwm(pwm) => {
                    let key = (pwm.chip, pwm.channel);
                    match pwm_keys.iter().position(|k| *k == key) {
                        Some(i) => i,
                        None => {
                            let dev = hardware.pwm(pwm.chip, pwm.channel, pwm.period_ns).map_err(
                                |e| fail(format!("pwmchip{}/pwm{}", pwm.chip, pwm.channel), e),
                            )?;
                            pwm_keys.push(key);
                            pwms.push(PwmDev { pwm: dev });
                            pwms.len() - 1
                        }
                    }
                }
                Action::I2c(i2c) => match i2c_buses.iter().position(|b| *b == i2c.bus) {
                    Some(i) => i,
                    None => {
                        let dev = hardware
                            .i2c(&i2c.bus)
                            .map_err(|e| fail(i2c.bus.clone(), e))?;
                        i2c_buses.push(i2c.bus.clone());
                        i2cs.push(I2cDev { i2c: dev });
                        i2cs.len() - 1
                    }
                },
            };
            rules.push((rule.clone(), device));
        }
        Ok(Self {
            rules,
            outputs,
            pwms,
            i2cs,
            pulses: PulseQueue::default(),
            clock,
            hardware,
        })
    }

    /// Ends due pulses, then fires every rule matching `answer`, in file order. Returns one
    /// [`Fired`] per ended pulse and per fired rule, errors included.
    pub fn execute(&mut self, answer: &Prediction) -> Vec<Fired> {
        let now = self.clock.now();
        let mut fired = self.service_at(now);
        for i in 0..self.rules.len() {
            if self.rules[i].0.matches(answer) {
                fired.push(self.fire(i, answer, now));
            }
        }
        fired
    }

    /// The rules that would fire for `answer`, without touching the hardware.
    pub fn matching_rules<'a>(&'a self, answer: &'a Prediction) -> impl Iterator<Item = &'a Rule> {
        self.rules
            .iter()
            .map(|(r, _)| r)
            .filter(|r| r.matches(answer))
    }

    /// Ends every pulse whose time is up. Call it regularly while
    /// [`next_deadline`](Self::next_deadline) is `Some`.
    pub fn service(&mut self) -> Vec<Fired> {
        let now = self.clock.now();
        self.service_at(now)
    }

    /// When the earliest pending pulse ends, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pulses.next_deadline()
    }

    /// Ends every pending pulse now, whatever its deadline (for shutdown).
    pub fn end_all_pulses(&mut self) -> Vec<Fired> {
        let now = self.clock.now();
        self.pulses
            .drain_all()
            .into_iter()
            .map(|p| self.restore(p, now, false))
            .collect()
    }

    /// The backend (e.g. to inspect a mock's log).
    pub fn hardware(&self) -> &H {
        &self.hardware
    }

    /// The rules, in file order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|(r, _)| r)
    }

    fn service_at(&mut self, now: Instant) -> Vec<Fired> {
        let mut fired = Vec::new();
        while let Some(pending) = self.pulses.pop_due(now) {
            fired.push(self.restore(pending, now, true));
        }
        fired
    }

    fn rule_name(&self, index: usize) -> String {
        self.rules
            .iter()
            .find(|(r, _)| r.index == index)
            .map(|(r, _)| r.name.clone())
            .unwrap_or_default()
    }

    fn restore(&mut self, mut pending: Pending, now: Instant, retry: bool) -> Fired {
        let dev = &mut self.outputs[pending.output];
        let outcome = match set_level(&mut dev.pin, pending.restore) {
            Ok(()) => {
                dev.level = pending.restore;
                Outcome::Done
            }
            Err(e) => {
                pending.attempts += 1;
                if retry && pending.attempts < RESTORE_ATTEMPTS {
                    let message = format!("{e} (will retry in {} ms)", RESTORE_RETRY.as_millis());
                    pending.deadline = now + RESTORE_RETRY;
                    self.pulses.schedule(pending.clone());
                    Outcome::Failed(message)
                } else {
                    Outcome::Failed(format!(
                        "{e} (giving up after {} attempts)",
                        pending.attempts
                    ))
                }
            }
        };
        Fired {
            rule_index: pending.rule_index,
            rule: self.rule_name(pending.rule_index),
            effect: Effect::PulseEnd {
                pin: self.outputs[pending.output].spec.clone(),
                level: pending.restore,
            },
            outcome,
            at: now,
        }
    }

    fn fire(&mut self, i: usize, answer: &Prediction, now: Instant) -> Fired {
        let (rule, device) = &self.rules[i];
        let device = *device;
        let (effect, outcome) = match &rule.action {
            Action::Gpio(gpio) => {
                let dev = &mut self.outputs[device];
                let restore = self
                    .pulses
                    .get(device)
                    .map_or(dev.level, |pending| pending.restore);
                let outcome = match set_level(&mut dev.pin, gpio.level) {
                    Ok(()) => {
                        dev.level = gpio.level;
                        match gpio.pulse {
                            Some(pulse) => self.pulses.schedule(Pending {
                                output: device,
                                deadline: now + pulse,
                                restore,
                                rule_index: rule.index,
                                attempts: 0,
                            }),
                            None => {
                                self.pulses.cancel(device);
                            }
                        }
                        Outcome::Done
                    }
                    Err(e) => Outcome::Failed(e),
                };
                let effect = Effect::Gpio {
                    pin: gpio.pin.clone(),
                    level: gpio.level,
                    pulse: gpio.pulse,
                };
                (effect, outcome)
            }
            Action::Pwm(pwm) => match pwm.duty.duty_for(answer) {
                Err(reason) => (
                    Effect::Pwm {
                        chip: pwm.chip,
                        channel: pwm.channel,
                        duty: None,
                    },
                    Outcome::Skipped(reason),
                ),
                Ok(duty) => {
                    let dev = &mut self.pwms[device].pwm;
                    let max = dev.max_duty_cycle();
                    // `duty.fraction` is within 0..=1, so the product fits in u16.
                    let raw = (duty.fraction * f64::from(max)).round() as u16;
                    let outcome = match dev.set_duty_cycle(raw) {
                        Ok(()) => Outcome::Done,
                        Err(e) => Outcome::Failed(error_text(&e)),
                    };
                    let effect = Effect::Pwm {
                        chip: pwm.chip,
                        channel: pwm.channel,
                        duty: Some(duty),
                    };
                    (effect, outcome)
                }
            },
            Action::I2c(i2c) => {
                let outcome = match self.i2cs[device].i2c.write(i2c.address, &i2c.bytes) {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::Failed(error_text(&e)),
                };
                let effect = Effect::I2c {
                    bus: i2c.bus.clone(),
                    address: i2c.address,
                    bytes: i2c.bytes.clone(),
                };
                (effect, outcome)
            }
        };
        Fired {
            rule_index: rule.index,
            rule: rule.name.clone(),
            effect,
            outcome,
            at: now,
        }
    }
}

fn set_level<P: OutputPin>(pin: &mut P, level: Level) -> Result<(), String> {
    match level {
        Level::High => pin.set_high(),
        Level::Low => pin.set_low(),
    }
    .map_err(|e| error_text(&e))
}

impl<H: Hardware, C: Clock> Drop for Executor<H, C> {
    /// Restores every pending pulse, so a relay is not left energised on exit.
    fn drop(&mut self) {
        let _ = self.end_all_pulses();
    }
}
