//! Cross-check with `embedded-hal-mock` (eh1): the executor must issue exactly the expected
//! embedded-hal calls, no more, no fewer (`done()` fails on any leftover expectation, and
//! any unexpected call panics inside the mock).

use std::collections::HashMap;

use edgetune::device::{
    Actions, Executor, Hardware, Level, ManualClock, OpenError, Outcome, PinSpec,
};
use edgetune::Prediction;
use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinTx};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTx};
use embedded_hal_mock::eh1::pwm::{Mock as PwmMock, Transaction as PwmTx};
use embedded_hal_mock::eh1::MockError;

struct EhMocks {
    pins: HashMap<PinSpec, PinMock>,
    pwm: PwmMock,
    i2c: I2cMock,
}

impl Hardware for EhMocks {
    type Out = PinMock;
    type Pwm = PwmMock;
    type I2c = I2cMock;

    fn output(&mut self, pin: &PinSpec, _initial: Level) -> Result<PinMock, OpenError> {
        self.pins
            .get(pin)
            .cloned()
            .ok_or_else(|| OpenError::new("no mock for this pin"))
    }

    fn pwm(&mut self, _chip: u32, _channel: u32, _period_ns: u64) -> Result<PwmMock, OpenError> {
        Ok(self.pwm.clone())
    }

    fn i2c(&mut self, _bus: &str) -> Result<I2cMock, OpenError> {
        Ok(self.i2c.clone())
    }
}

const ACTIONS: &str = r#"
[[rule]]
name = "on"
intent = "turn_on"
min_prob = 0.5
gpio = { chip = "gpiochip0", line = 17, value = "high" }

[[rule]]
name = "off"
intent = "turn_off"
gpio = { chip = "gpiochip0", line = 17, value = "low" }

[[rule]]
name = "dim"
intent = "set_brightness"
pwm = { chip = 0, channel = 0, period_ns = 1000000 }

[[rule]]
name = "lock"
intent = "lock"
i2c = { bus = "/dev/i2c-1", address = 0x42, bytes = [0x01, 0xFF] }
"#;

#[test]
fn exact_embedded_hal_calls_for_a_script() {
    let pin17 = PinMock::new(&[
        PinTx::set(State::High),
        PinTx::set(State::Low).with_error(MockError::Io(std::io::ErrorKind::Other)),
        PinTx::set(State::Low),
    ]);
    let pwm = PwmMock::new(&[
        PwmTx::max_duty_cycle(200),
        PwmTx::set_duty_cycle(50),
        PwmTx::max_duty_cycle(200),
        PwmTx::set_duty_cycle(200),
    ]);
    let i2c = I2cMock::new(&[I2cTx::write(0x42, vec![0x01, 0xFF])]);
    let hw = EhMocks {
        pins: HashMap::from([(PinSpec::new("gpiochip0", 17).expect("pin"), pin17.clone())]),
        pwm: pwm.clone(),
        i2c: i2c.clone(),
    };
    let actions = Actions::parse(ACTIONS, "actions.toml").expect("valid");
    let mut exec = Executor::with_clock(&actions, hw, ManualClock::new()).expect("opens");

    let script = [
        Prediction::new("on").with_intent("turn_on", 0.9),
        Prediction::new("on?").with_intent("turn_on", 0.2),
        Prediction::new("off").with_intent("turn_off", 0.9),
        Prediction::new("off").with_intent("turn_off", 0.9),
        Prediction::new("dim")
            .with_intent("set_brightness", 0.9)
            .with_slot("value", "25%", 0.9),
        Prediction::new("dim")
            .with_intent("set_brightness", 0.9)
            .with_slot("value", "250", 0.9),
        Prediction::new("lock").with_intent("lock", 0.9),
    ];
    let outcomes: Vec<Vec<bool>> = script
        .iter()
        .map(|a| {
            exec.execute(a)
                .iter()
                .map(|f| f.outcome == Outcome::Done)
                .collect()
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            vec![true],
            vec![],
            vec![false],
            vec![true],
            vec![true],
            vec![true],
            vec![true]
        ]
    );
    drop(exec);

    let (mut pin17, mut pwm, mut i2c) = (pin17, pwm, i2c);
    pin17.done();
    pwm.done();
    i2c.done();
}
