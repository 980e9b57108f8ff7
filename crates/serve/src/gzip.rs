//! `/events` in gzip: one gzip stream a client, made of pieces compressed
//! once a snapshot and shared by every client.
//!
//! Invariants:
//! - Each [`Piece`] is raw deflate from a fresh compressor, ended by a sync
//!   flush: it refers to no byte before it and ends on a byte boundary
//!   with a block that is not the last. So any sequence of pieces after
//!   [`HEADER`] is one valid deflate stream, whatever each client was sent
//!   before (a slow client skips snapshots), and a client's decoder yields
//!   each message whole as soon as its piece arrives.
//! - A stream that ends is closed properly: an empty last block and the
//!   CRC-32 and length of everything the client was sent ([`Sent::trailer`]).
//! - Why: the wallboard is one document of ~120 KB with 300 agents, sent
//!   whole about once a second while events flow (~10 GB a day to each
//!   screen left open); its repeated keys compress ~10×, and compressing it
//!   once instead of once a client keeps the cost flat in clients.

use axum::body::Bytes;
use axum::http::HeaderValue;
use flate2::{Compress, Compression, FlushCompress, Status};

/// The gzip header every compressed stream starts with: deflate, no name,
/// no time, unknown OS.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// An empty last block (fixed Huffman, end of block), byte-aligned after a
/// sync flush.
const LAST_BLOCK: [u8; 2] = [0x03, 0x00];

/// One message compressed on its own (see the module's invariants), with
/// what the stream's trailer needs of it.
#[derive(Debug, Clone)]
pub struct Piece {
    pub bytes: Bytes,
    crc: crc32fast::Hasher,
    len: u64,
}

impl Piece {
    /// `plain` compressed at the default level: once a snapshot, so its
    /// ratio matters more than its few milliseconds.
    pub fn of(plain: &[u8]) -> Piece {
        Piece::holding(plain, deflate(plain).unwrap_or_else(|| stored(plain)))
    }

    /// The piece of `plain` whose deflate bytes are `bytes`.
    fn holding(plain: &[u8], bytes: Vec<u8>) -> Piece {
        let mut crc = crc32fast::Hasher::new();
        crc.update(plain);
        Piece {
            bytes: Bytes::from(bytes),
            crc,
            len: plain.len() as u64,
        }
    }
}

/// `plain` in raw deflate from a fresh compressor, sync-flushed; `None` if
/// the compressor fails (it fails only on misuse).
fn deflate(plain: &[u8]) -> Option<Vec<u8>> {
    let mut z = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(plain.len() / 4 + 1024);
    loop {
        let consumed = usize::try_from(z.total_in()).ok()?;
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        match z.compress_vec(plain.get(consumed..)?, &mut out, FlushCompress::Sync) {
            Ok(Status::Ok | Status::BufError) => {}
            Ok(Status::StreamEnd) | Err(_) => return None,
        }
        // All read, and room left: the flush is complete.
        if z.total_in() == plain.len() as u64 && out.len() < out.capacity() {
            return Some(out);
        }
    }
}

/// `plain` in stored (uncompressed) deflate blocks, none the last: a piece
/// that needs no compressor.
fn stored(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + plain.len() / 65_535 * 5 + 5);
    let mut chunks = plain.chunks(usize::from(u16::MAX)).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
    }
    for chunk in chunks {
        let len = chunk.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// What one client was sent: for the trailer of its stream.
#[derive(Debug, Default)]
pub struct Sent {
    crc: crc32fast::Hasher,
    len: u64,
}

impl Sent {
    /// Notes `piece` as sent; its bytes to send.
    pub fn add(&mut self, piece: &Piece) -> Bytes {
        self.crc.combine(&piece.crc);
        self.len = self.len.wrapping_add(piece.len);
        piece.bytes.clone()
    }

    /// The end of the stream: the last block, the CRC-32 and the length
    /// (modulo 2^32) of everything sent.
    pub fn trailer(self) -> Bytes {
        let mut t = Vec::with_capacity(10);
        t.extend_from_slice(&LAST_BLOCK);
        t.extend_from_slice(&self.crc.finalize().to_le_bytes());
        t.extend_from_slice(&(self.len as u32).to_le_bytes());
        Bytes::from(t)
    }
}

/// Whether a request's `Accept-Encoding` admits gzip (RFC 9110 §12.5.3):
/// `gzip` or `x-gzip` with a weight above 0, or, when neither is named,
/// `*` with one. Several header lines are one list (§5.3). No header, or
/// one that is not text, admits only identity.
pub fn accepts_gzip<'a>(headers: impl IntoIterator<Item = &'a HeaderValue>) -> bool {
    let mut lines = headers.into_iter().peekable();
    if lines.peek().is_none() {
        return false;
    }
    let mut text = String::new();
    for line in lines {
        let Ok(line) = line.to_str() else {
            return false;
        };
        text.push_str(line);
        text.push(',');
    }
    let mut star = None;
    for item in text.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let weight = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
            })
            .next_back()
            .map_or(Some(1.0), |q| q.parse::<f32>().ok());
        let admitted = weight.is_some_and(|q| q > 0.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return admitted;
        }
        if coding == "*" {
            star = Some(admitted);
        }
    }
    star.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// The stream of `plains`, every other one in stored blocks (the
    /// pieces made without a compressor) from the second on.
    fn stream(plains: &[&[u8]]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        let mut sent = Sent::default();
        for (i, p) in plains.iter().enumerate() {
            let piece = if i % 2 == 1 {
                Piece::holding(p, stored(p))
            } else {
                Piece::of(p)
            };
            out.extend_from_slice(&sent.add(&piece));
        }
        out.extend_from_slice(&sent.trailer());
        out
    }

    fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut plain)?;
        Ok(plain)
    }

    #[test]
    fn pieces_in_any_order_and_number_make_one_gzip_stream() {
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| b"{\"agent\":\"a-0042\",\"state\":\"Busy\"}"[(i % 33) as usize])
            .collect();
        let noise: Vec<u8> = (0..70_000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let pieces: [&[u8]; 5] = [
            b"event: wallboard\ndata: {}\n\n",
            &big,
            b":\n\n",
            &noise,
            b"",
        ];
        for order in [[0, 1, 2, 3, 4], [3, 2, 2, 0, 1], [4, 4, 1, 0, 3]] {
            let plains: Vec<&[u8]> = order.iter().map(|&i| pieces[i]).collect();
            let decoded = gunzip(&stream(&plains)).expect("a valid gzip stream");
            assert_eq!(decoded, plains.concat());
        }
        assert_eq!(gunzip(&stream(&[])).unwrap(), b"");
    }

    #[test]
    fn each_piece_is_decoded_as_soon_as_it_arrives() {
        let first = b"event: wallboard\ndata: {\"agents\":[1,2,3]}\n\n";
        let mut bytes = HEADER.to_vec();
        bytes.extend_from_slice(&Sent::default().add(&Piece::of(first)));
        // No trailer yet: the stream is still open, its first message whole.
        let mut decoder = flate2::write::GzDecoder::new(Vec::new());
        std::io::Write::write_all(&mut decoder, &bytes).unwrap();
        std::io::Write::flush(&mut decoder).unwrap();
        assert_eq!(decoder.get_ref().as_slice(), first);
    }

    #[test]
    fn a_damaged_stream_is_refused_by_its_trailer() {
        let mut bytes = stream(&[b"event: problem\ndata: x\n\n"]);
        let at = bytes.len() - 5;
        bytes[at] ^= 0x40;
        assert!(gunzip(&bytes).is_err());
    }

    #[test]
    fn gzip_is_chosen_as_the_header_admits_it() {
        let h = |s: &'static str| [HeaderValue::from_static(s)];
        for yes in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, GZIP;q=0.5",
            "x-gzip",
            "*",
            "identity;q=1, *;q=0.1",
        ] {
            assert!(accepts_gzip(&h(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "br",
            "gzip;q=0",
            "gzip;q=0.000",
            "*;q=0",
            "gzip;q=0, *",
            "gzip;q=x",
        ] {
            assert!(!accepts_gzip(&h(no)), "{no}");
        }
        assert!(!accepts_gzip(&[]));
        // Two lines are one list: `br` on one, `gzip` on the next.
        let two = [
            HeaderValue::from_static("br"),
            HeaderValue::from_static("gzip"),
        ];
        assert!(accepts_gzip(&two));
        let refused = [
            HeaderValue::from_static("*"),
            HeaderValue::from_static("gzip;q=0"),
        ];
        assert!(!accepts_gzip(&refused));
    }
}
