//! Which segment holds an offset: the greatest base offset at or below it.
//!
//! The list is cached and re-read from the log directory only when an offset
//! falls in the last known segment, the only one a writer can have rolled
//! past since the last look.

use ccvault_log::{LogReader, Position};

#[derive(Debug, Clone, Default)]
pub struct SegmentMap {
    bases: Vec<u64>,
}

impl SegmentMap {
    pub fn new(reader: &LogReader) -> SegmentMap {
        SegmentMap {
            bases: reader.segments(),
        }
    }

    fn base_of(&self, offset: u64) -> Option<(u64, bool)> {
        let i = self.bases.partition_point(|&b| b <= offset);
        let i = i.checked_sub(1)?;
        Some((self.bases[i], i + 1 == self.bases.len()))
    }

    /// The log position of the record at `offset` whose byte position in
    /// its segment is `pos`.
    pub fn position(&mut self, reader: &LogReader, offset: u64, pos: u32) -> Position {
        match self.base_of(offset) {
            Some((base, false)) => Position { segment: base, pos },
            _ => {
                self.bases = reader.segments();
                let segment = self.base_of(offset).map_or(0, |(b, _)| b);
                Position { segment, pos }
            }
        }
    }
}
