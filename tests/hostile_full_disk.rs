//! Reads on a machine that refuses writes (issue 15 item 7, "reads work on
//! a full disk"), through the built binary: every read command gives the
//! answer it gives on a roomy disk, whether the projections were built
//! before the refusal, are behind the log, or were never built, or the
//! last writer was killed and left the index needing redb's repair (made in
//! memory), and a read that could not save the projections leaves no
//! half-written file behind.
//!
//! Two refusals: the file size limit (`ulimit -f 0`: every write to a file
//! fails with EFBIG; any user, so it always runs), and a real full file
//! system (a small tmpfs filled to the last byte: ENOSPC; mounting needs
//! root, which CI has; where mounting is refused the test says so on stderr
//! and runs the file size limit alone).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ccvault, command, import, is_root, stats, Run, Stream};

/// A small tmpfs mounted for one test and unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// `Err(why)` when this process may not mount one (only root may, and
    /// not in every container).
    fn mount(at: PathBuf, bytes: u64) -> Result<SmallDisk, String> {
        if !is_root() {
            return Err("not root".into());
        }
        fs::create_dir_all(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("tmpfs")
            .arg(&at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount tmpfs at {}: {}",
                at.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk { path: at })
    }

    /// A 12 MiB disk in `tmp` for a test that needs nothing else, or
    /// `None`, said on stderr, where this process may not mount one.
    fn for_test(tmp: &Path) -> Option<SmallDisk> {
        SmallDisk::mount(tmp.join("disk"), 12 << 20)
            .map_err(|why| {
                eprintln!("skipped ({why}): the test cannot mount a small file system to fill")
            })
            .ok()
    }

    /// Writes a file until the file system refuses more.
    fn fill(&self) {
        use std::io::Write;
        let mut f = fs::File::create(self.path.join("filler")).unwrap();
        let chunk = vec![0xA5u8; 4096];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC: {e}");
                break;
            }
        }
        // The last partial block too.
        while f.write_all(&[0xA5]).is_ok() {}
        assert!(fs::write(self.path.join("probe"), b"x").is_err());
    }

    /// [`SmallDisk::fill`], then gives `bytes` back.
    fn fill_leaving(&self, bytes: u64) {
        self.fill();
        let filler = self.path.join("filler");
        let len = fs::metadata(&filler).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&filler).unwrap();
        f.set_len(len.saturating_sub(bytes)).unwrap();
    }

    fn free(&self) {
        fs::remove_file(self.path.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Runs `ccvault --data-dir DIR ARGS...` with a file size limit of 0: every
/// write to a regular file fails with EFBIG (SIGXFSZ, whose default action
/// would kill the process instead, is ignored by ccvault itself).
fn ccvault_no_file_writes(dir: &Path, args: &[&str]) -> Run {
    let limit = r#"ulimit -f 0 && exec "$0" "$@""#;
    common::ccvault_under(&["sh", "-c", limit], dir, args)
}

/// What the projections are when the writes start failing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Prepared {
    NeverBuilt,
    Current,
    BehindTheLog,
    /// Behind the log, whose last records a writer killed with SIGKILL
    /// indexed: the index needs the repair redb makes after a crash.
    WriterKilled,
}

/// Archives `text` through `import -` and kills the importer with SIGKILL
/// once another process sees all `records` of the archive indexed, so that
/// its index is left open, needing redb's repair, and nothing is behind it.
fn import_then_kill(dir: &Path, text: &str, records: u64) {
    use std::io::Write;
    let mut child = command(dir, &["import", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The pipe stays open: the import ends its batch at the pause, commits
    // it, and waits for more.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while stats(dir).records < records {
        assert!(
            std::time::Instant::now() < deadline,
            "the import did not index its input"
        );
        assert!(child.try_wait().unwrap().is_none(), "the import exited");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
}

const UNSAVED: &str = "could not save the projections";

/// Issue 15 item 7: every read command works on an archive whose file
/// system refuses writes: `stats`, `show`, `export`, `interactions`,
/// `report`, `agents` and `verify` give the same answers as on a roomy
/// disk, whether the projections were built before, are behind the log, or
/// were never built (then they are computed in memory), and a read that
/// could not save them says so and leaves no half-written file. Once the
/// writes work again, the next read saves them.
#[test]
fn reads_work_when_the_disk_is_full_or_no_file_may_grow() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Stream {
        events: 400,
        interactions: 80,
        line_len: 300,
    };
    let first = tmp.path().join("first.ndjson");
    fs::write(&first, s.text(0..300)).unwrap();
    let second = tmp.path().join("second.ndjson");
    fs::write(&second, s.text(300..400)).unwrap();
    let roomy = tmp.path().join("roomy");
    import(&roomy, &[&first, &second], &[]);
    let reads: Vec<Vec<String>> = vec![
        vec!["stats".into(), "--format".into(), "json".into()],
        vec!["show".into(), s.guid(3), "--raw".into()],
        vec!["show".into(), s.guid(5)],
        vec!["export".into()],
        vec!["interactions".into(), "--format".into(), "json".into()],
        vec!["report".into(), "--format".into(), "csv".into()],
        vec!["agents".into(), "--format".into(), "json".into()],
        vec!["verify".into()],
    ];
    let answer = |run: &Run| -> String {
        assert_eq!(run.code, 0, "{:?}: {}", run.args, run.stderr);
        let out = run.stdout_str();
        if run.args[0] == "stats" {
            // Sizes on disk differ between the copies; the counts may not.
            let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
            for k in ["bytes", "logBytes", "indexBytes", "projectionsBytes"] {
                v.as_object_mut().unwrap().remove(k);
            }
            return v.to_string();
        }
        if run.args[0] == "verify" {
            // The projections are compared with a recompute written to a
            // scratch file, which a refusing file system refuses: the log
            // and index verdict must be the same, the projections' part
            // says why it was not checked (docs/OPERATIONS.md).
            let (verdict, projections) = out.trim_end().rsplit_once(", ").unwrap();
            assert!(
                projections.contains("projections") && !projections.contains("unreadable"),
                "{}",
                out
            );
            return verdict.to_owned();
        }
        out
    };
    let want: Vec<String> = reads
        .iter()
        .map(|a| {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            answer(&ccvault(&roomy, &a))
        })
        .collect();
    assert_eq!(want[4].lines().count(), 80, "interactions: {}", want[4]);
    assert!(want[5].contains(",80,80,"), "report: {}", want[5]);

    // Every read, each checked against the roomy archive's answer.
    let read_all = |dir: &Path, run: fn(&Path, &[&str]) -> Run, refusal: &str, how: Prepared| {
        let mut runs = Vec::new();
        for (args, want) in reads.iter().zip(&want) {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = run(dir, &a);
            assert_eq!(&answer(&run), want, "{refusal}, {how:?}: {a:?}");
            runs.push(run);
        }
        runs
    };
    let prepare = |dir: &Path, how: Prepared| {
        match how {
            Prepared::NeverBuilt => drop(import(dir, &[&first, &second], &[])),
            Prepared::Current => {
                import(dir, &[&first, &second], &[]);
                ccvault(dir, &["report"]).ok();
            }
            Prepared::BehindTheLog => {
                import(dir, &[&first], &[]);
                ccvault(dir, &["report"]).ok();
                import(dir, &[&second], &[]);
            }
            Prepared::WriterKilled => {
                import(dir, &[&first], &[]);
                ccvault(dir, &["report"]).ok();
                import_then_kill(dir, &s.text(300..400), 400);
            }
        }
        let projections = dir.join("projections.redb");
        (how != Prepared::NeverBuilt).then(|| fs::read(&projections).unwrap())
    };
    // After the refused reads: the projections file is as it was (never
    // half-written, never created), and the reads that had to catch up said
    // that nothing was saved.
    let check_after = |dir: &Path, how: Prepared, before: Option<Vec<u8>>, runs: &[Run]| {
        let projections = dir.join("projections.redb");
        match &before {
            None => assert!(
                !projections.exists(),
                "{how:?}: a read that could not build the projections left {} behind",
                projections.display()
            ),
            Some(_) => assert!(projections.exists(), "{how:?}"),
        }
        for run in runs {
            let catches_up = matches!(run.args[0].as_str(), "interactions" | "report" | "agents")
                || (run.args[0] == "show" && run.args.len() == 2);
            let said = run.stderr.contains(UNSAVED);
            assert_eq!(
                said,
                catches_up && how != Prepared::Current,
                "{how:?}: {:?}: {}",
                run.args,
                run.stderr
            );
        }
    };
    // Writes work again: the next read saves the projections.
    let check_recovered = |dir: &Path, how: Prepared| {
        let run = ccvault(dir, &["report", "--format", "csv"]).ok();
        assert!(!run.stderr.contains(UNSAVED), "{how:?}: {}", run.stderr);
        assert_eq!(answer(&run), want[5], "{how:?}");
        assert!(dir.join("projections.redb").exists(), "{how:?}");
    };

    for how in [
        Prepared::NeverBuilt,
        Prepared::Current,
        Prepared::BehindTheLog,
        Prepared::WriterKilled,
    ] {
        // No file may grow.
        let dir = tmp.path().join(format!("limited-{how:?}"));
        let before = prepare(&dir, how);
        let index = fs::read(dir.join("index.redb")).unwrap();
        let runs = read_all(&dir, ccvault_no_file_writes, "file size limit", how);
        check_after(&dir, how, before, &runs);
        // The index a killed writer left was repaired in memory, for each
        // read, and is as it was.
        if how == Prepared::WriterKilled {
            for run in &runs {
                assert!(
                    run.stderr.contains("repaired in memory"),
                    "{:?}: {}",
                    run.args,
                    run.stderr
                );
            }
        }
        assert!(
            fs::read(dir.join("index.redb")).unwrap() == index,
            "{how:?}"
        );
        check_recovered(&dir, how);

        // A full file system.
        let disk = match SmallDisk::mount(tmp.path().join(format!("disk-{how:?}")), 8 << 20) {
            Ok(disk) => disk,
            Err(why) => {
                eprintln!("skipped the full disk ({why}): the test cannot mount a small file system to fill; the file size limit ran");
                continue;
            }
        };
        let dir = disk.path.join("archive");
        let before = prepare(&dir, how);
        disk.fill();
        let runs = read_all(&dir, ccvault, "full disk", how);
        check_after(&dir, how, before, &runs);
        disk.free();
        check_recovered(&dir, how);
    }
}

/// An import stopped part-way by a write error (here the file size limit,
/// as a full disk would) says after the error what it knew to be durable:
/// a lower bound of what the archive holds, named by input and line, so
/// the operator knows how far it got; importing the same input again
/// then archives the rest, the part already archived counted as
/// duplicates.
#[test]
fn an_import_stopped_by_a_write_error_says_what_was_durable() {
    let tmp = tempfile::tempdir().unwrap();
    // ~27 MB of lines against a limit of ~20 MB: the error comes in the
    // fifth batch of 16,384 lines, after the first ones were made durable.
    let s = Stream {
        events: 90_000,
        interactions: 9_000,
        line_len: 300,
    };
    let input = tmp.path().join("events.ndjson");
    fs::write(&input, s.text(0..s.events)).unwrap();
    let dir = tmp.path().join("archive");
    let limit = r#"ulimit -f 20000 && exec "$0" "$@""#;
    let input_arg = input.to_str().unwrap();
    let failed = common::ccvault_under(&["bash", "-c", limit], &dir, &["import", input_arg]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("File too large"),
        "{}",
        failed.stderr
    );
    let said = failed
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("ccvault: before the error, at least "))
        .unwrap_or_else(|| panic!("no word of what was durable: {}", failed.stderr));
    let (lines, rest) = said.split_once(' ').unwrap();
    let lines: u64 = lines.parse().unwrap();
    assert!(
        rest.starts_with(&format!(
            "lines were durable (through line {lines} of {input_arg}: {lines} archived"
        )),
        "{said}"
    );
    assert!(
        said.ends_with(
            "import the same inputs again to go on (what is archived already counts as duplicates)"
        ),
        "{said}"
    );
    let held = stats(&dir).records;
    assert!(
        lines > 0 && lines <= held && held < s.events as u64,
        "said {lines} durable, the archive holds {held} of {}",
        s.events
    );

    // Going on: everything archived once.
    let again = ccvault(&dir, &["import", "--format", "json", input_arg]).ok();
    let summary = &again.json_lines()[0];
    assert_eq!(summary["duplicates"], held, "{summary}");
    assert_eq!(stats(&dir).records, s.events as u64);
}

/// A full disk that a writer left the index needing repair on (an import
/// that failed there): the index is kept, never taken for damage, removed
/// and rebuilt on that same disk (a read there once left an empty index,
/// and every later read saw no record); a `reindex` that fails for space
/// leaves the index it was to replace, and no scratch file; every read
/// command keeps answering, and so does `serve`, whose contact pages and
/// listing go to memory when no scratch file can be written (they were
/// 500). Once space is freed, `verify` says what the index lacked, and a
/// second run is clean.
#[test]
fn a_full_disk_after_a_failed_write_keeps_the_index_and_every_read_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::for_test(tmp.path()) else {
        return;
    };
    let s = Stream {
        events: 40_000,
        interactions: 4_000,
        line_len: 300,
    };
    let first = tmp.path().join("first.ndjson");
    fs::write(&first, s.text(0..20_000)).unwrap();
    let second = tmp.path().join("second.ndjson");
    fs::write(&second, s.text(20_000..40_000)).unwrap();
    let dir = disk.path.join("archive");
    import(&dir, &[&first], &["--segment-bytes", "2MiB"]);
    disk.fill();
    let failed = ccvault(&dir, &["import", second.to_str().unwrap()]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let index_len = || fs::metadata(dir.join("index.redb")).unwrap().len();
    let before = index_len();

    let counts = |when: &str| -> u64 {
        let run = ccvault(&dir, &["stats", "--format", "json"]);
        assert_eq!(run.code, 0, "{when}: {}", run.stderr);
        assert!(
            !run.stderr.contains("unusable") && !run.stderr.contains("rebuilding"),
            "{when}: {}",
            run.stderr
        );
        let v: serde_json::Value = serde_json::from_str(&run.stdout_str()).unwrap();
        v["records"].as_u64().unwrap()
    };
    let records = counts("the first read");
    assert!(records >= 20_000, "{records}");
    assert_eq!(counts("the second read"), records);
    assert_eq!(index_len(), before, "the reads changed the index");

    let reindex = ccvault(&dir, &["reindex"]);
    assert_eq!(reindex.code, 1, "{}", reindex.stderr);
    assert!(
        !dir.join("index.redb.rebuild").exists(),
        "a failed reindex left its scratch file"
    );
    assert_eq!(counts("after the failed reindex"), records);
    let interactions = ccvault(&dir, &["interactions", "--format", "json"]);
    assert_eq!(interactions.code, 0, "{}", interactions.stderr);
    let legs = interactions.json_lines().len();
    assert_eq!(legs, s.interactions, "{}", interactions.stderr);
    let exported = ccvault(&dir, &["export"]).ok();
    assert_eq!(exported.stdout_str().lines().count() as u64, records);

    // `serve` on the full disk.
    let log = tmp.path().join("serve.log");
    let mut daemon = common::daemon::Daemon::spawn(
        common::command(&dir, &["serve", "--addr", "127.0.0.1:0"]),
        log,
    );
    let (addr, _) = daemon.serving_addr();
    let guid = s.guid(3);
    for path in [
        format!("/api/contact/{guid}"),
        format!("/contact/{guid}"),
        format!("/contact/{guid}/events.ndjson"),
        "/api/interactions".to_owned(),
    ] {
        let r = common::http::get(addr, &path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let listing = common::http::get(addr, "/api/interactions").text();
    assert_eq!(listing.lines().count(), legs);
    let raw = common::http::get(addr, &format!("/contact/{guid}/events.ndjson")).text();
    let shown = ccvault(&dir, &["show", &guid, "--raw"]).ok();
    assert_eq!(raw, shown.stdout_str());
    drop(daemon);

    // Space again.
    disk.free();
    let first_verify = ccvault(&dir, &["verify", "--no-projections"]);
    assert!(
        first_verify.code == 0
            || first_verify
                .stdout_str()
                .contains("the index was behind the log"),
        "{}{}",
        first_verify.stdout_str(),
        first_verify.stderr
    );
    ccvault(&dir, &["verify"]).ok();
    import(&dir, &[&first, &second], &[]);
    assert_eq!(stats(&dir).records, s.events as u64);
}

/// An index removed on a full disk (`rm index.redb` to make room, or a
/// restore that copied only the log), or damaged there, is built whole by
/// the first open that can write it, or not at all: a build the disk stops
/// leaves no file, so no later read answers from an index that has seen
/// part of the log, or none of it (a damaged one was replaced by an empty
/// one, and the read answered 0 records), and every read says why it
/// cannot answer until there is space.
#[test]
fn an_index_removed_on_a_full_disk_is_built_whole_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::for_test(tmp.path()) else {
        return;
    };
    let s = Stream {
        events: 20_000,
        interactions: 2_000,
        line_len: 300,
    };
    let events = tmp.path().join("events.ndjson");
    fs::write(&events, s.text(0..20_000)).unwrap();
    let dir = disk.path.join("archive");
    import(&dir, &[&events], &["--segment-bytes", "2MiB"]);
    let mut refused = 0;
    for damaged in [false, true] {
        for room in [0u64, 16 << 10, 64 << 10, 192 << 10] {
            let index = dir.join("index.redb");
            if damaged {
                // Cut short too, so that removing it frees less than a
                // build needs.
                fs::write(&index, [b'#'; 4096]).unwrap();
            } else {
                fs::remove_file(&index).unwrap();
            }
            disk.fill_leaving(room);
            let mut refused_here = false;
            for attempt in ["first", "second"] {
                let case = format!("damaged {damaged}, {room} B free, {attempt} read");
                let run = ccvault(&dir, &["stats", "--format", "json"]);
                if run.code == 0 {
                    let v: serde_json::Value = serde_json::from_str(&run.stdout_str()).unwrap();
                    assert_eq!(
                        v["records"].as_u64(),
                        Some(20_000),
                        "{case}: {}",
                        run.stderr
                    );
                    continue;
                }
                refused += 1;
                refused_here = true;
                assert_eq!(run.code, 1, "{case}: {}", run.stderr);
                // A damaged index goes before the build: then it is missing.
                let missing = !damaged || attempt == "second";
                assert!(
                    run.stderr.contains("No space left")
                        && (!missing || run.stderr.contains("index.redb is missing")),
                    "{case}: {}",
                    run.stderr
                );
                assert!(
                    !index.exists() && !dir.join("index.redb.rebuild").exists(),
                    "{case}: a build the disk stopped left a file"
                );
            }
            if refused_here {
                // verify still checks the log, every record, and says why
                // the index went unchecked (it checked nothing: an outside
                // audit).
                let case = format!("damaged {damaged}, {room} B free, verify");
                let run = ccvault(&dir, &["verify", "--format", "json"]);
                assert_eq!(run.code, 1, "{case}: {}", run.stderr);
                let v: serde_json::Value = serde_json::from_str(&run.stdout_str()).unwrap();
                assert_eq!(v["records"].as_u64(), Some(20_000), "{case}: {v}");
                assert_eq!(v["damage"].as_array().map(Vec::len), Some(0), "{case}: {v}");
                let problem = v["indexProblems"][0]["problem"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    problem.starts_with("not checked: ")
                        && problem.contains("index.redb is missing"),
                    "{case}: {v}"
                );
                assert!(!dir.join("index.redb.rebuild").exists(), "{case}");
            }
            disk.free();
            assert_eq!(
                stats(&dir).records,
                20_000,
                "damaged {damaged}, {room} B free, then space again"
            );
        }
    }
    assert!(
        refused > 0,
        "the disk never refused a build: the test tests nothing"
    );
    ccvault(&dir, &["verify", "--no-projections"]).ok();
}

/// An index that has seen none of the log's records (what an import the
/// disk stopped before its first index commit leaves) is no answer on a
/// full disk: every read fails naming it, with nothing on stdout (an
/// `export` taken as a backup exited 0 with nothing; outside audit), and
/// once space is back the next read indexes every record.
#[test]
fn an_index_that_has_seen_nothing_is_no_answer_on_a_full_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::for_test(tmp.path()) else {
        return;
    };
    let s = Stream {
        events: 5_000,
        interactions: 500,
        line_len: 300,
    };
    let events = tmp.path().join("events.ndjson");
    fs::write(&events, s.text(0..5_000)).unwrap();
    let dir = disk.path.join("archive");
    import(&dir, &[&events], &[]);
    // The index of an archive that has archived nothing: no commit of any
    // record, as the stopped import's.
    let nothing = tmp.path().join("nothing.ndjson");
    fs::write(&nothing, b"").unwrap();
    let fresh = tmp.path().join("fresh");
    import(&fresh, &[&nothing], &[]);
    fs::copy(fresh.join("index.redb"), dir.join("index.redb")).unwrap();
    disk.fill();
    for args in [
        &["export"][..],
        &["stats"],
        &["interactions", "--format", "json"],
    ] {
        for attempt in ["first", "second"] {
            let run = ccvault(&dir, args);
            assert_eq!(run.code, 1, "{args:?} {attempt}: {}", run.stderr);
            assert!(run.stdout.is_empty(), "{args:?} {attempt}");
            assert!(
                run.stderr.contains("indexes none of the log's records yet")
                    || run.stderr.contains("index.redb is missing"),
                "{args:?} {attempt}: {}",
                run.stderr
            );
        }
    }
    disk.free();
    assert_eq!(stats(&dir).records, 5_000);

    // The same index left needing redb's repair by a writer killed before
    // its first commit (an import the disk stopped in the middle), with
    // room for the repair but not for indexing the log: the read that
    // tries says what to do as every other does, where until 2026-12-07 it failed
    // with the scratch file's bare "No space left on device" (an outside
    // audit), and the log keeps every record.
    let killed = tmp.path().join("killed");
    let mut child = command(&killed, &["import", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !killed.join("writer.lock").exists() || !killed.join("index.redb").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the import never opened its archive"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut said = 0;
    for room in [16u64 << 10, 64 << 10] {
        fs::copy(killed.join("index.redb"), dir.join("index.redb")).unwrap();
        disk.fill_leaving(room);
        let run = ccvault(&dir, &["stats"]);
        if run.code != 0 {
            said += 1;
            assert_eq!(run.code, 1, "{room} B free: {}", run.stderr);
            assert!(
                (run.stderr.contains("indexes none of the log's records yet")
                    || run.stderr.contains("index.redb is missing"))
                    && run.stderr.contains("free space"),
                "{room} B free: {}",
                run.stderr
            );
        }
        disk.free();
        assert_eq!(
            stats(&dir).records,
            5_000,
            "{room} B free, then space again"
        );
    }
    assert!(
        said > 0,
        "the disk never refused the build: the test tests nothing"
    );
}
