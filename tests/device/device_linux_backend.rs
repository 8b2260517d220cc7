//! The Linux backend: sysfs PWM against a fake sysfs tree, and start-up errors for
//! devices that do not exist (this machine has no GPIO or I2C hardware).
#![cfg(feature = "linux")]

use std::fs;
use std::path::Path;

use edgetune::device::linux::{PwmError, SysfsPwm};
use edgetune::device::{Actions, Executor, LinuxHardware};
use edgetune::Prediction;
use embedded_hal::pwm::SetDutyCycle;

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `root/pwmchip0` with `npwm` channels and channel 0 already exported.
fn fake_sysfs(root: &Path, period: &str, duty: &str) {
    let chip = root.join("pwmchip0");
    fs::create_dir_all(chip.join("pwm0")).expect("mkdir");
    fs::write(chip.join("npwm"), "2\n").expect("write");
    fs::write(chip.join("export"), "").expect("write");
    fs::write(chip.join("pwm0/period"), period).expect("write");
    fs::write(chip.join("pwm0/duty_cycle"), duty).expect("write");
    fs::write(chip.join("pwm0/enable"), "0\n").expect("write");
}

#[test]
fn opening_sets_period_zero_duty_and_enables() {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_sysfs(dir.path(), "0\n", "0\n");
    let mut pwm = SysfsPwm::open(dir.path(), 0, 0, 1_000_000).expect("open");
    let ch = dir.path().join("pwmchip0/pwm0");
    assert_eq!(read(&ch.join("period")), "1000000");
    assert_eq!(read(&ch.join("duty_cycle")), "0");
    assert_eq!(read(&ch.join("enable")), "1");
    assert_eq!(
        read(&dir.path().join("pwmchip0/export")),
        "",
        "already exported: no export write"
    );

    assert_eq!(pwm.max_duty_cycle(), u16::MAX);
    pwm.set_duty_cycle_percent(40).expect("set");
    assert_eq!(read(&ch.join("duty_cycle")), "400000");
    pwm.set_duty_cycle_fully_on().expect("set");
    assert_eq!(read(&ch.join("duty_cycle")), "1000000");
    pwm.set_duty_cycle(1).expect("set");
    assert_eq!(
        read(&ch.join("duty_cycle")),
        "15",
        "1/65535 of 1 ms, to the nearest ns"
    );
    pwm.disable().expect("disable");
    assert_eq!(read(&ch.join("enable")), "0");
}

#[test]
fn a_duty_above_the_new_period_is_zeroed() {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_sysfs(dir.path(), "10000000\n", "5000000\n");
    SysfsPwm::open(dir.path(), 0, 0, 1_000_000).expect("open");
    let ch = dir.path().join("pwmchip0/pwm0");
    assert_eq!(read(&ch.join("duty_cycle")), "0");
    assert_eq!(read(&ch.join("period")), "1000000");
}

#[test]
fn missing_chip_channel_and_export_timeout_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_sysfs(dir.path(), "0", "0");

    let err = SysfsPwm::open(dir.path(), 3, 0, 1000).expect_err("no chip 3");
    assert!(matches!(err, PwmError::NoChip(_)), "{err:?}");
    assert!(err.to_string().contains("dtoverlay=pwm"), "{err}");

    let err = SysfsPwm::open(dir.path(), 0, 2, 1000).expect_err("npwm is 2");
    assert!(
        err.to_string()
            .ends_with("channel 2 out of range (the chip has 2)"),
        "{err}"
    );

    // Channel 1 is not exported and (in a fake tree) never appears.
    let err = SysfsPwm::open(dir.path(), 0, 1, 1000).expect_err("never appears");
    assert!(matches!(err, PwmError::ExportTimeout(_)), "{err:?}");
    assert_eq!(
        read(&dir.path().join("pwmchip0/export")),
        "1",
        "the export was requested"
    );
}

#[test]
fn executor_drives_sysfs_pwm_through_linux_hardware() {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_sysfs(dir.path(), "0", "0");
    let actions = Actions::parse(
        r#"
[[rule]]
name = "dimmer"
intent = "set_brightness"
pwm = { chip = 0, channel = 0, period_ns = 20000 }
"#,
        "actions.toml",
    )
    .expect("valid");
    let mut exec = Executor::new(&actions, LinuxHardware::with_pwm_root(dir.path())).expect("open");
    let fired = exec.execute(
        &Prediction::new("x")
            .with_intent("set_brightness", 0.9)
            .with_slot("value", "75%", 0.9),
    );
    assert!(fired[0].is_done(), "{fired:?}");
    assert_eq!(read(&dir.path().join("pwmchip0/pwm0/duty_cycle")), "15000");
}

#[test]
fn missing_gpio_chip_and_i2c_bus_fail_at_start_naming_the_rule() {
    let gpio = Actions::parse(
        "[[rule]]\nname = \"relay\"\nintent = \"on\"\ngpio = { chip = \"/dev/gpiochip99\", line = 17, value = \"high\" }\n",
        "actions.toml",
    )
    .expect("valid");
    let err = Executor::new(&gpio, LinuxHardware::new())
        .err()
        .expect("no such chip");
    let msg = err.to_string();
    assert!(
        msg.starts_with("actions.toml: rule 1 \"relay\": cannot open /dev/gpiochip99:17: "),
        "{msg}"
    );

    let i2c = Actions::parse(
        "[[rule]]\nname = \"lock\"\nintent = \"lock\"\ni2c = { bus = \"/dev/i2c-99\", address = 0x42, bytes = [1] }\n",
        "actions.toml",
    )
    .expect("valid");
    let err = Executor::new(&i2c, LinuxHardware::new())
        .err()
        .expect("no such bus");
    assert!(
        err.to_string()
            .starts_with("actions.toml: rule 1 \"lock\": cannot open /dev/i2c-99: "),
        "{err}"
    );
}
