//! A rebuild that reads the archive's facts files gives exactly what a
//! rebuild parsing every payload gives, and a damaged, truncated, stale or
//! missing facts file only sends its records back to parsing.

use std::path::{Path, PathBuf};

use ccvault_store::{Archive, ArchiveOptions, ArchiveReader, Layout};

use super::tests::{archived, dump, import_lines, import_mqtt, oracle, sim_lines, tenant_dump};
use super::*;

fn rebuild(dir: &Path) -> (Applied, String) {
    let mut reader = ArchiveReader::open(dir).unwrap();
    let mut p = Projections::open(dir).unwrap();
    let applied = p
        .rebuild(&mut reader, RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(applied.deferred, 0);
    let out = dump(&p) + &tenant_dump(&p, dir);
    (applied, out)
}

fn facts_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Layout::new(dir).facts_dir())
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn facts_and_json_rebuild_the_same_projections_and_damage_falls_back() {
    // The simulated day with its quirks (envelopes, malformed lines, odd
    // types, duplicates), from a file in three imports (three facts files)
    // and over MQTT.
    let lines = sim_lines(21, 300);
    let third = lines.len() / 3;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, &lines[..third]);
    import_mqtt(d, &lines[third..third + 50], "acme/event-v1/all");
    import_lines(d, &lines[third..2 * third]);
    import_lines(d, &lines[2 * third..]);
    let files = facts_files(d);
    assert_eq!(files.len(), 4, "{files:?}");
    let (_, events) = archived(d);

    let (with_facts, expected) = rebuild(d);
    assert_eq!(
        with_facts.from_facts,
        events.len() as u64,
        "every event read from facts"
    );
    assert_eq!(with_facts.unusable_facts_files, 0);
    // And equal to the pure functions over the parsed payloads.
    let projections = Projections::open(d).unwrap();
    assert_eq!(dump(&projections), oracle(d));
    drop(projections);

    // A flipped byte in the middle of one file: that file is not used.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&files[1], &bytes).unwrap();
    // Another cut short, as a crash while writing it could leave it.
    let whole = std::fs::read(&files[2]).unwrap();
    std::fs::write(&files[2], &whole[..whole.len() - 7]).unwrap();
    // A temporary file a crash left behind is never read.
    std::fs::write(files[0].with_extension("facts.tmp"), b"partial").unwrap();
    let (damaged, got) = rebuild(d);
    assert_eq!(damaged.unusable_facts_files, 2);
    assert!(damaged.from_facts > 0 && damaged.from_facts < with_facts.from_facts);
    assert_eq!(got, expected, "damaged facts changed the projections");

    // Without any facts: every payload parsed, the same projections.
    std::fs::remove_dir_all(Layout::new(d).facts_dir()).unwrap();
    let (parsed, got) = rebuild(d);
    assert_eq!((parsed.from_facts, parsed.unusable_facts_files), (0, 0));
    assert_eq!(got, expected, "facts and JSON disagree");

    // A reindex writes the facts again, and they are used again.
    let (mut archive, _) = Archive::open(d, ArchiveOptions::default()).unwrap();
    archive.rebuild_index().unwrap();
    archive.close().unwrap();
    assert!(!facts_files(d).is_empty());
    let (reindexed, got) = rebuild(d);
    assert_eq!(reindexed.from_facts, with_facts.from_facts);
    assert_eq!(got, expected);
}

#[test]
fn facts_of_another_record_are_not_used() {
    // Facts files of one archive put beside another's log (as a stale
    // directory would be): entries whose payload length differs are not
    // used, and the projections are those of the log.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    import_lines(a.path(), &sim_lines(3, 80));
    import_lines(b.path(), &sim_lines(4, 80));
    let (_, expected) = rebuild(b.path());
    let b_facts = Layout::new(b.path()).facts_dir();
    std::fs::remove_dir_all(&b_facts).unwrap();
    std::fs::create_dir(&b_facts).unwrap();
    for f in facts_files(a.path()) {
        std::fs::copy(&f, b_facts.join(f.file_name().unwrap())).unwrap();
    }
    let (applied, got) = rebuild(b.path());
    let (_, events) = archived(b.path());
    assert!(events.len() > 500);
    assert_eq!(
        applied.from_facts, 0,
        "records took another archive's facts"
    );
    assert_eq!(got, expected);
}
