//! Device I/O: actions.toml, the rule executor, LED and button, the Linux backend and serial framing.
//!
//! One test binary for this stage of the flow (see `tests/README.md`): each module is a former
//! `tests/NAME.rs` binary, its tests named `NAME::test`.

mod device_actions_check;
mod device_config_validation;
mod device_example_actions;
mod device_executor_eh_mock;
mod device_executor_script;
mod device_led_button;
mod device_linux_backend;
mod device_serial_framing;
mod device_serial_pty;
