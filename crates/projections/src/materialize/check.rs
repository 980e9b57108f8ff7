//! `verify` of the projections: they are recomputed from the log, up to the
//! record the stored ones have applied, into a scratch file, and compared
//! with the stored ones table by table, entry by entry, key and value bytes.
//!
//! Why a recompute: redb keeps no checksum of the values, so a flipped bit in
//! a stored summary that still decodes (a duration, a count) would give wrong
//! numbers and no error. The tables are a function of the records below
//! `consumed` (the module header of `materialize`), so a rebuild over those
//! records is what they must equal, whatever mix of catch-ups wrote them.
//!
//! Guarantees:
//! - Reads the stored file through one read transaction of a read-only open
//!   (a file left needing repair is opened as any read opens it): a process
//!   updating it meanwhile is neither stopped nor seen.
//! - Leaves nothing in the archive: the scratch file is unlinked as soon as
//!   redb has it open, so even a killed check leaves no file behind. Where
//!   the file system refuses it (full, read-only, another user's archive),
//!   the check says it did not compare, and why.
//! - Clean exactly when every table (`meta` included) holds the same keys
//!   with the same values as the recompute; otherwise each table that
//!   differs is named with its count of differing entries and the first one.

use std::cmp::Ordering;
use std::path::Path;
use std::time::Instant;

use ccvault_store::{ArchiveReader, Layout};
use redb::{ReadTransaction, ReadableTable, TableDefinition};

use super::schema::{self, create_private, scratch_builder, Anchor, SkippedDamage};
use super::{
    guarded, refused_write, scratch_path, AtPath, Db, ProjectionError, Projections, RebuildOptions,
    Result, PROJECTION_VERSION,
};

/// What a check of the stored projections found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// There is no projections file (nothing has read the archive yet).
    NotBuilt,
    /// The file is of another projection version: the next read rebuilds it,
    /// so there is nothing of this version to check.
    OtherVersion(Option<i64>),
    /// The file applied records the log no longer holds (a lost tail, and
    /// perhaps other records at their offsets since): the next read
    /// rebuilds it, as the writer that recovered the log said, so there is
    /// nothing of the log's to compare it with. Below which offset it had
    /// applied.
    Superseded { consumed: u64 },
    /// Not compared, and not clean: no loss of the log's records was
    /// recorded since they were made, yet the record they stopped at is
    /// not the one the log holds there (their `meta` damaged, or another
    /// archive's file); what.
    NotOfThisLog(String),
    /// Not compared: they have applied records below `consumed`, past the
    /// index commit the check's reader sees (another process, `serve`,
    /// caught them up after the reader opened); a check with a newer
    /// reader compares them.
    Ahead { consumed: u64 },
    /// Compared with a recompute over the records below `consumed`.
    Compared {
        consumed: u64,
        /// One line per table that differs (empty: clean).
        problems: Vec<String>,
    },
    /// The file cannot be read (the reason says `run ccvault rebuild`).
    Unreadable(String),
    /// Not compared: the recompute found a record the index places in no
    /// interaction although it is an event of one (the index is damaged in
    /// a way its own check did not see); what and where.
    IndexIncomplete(String),
    /// Not compared: the stored file could not be opened for a reason that
    /// is not damage, or the file system refused the recompute's scratch
    /// file (full, read-only, not this user's to write); why.
    NotChecked(String),
}

impl Checked {
    pub fn is_clean(&self) -> bool {
        match self {
            Checked::Compared { problems, .. } => problems.is_empty(),
            Checked::Unreadable(_) | Checked::NotOfThisLog(_) | Checked::IndexIncomplete(_) => {
                false
            }
            Checked::NotBuilt
            | Checked::OtherVersion(_)
            | Checked::Superseded { .. }
            | Checked::Ahead { .. }
            | Checked::NotChecked(_) => true,
        }
    }
}

impl Projections {
    /// Recomputes the projections of the archive in `dir` from `reader` (up
    /// to the record the stored ones have applied) and compares them with
    /// the stored ones.
    pub fn check(dir: &Path, reader: &mut ArchiveReader, opts: RebuildOptions) -> Result<Checked> {
        let path = Layout::new(dir).projections_path();
        if !path.exists() {
            return Ok(Checked::NotBuilt);
        }
        // Read-only, so that a process updating the file meanwhile is not
        // stopped; a file that cannot be opened so (left needing repair) is
        // opened as every read opens it, which repairs it (in memory where
        // the file system refuses the write).
        let stored = match Projections::open_read_only_in(dir) {
            Err(ProjectionError::Redb { .. } | ProjectionError::Io { .. }) => {
                match Projections::open(dir) {
                    Err(e @ ProjectionError::Damaged { .. }) => Err(e),
                    Err(e) => return Ok(Checked::NotChecked(ccvault_store::display_chain(&e))),
                    Ok(p) => Ok(p),
                }
            }
            other => other,
        };
        let stored = match stored {
            Ok(stored) => stored,
            Err(e @ ProjectionError::Damaged { .. }) => {
                return Ok(Checked::Unreadable(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        // What was applied, read in the snapshot the tables are compared in.
        // `stored` outlives the snapshot: redb closes the file when its
        // database is dropped, and a read transaction still open then
        // fails ("Database has been closed"; the repaired file of a
        // killed catch-up met it).
        let snapshot = {
            guarded(&path, || {
                let txn = stored.read_txn()?;
                let (version, consumed, anchor, skipped) = match txn.open_table(schema::META) {
                    Ok(meta) => {
                        let get = |k: &str| -> Result<Option<i64>> {
                            Ok(meta.get(k).at(&path)?.map(|v| v.value()))
                        };
                        let anchor = Anchor::stored_in(&meta, &path)?;
                        let skipped = SkippedDamage::stored_in(&meta, &path)?;
                        (get("version")?, get("consumed")?, anchor, skipped)
                    }
                    Err(redb::TableError::TableDoesNotExist(_)) => {
                        (None, None, None, SkippedDamage::default())
                    }
                    Err(e) => return Err(e).at(&path),
                };
                Ok((txn, version, consumed, anchor, skipped))
            })
        };
        let (stored_txn, version, consumed, anchor, skipped) = match snapshot {
            Ok(s) => s,
            Err(e @ ProjectionError::Damaged { .. }) => {
                return Ok(Checked::Unreadable(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        if version != Some(PROJECTION_VERSION) {
            return Ok(Checked::OtherVersion(version));
        }
        let consumed = consumed.map_or(0, |c| c.max(0) as u64);
        if let Some(a) = &anchor {
            // The record they stopped at is not the log's: made before
            // a loss the writer that recovered the log recorded (the
            // next read rebuilds them), else damage or another
            // archive's file. (Where it is the log's they are compared,
            // whatever the records of losses say: those are history, and
            // a damaged one can cost a needless rebuild, never an
            // answer.)
            if !a.holds(reader, consumed) {
                if a.loss_since(reader, consumed) {
                    return Ok(Checked::Superseded { consumed });
                }
                return Ok(Checked::NotOfThisLog(format!(
                    "meta: where they say they stopped ({} in segment {}, records below offset {consumed} applied) is not what this log holds, and the index records no loss of records they applied: damaged, or another archive's file; run `ccvault rebuild` (the next read rebuilds them too)",
                    a.record
                        .map_or("a record".to_owned(), |(o, _)| format!("offset {o}")),
                    a.pos.segment
                )));
            }
        }
        // Still there, past the index commit `reader` sees: another process
        // (`serve`) caught them up after this check's reader opened. A
        // recompute up to `reader`'s end would differ from them.
        if consumed > reader.visible_end() {
            return Ok(Checked::Ahead { consumed });
        }
        reader.limit_visible(consumed);

        // Beside the projections, so on the same file system as a rebuild's
        // (a temporary directory may be a small memory one); another name
        // than a rebuild's, which may be running.
        let scratch = scratch_path(&path).with_extension("verify");
        let _ = std::fs::remove_file(&scratch);
        let built = create_private(&scratch).and_then(|()| {
            let created = scratch_builder().create(&scratch).at(&scratch);
            let _ = std::fs::remove_file(&scratch);
            let fresh = Projections {
                path: scratch.clone(),
                db: Some(Db::Writable(created?)),
                unsaved: None,
                pinned: None,
            };
            guarded(&scratch, || {
                fresh.fill(reader, opts, &mut |_| {}, Instant::now(), Some(&scratch))
            })?;
            Ok(fresh)
        });
        let fresh = match built {
            Ok(fresh) => fresh,
            Err(e @ ProjectionError::Unindexed { .. }) => {
                let _ = std::fs::remove_file(&scratch);
                return Ok(Checked::IndexIncomplete(e.to_string()));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&scratch);
                return scratch_refused(&path, e);
            }
        };
        // Which recorded loss the stored file saw, and which damaged places
        // of the log it was built around, are its history, not a function
        // of the log's records: the recompute is given the same (damage
        // that came to the log after the records it hit were applied made
        // `meta` differ, where only the log was damaged: an outside audit;
        // records the damage hid still make the tables differ).
        let seen = anchor.and_then(|a| a.lost_seen);
        let given = guarded(&scratch, || {
            let db = fresh.writable()?;
            let txn = db.begin_write().at(&scratch)?;
            {
                let mut meta = txn.open_table(schema::META).at(&scratch)?;
                match seen {
                    Some(id) => drop(meta.insert("lost_seen", id as i64).at(&scratch)?),
                    None => drop(meta.remove("lost_seen").at(&scratch)?),
                }
                skipped.put(&mut meta, &scratch)?;
            }
            txn.commit().at(&scratch)
        });
        if let Err(e) = given {
            return scratch_refused(&path, e);
        }
        let fresh_txn = fresh.read_txn()?;

        let mut problems = Vec::new();
        let mut compare = |name: &str, outcome: Result<Option<String>>| -> Result<()> {
            match outcome {
                Ok(None) => Ok(()),
                Ok(Some(problem)) => {
                    problems.push(format!("{name}: {problem}"));
                    Ok(())
                }
                Err(e @ ProjectionError::Damaged { .. }) => {
                    problems.push(format!("{name}: {e}"));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        let (a, b) = (&stored_txn, &fresh_txn);
        let at = (path.as_path(), scratch.as_path());
        compare(
            "meta",
            guarded(&path, || same_table(a, b, schema::META, at)),
        )?;
        compare(
            "interactions_by_offered",
            guarded(&path, || {
                same_table_shown(a, b, schema::BY_OFFERED, at, by_offered_key)
            }),
        )?;
        compare(
            "interaction_offered",
            guarded(&path, || same_table(a, b, schema::OFFERED, at)),
        )?;
        compare(
            "children",
            guarded(&path, || same_table(a, b, schema::CHILDREN, at)),
        )?;
        compare(
            "report_chunks",
            guarded(&path, || same_table(a, b, schema::REPORT_CHUNKS, at)),
        )?;
        compare(
            "agent_status",
            guarded(&path, || same_table(a, b, schema::AGENT_STATUS, at)),
        )?;
        compare(
            "tenant_legs",
            guarded(&path, || same_table(a, b, schema::TENANT_LEGS, at)),
        )?;
        compare(
            "tenant_guids",
            guarded(&path, || same_table(a, b, schema::TENANT_GUIDS, at)),
        )?;
        compare(
            "tenant_agents",
            guarded(&path, || same_table(a, b, schema::TENANT_AGENTS, at)),
        )?;
        compare(
            "tenant_other",
            guarded(&path, || same_table(a, b, schema::TENANT_OTHER, at)),
        )?;
        compare(
            "tenants",
            guarded(&path, || same_table(a, b, schema::TENANTS, at)),
        )?;
        compare(
            "copy_best",
            guarded(&path, || same_table(a, b, schema::COPY_BEST, at)),
        )?;
        compare(
            "copy_times",
            guarded(&path, || same_table(a, b, schema::COPY_TIMES, at)),
        )?;
        Ok(Checked::Compared { consumed, problems })
    }
}

/// Compares one table of the stored file (`a`) with the recompute's (`b`);
/// a table that does not exist reads as empty. `None` when they hold the
/// same entries, else how many entries differ and the first.
/// A check whose scratch file the file system refused (full, read-only,
/// not this user's) compared nothing, and says why; any other error is
/// the check's.
fn scratch_refused(path: &Path, e: ProjectionError) -> Result<Checked> {
    match refused_write(&e) {
        Some(io) => Ok(Checked::NotChecked(format!(
            "the recompute's scratch file beside {} was refused: {io}",
            path.display()
        ))),
        None => Err(e),
    }
}

fn same_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    a: &ReadTransaction,
    b: &ReadTransaction,
    def: TableDefinition<K, V>,
    (path_a, path_b): (&Path, &Path),
) -> Result<Option<String>> {
    same_table_shown(a, b, def, (path_a, path_b), |bytes| {
        format!("{:?}", K::from_bytes(bytes))
    })
}

/// [`same_table`], its first differing key written by `shown` (from the
/// key's bytes).
fn same_table_shown<K: redb::Key + 'static, V: redb::Value + 'static>(
    a: &ReadTransaction,
    b: &ReadTransaction,
    def: TableDefinition<K, V>,
    (path_a, path_b): (&Path, &Path),
    shown: impl Fn(&[u8]) -> String,
) -> Result<Option<String>> {
    let entries =
        |txn: &ReadTransaction, path: &Path| -> Result<Option<redb::ReadOnlyTable<K, V>>> {
            match txn.open_table(def) {
                Ok(t) => Ok(Some(t)),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(e).at(path),
            }
        };
    let (ta, tb) = (entries(a, path_a)?, entries(b, path_b)?);
    let mut ia = ta.as_ref().map(|t| t.iter()).transpose().at(path_a)?;
    let mut ib = tb.as_ref().map(|t| t.iter()).transpose().at(path_b)?;
    // An entry as its key's and value's bytes.
    type Entry = (Vec<u8>, Vec<u8>);
    fn next<K: redb::Key + 'static, V: redb::Value + 'static>(
        it: &mut Option<redb::Range<'_, K, V>>,
        path: &Path,
    ) -> Result<Option<Entry>> {
        let Some(it) = it.as_mut() else {
            return Ok(None);
        };
        let Some(item) = it.next() else {
            return Ok(None);
        };
        let (k, v) = item.at(path)?;
        let key = k.value();
        let key_bytes = K::as_bytes(&key).as_ref().to_vec();
        let value = v.value();
        let value_bytes = V::as_bytes(&value).as_ref().to_vec();
        Ok(Some((key_bytes, value_bytes)))
    }
    let (mut ea, mut eb) = (next(&mut ia, path_a)?, next(&mut ib, path_b)?);
    let mut differing = 0u64;
    let mut first: Option<String> = None;
    // Each difference counted; the first one described (formatting a key
    // for every entry was most of a clean check's comparing).
    let mut note = |what: &dyn Fn() -> String| {
        differing += 1;
        if first.is_none() {
            first = Some(what());
        }
    };
    loop {
        let order = match (&ea, &eb) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => K::compare(ka, kb),
        };
        match order {
            Ordering::Equal => {
                if let (Some((key, va)), Some((_, vb))) = (&ea, &eb) {
                    if va != vb {
                        note(&|| format!("the value of {} is not the log's", shorter(&shown(key))));
                    }
                }
                ea = next(&mut ia, path_a)?;
                eb = next(&mut ib, path_b)?;
            }
            Ordering::Less => {
                if let Some((key, _)) = &ea {
                    note(&|| format!("{} is not in the log's", shorter(&shown(key))));
                }
                ea = next(&mut ia, path_a)?;
            }
            Ordering::Greater => {
                if let Some((key, _)) = &eb {
                    note(&|| format!("{} is missing", shorter(&shown(key))));
                }
                eb = next(&mut ib, path_b)?;
            }
        }
    }
    Ok(first.map(|first| {
        format!(
            "{differing} entries differ from a recompute from the log (first: {first}); run `ccvault rebuild`"
        )
    }))
}

/// A key of `interactions_by_offered` as an operator knows it: the
/// offered time and the GUID, not the GUID's stored bytes (as redb prints
/// them: a list of numbers); those bytes where they do not decode.
fn by_offered_key(bytes: &[u8]) -> String {
    let (offered_at, guid) = <(i64, &[u8]) as redb::Value>::from_bytes(bytes);
    match crate::codec::decode_guid(guid, offered_at) {
        Ok(guid) => format!("(offered {offered_at} ms, GUID {guid:?})"),
        Err(_) => format!("{:?}", (offered_at, guid)),
    }
}

/// A key as printed, cut to a length a message can hold.
fn shorter(key: &str) -> String {
    const MAX: usize = 160;
    match key.char_indices().nth(MAX) {
        Some((at, _)) => format!("key {}…", &key[..at]),
        None => format!("key {key}"),
    }
}
