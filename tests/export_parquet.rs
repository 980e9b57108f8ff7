//! `export --format parquet` through the built binary: every table read back
//! with the `parquet` crate and compared row by row with what the other
//! commands print (`export` NDJSON, `interactions --format json`, `agents
//! --format json`); the partitions, types and compression; an incremental
//! export after late events equals a full one, and two full exports of one
//! archive are byte-identical; an interrupted run's
//! leftovers never show; bad command lines.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use common::{ccvault, copy_dir, import};
use parquet::basic::{Compression, Encoding, LogicalType, TimeUnit};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{json, Value};

/// Two tenants: acme01 over two days, globex02 on one (with the
/// simulator's quirks: duplicates, envelopes, reordering, untimed changes).
fn streams(dir: &Path) -> (PathBuf, PathBuf) {
    let a = dir.join("acme.ndjson");
    let b = dir.join("globex.ndjson");
    for (path, tenant, days, seed) in [(&a, "acme01", "2", "1"), (&b, "globex02", "1", "2")] {
        ccvault(
            dir,
            &[
                "simulate",
                "--interactions",
                "120",
                "--agents",
                "8",
                "--days",
                days,
                "--seed",
                seed,
                "--tenant",
                tenant,
                "--out",
                path.to_str().unwrap(),
            ],
        )
        .ok();
    }
    (a, b)
}

/// An archive in `dir` of both streams but every fifth line of globex02's,
/// which are left in the file returned, to be imported later (late events
/// of interactions already exported, and agent changes that move spans).
fn archive_with_late(dir: &Path) -> (PathBuf, PathBuf) {
    let (a, b) = streams(dir);
    let text = std::fs::read_to_string(&b).unwrap();
    let (mut early, mut late) = (String::new(), String::new());
    for (i, line) in text.lines().enumerate() {
        let part = if i % 5 == 4 { &mut late } else { &mut early };
        part.push_str(line);
        part.push('\n');
    }
    let (b1, b2) = (dir.join("b1.ndjson"), dir.join("b2.ndjson"));
    std::fs::write(&b1, early).unwrap();
    std::fs::write(&b2, late).unwrap();
    let data = dir.join("data");
    import(&data, &[&a, &b1], &[]);
    (data, b2)
}

/// The command line of a Parquet export to `out` (dates in Anchorage,
/// small row groups).
/// A run into a directory another export is writing to is refused before
/// it touches anything: overlapping runs (a full export still finishing
/// when the nightly `--since-last` starts) each removed the other's new
/// files as not their own, both exited 0, and the last checkpoint named
/// files that no longer existed (an audit: DuckDB then read no event).
/// The other export is this test holding the directory's lock, with the
/// files such a run has in hand.
#[test]
fn a_run_into_a_directory_another_run_writes_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out, want) = first_export(tmp.path());
    let (part, file) = files(&out, "events").remove(0);
    let dir = out.join("events").join(&part);
    let writing = dir.join(".part-000002-0000.parquet.tmp");
    let placed = dir.join("part-000002-0001.parquet");
    std::fs::write(&writing, b"PAR1 half").unwrap();
    std::fs::copy(&file, &placed).unwrap();
    let other = File::open(&out).unwrap();
    other.try_lock().unwrap();
    for extra in [&[][..], &["--since-last"]] {
        let mut args = export_args(&out);
        args.extend_from_slice(extra);
        let run = ccvault(&data, &args);
        run.assert_no_panic();
        assert_eq!(run.code, 1, "{extra:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "cannot export to {}: another `ccvault export` is writing to this directory",
                out.display()
            )),
            "{extra:?}: {}",
            run.stderr
        );
        assert!(
            writing.exists() && placed.exists(),
            "{extra:?}: the other run's files were removed"
        );
    }
    drop(other);
    std::fs::remove_file(&placed).unwrap();
    export(&data, &out, &["--since-last"]);
    assert_eq!(contents(&out), want);
}

fn export_args(out: &Path) -> Vec<&str> {
    vec![
        "--tz",
        "America/Anchorage",
        "export",
        "--format",
        "parquet",
        "--out",
        out.to_str().unwrap(),
        "--row-group-size",
        "64KiB",
    ]
}

fn export(data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = export_args(out);
    args.extend_from_slice(extra);
    ccvault(data, &args).ok().stderr
}

/// The archive's records and those read from the log, from an export's
/// first line (`… export run N of TOTAL records … (READ records read from
/// the log)`).
fn records_read(said: &str) -> (u64, u64) {
    let number_before = |text: &str, word: &str| -> u64 {
        let at = text
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {text}"));
        let head = text[..at].trim_end();
        head[head
            .rfind(|c: char| !c.is_ascii_digit())
            .map_or(0, |i| i + 1)..]
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (
        number_before(said, " records"),
        number_before(said, " records read from the log"),
    )
}

/// The data files of one table: (partition directory, file name).
fn files(out: &Path, table: &str) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let root = out.join(table);
    for tenant in std::fs::read_dir(&root).unwrap() {
        let tenant = tenant.unwrap().path();
        for date in std::fs::read_dir(&tenant).unwrap() {
            let date = date.unwrap().path();
            for f in std::fs::read_dir(&date).unwrap() {
                let f = f.unwrap().path();
                let rel = date
                    .strip_prefix(&root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                found.push((rel, f));
            }
        }
    }
    found.sort();
    found
}

/// Every file under `out` (checkpoint included) with what a rewrite
/// changes even under the same name: inode, modification time, size.
fn stamps(out: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut all = BTreeMap::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let m = std::fs::metadata(&path).unwrap();
            if m.is_dir() {
                dirs.push(path);
            } else {
                all.insert(path, (m.ino(), m.modified().unwrap(), m.len()));
            }
        }
    }
    all
}

/// A Parquet value as the JSON outputs write it (instants as epoch ms).
fn json_of(f: &Field) -> Value {
    match f {
        Field::Null => Value::Null,
        Field::Bool(b) => json!(b),
        Field::Long(n) => json!(n),
        Field::Int(n) => json!(n),
        Field::Double(d) => json!(d),
        Field::Str(s) => json!(s),
        Field::TimestampMillis(ms) => json!(ms),
        Field::ListInternal(l) => Value::Array(l.elements().iter().map(json_of).collect()),
        other => panic!("unexpected Parquet value {other:?}"),
    }
}

/// Every row of a table, each with its partition directory.
fn rows(out: &Path, table: &str) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut all = Vec::new();
    for (part, path) in files(out, table) {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("part-") && name.ends_with(".parquet"),
            "{table}: stray file {}",
            path.display()
        );
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let obj = row
                .get_column_iter()
                .map(|(k, v)| (k.clone(), json_of(v)))
                .collect();
            all.push((part.clone(), obj));
        }
    }
    all
}

/// The partition a row must be in: its tenant, its instant's date in Anchorage.
fn partition_of(tenant: &Value, ms: i64) -> String {
    let tenant = tenant.as_str().unwrap_or("__HIVE_DEFAULT_PARTITION__");
    let date = jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/Anchorage").unwrap())
        .date();
    format!("tenant={tenant}/date={date}")
}

/// The tables as sorted lists of rows, for comparing two exports.
fn contents(out: &Path) -> BTreeMap<&'static str, Vec<String>> {
    let mut all = BTreeMap::new();
    for table in ["events", "interactions", "agent-states"] {
        let mut rows: Vec<String> = rows(out, table)
            .into_iter()
            .map(|(part, row)| format!("{part} {}", Value::Object(row)))
            .collect();
        rows.sort();
        all.insert(table, rows);
    }
    all
}

#[test]
fn every_table_reads_back_as_the_other_commands_print_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (a, b) = streams(tmp.path());
    import(&data, &[&a, &b], &[]);
    let out = tmp.path().join("export");
    let said = export(&data, &out, &[]);
    assert!(said.contains("full export run 1"), "{said}");
    assert!(out.join("_ccvault_export.json").is_file());

    // events: the NDJSON export's lines, in offset order, byte for byte (NDJSON
    // writes a line break inside a payload as a space).
    let ndjson = ccvault(&data, &["export"]).ok().stdout_str();
    let mut events = rows(&out, "events");
    events.sort_by_key(|(_, r)| r["offset"].as_i64().unwrap());
    let lines: Vec<&str> = ndjson.lines().collect();
    assert_eq!(events.len(), lines.len());
    let mut tenants = std::collections::BTreeSet::new();
    for ((part, row), line) in events.iter().zip(&lines) {
        let payload = row["payload"].as_str().unwrap().replace(['\n', '\r'], " ");
        assert_eq!(&payload, line);
        let t = row["eventTime"].as_i64().unwrap();
        assert_eq!(part, &partition_of(&row["tenant"], t), "{row:?}");
        let ev: Value = serde_json::from_str(line).unwrap();
        let (family, body) = ev.as_object().unwrap().iter().next().unwrap();
        assert_eq!(row["family"], json!(family));
        let guid = &body["interactionGUID"];
        assert_eq!(&row["interactionGUID"], guid);
        if let Some(g) = guid.as_str() {
            // The tenant is the GUID's last part (the streams were imported from files).
            assert_eq!(row["tenant"], json!(g.rsplit('-').next().unwrap()));
        }
        assert_eq!(row["sourceKind"], json!("file"));
        assert!(row["ingestTime"].as_i64().unwrap() > 1_700_000_000_000);
        tenants.insert(part.split('/').next().unwrap().to_owned());
    }
    assert!(tenants.contains("tenant=acme01") && tenants.contains("tenant=globex02"));
    assert!(
        tenants.contains("tenant=__HIVE_DEFAULT_PARTITION__"),
        "{tenants:?}"
    );

    // interactions: the JSON listing's objects, every field, row by row.
    let listed = ccvault(&data, &["interactions", "--format", "json"]).ok();
    let mut want: Vec<Value> = listed.json_lines();
    let mut legs = rows(&out, "interactions");
    assert_eq!(legs.len(), want.len());
    let guid = |v: &Value| v["interactionGUID"].as_str().unwrap_or("").to_owned();
    want.sort_by_key(guid);
    legs.sort_by_key(|(_, r)| guid(&Value::Object(r.clone())));
    for ((part, row), want) in legs.iter().zip(&want) {
        assert_eq!(&Value::Object(row.clone()), want);
        let offered = want["offeredAt"].as_i64().unwrap();
        assert_eq!(part, &partition_of(&want["tenant"], offered));
    }
    // The day runs 07:00-11:00 UTC, across midnight in Anchorage (UTC-9): legs on both dates.
    let days: std::collections::BTreeSet<&str> = legs
        .iter()
        .filter(|(p, _)| p.starts_with("tenant=acme01/"))
        .map(|(p, _)| p.as_str())
        .collect();
    assert!(days.len() >= 2, "{days:?}");

    // agent-states: per agent, one span per timed change, adding up to `agents`.
    let agents = ccvault(&data, &["agents", "--format", "json"])
        .ok()
        .json_lines();
    let spans = rows(&out, "agent-states");
    assert!(!spans.is_empty());
    let mut by_agent: BTreeMap<String, (u64, BTreeMap<String, i64>)> = BTreeMap::new();
    for (part, s) in &spans {
        let (start, end, ms) = (
            s["start"].as_i64().unwrap(),
            s["end"].as_i64().unwrap(),
            s["ms"].as_i64().unwrap(),
        );
        assert_eq!(end - start, ms);
        assert_eq!(part, &partition_of(&s["tenant"], start));
        let e = by_agent
            .entry(s["agentId"].as_str().unwrap().to_owned())
            .or_default();
        e.0 += 1;
        if ms > 0 {
            *e.1.entry(s["state"].as_i64().unwrap().to_string())
                .or_default() += ms;
        }
    }
    let with_changes: Vec<&Value> = agents
        .iter()
        .filter(|a| a["changes"].as_u64().unwrap() > 0)
        .collect();
    assert_eq!(by_agent.len(), with_changes.len());
    for a in with_changes {
        let (n, states) = &by_agent[a["agentId"].as_str().unwrap()];
        assert_eq!(json!(n), a["changes"], "{a}");
        assert_eq!(json!(states), a["stateMs"], "{a}");
    }
    assert!(spans.iter().any(|(_, s)| s["reason"].is_string()));

    // The physical layout: typed columns, zstd, dictionaries for text.
    let (_, first) = &files(&out, "events")[0];
    let reader = SerializedFileReader::new(File::open(first).unwrap()).unwrap();
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let col = |name: &str| {
        (0..schema.num_columns())
            .find(|i| schema.column(*i).name() == name)
            .unwrap()
    };
    assert_eq!(
        schema.column(col("eventTime")).logical_type_ref(),
        Some(&LogicalType::timestamp(true, TimeUnit::MILLIS))
    );
    assert_eq!(
        schema.column(col("payload")).logical_type_ref(),
        Some(&LogicalType::String)
    );
    let rg = meta.row_group(0);
    assert!(rg
        .columns()
        .iter()
        .all(|c| c.compression() == Compression::ZSTD(Default::default())));
    let encodings = |name: &str| rg.column(col(name)).encodings().collect::<Vec<_>>();
    assert!(encodings("family").contains(&Encoding::RLE_DICTIONARY));
    assert!(!encodings("payload").contains(&Encoding::RLE_DICTIONARY));
    // Integers and instants delta-encoded: offsets, lines and times mostly
    // step by small amounts.
    for name in ["offset", "line", "ingestTime", "eventTime"] {
        assert!(
            encodings(name).contains(&Encoding::DELTA_BINARY_PACKED),
            "{name}: {:?}",
            encodings(name)
        );
    }
    // 64 KiB row groups: a day of a tenant's events needs several.
    let most = files(&out, "events")
        .iter()
        .map(|(_, f)| {
            SerializedFileReader::new(File::open(f).unwrap())
                .unwrap()
                .metadata()
                .num_row_groups()
        })
        .max()
        .unwrap();
    assert!(most > 1, "{most}");
    let legs_file = &files(&out, "interactions")[0].1;
    let reader = SerializedFileReader::new(File::open(legs_file).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let types: BTreeMap<String, String> = (0..schema.num_columns())
        .map(|i| {
            let c = schema.column(i);
            (
                c.path().parts()[0].clone(),
                format!("{:?}", c.physical_type()),
            )
        })
        .collect();
    assert_eq!(types["waitMs"], "INT64");
    assert_eq!(types["offerCount"], "INT64");
    assert_eq!(types["transferred"], "BOOLEAN");
    assert_eq!(types["anomalies"], "BYTE_ARRAY");
}

#[test]
fn an_incremental_export_after_late_events_equals_a_full_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, b2) = archive_with_late(tmp.path());
    let inc = tmp.path().join("incremental");
    let said = export(&data, &inc, &["--since-last"]);
    assert!(said.contains("full export run 1"), "{said}");
    let acme_before = files(&inc, "interactions")
        .into_iter()
        .filter(|(p, _)| p.starts_with("tenant=acme01/"))
        .collect::<Vec<_>>();
    assert!(!acme_before.is_empty());
    let stamps_before = stamps(&inc);

    // A copy whose saved list of agent status changes is damaged: it must
    // not be used (the run reads the whole log instead).
    let damaged_list = tmp.path().join("damaged-list");
    copy_dir(&inc, &damaged_list);
    let list = damaged_list.join("_ccvault_agent_changes");
    let mut bytes = std::fs::read(&list).unwrap();
    assert!(bytes.len() >= 12 * 10, "{} bytes", bytes.len());
    bytes[5] ^= 1;
    std::fs::write(&list, bytes).unwrap();

    import(&data, &[&b2], &[]);
    // The new records include agent status changes: the spans are
    // recomputed from the saved changes and the new records, not from a
    // scan of the whole log.
    let said = export(&data, &inc, &["--since-last"]);
    assert!(said.contains("incremental export run 2"), "{said}");
    let (total, read) = records_read(&said);
    let late = std::fs::read_to_string(&b2).unwrap().lines().count() as u64;
    assert!(read < total / 2 && read > late / 2, "{said}");
    let said = export(&data, &damaged_list, &["--since-last"]);
    assert!(said.contains("incremental export run 2"), "{said}");
    let (total, read) = records_read(&said);
    assert!(read > total * 9 / 10, "{said}");
    let full = tmp.path().join("full");
    export(&data, &full, &[]);
    assert_eq!(contents(&damaged_list), contents(&full));
    // The same archive exports to byte-identical files (engines and
    // object-storage syncs compare files, not rows).
    let again = tmp.path().join("again");
    export(&data, &again, &[]);
    let bytes_of = |dir: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        stamps(dir)
            .into_keys()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p.strip_prefix(dir).unwrap().to_path_buf(), bytes)
            })
            .collect()
    };
    let (one, two) = (bytes_of(&full), bytes_of(&again));
    assert!(one.len() > 3, "{:?}", one.keys());
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        two.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &one {
        assert!(two[path] == *bytes, "{} differs", path.display());
    }
    let (got, want) = (contents(&inc), contents(&full));
    for table in ["events", "interactions", "agent-states"] {
        assert!(!want[table].is_empty(), "{table}");
        assert_eq!(got[table].len(), want[table].len(), "{table}");
        assert_eq!(got[table], want[table], "{table}");
    }
    // Only changed partitions were rewritten: acme01's legs kept their files.
    let acme_after = files(&inc, "interactions")
        .into_iter()
        .filter(|(p, _)| p.starts_with("tenant=acme01/"))
        .collect::<Vec<_>>();
    assert_eq!(acme_after, acme_before);
    // Not even rewritten under the same names: acme01's interactions and
    // events files are the very files of run 1.
    let stamps_after = stamps(&inc);
    let acme = |s: &BTreeMap<PathBuf, _>| -> Vec<_> {
        s.iter()
            .filter(|(p, _)| {
                let p = p.strip_prefix(&inc).unwrap().to_str().unwrap();
                p.starts_with("interactions/tenant=acme01/")
                    || p.starts_with("events/tenant=acme01/")
            })
            .map(|(p, st)| (p.clone(), *st))
            .collect()
    };
    assert!(!acme(&stamps_before).is_empty());
    assert_eq!(acme(&stamps_after), acme(&stamps_before));
    let globex: Vec<_> = files(&inc, "interactions")
        .into_iter()
        .filter(|(p, _)| p.starts_with("tenant=globex02/"))
        .collect();
    assert!(globex.iter().all(|(_, f)| f
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("part-000002-")));
    // The late events went to new files of their partitions; acme01 got none.
    let events = files(&inc, "events");
    assert!(events.iter().any(|(p, f)| p.starts_with("tenant=globex02/")
        && f.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("part-000002-")));
    assert!(events.iter().all(|(p, f)| !p.starts_with("tenant=acme01/")
        || f.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("part-000001-")));

    // Nothing new: a third run writes nothing and changes nothing, not
    // even the checkpoint (it reads neither the log nor the legs).
    let said = export(&data, &inc, &["--since-last"]);
    assert!(said.contains("0 rows in 0 files"), "{said}");
    assert!(said.contains("incremental export run 2"), "{said}");
    assert_eq!(stamps(&inc), stamps_after);
    assert_eq!(contents(&inc), want);

    // A checkpoint written by other export code (or over other
    // projections) is not trusted to be current: the run compares every
    // partition (all equal here, so no data file changes) and records
    // what it compared against.
    let checkpoint = inc.join("_ccvault_export.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    let writer = c["sources"]["writer"].as_str().unwrap().to_owned();
    assert!(writer.starts_with("ccvault "), "{writer}");
    c["sources"]["writer"] = json!("ccvault 0.0.0 0000000000000000");
    // (As one written before checkpoints had a checksum: else refused.)
    c.as_object_mut().unwrap().remove("checksum").unwrap();
    std::fs::write(&checkpoint, serde_json::to_vec(&c).unwrap()).unwrap();
    let said = export(&data, &inc, &["--since-last"]);
    assert!(said.contains("incremental export run 3"), "{said}");
    assert!(said.contains("0 rows in 0 files"), "{said}");
    let c: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(c["sources"]["writer"], json!(writer));
    let data_files = |s: BTreeMap<PathBuf, _>| -> Vec<_> {
        s.into_iter().filter(|(p, _)| p != &checkpoint).collect()
    };
    assert_eq!(data_files(stamps(&inc)), data_files(stamps_after));
    assert_eq!(contents(&inc), want);

    // Late events of old interactions, none an agent status change and
    // none later than the archive's last t(e) (acme01's events again,
    // made new by another sequenceId): the run reads only them for the
    // agent states, which stand as they were, file for file; every table
    // still equals a full export.
    let acme = std::fs::read_to_string(tmp.path().join("acme.ndjson")).unwrap();
    let mut late = String::new();
    for line in acme.lines().step_by(7) {
        if line.contains("AgentStatusChange") || line.contains('\\') {
            continue;
        }
        late.push_str(&line.replacen("\"sequenceId\":", "\"sequenceId\":9", 1));
        late.push('\n');
    }
    assert!(late.lines().count() > 20, "{late}");
    let late_path = tmp.path().join("late-acme.ndjson");
    std::fs::write(&late_path, late).unwrap();
    import(&data, &[&late_path], &[]);
    let spans_of = |s: BTreeMap<PathBuf, _>| -> Vec<_> {
        s.into_iter()
            .filter(|(p, _)| p.starts_with(inc.join("agent-states")))
            .collect()
    };
    let spans_before = spans_of(stamps(&inc));
    assert!(!spans_before.is_empty());
    let said = export(&data, &inc, &["--since-last"]);
    assert!(said.contains("incremental export run 4"), "{said}");
    assert!(!said.contains("events        0 rows"), "{said}");
    assert_eq!(spans_of(stamps(&inc)), spans_before);
    let full = tmp.path().join("full-after-acme");
    export(&data, &full, &[]);
    let (got, want) = (contents(&inc), contents(&full));
    for table in ["events", "interactions", "agent-states"] {
        assert_eq!(got[table], want[table], "{table}");
    }
}

/// An archive in `dir` of acme01's stream, its full export and the
/// export's contents.
fn first_export(dir: &Path) -> (PathBuf, PathBuf, BTreeMap<&'static str, Vec<String>>) {
    let data = dir.join("data");
    let (a, _) = streams(dir);
    import(&data, &[&a], &[]);
    let out = dir.join("export");
    export(&data, &out, &[]);
    let want = contents(&out);
    (data, out, want)
}

#[test]
fn an_interrupted_run_leaves_nothing_visible_that_the_next_run_keeps() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out, want) = first_export(tmp.path());
    // What a run killed before its checkpoint leaves: a half-written
    // temporary file (hidden from engines) and a complete file in place.
    let (part, file) = files(&out, "interactions").remove(0);
    let dir = out.join("interactions").join(&part);
    std::fs::write(dir.join(".part-000002-0000.parquet.tmp"), b"PAR1 half").unwrap();
    std::fs::copy(&file, dir.join("part-000002-0001.parquet")).unwrap();
    // Nothing new since run 1: the leftovers go, and run 1 stays the last.
    let said = export(&data, &out, &["--since-last"]);
    assert!(said.contains("incremental export run 1"), "{said}");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".tmp") && n != "part-000002-0001.parquet"),
        "{names:?}"
    );
    assert_eq!(contents(&out), want);
    // A full export into the same directory replaces every file.
    export(&data, &out, &[]);
    assert!(files(&out, "events").iter().all(|(_, f)| f
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("part-000002-")));
    assert_eq!(contents(&out), want);
}

#[test]
fn bad_command_lines_and_foreign_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (a, _) = streams(tmp.path());
    import(&data, &[&a], &[]);
    let no_out = ccvault(&data, &["export", "--format", "parquet"]).expect_code(2);
    assert!(no_out.stderr.contains("--out DIR"), "{}", no_out.stderr);
    // `-` is stdout, which a directory of tables cannot be: no directory
    // named `-` is made.
    let dash = ccvault(&data, &["export", "--format", "parquet", "--out", "-"]).expect_code(2);
    assert!(
        dash.stderr.contains("cannot go to stdout") && !dash.stderr.contains("--out DIR"),
        "{}",
        dash.stderr
    );
    assert!(!data.join("-").exists() && !std::path::Path::new("-").exists());
    let out = tmp.path().join("x");
    let o = out.to_str().unwrap();
    let stray = ccvault(&data, &["export", "--out", o]).expect_code(2);
    assert!(
        stray.stderr.contains("--format parquet"),
        "{}",
        stray.stderr
    );
    let ranged = ccvault(
        &data,
        &[
            "export",
            "--format",
            "parquet",
            "--out",
            o,
            "--from",
            "2025-01-01",
        ],
    )
    .expect_code(2);
    assert!(ranged.stderr.contains("--from"), "{}", ranged.stderr);

    // A file where the directory would go is said to be one.
    let file = tmp.path().join("afile");
    std::fs::write(&file, b"mine").unwrap();
    let on_file = ccvault(
        &data,
        &[
            "export",
            "--format",
            "parquet",
            "--out",
            file.to_str().unwrap(),
        ],
    )
    .expect_code(1);
    assert!(
        on_file.stderr.contains("cannot be made over the file") && on_file.stderr.contains("afile"),
        "{}",
        on_file.stderr
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");

    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let f = foreign.to_str().unwrap();
    let refused = ccvault(&data, &["export", "--format", "parquet", "--out", f]).expect_code(1);
    assert!(refused.stderr.contains("notes.txt"), "{}", refused.stderr);
    assert_eq!(std::fs::read(foreign.join("notes.txt")).unwrap(), b"mine");

    ccvault(&data, &["export", "--format", "parquet", "--out", o]).ok();
    let other_zone = ccvault(
        &data,
        &[
            "--tz",
            "Asia/Tokyo",
            "export",
            "--format",
            "parquet",
            "--out",
            o,
            "--since-last",
        ],
    )
    .expect_code(1);
    assert!(
        other_zone.stderr.contains("--tz UTC"),
        "{}",
        other_zone.stderr
    );
    std::fs::write(out.join("_ccvault_export.json"), b"{\"format\":").unwrap();
    let broken = ccvault(&data, &["export", "--format", "parquet", "--out", o]).expect_code(1);
    assert!(
        broken.stderr.contains("_ccvault_export.json"),
        "{}",
        broken.stderr
    );
}

/// An export deletes only files its own runs wrote: a checkpoint edited to
/// name a path elsewhere is refused, a `.parquet` file another tool put in
/// a partition is refused (query engines would read it as rows), and so is
/// a file named like a later run's; each is left where it is.
#[test]
fn an_export_deletes_only_files_its_runs_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out, want) = first_export(tmp.path());
    let o = out.to_str().unwrap();
    let run = |out: &str| ccvault(&data, &export_args(Path::new(out)));

    // A copy under another name in a partition.
    let (part, file) = files(&out, "interactions").remove(0);
    let sample = tmp.path().join("sample.parquet");
    std::fs::copy(&file, &sample).unwrap();
    let copy = out.join("interactions").join(&part).join("copy.parquet");
    std::fs::copy(&file, &copy).unwrap();
    let refused = run(o).expect_code(1);
    assert!(
        refused.stderr.contains("copy.parquet"),
        "{}",
        refused.stderr
    );
    assert!(copy.exists());
    std::fs::remove_file(&copy).unwrap();

    // A checkpoint naming a file outside the export, or a partition that
    // leads out of its table.
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let checkpoint = out.join("_ccvault_export.json");
    let original = std::fs::read(&checkpoint).unwrap();
    let edits: [&dyn Fn(&mut Value); 2] = [
        &|c: &mut Value| {
            let parts = c["tables"]["events"].as_object_mut().unwrap();
            let first = parts.values_mut().next().unwrap();
            first["files"]
                .as_array_mut()
                .unwrap()
                .push(json!("../../../../victim.txt"));
        },
        &|c: &mut Value| {
            c["tables"]["events"]["../.."] = json!({"files": ["victim.txt"], "rows": 1});
        },
    ];
    for edit in edits {
        let mut c: Value = serde_json::from_slice(&original).unwrap();
        edit(&mut c);
        // Without the checksum (as before 2026-12-06), which would refuse
        // any edit: the names themselves are checked.
        c.as_object_mut().unwrap().remove("checksum").unwrap();
        std::fs::write(&checkpoint, serde_json::to_vec(&c).unwrap()).unwrap();
        for args in [&[][..], &["--since-last"]] {
            let mut all = export_args(&out);
            all.extend_from_slice(args);
            let refused = ccvault(&data, &all).expect_code(1);
            assert!(
                refused.stderr.contains("_ccvault_export.json"),
                "{}",
                refused.stderr
            );
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }
    std::fs::write(&checkpoint, &original).unwrap();
    run(o).ok();
    assert_eq!(contents(&out), want);

    // No checkpoint: another tool's file in a table's partition, or a file
    // named like a later run's, is refused; a first run's leftover goes.
    let other = tmp.path().join("other");
    let partition = other
        .join("events")
        .join("tenant=zz")
        .join("date=2020-01-01");
    std::fs::create_dir_all(&partition).unwrap();
    for (name, kept) in [
        ("part-00000-abc.snappy.parquet", true),
        ("part-000005-0000.parquet", true),
        ("part-000001-0000.parquet", false),
    ] {
        let f = partition.join(name);
        std::fs::copy(&sample, &f).unwrap();
        let r = run(other.to_str().unwrap());
        if kept {
            let r = r.expect_code(1);
            assert!(r.stderr.contains(name), "{}", r.stderr);
            // A later run's file without a checkpoint is most likely this
            // directory's own, its checkpoint removed: said so.
            if name.starts_with("part-000005") {
                assert!(
                    r.stderr.contains("has no _ccvault_export.json")
                        && !r.stderr.contains("not written here"),
                    "{}",
                    r.stderr
                );
            }
            assert!(f.exists(), "{name}");
            std::fs::remove_file(&f).unwrap();
        } else {
            r.ok();
            assert!(!f.exists(), "{name}");
        }
    }
    assert_eq!(contents(&other), want);
}

/// A run that fails writing (here the file size limit, as a full disk
/// would) leaves no temporary file behind to hold the space, and the next
/// run completes the export.
#[test]
fn a_run_that_fails_writing_leaves_no_temporary_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, first, want) = first_export(tmp.path());
    let out = tmp.path().join("limited");
    // What a run that failed writing its list of status changes leaves
    // (an audit found it left): a failed run removes it too.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("._ccvault_agent_changes.tmp"), b"half").unwrap();
    // SIGXFSZ left as the shell has it: ccvault ignores it itself.
    let limit = r#"ulimit -f 40 && exec "$0" "$@""#;
    let failed = common::ccvault_under(&["sh", "-c", limit], &data, &export_args(&out));
    failed.assert_no_panic();
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("File too large"),
        "{}",
        failed.stderr
    );
    // Nor the partition directories it made for them (the tables' own
    // directories are the export's from its start).
    let mut left = Vec::new();
    let mut todo = vec![(out.clone(), 0)];
    while let Some((d, depth)) = todo.pop() {
        let mut entries = 0;
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            entries += 1;
            if e.file_type().unwrap().is_dir() {
                todo.push((e.path(), depth + 1));
            } else if e.file_name().to_string_lossy().ends_with(".tmp") {
                left.push(e.path());
            }
        }
        if entries == 0 && depth > 1 {
            left.push(d);
        }
    }
    assert!(left.is_empty(), "{left:?}");
    export(&data, &out, &[]);
    assert_eq!(contents(&out), want);
    assert_eq!(contents(&first), want);
}

/// An incremental run that fails once it has put some of its files in
/// place (here the file size limit, at a file larger than the first ones)
/// removes them again: the directory holds the last complete run's tables,
/// not those with the new run's files beside them (rows of a rewritten
/// partition twice), and the error says so. The next run completes it.
#[test]
fn a_run_that_fails_part_way_leaves_the_last_complete_runs_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, late) = archive_with_late(tmp.path());
    let out = tmp.path().join("export");
    export(&data, &out, &[]);
    let want = contents(&out);
    import(&data, &[&late], &[]);
    let size = |table: &str| {
        files(&out, table)
            .iter()
            .map(|(_, f)| std::fs::metadata(f).unwrap().len())
            .max()
            .unwrap()
    };
    // Under the largest `interactions` file (which late events rewrite) and
    // over the new `events` files, which are written and put in place first.
    let blocks = size("interactions") / 2 / 512;
    let limit = format!(r#"ulimit -f {blocks} && exec "$0" "$@""#);
    let mut args = export_args(&out);
    args.push("--since-last");
    let failed = common::ccvault_under(&["sh", "-c", &limit], &data, &args);
    failed.assert_no_panic();
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("run 2 did not complete (the files it had written were removed")
            && failed.stderr.contains("File too large"),
        "{}",
        failed.stderr
    );
    let names: Vec<String> = ["events", "interactions", "agent-states"]
        .iter()
        .flat_map(|t| files(&out, t))
        .map(|(_, f)| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("part-000001-")),
        "{names:?}"
    );
    assert_eq!(contents(&out), want);

    let said = export(&data, &out, &["--since-last"]);
    assert!(said.contains("incremental export run 2"), "{said}");
    let full = tmp.path().join("full");
    export(&data, &full, &[]);
    assert_eq!(contents(&out), contents(&full));
}

/// The rows of `table` in the partitions of `tenant`, sorted as [`contents`].
fn tenant_rows(
    all: &BTreeMap<&'static str, Vec<String>>,
    table: &str,
    tenant: &str,
) -> Vec<String> {
    let prefix = format!("tenant={tenant}/");
    all[table]
        .iter()
        .filter(|r| r.starts_with(&prefix))
        .cloned()
        .collect()
}

#[test]
fn a_tenants_export_holds_its_rows_and_continues_on_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, b2) = archive_with_late(tmp.path());
    let mine = tmp.path().join("globex");
    let said = export(&data, &mine, &["--tenant", "globex02", "--since-last"]);
    assert!(
        said.contains("full export run 1") && said.contains("(tenant globex02)"),
        "{said}"
    );

    for round in ["first", "after late events"] {
        let full = tmp.path().join(format!("full-{round}"));
        export(&data, &full, &[]);
        let (got, whole) = (contents(&mine), contents(&full));
        // Only globex02's partitions, holding what the full export holds there.
        for table in ["events", "interactions", "agent-states"] {
            assert!(
                files(&mine, table)
                    .iter()
                    .all(|(p, _)| p.starts_with("tenant=globex02/")),
                "{round}: {table}"
            );
        }
        for table in ["events", "interactions"] {
            let want = tenant_rows(&whole, table, "globex02");
            assert!(!want.is_empty(), "{round}: {table}");
            assert_eq!(got[table], want, "{round}: {table}");
        }
        // Its agents' spans: imported status changes name no tenant (the
        // full export files them under the null partition); a tenant's
        // export attributes its agents' changes to it.
        let agents: std::collections::BTreeSet<String> = ccvault(
            &data,
            &["agents", "--format", "json", "--tenant", "globex02"],
        )
        .ok()
        .json_lines()
        .iter()
        .map(|r| r["agentId"].as_str().unwrap().to_owned())
        .collect();
        let mut want: Vec<String> = rows(&full, "agent-states")
            .into_iter()
            .filter(|(_, s)| agents.contains(s["agentId"].as_str().unwrap()))
            .map(|(_, mut s)| {
                assert_eq!(s["tenant"], Value::Null, "{s:?}");
                s.insert("tenant".into(), json!("globex02"));
                let part = partition_of(&s["tenant"], s["start"].as_i64().unwrap());
                format!("{part} {}", Value::Object(s))
            })
            .collect();
        want.sort();
        assert!(!want.is_empty(), "{round}");
        assert_eq!(got["agent-states"], want, "{round}: agent-states");

        if round == "first" {
            import(&data, &[&b2], &[]);
            let said = export(&data, &mine, &["--tenant", "globex02", "--since-last"]);
            assert!(said.contains("incremental export run 2"), "{said}");
        }
    }

    // --since-last continues only an export of the same tenant.
    let full = tmp.path().join("full-first");
    for (dir, tenant, says) in [
        (&mine, None, "is an export of tenant \"globex02\""),
        (&mine, Some("acme01"), "is an export of tenant \"globex02\""),
        (&full, Some("acme01"), "is an export of the whole archive"),
    ] {
        let mut args = export_args(dir);
        args.push("--since-last");
        args.extend(tenant.iter().flat_map(|t| ["--tenant", t]));
        let refused = ccvault(&data, &args).expect_code(1);
        assert!(
            refused.stderr.contains(says),
            "{tenant:?}: {}",
            refused.stderr
        );
    }
}

/// A status change of a tenant's agent received on another tenant's topic
/// (its own tenant is that one) is still the agent's: `agents --tenant`
/// counts it, and so do the spans of the tenant's export (before, they
/// left it out and ran the state before it on), while its `events` row
/// stays the other tenant's.
#[test]
fn a_tenants_agent_states_count_its_agents_changes_from_another_tenants_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = archive_with_late(tmp.path());
    let agents = |data: &Path| -> BTreeMap<String, Value> {
        ccvault(
            data,
            &["agents", "--format", "json", "--tenant", "globex02"],
        )
        .ok()
        .json_lines()
        .into_iter()
        .map(|r| (r["agentId"].as_str().unwrap().to_owned(), r))
        .collect()
    };
    let agent = agents(&data).into_keys().next().unwrap();
    // Three changes of that agent, as MQTT receives them on acme01's topic,
    // within the archive's time span.
    let max_time = common::stats(&data).json["maxTime"].as_i64().unwrap() / 1000;
    let changes: Vec<String> = [(3, 600), (5, 400), (0, 200)]
        .iter()
        .map(|(state, before)| {
            format!(
                r#"{{"AgentStatusChange":{{"agentId":"{agent}","newState":{state},"statusEventTS":{}}}}}"#,
                max_time - before
            )
        })
        .collect();
    {
        let (mut archive, _) =
            ccvault_store::Archive::open(&data, ccvault_store::ArchiveOptions::default()).unwrap();
        let batch: Vec<ccvault_store::Incoming> = changes
            .iter()
            .map(|raw| ccvault_store::Incoming {
                raw: raw.as_bytes(),
                source_kind: ccvault_store::SourceKind::Mqtt,
                source: "acme01/agent-v1/all",
                line: 0,
                message_id: None,
                ingest_ms: max_time * 1000,
            })
            .collect();
        archive.append_batch(&batch).unwrap();
        archive.sync().unwrap();
    }
    let by_agent = agents(&data);
    let mine = tmp.path().join("globex");
    export(&data, &mine, &["--tenant", "globex02"]);
    let mut spans: BTreeMap<String, (u64, BTreeMap<String, i64>)> = BTreeMap::new();
    for (part, s) in rows(&mine, "agent-states") {
        assert!(part.starts_with("tenant=globex02/"), "{part}");
        assert_eq!(s["tenant"], json!("globex02"));
        let (n, ms) = spans
            .entry(s["agentId"].as_str().unwrap().to_owned())
            .or_default();
        *n += 1;
        *ms.entry(s["state"].to_string()).or_default() += s["ms"].as_i64().unwrap();
    }
    for (id, a) in &by_agent {
        let (n, ms) = spans.get(id).cloned().unwrap_or_default();
        assert_eq!(
            n,
            a["changes"].as_u64().unwrap(),
            "{id}: spans against changes"
        );
        let want: BTreeMap<String, i64> = a["stateMs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
            .filter(|(_, v)| *v > 0)
            .collect();
        let got: BTreeMap<String, i64> = ms.into_iter().filter(|(_, v)| *v > 0).collect();
        assert_eq!(got, want, "{id}: time per state");
    }
    // The changes' rows are acme01's events, not globex02's.
    let payloads: Vec<String> = rows(&mine, "events")
        .into_iter()
        .map(|(_, r)| r["payload"].as_str().unwrap().to_owned())
        .collect();
    assert!(!payloads.is_empty());
    assert!(
        !payloads.iter().any(|p| changes.contains(p)),
        "a change of another tenant's topic in globex02's events"
    );
}

/// A GUID whose last part is longer than a file name may be is a tenant
/// like any other: its rows go to a directory named by the first part of
/// it and a hash (the `tenant` column holds it whole), where one such event
/// failed every export of the archive. So is one named like the null
/// partition, beside rows without a tenant of the same day: its rows get a
/// directory of their own, where they collided with those (File exists).
#[test]
fn a_tenant_too_long_for_a_file_name_is_exported_with_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "t".repeat(300);
    let null_named = "__HIVE_DEFAULT_PARTITION__";
    let input = tmp.path().join("long.ndjson");
    std::fs::write(
        &input,
        [
            format!(
                r#"{{"Interaction":{{"event":"InteractionCreated","interactionGUID":"int-1-x-{long}","queueId":"7","msgInfo":{{"timestamp":1763900000000}}}}}}"#
            ),
            format!(
                r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-2-phone-00-{null_named}","queueId":"7","interactionEventTS":1763900001}}}}"#
            ),
            // No tenant (an imported status change), the same day.
            r#"{"AgentStatusChange":{"agentId":"ag-1","newState":5,"statusEventTS":1763900002}}"#.to_owned(),
            // A leg without one too.
            r#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-3-phone-00-","queueId":"7","interactionEventTS":1763900003}}"#.to_owned(),
        ]
        .map(|line| line + "\n")
        .concat(),
    )
    .unwrap();
    let (a, _) = streams(tmp.path());
    let data = tmp.path().join("data");
    import(&data, &[&input, &a], &[]);
    let out = tmp.path().join("out");
    export(&data, &out, &[]);
    for table in ["events", "interactions"] {
        let rows = rows(&out, table);
        let mine: Vec<_> = rows
            .iter()
            .filter(|(_, r)| r["tenant"] == json!(long))
            .collect();
        assert_eq!(mine.len(), 1, "{table}");
        let (part, _) = mine[0];
        let dir = part.split('/').next().unwrap();
        assert!(dir.len() < 255 && dir.starts_with("tenant=ttt"), "{dir}");
        assert!(
            rows.iter().any(|(_, r)| r["tenant"] == json!("acme01")),
            "{table}"
        );
        let named: Vec<_> = rows
            .iter()
            .filter(|(_, r)| r["tenant"] == json!(null_named))
            .map(|(part, _)| part.split('/').next().unwrap())
            .collect();
        assert_eq!(named, ["tenant=%5F_HIVE_DEFAULT_PARTITION__"], "{table}");
        assert!(
            rows.iter()
                .any(|(part, r)| r["tenant"].is_null() && part.starts_with("tenant=__HIVE")),
            "{table}"
        );
    }
}

/// The events table is made from the segments' facts where they exist
/// (docs/FORMAT.md §5), without parsing those payloads: facts that lie
/// (rewritten here with another agent and GUID) show in the table, and with
/// the facts removed the parsed rows come back. Status changes are always
/// parsed (the agent states read them whole).
#[test]
fn events_rows_come_from_the_segments_facts() {
    use ccvault_event::decode_message;
    use ccvault_log::{LogReader, Position, ScanItem};
    use ccvault_store::facts::FactsBuilder;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (a, b) = streams(tmp.path());
    import(&data, &[&a, &b], &["--segment-bytes", "256KiB"]);
    let honest_out = tmp.path().join("honest");
    export(&data, &honest_out, &[]);
    let by_offset = |out: &Path| -> BTreeMap<i64, serde_json::Map<String, Value>> {
        rows(out, "events")
            .into_iter()
            .map(|(_, row)| (row["offset"].as_i64().unwrap(), row))
            .collect()
    };
    let honest = by_offset(&honest_out);

    // Each segment's facts rewritten: the same records, another agent and
    // GUID for every event that names them.
    let log = LogReader::open(&data.join("log")).unwrap();
    let segments = log.segments();
    assert!(segments.len() >= 3, "{segments:?}");
    let mut builders: Vec<FactsBuilder> = segments.iter().map(|&s| FactsBuilder::new(s)).collect();
    for item in log.scan(Position::START) {
        let ScanItem::Record(at, rec) = item.unwrap() else {
            panic!("damage in a fresh archive")
        };
        let Ok(mut keys) = decode_message(&rec.payload).outcome else {
            continue;
        };
        if keys.agent_id.is_some() {
            keys.agent_id = Some("liar-agent".into());
        }
        if keys.interaction_guid.is_some() {
            keys.interaction_guid = Some("liar-guid-acme01".into());
        }
        let i = segments.iter().position(|&s| s == at.segment).unwrap();
        builders[i].push(rec.offset, &rec.payload, &keys);
    }
    for b in &builders {
        assert!(!b.is_empty());
        b.write(&ccvault_log::StdVfs, &data.join("facts")).unwrap();
    }
    let lying_out = tmp.path().join("lying");
    export(&data, &lying_out, &[]);
    let lying = by_offset(&lying_out);
    assert_eq!(lying.len(), honest.len());
    let mut from_facts = 0;
    for (offset, row) in &honest {
        let told = &lying[offset];
        let status_change = row["family"] == "AgentStatusChange";
        if row["agentId"].is_string() && !status_change {
            assert_eq!(told["agentId"], "liar-agent", "offset {offset}");
            from_facts += 1;
        } else {
            assert_eq!(told["agentId"], row["agentId"], "offset {offset}");
        }
        if row["interactionGUID"].is_string() && !status_change {
            assert_eq!(
                told["interactionGUID"], "liar-guid-acme01",
                "offset {offset}"
            );
        }
        assert_eq!(told["payload"], row["payload"], "offset {offset}");
    }
    assert!(
        from_facts > honest.len() / 2,
        "{from_facts} of {}",
        honest.len()
    );

    std::fs::remove_dir_all(data.join("facts")).unwrap();
    let parsed_out = tmp.path().join("parsed");
    export(&data, &parsed_out, &[]);
    assert_eq!(by_offset(&parsed_out), honest);

    // `reindex` writes the facts of every sealed segment that has none
    // (all but the last, which its next writer may append to), from the
    // log: an archive written before facts gets them.
    ccvault(&data, &["reindex"]).ok();
    let written: Vec<String> = std::fs::read_dir(data.join("facts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(written.len(), segments.len() - 1, "{written:?}");
    let verify = ccvault(&data, &["verify", "--format", "json"]).ok();
    let report = &verify.json_lines()[0];
    assert_eq!(report["clean"], true, "{report}");
    assert!(
        report["factsChecked"].as_u64().unwrap() > honest.len() as u64 / 2,
        "{report}"
    );
    let reindexed_out = tmp.path().join("reindexed");
    export(&data, &reindexed_out, &[]);
    assert_eq!(by_offset(&reindexed_out), honest);
}

/// Every visible data file under `out` (the hidden `.part-….tmp` ones
/// engines skip left out) opens as Parquet and reads to its last row.
fn assert_visible_files_whole(out: &Path, when: &str) {
    let mut dirs = vec![out.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".parquet") && !name.starts_with('.') {
                let reader = SerializedFileReader::new(File::open(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{when}: {} is not whole: {e}", path.display()));
                for row in reader.get_row_iter(None).unwrap() {
                    if let Err(e) = row {
                        panic!("{when}: {} is not whole: {e}", path.display());
                    }
                }
            }
        }
    }
}

/// `export --format parquet`, full or `--since-last`, SIGKILLed at random
/// moments of its run: every file it leaves visible is whole, and the next
/// run (`--since-last`, or a full one where no run ever finished) gives the
/// tables a clean full export gives, with no file but those its checkpoint
/// names. Replay with `CCVAULT_TEST_SEED`.
#[test]
fn an_export_killed_at_any_moment_leaves_whole_files_and_the_next_run_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, late) = archive_with_late(tmp.path());
    let (mut rng, seed) = common::Rng::seeded();
    eprintln!("export crash test seed {seed} (set CCVAULT_TEST_SEED to replay)");
    // The archive before and after its late lines, each with a clean full
    // export: what every interrupted run must end up equal to.
    let later = tmp.path().join("later");
    copy_dir(&data, &later);
    import(&later, &[&late], &[]);
    let (before_out, later_out) = (tmp.path().join("before"), tmp.path().join("later-out"));
    export(&data, &before_out, &[]);
    // How long each kind of run takes, so that the kills spread over it.
    let timed_export = |out: &Path, extra: &[&str]| {
        let t = std::time::Instant::now();
        export(&later, out, extra);
        u64::try_from(t.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1_000)
    };
    let mut full_us = timed_export(&later_out, &[]);
    let want = contents(&later_out);
    let incremental = tmp.path().join("incremental-timing");
    copy_dir(&before_out, &incremental);
    let mut incremental_us = timed_export(&incremental, &["--since-last"]);
    assert_eq!(
        contents(&incremental),
        want,
        "an incremental run gave other tables"
    );

    // At least ROUNDS rounds, and on until half of them found the export
    // running: on a loaded machine a run may end before its kill, and a
    // test whose kills all came too late would prove nothing.
    let mut killed_running = 0;
    const ROUNDS: usize = 8;
    let mut round = 0;
    while round < ROUNDS || (killed_running < ROUNDS / 2 && round < 4 * ROUNDS) {
        // Even rounds: the first export into an empty directory; odd ones:
        // an incremental run over the export made before the late lines.
        let out = tmp.path().join(format!("out-{round}"));
        let first = round % 2 == 0;
        if !first {
            copy_dir(&before_out, &out);
        }
        let mut args = export_args(&out);
        if !first {
            args.push("--since-last");
        }
        let run_us = if first {
            &mut full_us
        } else {
            &mut incremental_us
        };
        let after = std::time::Duration::from_micros(rng.below(*run_us + *run_us / 10));
        let was_running = common::killed_after(&later, &args, after);
        killed_running += usize::from(was_running);
        if !was_running {
            // It ran faster than when timed (a warmer cache): aim earlier.
            *run_us = (*run_us).min(after.as_micros() as u64 * 9 / 10).max(1_000);
        }
        let when = format!(
            "round {round} ({}), killed after {after:?} of ~{run_us} µs (running: {was_running})",
            if first { "first export" } else { "incremental" }
        );
        eprintln!("{when}");
        if out.exists() {
            assert_visible_files_whole(&out, &when);
        }
        // A run that never finished leaves no checkpoint to continue from.
        let resumable = out.join("_ccvault_export.json").exists();
        export(
            &later,
            &out,
            if resumable { &["--since-last"] } else { &[] },
        );
        assert_eq!(
            contents(&out),
            want,
            "{when}: the next run gave other tables"
        );
        // `rows` (in `contents`) refuses any stray file, hidden ones too.
        std::fs::remove_dir_all(&out).unwrap();
        round += 1;
    }
    assert!(
        killed_running >= ROUNDS / 2,
        "only {killed_running} of {round} kills found the export running: the test lost its teeth"
    );
}

/// The usual log ends in a tally (an import that dropped duplicates ends
/// with their counts, a record of its own): the export marks the last event
/// before it, so `--since-last` into another archive's export is still
/// refused (until 2026-12-06 such an export carried no mark, and a run from
/// another archive mixed the two silently), and its own next run goes on.
#[test]
fn an_export_of_a_log_that_ends_in_a_tally_still_knows_its_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let s = common::Stream {
        events: 600,
        interactions: 60,
        line_len: 300,
    };
    // Lines `from..to` of the stream, for each pair.
    let part = |name: &str, spans: &[(usize, usize)]| {
        let path = tmp.path().join(name);
        let text: String = spans.iter().map(|&(from, to)| s.text(from..to)).collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    let data = tmp.path().join("data");
    let out = tmp.path().join("out");
    // The last 50 lines again: dropped as duplicates, counted in a tally.
    import(&data, &[&part("a.ndjson", &[(0, 300), (250, 300)])], &[]);
    assert_eq!(common::stats(&data).duplicates, 50);
    export(&data, &out, &[]);
    let checkpoint = std::fs::read_to_string(out.join("_ccvault_export.json")).unwrap();
    assert!(checkpoint.contains("lastRecord"), "{checkpoint}");

    let other = tmp.path().join("other");
    import(&other, &[&part("c.ndjson", &[(100, 500)])], &[]);
    let mut args = export_args(&out);
    args.push("--since-last");
    let refused = ccvault(&other, &args).expect_code(1);
    assert!(
        refused.stderr.contains("another archive's")
            && refused.stderr.contains("run a full export"),
        "{}",
        refused.stderr
    );

    import(&data, &[&part("b.ndjson", &[(300, 320)])], &[]);
    export(&data, &out, &["--since-last"]);
    assert_eq!(rows(&out, "events").len(), 320);
}

/// An incremental export trusts the offset it reached only where the log
/// still holds, at its place, the record it exported last. After the log
/// lost its tail (the active segment removed) and new records took those
/// offsets, or pointed at another archive, `--since-last` is refused with
/// what to do, instead of leaving the new records out; a full export then
/// holds every record, and incremental runs go on from it.
#[test]
fn an_incremental_export_refuses_a_log_that_lost_what_it_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let s = common::Stream {
        events: 900,
        interactions: 60,
        line_len: 300,
    };
    let part = |name: &str, range: std::ops::Range<usize>| {
        let path = tmp.path().join(name);
        std::fs::write(&path, s.text(range)).unwrap();
        path
    };
    let data = tmp.path().join("data");
    let out = tmp.path().join("out");
    let tenant_out = tmp.path().join("tenant-out");
    let tenant = ["--tenant", "acmecorp01"];
    import(
        &data,
        &[&part("a.ndjson", 0..400)],
        &["--segment-bytes", "40KiB"],
    );
    export(&data, &out, &[]);
    export(&data, &tenant_out, &tenant);
    let b = part("b.ndjson", 400..420);
    import(&data, &[&b], &[]);
    export(&data, &out, &["--since-last"]);
    export(&data, &tenant_out, &["--since-last", tenant[0], tenant[1]]);
    assert_eq!(rows(&out, "events").len(), 420);
    assert_eq!(rows(&tenant_out, "events").len(), 420);

    // Another archive (larger, so the offset it reached is there) is not
    // this export's.
    let other = tmp.path().join("other");
    import(&other, &[&part("c.ndjson", 100..700)], &[]);
    let mut args = export_args(&out);
    args.push("--since-last");
    let refused = ccvault(&other, &args).expect_code(1);
    assert!(
        refused.stderr.contains("run a full export"),
        "{}",
        refused.stderr
    );

    // The active segment lost, and more records than it held appended.
    let active = common::segment_files(&data);
    assert_eq!(active.len(), 1, "{active:?}");
    std::fs::remove_file(&active[0]).unwrap();
    import(&data, &[&part("d.ndjson", 420..900)], &[]);
    let mut tenant_args = export_args(&tenant_out);
    tenant_args.extend_from_slice(&["--since-last", tenant[0], tenant[1]]);
    for (what, args) in [("whole", &args), ("tenant", &tenant_args)] {
        let refused = ccvault(&data, args).expect_code(1);
        assert!(
            refused.stderr.contains("lost records since")
                && refused.stderr.contains("run a full export"),
            "{what}: {}",
            refused.stderr
        );
    }
    let held = ccvault(&data, &["stats", "--format", "json"])
        .ok()
        .json_lines()[0]["records"]
        .as_u64()
        .unwrap();
    export(&data, &out, &[]);
    assert_eq!(rows(&out, "events").len() as u64, held);
    import(&data, &[&b], &[]);
    export(&data, &out, &["--since-last"]);
}

/// An export of many small partitions (a thousand tenants) stays within a
/// process's file descriptors: files completed faster than they sync wait
/// for the sync thread instead of piling up open (under `ulimit -n 256` it
/// failed with "Too many open files").
#[test]
fn a_thousand_tenants_export_under_a_small_file_descriptor_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("tenants.ndjson");
    let mut text = String::new();
    for i in 0..5_000u64 {
        let ms = 1_763_900_000_000 + i * 37;
        text.push_str(&format!(
            "{{\"Interaction\":{{\"event\":\"InteractionCreated\",\"interactionGUID\":\"int-{ms:x}-Qm7tZp2LxWc9aRf3kYv8bN{i:04}-phone-00-t{:04}\",\"interactionEventTS\":{}}}}}\n",
            i % 1_000,
            ms / 1000
        ));
    }
    std::fs::write(&input, text).unwrap();
    let data = tmp.path().join("data");
    import(&data, &[&input], &[]);
    let out = tmp.path().join("out");
    let run = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" --data-dir \"$1\" -q export --format parquet --out \"$2\"")
        .arg(common::bin())
        .arg(&data)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let tenants = std::fs::read_dir(out.join("events")).unwrap().count();
    assert_eq!(tenants, 1_000);
    let rows: i64 = files(&out, "events")
        .iter()
        .map(|(_, f)| {
            SerializedFileReader::new(File::open(f).unwrap())
                .unwrap()
                .metadata()
                .file_metadata()
                .num_rows()
        })
        .sum();
    assert_eq!(rows, 5_000);
}

/// Every directory a run makes is a new entry of its parent, and the
/// parent is synced before the checkpoint that names the files under it:
/// a new tenant's `tenant=` directory and the table directory holding it
/// too, not only the `date=` directory that receives the files (until
/// 2026-12-07 only those: on a file system that does not order directory
/// updates, a power cut could keep the checkpoint and lose a partition;
/// outside audit). Counted with strace.
#[test]
fn the_parents_of_the_directories_a_run_makes_are_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = streams(tmp.path());
    let data = tmp.path().join("data");
    let out = tmp.path().join("out");
    import(&data, &[&a], &[]);
    export(&data, &out, &["--since-last"]);
    import(&data, &[&b], &[]);
    let trace = tmp.path().join("strace.out");
    let mut args = export_args(&out);
    args.push("--since-last");
    let wrapper = [
        "strace",
        "-f",
        "-qq",
        "-y",
        "-e",
        "trace=fsync,fdatasync",
        "-o",
        trace.to_str().unwrap(),
    ];
    let run = common::ccvault_under(&wrapper, &data, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let traced = std::fs::read_to_string(&trace).unwrap();
    for table in ["events", "interactions"] {
        for synced in [out.join(table), out.join(table).join("tenant=globex02")] {
            let named = format!("<{}>", synced.display());
            assert!(traced.contains(&named), "{named} not synced:\n{traced}");
        }
    }
}
