//! The service: the model, the journal, the retrain thread, the devices and the transports, and
//! what each request does.
//!
//! Threads: one per transport (standard input, each listener, each connection, the serial port),
//! the device thread (button polling, pulse ends), the retrain thread (low priority) and the
//! status LED's. Requests are answered on their connection's thread, one model run at a time (the
//! model is behind a lock, which a swap takes between two requests: a request is answered by the
//! old model or the new one, never dropped).
//!
//! - [`state`]: the shared state and loading it;
//! - [`requests`]: what each request does;
//! - [`threads`]: starting the threads;
//! - [`lifecycle`]: stopping and draining;
//! - `gate`: the `--token-file` check of TCP connections.

mod gate;
pub mod lifecycle;
pub mod requests;
pub mod state;
pub mod threads;

pub use state::{Service, DRAIN_TIMEOUT};
