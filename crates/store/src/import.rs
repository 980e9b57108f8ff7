//! Importing NDJSON streams (SPEC §2 shape 3): files or stdin, plain or gzip.
//!
//! Guarantees:
//! - Every non-blank line becomes an outcome: archived, quarantined,
//!   duplicate, or rejected with the line number. No line stops the import;
//!   only an I/O error of the archive does.
//! - Memory is bounded whatever the input: lines are read with a cap of
//!   `max_record_bytes` (longer ones are skipped to their newline and
//!   rejected), and batches are bounded in count and bytes.
//! - The progress callback reports a line as done only when its batch is
//!   durable (the acknowledgement contract).

use std::io::{BufRead, BufReader, Read};

use ccvault_log::SourceKind;
use flate2::read::MultiGzDecoder;

use crate::archive::{now_ms, Archive, Incoming, Outcome};
use crate::error::{io, Result};

const BATCH_LINES: usize = 8192;
const BATCH_BYTES: usize = 8 << 20;

/// A line that was not archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub source: String,
    pub line: u64,
    pub reason: String,
}

/// Totals of one import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub lines: u64,
    pub archived: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    pub rejected: Vec<Rejected>,
    pub payload_bytes: u64,
}

impl ImportSummary {
    pub fn absorb(&mut self, other: &ImportSummary) {
        self.lines += other.lines;
        self.archived += other.archived;
        self.quarantined += other.quarantined;
        self.duplicates += other.duplicates;
        self.rejected.extend(other.rejected.iter().cloned());
        self.payload_bytes += other.payload_bytes;
    }
}

/// Progress after a durable batch: the source, the last line now durable,
/// and the running totals.
pub struct Progress<'a> {
    pub source: &'a str,
    pub durable_through_line: u64,
    pub summary: &'a ImportSummary,
    pub input_bytes: u64,
}

/// Wraps `input` in a gzip decoder when it starts with the gzip magic.
pub fn maybe_gunzip<'a>(input: impl Read + 'a) -> Result<Box<dyn BufRead + 'a>> {
    let mut buffered = BufReader::with_capacity(1 << 20, input);
    let head = buffered
        .fill_buf()
        .map_err(io("cannot read input", "<input>"))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(buffered),
        )))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Reads one line into `buf` (without its `\n` or `\r\n`), keeping at most
/// `cap + 1` bytes; returns (bytes consumed, whether the line was longer than
/// `cap`), or `None` at end of input.
fn read_capped_line(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<(u64, bool)>> {
    buf.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            if consumed == 0 {
                return Ok(None);
            }
            break;
        }
        let (take, found_newline) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let content = &chunk[..if found_newline { take - 1 } else { take }];
        if !too_long {
            let room = (cap + 1).saturating_sub(buf.len());
            buf.extend_from_slice(&content[..content.len().min(room)]);
            too_long = buf.len() > cap;
        }
        input.consume(take);
        consumed += take as u64;
        if found_newline {
            break;
        }
    }
    if !too_long && buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some((consumed, too_long)))
}

/// Imports one NDJSON stream into the archive.
pub fn import_stream(
    archive: &mut Archive,
    input: impl Read,
    source_kind: SourceKind,
    source: &str,
    max_record_bytes: usize,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportSummary> {
    let mut input = maybe_gunzip(input)?;
    let mut summary = ImportSummary::default();
    // Lines of the batch live in one buffer; `spans` index into it.
    let mut data: Vec<u8> = Vec::with_capacity(BATCH_BYTES + max_record_bytes);
    let mut spans: Vec<(usize, usize, u64)> = Vec::with_capacity(BATCH_LINES);
    let mut line_buf = Vec::new();
    let mut line_no = 0u64;
    let mut input_bytes = 0u64;
    loop {
        let next = read_capped_line(&mut input, &mut line_buf, max_record_bytes)
            .map_err(io("cannot read", source))?;
        let done = next.is_none();
        if let Some((consumed, too_long)) = next {
            line_no += 1;
            input_bytes += consumed;
            if too_long {
                summary.lines += 1;
                summary.rejected.push(Rejected {
                    source: source.to_owned(),
                    line: line_no,
                    reason: format!(
                        "line exceeds the record size limit of {max_record_bytes} bytes"
                    ),
                });
            } else if !line_buf.iter().all(u8::is_ascii_whitespace) {
                let start = data.len();
                data.extend_from_slice(&line_buf);
                spans.push((start, data.len(), line_no));
            }
        }
        if spans.len() >= BATCH_LINES || data.len() >= BATCH_BYTES || (done && !spans.is_empty()) {
            let ingest_ms = now_ms();
            let batch: Vec<Incoming> = spans
                .iter()
                .map(|&(s, e, line)| Incoming {
                    raw: &data[s..e],
                    source_kind,
                    source,
                    line,
                    message_id: None,
                    ingest_ms,
                })
                .collect();
            let report = archive.append_batch(&batch)?;
            for ((s, e, line), outcome) in spans.iter().zip(&report.outcomes) {
                summary.lines += 1;
                match outcome {
                    Outcome::Archived { .. } => {
                        summary.archived += 1;
                        summary.payload_bytes += (e - s) as u64;
                    }
                    Outcome::Quarantined { .. } => {
                        summary.quarantined += 1;
                        summary.payload_bytes += (e - s) as u64;
                    }
                    Outcome::Duplicate { .. } => summary.duplicates += 1,
                    Outcome::Rejected { reason } => summary.rejected.push(Rejected {
                        source: source.to_owned(),
                        line: *line,
                        reason: reason.clone(),
                    }),
                }
            }
            let through = spans.last().map_or(line_no, |s| s.2);
            progress(&Progress {
                source,
                durable_through_line: through,
                summary: &summary,
                input_bytes,
            });
            data.clear();
            spans.clear();
        }
        if done {
            break;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<(Vec<u8>, bool)> {
        let mut r: Box<dyn BufRead> = Box::new(BufReader::with_capacity(4, input));
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some((_, long)) = read_capped_line(&mut r, &mut buf, cap).unwrap() {
            out.push((buf.clone(), long));
        }
        out
    }

    #[test]
    fn capped_lines_split_on_newlines_and_flag_long_ones() {
        let got = lines(b"ab\r\ncdefgh\n\nxyz", 4);
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), false),
                (b"cdefg".to_vec(), true),
                (b"".to_vec(), false),
                (b"xyz".to_vec(), false),
            ]
        );
    }
}
