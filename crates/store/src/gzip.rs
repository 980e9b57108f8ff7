//! Reading a gzip input: its members one after another, as `gzip -d`
//! does, and bytes after the last member told apart from a damaged member.
//!
//! Guarantees:
//! - The bytes read are the members' decompressed bytes, in order, each
//!   member's CRC and length checked at its end (by flate2) before its end
//!   is reported.
//! - Bytes after a complete member that do not start another member end the
//!   input with an error holding [`TrailingBytes`]: every byte read before
//!   it was checked. A member cut short or damaged ends it with flate2's own
//!   error: what was read of that member is unchecked.

use std::fmt;
use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

/// The two bytes every gzip member starts with.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Bytes after the last complete member that are not gzip (padding, a
/// second file appended to the first): what `gzip -d` calls "trailing
/// garbage".
#[derive(Debug)]
pub(crate) struct TrailingBytes {
    /// Complete members read before them.
    pub members: u64,
}

impl fmt::Display for TrailingBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the bytes after its last complete gzip member (member {}) are not gzip data \
             (\"trailing garbage\", as `gzip -t` calls them): ignored; every line before them \
             was read and checked",
            self.members
        )
    }
}

impl std::error::Error for TrailingBytes {}

/// The decompressed bytes of a gzip input's members, one after another.
pub(crate) struct GzipMembers<R: BufRead> {
    state: State<R>,
    /// Members read to their end.
    members: u64,
}

enum State<R: BufRead> {
    Member(GzDecoder<R>),
    /// Between two members: the reader, positioned after the last one.
    Between(R),
    /// Ended (cleanly or by an error already returned).
    Done,
}

impl<R: BufRead> GzipMembers<R> {
    /// Over `input`, which must start with a member.
    pub(crate) fn new(input: R) -> Self {
        GzipMembers {
            state: State::Member(GzDecoder::new(input)),
            members: 0,
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Member(mut member) => match member.read(buf) {
                    Ok(0) => {
                        self.members += 1;
                        self.state = State::Between(member.into_inner());
                    }
                    Ok(n) => {
                        self.state = State::Member(member);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        self.state = State::Member(member);
                    }
                    Err(e) => return Err(e),
                },
                State::Between(mut input) => {
                    let head = match input.fill_buf() {
                        Ok(head) => head,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                            self.state = State::Between(input);
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    if head.is_empty() {
                        return Ok(0);
                    }
                    // A member's first byte alone: its second is read with
                    // the header (a lone 0x1f at the end is a header cut
                    // short, flate2's error).
                    if head.len() < GZIP_MAGIC.len() && head[0] == GZIP_MAGIC[0]
                        || head.starts_with(&GZIP_MAGIC)
                    {
                        self.state = State::Member(GzDecoder::new(input));
                        continue;
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        TrailingBytes {
                            members: self.members,
                        },
                    ));
                }
                State::Done => return Ok(0),
            }
        }
    }
}

/// Whether `e` is [`TrailingBytes`].
pub(crate) fn is_trailing_bytes(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TrailingBytes>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::{BufReader, Write};

    fn member(text: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    /// Reads through a 3-byte buffer, so member ends fall mid-buffer.
    fn read_all(bytes: &[u8]) -> (Vec<u8>, Option<io::Error>) {
        let mut r = GzipMembers::new(BufReader::with_capacity(3, bytes));
        let mut out = Vec::new();
        let mut chunk = [0u8; 5];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn members_are_read_one_after_another() {
        let mut bytes = member(b"one\n");
        bytes.extend(member(b""));
        bytes.extend(member(b"two\nthree\n"));
        let (out, err) = read_all(&bytes);
        assert_eq!(out, b"one\ntwo\nthree\n");
        assert!(err.is_none(), "{err:?}");
    }

    #[test]
    fn bytes_after_the_last_member_are_told_apart_from_a_damaged_one() {
        let mut bytes = member(b"one\n");
        bytes.extend(member(b"two\n"));
        let whole = bytes.clone();
        bytes.extend(b"\0\0\0\0 padding");
        let (out, err) = read_all(&bytes);
        assert_eq!(out, b"one\ntwo\n");
        let err = err.unwrap();
        assert!(is_trailing_bytes(&err), "{err}");
        assert!(err.to_string().contains("(member 2)"), "{err}");

        // Cut inside the second member: flate2's error, not trailing bytes.
        let (_, err) = read_all(&whole[..whole.len() - 3]);
        let err = err.unwrap();
        assert!(!is_trailing_bytes(&err), "{err}");
        // A flipped byte in the second member's data: not trailing bytes
        // either (a CRC mismatch or a deflate error).
        let mut flipped = whole.clone();
        let at = whole.len() - 10;
        flipped[at] ^= 0x55;
        let (_, err) = read_all(&flipped);
        assert!(!is_trailing_bytes(&err.unwrap()));
        // A lone first magic byte at the end is a header cut short.
        let mut lone = whole.clone();
        lone.push(GZIP_MAGIC[0]);
        let (out, err) = read_all(&lone);
        assert_eq!(out, b"one\ntwo\n");
        assert!(!is_trailing_bytes(&err.unwrap()));
    }
}
