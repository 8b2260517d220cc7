//! Where requests come from: streams of lines ([`stream`]: standard input, connections), the
//! listening sockets ([`listen`]) and the serial line ([`serial`], feature `linux`).

pub mod listen;
#[cfg(feature = "linux")]
pub mod serial;
pub mod stream;
