//! Helpers shared by the store's integration tests.

use ccvault_store::{Incoming, SourceKind};

/// Event `i` of the test streams: interaction `int-{i}-t`, agent `ag{i % 3}`.
pub fn event(i: u64) -> String {
    format!(
        r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-{i}-t","agentId":"ag{}","interactionEventTS":{}}}}}"#,
        i % 3,
        1_763_900_000 + i
    )
}

/// Line `line` (1-based) of the test file `t.ndjson`.
// Not every test file that shares this module appends lines.
#[allow(dead_code)]
pub fn incoming(raw: &str, line: u64) -> Incoming<'_> {
    Incoming {
        raw: raw.as_bytes(),
        source_kind: SourceKind::File,
        source: "t.ndjson",
        line,
        message_id: None,
        ingest_ms: 1,
    }
}

/// Writes `version` into the index's meta table, as a build of that index
/// version left it (the tables are this build's: only the number says
/// otherwise, which is what makes an index unusable).
#[allow(dead_code)] // Not every test file uses it.
pub fn set_index_version(dir: &std::path::Path, version: u64) {
    set_index_meta(dir, "version", version);
}

/// Writes `value` under `key` in the index's meta table, behind the
/// archive's back.
#[allow(dead_code)] // Not every test file uses it.
pub fn set_index_meta(dir: &std::path::Path, key: &str, value: u64) {
    let db = redb::Database::open(dir.join("index.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta).unwrap().insert(key, value).unwrap();
    }
    txn.commit().unwrap();
}
