//! Telling when a live input (a pipe, a FIFO, a terminal) has paused, so
//! that what arrived before the pause is made durable and acknowledged
//! without waiting for more.
//!
//! An import gathers up to 16,384 lines for one `fdatasync`. Reading a file,
//! that is right. Reading a pipe whose writer sends a line a second, it held
//! every line unacknowledged, and lost with a killed process, until 16,384
//! had come or the writer closed the pipe.
//!
//! Guarantees:
//! - [`PauseProbe::paused`] is true only when reading the next line would
//!   wait: no whole line is buffered unconsumed (the start of one may be:
//!   a writer that sends a line in two writes, or a buffered writer that
//!   flushes mid-line, must not hold back the lines before it) and nothing
//!   arrived at the descriptor within the wait. A false answer costs
//!   nothing but a batch cut short, so errors of `poll(2)` answer "not
//!   paused".
//! - An input that never pauses for the wait (a regular file, `zcat` at full
//!   speed) is batched exactly as before.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long an input must stay silent to count as paused. Long enough that
/// a writer at full speed (a decompressor, a copy) never looks paused; short
/// against the `fdatasync` that follows.
pub const PAUSE: Duration = Duration::from_millis(50);

/// A buffered reader of a descriptor that keeps count of its unconsumed
/// bytes that end a line, for its [`PauseProbe`].
pub struct WatchedInput<R> {
    inner: BufReader<R>,
    buffered: Arc<AtomicUsize>,
}

/// The bytes of `unconsumed` through its last line end (0 when it holds
/// none: at most the start of a line).
fn whole_lines(unconsumed: &[u8]) -> usize {
    memchr::memrchr(b'\n', unconsumed).map_or(0, |at| at + 1)
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
            .store(whole_lines(self.inner.buffer()), Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Read> BufRead for WatchedInput<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let buf = self.inner.fill_buf()?;
        self.buffered.store(whole_lines(buf), Ordering::Relaxed);
        Ok(buf)
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.buffered
            .store(whole_lines(self.inner.buffer()), Ordering::Relaxed);
    }
}

impl PauseProbe {
    /// Whether the input has paused: no whole line buffered, and nothing
    /// readable (no data, no end of input) within `wait`.
    pub fn paused(&self, wait: Duration) -> bool {
        if self.buffered.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let mut fds = [libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        let millis = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is one valid pollfd for the duration of the call.
        #[allow(unsafe_code)]
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, millis) };
        ready == 0
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

    #[test]
    fn the_start_of_a_line_buffered_is_a_pause_once_the_pipe_is_silent() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (mut input, probe) = WatchedInput::new(64, reader);
        let wait = Duration::from_millis(10);
        writer.write_all(b"one\ntwo\nthr").unwrap();
        let mut line = Vec::new();
        input.read_until(b'\n', &mut line).unwrap();
        assert!(!probe.paused(wait), "a whole line is buffered");
        input.read_until(b'\n', &mut line).unwrap();
        assert_eq!(line, b"one\ntwo\n");
        assert!(probe.paused(wait), "only the start of a line is buffered");
        writer.write_all(b"ee\n").unwrap();
        assert!(!probe.paused(wait), "more of it came");
        let mut rest = Vec::new();
        input.read_until(b'\n', &mut rest).unwrap();
        assert_eq!(rest, b"three\n");
        assert!(probe.paused(wait), "everything was read");
    }

    #[test]
    fn a_regular_file_never_pauses() {
        let file = tempfile::tempfile().unwrap();
        let (_input, probe) = WatchedInput::new(4, file);
        assert!(!probe.paused(Duration::from_millis(10)));
    }
}
