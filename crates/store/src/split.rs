//! Splitting an import stream into messages: NDJSON lines, or JSON values
//! back to back (the legacy streaming API's JSON, pretty-printed captures)
//! or inside JSON arrays (input shape 3, docs/INGEST.md "Legacy captures").
//!
//! Guarantees:
//! - Each message is the exact bytes of one line (NDJSON, without its line
//!   end) or one JSON value as it appeared in the input, never reformatted,
//!   so the archive stores and deduplicates each event by its own bytes.
//! - Memory is bounded: a message is kept up to `cap + 1` bytes; a longer
//!   one is skipped to its end and flagged.
//! - Every message knows where it was: its first and last line and, for the
//!   JSON shapes, its byte offset, which quarantine reasons then name.
//! - Splitting never fails on content: a value that is not JSON (stray
//!   text, an unterminated object at the end) becomes a message of its own
//!   and is quarantined by the archive, so the rest of the stream goes on.
//!   An array still open at the end has no bytes of its own to quarantine:
//!   [`Splitter::unclosed_array`] tells the caller, which rejects it.
//! - Auto-detection reads only the first buffered block; an XML capture is
//!   refused with a message saying so, before anything is archived.

use std::io::BufRead;

/// The shape of an import stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// Decide from the first block: `[` is a JSON array, a first value that
    /// spans lines or is followed by another on the same line is a JSON
    /// stream, anything else NDJSON; XML is refused.
    #[default]
    Auto,
    /// One message per line.
    Ndjson,
    /// JSON values back to back, separated by any whitespace or none.
    JsonStream,
    /// One or more JSON arrays whose elements are the messages.
    JsonArray,
}

/// One message found in the stream; its bytes are in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Input bytes consumed, separators included.
    pub consumed: u64,
    /// Longer than the cap: the buffer holds only its first `cap + 2` bytes
    /// at most.
    pub too_long: bool,
    pub first_line: u64,
    pub last_line: u64,
    /// Byte offset of its first byte in the (decompressed) input; `None`
    /// for NDJSON, whose lines are located by number.
    pub offset: Option<u64>,
}

/// The UTF-8 byte order mark.
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Splits one stream; see [`InputFormat`].
pub(crate) struct Splitter {
    json: bool,
    /// JSON array shape: `[`, `,` and `]` around values are separators.
    array: bool,
    /// Arrays open around the next value: an element that is itself an
    /// array (a capture of batches) is read as its elements.
    open_arrays: u64,
    /// Byte offset and line of the `[` that opened the outermost of
    /// `open_arrays`, while any is open.
    outermost_open: Option<(u64, u64)>,
    /// Position of the next unread byte.
    offset: u64,
    line: u64,
    /// What ends an NDJSON line: `\n` (also of `\r\n`), or `\r` in a
    /// file whose first block has no `\n` but a `\r` (old Mac line ends,
    /// which would otherwise be one line over the record limit).
    line_end: u8,
    /// The first keys of the stream's well-formed top-level objects (the
    /// event families, an envelope's `messageId`): at most [`MAX_KEYS`],
    /// each at most [`MAX_KEY`] bytes. Where a broken value may be cut in
    /// an array, a `},{"KEY":` with one of them starts the next element.
    keys: Vec<Vec<u8>>,
    /// [`key_hash`] of each of `keys`.
    key_hashes: Vec<u32>,
    /// The start of the next value, already read: a broken value was
    /// found to end before it once its key was seen ([`Resync`]).
    carry: Vec<u8>,
    /// The last bytes of the value being read (at most [`TAIL`]), so that
    /// the start of the next value is at hand even when the broken one
    /// outgrew the buffer.
    tail: Vec<u8>,
    /// Bytes of a byte order mark between values that the last block
    /// ended inside of, the rest expected at the next one's start.
    mark_begun: usize,
}

/// How many first keys of top-level objects a stream remembers.
const MAX_KEYS: usize = 16;
/// The first keys a stream's values are known to begin with before any
/// has been read: the 8x8 stream's event families (the one key of an
/// event) and a Pulsar envelope's first key. Others are learnt.
const STREAM_KEYS: [&[u8]; 4] = [
    b"Interaction",
    b"AgentStatusChange",
    b"AgentProvChange",
    b"messageId",
];
/// The longest key the resync rules look for.
const MAX_KEY: usize = 64;
/// Blanks allowed between a closing bracket, a comma, the `{` and after
/// the key in a resync pattern.
const MAX_BLANKS: u8 = 8;
/// Blanks and line-end bytes allowed between a `{` that begins its line
/// and the key on the next (an indented writer's array element: `  {`,
/// then `    "Interaction": {`). With the key and [`MAX_BLANKS`] it fits
/// [`TAIL`].
const MAX_GAP: u8 = 36;
/// Bytes of a value's end kept in [`Splitter::tail`]: a resync pattern's
/// `{"KEY"` and blanks fit.
const TAIL: usize = 2 * MAX_KEY;

impl Splitter {
    /// Picks the splitter for `format`, peeking at the first block of
    /// `input` for [`InputFormat::Auto`]. The error is a sentence for the
    /// user (an XML capture).
    pub fn new(
        format: InputFormat,
        input: &mut dyn BufRead,
    ) -> std::io::Result<Result<Splitter, String>> {
        let format = match format {
            InputFormat::Auto => match detect(fill(input)?) {
                Ok(f) => f,
                Err(why) => return Ok(Err(why)),
            },
            f => f,
        };
        let head = fill(input)?;
        let line_end = if !head.contains(&b'\n') && ends_lines_with_carriage_returns(head) {
            b'\r'
        } else {
            b'\n'
        };
        Ok(Ok(Splitter {
            json: format != InputFormat::Ndjson,
            array: format == InputFormat::JsonArray,
            open_arrays: 0,
            outermost_open: None,
            offset: 0,
            line: 1,
            line_end,
            keys: STREAM_KEYS.iter().map(|k| k.to_vec()).collect(),
            key_hashes: STREAM_KEYS.iter().map(|k| key_hash(k)).collect(),
            carry: Vec::new(),
            tail: Vec::new(),
            mark_begun: 0,
        }))
    }

    /// Whether its messages are JSON values (a stream or arrays), not
    /// lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Once [`Splitter::next`] has said the input ended: the byte offset
    /// and line of the `[` of an array still open, if any. Its values
    /// before the end were read as messages; that its end never came (a
    /// capture cut short, `[[` alone) is the caller's to say, since it
    /// holds no message of its own to quarantine.
    pub fn unclosed_array(&self) -> Option<(u64, u64)> {
        self.outermost_open.filter(|_| self.open_arrays > 0)
    }

    /// Appends the next message to `buf` (it is `buf[len..]`, `len` the
    /// length before the call), or returns `None` at the end of input.
    pub fn next(
        &mut self,
        input: &mut dyn BufRead,
        buf: &mut Vec<u8>,
        cap: usize,
    ) -> std::io::Result<Option<Piece>> {
        let start = buf.len();
        if !self.json {
            let line = self.line;
            return Ok(
                crate::import::read_capped_line(input, buf, cap, self.line_end, line)?.map(
                    |(consumed, too_long)| {
                        // A byte order mark (an editor's or Windows tool's) is
                        // not part of the first event.
                        if self.line == 1
                            && buf
                                .get(start..)
                                .is_some_and(|m| m.starts_with(BYTE_ORDER_MARK))
                        {
                            buf.drain(start..start + BYTE_ORDER_MARK.len());
                        }
                        self.line += 1;
                        Piece {
                            consumed,
                            too_long,
                            first_line: line,
                            last_line: line,
                            offset: None,
                        }
                    },
                ),
            );
        }
        let mut value = Value::default();
        let mut too_long = false;
        // Bytes of the value so far.
        let mut seen = 0u64;
        self.tail.clear();
        let carry = std::mem::take(&mut self.carry);
        let mut consumed = if carry.is_empty() {
            self.skip_separators(input)?
        } else {
            0
        };
        let (first_line, offset) = (self.line, self.offset);
        if !carry.is_empty() {
            // `{"KEY":`, already read: never a whole value.
            let _ = value.end_in(&carry, self.array, &self.key_hashes);
            self.take(buf, start, cap, &carry, &mut too_long);
            self.advance(&carry);
            seen += carry.len() as u64;
            consumed += carry.len() as u64;
        }
        loop {
            let chunk = fill(input)?;
            if chunk.is_empty() {
                break; // an unterminated value: what there is, quarantined
            }
            let (take, end) = match value.end_in(chunk, self.array, &self.key_hashes) {
                Some(End::At(end)) => (end, Some(None)),
                Some(End::Resync {
                    through,
                    carry,
                    needs_key,
                }) => (through, Some(Some((carry, needs_key)))),
                None => (chunk.len(), None),
            };
            let taken = &chunk[..take];
            self.take(buf, start, cap, taken, &mut too_long);
            self.advance(taken);
            input.consume(take);
            consumed += take as u64;
            seen += take as u64;
            match end {
                None => {}
                Some(None) => {
                    if !too_long {
                        self.learn_key(buf.get(start..).unwrap_or_default());
                    }
                    break;
                }
                Some(Some((n, needs_key))) => {
                    // The next value started `n` bytes back: a broken value
                    // ends before it, and those bytes begin the next message.
                    let Some(next) = self.tail.get(self.tail.len().saturating_sub(n)..) else {
                        continue;
                    };
                    if n > self.tail.len() || (needs_key && !self.knows_key(next)) {
                        continue;
                    }
                    let next = next.to_vec();
                    let kept = seen - n as u64;
                    too_long = kept > cap as u64;
                    buf.truncate(start + usize::try_from(kept).map_or(cap + 1, |k| k.min(cap + 1)));
                    self.offset -= n as u64;
                    self.line -= memchr::memchr_iter(b'\n', &next).count() as u64;
                    consumed -= n as u64;
                    self.carry = next;
                    break;
                }
            }
        }
        if value.started {
            Ok(Some(Piece {
                consumed,
                too_long,
                first_line,
                last_line: self.line,
                offset: Some(offset),
            }))
        } else {
            Ok(None)
        }
    }

    /// Consumes whitespace (and a byte order mark) between values, and an
    /// array's brackets and commas.
    fn skip_separators(&mut self, input: &mut dyn BufRead) -> std::io::Result<u64> {
        let mut consumed = 0u64;
        loop {
            let chunk = fill(input)?;
            let mut i = 0;
            // The rest of a byte order mark the last block ended inside of.
            let rest = BYTE_ORDER_MARK.get(std::mem::take(&mut self.mark_begun)..);
            if let Some(rest) = rest.filter(|r| !r.is_empty() && chunk.starts_with(r)) {
                i = rest.len();
            }
            while let Some(&b) = chunk.get(i) {
                let separator = match b {
                    b' ' | b'\t' | b'\r' | b'\n' => true,
                    // A whole byte order mark (a file with one joined to
                    // the last), or one the block ends inside of (then
                    // taken for one: the block boundary leaves no way to
                    // look further); its bytes alone are no separator but
                    // the next value's (until 2026-12-07 each was: stray
                    // bytes vanished, an outside audit).
                    0xEF => {
                        let here = chunk.get(i..).unwrap_or_default();
                        if here.starts_with(BYTE_ORDER_MARK) {
                            i += BYTE_ORDER_MARK.len() - 1;
                            true
                        } else if BYTE_ORDER_MARK.starts_with(here) {
                            self.mark_begun = here.len();
                            i += here.len() - 1;
                            true
                        } else {
                            false
                        }
                    }
                    b'[' if self.array => {
                        if self.open_arrays == 0 {
                            let before = chunk.get(..i).unwrap_or_default();
                            let newlines = memchr::memchr_iter(b'\n', before).count() as u64;
                            self.outermost_open =
                                Some((self.offset + i as u64, self.line + newlines));
                        }
                        self.open_arrays += 1;
                        true
                    }
                    b']' if self.array && self.open_arrays > 0 => {
                        self.open_arrays -= 1;
                        if self.open_arrays == 0 {
                            self.outermost_open = None;
                        }
                        true
                    }
                    b',' => self.array && self.open_arrays > 0,
                    _ => false,
                };
                if !separator {
                    break;
                }
                i += 1;
            }
            let at_value = i < chunk.len();
            self.advance(&chunk[..i]);
            input.consume(i);
            consumed += i as u64;
            if at_value || i == 0 {
                return Ok(consumed);
            }
        }
    }

    /// Appends `bytes` of the value to `buf` up to `cap + 1` bytes of it
    /// (flagging a longer one), and keeps its last [`TAIL`] bytes.
    fn take(
        &mut self,
        buf: &mut Vec<u8>,
        start: usize,
        cap: usize,
        bytes: &[u8],
        too_long: &mut bool,
    ) {
        if !*too_long {
            let room = (cap + 1).saturating_sub(buf.len() - start);
            buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
            *too_long = buf.len() - start > cap;
        }
        if bytes.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - TAIL..]);
        } else {
            let over = (self.tail.len() + bytes.len()).saturating_sub(TAIL);
            self.tail.drain(..over);
            self.tail.extend_from_slice(bytes);
        }
    }

    /// Remembers the first key of a top-level object that ended well.
    fn learn_key(&mut self, value: &[u8]) {
        if self.keys.len() >= MAX_KEYS {
            return;
        }
        if let Some(key) = first_key(value) {
            if !self.keys.iter().any(|k| k == key) {
                self.keys.push(key.to_vec());
                self.key_hashes.push(key_hash(key));
            }
        }
    }

    /// Whether `start` (`{"KEY"…:`) opens with a key the stream's values
    /// opened with.
    fn knows_key(&self, start: &[u8]) -> bool {
        first_key(start).is_some_and(|key| self.keys.iter().any(|k| k == key))
    }

    fn advance(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        self.line += memchr::memchr_iter(b'\n', bytes).count() as u64;
    }
}

/// The first key of an object's text (`{` blanks `"KEY"`), when it is a
/// name the resync rules look for: a letter or `_`, then letters, digits
/// or `_`, at most [`MAX_KEY`] bytes.
fn first_key(value: &[u8]) -> Option<&[u8]> {
    let rest = value
        .strip_prefix(b"{")?
        .trim_ascii_start()
        .strip_prefix(b"\"")?;
    let len = rest.iter().position(|&b| b == b'"')?;
    let key = rest.get(..len)?;
    let name = key
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && key.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && key.len() <= MAX_KEY;
    name.then_some(key)
}

/// The buffered bytes, retried on interruption.
fn fill(input: &mut dyn BufRead) -> std::io::Result<&[u8]> {
    loop {
        match input.fill_buf() {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    input.fill_buf()
}

/// Where one JSON value ends, fed block by block: objects and arrays by
/// bracket depth outside strings, strings by their closing quote, anything
/// else (numbers, literals, stray text) at the next whitespace or
/// structural byte.
///
/// A broken value (`{not json`, a cut-off object) never closes its
/// brackets, and would take the rest of the input with it. So a line that
/// starts with `{` (in its first column) where no well-formed value written
/// by a usual writer has one ends the value before that line:
/// - after a line break inside a string (which JSON forbids);
/// - directly inside an object, where a line starts with a key or the
///   closing `}`, whatever the pretty-printer (known for the innermost 128
///   levels; deeper, taken for an array);
/// - in a value whose writer indents (a line of it began with a blank):
///   there only the top-level value's own closing bracket is unindented;
/// - when a key follows on the same line (`{"`): a one-line value's start,
///   which a pretty-printer never writes (it puts each key on a line), and
///   a compact writer never breaks a line inside a value.
///
/// The broken part is then one quarantined message, and the events after
/// it are read. What this misses: a `{"` that starts a block of input.
///
/// A one-line stream (values back to back, blank-separated, or elements of
/// a compact array) has no line to start anew, so a broken value there
/// ends before the next value's `{"KEY":` ([`End::Resync`]), KEY a name,
/// found in any state (a value cut inside a string reads the rest as if
/// strings and the text between them had swapped), where well-formed JSON
/// cannot have it:
/// - after a closing `}` or `]` on the same line (blanks between): a `{`
///   never follows one, and in a string `}{"KEY":` would end the string
///   before a bare name;
/// - inside a string, after any byte: the unescaped `"` would end it
///   before a bare name;
/// - where an object's key must come (after its `{` or a `,`);
/// - elsewhere (a nested object, as in an array of them), only with a key
///   the stream's values begin with (an 8x8 event family, a Pulsar
///   envelope's `messageId`, or the first key of a value read before),
///   which no event nests.
///
/// A pretty-printer's array (`json.dumps(list, indent=…)`, `jq .`) puts
/// each element's `{` alone on its line, indented or not, and its key on
/// the next: there a `{` that begins its line, blanks and one line end,
/// then `"KEY":` with KEY one the stream's values begin with, ends a broken
/// value too, where a cut inside an array or an indented writer leaves no
/// line starting with `{` for the rules above.
///
/// So a value cut off in a one-line stream is one quarantined message
/// ending where the next value begins, whatever follows the cut.
#[derive(Debug, Default, Clone, Copy)]
struct Value {
    started: bool,
    bare: bool,
    depth: u32,
    in_string: bool,
    escape: bool,
    /// Which of the innermost open containers are objects: bit 0 the
    /// innermost, a set bit an object.
    objects: u128,
    /// The last byte was a line break where a `{` starting the next line
    /// ends the value.
    resync: bool,
    /// The last byte was a line break.
    line_start: bool,
    /// A line of the value after its first began with a blank.
    indented: bool,
    /// The last byte was a `{` that began a line (the value ends before it
    /// if a `"` follows).
    brace_at_line_start: bool,
    /// Only a closing bracket ends the value: auto-detection asks whether
    /// the first value is well-formed JSON spanning lines, and a broken one
    /// ended where a line starts anew says the file is NDJSON.
    brackets_only: bool,
    /// The last byte that was not a blank, in any state, as of the end of
    /// the block before (a `{` looks back in its own block first).
    last: u8,
    /// FNV-1a of the resync pattern's key so far ([`key_hash`]).
    resync_hash: u32,
    /// How far a possible next value's `{"KEY":` has matched (0: none;
    /// 1: `{` seen; 2: `{"`; 3: in the key; 4: after its closing quote).
    resync_stage: u8,
    /// Bytes of it so far, its `{` included.
    resync_len: u8,
    resync_key: u8,
    resync_blanks: u8,
    /// It followed a comma outside a string: only a known key will do.
    resync_needs_key: bool,
    /// Its `{` began a line: the key may follow on the next line.
    resync_own_line: bool,
    /// Blanks and line ends between that `{` and the key's quote.
    resync_gap: u8,
    /// The line end among them was seen.
    resync_broke_line: bool,
}

/// Where a value ends in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Just before this index.
    At(usize),
    /// Found broken: the block is read up to `through`, whose last `carry`
    /// bytes are the next value's `{"KEY":` (and the value ends before
    /// them). `needs_key`: only if KEY is one the stream's values began
    /// with.
    Resync {
        through: usize,
        carry: usize,
        needs_key: bool,
    },
}

/// FNV-1a (32 bits) of a key, one byte at a time: how a resync pattern's
/// key is compared with the stream's known keys without keeping it.
const KEY_HASH_START: u32 = 0x811c_9dc5;

fn key_hash_step(hash: u32, b: u8) -> u32 {
    (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
}

fn key_hash(key: &[u8]) -> u32 {
    key.iter().fold(KEY_HASH_START, |h, &b| key_hash_step(h, b))
}

/// [`key_hash`] of an envelope's first key, `messageId`.
const MESSAGE_ID_HASH: u32 = {
    let key = b"messageId";
    let mut hash = KEY_HASH_START;
    let mut i = 0;
    while i < key.len() {
        hash = (hash ^ key[i] as u32).wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
};

impl Value {
    /// Where the value ends in `chunk`, if it does. `known`: the hashes
    /// ([`key_hash`]) of the keys a resync that needs one may have.
    fn end_in(&mut self, chunk: &[u8], array: bool, known: &[u32]) -> Option<End> {
        let end = self.end_in_unnoted(chunk, array, known);
        let seen = match end {
            Some(End::At(at)) => at,
            Some(End::Resync { through, .. }) => through,
            None => chunk.len(),
        };
        if let Some(&b) = chunk
            .get(..seen)
            .and_then(|c| c.iter().rev().find(|&&b| b != b' ' && b != b'\t'))
        {
            self.last = b;
        }
        end
    }

    fn end_in_unnoted(&mut self, chunk: &[u8], array: bool, known: &[u32]) -> Option<End> {
        for (i, &b) in chunk.iter().enumerate() {
            if !self.started {
                self.started = true;
                match b {
                    b'{' | b'[' => {
                        self.depth = 1;
                        self.objects = u128::from(b == b'{');
                    }
                    b'"' => self.in_string = true,
                    _ => self.bare = true,
                }
                self.last = b;
                continue;
            }
            // Only a `{` starts a resync pattern: other bytes pass by.
            let resynced = if !self.bare && (self.resync_stage != 0 || b == b'{') {
                let last = chunk
                    .get(..i)
                    .and_then(|c| c.iter().rev().find(|&&b| b != b' ' && b != b'\t'))
                    .copied()
                    .unwrap_or(self.last);
                self.watch(b, last, known)
            } else {
                None
            };
            if let Some(end) = self.step(i, b, array) {
                return Some(End::At(end));
            }
            if let Some((carry, needs_key)) = resynced {
                return Some(End::Resync {
                    through: i + 1,
                    carry,
                    needs_key,
                });
            }
        }
        None
    }

    /// Follows a possible next value's `{"KEY":` through `b` (see the
    /// type's rules): its length and whether it needs a known key once
    /// complete.
    fn watch(&mut self, b: u8, last: u8, known: &[u32]) -> Option<(usize, bool)> {
        let mut found = None;
        if self.resync_stage != 0 {
            self.resync_len += 1;
            let ident = b.is_ascii_alphanumeric() || b == b'_';
            self.resync_stage = match (self.resync_stage, b) {
                (1, b'"') => 2,
                // An indented writer's `{` alone on its line, the key on
                // the next: no well-formed value has a line end there but
                // between an array's elements, so only a known key will do
                // (an event's own arrays of objects begin with others).
                (1, b' ' | b'\t' | b'\r' | b'\n')
                    if self.resync_own_line
                        && self.resync_gap < MAX_GAP
                        && !(b == b'\n' && self.resync_broke_line) =>
                {
                    self.resync_gap += 1;
                    self.resync_broke_line |= b == b'\n';
                    self.resync_needs_key = true;
                    1
                }
                (2, _) if b.is_ascii_alphabetic() || b == b'_' => {
                    self.resync_key = 1;
                    self.resync_hash = key_hash_step(KEY_HASH_START, b);
                    3
                }
                (3, _) if ident && usize::from(self.resync_key) < MAX_KEY => {
                    self.resync_key += 1;
                    self.resync_hash = key_hash_step(self.resync_hash, b);
                    3
                }
                (3, b'"') => {
                    self.resync_blanks = 0;
                    4
                }
                (4, b' ' | b'\t') if self.resync_blanks < MAX_BLANKS => {
                    self.resync_blanks += 1;
                    4
                }
                // A key the stream's values may begin with, where one is
                // needed: else a nested object, no business of ours.
                //
                // An envelope's `messageId` may well be nested on its line
                // (a producer property `{"messageId": …}` in `properties`:
                // until 2026-12-07 such valid lines were cut in pieces and
                // the file taken for a one-line stream: an outside audit):
                // it ends a broken value there only where no well-formed
                // value has it (after a closing bracket, in a string, at a
                // key's place) or on a line of its own.
                (4, b':')
                    if !self.resync_needs_key
                        || (known.contains(&self.resync_hash)
                            && (self.resync_own_line || self.resync_hash != MESSAGE_ID_HASH)) =>
                {
                    found = Some((usize::from(self.resync_len), self.resync_needs_key));
                    0
                }
                _ => 0,
            };
        }
        if b == b'{' && self.resync_stage == 0 && found.is_none() {
            self.resync_stage = 1;
            self.resync_len = 1;
            // Where a key must come (after an object's `{` or `,`) a `{`
            // is no more well-formed than after a closing bracket.
            // A line break is not a blank in `last`: across lines the line
            // rules above resync, and a broken first line of NDJSON stays
            // NDJSON.
            let at_key = self.objects & 1 == 1 && matches!(last, b'{' | b',');
            self.resync_needs_key = !matches!(last, b'}' | b']') && !self.in_string && !at_key;
            self.resync_own_line = matches!(last, b'\n' | b'\r');
            self.resync_gap = 0;
            self.resync_broke_line = false;
        }
        found
    }

    /// Reads `b`, at `i` in `chunk`, into the value's state: the index
    /// just past the value's last byte if it ends there.
    #[inline(always)]
    fn step(&mut self, i: usize, b: u8, array: bool) -> Option<usize> {
        if std::mem::take(&mut self.brace_at_line_start)
            && b == b'"'
            && i > 0
            && !self.brackets_only
        {
            return Some(i - 1);
        }
        let resync = std::mem::take(&mut self.resync);
        if std::mem::take(&mut self.line_start) {
            match b {
                b'{' if (resync || self.indented) && !self.brackets_only => return Some(i),
                b'{' => self.brace_at_line_start = true,
                b' ' | b'\t' => self.indented = true,
                _ => {}
            }
        }
        if b == b'\n' && !self.bare {
            self.line_start = true;
            self.resync = self.in_string || self.objects & 1 == 1;
        }
        if self.bare {
            let stop = matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'[' | b'"' | b',')
                || (array && b == b']');
            if stop {
                return Some(i);
            }
        } else if self.in_string {
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
                if self.depth == 0 {
                    return Some(i + 1);
                }
            }
        } else {
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.objects = self.objects << 1 | u128::from(b == b'{');
                }
                b'}' | b']' => {
                    self.depth -= 1;
                    self.objects >>= 1;
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// Whether a block without a `\n` has old Mac line ends: a `\r` between
/// one event's closing `}` and the next one's `{` (or the end of the
/// block), spaces and tabs aside. A `\r` alone elsewhere is whitespace
/// inside a value (JSON allows it between tokens), and a first line longer
/// than the block that holds one is not split there: it was, and the lines
/// after it went into the piece that followed, rejected over the limit.
fn ends_lines_with_carriage_returns(block: &[u8]) -> bool {
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    memchr::memchr_iter(b'\r', block).any(|at| {
        let before = block[..at].iter().rev().find(|b| !blank(b));
        let after = block[at..].iter().find(|b| !blank(b) && **b != b'\r');
        before == Some(&b'}') && matches!(after, Some(b'{') | None)
    })
}

/// What more of a live input would tell [`detect`] that its first block
/// does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undecided {
    /// The first value is still open and no line has ended: its end, or a
    /// line's, decides (a pipe's first write cut a value of a stream).
    FirstValueOpen,
    /// The first value is whole and nothing but blanks follow: the next
    /// bytes decide, a line end for NDJSON, a value for a stream; none
    /// within a pause means a stream (a writer of values sent one).
    FirstValueAlone,
}

/// The shape of a stream from its first block (see [`InputFormat::Auto`]).
fn detect(head: &[u8]) -> Result<InputFormat, String> {
    classify(head).map(|(format, _)| format)
}

/// [`detect`]'s answer, and whether more input could change it.
pub(crate) fn classify(head: &[u8]) -> Result<(InputFormat, Option<Undecided>), String> {
    let decided = |format| Ok((format, None));
    let head = head.strip_prefix(BYTE_ORDER_MARK).unwrap_or(head);
    let Some(start) = head.iter().position(|b| !b.is_ascii_whitespace()) else {
        return decided(InputFormat::Ndjson);
    };
    let rest = &head[start..];
    match rest[0] {
        b'<' => Err(
            "this looks like an XML capture (the legacy streaming API's XML or \
             NEWLINE_XML format), which ccvault does not import: capture the stream as JSON \
             (JSON or NEWLINE_JSON), see docs/INGEST.md"
                .into(),
        ),
        // An array of events holds objects (or arrays of them, batches):
        // `[INFO] connected`, a log line before NDJSON, is no array.
        // Until 2026-12-07 such a file was read as one, and its lines were
        // archived without their padding and its bad lines in pieces
        // (outside audit).
        b'[' => match rest[1..].iter().find(|b| !b.is_ascii_whitespace()) {
            None | Some(b'{' | b'[' | b']') => decided(InputFormat::JsonArray),
            Some(_) => decided(InputFormat::Ndjson),
        },
        b'{' => {
            let mut value = Value {
                brackets_only: true,
                ..Value::default()
            };
            // A first value found broken before a next one on its line
            // ([`End::Resync`]) says values follow each other on a line.
            let known: Vec<u32> = STREAM_KEYS.iter().map(|k| key_hash(k)).collect();
            let mut from = 0;
            let end = loop {
                match value.end_in(rest.get(from..).unwrap_or_default(), false, &known) {
                    Some(End::At(end)) => break Some(from + end),
                    Some(End::Resync {
                        through,
                        carry,
                        needs_key,
                    }) => {
                        from += through;
                        // Only on the first line: a broken first line of
                        // NDJSON followed by events is NDJSON.
                        if rest.get(..from).unwrap_or_default().contains(&b'\n') {
                            break None;
                        }
                        let next = rest.get(from - carry..from).unwrap_or_default();
                        let known = first_key(next).is_some_and(|k| STREAM_KEYS.contains(&k));
                        if !needs_key || known {
                            return decided(InputFormat::JsonStream);
                        }
                    }
                    None => break None,
                }
            };
            let Some(end) = end else {
                // Not closed within the block: a pretty-printed value longer
                // than the block when its first line is a lone `{` (as
                // jq, json.dumps and Allman-style writers begin one); else
                // one very long line, or a broken first line followed by
                // good ones.
                let first_line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
                if first_line.trim_ascii() == b"{" {
                    return decided(InputFormat::JsonStream);
                }
                let open = (!rest.contains(&b'\n')).then_some(Undecided::FirstValueOpen);
                return Ok((InputFormat::Ndjson, open));
            };
            let spans_lines = rest[..end].contains(&b'\n');
            // Nothing after it yet: a writer of values back to back sent
            // one (`curl` of the legacy streaming API through a pipe). An
            // NDJSON line is followed by its end, and a file of one value
            // and nothing else is that value either way; read as a line,
            // the stream was one line, rejected whole over the size limit.
            let block_ends_with_it = rest.len() == end;
            let next = rest[end..]
                .iter()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\r'));
            let next_on_same_line = next.is_some_and(|&b| b != b'\n');
            let format = if spans_lines || next_on_same_line || block_ends_with_it {
                InputFormat::JsonStream
            } else {
                InputFormat::Ndjson
            };
            let alone = (!spans_lines && next.is_none()).then_some(Undecided::FirstValueAlone);
            Ok((format, alone))
        }
        _ => decided(InputFormat::Ndjson),
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use super::*;

    /// (message, first line, last line, offset) of every message, read
    /// through a 3-byte buffer so values cross block boundaries.
    fn split(
        format: InputFormat,
        input: &[u8],
        cap: usize,
    ) -> Vec<(String, u64, u64, Option<u64>, bool)> {
        split_in_blocks(format, input, cap, 3)
    }

    /// [`split`] through a buffer of `block` bytes (auto-detection reads
    /// only the first block).
    fn split_in_blocks(
        format: InputFormat,
        input: &[u8],
        cap: usize,
        block: usize,
    ) -> Vec<(String, u64, u64, Option<u64>, bool)> {
        let mut r = BufReader::with_capacity(block, input);
        let mut s = Splitter::new(format, &mut r).unwrap().unwrap();
        // Each message is appended after the ones before it.
        let mut buf = b"before".to_vec();
        let mut out = Vec::new();
        let mut start = buf.len();
        while let Some(p) = s.next(&mut r, &mut buf, cap).unwrap() {
            let message = buf[start..].to_vec();
            start = buf.len();
            out.push((
                String::from_utf8(message).unwrap(),
                p.first_line,
                p.last_line,
                p.offset,
                p.too_long,
            ));
        }
        out
    }

    #[test]
    fn values_back_to_back_pretty_or_not_keep_their_bytes_and_position() {
        let input = b"{\"a\":1}{\"b\":\"}{\\\"\"}\n{\n  \"c\": [1, {\"d\": 2}]\n}\n  42 {\"e\":3";
        let got = split(InputFormat::JsonStream, input, 100);
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            texts,
            [
                "{\"a\":1}",
                "{\"b\":\"}{\\\"\"}",
                "{\n  \"c\": [1, {\"d\": 2}]\n}",
                "42",
                "{\"e\":3"
            ]
        );
        let lines: Vec<(u64, u64)> = got.iter().map(|g| (g.1, g.2)).collect();
        assert_eq!(lines, [(1, 1), (1, 1), (2, 4), (5, 5), (5, 5)]);
        let offsets: Vec<Option<u64>> = got.iter().map(|g| g.3).collect();
        assert_eq!(offsets, [Some(0), Some(7), Some(20), Some(47), Some(50)]);
        for (text, _, _, offset, _) in &got {
            let at = offset.unwrap() as usize;
            assert_eq!(&input[at..at + text.len()], text.as_bytes());
        }
    }

    #[test]
    fn a_broken_value_ends_where_a_line_starts_a_new_one() {
        // An unclosed object, a cut-off one, an unterminated string: each
        // is one message and the events after it are read.
        let input = b"{\"a\":1}\n{not json\n{\"b\":2}\n{\"c\":\n{\"d\":{\n  \"e\": 3\n}}\n{\"f\": \"open\n{\"g\":4}";
        let got = split(InputFormat::JsonStream, input, 100);
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            texts,
            [
                "{\"a\":1}",
                "{not json\n",
                "{\"b\":2}",
                "{\"c\":\n",
                "{\"d\":{\n  \"e\": 3\n}}",
                "{\"f\": \"open\n",
                "{\"g\":4}"
            ]
        );
        // Values of a writer that does not indent (`json.dumps(indent=0)`)
        // keep the `{` lines of their arrays' elements.
        let unindented =
            b"{\n\"a\": [\n{\n\"b\": 1\n}\n],\n\"c\": {\n\"d\": 2\n}\n}\n[\n{\n\"x\": 1\n}\n]";
        let got = split(InputFormat::JsonStream, unindented, 100);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].0, "[\n{\n\"x\": 1\n}\n]");
        // ...but not a value of such a writer cut inside a nested object.
        let got = split(
            InputFormat::JsonStream,
            b"{\n\"a\": {\n\"b\": [\n{\n{\n\"c\": 1\n}",
            100,
        );
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(texts, ["{\n\"a\": {\n\"b\": [\n{\n", "{\n\"c\": 1\n}"]);
        // Values cut off deeper: in a nested object or an array of a
        // one-line stream, and in an array of an indented capture.
        let cut =
            b"{\"a\":{\n{\"b\":1}\n{\"c\":[\n{\"d\":2}\n{\n  \"e\": [\n    {\n{\n  \"f\": 3\n}";
        let got = split(InputFormat::JsonStream, cut, 100);
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            texts,
            [
                "{\"a\":{\n",
                "{\"b\":1}",
                "{\"c\":[\n",
                "{\"d\":2}",
                "{\n  \"e\": [\n    {\n",
                "{\n  \"f\": 3\n}"
            ]
        );
        // The same in an array capture.
        let got = split(
            InputFormat::JsonArray,
            b"[{\"a\":1},\n{bad,\n{\"b\":2}]",
            100,
        );
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(texts, ["{\"a\":1}", "{bad,\n", "{\"b\":2}"]);
    }

    fn texts(got: &[(String, u64, u64, Option<u64>, bool)]) -> Vec<&str> {
        got.iter().map(|g| g.0.as_str()).collect()
    }

    #[test]
    fn a_value_cut_in_a_one_line_stream_ends_where_the_next_begins() {
        use InputFormat::*;
        // Cut outside a string, inside one, before a blank-separated value,
        // and in compact arrays: each broken part is one message, every
        // value after it is whole, read through a 3-byte buffer.
        let cases: [(InputFormat, &[u8], &[&str]); 5] = [
            (
                JsonStream,
                br#"{"A":{"x":1}}{"A":{"y":{"A":{"z":2}}{"A":{"w":3}}"#,
                &[
                    r#"{"A":{"x":1}}"#,
                    r#"{"A":{"y":"#,
                    r#"{"A":{"z":2}}"#,
                    r#"{"A":{"w":3}}"#,
                ],
            ),
            (
                JsonStream,
                br#"{"A":{"x":1}}{"A":{"s":"ab{"A":{"z":"q"}}{"A":{"w":"r"}}"#,
                &[
                    r#"{"A":{"x":1}}"#,
                    r#"{"A":{"s":"ab"#,
                    r#"{"A":{"z":"q"}}"#,
                    r#"{"A":{"w":"r"}}"#,
                ],
            ),
            (
                JsonStream,
                br#"{"A":1} {"A":"cut {"A":2} {"A":3}"#,
                &[r#"{"A":1}"#, r#"{"A":"cut "#, r#"{"A":2}"#, r#"{"A":3}"#],
            ),
            (
                JsonArray,
                br#"[{"A":{"x":1}},{"A":{"y":"q,{"A":{"z":2}}, {"A":{"w":3}}]"#,
                &[
                    r#"{"A":{"x":1}}"#,
                    r#"{"A":{"y":"q,"#,
                    r#"{"A":{"z":2}}"#,
                    r#"{"A":{"w":3}}"#,
                ],
            ),
            (
                JsonArray,
                br#"[{"A":{"x":1}},{"A":{"y":,{"A":{"z":2}},{"A":{"w":3}}]"#,
                &[
                    r#"{"A":{"x":1}}"#,
                    r#"{"A":{"y":,"#,
                    r#"{"A":{"z":2}}"#,
                    r#"{"A":{"w":3}}"#,
                ],
            ),
        ];
        for (format, input, want) in cases {
            let got = split(format, input, 100);
            assert_eq!(texts(&got), want, "{}", String::from_utf8_lossy(input));
            // Each message's offset is where its bytes are.
            for (text, _, _, offset, _) in &got {
                let at = offset.unwrap() as usize;
                assert_eq!(&input[at..at + text.len()], text.as_bytes());
            }
        }
        // A first value cut inside a string is detected as a stream, and
        // one cut before a value, when an event family's key follows.
        let input = br#"{"A":{"y":"q{"A":{"z":2}}{"A":{"w":3}}"#;
        assert_eq!(detect(input), Ok(JsonStream));
        assert_eq!(
            detect(br#"{"Interaction":{"Interaction":{"z":2}}}"#),
            Ok(JsonStream)
        );
        assert_eq!(detect(b"{\"x\":{\"A\":{\"z\":2}}}\n"), Ok(Ndjson));
        // The samples' malformed file: a broken first line, then NDJSON
        // whose lines start with an envelope's key.
        assert_eq!(
            detect(b"{\"Interaction\": {\"event\": \"Q\"\nnot json\n{\"messageId\":\"x\"}\n"),
            Ok(Ndjson)
        );
        let got = split_in_blocks(Auto, input, 100, 4096);
        assert_eq!(
            texts(&got),
            [r#"{"A":{"y":"q"#, r#"{"A":{"z":2}}"#, r#"{"A":{"w":3}}"#]
        );
        // A broken value past the cap: flagged, and the next read whole.
        let got = split(JsonStream, br#"{"A":1}{"A":"abcdefghijk{"A":2}{"A":3}"#, 8);
        assert_eq!(texts(&got)[2..], [r#"{"A":2}"#, r#"{"A":3}"#]);
        assert!(got[1].4 && got[1].0.len() == 9, "{got:?}");
    }

    #[test]
    fn well_formed_one_line_values_are_never_cut() {
        // Arrays of objects, keys like the family's in strings, escaped
        // quotes, `}{` in a string: none of them ends a value early.
        let input = br#"[{"A":{"l":[{"k":1},{"k":2}],"s":"x}{\"A\":1","t":"},{\"A\":"}},{"A":{"m":[{"k":3}, {"k":4}]}}]"#;
        let got = split(InputFormat::JsonArray, input, 1000);
        assert_eq!(got.len(), 2, "{got:?}");
        for (text, ..) in &got {
            serde_json::from_str::<serde_json::Value>(text).unwrap();
        }
        let input = br#"{"A":{"s":"a}{"}}{"A":{"s":"}{\"A\":"}}{"B":{"n":{"k":1}}}"#;
        let got = split(InputFormat::JsonStream, input, 1000);
        assert_eq!(got.len(), 3, "{got:?}");
        for (text, ..) in &got {
            serde_json::from_str::<serde_json::Value>(text).unwrap();
        }
        // An envelope's `properties` may nest a `messageId` (a producer's
        // property), in lines or back to back: those values are whole,
        // and lines of them are NDJSON (until 2026-12-07 each was cut in
        // pieces: an outside audit).
        let envelope = |i: u32| {
            format!(
                r#"{{"messageId":"CAEQAQ==","payload":"e30=","properties":{{"messageId":"orig-{i}"}},"publishTime":"2025-11-23T12:13:20.000Z"}}"#
            )
        };
        let lines: String = (0..3).map(|i| envelope(i) + "\n").collect();
        assert_eq!(detect(lines.as_bytes()), Ok(InputFormat::Ndjson));
        let back_to_back: String = (0..3).map(envelope).collect();
        for format in [InputFormat::Auto, InputFormat::JsonStream] {
            let got = split_in_blocks(format, back_to_back.as_bytes(), 1000, 4096);
            assert_eq!(
                texts(&got),
                (0..3).map(envelope).collect::<Vec<_>>(),
                "{format:?}"
            );
        }
    }

    /// A byte order mark between values (a file that has one joined to
    /// another) is a separator, whole or split between blocks; a stray
    /// byte of one is not, and is kept with what follows it.
    #[test]
    fn a_byte_order_mark_between_values_is_a_separator_and_its_bytes_alone_are_not() {
        let messages = |input: &[u8], block: usize| -> Vec<Vec<u8>> {
            let mut r = BufReader::with_capacity(block, input);
            let mut s = Splitter::new(InputFormat::JsonStream, &mut r)
                .unwrap()
                .unwrap();
            let mut buf = Vec::new();
            let mut out = Vec::new();
            while let Some(_p) = s.next(&mut r, &mut buf, 1000).unwrap() {
                out.push(std::mem::take(&mut buf));
            }
            out
        };
        for block in [2, 3, 4, 5, 64] {
            let got = messages(
                b"{\"A\":1}\xEF\xBB\xBF{\"A\":2}\n\xEF\xBB\xBF{\"A\":3}",
                block,
            );
            assert_eq!(
                got,
                [&b"{\"A\":1}"[..], b"{\"A\":2}", b"{\"A\":3}"],
                "block {block}"
            );
        }
        // Stray bytes of a mark within a block (one that ends inside what
        // could be a mark's start takes it for one: the block boundary
        // leaves no way to look further).
        for stray in [&b"\xBB"[..], b"\xBF", b"\xEF", b"\xEF\xBB"] {
            let input = [&b"{\"A\":1} "[..], stray, b"{\"A\":2}"].concat();
            let got = messages(&input, 64);
            let kept: usize = got.iter().map(Vec::len).sum();
            assert_eq!(kept, input.len() - 1, "{stray:?}: {got:?}");
        }
    }

    #[test]
    fn array_elements_are_the_messages() {
        let input = b"\xEF\xBB\xBF[\n  {\"a\": [1,2]},\n  {\"b\": \"],\"}\n]\n[{\"c\":1}] ";
        let got = split(InputFormat::JsonArray, input, 100);
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(texts, ["{\"a\": [1,2]}", "{\"b\": \"],\"}", "{\"c\":1}"]);
        assert_eq!(got[1].1, 3);
    }

    #[test]
    fn an_element_that_is_an_array_is_read_as_its_elements() {
        // A capture of batches: no `[`, `,` or `]` between them is a message.
        let input = b"[[{\"a\":1},{\"b\":2}],\n [{\"c\":3}], [], {\"d\":4}, [[5]]]";
        let got = split(InputFormat::JsonArray, input, 100);
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            texts,
            ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}", "{\"d\":4}", "5"]
        );
        assert_eq!(got[2].1, 2);
    }

    #[test]
    fn a_value_cut_in_an_indented_array_ends_before_the_next_element() {
        // `json.dumps(list, indent=2)`: each element's `{` alone on its
        // line, indented, its key on the next; the cut element is read up
        // to the next one's `{`, which starts the next message on its line.
        let input = b"[\n  {\n    \"Interaction\": {\n      \"a\": 1\n    }\n  },\n  {\n    \"Interaction\": {\n      \"b\": \n  {\r\n    \"Interaction\": {\"c\": [{\n  \"attachedDataKey\": 1}]}\n  }\n]";
        for block in [3, 7, 4096] {
            let got = split_in_blocks(InputFormat::JsonArray, input, 100, block);
            let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
            assert_eq!(
                texts,
                [
                    "{\n    \"Interaction\": {\n      \"a\": 1\n    }\n  }",
                    "{\n    \"Interaction\": {\n      \"b\": \n  ",
                    "{\r\n    \"Interaction\": {\"c\": [{\n  \"attachedDataKey\": 1}]}\n  }",
                ],
                "block {block}"
            );
            let lines: Vec<(u64, u64)> = got.iter().map(|g| (g.1, g.2)).collect();
            assert_eq!(lines, [(2, 6), (7, 10), (10, 13)], "block {block}");
            for (text, _, _, offset, _) in &got {
                let at = offset.unwrap() as usize;
                assert_eq!(&input[at..at + text.len()], text.as_bytes());
            }
        }
    }

    #[test]
    fn long_values_are_flagged_and_skipped_whole() {
        let got = split(
            InputFormat::JsonStream,
            b"{\"long\":\"abcdefgh\"} {\"s\":1}",
            8,
        );
        assert_eq!(got.len(), 2);
        assert!(got[0].4 && got[0].0.len() == 9);
        assert_eq!((got[1].0.as_str(), got[1].4), ("{\"s\":1}", false));
    }

    #[test]
    fn a_file_of_old_mac_line_ends_is_split_at_each_carriage_return() {
        let input = b"not json\r{\"a\":1}\r\r{\"b\":2}\r";
        let mut r = BufReader::new(&input[..]);
        let mut s = Splitter::new(InputFormat::Ndjson, &mut r).unwrap().unwrap();
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while let Some(p) = s.next(&mut r, &mut buf, 100).unwrap() {
            lines.push((
                String::from_utf8(std::mem::take(&mut buf)).unwrap(),
                p.first_line,
            ));
        }
        let want = [("not json", 1), ("{\"a\":1}", 2), ("", 3), ("{\"b\":2}", 4)];
        assert_eq!(lines, want.map(|(l, n)| (l.to_owned(), n)));
        // Auto-detection, whatever the first line, reads it the same way.
        let mut r = BufReader::new(&input[..]);
        let s = Splitter::new(InputFormat::Auto, &mut r).unwrap().unwrap();
        assert_eq!((s.json, s.line_end), (false, b'\r'));
        // A `\r` inside a value (whitespace to JSON) in a first line longer
        // than the block is not a line end.
        for head in [
            &b"{\"A\":{\r\"b\":\"xxxx"[..],
            b"{\"A\":{}\r,\"b\"",
            b"{\"A\":{}\r}",
        ] {
            assert!(!ends_lines_with_carriage_returns(head), "{head:?}");
        }
        for head in [&b"{\"A\":1} \r\r {\"B\""[..], b"x\r{}\r"] {
            assert!(ends_lines_with_carriage_returns(head), "{head:?}");
        }
    }

    #[test]
    fn detection() {
        use InputFormat::*;
        assert_eq!(detect(b"{\"a\":1}\n{\"a\":2}\n"), Ok(Ndjson));
        assert_eq!(detect(b"  {\"a\":1}  \r\n"), Ok(Ndjson));
        assert_eq!(detect(b"{\"a\":1}{\"a\":2}"), Ok(JsonStream));
        assert_eq!(detect(b"{\"a\":1} {\"a\":2}\n"), Ok(JsonStream));
        assert_eq!(detect(b"{\n  \"a\": 1\n}\n"), Ok(JsonStream));
        assert_eq!(detect(b"\xEF\xBB\xBF\n[{\"a\":1}]"), Ok(JsonArray));
        assert_eq!(detect(b"{\"a\": \n"), Ok(Ndjson));
        // A broken first line (a cut-off value) followed by NDJSON lines.
        assert_eq!(
            detect(b"{\"a\": {\"b\": \"x\"\nnot json\n{\"c\":1}\n{\"d\":2}\n"),
            Ok(Ndjson)
        );
        // A pretty-printed first value longer than the block.
        assert_eq!(
            detect(b"{\r\n  \"Interaction\": {\n    \"a\": 1,\n"),
            Ok(JsonStream)
        );
        assert_eq!(detect(b"  {\n  \"a\": \"very long"), Ok(JsonStream));
        assert_eq!(detect(b"{\"a\": \"very long"), Ok(Ndjson));
        // One whole value and nothing after it (a pipe's first write of a
        // stream of values): a line would have its end after it.
        assert_eq!(detect(b"{\"a\":1}"), Ok(JsonStream));
        assert_eq!(detect(b"\n {\"a\":{\"b\":[1]}}"), Ok(JsonStream));
        assert_eq!(detect(b"{\"a\":1} "), Ok(Ndjson));
        assert_eq!(detect(b"not json\n"), Ok(Ndjson));
        // Arrays of events, batches or none; a log line is no array.
        assert_eq!(detect(b"[\n  [ {\"a\":1}]]"), Ok(JsonArray));
        assert_eq!(detect(b"[]\n[{\"a\":1}]"), Ok(JsonArray));
        assert_eq!(detect(b"[\n"), Ok(JsonArray));
        assert_eq!(
            detect(b"[INFO] consumer connected\n{\"a\":1}\n"),
            Ok(Ndjson)
        );
        assert_eq!(detect(b"[2025-11-24 08:00] start\n{\"a\":1}\n"), Ok(Ndjson));
        assert_eq!(detect(b""), Ok(Ndjson));
        let why = detect(b"\n<event><x/></event>").unwrap_err();
        assert!(why.contains("XML"), "{why}");
    }
}
