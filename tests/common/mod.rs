//! Helpers shared by the end-to-end tests: the numbered event stream, running
//! the built `ccvault` binary, and reading an archive back at library level.
//! Each piece of logic lives here once.

#![allow(dead_code)]

pub mod browser;
pub mod daemon;
pub mod http;
pub mod mqtt;
pub mod tls;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ccvault_store::{ArchiveReader, Record};

// ---------------------------------------------------------------------------
// Randomness

// One PRNG for every test crate: the log crate's.
#[path = "../../crates/log/tests/common/rng.rs"]
mod rng;

pub use rng::Rng;

impl Rng {
    /// A seed from the clock (printed by callers, so a failure can be replayed
    /// with `CCVAULT_TEST_SEED`).
    pub fn seeded() -> (Rng, u64) {
        let seed = std::env::var("CCVAULT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        (Rng(seed), seed)
    }
}

// ---------------------------------------------------------------------------
// The numbered event stream

/// A generated stream of distinct bare `Interaction` events. Line `i`
/// (0-based) belongs to interaction `i % interactions` (round robin, so the
/// neighbours of any record in the log belong to other interactions), has
/// `msgInfo.sequenceId = i`, and an event time that grows with `i`, so the
/// canonical order of an interaction's events is their line order.
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    pub events: usize,
    pub interactions: usize,
    /// Approximate length of each line in bytes (without the newline).
    pub line_len: usize,
}

const EVENT_TYPES: [&str; 6] = [
    "InteractionCreated",
    "InteractionQueued",
    "InteractionAssigned",
    "InteractionAccepted",
    "LineHoldStatus",
    "InteractionDeleted",
];

pub const TIME_BASE_S: u64 = 1_763_900_000;

impl Stream {
    pub fn guid(&self, interaction: usize) -> String {
        format!("int-e2e{interaction:08}-Qm7tZp2LxWc9aRf3kYv8bNe1H-phone-00-acmecorp01")
    }

    pub fn agent(&self, i: usize) -> String {
        format!("agE2E{:05}VbN3cZk5WpYe", i % 37)
    }

    pub fn interaction_of(&self, i: usize) -> usize {
        i % self.interactions
    }

    /// Line `i`, without its newline.
    pub fn line(&self, i: usize) -> String {
        let g = self.interaction_of(i);
        let k = i / self.interactions;
        let event = EVENT_TYPES[k.min(EVENT_TYPES.len() - 1)];
        let mut s = format!(
            "{{\"Interaction\":{{\"event\":\"{event}\",\"interactionGUID\":\"{}\",\"agentId\":\"{}\",\"queueId\":\"{}\",\"interactionEventTS\":{},\"msgInfo\":{{\"instanceId\":\"e2e\",\"sequenceId\":{i},\"timestamp\":{}}},\"pad\":\"",
            self.guid(g),
            self.agent(i),
            300 + i % 7,
            TIME_BASE_S + i as u64,
            (TIME_BASE_S + i as u64) * 1000 + 17,
        );
        let mut rng = Rng((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        while s.len() + 3 < self.line_len {
            s.push((b'a' + rng.below(26) as u8) as char);
        }
        s.push_str("\"}}");
        s
    }

    /// The line number (0-based) a payload of this stream claims to be: its
    /// `sequenceId` (confirm it against the line).
    pub fn claimed_index(&self, payload: &[u8]) -> Option<usize> {
        let text = std::str::from_utf8(payload).ok()?;
        let at = text.find("\"sequenceId\":")? + "\"sequenceId\":".len();
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok().filter(|&i| i < self.events)
    }

    /// The line number (0-based) of a payload of this stream, if it is one
    /// (confirmed byte for byte).
    pub fn index_of(&self, payload: &[u8]) -> Option<usize> {
        let i = self.claimed_index(payload)?;
        (self.line(i).as_bytes() == payload).then_some(i)
    }

    /// Lines `range` of the stream, each followed by a newline.
    pub fn text(&self, range: std::ops::Range<usize>) -> String {
        let mut out = String::new();
        for i in range {
            out.push_str(&self.line(i));
            out.push('\n');
        }
        out
    }

    /// Writes the whole stream to `path`.
    pub fn write(&self, path: &Path) {
        let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
        for i in 0..self.events {
            f.write_all(self.line(i).as_bytes()).unwrap();
            f.write_all(b"\n").unwrap();
        }
        f.flush().unwrap();
    }

    /// The lines of interaction `g` in canonical order (= line order), each
    /// followed by a newline: what `show GUID --raw` must print.
    pub fn raw_of(&self, g: usize) -> String {
        let mut out = String::new();
        for i in (g..self.events).step_by(self.interactions) {
            out.push_str(&self.line(i));
            out.push('\n');
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Running the binary

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ccvault")
}

/// The sample streams kept in the repository (`tests/fixtures/samples`).
pub fn samples_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/samples");
    assert!(
        dir.join("events.ndjson").is_file(),
        "the sample files are missing: expected them in {}",
        dir.display()
    );
    dir
}

pub fn sample(name: &str) -> PathBuf {
    samples_dir().join(name)
}

/// An example file of the 8x8 documentation (`tests/fixtures/8x8-docs`).
pub fn docs_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/8x8-docs")
        .join(name)
}

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    /// The outcome of a finished `ccvault ARGS...` (however it was run),
    /// which must not have panicked.
    pub fn from_output(args: Vec<String>, out: Output) -> Run {
        let run = Run {
            args,
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        run.assert_no_panic();
        run
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// A panic is a failure whatever the command and whatever the damage.
    pub fn assert_no_panic(&self) {
        assert!(
            self.code != 101 && !self.stderr.contains("panicked"),
            "ccvault {:?} panicked (exit {}):\n{}",
            self.args,
            self.code,
            self.stderr
        );
        assert!(
            self.code >= 0,
            "ccvault {:?} was killed by a signal:\n{}",
            self.args,
            self.stderr
        );
    }

    /// Asserts the exit code and returns self.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            code,
            "ccvault {:?}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout_str(),
            self.stderr
        );
        self
    }

    pub fn ok(self) -> Run {
        self.expect_code(0)
    }

    /// stdout parsed as NDJSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout_str()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("ccvault {:?}: bad JSON line {l:?}: {e}", self.args))
            })
            .collect()
    }
}

/// Whether the tests run as root (CI does): some need to mount, or to run
/// the binary as another user.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file this process just created is its effective uid.
    let probe = tempfile::NamedTempFile::new().unwrap();
    fs::metadata(probe.path()).unwrap().uid() == 0
}

/// A `ccvault` command on the archive `dir`, ready to spawn or run.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    on_archive(Command::new(bin()), dir, args)
}

/// `ccvault --data-dir DIR ARGS...` run through `wrapper`: a program and its
/// arguments that end by executing the rest of the command line in a changed
/// setting (another user, a resource limit), e.g.
/// `["setpriv", "--reuid=65534", "--"]`. No stdin; waits for it.
pub fn ccvault_under(wrapper: &[&str], dir: &Path, args: &[&str]) -> Run {
    let (program, wrapper_args) = wrapper.split_first().expect("a wrapper program");
    let mut cmd = Command::new(program);
    cmd.args(wrapper_args).arg(bin());
    let out = on_archive(cmd, dir, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Run::from_output(args.iter().map(|s| s.to_string()).collect(), out)
}

/// `cmd` given the archive and `args`, with the environment that could
/// point it elsewhere removed.
fn on_archive(mut cmd: Command, dir: &Path, args: &[&str]) -> Command {
    cmd.arg("--data-dir").arg(dir).args(args);
    cmd.env_remove("CCVAULT_DATA").env_remove("CCVAULT_LOG");
    cmd
}

/// Runs `ccvault --data-dir DIR ARGS...` with no stdin and waits.
pub fn ccvault(dir: &Path, args: &[&str]) -> Run {
    let out = command(dir, args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run ccvault");
    Run::from_output(args.iter().map(|s| s.to_string()).collect(), out)
}

/// Runs `ccvault --data-dir DIR ARGS...` with `input` on stdin.
pub fn ccvault_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Run {
    let mut child = command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run ccvault");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    Run::from_output(args.iter().map(|s| s.to_string()).collect(), out)
}

/// Runs `ccvault ARGS` on `dir` and SIGKILLs it `after` its start unless it
/// has ended by then (successfully: it is then not a crash). Returns whether
/// the kill found it running.
pub fn killed_after(dir: &Path, args: &[&str], after: std::time::Duration) -> bool {
    let mut child = command(dir, args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let kill_at = std::time::Instant::now() + after;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "ccvault {args:?} failed on its own: {status}"
            );
            return false;
        }
        if std::time::Instant::now() >= kill_at {
            child.kill().unwrap();
            let status = child.wait().unwrap();
            return !status.success();
        }
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
}

/// `import FILES... ARGS...`, which must succeed.
pub fn import(dir: &Path, files: &[&Path], extra: &[&str]) -> Run {
    let mut args: Vec<&str> = vec!["import"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend_from_slice(extra);
    ccvault(dir, &args).ok()
}

/// The `stats --format json` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub records: u64,
    pub events: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    pub interactions: u64,
    pub segments: u64,
    pub json: serde_json::Value,
}

/// Asserts that `stats --format json` (`json`, taken with no writer
/// running since) gives the log's segments and bytes as a fresh listing of
/// the log directory sizes them: one segment a base, a base's `.seg`
/// counted while it also has a `.segz`. `stats` sizes the compressed
/// segments from the index's running count, so this catches that count
/// going wrong (after an import, a compression, a crash, a reindex).
pub fn assert_log_footprint(dir: &Path, json: &serde_json::Value, when: &str) {
    let mut files: Vec<(u64, bool, u64)> = fs::read_dir(dir.join("log"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().ok()?;
            let (stem, packed) = match name.strip_suffix(".segz") {
                Some(stem) => (stem, true),
                None => (name.strip_suffix(".seg")?, false),
            };
            let base = stem.parse().ok().filter(|_| stem.len() == 20)?;
            Some((base, packed, e.metadata().unwrap().len()))
        })
        .collect();
    files.sort_unstable();
    files.dedup_by_key(|f| f.0);
    let bytes: u64 = files.iter().map(|f| f.2).sum();
    assert_eq!(
        (json["segments"].as_u64(), json["logBytes"].as_u64()),
        (Some(files.len() as u64), Some(bytes)),
        "{when}: stats' segments and log bytes differ from the log directory's ({json})"
    );
}

pub fn stats(dir: &Path) -> Stats {
    let run = ccvault(dir, &["stats", "--format", "json"]).ok();
    let lines = run.json_lines();
    assert_eq!(
        lines.len(),
        1,
        "stats --format json: {:?}",
        run.stdout_str()
    );
    let json = lines.into_iter().next().unwrap();
    let field = |k: &str| {
        json[k]
            .as_u64()
            .unwrap_or_else(|| panic!("stats has no count {k:?}: {json}"))
    };
    Stats {
        records: field("records"),
        events: field("events"),
        quarantined: field("quarantined"),
        duplicates: field("duplicates"),
        interactions: field("interactions"),
        segments: field("segments"),
        json: json.clone(),
    }
}

// ---------------------------------------------------------------------------
// Reading an archive at library level

/// Every visible record of the archive, in log order, and the damage the
/// scan skipped.
pub fn scan(dir: &Path) -> (Vec<Record>, Vec<String>) {
    let reader = ArchiveReader::open(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let mut records = Vec::new();
    let mut damage = Vec::new();
    reader
        .for_each_record(
            |r| {
                records.push(r);
                Ok(())
            },
            |d| damage.push(d),
        )
        .unwrap_or_else(|e| panic!("scan {}: {e}", dir.display()));
    (records, damage)
}

/// The tally records of an archive's log (docs/FORMAT.md §1.4), in log
/// order: (offset, running totals, line of the batch's last message).
pub fn tallies(dir: &Path) -> Vec<(u64, ccvault_log::Tally, u64)> {
    let reader = ccvault_log::LogReader::open(&dir.join("log"))
        .unwrap_or_else(|e| panic!("open the log of {}: {e}", dir.display()));
    let mut out = Vec::new();
    for item in reader.scan(ccvault_log::Position::START) {
        if let ccvault_log::ScanItem::Record(_, r) = item.unwrap() {
            if let Some(t) = r.tally() {
                out.push((r.offset, t, r.line));
            }
        }
    }
    out
}

/// The segment files of an archive, sorted.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    log_files(dir, "seg")
}

/// The files of an archive's log with extension `ext` (`seg`, `segz`),
/// sorted.
pub fn log_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Copies a directory tree (files and directories, keeping modes).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// An empty input file (importing it just opens the archive as a writer,
/// which runs recovery).
pub fn empty_file(dir: &Path) -> PathBuf {
    let path = dir.join("empty.ndjson");
    fs::write(&path, b"").unwrap();
    path
}

/// A busy afternoon of [`simulated_day_until`]'s day (the simulator starts
/// its days at 2025-11-24T00:00Z): 2025-11-24T13:00Z.
pub const SIM_AFTERNOON_MS: i64 = 1_763_989_200_000;

/// The simulated day of the wallboard tests (`simulate --no-quirks --seed 7
/// --agents 20`; its ground truth written to `truth` when given), cut at
/// `until_ms`: the events an archive being written at that instant holds,
/// in the simulator's order.
pub fn simulated_day_until(
    work: &Path,
    until_ms: i64,
    truth: Option<&Path>,
) -> Vec<serde_json::Value> {
    let day = work.join("simulated-day.ndjson");
    let mut args = vec![
        "simulate".to_string(),
        "--no-quirks".into(),
        "--seed".into(),
        "7".into(),
        "--agents".into(),
        "20".into(),
        "--out".into(),
        day.display().to_string(),
    ];
    if let Some(t) = truth {
        args.extend(["--truth".to_string(), t.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ccvault(work, &args).ok();
    fs::read_to_string(&day)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|v| payload_time_ms(v).is_some_and(|t| t <= until_ms))
        .collect()
}

/// t(e) of a payload as crates/event reads it: interactionEventTS, else
/// statusEventTS, else msgInfo.timestamp (else tickTS, else eventTS).
pub fn payload_time_ms(v: &serde_json::Value) -> Option<i64> {
    let body = v.as_object()?.values().next()?;
    let secs = |k: &str| {
        let x = &body[k];
        x.as_i64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| *n > 0)
            .map(|n| n * 1000)
    };
    secs("interactionEventTS")
        .or_else(|| secs("statusEventTS"))
        .or_else(|| body["msgInfo"]["timestamp"].as_i64().filter(|n| *n > 0))
        .or_else(|| secs("tickTS"))
        .or_else(|| secs("eventTS"))
}
