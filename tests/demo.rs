//! `ccvault demo`, the README's first command, end to end with the built binary.

use std::path::Path;
use std::process::Command;

/// The stdout of `ccvault ARGS` run in `cwd` without `CCVAULT_DATA`,
/// which must succeed.
fn succeeds(args: &[&str], cwd: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .args(args)
        .current_dir(cwd)
        .env_remove("CCVAULT_DATA")
        .output()
        .expect("run ccvault");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `demo --tz` prints the day and the interaction in that zone (it was
/// accepted and ignored: every time UTC).
#[test]
fn demo_prints_its_times_in_the_zone_asked_for() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let stdout = succeeds(
        &[
            "demo",
            "--seed",
            "3",
            "--tz",
            "America/New_York",
            "--into",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(
        stdout.contains("The day by hour (all queues, America/New_York,"),
        "{stdout}"
    );
    // The report's hours and the timeline's events, at the zone's offset.
    assert!(stdout.matches("-05:00").count() > 10, "{stdout}");
    let page = std::fs::read_to_string(dir.join("timeline.html")).unwrap();
    assert!(
        page.contains("-05:00"),
        "the timeline page is not in the zone"
    );
}

#[test]
fn demo_archives_a_day_and_prints_the_report_and_a_timeline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .args(["demo", "--seed", "3", "--into"])
        .arg(&dir)
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "Simulated one day",
        "Archived into",
        "Report by 1h interval",
        "InteractionAccepted",
        "outcome     answered",
        "Try next:",
    ] {
        assert!(
            stdout.contains(expected),
            "demo output lacks {expected:?}:\n{stdout}"
        );
    }

    // The archive it made is real: clean, and it holds what the demo said it stored.
    let stored: u64 = stdout
        .split("events stored")
        .next()
        .and_then(|s| s.rsplit(' ').nth(1))
        .and_then(|n| n.parse().ok())
        .expect("the demo reports how many events it stored");
    let verify = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .arg("--data-dir")
        .arg(&dir)
        .arg("verify")
        .output()
        .expect("verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let stats = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["--format", "json", "stats"])
        .output()
        .expect("stats");
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("stats json");
    assert_eq!(stats["events"].as_u64(), Some(stored));
    assert!(stats["interactions"].as_u64().unwrap_or(0) > 1000);

    // The pictures are written, self-contained; the contact one has a lane
    // group per leg of a transferred call.
    let contact = std::fs::read_to_string(dir.join("contact.html")).expect("contact.html");
    assert!(contact.matches("<g class=\"leg\"").count() >= 2);
    for page in ["report.html", "timeline.html", "contact.html"] {
        let html = std::fs::read_to_string(dir.join(page)).expect(page);
        assert!(html.contains("<svg"), "{page} has no SVG");
        for fetch in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "<script src",
            "<link ",
        ] {
            assert!(!html.contains(fetch), "{page} would fetch: {fetch}");
        }
    }

    // A second demo into the same directory is refused, not merged.
    let again = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .args(["demo", "--into"])
        .arg(&dir)
        .output()
        .expect("run demo again");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

/// The interaction the demo pictures is placed in its contact as `show`
/// places it. The default seed's is a transferred leg, which the demo
/// showed as its own contact, leg 0, from its parent: its records alone
/// cannot tell where it sits (an outside audit, 2026-12-07).
#[test]
fn the_pictured_interaction_sits_in_its_contact_as_show_says() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let stdout = succeeds(&["demo", "--into", "d"], tmp.path());
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Interaction "));
    let guid = lines
        .next()
        .and_then(|l| l.strip_prefix("Interaction "))
        .expect("the pictured interaction");
    let placed = lines
        .find(|l| l.starts_with("kind "))
        .expect("its kind and contact");
    let shown = succeeds(
        &["--data-dir", "d", "show", guid, "--format", "json"],
        tmp.path(),
    );
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("show's JSON");
    let s = &shown["summary"];
    assert!(s["legIndex"].as_i64() > Some(0), "not a later leg: {s}");
    let expected = format!(
        "contact {}  legIndex {}  from {}",
        s["contactId"].as_str().expect("a contact"),
        s["legIndex"],
        s["parentGuid"].as_str().unwrap_or("-")
    );
    assert!(placed.contains(&expected), "{placed}\nshow: {expected}");
}

/// PATH with the built `ccvault` first, as after `cargo install`.
fn path_with_ccvault() -> String {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ccvault"));
    format!(
        "{}:{}",
        bin.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs one documented command line in bash (pipefail) from `dir`, as a
/// user would type it; asserts it succeeds and prints something (unless it
/// redirects its output).
fn run_as_printed(line: &str, dir: &std::path::Path, path: &str) {
    let run = Command::new("bash")
        .args(["-o", "pipefail", "-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("CCVAULT_DATA")
        .output()
        .expect("bash");
    assert!(
        run.status.success(),
        "`{line}` failed ({}):\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        !run.stdout.is_empty() || line.contains('>'),
        "`{line}` printed nothing"
    );
}

/// The "Try next" lines work as printed: run each one in a shell, from the
/// directory the demo ran in, with `ccvault` on PATH (as after `cargo install`).
#[test]
fn every_try_next_line_works_as_printed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = path_with_ccvault();
    // The default directory: ./ccvault-demo-<time>, relative to where it ran.
    let stdout = succeeds(&["demo", "--seed", "5"], tmp.path());
    let (_, next) = stdout.split_once("Try next:\n").expect("Try next");
    let lines: Vec<&str> = next
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(lines.len() >= 5, "{next}");
    assert!(lines.iter().any(|l| l.contains(" show int-")), "{next}");
    for line in lines {
        assert!(line.starts_with("ccvault "), "{line}");
        run_as_printed(line, tmp.path(), &path);
    }
    // An archive whose name starts with `-` is named so that it is not
    // read as an option (`--data-dir -dash stats` was a usage error: an
    // outside audit).
    let stdout = succeeds(&["demo", "--seed", "5", "--into=-dash"], tmp.path());
    let stats = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.ends_with(" stats"))
        .expect("a stats line");
    assert_eq!(stats, "ccvault --data-dir=-dash stats");
    run_as_printed(stats, tmp.path(), &path);
}

/// The README's quick start: its first two commands run the demo and the
/// test suite (this test is part of what the second one runs); the install
/// block's `ccvault` lines run as written, in an empty directory with
/// `ccvault` on PATH (as the `cargo install` line puts it there).
#[test]
fn the_readme_quick_start_works_as_written() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .expect("README.md");
    let (_, start) = readme.split_once("## Quick start").expect("a quick start");
    let (_, first) = start.split_once("```sh\n").expect("a shell block");
    let (first, rest) = first.split_once("```").expect("the block's end");
    let first: Vec<&str> = first.lines().collect();
    assert!(
        first[0].starts_with("cargo run --release -- demo"),
        "{first:?}"
    );
    assert!(first[1].starts_with("bash scripts/test.sh"), "{first:?}");
    let (_, block) = rest.split_once("```sh\n").expect("the install block");
    let (block, _) = block.split_once("```").expect("the block's end");
    let lines: Vec<&str> = block.lines().collect();
    assert!(
        lines[0].starts_with("cargo install --locked --path bin/ccvault"),
        "{block}"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = path_with_ccvault();
    let mut ran = 0;
    for line in lines.iter().filter(|l| l.starts_with("ccvault ")) {
        assert!(!line.contains('>'), "a quick-start line must print: {line}");
        run_as_printed(line, tmp.path(), &path);
        ran += 1;
    }
    assert!(ran >= 2, "{block}");
}

/// Without `--into`, each demo archives into a directory of its own, even
/// two started in the same second (the name's resolution): the second takes
/// the name with `-2`.
#[test]
fn demos_started_together_each_get_a_fresh_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_ccvault"))
            .args(["demo", "--format", "json"])
            .current_dir(tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run demo")
    };
    let (a, b) = (start(), start());
    for run in [a, b] {
        let out = run.wait_with_output().expect("demo");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dirs: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    assert!(
        dirs.iter().all(|d| d.starts_with("ccvault-demo-")),
        "{dirs:?}"
    );
}

/// `--data-dir` typed on the command line is where the demo archives, as it
/// is where every other command reads; `CCVAULT_DATA` (set for the tour)
/// is not, so a second `demo` never collides with the archive it names.
#[test]
fn a_typed_data_dir_is_where_the_demo_archives() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Global flags before the command name, the demo's after it.
    let demo = |args: &[&str], env: Option<&str>| {
        let (before, after) = match args.iter().position(|a| *a == "--into") {
            Some(i) => args.split_at(i),
            None => (args, &[][..]),
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccvault"));
        cmd.args(before)
            .args(["demo", "--format", "json", "--agents", "2"])
            .args(after)
            .current_dir(tmp.path())
            .env_remove("CCVAULT_DATA");
        if let Some(dir) = env {
            cmd.env("CCVAULT_DATA", dir);
        }
        cmd.output().expect("run demo")
    };
    let out = demo(&["--data-dir", "mine"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["dataDir"], "mine");
    assert!(tmp.path().join("mine/log").is_dir());
    // Again: the directory exists, and the demo never archives into one.
    let out = demo(&["--data-dir", "mine"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mine already exists"));
    // Both named: --into, the demo's own flag.
    let out = demo(&["--data-dir", "a", "--into", "b"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tmp.path().join("b/log").is_dir() && !tmp.path().join("a").exists());
    // CCVAULT_DATA: a fresh ./ccvault-demo-<time>, the variable's archive untouched.
    let out = demo(&[], Some("mine"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let dir = json["dataDir"].as_str().expect("dataDir");
    assert!(dir.contains("ccvault-demo-"), "{dir}");
}

/// A demo stopped by SIGINT half-way leaves no directory behind (it left a
/// partial archive, in the way of the next `demo --into` of that name),
/// exits as a shell reports SIGINT, and says so.
#[test]
fn a_demo_stopped_half_way_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Directories above its own that it made go too (they were left until
    // 2026-12-07).
    let dir = tmp.path().join("p1").join("p2").join("demo");
    // Enough agents that the archive and projections steps outlast the
    // moment the directory appears.
    let child = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .args(["demo", "--agents", "300", "--format", "json", "--into"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run demo");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !dir.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo never made its directory"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("demo stopped by SIGINT"), "{stderr}");
    assert!(
        !tmp.path().join("p1").exists(),
        "the unfinished demo directory or a parent it made is still there"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A reader that leaves after the first line (`demo | head -1`, `less`
/// quit early) leaves the demo to finish: the archive it announces is
/// there and answers, and the exit is 0 with nothing said (until
/// 2026-12-07 the closed pipe failed the demo, which removed the archive it
/// had just announced, and still exited 0: an outside audit).
#[test]
fn a_reader_that_leaves_early_keeps_the_demo_it_was_reading() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .args(["demo", "--seed", "3", "--into"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run demo");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("Simulated one day"), "{first}");
    // The reader is dropped here: the pipe is closed.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let stats = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["stats", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(v["events"].as_u64().unwrap() > 1_000, "{v}");
    for page in ["report.html", "timeline.html"] {
        assert!(dir.join(page).is_file(), "{page} was not written");
    }
}

/// A directory whose name is not UTF-8 is named in the JSON as every path
/// is, `\xNN` for each such byte (`demo --format json` panicked on it
/// until 2026-12-07: an outside audit).
#[test]
fn a_demo_into_a_name_that_is_not_utf8_says_it_in_json() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(std::ffi::OsStr::from_bytes(b"demo\xff"));
    let out = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .args(["demo", "--seed", "3", "--format", "json", "--into"])
        .arg(&dir)
        .output()
        .expect("run demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let named = v["dataDir"].as_str().unwrap();
    assert!(named.ends_with("demo\\xFF"), "{named}");
    assert!(dir.join("index.redb").is_file());
}

/// A demo that cannot make its directory (a parent is a file) says that
/// alone: until 2026-12-07 a line about removing the directory it never
/// made came first (an outside audit).
#[test]
fn a_demo_that_cannot_make_its_directory_says_only_that() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("afile");
    std::fs::write(&file, b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .args(["demo", "--format", "json", "--into"])
        .arg(file.join("x"))
        .output()
        .expect("run demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("ccvault: error: cannot create the demo archive")
            && stderr.contains("Not a directory"),
        "{stderr}"
    );
}
