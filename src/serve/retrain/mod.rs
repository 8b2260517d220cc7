//! Retraining on the corrections: the data ([`data`]), one retrain ([`job`]), the swap decision
//! ([`decide`]) and the low-priority thread that runs them ([`worker`]).

pub mod data;
pub mod decide;
pub mod job;
pub mod worker;
