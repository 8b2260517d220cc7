//! Status LED and feedback button against mock pins, driven by a manual clock.

use std::time::{Duration, Instant};

use edgetune::device::mock::{Faults, IoEvent, IoLog, MockInputPin, MockOutputPin};
use edgetune::device::{
    Clock, FeedbackButton, FeedbackEvent, LedState, Level, ManualClock, PinSpec, StatusLed,
    StatusLedThread,
};

fn led_pin() -> PinSpec {
    "gpiochip0:22".parse().expect("pin")
}

/// (milliseconds since `t0`, level) of each LED write.
fn transitions(log: &IoLog, t0: Instant) -> Vec<(u128, Level)> {
    log.records()
        .into_iter()
        .map(|r| match r.event {
            IoEvent::Pin { level, .. } => ((r.at - t0).as_millis(), level),
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

#[test]
fn led_is_steady_when_serving_and_blinks_at_2_hz_when_retraining() {
    let clock = ManualClock::new();
    let t0 = clock.now();
    let log = IoLog::new(clock.clone());
    let mut led = StatusLed::new(MockOutputPin::new(
        led_pin(),
        log.clone(),
        Faults::default(),
    ));

    led.set_state(LedState::Serving, clock.now()).expect("set");
    for _ in 0..50 {
        clock.advance(Duration::from_millis(10));
        led.tick(clock.now()).expect("tick");
    }
    assert_eq!(
        transitions(&log, t0),
        [(0, Level::High)],
        "steady: one write only"
    );

    let t1 = clock.now();
    led.set_state(LedState::Retraining, t1).expect("set");
    for _ in 0..100 {
        clock.advance(Duration::from_millis(10));
        led.tick(clock.now()).expect("tick");
    }
    let blink: Vec<_> = transitions(&log, t1).into_iter().skip(1).collect();
    assert_eq!(
        blink,
        [
            (250, Level::Low),
            (500, Level::High),
            (750, Level::Low),
            (1000, Level::High)
        ],
        "2 Hz: a change every 250 ms"
    );

    led.set_state(LedState::Off, clock.now()).expect("set");
    assert_eq!(
        log.events().last(),
        Some(&IoEvent::Pin {
            pin: led_pin(),
            level: Level::Low
        })
    );
    assert_eq!(led.state(), LedState::Off);
    assert_eq!(led.next_deadline(), None);
}

#[test]
fn led_resumes_its_rhythm_after_a_long_gap_instead_of_catching_up() {
    let clock = ManualClock::new();
    let log = IoLog::new(clock.clone());
    let mut led = StatusLed::new(MockOutputPin::new(
        led_pin(),
        log.clone(),
        Faults::default(),
    ));
    led.set_state(LedState::Retraining, clock.now())
        .expect("set");
    clock.advance(Duration::from_secs(3));
    led.tick(clock.now()).expect("tick");
    led.tick(clock.now()).expect("tick");
    assert_eq!(
        log.events().len(),
        2,
        "one toggle for the whole gap: {:?}",
        log.events()
    );
    assert_eq!(
        led.next_deadline(),
        Some(clock.now() + Duration::from_millis(250))
    );
}

#[test]
fn led_retries_after_a_pin_error() {
    let clock = ManualClock::new();
    let log = IoLog::new(clock.clone());
    let faults = Faults::default();
    let mut led = StatusLed::new(MockOutputPin::new(led_pin(), log.clone(), faults.clone()));
    faults.fail_next("/dev/gpiochip0:22", 1);
    let err = led
        .set_state(LedState::Serving, clock.now())
        .expect_err("injected fault");
    assert_eq!(err.operation, "set_high");
    assert_eq!(led.is_lit(), None);
    assert!(log.events().is_empty());
    led.tick(clock.now()).expect("second try works");
    assert_eq!(
        log.events(),
        [IoEvent::Pin {
            pin: led_pin(),
            level: Level::High
        }]
    );
    assert_eq!(led.is_lit(), Some(true));
}

#[test]
fn led_thread_blinks_on_its_own_and_turns_off_when_dropped() {
    let log = IoLog::default();
    let led = StatusLed::with_blink_period(
        MockOutputPin::new(led_pin(), log.clone(), Faults::default()),
        Duration::from_millis(40),
    );
    let thread = StatusLedThread::spawn(led, LedState::Retraining).expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    let blinking = log.events().len();
    assert!(
        blinking >= 4,
        "expected several toggles in 300 ms at 25 Hz, got {blinking}"
    );
    thread.set(LedState::Serving);
    std::thread::sleep(Duration::from_millis(50));
    let serving = log.events();
    assert_eq!(
        serving.last(),
        Some(&IoEvent::Pin {
            pin: led_pin(),
            level: Level::High
        })
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(log.events().len(), serving.len(), "steady while serving");
    assert_eq!(thread.last_error(), None);
    drop(thread);
    assert_eq!(
        log.events().last(),
        Some(&IoEvent::Pin {
            pin: led_pin(),
            level: Level::Low
        })
    );
}

struct ButtonRig {
    clock: ManualClock,
    t0: Instant,
    pin: MockInputPin,
    button: FeedbackButton<MockInputPin>,
}

/// An active-low button (released = high) with 30 ms debounce, polled once at t0.
fn button_rig(initial: Level) -> ButtonRig {
    let clock = ManualClock::new();
    let t0 = clock.now();
    let pin = MockInputPin::new("button", initial, Faults::default());
    let mut button = FeedbackButton::new(pin.clone(), Level::Low, Duration::from_millis(30));
    assert_eq!(button.poll(t0).expect("poll"), None);
    ButtonRig {
        clock,
        t0,
        pin,
        button,
    }
}

impl ButtonRig {
    /// Sets the input at each (ms, level) and polls every 1 ms up to `until_ms`; returns events.
    fn run(&mut self, script: &[(u64, Level)], until_ms: u64) -> Vec<FeedbackEvent> {
        let start = (self.clock.now() - self.t0).as_millis() as u64;
        let mut events = Vec::new();
        for ms in start + 1..=until_ms {
            self.clock.set(self.t0 + Duration::from_millis(ms));
            for (at, level) in script {
                if *at == ms {
                    self.pin.set(*level);
                }
            }
            if let Some(event) = self.button.poll(self.clock.now()).expect("poll") {
                events.push(event);
            }
        }
        events
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
}

#[test]
fn a_bouncing_press_gives_exactly_one_event() {
    let mut rig = button_rig(Level::High);
    let bounce = [
        (10, Level::Low),
        (12, Level::High),
        (14, Level::Low),
        (15, Level::High),
        (17, Level::Low),
    ];
    let events = rig.run(&bounce, 1000);
    assert_eq!(
        events,
        [FeedbackEvent {
            pressed_at: rig.at(17),
            confirmed_at: rig.at(47)
        }]
    );
    assert_eq!(rig.button.is_pressed(), Some(true));

    // Release with bounce: no event; a second press: a second event.
    let events = rig.run(
        &[
            (1100, Level::High),
            (1102, Level::Low),
            (1104, Level::High),
            (1300, Level::Low),
        ],
        1400,
    );
    assert_eq!(
        events,
        [FeedbackEvent {
            pressed_at: rig.at(1300),
            confirmed_at: rig.at(1330)
        }]
    );
}

#[test]
fn glitches_shorter_than_the_debounce_are_ignored() {
    let mut rig = button_rig(Level::High);
    let events = rig.run(
        &[
            (10, Level::Low),
            (39, Level::High),
            (100, Level::Low),
            (120, Level::High),
        ],
        500,
    );
    assert_eq!(events, []);
    assert_eq!(rig.button.is_pressed(), Some(false));
}

#[test]
fn a_button_held_at_start_needs_a_release_first() {
    let mut rig = button_rig(Level::Low);
    assert_eq!(rig.run(&[], 500), []);
    let events = rig.run(&[(600, Level::High), (700, Level::Low)], 800);
    assert_eq!(
        events,
        [FeedbackEvent {
            pressed_at: rig.at(700),
            confirmed_at: rig.at(730)
        }]
    );
}

#[test]
fn active_high_buttons_and_read_errors() {
    let clock = ManualClock::new();
    let faults = Faults::default();
    let pin = MockInputPin::new("button", Level::Low, faults.clone());
    let mut button = FeedbackButton::new(pin.clone(), Level::High, Duration::ZERO);
    assert_eq!(button.poll(clock.now()).expect("poll"), None);
    pin.set(Level::High);
    faults.fail_next("button", 1);
    assert!(
        button.poll(clock.now()).is_err(),
        "read errors are returned"
    );
    assert_eq!(
        button.poll(clock.now()).expect("poll"),
        None,
        "first sight of the change"
    );
    clock.advance(Duration::from_millis(1));
    let event = button.poll(clock.now()).expect("poll");
    assert!(event.is_some(), "zero debounce: confirmed on the next poll");
}
