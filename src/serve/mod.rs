//! `edgetune serve`: a long-running service that loads a model once and answers JSON-line
//! requests from standard input, a Unix socket, a loopback TCP port and a serial line; journals
//! corrections, retrains the heads on them in the background and swaps the model in when it is
//! not worse; fires device actions on answers.
//!
//! - `protocol`: requests, error replies, the keys the service adds to an answer; `correction`:
//!   corrections checked against the model; `journal`: the fsynced corrections journal; `layout`:
//!   the service's folder in the run and the pointer to the serving model;
//! - `engine`: the serving model (a [`crate::predict::Predict`]); `retrain`: the retrain thread
//!   and the swap decision; `stats`: counters and latency;
//! - `transport`: streams, sockets, the serial line; [`devices`]: actions, status LED, button;
//!   [`signals`], [`priority`];
//! - `service`: all of it together ([`Service`]).

pub(crate) mod correction;
pub mod devices;
pub(crate) mod engine;
pub(crate) mod error;
pub mod journal;
pub mod layout;
pub(crate) mod learnable;
pub mod options;
pub mod priority;
pub(crate) mod protocol;
pub(crate) mod retrain;
pub(crate) mod service;
pub mod signals;
pub(crate) mod stats;
pub(crate) mod sync;
pub(crate) mod transport;

pub use devices::{DeviceHub, DeviceOptions};
pub use error::ServeError;
pub use options::ServeOptions;
pub use service::{Service, DRAIN_TIMEOUT};
