//! Compressed sealed segments: `{base:020}.segz` (docs/FORMAT.md §1.7).
//!
//! A sealed `.seg` is rewritten as a run of independently decompressible zstd
//! blocks, each holding whole record frames copied unchanged, followed by a
//! block index. Reading one record decompresses one block.
//!
//! Invariants:
//! - Positions do not change: a record keeps the byte position it had in its
//!   `.seg` (the *segment position*), so the index, which stores positions,
//!   stays valid across compression. A block covers the segment positions
//!   `[raw_pos, raw_pos + raw_len)`; blocks cover `[32, seg_len)` back to back.
//! - The `.seg` header is kept verbatim in the `.segz` header, so the frames'
//!   format version travels with them and is checked as for a `.seg`.
//! - The `.segz` header, every block header, every block's compressed bytes
//!   and the block index each have a CRC-32. A damaged block hides only its
//!   own records. A damaged header or index is not needed to find the blocks:
//!   each block header says where it belongs and how long it is, so a walk
//!   over the file finds every block whose header is intact.
//! - Nothing read from a `.segz` can panic or allocate what a field merely
//!   claims: every length is checked against the bytes present; a block
//!   reserves its declared length only up to what its compressed bytes can
//!   decompress to (and at most [`MAX_BLOCK_RAW`]); a segment read through
//!   [`Lazy`] holds its compressed bytes and one decompressed block, so a
//!   header's `seg_len` or a lost block's length costs no memory.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{LogError, Result};
use crate::format::{Cursor, HEADER_LEN, MAX_BODY_LEN, MAX_SEGMENT_BYTES};
use crate::segment::read_full_at;
use crate::vfs::VfsFile;

/// Magic at the start of every `.segz` file.
pub const SEGZ_MAGIC: [u8; 8] = *b"CCVLSGZ\0";
/// The `.segz` container version this build reads and writes.
pub const SEGZ_VERSION: u16 = 1;
/// Length of the `.segz` header; the first block starts here.
pub const SEGZ_HEADER_LEN: u32 = 80;
/// Magic at the start of every block (`0xFE`, as in the record magic: it
/// never occurs in UTF-8, and a walk looks for it only in damaged files).
pub const BLOCK_MAGIC: [u8; 4] = [0xFE, 0xCC, 0xB1, 0x0C];
/// Length of a block header.
pub const BLOCK_HEADER_LEN: u32 = 32;
/// Length of one block index entry.
pub const INDEX_ENTRY_LEN: u32 = 24;
/// Largest uncompressed block accepted: several frames up to the writer's
/// block size (at most 16 MiB), or one frame of up to 64 MiB.
pub const MAX_BLOCK_RAW: u32 = MAX_BODY_LEN + (16 << 20);

/// How sealed segments are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// zstd level.
    pub level: i32,
    /// Frames are grouped into blocks of at most this many uncompressed bytes
    /// (a single larger frame gets a block of its own). Clamped to 4 KiB–16 MiB.
    pub block_bytes: u32,
}

impl Default for Compression {
    /// The measured choice (docs/FORMAT.md §1.7).
    fn default() -> Self {
        Compression {
            level: -2,
            block_bytes: 256 << 10,
        }
    }
}

/// One block, as the index (or a walk over the file) names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// Position of the block header in the `.segz` file.
    pub file_pos: u64,
    /// First segment position the block covers.
    pub raw_pos: u32,
    /// Uncompressed length.
    pub raw_len: u32,
    /// Compressed length (the bytes after the block header).
    pub comp_len: u32,
    /// Offset of the block's first record.
    pub first_offset: u64,
}

impl Block {
    fn raw_end(&self) -> u64 {
        u64::from(self.raw_pos) + u64::from(self.raw_len)
    }
    fn file_end(&self) -> u64 {
        self.file_pos + u64::from(BLOCK_HEADER_LEN) + u64::from(self.comp_len)
    }
}

/// A part of a `.segz` that could not be read: segment positions
/// `[raw_pos, raw_pos + raw_len)` (empty when nothing was lost, e.g. a
/// damaged index whose blocks were all found by a walk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hole {
    pub raw_pos: u64,
    pub raw_len: u64,
    /// Where in the `.segz` file the damage is.
    pub file_pos: u64,
    pub what: &'static str,
    /// A damaged header or block index (nothing lost by itself) whose file
    /// shows that every block was found: the container can be written
    /// again from the blocks ([`crate::compact::restore_container`]).
    pub rewritable: bool,
}

/// The layout of a `.segz`: where each block is and what is damaged.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    /// The `.seg` header the frames came with. When the `.segz` header is
    /// damaged: its copy of it if that copy passes its own checks, else a
    /// header of the current format version for the file's base, which
    /// reads every frame a segment of either version holds (the damage is
    /// reported once, as the `.segz` header's).
    pub seg_header: [u8; HEADER_LEN as usize],
    /// Length of the original `.seg` (the end of the segment positions).
    pub seg_len: u64,
    /// The blocks in segment-position order.
    pub blocks: Vec<Block>,
    /// Damage found in the header, the index or between blocks.
    pub holes: Vec<Hole>,
}

impl Table {
    /// The block covering segment position `pos`.
    pub fn block_at(&self, pos: u64) -> Option<&Block> {
        let i = self
            .blocks
            .partition_point(|b| u64::from(b.raw_pos) <= pos)
            .checked_sub(1)?;
        self.blocks.get(i).filter(|b| pos < b.raw_end())
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes the `.segz` of one `.seg` at a time from its frames, handed over
/// in order as a scan verifies them ([`Encoder::push`]), so the segment is
/// read once. Its buffers (the block being gathered, the output) and the
/// zstd context are kept from one segment to the next: a compressor thread
/// faults in its memory once, not per segment (issue 17).
pub(crate) struct Encoder {
    zstd: zstd::bulk::Compressor<'static>,
    c: Compression,
    /// The frames of the block being gathered.
    raw: Vec<u8>,
    /// Segment position and offset of `raw`'s first frame.
    raw_pos: u32,
    first_offset: u64,
    /// The `.segz` so far: a header to fill in, then the blocks.
    out: Vec<u8>,
    index: Vec<u8>,
    blocks: u32,
    /// Segment positions compressed so far end here.
    covered: u32,
}

impl Encoder {
    pub fn new(c: Compression) -> io::Result<Encoder> {
        Ok(Encoder {
            zstd: zstd::bulk::Compressor::new(c.level)?,
            c,
            raw: Vec::new(),
            raw_pos: HEADER_LEN,
            first_offset: 0,
            out: Vec::new(),
            index: Vec::new(),
            blocks: 0,
            covered: HEADER_LEN,
        })
    }

    /// Starts the `.segz` of a segment compressed with `c`.
    pub fn begin(&mut self, c: Compression) -> io::Result<()> {
        if c.level != self.c.level {
            self.zstd = zstd::bulk::Compressor::new(c.level)?;
        }
        self.c = c;
        self.raw.clear();
        self.raw_pos = HEADER_LEN;
        self.out.clear();
        self.out.resize(SEGZ_HEADER_LEN as usize, 0);
        self.index.clear();
        self.blocks = 0;
        self.covered = HEADER_LEN;
        Ok(())
    }

    fn block_bytes(&self) -> u32 {
        self.c.block_bytes.clamp(4 << 10, 16 << 20)
    }

    /// Adds the frame `frame` found at segment position `pos`, whose record
    /// has `offset`. Frames must come back to back from the end of the
    /// segment header. A block is a run of whole frames of at most the
    /// block size (a single larger frame gets a block of its own).
    pub fn push(&mut self, path: &Path, pos: u32, frame: &[u8], offset: u64) -> Result<()> {
        let len = u32::try_from(frame.len()).map_err(|_| fail(path, "frame too large"))?;
        if !self.raw.is_empty()
            && self.raw.len() as u64 + u64::from(len) > u64::from(self.block_bytes())
        {
            self.compress_block(path)?;
        }
        if self.raw.is_empty() {
            if pos != self.covered {
                return Err(fail(path, "frames are not back to back"));
            }
            self.raw_pos = pos;
            self.first_offset = offset;
        } else if u64::from(pos) != u64::from(self.raw_pos) + self.raw.len() as u64 {
            return Err(fail(path, "frames are not back to back"));
        }
        self.raw.extend_from_slice(frame);
        Ok(())
    }

    /// Compresses the gathered frames as one block, straight into `out`.
    fn compress_block(&mut self, path: &Path) -> Result<()> {
        let raw_len = u32::try_from(self.raw.len()).map_err(|_| fail(path, "block too large"))?;
        let end = self
            .raw_pos
            .checked_add(raw_len)
            .ok_or_else(|| fail(path, "block past the 4 GiB segment limit"))?;
        let file_pos = self.out.len();
        let data = file_pos + BLOCK_HEADER_LEN as usize;
        self.out.resize(data, 0);
        self.out.reserve(zstd::compress_bound(self.raw.len()));
        let mut dst = io::Cursor::new(&mut self.out);
        dst.set_position(data as u64);
        let n = self
            .zstd
            .compress_to_buffer(&self.raw, &mut dst)
            .map_err(|e| LogError::io("compressing", path, e))?;
        let comp_len = u32::try_from(n).map_err(|_| fail(path, "block too large"))?;
        let comp_crc = crc32fast::hash(self.out.get(data..).unwrap_or_default());
        let mut h = Vec::with_capacity(BLOCK_HEADER_LEN as usize);
        h.extend_from_slice(&BLOCK_MAGIC);
        put_u32(&mut h, self.raw_pos);
        put_u32(&mut h, raw_len);
        put_u32(&mut h, comp_len);
        put_u64(&mut h, self.first_offset);
        put_u32(&mut h, comp_crc);
        let crc = crc32fast::hash(&h);
        put_u32(&mut h, crc);
        self.out
            .get_mut(file_pos..data)
            .filter(|head| head.len() == h.len())
            .ok_or_else(|| fail(path, "block header out of place"))?
            .copy_from_slice(&h);
        put_u64(&mut self.index, file_pos as u64);
        put_u32(&mut self.index, self.raw_pos);
        put_u32(&mut self.index, raw_len);
        put_u64(&mut self.index, self.first_offset);
        self.blocks += 1;
        self.covered = end;
        self.raw.clear();
        Ok(())
    }

    /// Ends the `.segz` of the segment `base` (`seg_len` bytes, with the
    /// header `seg_header`): its last block, the block index and the header.
    /// The bytes stay here until the next [`Encoder::begin`].
    pub fn finish(
        &mut self,
        path: &Path,
        base: u64,
        seg_len: u64,
        seg_header: &[u8; HEADER_LEN as usize],
    ) -> Result<&[u8]> {
        if !self.raw.is_empty() {
            self.compress_block(path)?;
        }
        if u64::from(self.covered) != seg_len {
            return Err(fail(path, "frames do not reach the end of the segment"));
        }
        let index_pos = self.out.len() as u64;
        let index_crc = crc32fast::hash(&self.index);
        self.out.extend_from_slice(&self.index);
        put_u32(&mut self.out, index_crc);
        let mut h = Vec::with_capacity(SEGZ_HEADER_LEN as usize);
        h.extend_from_slice(&SEGZ_MAGIC);
        h.extend_from_slice(&SEGZ_VERSION.to_le_bytes());
        h.extend_from_slice(&(SEGZ_HEADER_LEN as u16).to_le_bytes());
        put_u64(&mut h, base);
        put_u64(&mut h, seg_len);
        put_u32(&mut h, self.blocks);
        put_u64(&mut h, index_pos);
        h.extend_from_slice(seg_header);
        put_u32(&mut h, 0);
        let crc = crc32fast::hash(&h);
        put_u32(&mut h, crc);
        self.out
            .get_mut(..SEGZ_HEADER_LEN as usize)
            .filter(|head| head.len() == h.len())
            .ok_or_else(|| fail(path, "segz header out of place"))?
            .copy_from_slice(&h);
        Ok(&self.out)
    }
}

fn fail(path: &Path, what: &str) -> LogError {
    LogError::io("compressing", path, io::Error::other(what.to_owned()))
}

/// The fields of an intact `.segz` header.
struct Header {
    seg_len: u64,
    blocks: u32,
    index_pos: u64,
    seg_header: [u8; HEADER_LEN as usize],
}

enum HeaderCheck {
    Ok(Header),
    Damaged(&'static str),
    Version(u16),
}

/// The base offset a well-formed `.segz` header states (magic and CRC
/// hold), whatever the file's name; `None` for anything else.
pub(crate) fn stated_base(bytes: &[u8]) -> Option<u64> {
    let h = bytes.get(..SEGZ_HEADER_LEN as usize)?;
    let crc = u32::from_le_bytes(h.get(76..80)?.try_into().ok()?);
    if h.get(..8)? != SEGZ_MAGIC || crc32fast::hash(h.get(..76)?) != crc {
        return None;
    }
    Some(u64::from_le_bytes(h.get(12..20)?.try_into().ok()?))
}

fn check_header(bytes: &[u8], base: u64) -> HeaderCheck {
    let Some(h) = bytes.get(..SEGZ_HEADER_LEN as usize) else {
        return HeaderCheck::Damaged("file shorter than its header");
    };
    let mut c = Cursor { bytes: h };
    let short = HeaderCheck::Damaged("file shorter than its header");
    let (
        Some(magic),
        Some(version),
        Some(header_len),
        Some(hbase),
        Some(seg_len),
        Some(blocks),
        Some(index_pos),
        Some(seg_header),
        Some(_reserved),
        Some(crc),
    ) = (
        c.array::<8>(),
        c.u16(),
        c.u16(),
        c.u64(),
        c.u64(),
        c.u32(),
        c.u64(),
        c.array::<{ HEADER_LEN as usize }>(),
        c.u32(),
        c.u32(),
    )
    else {
        return short;
    };
    if magic != SEGZ_MAGIC {
        return HeaderCheck::Damaged("bad .segz magic");
    }
    if crc32fast::hash(h.get(..76).unwrap_or(&[])) != crc {
        return HeaderCheck::Damaged(".segz header CRC mismatch");
    }
    if version != SEGZ_VERSION {
        return HeaderCheck::Version(version);
    }
    if u32::from(header_len) != SEGZ_HEADER_LEN {
        return HeaderCheck::Damaged("unexpected .segz header length");
    }
    if hbase != base {
        return HeaderCheck::Damaged(".segz header base offset differs from the file name");
    }
    if !(u64::from(HEADER_LEN)..=MAX_SEGMENT_BYTES).contains(&seg_len) {
        return HeaderCheck::Damaged("impossible segment length in the .segz header");
    }
    HeaderCheck::Ok(Header {
        seg_len,
        blocks,
        index_pos,
        seg_header,
    })
}

/// Parses a block header; `None` unless magic and header CRC hold and the
/// lengths are possible.
fn parse_block_header(bytes: &[u8], file_pos: u64) -> Option<(Block, u32)> {
    let h = bytes.get(..BLOCK_HEADER_LEN as usize)?;
    let mut c = Cursor { bytes: h };
    let magic = c.array::<4>()?;
    let raw_pos = c.u32()?;
    let raw_len = c.u32()?;
    let comp_len = c.u32()?;
    let first_offset = c.u64()?;
    let data_crc = c.u32()?;
    let crc = c.u32()?;
    if magic != BLOCK_MAGIC
        || crc32fast::hash(h.get(..28)?) != crc
        || raw_len == 0
        || raw_len > MAX_BLOCK_RAW
        || raw_pos < HEADER_LEN
    {
        return None;
    }
    Some((
        Block {
            file_pos,
            raw_pos,
            raw_len,
            comp_len,
            first_offset,
        },
        data_crc,
    ))
}

/// Whether `blocks` cover `[32, seg_len)` back to back and lie back to back
/// in the file from its header to `index_pos`.
fn consistent(blocks: &[Block], seg_len: u64, index_pos: u64) -> bool {
    let mut raw = u64::from(HEADER_LEN);
    let mut file = u64::from(SEGZ_HEADER_LEN);
    for b in blocks {
        if u64::from(b.raw_pos) != raw || b.file_pos != file || b.raw_len > MAX_BLOCK_RAW {
            return false;
        }
        raw = b.raw_end();
        file = b.file_end();
    }
    raw == seg_len && file == index_pos
}

/// Reads the block index of an intact header; `Err` says what is wrong.
fn read_index(
    file: &dyn VfsFile,
    path: &Path,
    h: &Header,
    file_len: u64,
) -> Result<std::result::Result<Vec<Block>, &'static str>> {
    let n = u64::from(h.blocks);
    let idx_len = n * u64::from(INDEX_ENTRY_LEN) + 4;
    if h.index_pos < u64::from(SEGZ_HEADER_LEN)
        || h.index_pos.checked_add(idx_len) != Some(file_len)
    {
        return Ok(Err("the block index does not end the file"));
    }
    let mut buf = vec![0u8; idx_len as usize]; // <= file_len, read below
    if read_full_at(file, path, &mut buf, h.index_pos)? != buf.len() {
        return Ok(Err("the block index is cut off"));
    }
    Ok(parse_index(&buf, h.index_pos).and_then(|blocks| {
        if consistent(&blocks, h.seg_len, h.index_pos) {
            Ok(blocks)
        } else {
            Err("the block index does not match the blocks")
        }
    }))
}

/// The blocks a block index names: `index` is the index's bytes (its
/// entries, then their CRC), found at `index_pos` of the file.
fn parse_index(index: &[u8], index_pos: u64) -> std::result::Result<Vec<Block>, &'static str> {
    let Some((entries, crc)) = index.split_last_chunk::<4>() else {
        return Err("the block index is cut off");
    };
    if crc32fast::hash(entries) != u32::from_le_bytes(*crc) {
        return Err("block index CRC mismatch");
    }
    let mut blocks: Vec<Block> = Vec::with_capacity(entries.len() / INDEX_ENTRY_LEN as usize);
    let mut c = Cursor { bytes: entries };
    while !c.bytes.is_empty() {
        let (Some(file_pos), Some(raw_pos), Some(raw_len), Some(first_offset)) =
            (c.u64(), c.u32(), c.u32(), c.u64())
        else {
            return Err("the block index is cut off");
        };
        blocks.push(Block {
            file_pos,
            raw_pos,
            raw_len,
            comp_len: 0,
            first_offset,
        });
    }
    // A block's compressed length is the distance to the next block (or
    // to the index), less its header.
    let ends: Vec<u64> = blocks
        .iter()
        .skip(1)
        .map(|b| b.file_pos)
        .chain([index_pos])
        .collect();
    for (b, end) in blocks.iter_mut().zip(ends) {
        let len = end
            .checked_sub(b.file_pos + u64::from(BLOCK_HEADER_LEN))
            .and_then(|l| u32::try_from(l).ok());
        match len {
            Some(l) => b.comp_len = l,
            None => return Err("the block index does not match the blocks"),
        }
    }
    Ok(blocks)
}

/// The block index ending `bytes` (a file whose header is damaged, so
/// that its position is unknown), searched from `from` on: where it
/// starts and the blocks it names, covering the segment back to back. An
/// index's first entry names the first block, at the end of the header
/// and at the first segment position after the `.seg` header, which only
/// the few candidates that pass have their CRC computed.
fn trailing_index(bytes: &[u8], from: u64) -> Option<(u64, Vec<Block>)> {
    let len = bytes.len() as u64;
    let entry = u64::from(INDEX_ENTRY_LEN);
    let last = len.checked_sub(4 + entry)?;
    let from = from.max(u64::from(SEGZ_HEADER_LEN));
    if from > last {
        return None;
    }
    let mut p = from + (last - from) % entry;
    while p <= last {
        let head = bytes.get(p as usize..(p + 12) as usize)?;
        if head.get(..8) == Some(&u64::from(SEGZ_HEADER_LEN).to_le_bytes()[..])
            && head.get(8..12) == Some(&HEADER_LEN.to_le_bytes()[..])
        {
            let found = bytes
                .get(p as usize..)
                .and_then(|index| parse_index(index, p).ok())
                .filter(|blocks| {
                    blocks
                        .last()
                        .is_some_and(|b| consistent(blocks, b.raw_end(), p))
                });
            if let Some(blocks) = found {
                return Some((p, blocks));
            }
        }
        p += entry;
    }
    None
}

/// Reads the whole file (a `.segz` is small: a compressed segment).
pub(crate) fn read_all(file: &dyn VfsFile, path: &Path) -> Result<Vec<u8>> {
    let len = file
        .size()
        .map_err(|e| LogError::io("reading metadata of", path, e))?
        .min(MAX_SEGMENT_BYTES);
    let mut buf = vec![0u8; len as usize];
    let got = read_full_at(file, path, &mut buf, 0)?;
    buf.truncate(got);
    Ok(buf)
}

/// Finds the blocks of a file whose header or index is damaged by looking
/// for block headers, and names what lies between them as holes.
fn walk(bytes: &[u8], end: u64, seg_len: Option<u64>) -> (Vec<Block>, Vec<Hole>) {
    let mut blocks: Vec<Block> = Vec::new();
    let end = end.min(bytes.len() as u64);
    let mut p = u64::from(SEGZ_HEADER_LEN).min(end);
    while p + u64::from(BLOCK_HEADER_LEN) <= end {
        let rest = bytes.get(p as usize..end as usize).unwrap_or(&[]);
        let Some(i) = rest.windows(4).position(|w| w == BLOCK_MAGIC) else {
            break;
        };
        let m = p + i as u64;
        let found = bytes
            .get(m as usize..)
            .and_then(|b| parse_block_header(b, m))
            .filter(|(b, _)| b.file_end() <= end);
        match found {
            Some((b, _)) => {
                let after = blocks.last().map_or(0, Block::raw_end);
                if u64::from(b.raw_pos) >= after {
                    blocks.push(b);
                }
                p = b.file_end();
            }
            None => p = m + 1,
        }
    }
    let seg_len =
        seg_len.unwrap_or_else(|| blocks.last().map_or(u64::from(HEADER_LEN), Block::raw_end));
    blocks.retain(|b| b.raw_end() <= seg_len);
    let mut holes = Vec::new();
    let mut raw = u64::from(HEADER_LEN);
    let mut file = u64::from(SEGZ_HEADER_LEN);
    for b in &blocks {
        if u64::from(b.raw_pos) > raw {
            holes.push(Hole {
                raw_pos: raw,
                raw_len: u64::from(b.raw_pos) - raw,
                file_pos: file,
                what: "block lost: its block header is damaged",
                rewritable: false,
            });
        }
        raw = b.raw_end();
        file = b.file_end();
    }
    if seg_len > raw {
        holes.push(Hole {
            raw_pos: raw,
            raw_len: seg_len - raw,
            file_pos: file,
            what: "block lost: its block header is damaged",
            rewritable: false,
        });
    }
    (blocks, holes)
}

/// The layout of the `.segz` of segment `base`. A well-formed header of
/// another version is an error; any other damage becomes holes.
pub(crate) fn load_table(file: &dyn VfsFile, path: &Path, base: u64) -> Result<Table> {
    let file_len = file
        .size()
        .map_err(|e| LogError::io("reading metadata of", path, e))?;
    let mut hb = [0u8; SEGZ_HEADER_LEN as usize];
    let got = read_full_at(file, path, &mut hb, 0)?;
    let (header, note) = match check_header(hb.get(..got).unwrap_or(&[]), base) {
        HeaderCheck::Version(version) => {
            return Err(LogError::UnsupportedVersion {
                file: path.to_owned(),
                what: ".segz container",
                version,
                oldest: SEGZ_VERSION,
                supported: SEGZ_VERSION,
            })
        }
        HeaderCheck::Ok(h) => match read_index(file, path, &h, file_len)? {
            Ok(blocks) => {
                return Ok(Table {
                    seg_header: h.seg_header,
                    seg_len: h.seg_len,
                    blocks,
                    holes: Vec::new(),
                })
            }
            Err(what) => {
                let at = h.index_pos.min(file_len);
                (Some(h), (at, what))
            }
        },
        HeaderCheck::Damaged(what) => (None, (0, what)),
    };
    let bytes = read_all(file, path)?;
    let file_len = file_len.min(bytes.len() as u64);
    // Where the blocks end and the segment's length, as far as known: from
    // an intact header; else from an intact block index at the end of the
    // file, which also names a lost last block; else up to the last block
    // a walk finds.
    let (end, seg_len, indexed) = match &header {
        Some(h) => (h.index_pos.min(file_len), Some(h.seg_len), None),
        None => {
            let (found, _) = walk(&bytes, file_len, None);
            let from = found
                .last()
                .map_or(u64::from(SEGZ_HEADER_LEN), Block::file_end);
            match trailing_index(&bytes, from) {
                Some((at, blocks)) => (at, blocks.last().map(Block::raw_end), Some(blocks)),
                None => (file_len, None, None),
            }
        }
    };
    let (blocks, mut holes) = walk(&bytes, end, seg_len);
    // Nothing is lost, and the container can be written again from the
    // blocks, only if the blocks found cover the segment as the header or
    // the index at the end says and the file holds no other block (a
    // header whose fields lie with a valid CRC must not drop one). A
    // well-formed header of another base is no damage but a file renamed
    // or copied into the log (a writer refuses it): never written again.
    let other_base = stated_base(hb.get(..got).unwrap_or(&[])).is_some_and(|b| b != base);
    // A segment's first record has its base offset: blocks of a copy of
    // another segment, put in under this name, start elsewhere.
    let rewritable = holes.is_empty()
        && !other_base
        && blocks.first().is_some_and(|b| b.first_offset == base)
        && walk(&bytes, file_len, None).0 == blocks
        && match (&header, &indexed) {
            (Some(h), _) => consistent(&blocks, h.seg_len, h.index_pos),
            (None, Some(named)) => *named == blocks,
            (None, None) => false,
        };
    holes.insert(
        0,
        Hole {
            raw_pos: if header.is_some() {
                u64::from(HEADER_LEN)
            } else {
                0
            },
            raw_len: 0,
            file_pos: note.0,
            what: note.1,
            rewritable,
        },
    );
    let seg_header = match &header {
        Some(h) => h.seg_header,
        None => copied_seg_header(hb.get(..got).unwrap_or(&[]), base)
            .unwrap_or_else(|| crate::format::encode_header(base)),
    };
    Ok(Table {
        seg_header,
        seg_len: seg_len
            .unwrap_or_else(|| blocks.last().map_or(u64::from(HEADER_LEN), Block::raw_end)),
        blocks,
        holes,
    })
}

/// The `.seg` header copied into a `.segz` header that failed its own
/// checks, if that copy passes its own (magic, CRC, base): it keeps the
/// frames' format version.
fn copied_seg_header(segz_header: &[u8], base: u64) -> Option<[u8; HEADER_LEN as usize]> {
    let copy: [u8; HEADER_LEN as usize] = segz_header
        .get(40..40 + HEADER_LEN as usize)?
        .try_into()
        .ok()?;
    crate::format::check_header(&copy, base).ok().map(|_| copy)
}

/// Whether every block of `blocks` (whose headers and CRCs were checked)
/// decompresses to its length.
fn all_decompress(bytes: &[u8], blocks: &[Block]) -> bool {
    let Ok(mut z) = zstd::bulk::Decompressor::new() else {
        return false;
    };
    let mut raw = Vec::new();
    blocks.iter().all(|b| {
        bytes
            .get(b.file_pos as usize..)
            .ok_or("block cut off by the end of the file")
            .and_then(|from| block_data(from, b))
            .and_then(|data| decompress(&mut z, data, b, &mut raw))
            .is_ok()
    })
}

/// Most bytes one byte of a zstd frame can decompress to: every zstd block
/// has a 3-byte header and at least one byte of content (an RLE block) and
/// yields at most 128 KiB, so a frame of `n` bytes yields less than
/// `n * 32768`. It bounds what a block's declared `raw_len` may reserve.
const ZSTD_MAX_EXPANSION: u64 = 32 << 10;

/// Reads and decompresses block `b`: `Ok(Err(what))` if it is damaged.
pub(crate) fn read_block(
    file: &dyn VfsFile,
    path: &Path,
    b: &Block,
) -> Result<std::result::Result<Vec<u8>, &'static str>> {
    let len = BLOCK_HEADER_LEN as usize + b.comp_len as usize;
    // comp_len is at most the distance to the next block or the index, all
    // inside the file (checked by `read_index` / `walk`).
    let mut buf = vec![0u8; len];
    if read_full_at(file, path, &mut buf, b.file_pos)? != len {
        return Ok(Err("block cut off by the end of the file"));
    }
    let mut raw = Vec::new();
    let mut z = zstd::bulk::Decompressor::new().map_err(|e| LogError::io("reading", path, e))?;
    Ok(check_block(&buf, b).and_then(|data| decompress(&mut z, data, b, &mut raw).map(|()| raw)))
}

/// The compressed bytes of block `b`, given the bytes from its header on:
/// `Err(what)` unless its header matches `b`, its CRC holds and its
/// declared length is one its compressed bytes can hold.
fn check_block<'a>(buf: &'a [u8], b: &Block) -> std::result::Result<&'a [u8], &'static str> {
    let Some((found, data_crc)) = parse_block_header(buf, b.file_pos) else {
        return Err("block header damaged");
    };
    if found != *b {
        return Err("block header does not match the block index");
    }
    let data = block_data(buf, b)?;
    if crc32fast::hash(data) != data_crc {
        return Err("block CRC mismatch");
    }
    if u64::from(b.raw_len) > u64::from(b.comp_len).saturating_mul(ZSTD_MAX_EXPANSION) {
        return Err("block declares more bytes than its compressed data can hold");
    }
    Ok(data)
}

/// The compressed data of block `b`, `buf` starting at its header.
fn block_data<'a>(buf: &'a [u8], b: &Block) -> std::result::Result<&'a [u8], &'static str> {
    buf.get(BLOCK_HEADER_LEN as usize..BLOCK_HEADER_LEN as usize + b.comp_len as usize)
        .ok_or("block cut off by the end of the file")
}

/// Decompresses checked block data into `out` (cleared first).
///
/// The output buffer is reserved from `raw_len` only up to what the block's
/// compressed bytes, really present in the file, can decompress to
/// (`check_block`), and no further than the size the zstd frame records,
/// so a crafted length cannot make this allocate more than the data yields.
fn decompress(
    z: &mut zstd::bulk::Decompressor<'static>,
    data: &[u8],
    b: &Block,
    out: &mut Vec<u8>,
) -> std::result::Result<(), &'static str> {
    out.clear();
    let recorded =
        zstd::zstd_safe::get_frame_content_size(data).map_err(|_| "block does not decompress")?;
    if recorded.is_some_and(|n| n < u64::from(b.raw_len)) {
        return Err("block decompresses to a wrong length");
    }
    out.reserve(b.raw_len as usize);
    match z.decompress_to_buffer(data, out) {
        Ok(n) if n == b.raw_len as usize && out.len() == n => Ok(()),
        Ok(_) => Err("block decompresses to a wrong length"),
        Err(_) => Err("block does not decompress"),
    }
}

/// The writing half of a [`VfsFile`] that is bytes in memory, read only.
macro_rules! read_only_file {
    () => {
        fn write_all_at(&self, _buf: &[u8], _pos: u64) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_all(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _len: u64) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        }
    };
}

/// Bytes in memory behind the [`VfsFile`] interface (read only), so that
/// the code reading files reads them the same way.
pub(crate) struct Image {
    bytes: Arc<Vec<u8>>,
}

impl Image {
    /// `bytes` as a file of their length.
    pub fn whole(bytes: Arc<Vec<u8>>) -> Image {
        Image { bytes }
    }
}

impl VfsFile for Image {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let from = usize::try_from(pos).unwrap_or(usize::MAX);
        let src = self.bytes.get(from..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        if let (Some(d), Some(s)) = (buf.get_mut(..n), src.get(..n)) {
            d.copy_from_slice(s);
        }
        Ok(n)
    }
    read_only_file!();
    fn size(&self) -> io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }
}

/// A `.segz` held in memory (its compressed bytes), read as the segment it
/// came from: each block is decompressed when a read first reaches it, so a
/// scan holds one decompressed block at a time, not the segment (a block
/// that a read covers whole is decompressed straight into the reader's
/// buffer, [`Lazy::load_into`]).
///
/// Invariants:
/// - Blocks whose header or CRC is damaged are found at open ([`lazy`]
///   returns them as holes, as a walk over a damaged header or index does);
///   a block that passes those checks but does not decompress to its length
///   is found when first read, becomes a hole ([`Lazy::take_late_holes`])
///   and reads as zeros. So every block is checked once a read has covered
///   it, and a scan learns of a damaged block before it reads any byte of it
///   ([`Lazy::prepare`]), as frames never cross a block boundary.
/// - Positions no readable block covers read as zeros without being stored.
pub(crate) struct Lazy {
    bytes: Vec<u8>,
    len: u64,
    seg_header: [u8; HEADER_LEN as usize],
    /// The blocks that passed the checks at open, in position order.
    blocks: Vec<Block>,
    state: std::sync::Mutex<LazyState>,
}

struct LazyState {
    /// Whether each block decompressed (`None`: not read yet).
    ok: Vec<Option<bool>>,
    /// The block whose bytes `raw` holds.
    held: Option<usize>,
    raw: Vec<u8>,
    z: Option<zstd::bulk::Decompressor<'static>>,
    /// Blocks found damaged by a read, not yet taken.
    late: Vec<Hole>,
}

/// Opens the `.segz` `bytes` of segment `base` lazily: the segment, and the
/// holes known without decompressing (damaged header, index or blocks), in
/// segment-position order.
pub(crate) fn lazy(bytes: Vec<u8>, path: &Path, base: u64) -> Result<(Lazy, Vec<Hole>)> {
    let file = Image::whole(Arc::new(bytes));
    let table = load_table(&file, path, base)?;
    let bytes = Arc::try_unwrap(file.bytes).unwrap_or_else(|b| b.as_ref().clone());
    let mut holes = table.holes;
    let mut blocks = Vec::with_capacity(table.blocks.len());
    for b in table.blocks {
        let at = b.file_pos as usize;
        let checked = match bytes.get(at..) {
            Some(from) => check_block(from, &b).map(drop),
            None => Err("block cut off by the end of the file"),
        };
        match checked {
            Ok(()) => blocks.push(b),
            Err(what) => holes.push(Hole {
                raw_pos: u64::from(b.raw_pos),
                raw_len: u64::from(b.raw_len),
                file_pos: b.file_pos,
                what,
                rewritable: false,
            }),
        }
    }
    holes.sort_by_key(|h| (h.raw_pos, h.raw_len));
    // A damaged header or index is written again only if nothing is lost:
    // every block whole, which for such a (rare) file is checked now, not
    // when a scan reaches each block.
    let lossy = holes.iter().any(|h| h.raw_len > 0);
    if let Some(note) = holes.iter_mut().find(|h| h.rewritable) {
        note.rewritable = !lossy && all_decompress(&bytes, &blocks);
    }
    let state = LazyState {
        ok: vec![None; blocks.len()],
        held: None,
        raw: Vec::new(),
        z: None,
        late: Vec::new(),
    };
    Ok((
        Lazy {
            bytes,
            len: table.seg_len,
            seg_header: table.seg_header,
            blocks,
            state: std::sync::Mutex::new(state),
        },
        holes,
    ))
}

impl Lazy {
    fn block_index(&self, pos: u64) -> Option<usize> {
        let i = self
            .blocks
            .partition_point(|b| u64::from(b.raw_pos) <= pos)
            .checked_sub(1)?;
        self.blocks.get(i).filter(|b| pos < b.raw_end()).map(|_| i)
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, LazyState>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("a reader of this compressed segment panicked"))
    }

    /// Decompresses the block covering `pos` if no read has yet, so that
    /// its damage, if any, is among [`Lazy::take_late_holes`]; the end of
    /// that block when it is readable, else 0.
    pub fn prepare(&self, pos: u64) -> io::Result<u64> {
        let Some(i) = self.block_index(pos) else {
            return Ok(0);
        };
        let mut st = self.lock()?;
        let ok = match st.ok.get(i).copied().flatten() {
            Some(ok) => ok,
            None => self.load(&mut st, i)?,
        };
        Ok(match self.blocks.get(i) {
            Some(b) if ok => b.raw_end(),
            _ => 0,
        })
    }

    /// Decompresses every block not read yet (for a whole check).
    pub fn prepare_all(&self) -> io::Result<()> {
        let mut st = self.lock()?;
        for i in 0..self.blocks.len() {
            if st.ok.get(i).copied().flatten().is_none() {
                self.load(&mut st, i)?;
            }
        }
        Ok(())
    }

    /// The blocks found damaged by reads since the last call.
    pub fn take_late_holes(&self) -> io::Result<Vec<Hole>> {
        Ok(std::mem::take(&mut self.lock()?.late))
    }

    /// Decompresses block `i`, found readable by no read yet and not the
    /// held one, straight into `dst` (exactly its bytes): a scan's window
    /// then gets most blocks without the copy out of `raw` (issue 14).
    /// False when it cannot say: the block was read before, or its data
    /// does not decompress to exactly `dst` (then [`Lazy::load`] reads it
    /// again and gives the verdict, so a damaged block is reported as
    /// ever). `dst` may then hold anything.
    fn load_into(&self, st: &mut LazyState, i: usize, dst: &mut [u8]) -> io::Result<bool> {
        let (Some(b), Some(known)) = (self.blocks.get(i), st.ok.get_mut(i)) else {
            return Ok(false);
        };
        if known.is_some() || dst.len() != b.raw_len as usize {
            return Ok(false);
        }
        let z = match &mut st.z {
            Some(z) => z,
            None => st.z.insert(zstd::bulk::Decompressor::new()?),
        };
        let data = self
            .bytes
            .get(b.file_pos as usize..)
            .and_then(|from| block_data(from, b).ok());
        let whole = data.is_some_and(
            |data| matches!(z.decompress_to_buffer(data, &mut *dst), Ok(n) if n == dst.len()),
        );
        if whole {
            *known = Some(true);
        }
        Ok(whole)
    }

    /// Makes block `i` the held one; false if it is damaged.
    fn load(&self, st: &mut LazyState, i: usize) -> io::Result<bool> {
        let LazyState {
            ok,
            held,
            raw,
            z,
            late,
        } = st;
        if *held == Some(i) {
            return Ok(true);
        }
        let (Some(b), Some(known)) = (self.blocks.get(i), ok.get_mut(i)) else {
            return Ok(false);
        };
        if *known == Some(false) {
            return Ok(false);
        }
        *held = None;
        let z = match z {
            Some(z) => z,
            None => z.insert(zstd::bulk::Decompressor::new()?),
        };
        let outcome = self
            .bytes
            .get(b.file_pos as usize..)
            .ok_or("block cut off by the end of the file")
            // Checked once, at open (`lazy`): `blocks` holds only blocks
            // whose header and CRC held, over bytes that do not change.
            .and_then(|from| block_data(from, b))
            .and_then(|data| decompress(z, data, b, raw));
        match outcome {
            Ok(()) => {
                *known = Some(true);
                *held = Some(i);
                Ok(true)
            }
            Err(what) => {
                *known = Some(false);
                late.push(Hole {
                    raw_pos: u64::from(b.raw_pos),
                    raw_len: u64::from(b.raw_len),
                    file_pos: b.file_pos,
                    what,
                    rewritable: false,
                });
                Ok(false)
            }
        }
    }
}

impl VfsFile for Lazy {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let n = usize::try_from(self.len.saturating_sub(pos))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let Some(out) = buf.get_mut(..n) else {
            return Ok(0);
        };
        // Bytes of `out` before this are written: only the gaps no copy
        // covers are zeroed (zeroing all of it first was a second pass
        // over every byte a scan reads).
        fn zero_to(out: &mut [u8], written: &mut usize, to: usize) {
            if let Some(gap) = out.get_mut(*written..to) {
                gap.fill(0);
            }
            *written = (*written).max(to);
        }
        let mut written = 0usize;
        let end = pos + n as u64;
        let header = self.seg_header.len() as u64;
        if pos < header {
            let to = end.min(header);
            if let (Some(d), Some(s)) = (
                out.get_mut(..(to - pos) as usize),
                self.seg_header.get(pos as usize..to as usize),
            ) {
                d.copy_from_slice(s);
                written = d.len();
            }
        }
        let first = self.blocks.partition_point(|b| b.raw_end() <= pos);
        let mut st = self.lock()?;
        for (i, b) in self.blocks.iter().enumerate().skip(first) {
            let at = u64::from(b.raw_pos);
            if at >= end {
                break;
            }
            let from = pos.max(at);
            let to = end.min(b.raw_end());
            let (raw_from, raw_to) = ((from - at) as usize, (to - at) as usize);
            let (from, to) = ((from - pos) as usize, (to - pos) as usize);
            let whole = raw_from == 0 && raw_to == b.raw_len as usize;
            if whole {
                if let Some(d) = out.get_mut(from..to) {
                    if self.load_into(&mut st, i, d)? {
                        zero_to(out, &mut written, from);
                        written = written.max(to);
                        continue;
                    }
                }
            }
            if !self.load(&mut st, i)? {
                continue;
            }
            zero_to(out, &mut written, from);
            let src = st.raw.get(raw_from..raw_to);
            if let (Some(d), Some(s)) = (out.get_mut(from..to), src) {
                d.copy_from_slice(s);
                written = written.max(to);
            }
        }
        zero_to(out, &mut written, n);
        Ok(n)
    }
    read_only_file!();
    fn size(&self) -> io::Result<u64> {
        Ok(self.len)
    }
}
