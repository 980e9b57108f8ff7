//! The one place that knows the stored encoding of projection values.
//!
//! Invariants: values are bincode 2 (`config::standard()`, serde path) of
//! types that never omit a field, so a decode either yields exactly what was
//! encoded or fails; it never panics on bad bytes. Changing anything here
//! changes the on-disk format and must bump `PROJECTION_VERSION`.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("projection codec: {0}")]
pub struct CodecError(String);

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends the encoding of `value` to `buf` (cleared first), so hot loops
/// reuse one buffer.
pub fn encode_into<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    buf.clear();
    bincode::serde::encode_into_std_write(value, buf, config())
        .map(|_| ())
        .map_err(|e| CodecError(e.to_string()))
}

#[cfg(test)]
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut buf = Vec::new();
    encode_into(value, &mut buf)?;
    Ok(buf)
}

/// Decodes a whole value; trailing bytes are an error (a sign of a format
/// mismatch, not something to ignore).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}
