//! Runs the rules of an actions file against answers, through embedded-hal 1.0 traits.
//!
//! # Order
//! For each answer, every rule that matches fires, in file order; one failing action does
//! not stop the others, and a hardware error is reported in its [`Fired`], never raised.
//!
//! # Pulses
//! A `pulse_ms` rule sets its line at once and schedules the restore in a deadline queue,
//! so an answer never waits for a pulse to end. Restores happen in [`Executor::service`],
//! which [`Executor::execute`] also calls first. The host loop must call `service` at least
//! every few milliseconds while [`Executor::next_deadline`] is `Some` (the serial line's
//! read timeout is the natural tick; see the crate docs); a pulse then lasts `pulse_ms`
//! plus at most one loop iteration. Because time comes from an injected [`Clock`], tests
//! drive pulses deterministically with [`ManualClock`](super::ManualClock).
//!
//! Rules on one line share the device. A pulse restores the level the line had before the
//! pulse; a second pulse while one is pending extends it (same restore level); a non-pulse
//! rule setting the line cancels the pending restore (the explicit level wins). A restore
//! that fails is retried up to [`RESTORE_ATTEMPTS`] times, [`RESTORE_RETRY`] apart. Dropping
//! the executor restores every pending pulse at once (best effort).

mod fired;
mod hardware;
mod pulse;
mod run;

pub use fired::{Effect, Fired, Outcome};
pub use hardware::{Hardware, OpenError};
pub use run::{Executor, StartError, RESTORE_ATTEMPTS, RESTORE_RETRY};
