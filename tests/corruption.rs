//! Corruption test: damage a real archive byte by byte and check that no
//! command panics, `verify` names the segment file and byte position of the
//! damage, and every record that is not damaged stays readable, before and
//! after the damaged one. Truncating the last segment anywhere is recovered
//! by the next writer; a damaged index is replaced by `reindex`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use ccvault_log::{segment_file_name, LogReader, Position, ScanItem};
use common::{ccvault, copy_dir, empty_file, import, scan, stats, Stream};

/// Where one record of the pristine archive lives.
#[derive(Debug, Clone)]
struct Frame {
    segment: u64,
    start: u64,
    end: u64,
    offset: u64,
    /// Its line in the stream (0-based).
    line: usize,
}

struct Pristine {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    input: PathBuf,
    stream: Stream,
    frames: Vec<Frame>,
    /// Base offset and file length of each segment.
    segments: Vec<(u64, u64)>,
}

impl Pristine {
    /// An archive of a generated stream in many small segments.
    fn build() -> Pristine {
        let tmp = tempfile::tempdir().unwrap();
        let stream = Stream {
            events: 2400,
            interactions: 600,
            line_len: 220,
        };
        let input = tmp.path().join("stream.ndjson");
        stream.write(&input);
        let dir = tmp.path().join("pristine");
        // Sealed segments stay `.seg`: these tests flip their bytes
        // (tests in crates/log/tests/segz.rs flip those of `.segz` files).
        import(
            &dir,
            &[&input],
            &["--segment-bytes", "65536", "--no-compress"],
        );
        let log = LogReader::open(&dir.join("log")).unwrap();
        let mut frames = Vec::new();
        for item in log.scan(Position::START) {
            match item.unwrap() {
                ScanItem::Record(at, rec) => frames.push(Frame {
                    segment: at.segment,
                    start: u64::from(at.pos),
                    end: u64::from(at.pos) + rec.as_ref().frame_len(),
                    offset: rec.offset,
                    line: stream.index_of(&rec.payload).expect("a line of the stream"),
                }),
                ScanItem::Damage(d) => panic!("the pristine archive is damaged: {d}"),
            }
        }
        assert_eq!(frames.len(), stream.events);
        let segments: Vec<(u64, u64)> = log
            .segments()
            .into_iter()
            .map(|b| (b, fs::metadata(seg_path(&dir, b)).unwrap().len()))
            .collect();
        assert!(segments.len() >= 8, "want many segments: {segments:?}");
        ccvault(&dir, &["verify"]).ok();
        Pristine {
            _tmp: tmp,
            dir,
            input,
            stream,
            frames,
            segments,
        }
    }

    /// A fresh copy of the archive to damage.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self._tmp.path().join(name);
        if to.exists() {
            fs::remove_dir_all(&to).unwrap();
        }
        copy_dir(&self.dir, &to);
        to
    }

    fn frame_at(&self, segment: u64, pos: u64) -> Option<usize> {
        self.frames
            .iter()
            .position(|f| f.segment == segment && f.start <= pos && pos < f.end)
    }

    /// Checks that `show GUID --raw` of interaction `g` prints exactly the
    /// lines of `g` that `alive` keeps, in canonical order; with none left it
    /// must be a clear error.
    fn check_show(&self, dir: &Path, g: usize, alive: impl Fn(usize) -> bool, when: &str) {
        let guid = self.stream.guid(g);
        let expected: String = (g..self.stream.events)
            .step_by(self.stream.interactions)
            .filter(|&i| alive(i))
            .map(|i| self.stream.line(i) + "\n")
            .collect();
        let run = ccvault(dir, &["show", &guid, "--raw"]);
        if expected.is_empty() {
            assert_eq!(run.code, 1, "{when}: show {guid} of a lost interaction");
            assert!(run.stderr.contains(&guid), "{when}: {}", run.stderr);
        } else {
            let run = run.ok();
            assert_eq!(run.stdout_str(), expected, "{when}: show {guid} --raw");
        }
    }
}

/// The whole stream as NDJSON, but one line in ten with its
/// `interactionGUID` key misspelled (same length, so an archive of it is
/// laid out like one of the stream): what the index and the facts of such
/// an archive say is not what the stream's own archive holds.
fn misspelled_guid_keys(stream: &Stream) -> String {
    (0..stream.events)
        .map(|i| {
            let line = stream.line(i);
            let line = if i % 10 == 3 {
                line.replacen("\"interactionGUID\"", "\"interactionGUIX\"", 1)
            } else {
                line
            };
            line + "\n"
        })
        .collect()
}

fn seg_path(dir: &Path, base: u64) -> PathBuf {
    dir.join("log").join(segment_file_name(base))
}

/// Cuts the file at `path` to `len` bytes.
fn cut_file(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Every file of the log and its bytes, sorted by path (to show a command
/// left them as they were).
fn log_contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        // The lock file holds its last holder's pid.
        .filter(|p| p.file_name().is_some_and(|n| n != "writer.lock"))
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    all.sort();
    all
}

fn flip(path: &Path, pos: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[pos as usize] ^= 0x5A;
    fs::write(path, bytes).unwrap();
}

/// How much of what a flip must not break is checked again.
#[derive(Clone, Copy, PartialEq)]
enum Checks {
    /// Everything.
    All,
    /// What depends on which byte was flipped: `verify`'s report, the
    /// records a scan serves, and what `show` gives of the damaged
    /// interaction. Left out: `stats` (it reads only the index, which no
    /// flip of the log touches) and the neighbours' `show` (read at their
    /// own positions, which no byte of another record changes).
    ByteDependent,
}

/// Flips the byte at `pos` of segment `segment` in a copy of the archive and
/// checks everything the damage must not break.
fn check_flip(p: &Pristine, segment: u64, pos: u64, checks: Checks) {
    let dir = p.copy("flipped");
    let seg_name = segment_file_name(segment);
    flip(&seg_path(&dir, segment), pos);
    let when = format!("byte {pos} of {seg_name} flipped");
    let damaged = p.frame_at(segment, pos);
    let damage_at = damaged.map_or(0, |f| p.frames[f].start);

    // verify fails and names the segment file and the byte position.
    let run = ccvault(&dir, &["verify"]);
    assert_eq!(
        run.code,
        1,
        "{when}: verify must fail\n{}{}",
        run.stdout_str(),
        run.stderr
    );
    let report = run.stdout_str();
    let needle = format!("{seg_name} byte {damage_at}");
    assert!(
        report.contains(&needle),
        "{when}: verify must report {needle:?}:\n{report}{}",
        run.stderr
    );

    // Every record but the damaged one is still served, in order.
    let (records, damage) = scan(&dir);
    let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
    let expected: Vec<u64> = p
        .frames
        .iter()
        .enumerate()
        .filter(|&(i, _)| Some(i) != damaged)
        .map(|(_, f)| f.offset)
        .collect();
    assert_eq!(offsets, expected, "{when}: records served by a full scan");
    if damaged.is_some() {
        assert!(
            !damage.is_empty(),
            "{when}: the scan must report the damage"
        );
    }
    for r in &records {
        assert_eq!(
            p.stream.index_of(&r.payload),
            Some(p.frames[r.offset as usize].line),
            "{when}: offset {} serves the wrong payload",
            r.offset
        );
    }

    // The index is intact: stats answers, and the interactions of the
    // records just before and just after the damaged one read back whole.
    if checks == Checks::All {
        let s = stats(&dir);
        assert_eq!(s.records, p.stream.events as u64, "{when}");
    }
    let Some(f) = damaged else {
        // Header damage hides no record.
        let g = p.stream.interaction_of(p.frames[p.frames.len() / 2].line);
        p.check_show(&dir, g, |_| true, &when);
        return;
    };
    let bad_line = p.frames[f].line;
    let bad_g = p.stream.interaction_of(bad_line);
    let neighbours = match checks {
        Checks::All => [f.checked_sub(1), Some(f + 1)],
        Checks::ByteDependent => [None, None],
    };
    for neighbour in neighbours.into_iter().flatten() {
        if let Some(nf) = p.frames.get(neighbour) {
            let g = p.stream.interaction_of(nf.line);
            assert_ne!(g, bad_g);
            p.check_show(&dir, g, |_| true, &when);
        }
    }
    // The damaged interaction: its other events, never the damaged bytes,
    // and a warning that names the damage (even with -q).
    let guid = p.stream.guid(bad_g);
    let run = ccvault(&dir, &["-q", "show", &guid, "--raw"]).ok();
    let expected: String = (bad_g..p.stream.events)
        .step_by(p.stream.interactions)
        .filter(|&i| i != bad_line)
        .map(|i| p.stream.line(i) + "\n")
        .collect();
    assert_eq!(
        run.stdout_str(),
        expected,
        "{when}: show of the damaged interaction"
    );
    assert!(
        run.stderr.contains("in damaged places of the log") && run.stderr.contains(&seg_name),
        "{when}: show must say what it left out: {}",
        run.stderr
    );
}

#[test]
fn flipped_log_bytes_are_reported_and_hide_nothing() {
    let p = Pristine::build();
    // A strided sample over all segment files (headers included)...
    let total: u64 = p.segments.iter().map(|s| s.1).sum();
    let samples = 48u64;
    let mut positions: Vec<(u64, u64)> = Vec::new();
    for k in 0..samples {
        let mut at = k * total / samples + k * 7 % 13;
        for &(base, len) in &p.segments {
            if at < len {
                positions.push((base, at));
                break;
            }
            at -= len;
        }
    }
    // ...the first bytes of a segment header...
    positions.extend((0..32).step_by(5).map(|b| (p.segments[1].0, b)));
    // ...and the last record of the last segment (a damaged tail).
    let last = p.frames.last().unwrap();
    positions.extend([last.start, last.start + 5, last.end - 1].map(|b| (last.segment, b)));
    for (segment, pos) in positions {
        check_flip(&p, segment, pos, Checks::All);
    }
}

#[test]
fn every_byte_of_one_record_flipped_is_reported_and_hides_nothing() {
    let p = Pristine::build();
    // A record in the middle of a middle segment.
    let mid_seg = p.segments[p.segments.len() / 2].0;
    let in_seg: Vec<&Frame> = p.frames.iter().filter(|f| f.segment == mid_seg).collect();
    let f = in_seg[in_seg.len() / 2].clone();
    // Every byte gets the checks that depend on the byte; the frame header
    // and the body's fixed fields (the first 38 bytes: each one's damage
    // reads differently), every 16th byte of the rest and the last byte get
    // them all.
    for pos in f.start..f.end {
        let k = pos - f.start;
        let checks = if k < 38 || k.is_multiple_of(16) || pos + 1 == f.end {
            Checks::All
        } else {
            Checks::ByteDependent
        };
        check_flip(&p, f.segment, pos, checks);
    }
}

/// A writer opening a log whose last segment has a damaged record inside
/// (not at its end) keeps it aside and says so, naming only what recovery
/// did: it said "truncated a torn tail of 0 bytes" too (an outside audit).
#[test]
fn a_writer_says_what_its_recovery_did_and_only_that() {
    let p = Pristine::build();
    let (last_seg, _) = *p.segments.last().unwrap();
    let frames: Vec<&Frame> = p.frames.iter().filter(|f| f.segment == last_seg).collect();
    let middle = frames[frames.len() / 2];
    let dir = p.copy("damaged-inside");
    flip(&seg_path(&dir, last_seg), (middle.start + middle.end) / 2);
    let empty = empty_file(p._tmp.path());
    let run = import(&dir, &[&empty], &[]);
    assert!(
        run.stderr.contains("1 damaged records kept aside"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("torn tail"), "{}", run.stderr);
}

#[test]
fn a_truncated_last_segment_is_recovered_by_the_next_writer() {
    let p = Pristine::build();
    let (last_seg, last_len) = *p.segments.last().unwrap();
    let last_frames: Vec<&Frame> = p.frames.iter().filter(|f| f.segment == last_seg).collect();
    assert!(last_frames.len() >= 10);
    let mut cuts: Vec<u64> = vec![0, 1, 20, 31, 32, 33, last_len - 1];
    // Each kind of cut inside a frame, at frames spread over the segment
    // (its first, its last, and four between). Every tenth frame, as
    // before, repeated the same kinds of cut, ten launches of the binary
    // each, where the test's time went.
    let every = (last_frames.len() / 5).max(1);
    for f in last_frames.iter().step_by(every).chain(last_frames.last()) {
        cuts.extend([
            f.start,
            f.start + 1,
            f.start + 11,
            f.start + 12,
            (f.start + f.end) / 2,
        ]);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let empty = empty_file(p._tmp.path());
    for cut in cuts {
        let when = format!("{} cut at byte {cut}", segment_file_name(last_seg));
        let dir = p.copy("truncated");
        cut_file(&seg_path(&dir, last_seg), cut);
        let survives = |f: &Frame| f.segment != last_seg || f.end <= cut;
        let kept: Vec<&Frame> = p.frames.iter().filter(|f| survives(f)).collect();

        // Before any writer recovers: the index names records the log lost,
        // so verify fails; nothing panics.
        let run = ccvault(&dir, &["-q", "verify"]);
        assert_eq!(
            run.code,
            1,
            "{when}: verify before recovery\n{}",
            run.stdout_str()
        );
        // Its open repairs, and says what the log lost, even with `-q` (it
        // said nothing there: an outside audit).
        assert!(
            run.stderr.contains("no longer holds the records"),
            "{when}: {}",
            run.stderr
        );
        ccvault(&dir, &["stats"]).ok();

        // A writer reopens: the torn tail goes, verify is clean, and every
        // record before the cut remains.
        import(&dir, &[&empty], &[]);
        let run = ccvault(&dir, &["verify"]);
        assert_eq!(
            run.code,
            0,
            "{when}: verify after recovery\n{}{}",
            run.stdout_str(),
            run.stderr
        );
        let (records, damage) = scan(&dir);
        assert!(damage.is_empty(), "{when}: {damage:?}");
        let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
        let expected: Vec<u64> = kept.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, expected, "{when}: records after recovery");
        assert_eq!(stats(&dir).records, kept.len() as u64, "{when}");
        let alive = |i: usize| kept.iter().any(|f| f.line == i);
        let first = p.stream.interaction_of(p.frames[0].line);
        p.check_show(&dir, first, alive, &when);
        let lost = p.stream.interaction_of(p.frames.last().unwrap().line);
        p.check_show(&dir, lost, alive, &when);

        // Importing the stream again brings back exactly what was cut.
        let run = import(&dir, &[&p.input], &["--format", "json"]);
        let summary = &run.json_lines()[0];
        assert_eq!(
            summary["archived"],
            (p.stream.events - kept.len()) as u64,
            "{when}: {summary}"
        );
        assert_eq!(stats(&dir).records, p.stream.events as u64, "{when}");
        ccvault(&dir, &["verify"]).ok();
    }
}

/// Projections made before the log lost its tail are the next read's to
/// rebuild, as the recovering writer says: `verify` in between calls the
/// archive clean and says so of them (it compared them with the shorter
/// log, and called the archive NOT CLEAN, telling the operator to run
/// `rebuild`: an outside audit, 2026-12-07), and once read they equal the
/// log's.
#[test]
fn projections_of_a_lost_tail_are_rebuilt_by_the_next_read_and_verify_says_so() {
    let p = Pristine::build();
    let (last_seg, _) = *p.segments.last().unwrap();
    let last_frames: Vec<&Frame> = p.frames.iter().filter(|f| f.segment == last_seg).collect();
    let cut = last_frames[last_frames.len() / 2].start;
    let dir = p.copy("lost-tail");
    let before = ccvault(&dir, &["interactions", "--format", "json"]).ok();
    cut_file(&seg_path(&dir, last_seg), cut);
    let empty = empty_file(p._tmp.path());
    let recovered = import(&dir, &[&empty], &[]);
    assert!(
        recovered
            .stderr
            .contains("the projections on the next read"),
        "{}",
        recovered.stderr
    );
    // Before any read, with the lost events imported again or not.
    for input in [&empty, &p.input] {
        import(&dir, &[input], &[]);
        let run = ccvault(&dir, &["verify"]);
        assert_eq!(run.code, 0, "{}{}", run.stdout_str(), run.stderr);
        assert!(
            run.stdout_str()
                .contains("of which the log has since lost some (rebuilt by the next read)"),
            "{}",
            run.stdout_str()
        );
        let json = ccvault(&dir, &["verify", "--format", "json"])
            .ok()
            .json_lines();
        assert!(
            json[0]["projections"]
                .as_str()
                .is_some_and(|p| p.contains("lost some")),
            "{}",
            json[0]
        );
    }
    let after = ccvault(&dir, &["interactions", "--format", "json"]).ok();
    assert_eq!(after.stdout_str(), before.stdout_str());
    // Its projections, rebuilt from the records imported again, put in
    // place of a healthy archive's: the record they stopped at is not that
    // log's, which lost nothing: damage.
    let healthy = p.copy("healthy");
    ccvault(&healthy, &["interactions"]).ok();
    fs::copy(
        dir.join("projections.redb"),
        healthy.join("projections.redb"),
    )
    .unwrap();
    let run = ccvault(&healthy, &["verify"]);
    assert_eq!(run.code, 1, "{}", run.stdout_str());
    assert!(
        run.stdout_str().contains("projections not of this log"),
        "{}",
        run.stdout_str()
    );
    let run = ccvault(&dir, &["verify"]).ok();
    assert!(
        run.stdout_str().contains("0 projections problems"),
        "{}",
        run.stdout_str()
    );
    // The same tail lost again, from the same offset: another loss, whose
    // projections are as stale (it was called damage while the loss was
    // known by its offset alone: an outside audit).
    cut_file(&seg_path(&dir, last_seg), cut);
    import(&dir, &[&empty], &[]);
    let run = ccvault(&dir, &["verify"]);
    assert_eq!(run.code, 0, "{}", run.stdout_str());
    assert!(
        run.stdout_str()
            .contains("of which the log has since lost some"),
        "{}",
        run.stdout_str()
    );
}

/// The Parquet export's `events` files of `dir`, by path, byte for byte.
fn events_export(dir: &Path, out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    if out.exists() {
        fs::remove_dir_all(out).unwrap();
    }
    ccvault(
        dir,
        &[
            "export",
            "--format",
            "parquet",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .ok();
    let mut files = Vec::new();
    let mut dirs = vec![out.join("events")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push((
                    path.strip_prefix(out).unwrap().to_owned(),
                    fs::read(&path).unwrap(),
                ));
            }
        }
    }
    files.sort();
    assert!(!files.is_empty());
    files
}

/// A facts file (docs/FORMAT.md §5) describes the records of its segment
/// as they were appended. When the last segment's tail is lost (cut here,
/// as a power cut would) after its facts were written, the next writer
/// appends other records at those offsets, and may be killed before it
/// rolls or closes (which would write that segment's facts anew): the old
/// facts must never be used for the new records. `verify` compares every
/// record with its facts, and the export made from the facts equals the
/// one made by parsing.
#[test]
fn facts_of_a_cut_last_segment_never_describe_what_is_appended_after_it() {
    let p = Pristine::build();
    let (last_seg, _) = *p.segments.last().unwrap();
    let facts = |dir: &Path| dir.join("facts").join(format!("{last_seg:020}.facts"));
    assert!(
        facts(&p.dir).exists(),
        "the import's close writes the facts of its last segment"
    );
    let last_frames: Vec<&Frame> = p.frames.iter().filter(|f| f.segment == last_seg).collect();
    let cut = last_frames[last_frames.len() / 2].start;
    let dir = p.copy("cut-with-facts");
    let seg = seg_path(&dir, last_seg);
    cut_file(&seg, cut);
    // Other lines of the same length (lines of a stream with fewer
    // interactions: other GUIDs and event types at the same line numbers),
    // appended one fsync at a time; the writer is killed once some are in
    // the cut segment, before it could roll it or close.
    let other = Stream {
        events: 400,
        interactions: 77,
        line_len: p.stream.line_len,
    };
    let input = p._tmp.path().join("other.ndjson");
    other.write(&input);
    let mut child = common::command(
        &dir,
        &["import", input.to_str().unwrap(), "--fsync", "always", "-q"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let appended = cut + 4 * p.stream.line_len as u64;
    let started = std::time::Instant::now();
    while fs::metadata(&seg).unwrap().len() < appended {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the import appended nothing"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("the import ended before it was killed: make its input longer");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let run = ccvault(&dir, &["verify"]);
    assert_eq!(
        run.code,
        0,
        "verify after appending over the cut\n{}{}",
        run.stdout_str(),
        run.stderr
    );
    assert!(
        run.stdout_str().contains("0 facts problems"),
        "{}",
        run.stdout_str()
    );
    let from_facts = events_export(&dir, &p._tmp.path().join("out-facts"));
    fs::remove_dir_all(dir.join("facts")).unwrap();
    let parsed = events_export(&dir, &p._tmp.path().join("out-parsed"));
    assert!(
        from_facts == parsed,
        "the events table differs with the facts"
    );
}

/// A writer that reopens an archive continues the facts of its last
/// segment (every entry names a record the log holds): after a second
/// import appends to that segment, every record has facts.
#[test]
fn a_second_import_continues_the_last_segments_facts() {
    let p = Pristine::build();
    let dir = p.copy("second-import");
    let other = Stream {
        events: 600,
        interactions: 77,
        line_len: p.stream.line_len,
    };
    let input = p._tmp.path().join("second.ndjson");
    other.write(&input);
    let run = import(&dir, &[&input], &["--format", "json"]);
    let archived = run.json_lines()[0]["archived"].as_u64().unwrap();
    assert!(archived > 100, "{:?}", run.json_lines());
    let run = ccvault(&dir, &["verify", "--format", "json"]).ok();
    let report = &run.json_lines()[0];
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(
        report["factsChecked"], report["records"],
        "every record has facts: {report}"
    );
}

/// Damaged facts files are reported by `verify` (as facts problems: the
/// log is intact) and never used: the export is the same as without them.
#[test]
fn damaged_facts_are_reported_and_never_used() {
    let p = Pristine::build();
    let pristine = events_export(&p.dir, &p._tmp.path().join("out-pristine"));
    let dir = p.copy("bad-facts");
    let files: Vec<PathBuf> = {
        let mut f: Vec<PathBuf> = fs::read_dir(dir.join("facts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        f.sort();
        f
    };
    assert_eq!(files.len(), p.segments.len(), "one facts file a segment");
    let flipped = &files[1];
    let len = fs::metadata(flipped).unwrap().len();
    flip(flipped, len / 2);
    let cut = &files[3];
    let len = fs::metadata(cut).unwrap().len();
    cut_file(cut, len / 3);
    fs::write(&files[5], b"not a facts file").unwrap();
    // Facts that fail their checks are never used.
    let exported = events_export(&dir, &p._tmp.path().join("out-bad"));
    assert!(exported == pristine, "damaged facts changed the export");
    // A facts file that reads well but is not its segment's (the export
    // would use it: noted, not fixed; `verify` reports it): the same
    // segment's facts in an archive of the same lines laid out alike, but
    // one line in ten with its `interactionGUID` key misspelled.
    let other = {
        let input = p._tmp.path().join("misspelled.ndjson");
        fs::write(&input, misspelled_guid_keys(&p.stream)).unwrap();
        let other = p._tmp.path().join("misspelled");
        import(
            &other,
            &[&input],
            &["--segment-bytes", "65536", "--no-compress"],
        );
        other
    };
    let foreign = &files[0];
    fs::copy(
        other.join("facts").join(foreign.file_name().unwrap()),
        foreign,
    )
    .unwrap();
    let run = ccvault(&dir, &["verify"]);
    assert_eq!(run.code, 1, "{}", run.stdout_str());
    let out = run.stdout_str();
    assert!(
        out.lines()
            .any(|l| l.starts_with("FACTS  the facts of segment 0 disagree with the payload")),
        "the foreign facts are not reported:\n{out}"
    );
    for f in [&files[1], &files[3], &files[5]] {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            out.lines().any(|l| l.starts_with("FACTS")
                && l.contains(name)
                && l.contains("`ccvault reindex` writes the file again")),
            "{name} not reported, or without what rewrites it:\n{out}"
        );
    }
    assert!(
        out.contains(", 0 damaged places, 0 index problems, ")
            && !out.contains(" 0 facts problems"),
        "{out}"
    );
    // Derived data: removing the damaged files makes the archive clean, and
    // `reindex` writes every segment's facts again, the foreign one too.
    let removed = p._tmp.path().join("bad-facts-removed");
    copy_dir(&dir, &removed);
    for f in [&files[0], &files[1], &files[3], &files[5]] {
        fs::remove_file(removed.join("facts").join(f.file_name().unwrap())).unwrap();
    }
    ccvault(&removed, &["verify"]).ok();
    ccvault(&dir, &["reindex"]).ok();
    ccvault(&dir, &["verify"]).ok();
    for f in &files {
        assert!(f.exists(), "{} not written again", f.display());
    }
    let repaired = events_export(&dir, &p._tmp.path().join("out-repaired"));
    assert!(repaired == pristine, "the export after reindex");
}

#[test]
fn a_damaged_index_never_panics_and_reindex_restores_it() {
    let p = Pristine::build();
    let pristine_stats = stats(&p.dir);
    let index_len = fs::metadata(p.dir.join("index.redb")).unwrap().len();
    let samples = 40u64;
    let g = p.stream.interaction_of(p.frames[100].line);
    let guid = p.stream.guid(g);
    for k in 0..samples {
        let pos = k * index_len / samples + (k * 31 % 97);
        let when = format!("byte {pos} of index.redb flipped");
        let dir = p.copy("bad-index");
        flip(&dir.join("index.redb"), pos.min(index_len - 1));
        // Errors are fine; panics are not (checked by every run).
        for args in [
            &["stats"][..],
            &["stats", "--format", "json"],
            &["show", &guid, "--raw"],
            &["show", &guid],
            &["quarantine"],
            &["verify"],
        ] {
            ccvault(&dir, args);
        }
        // Whatever the damage, deleting the index and reindexing restores
        // correct answers from the log.
        fs::remove_file(dir.join("index.redb")).unwrap();
        let run = ccvault(&dir, &["reindex"]);
        assert_eq!(run.code, 0, "{when}: reindex: {}", run.stderr);
        let s = stats(&dir);
        assert_eq!(
            (
                s.records,
                s.events,
                s.quarantined,
                s.interactions,
                s.segments
            ),
            (
                pristine_stats.records,
                pristine_stats.events,
                pristine_stats.quarantined,
                pristine_stats.interactions,
                pristine_stats.segments
            ),
            "{when}"
        );
        p.check_show(&dir, g, |_| true, &when);
        let run = ccvault(&dir, &["verify"]);
        assert_eq!(run.code, 0, "{when}: {}", run.stdout_str());
    }
}

/// A record lost to damage before the index was rebuilt (`reindex`, or an
/// `index.redb` removed) is in no posting, so nothing read through the
/// index can meet it and say so: the index counts the damaged places its
/// indexing skipped, once each, and every answer read through it says on
/// stderr (once, even with `-q`) that it was built around them.
#[test]
fn answers_after_a_reindex_around_damage_say_what_the_index_skipped() {
    let p = Pristine::build();
    let dir = p.copy("reindexed");
    let mid_seg = p.segments[p.segments.len() / 2].0;
    let f = p
        .frames
        .iter()
        .filter(|f| f.segment == mid_seg)
        .nth(3)
        .unwrap()
        .clone();
    flip(&seg_path(&dir, f.segment), f.start + 40);
    ccvault(&dir, &["-q", "reindex"]).ok();
    let guid = p.stream.guid(p.stream.interaction_of(f.line));
    let note = "the index was built around 1 damaged place(s) of the log";
    let place = format!("in segment {:020} at byte {}", f.segment, f.start);
    let damaged_places = |dir: &Path| stats(dir).json["damagedPlaces"].as_u64();
    for args in [
        &["-q", "show", &guid, "--raw"][..],
        &["-q", "show", &guid],
        &["-q", "interactions"],
        &["-q", "report"],
        &["-q", "agents"],
        &["-q", "stats"],
    ] {
        let run = ccvault(&dir, args).ok();
        assert_eq!(
            run.stderr.matches(note).count(),
            1,
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(&place), "{args:?}: {}", run.stderr);
    }
    assert_eq!(damaged_places(&dir), Some(1));
    // Counted once each: by a writer that appends after it, by an index
    // rebuilt at open, and by another reindex.
    import(&dir, &[&p.input], &[]);
    assert_eq!(damaged_places(&dir), Some(1), "after an import");
    fs::remove_file(dir.join("index.redb")).unwrap();
    assert_eq!(
        damaged_places(&dir),
        Some(1),
        "after the index was rebuilt at open"
    );
    ccvault(&dir, &["-q", "reindex"]).ok();
    assert_eq!(damaged_places(&dir), Some(1), "after a second reindex");
    // An archive whose index met no damage says nothing of the kind.
    let run = ccvault(&p.dir, &["-q", "report"]).ok();
    assert!(!run.stderr.contains("damaged"), "{}", run.stderr);
    assert_eq!(damaged_places(&p.dir), Some(0));
}

/// A record damaged after it was indexed is left out of the projections a
/// read then builds (the log is the judge): every read of them says so,
/// the first and the later ones, even with `-q`, naming the first place,
/// whether a rebuild or a catch-up met it, and both count alike (until
/// 2026-12-07 `interactions`, `report` and `agents` said nothing, where
/// `export` warned: an outside audit).
#[test]
fn reads_of_projections_built_around_damage_say_so() {
    let p = Pristine::build();
    let note =
        |n: u32| format!("the projections were built around {n} damaged place(s) of the log");
    let place = |f: &Frame| format!("in segment {:020} at byte {}", f.segment, f.start);
    let frame_in = |segment: usize, nth: usize| -> Frame {
        let base = p.segments[segment].0;
        p.frames
            .iter()
            .filter(|f| f.segment == base)
            .nth(nth)
            .unwrap()
            .clone()
    };
    let reads: [&[&str]; 3] = [
        &["-q", "interactions"],
        &["-q", "report"],
        &["-q", "agents"],
    ];
    let says = |dir: &Path, n: u32, f: &Frame, when: &str| {
        for args in reads {
            let run = ccvault(dir, args).ok();
            assert_eq!(
                run.stderr.matches(&note(n)).count(),
                1,
                "{when}, {args:?}: {}",
                run.stderr
            );
            assert!(
                run.stderr.contains(&place(f)),
                "{when}, {args:?}: {}",
                run.stderr
            );
        }
    };

    // Met by the rebuild of the first read.
    let dir = p.copy("projected-around");
    let first = frame_in(p.segments.len() / 2, 3);
    flip(&seg_path(&dir, first.segment), first.start + 40);
    says(&dir, 1, &first, "built by the first read");

    // Met by a catch-up: records appended, then one of them damaged
    // before any read applied it.
    let (last_seg, _) = *p.segments.last().unwrap();
    let more = Stream {
        events: 800,
        interactions: 200,
        line_len: 260,
    };
    let more_input = p._tmp.path().join("more.ndjson");
    more.write(&more_input);
    import(
        &dir,
        &[&more_input],
        &["--segment-bytes", "65536", "--no-compress"],
    );
    let log = LogReader::open(&dir.join("log")).unwrap();
    let later: Vec<Frame> = log
        .scan(Position {
            segment: last_seg + 1,
            pos: 0,
        })
        .filter_map(|item| match item.unwrap() {
            ScanItem::Record(at, rec) => Some(Frame {
                segment: at.segment,
                start: u64::from(at.pos),
                end: u64::from(at.pos) + rec.as_ref().frame_len(),
                offset: rec.offset,
                line: 0,
            }),
            ScanItem::Damage(_) => None,
        })
        .collect();
    let second = later[later.len() / 2].clone();
    assert!(second.segment > last_seg, "{second:?}");
    flip(&seg_path(&dir, second.segment), second.start + 40);
    says(&dir, 2, &first, "caught up");
    // A rebuild counts the same places, and `verify` finds the stored
    // projections equal to its recompute: only the log is damaged.
    ccvault(&dir, &["-q", "rebuild"]).ok();
    says(&dir, 2, &first, "rebuilt");
    let run = ccvault(&dir, &["verify"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout_str(), run.stderr);
    assert!(!run.stdout_str().contains("PROJ"), "{}", run.stdout_str());

    // An archive read before its damage holds the record in its
    // projections, and says nothing; nor does an undamaged one.
    for args in reads {
        let run = ccvault(&p.dir, args).ok();
        assert!(!run.stderr.contains("damaged"), "{args:?}: {}", run.stderr);
    }
}

/// A flipped byte in the log's last record (the tally an import ends
/// with) hides its offset; projections that applied it are still this
/// log's: `verify` reports the log's damage, not the projections as
/// another archive's (until 2026-12-07 it did, and no `rebuild` changed
/// it: an outside audit).
#[test]
fn damage_in_the_last_record_leaves_the_projections_the_logs() {
    let p = Pristine::build();
    let dir = p.copy("last-record");
    // Imported again: every line a duplicate, counted in a tally at the end.
    import(&dir, &[&p.input], &[]);
    let log = LogReader::open(&dir.join("log")).unwrap();
    let last = log
        .scan(Position::START)
        .filter_map(|item| match item.unwrap() {
            ScanItem::Record(at, rec) => Some((at, rec.kind)),
            ScanItem::Damage(_) => None,
        })
        .last()
        .unwrap();
    assert_eq!(last.1, ccvault_log::RecordKind::Tally);
    ccvault(&dir, &["-q", "interactions"]).ok();
    flip(&seg_path(&dir, last.0.segment), u64::from(last.0.pos) + 20);
    for _ in 0..2 {
        let run = ccvault(&dir, &["verify"]);
        let said = run.stdout_str();
        assert_eq!(run.code, 1, "{said}{}", run.stderr);
        assert!(said.contains("DAMAGE"), "{said}");
        assert!(
            !said.contains("PROJ") && !said.contains("not of this log"),
            "{said}"
        );
        ccvault(&dir, &["-q", "rebuild"]).ok();
    }
}

/// Issue 15 item 7: `verify` run again and again in one process while an
/// `import` of a large file runs in another (rolling small segments) never
/// reports the writer's unfinished tail, or anything else, as damage or as
/// an index problem; every run exits 0.
#[test]
fn verify_beside_a_running_import_reports_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // Small segments roll while verify reads; large ones keep verify in
    // the segment being written. Tiny ones are compressed while verify
    // lists the log (its listing lacked some until 2026-12-07: false
    // "offset gap" damage, an outside audit).
    for (round, (fsync, segment)) in [
        ("batch", "64MiB"),
        ("never", "1MiB"),
        ("never", "64MiB"),
        ("never", "16KiB"),
    ]
    .into_iter()
    .enumerate()
    {
        // On a loaded machine verify can be slow beside a quick import:
        // then the round is run again on an input four times longer,
        // rather than passing without having watched the import grow.
        let mut watched = None;
        for (attempt, events) in [100_000, 400_000].into_iter().enumerate() {
            let stream = Stream {
                events,
                interactions: events / 5,
                line_len: 400,
            };
            let dir = tmp.path().join(format!("archive-{round}-{attempt}"));
            let (runs, saw_growth) = verify_beside_import(&tmp, &dir, &stream, fsync, segment);
            assert_eq!(stats(&dir).records, stream.events as u64);
            ccvault(&dir, &["verify"]).ok();
            watched = Some((runs, saw_growth));
            if runs >= 3 && saw_growth {
                break;
            }
        }
        let (runs, saw_growth) = watched.unwrap();
        assert!(
            runs >= 3 && saw_growth,
            "round {round}: only {runs} verify runs, growth seen: {saw_growth}; the import was too quick to test anything"
        );
    }
}

/// Imports `stream` into `dir` in a child process while verify runs again
/// and again, asserting every verify run clean; returns the number of
/// verify runs and whether one saw the archive grow while the import ran.
fn verify_beside_import(
    tmp: &tempfile::TempDir,
    dir: &std::path::Path,
    stream: &Stream,
    fsync: &str,
    segment: &str,
) -> (usize, bool) {
    let input = tmp.path().join(format!("big-{}.ndjson", stream.events));
    if !input.exists() {
        stream.write(&input);
    }
    // A first import so that the archive exists before verify starts.
    let first = tmp.path().join("first.ndjson");
    fs::write(&first, stream.text(0..10)).unwrap();
    import(dir, &[&first], &[]);
    let mut writer = common::command(
        dir,
        &[
            "import",
            input.to_str().unwrap(),
            "--fsync",
            fsync,
            "--segment-bytes",
            segment,
        ],
    )
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let input_text = fs::read(&input).unwrap();
    let mut runs = 0;
    let mut saw_growth = false;
    let mut last_records = 0;
    loop {
        let running = writer.try_wait().unwrap().is_none();
        let run = ccvault(dir, &["verify", "--format", "json"]);
        runs += 1;
        let report = &run.json_lines()[0];
        assert_eq!(
            (run.code, &report["clean"]),
            (0, &serde_json::json!(true)),
            "{} (fsync {fsync}, segments {segment}), verify run {runs} beside the import:\n{}{}",
            dir.display(),
            run.stdout_str(),
            run.stderr
        );
        let records = report["records"].as_u64().unwrap();
        // An export beside the writer gives a prefix of the input, without
        // a word of damage (until 2026-12-07 it could skip a segment being
        // compressed, exit 0: an outside audit).
        if segment == "16KiB" {
            let export = ccvault(dir, &["export"]).ok();
            assert!(
                input_text.starts_with(&export.stdout) && !export.stderr.contains("not in the log"),
                "export {runs} beside the import: {} bytes, not a prefix of the input; {}",
                export.stdout.len(),
                export.stderr
            );
        }
        saw_growth |= running && records > last_records && last_records > 10;
        last_records = records;
        if !running {
            break;
        }
    }
    let status = writer.wait().unwrap();
    assert!(status.success(), "import failed: {status}");
    (runs, saw_growth)
}

/// An index that is not its log's, laid out alike so that nothing at open
/// notices: that of an archive of the same lines but for one in ten whose
/// `interactionGUID` key is misspelled there (it files those events in no
/// interaction), or of as many lines of other interactions (it files each
/// record under another interaction's key). `rebuild` then refuses, naming
/// an interaction and `reindex`, instead of writing projections that lack
/// events or summarize a leg twice; `verify` names it as an index problem;
/// `reindex` rebuilds the index and the projections, after which every
/// answer is the log's.
#[test]
fn a_rebuild_refuses_an_index_that_does_not_file_the_logs_events() {
    let tmp = tempfile::tempdir().unwrap();
    let stream = |interactions| Stream {
        events: 400,
        interactions,
        line_len: 300,
    };
    let archive_of = |name: &str, text: String| {
        let input = tmp.path().join(format!("{name}.ndjson"));
        fs::write(&input, text).unwrap();
        let dir = tmp.path().join(name);
        import(&dir, &[&input], &[]);
        dir
    };
    let s = stream(80);
    let misspelled = misspelled_guid_keys(&s);
    let others = stream(100).text(0..400);
    for (case, theirs) in [("misspelled", misspelled), ("others", others)] {
        let ours = archive_of(&format!("ours-{case}"), s.text(0..400));
        // Names as long as ours: each record names its source file, so
        // the two logs are laid out alike, record for record, and the
        // index's checkpoint fits ours (else it is rebuilt at once: `fit`).
        let theirs = archive_of(&format!("them-{case}"), theirs);
        let want = ccvault(&ours, &["interactions", "--format", "json"])
            .ok()
            .stdout;
        assert_eq!(String::from_utf8_lossy(&want).lines().count(), 80);
        fs::copy(theirs.join("index.redb"), ours.join("index.redb")).unwrap();

        let rebuild = ccvault(&ours, &["rebuild"]);
        assert_eq!(rebuild.code, 1, "{case}: {}", rebuild.stderr);
        assert!(
            rebuild.stderr.contains("does not file interaction")
                && rebuild
                    .stderr
                    .contains(&ours.join("index.redb").display().to_string())
                && rebuild.stderr.contains("run `ccvault reindex`"),
            "{case}: {}",
            rebuild.stderr
        );
        let verify = ccvault(&ours, &["verify"]);
        assert_eq!(verify.code, 1, "{case}: {}", verify.stdout_str());
        assert!(
            verify.stdout_str().contains("the index is damaged"),
            "{case}: {}",
            verify.stdout_str()
        );
        ccvault(&ours, &["reindex"]).ok();
        ccvault(&ours, &["verify", "-q"]).ok();
        assert_eq!(
            ccvault(&ours, &["interactions", "--format", "json"])
                .ok()
                .stdout,
            want,
            "{case}"
        );
    }
}

/// A segment file deleted from the middle of the log (or lost with its
/// directory entry) is said by every answer that lacks its records: before
/// a reindex, from the count of compressed segments the index kept; after
/// one, as a damaged place the index was built around, at the missing
/// segment's base.
#[test]
fn a_missing_segment_file_is_said_before_and_after_a_reindex() {
    // The pristine stream, in compressed segments this time.
    let p = Pristine::build();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    import(&dir, &[&p.input], &["--segment-bytes", "65536"]);
    let mut packed = common::log_files(&dir, "segz");
    assert!(packed.len() >= 3, "{packed:?}");
    let gone = packed.remove(packed.len() / 2);
    let base: u64 = gone.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    fs::remove_file(&gone).unwrap();

    let missing = "lacks 1 compressed segment file(s) the index counted";
    for args in [
        &["-q", "export"][..],
        &["-q", "stats"],
        &["-q", "interactions"],
    ] {
        let run = ccvault(&dir, args).ok();
        assert_eq!(
            run.stderr.matches(missing).count(),
            1,
            "{args:?}: {}",
            run.stderr
        );
    }

    ccvault(&dir, &["-q", "reindex"]).ok();
    let note = "the index was built around 1 damaged place(s) of the log";
    let place = format!("in segment {base:020} at byte 0");
    for args in [
        &["-q", "export"][..],
        &["-q", "stats"],
        &["-q", "interactions"],
    ] {
        let run = ccvault(&dir, args).ok();
        assert!(
            run.stderr.contains(note) && run.stderr.contains(&place),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains(missing), "{args:?}: {}", run.stderr);
    }
    assert_eq!(stats(&dir).json["damagedPlaces"].as_u64(), Some(1));
}

/// An interaction every record of which is damaged: `show` says it was
/// archived and its records cannot be read now, not that its contact's
/// first leg was never archived (naming this same leg to show instead).
#[test]
fn show_of_an_interaction_whose_every_record_is_damaged_says_so() {
    let p = Pristine::build();
    let dir = p.copy("all-damaged");
    let g = 7;
    let mine: Vec<&Frame> = p
        .frames
        .iter()
        .filter(|f| f.line % p.stream.interactions == g)
        .collect();
    assert!(mine.len() >= 2, "{mine:?}");
    for f in &mine {
        flip(&seg_path(&dir, f.segment), f.start + 20);
    }
    let guid = p.stream.guid(g);
    let run = ccvault(&dir, &["show", &guid]);
    run.assert_no_panic();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("no readable events of interaction {guid:?}"))
            && run.stderr.contains("in damaged places of the log"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("first leg was never archived"),
        "{}",
        run.stderr
    );

    // Once the index is rebuilt around the damage no lookup meets it:
    // the answer says the records may have been in those places.
    ccvault(&dir, &["-q", "reindex"]).ok();
    let run = ccvault(&dir, &["show", &guid]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "the index was built around {} damaged place(s) of the log: its records may have been there",
            mine.len()
        )),
        "{}",
        run.stderr
    );
}

/// Segment files renamed or copied into `log/`, or an empty one named
/// like the next segment: no writer touches the log (a `reindex` left the
/// swapped files' records out for good, a copy's offsets were taken up by
/// the next import, an empty file was adopted with a gap: an outside
/// audit), it names the file and what to do; put right, every record is
/// there.
#[test]
fn segment_files_renamed_copied_or_made_up_stop_every_writer_untouched() {
    let p = Pristine::build();
    let complete = |dir: &Path| {
        ccvault(dir, &["verify"]).ok();
        assert_eq!(stats(dir).records, p.stream.events as u64);
    };
    let files = log_contents;
    let (a, b) = (p.segments[2].0, p.segments[3].0);

    let swapped = p.copy("swapped");
    let (pa, pb) = (seg_path(&swapped, a), seg_path(&swapped, b));
    let moved = swapped.join("moved");
    fs::rename(&pa, &moved).unwrap();
    fs::rename(&pb, &pa).unwrap();
    fs::rename(&moved, &pb).unwrap();
    let before = files(&swapped);
    // `verify` says it in a line a file, not one a record.
    let checked = ccvault(&swapped, &["verify", "--no-projections"]);
    assert_eq!(checked.code, 1, "{}", checked.stdout_str());
    let said = checked.stdout_str();
    let damage: Vec<&str> = said.lines().filter(|l| l.starts_with("DAMAGE")).collect();
    assert_eq!(damage.len(), 3, "{damage:#?}");
    assert!(
        damage[0].contains(&format!("the file holds the segment of base offset {b}")),
        "{damage:#?}"
    );
    // The readers read what `verify` counts: the pair's records are left
    // out as if the files were not there (until 2026-12-07 `export`
    // printed the first file's records, read from under the other's name,
    // where `verify` said they were not read).
    let without = p.copy("without");
    fs::remove_file(seg_path(&without, a)).unwrap();
    fs::remove_file(seg_path(&without, b)).unwrap();
    let exported = |dir: &Path| {
        let run = ccvault(dir, &["export"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout_str()
    };
    let left = exported(&without);
    assert!(left.lines().count() < p.stream.events, "{}", left.len());
    assert!(exported(&swapped) == left, "export read the swapped pair");
    for args in [&["-q", "reindex"][..], &["-q", "import"]] {
        let mut args = args.to_vec();
        let input = p.input.to_str().unwrap();
        if args.contains(&"import") {
            args.push(input);
        }
        let run = ccvault(&swapped, &args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        let said = format!(
            "{} holds the segment of base offset {b} (its header says so",
            pa.display()
        );
        assert!(run.stderr.contains(&said), "{args:?}: {}", run.stderr);
        assert!(files(&swapped) == before, "{args:?} changed the log");
    }
    // The same with a byte of each header flipped: each file's first
    // record says which segment it holds (until 2026-12-07 such a pair was
    // read in place, reindexed without the first file's records for good,
    // and a copy past the last segment was appended to: an outside audit).
    flip(&pa, 0);
    flip(&pb, 0);
    let before = files(&swapped);
    let said = ccvault(&swapped, &["verify", "--no-projections"]).stdout_str();
    let misnamed = said
        .lines()
        .filter(|l| l.starts_with("DAMAGE") && l.contains("the file holds the segment"))
        .count();
    assert_eq!(misnamed, 2, "{said}");
    assert!(exported(&swapped) == left, "export read the damaged pair");
    for args in [
        &["-q", "reindex"][..],
        &["-q", "import", p.input.to_str().unwrap()],
    ] {
        let run = ccvault(&swapped, args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(files(&swapped) == before, "{args:?} changed the log");
    }
    flip(&pa, 0);
    flip(&pb, 0);
    fs::rename(&pa, &moved).unwrap();
    fs::rename(&pb, &pa).unwrap();
    fs::rename(&moved, &pb).unwrap();
    ccvault(&swapped, &["-q", "reindex"]).ok();
    complete(&swapped);

    let last = p.segments.last().unwrap().0;
    let copied = p.copy("copied");
    let copy = seg_path(&copied, last + 100_000);
    fs::copy(seg_path(&copied, a), &copy).unwrap();
    // Then with its header damaged: its first record says what it holds.
    for flipped in [false, true] {
        if flipped {
            flip(&copy, 3);
        }
        let before = files(&copied);
        let run = ccvault(&copied, &["-q", "import", p.input.to_str().unwrap()]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "{} holds the segment of base offset {a}",
                copy.display()
            )),
            "{}",
            run.stderr
        );
        assert!(files(&copied) == before, "the import changed the log");
    }
    fs::remove_file(&copy).unwrap();
    complete(&copied);

    let made_up = p.copy("made-up");
    let stray = seg_path(&made_up, last + 100_000);
    fs::write(&stray, b"").unwrap();
    let run = ccvault(&made_up, &["-q", "import", p.input.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("its name does not continue the log"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::metadata(&stray).unwrap().len(),
        0,
        "the stray file was written"
    );
    fs::remove_file(&stray).unwrap();
    complete(&made_up);

    // An empty compressed segment past the last: no file the log wrote
    // (each `.segz` is written whole, then renamed), not a segment whose
    // end was lost, so not "put the missing segment back".
    let stray = made_up
        .join("log")
        .join(ccvault_log::segz_file_name(last + 100_000));
    fs::write(&stray, b"").unwrap();
    let before = files(&made_up);
    let run = ccvault(&made_up, &["-q", "import", p.input.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("it is 0 bytes long, shorter than the header")
            && run.stderr.contains("move it out of the log directory")
            && !run.stderr.contains("put the missing segment back"),
        "{}",
        run.stderr
    );
    assert!(files(&made_up) == before, "the import changed the log");
    fs::remove_file(&stray).unwrap();
    complete(&made_up);

    // A compressed segment copied in beside the `.seg` of its name's base
    // (the last one, which stays `.seg`): readers read the `.seg`, and a
    // writer refuses the pair; `verify` names the copy (until 2026-12-08
    // it said clean: an outside audit).
    let beside = p.copy("beside");
    let empty = beside.join("empty.ndjson");
    fs::write(&empty, b"").unwrap();
    ccvault(&beside, &["-q", "import", empty.to_str().unwrap()]).ok();
    let packed = beside.join("log").join(ccvault_log::segz_file_name(a));
    let copy = beside.join("log").join(ccvault_log::segz_file_name(last));
    assert!(seg_path(&beside, last).exists() && packed.exists());
    fs::copy(&packed, &copy).unwrap();
    let checked = ccvault(&beside, &["verify", "--no-projections"]);
    assert_eq!(checked.code, 1, "{}", checked.stdout_str());
    let said = checked.stdout_str();
    let damage: Vec<&str> = said.lines().filter(|l| l.starts_with("DAMAGE")).collect();
    assert_eq!(damage.len(), 1, "{said}");
    assert!(
        damage[0].contains(&ccvault_log::segz_file_name(last))
            && damage[0].contains(&format!("the file holds the segment of base offset {a}")),
        "{said}"
    );
    let before = files(&beside);
    let run = ccvault(&beside, &["-q", "import", empty.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(files(&beside) == before, "the import changed the log");
    fs::remove_file(&copy).unwrap();
    complete(&beside);
}

/// A sealed segment kept uncompressed (`--no-compress`) removed, or cut to
/// its header: the index counts only compressed segments, so nothing else
/// says it. The export says which offsets it lacks, even with `-q` (it
/// exited 0 without a word, ~3,700 of 19,858 events short: an outside
/// audit), and `show` of an interaction with records there shows the
/// others and says what it left out (it failed: "index disagrees with the
/// log").
#[test]
fn a_sealed_segment_removed_or_cut_to_its_header_is_said_by_the_answers_that_lack_it() {
    let p = Pristine::build();
    assert!(p.segments.len() >= 4, "{:?}", p.segments);
    let (base, _) = p.segments[p.segments.len() / 2];
    let (next, _) = p.segments[p.segments.len() / 2 + 1];
    let guid_of = |payload: &[u8]| -> String {
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        v["Interaction"]["interactionGUID"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // An interaction with records in that segment and outside it.
    let (records, _) = scan(&p.dir);
    let inside = |offset: u64| (base..next).contains(&offset);
    let guid = records
        .iter()
        .filter(|r| inside(r.offset))
        .map(|r| guid_of(&r.payload))
        .find(|g| {
            !g.is_empty()
                && records
                    .iter()
                    .any(|r| !inside(r.offset) && guid_of(&r.payload) == *g)
        })
        .expect("an interaction across the segment's ends");
    let kept: Vec<&[u8]> = records
        .iter()
        .filter(|r| !inside(r.offset) && guid_of(&r.payload) == guid)
        .map(|r| r.payload.as_slice())
        .collect();
    let all_events = records.len();
    let left_out = records
        .iter()
        .filter(|r| inside(r.offset) && guid_of(&r.payload) == guid)
        .count();
    for cut in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("archive");
        copy_dir(&p.dir, &dir);
        let file = dir.join("log").join(segment_file_name(base));
        if cut {
            cut_file(&file, 32);
        } else {
            fs::remove_file(&file).unwrap();
        }
        let run = ccvault(&dir, &["-q", "export"]).ok();
        let lines = run.stdout_str().lines().count();
        assert!(lines < all_events, "cut {cut}: {lines} lines");
        let missing = format!("offsets {base} to {} are not in the log", next - 1);
        assert!(
            run.stderr.contains("the export leaves out") && run.stderr.contains(&missing),
            "cut {cut}: {}",
            run.stderr
        );
        let run = ccvault(&dir, &["-q", "show", &guid, "--raw"]).ok();
        let shown: Vec<&[u8]> = run
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(shown.len(), kept.len(), "cut {cut}: {}", run.stderr);
        let left_out = format!(
            "{} record(s) of what follows are in damaged places of the log and left out",
            left_out
        );
        assert!(run.stderr.contains(&left_out), "cut {cut}: {}", run.stderr);
        ccvault(&dir, &["-q", "show", &guid]).ok();
    }
}

/// Bytes added to the end of the last segment (or a crash's unfinished
/// write) are cut by the open `verify` makes, as by every writer's, and
/// `verify` says so in a note: it changed the log (it said nothing).
#[test]
fn verify_says_when_its_open_cut_the_last_segments_tail() {
    let p = Pristine::build();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    copy_dir(&p.dir, &dir);
    let (base, len) = *p.segments.last().unwrap();
    let path = seg_path(&dir, base);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    fs::write(&path, bytes).unwrap();
    let report = &ccvault(&dir, &["verify", "--format", "json"])
        .ok()
        .json_lines()[0];
    assert_eq!(report["clean"], true, "{report}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("ended in 5000 bytes that are no whole record"),
        "{notes}"
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    let again = &ccvault(&dir, &["verify", "--format", "json"])
        .ok()
        .json_lines()[0];
    assert_eq!(again["notes"], serde_json::json!([]));
}

/// One bit of the index flipped, at places spread over the file: whenever
/// `verify` calls the archive clean, importing the same input again
/// archives nothing. A GUID posting keeps its record's payload hash for
/// the duplicate check; `verify` left it out of what it compared, so a
/// flipped bit there passed as clean and the record was archived again
/// (an outside audit: 12 of 68 flips; 31 of 96 here). And a damaged branch
/// page routes lookups past entries that a read in key order finds:
/// `verify` now looks each entry up by its own key.
#[test]
fn an_index_verify_calls_clean_finds_every_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let stream = Stream {
        events: 10_000,
        interactions: 1_250,
        line_len: 200,
    };
    let input = tmp.path().join("in.ndjson");
    stream.write(&input);
    let clean = tmp.path().join("clean");
    import(&clean, &[&input], &[]);
    let records = stats(&clean).records;
    let len = fs::metadata(clean.join("index.redb")).unwrap().len();
    let flips = 48u64;
    let mut verified_clean = 0;
    for k in 0..flips {
        let at = k * len / flips + (k * 389) % 4096;
        if at >= len {
            continue;
        }
        let dir = tmp.path().join(format!("flip-{k}"));
        copy_dir(&clean, &dir);
        let path = dir.join("index.redb");
        let mut bytes = fs::read(&path).unwrap();
        bytes[at as usize] ^= [0x08, 0x80, 0x01, 0x20][k as usize % 4];
        fs::write(&path, bytes).unwrap();
        let verify = ccvault(&dir, &["-q", "verify", "--no-projections"]);
        if verify.code == 0 {
            verified_clean += 1;
            let again = ccvault(&dir, &["-q", "import", input.to_str().unwrap()]);
            if again.code == 0 {
                assert_eq!(
                    stats(&dir).records,
                    records,
                    "index byte {at} flipped: verify said clean, and the same input archived again"
                );
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
    assert!(verified_clean > 0, "no flip left the index usable");
}

/// A quarantined record in a damaged place: `quarantine` lists the others
/// and says, even with `-q`, that it left one out (it listed fewer in
/// silence, exit 0: an outside audit).
#[test]
fn a_quarantined_record_in_a_damaged_place_is_said_by_quarantine() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.ndjson");
    let stream = Stream {
        events: 40,
        interactions: 10,
        line_len: 200,
    };
    let mut text = String::new();
    for i in 0..stream.events {
        text += &stream.line(i);
        text += "\n";
        if i % 10 == 0 {
            text += &format!("not json {i}\n");
        }
    }
    fs::write(&input, text).unwrap();
    let dir = tmp.path().join("archive");
    import(&dir, &[&input], &["--no-compress"]);
    let listed = |dir: &Path| {
        let run = ccvault(dir, &["-q", "quarantine", "--format", "json"]).ok();
        (run.json_lines().len(), run.stderr)
    };
    assert_eq!(listed(&dir), (4, String::new()));
    let log = LogReader::open(&dir.join("log")).unwrap();
    let (at, len) = log
        .scan(Position::START)
        .find_map(|item| match item.unwrap() {
            ScanItem::Record(at, rec) if rec.quarantined => Some((at, rec.as_ref().frame_len())),
            _ => None,
        })
        .unwrap();
    flip(&seg_path(&dir, at.segment), u64::from(at.pos) + len / 2);
    let (count, said) = listed(&dir);
    assert_eq!(count, 3);
    assert!(
        said.contains("1 record(s) of what follows are in damaged places of the log and left out"),
        "{said}"
    );
}

/// An `index.redb` of another archive put beside a log (a restore that
/// mixed two backups): its checkpoint names a place where this log holds
/// the middle of a record, or nothing at all. Whichever command comes
/// first, a reader or a writer, finds that and rebuilds the index from the
/// log, so no answer mixes the two archives; `verify` is clean after it.
#[test]
fn another_archives_index_is_rebuilt_never_mixed_in() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = |events: &str, seed: &str| {
        let out = tmp.path().join(format!("feed-{seed}.ndjson"));
        let out_arg = out.to_str().unwrap();
        ccvault(
            tmp.path(),
            &[
                "simulate", "--events", events, "--seed", seed, "--out", out_arg,
            ],
        )
        .ok();
        out
    };
    let archive = |name: &str, input: &Path| {
        let dir = tmp.path().join(name);
        import(&dir, &[input], &[]);
        dir
    };
    let small = archive("small", &feed("1500", "1"));
    let large = archive("large", &feed("4000", "2"));
    let interactions = |dir: &Path| {
        ccvault(dir, &["interactions", "--format", "json"])
            .ok()
            .stdout
    };
    let empty = empty_file(tmp.path());

    // The log, the archive whose index is put beside it, the first command.
    let cases = [
        (&large, &small, "stats", "where the log holds none"),
        (&large, &small, "import", "where the log holds none"),
        (&small, &large, "stats", "no longer holds the records"),
        (&small, &large, "import", "no longer holds the records"),
    ];
    for (round, (log_of, index_of, first, why)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("mixed-{round}"));
        copy_dir(log_of, &dir);
        fs::copy(index_of.join("index.redb"), dir.join("index.redb")).unwrap();
        let run = match first {
            "import" => import(&dir, &[&empty], &[]),
            _ => ccvault(&dir, &["stats", "--format", "json"]).ok(),
        };
        let when = format!(
            "round {round}: {first} beside the index of {}",
            index_of.display()
        );
        assert!(
            run.stderr.contains(why) && run.stderr.contains("rebuilding"),
            "{when}: {}",
            run.stderr
        );
        let (got, want) = (stats(&dir), stats(log_of));
        assert_eq!(
            (got.records, got.duplicates, got.interactions),
            (want.records, want.duplicates, want.interactions),
            "{when}"
        );
        assert_eq!(interactions(&dir), interactions(log_of), "{when}");
        let verify = ccvault(&dir, &["verify"]);
        assert_eq!(
            verify.code,
            0,
            "{when}: {}{}",
            verify.stdout_str(),
            verify.stderr
        );
    }
}

/// A Parquet `--since-last` export of `dir` into `out`.
fn since_last_export(dir: &Path, out: &Path) -> common::Run {
    let out = out.to_str().unwrap();
    ccvault(
        dir,
        &[
            "export",
            "--format",
            "parquet",
            "--out",
            out,
            "--since-last",
        ],
    )
}

/// A `--since-last` run refused, asking for a full export.
fn assert_since_last_refused(dir: &Path, out: &Path) {
    let refused = since_last_export(dir, out).expect_code(1);
    assert!(
        refused.stderr.contains("run a full export"),
        "{}",
        refused.stderr
    );
}

/// The unsynced tail of the log lost, then the same file imported again:
/// the same payloads take the same offsets, but they are other records
/// (their import time, which times events without one of their own). The
/// projections are rebuilt, as the writer's warning says, and a Parquet
/// `--since-last` run is refused, asking for a full export. Until
/// 2026-12-07 both compared only the payload at their last record, found
/// it equal and went on: `interactions` and the incremental export kept
/// the lost records' times for good (outside audit).
#[test]
fn a_lost_tail_imported_again_is_new_records_to_projections_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let first = tmp.path().join("first.ndjson");
    let s = Stream {
        events: 40,
        interactions: 8,
        line_len: 300,
    };
    fs::write(&first, s.text(0..40)).unwrap();
    import(&dir, &[&first], &[]);
    let kept = fs::metadata(seg_path(&dir, 0)).unwrap().len();
    // Events timed by their import alone (docs/METRICS.md §2, rule 7).
    let second = tmp.path().join("second.ndjson");
    let untimed: String = (0..10)
        .map(|i| {
            format!(
                "{{\"Interaction\":{{\"event\":\"InteractionCreated\",\"interactionGUID\":\"int-untimed-{i}-acme01\",\"queueId\":7}}}}\n"
            )
        })
        .collect();
    fs::write(&second, untimed).unwrap();
    import(&dir, &[&second], &[]);
    let out = tmp.path().join("parquet");
    since_last_export(&dir, &out).ok();
    let listed = |dir: &Path| {
        ccvault(dir, &["interactions", "--format", "json"])
            .ok()
            .stdout_str()
            .to_owned()
    };
    let before = listed(&dir);
    assert!(before.contains("int-untimed-9-acme01"), "{before}");

    // The tail lost, as a power cut loses what was not synced; the same
    // file imported again a moment later.
    std::thread::sleep(std::time::Duration::from_millis(20));
    cut_then_import(&dir, 0, kept, &second);

    let after = listed(&dir);
    assert_ne!(
        after, before,
        "the projections kept the lost records' times"
    );
    ccvault(&dir, &["rebuild"]).ok();
    assert_eq!(listed(&dir), after, "the projections differ from a rebuild");
    ccvault(&dir, &["verify"]).ok();
    assert_since_last_refused(&dir, &out);
}

/// Cuts the log's segment `segment` to `len` bytes, as a power cut loses
/// what was not synced, then imports `input`: the import must say that the
/// log lost records the index had seen.
fn cut_then_import(dir: &Path, segment: u64, len: u64, input: &Path) {
    cut_file(&seg_path(dir, segment), len);
    let run = import(dir, &[input], &[]);
    assert!(
        run.stderr.contains("no longer holds the records"),
        "{}",
        run.stderr
    );
}

/// The log loses only the tally at its end (an unsynced tail: the batch
/// that ended in duplicates), and the next records take its offset. The
/// projections and a Parquet `--since-last` run had counted that offset as
/// done: the projections are rebuilt (they equal a rebuild's), and the run
/// is refused. Until 2026-12-07 both compared only the message before the
/// tally, found it in place, went on from past the tally and never read
/// the record at its offset, for good (outside audit).
#[test]
fn a_lost_tally_whose_offset_a_new_record_took_is_read_by_projections_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let s = Stream {
        events: 40,
        interactions: 8,
        line_len: 300,
    };
    // Copies at the end: the batch ends in a tally of its duplicates.
    let first = tmp.path().join("first.ndjson");
    fs::write(&first, s.text(0..40) + &s.text(0..3)).unwrap();
    import(&dir, &[&first], &[]);
    let last = LogReader::open(&dir.join("log"))
        .unwrap()
        .scan(Position::START)
        .filter_map(|item| match item.unwrap() {
            ScanItem::Record(at, rec) => Some((at, rec)),
            ScanItem::Damage(_) => None,
        })
        .last()
        .unwrap();
    assert_eq!(last.1.kind, ccvault_log::RecordKind::Tally, "{last:?}");
    let agents = |dir: &Path| ccvault(dir, &["agents", "--format", "json"]).ok().stdout;
    agents(&dir);
    let out = tmp.path().join("parquet");
    since_last_export(&dir, &out).ok();

    // The tally lost; a status change of a new agent takes its offset.
    let second = tmp.path().join("second.ndjson");
    fs::write(
        &second,
        "{\"AgentStatusChange\":{\"agentId\":\"ag-after-the-loss\",\"newState\":1,\"msgInfo\":{\"timestamp\":1763900000000}}}\n",
    )
    .unwrap();
    cut_then_import(&dir, last.0.segment, u64::from(last.0.pos), &second);

    let caught_up = agents(&dir);
    assert!(
        String::from_utf8_lossy(&caught_up).contains("ag-after-the-loss"),
        "{}",
        String::from_utf8_lossy(&caught_up)
    );
    let rebuilt = tmp.path().join("rebuilt");
    copy_dir(&dir, &rebuilt);
    ccvault(&rebuilt, &["rebuild"]).ok();
    assert_eq!(caught_up, agents(&rebuilt));
    ccvault(&dir, &["verify"]).ok();
    assert_since_last_refused(&dir, &out);
}

/// `ccvault ARGS` (a `verify`) in `dir`: exit 1 and one `DAMAGE` line.
/// Returns the whole output and that line.
fn the_damage_line(dir: &Path, args: &[&str]) -> (String, String) {
    let run = ccvault(dir, args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let out = run.stdout_str();
    let damage: Vec<&str> = out.lines().filter(|l| l.starts_with("DAMAGE")).collect();
    assert_eq!(damage.len(), 1, "{out}");
    let line = damage[0].to_owned();
    (out, line)
}

/// The last `.seg` with a flipped byte in its header, every record
/// intact: `verify` says `reindex` writes it again, and `reindex` does,
/// byte for byte (until 2026-12-07 nothing did: the archive stayed NOT
/// CLEAN for good, and every read warned of a loss there was not; an
/// outside audit).
#[test]
fn a_damaged_seg_header_is_written_again_by_reindex() {
    let p = Pristine::build();
    let dir = p.copy("seg-header");
    let last = common::log_files(&dir, "seg").pop().unwrap();
    let name = last.file_name().unwrap().to_str().unwrap().to_owned();
    let original = fs::read(&last).unwrap();
    let export = ccvault(&dir, &["-q", "export"]).ok().stdout;
    flip(&last, 5); // the magic
    let (out, damage) = the_damage_line(&dir, &["verify", "--no-projections"]);
    assert!(
        damage.contains(&name) && damage.contains("`ccvault reindex` writes the header again"),
        "{out}"
    );
    let run = ccvault(&dir, &["reindex", "--format", "json"]).ok();
    assert!(
        run.stderr.contains(&format!(
            "wrote the header of {name} again from its first record (bad segment magic)"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(run.json_lines()[0]["rewrittenHeaders"][0], name.as_str());
    assert!(fs::read(&last).unwrap() == original, "{name} differs");
    ccvault(&dir, &["verify"]).ok();
    assert_eq!(ccvault(&dir, &["-q", "export"]).ok().stdout, export);
}

/// A compressed segment whose header is damaged, every block intact: all
/// its records are read, `verify` names the one damaged part and what puts
/// it right, and `reindex` writes the header and block index again from
/// the blocks, the file's bytes as they were, after which the archive
/// verifies clean.
#[test]
fn a_damaged_segz_header_is_written_again_by_reindex() {
    let p = Pristine::build();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    import(&dir, &[&p.input], &["--segment-bytes", "65536"]);
    let packed = common::log_files(&dir, "segz");
    assert!(packed.len() >= 3, "{packed:?}");
    let damaged = &packed[1];
    let name = damaged.file_name().unwrap().to_str().unwrap().to_owned();
    let original = fs::read(damaged).unwrap();
    let export = ccvault(&dir, &["-q", "export"]).ok().stdout;
    flip(damaged, 30); // the header's count of blocks

    let (out, damage) = the_damage_line(&dir, &["verify"]);
    assert!(
        damage.contains(&name)
            && damage.contains(".segz header CRC mismatch")
            && damage.contains("`ccvault reindex` writes the header and block index again"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{} readable records", p.stream.events)),
        "{out}"
    );
    // Nothing is left out, so the export says nothing is.
    let run = ccvault(&dir, &["-q", "export"]).ok();
    assert_eq!(run.stdout, export);
    assert!(!run.stderr.contains("leaves out"), "{}", run.stderr);

    let run = ccvault(&dir, &["reindex"]).ok();
    assert!(
        run.stderr.contains(&format!(
            "wrote the header and block index of {name} again from its blocks (.segz header CRC mismatch)"
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("skipping damaged"), "{}", run.stderr);
    assert!(
        fs::read(damaged).unwrap() == original,
        "{name} differs from the file before the flip"
    );
    ccvault(&dir, &["verify"]).ok();
    assert_eq!(ccvault(&dir, &["-q", "export"]).ok().stdout, export);
    // Once whole, a reindex leaves it alone.
    let run = ccvault(&dir, &["reindex"]).ok();
    assert!(!run.stderr.contains("wrote the header"), "{}", run.stderr);

    // A copy of a compressed segment under another name: its header is
    // intact and states another base. That is a file put in the log, not
    // damage to rewrite, and its records are no index's concern: `verify`
    // says so in one line, offers no rewrite and finds no index problem.
    let last: u64 = packed
        .last()
        .and_then(|p| p.file_stem()?.to_str()?.parse().ok())
        .unwrap();
    let copy = dir
        .join("log")
        .join(ccvault_log::segz_file_name(last + 100_000));
    fs::copy(&packed[0], &copy).unwrap();
    let (out, damage) = the_damage_line(&dir, &["verify", "--no-projections"]);
    assert!(
        damage.contains("the file holds the segment of base offset 0"),
        "{out}"
    );
    assert!(!out.contains("ccvault reindex` writes"), "{out}");
    assert!(!out.contains("INDEX"), "{out}");
    let run = ccvault(&dir, &["export"]).ok();
    assert!(
        !run.stderr.contains("ccvault reindex` writes"),
        "{}",
        run.stderr
    );

    // The same copy with its header damaged too: the copy of its `.seg`
    // header it keeps says which segment it holds (since 2026-12-07), so
    // it is named as a copy, no rewrite is offered, and a writer refuses
    // it, leaving every file as it is (it adopted it and appended after
    // it: a gap of offsets for good).
    flip(&copy, 21);
    let (out, damage) = the_damage_line(&dir, &["verify", "--no-projections"]);
    assert!(
        damage.contains("the file holds the segment of base offset 0"),
        "{out}"
    );
    assert!(!out.contains("ccvault reindex` writes"), "{out}");
    let before = log_contents(&dir);
    for args in [
        &["-q", "reindex"][..],
        &["-q", "import", p.input.to_str().unwrap()],
    ] {
        let run = ccvault(&dir, args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("holds the segment of base offset 0"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(log_contents(&dir) == before, "{args:?} changed the log");
    }
    fs::remove_file(&copy).unwrap();
    ccvault(&dir, &["verify"]).ok();

    // A copy under the name of the active segment, beside its `.seg`: no
    // leftover of a compression, so not removed as one; a writer refuses
    // it, and `verify` reads the `.seg` and finds no index problem.
    let active = common::segment_files(&dir).pop().unwrap();
    let base: u64 = active
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let beside = dir.join("log").join(ccvault_log::segz_file_name(base));
    fs::copy(&packed[0], &beside).unwrap();
    let run = ccvault(&dir, &["verify", "--no-projections"]);
    assert!(!run.stdout_str().contains("INDEX"), "{}", run.stdout_str());
    let run = ccvault(&dir, &["-q", "reindex"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("holds the segment of base offset 0"),
        "{}",
        run.stderr
    );
    assert!(
        beside.exists(),
        "the copy beside the active segment was removed"
    );
    fs::remove_file(&beside).unwrap();
    ccvault(&dir, &["verify"]).ok();
}
