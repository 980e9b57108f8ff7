//! Telling when a live input (a pipe, a FIFO, a terminal) has paused, so
//! that what arrived before the pause is made durable and acknowledged
//! without waiting for more.
//!
//! An import gathers up to 16,384 lines for one `fdatasync`. Reading a file,
//! that is right. Reading a pipe whose writer sends a line a second, it held
//! every line unacknowledged, and lost with a killed process, until 16,384
//! had come or the writer closed the pipe.
//!
//! Two layers: [`WatchedInput`] buffers the descriptor and its
//! [`PauseProbe`] sees how much it holds and polls the descriptor;
//! [`LineWatch`] sits on top, over what the importer reads (the
//! decompressed bytes of a gzip feed), and decides.
//!
//! Guarantees:
//! - [`LineWatch::paused`] is true only when reading the next message would
//!   wait: no whole one is buffered (the start of one may be: a writer that
//!   sends a line in two writes, or a buffered writer that flushes mid-line,
//!   does not hold back the lines before it, even when the rest of the line
//!   comes within the wait) and nothing more arrived within the wait. What
//!   arrives meanwhile is taken in, never waited for. A false answer costs
//!   nothing but a batch cut short, so errors of `poll(2)` answer "not
//!   paused".
//! - A whole message is an NDJSON line's end, or, in a JSON stream or
//!   array (whose values need not end lines), buffered bytes that end in a
//!   value's closing `}` or `]` (a `,` after it in an array): a value
//!   flushed whole is taken without waiting, one flushed in parts waits for
//!   the pause. (A `}` that ends a write inside a string reads as a value's
//!   end: the values before it wait for the rest, never longer.)
//! - Each byte is searched for a line end once, and the watch reads ahead
//!   at most [`TAKE`] bytes beyond what the importer consumed: a line
//!   without an end, or a capture of values on one line, through a pipe is
//!   read in linear time and bounded memory.
//! - A gzip feed flushed by its writer is read on without waiting while
//!   whole lines of it are decompressed (each line was its own batch, and
//!   its own `fdatasync`: ~50 lines a second).
//! - An input that never pauses for the wait (a regular file, `zcat` at full
//!   speed) is batched exactly as before.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an input must stay silent to count as paused. Long enough that
/// a writer at full speed (a decompressor, a copy) never looks paused; short
/// against the `fdatasync` that follows.
pub const PAUSE: Duration = Duration::from_millis(50);

/// A buffered reader of a descriptor that keeps count of its unconsumed
/// bytes, for its [`PauseProbe`].
pub struct WatchedInput<R> {
    inner: BufReader<R>,
    buffered: Arc<AtomicUsize>,
}

/// Says whether a [`WatchedInput`] has paused. It holds the descriptor's
/// number, not the descriptor: asked after the input was dropped, `poll(2)`
/// answers `POLLNVAL`, which reads as "not paused".
#[derive(Clone, Debug)]
pub struct PauseProbe {
    fd: RawFd,
    buffered: Arc<AtomicUsize>,
}

impl<R: Read + AsFd> WatchedInput<R> {
    pub fn new(capacity: usize, inner: R) -> (Self, PauseProbe) {
        let buffered = Arc::new(AtomicUsize::new(0));
        let probe = PauseProbe {
            fd: inner.as_fd().as_raw_fd(),
            buffered: Arc::clone(&buffered),
        };
        let input = WatchedInput {
            inner: BufReader::with_capacity(capacity, inner),
            buffered,
        };
        (input, probe)
    }
}

impl<R: Read> Read for WatchedInput<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.buffered
            .store(self.inner.buffer().len(), Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Read> BufRead for WatchedInput<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let buf = self.inner.fill_buf()?;
        self.buffered.store(buf.len(), Ordering::Relaxed);
        Ok(buf)
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.buffered
            .store(self.inner.buffer().len(), Ordering::Relaxed);
    }
}

impl PauseProbe {
    /// Whether the input has paused: nothing buffered, and nothing
    /// readable (no data, no end of input) within `wait`.
    pub fn paused(&self, wait: Duration) -> bool {
        self.buffered.load(Ordering::Relaxed) == 0 && !self.readable_within(wait)
    }

    /// Whether the descriptor has something to read (data, the end of
    /// input, an error) within `wait`: a read would not wait.
    fn readable_within(&self, wait: Duration) -> bool {
        let mut fds = [libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        let millis = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is one valid pollfd for the duration of the call.
        #[allow(unsafe_code)]
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, millis) };
        ready != 0
    }
}

/// Bytes read from below at once: at least a decompressing reader's own
/// buffer (1 MiB), so that one read empties it and what it held is seen.
const TAKE: usize = 2 << 20;

/// The reader an importer reads a live input through: it keeps what it
/// read in a buffer of its own, so that it can tell whether a whole line
/// is buffered, and take in what arrives without waiting for more
/// ([`LineWatch::paused`]).
pub struct LineWatch<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    /// `buf[pos..searched]` holds no line end: where the next search for
    /// one starts (each byte is searched once).
    searched: usize,
    /// Where one read lands before it joins `buf` (kept: zeroed once).
    scratch: Vec<u8>,
    probe: PauseProbe,
    /// `inner` decompresses: the bytes the probe sees buffered may give
    /// nothing yet (the end of a flush), and reading them could wait.
    decompressing: bool,
    /// The error a read made while looking for a pause, for the reader of
    /// the bytes once it has read those before it: a gzip feed's damage or
    /// trailing bytes, which the decoder says once (until 2026-12-07 the
    /// look dropped it, and the feed ended there as if complete: an
    /// outside audit).
    failed: Option<std::io::Error>,
}

impl<R: Read> LineWatch<R> {
    /// `inner` reads the input `probe` watches, decompressing it or not.
    pub fn new(inner: R, probe: PauseProbe, decompressing: bool) -> Self {
        LineWatch {
            inner,
            buf: Vec::new(),
            pos: 0,
            searched: 0,
            scratch: Vec::new(),
            probe,
            decompressing,
            failed: None,
        }
    }

    /// Whether the input has paused (see the module's guarantees); `json`:
    /// its messages are JSON values, not lines.
    pub fn paused(&mut self, wait: Duration, json: bool) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.holds_whole_message(json) || self.buf.len() - self.pos >= TAKE {
                return false;
            }
            // Below, bytes already read from the descriptor, or bytes
            // arriving within the wait: taken in without waiting. Bytes
            // of a compressed feed already read may decompress to nothing
            // yet (the end of a writer's flush), and reading them would
            // wait for more: only what arrives counts there.
            let left = deadline.saturating_duration_since(Instant::now());
            // With the wait run out, the descriptor is still asked once
            // (without waiting): a thread the machine held up past the
            // deadline would otherwise call bytes or the end of input
            // already there a pause (a loaded CI run met it).
            let below = !self.decompressing && self.probe.buffered.load(Ordering::Relaxed) != 0;
            if !below && !self.probe.readable_within(left) {
                return true;
            }
            match self.take_more() {
                Ok(0) => return false,
                Err(e) => {
                    self.failed = Some(e);
                    return false;
                }
                Ok(_) => {}
            }
        }
    }

    /// The bytes read and not consumed yet.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more of the input into the buffer: waiting for it (`wait`
    /// `None`), or only what arrives within `wait` (`Ok(None)`: nothing
    /// did). `Ok(Some(0))` at the end of input.
    pub fn read_more(&mut self, wait: Option<Duration>) -> std::io::Result<Option<usize>> {
        if let Some(wait) = wait {
            let below = !self.decompressing && self.probe.buffered.load(Ordering::Relaxed) != 0;
            if !below && !self.probe.readable_within(wait) {
                return Ok(None);
            }
        }
        self.take_more().map(Some)
    }

    /// Whether the unconsumed bytes hold a whole message (see the module's
    /// guarantees).
    fn holds_whole_message(&mut self, json: bool) -> bool {
        if json {
            let unread = &self.buf[self.pos..];
            let mut end = unread.iter().rev().skip_while(|b| b.is_ascii_whitespace());
            return match end.next() {
                Some(b'}' | b']') => true,
                Some(b',') => matches!(end.find(|b| !b.is_ascii_whitespace()), Some(b'}' | b']')),
                _ => false,
            };
        }
        let from = self.searched.max(self.pos);
        match memchr::memchr(b'\n', &self.buf[from..]) {
            Some(_) => true,
            None => {
                self.searched = self.buf.len();
                false
            }
        }
    }

    /// Appends one read of `inner` to the buffer (what is there: the caller
    /// knows a read would not wait); 0 at the end of input.
    fn take_more(&mut self) -> std::io::Result<usize> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.searched = self.searched.saturating_sub(self.pos);
            self.pos = 0;
        }
        if self.scratch.is_empty() {
            self.scratch = vec![0; TAKE];
        }
        let n = loop {
            match self.inner.read(&mut self.scratch) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }
}

impl<R: Read> Read for LineWatch<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let mut available = self.fill_buf()?;
            available.read(out)?
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for LineWatch<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            self.searched = 0;
            self.take_more()?;
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_pipe_is_paused_only_when_nothing_is_buffered_or_waiting() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (mut input, probe) = WatchedInput::new(4, reader);
        let wait = Duration::from_millis(10);
        assert!(probe.paused(wait), "an empty pipe with its writer open");

        writer.write_all(b"abcdef\n").unwrap();
        assert!(!probe.paused(wait), "bytes are waiting in the pipe");
        assert_eq!(input.fill_buf().unwrap(), b"abcd");
        assert!(!probe.paused(wait), "bytes are buffered, unconsumed");
        input.consume(4);
        assert!(!probe.paused(wait), "the rest is still in the pipe");
        let mut rest = Vec::new();
        input.read_until(b'\n', &mut rest).unwrap();
        assert_eq!(rest, b"ef\n");
        assert!(probe.paused(wait), "everything was read");

        drop(writer);
        assert!(!probe.paused(wait), "the end of input is not a pause");
    }

    /// A line in two writes, the second within the wait: the lines before
    /// it are a pause as soon as the pipe is silent with only the start
    /// of a line buffered, and what came meanwhile is taken in.
    #[test]
    fn the_start_of_a_line_buffered_is_a_pause_once_the_pipe_is_silent() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (input, probe) = WatchedInput::new(64, reader);
        let mut watch = LineWatch::new(input, probe, false);
        let wait = Duration::from_millis(20);
        writer.write_all(b"one\ntwo\nthr").unwrap();
        let mut line = Vec::new();
        watch.read_until(b'\n', &mut line).unwrap();
        assert!(!watch.paused(wait, false), "a whole line is buffered");
        watch.read_until(b'\n', &mut line).unwrap();
        assert_eq!(line, b"one\ntwo\n");
        assert!(
            watch.paused(wait, false),
            "only the start of a line is buffered"
        );
        // More of the line comes while the watch waits: taken in, and the
        // line still unfinished is a pause.
        let more = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            writer.write_all(b"ee").unwrap();
            writer
        });
        assert!(watch.paused(Duration::from_millis(200), false));
        let mut writer = more.join().unwrap();
        assert_eq!(watch.fill_buf().unwrap(), b"three");
        writer.write_all(b"\nfour\n").unwrap();
        assert!(!watch.paused(wait, false), "its end came");
        let mut rest = Vec::new();
        watch.read_until(b'\n', &mut rest).unwrap();
        assert_eq!(rest, b"three\n");
        assert!(!watch.paused(wait, false), "another whole line");
        watch.read_until(b'\n', &mut rest).unwrap();
        assert!(watch.paused(wait, false), "everything was read");
        drop(writer);
        assert!(
            !watch.paused(wait, false),
            "the end of input is not a pause"
        );
    }

    /// A gzip feed flushed by its writer: while whole lines of it are
    /// decompressed, no pause (each line was a batch of its own).
    #[test]
    fn a_flushed_gzip_feed_is_read_on_while_it_holds_whole_lines() {
        use flate2::write::GzEncoder;
        let (reader, writer) = std::io::pipe().unwrap();
        let mut gz = GzEncoder::new(writer, flate2::Compression::fast());
        for i in 0..100 {
            writeln!(gz, "line {i}").unwrap();
        }
        gz.flush().unwrap();
        // Opening the decoder reads the member's header.
        let (input, probe) = WatchedInput::new(1 << 16, reader);
        let decoded = BufReader::with_capacity(1 << 20, crate::gzip::GzipMembers::new(input));
        let mut watch = LineWatch::new(decoded, probe, true);
        let wait = Duration::from_millis(20);
        let mut lines = 0;
        let mut line = Vec::new();
        // The first read waits for the feed; then every line is there.
        watch.read_until(b'\n', &mut line).unwrap();
        lines += 1;
        while lines < 100 {
            assert!(!watch.paused(wait, false), "paused after {lines} lines");
            watch.read_until(b'\n', &mut line).unwrap();
            lines += 1;
        }
        assert!(watch.paused(wait, false), "all 100 read: the feed waits");
        drop(gz);
    }

    /// JSON values back to back need not end lines: a value flushed whole
    /// is taken without waiting, one flushed in parts is a pause once the
    /// pipe is silent.
    #[test]
    fn json_values_are_whole_at_their_closing_brace_not_at_a_line_end() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (input, probe) = WatchedInput::new(64, reader);
        let mut watch = LineWatch::new(input, probe, false);
        let wait = Duration::from_millis(20);
        writer.write_all(br#"{"a":1}{"b":[2]} "#).unwrap();
        assert_eq!(watch.fill_buf().unwrap(), br#"{"a":1}{"b":[2]} "#);
        watch.consume(7);
        assert!(!watch.paused(wait, true), "a whole value is buffered");
        watch.consume(10);
        assert!(watch.paused(wait, true), "everything was read");
        writer.write_all(br#"[{"c":3},"#).unwrap();
        assert!(
            !watch.paused(wait, true),
            "an array's element and its comma"
        );
        watch.consume(9);
        writer.write_all(br#"{"d":"#).unwrap();
        assert!(watch.paused(wait, true), "only the start of a value");
        writer.write_all(br#"4}]"#).unwrap();
        assert!(!watch.paused(wait, true), "its end came");
        drop(writer);
    }

    /// A line without an end, arriving faster than it is read, is not read
    /// whole into memory by the watch: it reads ahead at most [`TAKE`].
    #[test]
    fn the_watch_reads_ahead_a_bounded_amount_of_a_line_without_an_end() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (input, probe) = WatchedInput::new(1 << 16, reader);
        let mut watch = LineWatch::new(input, probe, false);
        let feed = std::thread::spawn(move || {
            let chunk = vec![b'x'; 1 << 16];
            // Until the reader goes away (20 MiB at most).
            for _ in 0..320 {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        assert!(!watch.fill_buf().unwrap().is_empty());
        for json in [false, true] {
            assert!(!watch.paused(Duration::from_millis(500), json));
            assert!(
                watch.buf.len() <= 2 * TAKE,
                "the watch read {} bytes ahead",
                watch.buf.len()
            );
        }
        drop(watch);
        feed.join().unwrap();
    }

    #[test]
    fn a_regular_file_never_pauses() {
        let file = tempfile::tempfile().unwrap();
        let (_input, probe) = WatchedInput::new(4, file);
        assert!(!probe.paused(Duration::from_millis(10)));
    }
}
