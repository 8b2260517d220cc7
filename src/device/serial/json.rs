//! Writing one JSON document per line.

use embedded_io::Write;
use serde::Serialize;
use thiserror::Error;

/// Why a JSON line could not be written.
#[derive(Debug, Error)]
pub enum WriteLineError<E: core::fmt::Debug> {
    /// The value could not be encoded (e.g. a map with non-string keys).
    #[error("cannot encode JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// The writer failed.
    #[error("serial write failed: {0:?}")]
    Write(E),
}

/// Writes `value` as compact JSON followed by `\n`, then flushes. Compact JSON never
/// contains a raw newline, so the reader sees exactly one line.
pub fn write_json_line<W, T>(writer: &mut W, value: &T) -> Result<(), WriteLineError<W::Error>>
where
    W: Write,
    T: Serialize + ?Sized,
{
    let mut bytes = serde_json::to_vec(value)?;
    bytes.push(b'\n');
    writer.write_all(&bytes).map_err(WriteLineError::Write)?;
    writer.flush().map_err(WriteLineError::Write)
}
