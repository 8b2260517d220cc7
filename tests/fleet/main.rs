//! Fleet rounds on Flower and their faults.
//!
//! One test binary for this stage of the flow (see `tests/README.md`): each module is a former
//! `tests/NAME.rs` binary, its tests named `NAME::test`.

#[path = "../support/mod.rs"]
mod support;

mod fleet_faults;
mod fleet_rounds;
