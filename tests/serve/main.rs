//! The long-running service: requests, learning from corrections, swaps, crashes, devices, the serial path.
//!
//! One test binary for this stage of the flow (see `tests/README.md`): each module is a former
//! `tests/NAME.rs` binary, its tests named `NAME::test`.

#[path = "../support/mod.rs"]
mod support;

mod hostile_serve;
mod hostile_soak;
mod self_contained;
mod serve_crash;
mod serve_devices;
mod serve_learning;
mod serve_requests;
mod serve_serial;
mod serve_swap_load;
mod versions_kill;
mod versions_old_runs;
