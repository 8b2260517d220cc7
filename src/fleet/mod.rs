//! Fleet learning on Flower: a device takes part in federated rounds over the Fleet API of the
//! pinned Flower version (1.18.0, REST transport), training the heads it receives on its own data
//! and corrections and sending back only the updated heads, its example count and scores.
//!
//! - [`proto`]: Flower's messages; [`http`]: the HTTP/1.1 client; [`link`]: the Fleet API calls;
//! - [`records`]: `.npy` arrays and Flower records; [`spec`]: the fleet's task spec;
//!   [`heads`]: the head tensors in travel order;
//! - [`local`]: a round's local training; [`version`]: a round's result as a new version of the
//!   run; [`participant`]: this device's side of a round (data, features, the safe-swap rule);
//! - [`client`]: the node loop (register, ping, pull, answer, unregister).

pub mod client;
pub mod error;
pub mod heads;
pub mod http;
pub mod link;
pub mod local;
pub mod participant;
pub mod proto;
pub mod records;
pub mod spec;
pub mod version;

pub use client::{FleetClient, JoinOptions, SessionReport};
pub use error::FleetError;
pub use participant::{Participant, ParticipantOptions};
