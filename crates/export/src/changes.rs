//! The agent status changes an export has seen, saved beside its
//! checkpoint (`_ccvault_agent_changes`): where each is in the log, so
//! that an incremental run after new status changes, or a later t(e),
//! reads those records and the new ones instead of the whole log (the
//! spans need every change).
//!
//! Invariants: the file lists, in offset order, the offset and segment
//! position of every record below the checkpoint's `eventsEnd` that the
//! agent states took as a status change, 12 bytes each (offset `u64`,
//! position `u32`, little-endian); the checkpoint names its count and an
//! xxh3 hash ([`ChangesRef`]) and is replaced after it, so a list that does
//! not match its checkpoint (a crash between the two, a damaged file, a
//! directory restored in parts) is never used: the run reads the whole
//! log instead. The leading `_` keeps engines from reading it as data.

use std::path::Path;

use ccvault_store::Hit;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::checkpoint::replace_file;
use crate::error::{io, Result};

pub const CHANGES_FILE: &str = "_ccvault_agent_changes";
const ENTRY: usize = 12;

/// What the checkpoint says of the saved list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesRef {
    pub count: u64,
    pub hash: String,
}

fn encode(hits: &[Hit]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hits.len() * ENTRY);
    for h in hits {
        out.extend_from_slice(&h.offset.to_le_bytes());
        out.extend_from_slice(&h.pos.to_le_bytes());
    }
    out
}

fn hash(bytes: &[u8]) -> String {
    format!("{:032x}", xxh3_128(bytes))
}

/// Saves `hits` (in offset order) as the list of `dir`, atomically; a
/// list already saved as it is stays untouched (a run that changes nothing
/// writes nothing).
pub fn store(dir: &Path, hits: &[Hit]) -> Result<ChangesRef> {
    let bytes = encode(hits);
    let same = std::fs::read(dir.join(CHANGES_FILE)).is_ok_and(|old| old == bytes);
    if !same {
        replace_file(dir, CHANGES_FILE, &bytes)?;
    }
    Ok(ChangesRef {
        count: hits.len() as u64,
        hash: hash(&bytes),
    })
}

/// The saved list of `dir` when it is the one `want` names; `None` when it
/// is missing or another.
pub fn load(dir: &Path, want: &ChangesRef) -> Result<Option<Vec<Hit>>> {
    let path = dir.join(CHANGES_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("cannot read", &path)(e)),
    };
    let count = bytes.len() / ENTRY;
    if bytes.len() % ENTRY != 0 || count as u64 != want.count || hash(&bytes) != want.hash {
        return Ok(None);
    }
    let hits = bytes
        .chunks_exact(ENTRY)
        .filter_map(|e| {
            let (offset, pos) = e.split_at(8);
            Some(Hit {
                offset: u64::from_le_bytes(offset.try_into().ok()?),
                pos: u32::from_le_bytes(pos.try_into().ok()?),
            })
        })
        .collect::<Vec<_>>();
    Ok((hits.len() == count).then_some(hits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_used_only_with_its_own_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let hits = vec![
            Hit { offset: 3, pos: 0 },
            Hit {
                offset: u64::MAX - 1,
                pos: u32::MAX,
            },
        ];
        let r = store(dir.path(), &hits).unwrap();
        assert_eq!(r.count, 2);
        assert_eq!(load(dir.path(), &r).unwrap(), Some(hits.clone()));
        let other = store(dir.path(), &hits[..1]).unwrap();
        assert_eq!(load(dir.path(), &r).unwrap(), None);
        assert_eq!(load(dir.path(), &other).unwrap(), Some(hits[..1].to_vec()));
        std::fs::write(dir.path().join(CHANGES_FILE), b"garbage").unwrap();
        assert_eq!(load(dir.path(), &other).unwrap(), None);
        std::fs::remove_file(dir.path().join(CHANGES_FILE)).unwrap();
        assert_eq!(load(dir.path(), &other).unwrap(), None);
    }
}
