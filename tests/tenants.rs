//! Tenants as shards, end to end with the built binary: one archive holding
//! three simulated tenants (each its own GUID suffix, agents and quirks),
//! beside an archive per tenant holding only that tenant's file. Every
//! `--tenant T` output must equal the unfiltered output restricted to T
//! (by the rule of docs/METRICS.md, applied here to the JSON independently)
//! and the output of T's own archive (restricted the same way where that
//! archive holds events of no tenant).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{ccvault, import};
use serde_json::Value;

const TENANTS: [(&str, &str); 3] = [("acme01", "11"), ("globex02", "12"), ("initech03", "13")];

/// A fixed instant inside the simulated day (2025-11-24), for `agents --to`.
const TO: &str = "2025-11-24T20:00:00Z";

struct Archives {
    _tmp: tempfile::TempDir,
    /// All three tenants, imported one file after the other.
    all: PathBuf,
    /// Each tenant alone.
    solo: BTreeMap<&'static str, PathBuf>,
}

fn archives() -> Archives {
    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("all");
    let mut solo = BTreeMap::new();
    let mut files = Vec::new();
    for (tenant, seed) in TENANTS {
        let file = tmp.path().join(format!("{tenant}.ndjson"));
        let file_arg = file.to_str().unwrap();
        ccvault(
            tmp.path(),
            &[
                "simulate",
                "--tenant",
                tenant,
                "--seed",
                seed,
                "--interactions",
                "60",
                "--agents",
                "8",
                "--out",
                file_arg,
            ],
        )
        .ok();
        let own = tmp.path().join(format!("solo-{tenant}"));
        import(&own, &[&file], &[]);
        solo.insert(tenant, own);
        files.push(file);
    }
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    import(&all, &refs, &[]);
    Archives {
        _tmp: tmp,
        all,
        solo,
    }
}

fn out(dir: &Path, args: &[&str]) -> String {
    ccvault(dir, args).ok().stdout_str()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An archived event's body (`{"Interaction":{...}}` → the inner object).
fn body(event: &Value) -> &Value {
    event
        .as_object()
        .and_then(|o| o.values().next())
        .unwrap_or(&Value::Null)
}

/// A field read as text the way docs/METRICS.md §1 reads it.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The event's own tenant (files name no topic): its GUID's last `-` part.
fn own_tenant(event: &Value) -> Option<String> {
    let guid = text(&body(event)["interactionGUID"])?;
    let (_, suffix) = guid.rsplit_once('-')?;
    (!suffix.is_empty()).then(|| suffix.to_owned())
}

fn agent_of(event: &Value) -> Option<String> {
    text(&body(event)["agentId"])
}

/// The export's lines of `tenant` by the rule: its own tenant is `tenant`,
/// or it has none and names an agent that an event of `tenant` names.
fn events_of(lines: &[&str], tenant: &str) -> Vec<String> {
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let agents: BTreeSet<String> = parsed
        .iter()
        .filter(|e| own_tenant(e).as_deref() == Some(tenant))
        .filter_map(agent_of)
        .collect();
    lines
        .iter()
        .zip(&parsed)
        .filter(|(_, e)| match own_tenant(e) {
            Some(t) => t == tenant,
            None => agent_of(e).is_some_and(|a| agents.contains(&a)),
        })
        .map(|(l, _)| l.to_string())
        .collect()
}

fn agents_named_by(events: &[String], tenant: &str) -> BTreeSet<String> {
    events
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| own_tenant(e).as_deref() == Some(tenant))
        .filter_map(|e| agent_of(&e))
        .collect()
}

fn with_tenant<'a>(args: &[&'a str], tenant: &'a str) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(["--tenant", tenant]);
    v
}

#[test]
fn filtered_outputs_equal_the_unfiltered_output_restricted_to_the_tenant() {
    let a = archives();
    let all_legs = out(&a.all, &["interactions", "--format", "json"]);
    let all_events = out(&a.all, &["export"]);
    let all_event_lines: Vec<&str> = all_events.lines().collect();
    let all_agents = json_lines(&out(&a.all, &["agents", "--format", "json"]));
    let by_tenant = json_lines(&out(&a.all, &["stats", "--by-tenant", "--format", "json"]));
    let archive_events = json_lines(&out(&a.all, &["stats", "--format", "json"]))[0]["events"]
        .as_u64()
        .unwrap();

    // One line per tenant, and one for the events without a tenant (the
    // agents' status changes, imported from files).
    let names: Vec<Value> = by_tenant.iter().map(|s| s["tenant"].clone()).collect();
    let mut expected_names = vec![Value::Null];
    expected_names.extend(TENANTS.iter().map(|(t, _)| Value::from(*t)));
    assert_eq!(names, expected_names);
    let counted: u64 = by_tenant
        .iter()
        .map(|s| s["events"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, archive_events, "every event is counted once");
    let untenanted = all_event_lines
        .iter()
        .filter(|l| own_tenant(&serde_json::from_str(l).unwrap()).is_none())
        .count() as u64;
    assert_eq!(by_tenant[0]["events"].as_u64(), Some(untenanted));
    assert!(untenanted > 0);

    for (tenant, _) in TENANTS {
        let solo = &a.solo[tenant];

        // interactions: the unfiltered lines of the tenant, and its own archive's.
        let legs = out(
            &a.all,
            &with_tenant(&["interactions", "--format", "json"], tenant),
        );
        let restricted: String = all_legs
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).unwrap()["tenant"] == tenant)
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(legs.lines().count() >= 60, "{tenant}: {legs}");
        assert_eq!(legs, restricted, "{tenant}: interactions");
        assert_eq!(legs, out(solo, &["interactions", "--format", "json"]));
        let csv = ["interactions", "--format", "csv", "--outcome", "answered"];
        assert_eq!(out(&a.all, &with_tenant(&csv, tenant)), out(solo, &csv));
        let exported = ["export", "--what", "interactions"];
        assert_eq!(out(&a.all, &with_tenant(&exported, tenant)), legs);

        // export: the tenant's events in log order, byte-exact.
        let events = out(&a.all, &with_tenant(&["export"], tenant));
        let expected = events_of(&all_event_lines, tenant);
        let got: Vec<String> = events.lines().map(str::to_owned).collect();
        assert_eq!(got, expected, "{tenant}: export");
        // Its own archive holds the same events of the tenant, in the same
        // order (and events of no tenant: queue ticks, unknown families).
        let solo_events = out(solo, &["export"]);
        let solo_lines: Vec<&str> = solo_events.lines().collect();
        assert_eq!(got, events_of(&solo_lines, tenant), "{tenant}: its archive");
        assert!(solo_lines.len() > got.len());
        let window = ["export", "--from", "2025-11-24T09:00:00Z", "--to", TO];
        let windowed = out(&a.all, &with_tenant(&window, tenant));
        let solo_window = out(solo, &window);
        let in_window: BTreeSet<&str> = solo_window.lines().collect();
        let windowed: Vec<String> = windowed.lines().map(str::to_owned).collect();
        assert!(!windowed.is_empty() && windowed.len() < got.len());
        let expected: Vec<String> = got
            .iter()
            .filter(|l| in_window.contains(l.as_str()))
            .cloned()
            .collect();
        assert_eq!(windowed, expected, "{tenant}: window");

        // report: the same aggregates as the tenant's own archive.
        for args in [
            vec!["report", "--format", "json"],
            vec![
                "report",
                "--format",
                "json",
                "--by",
                "queue,agent",
                "--interval",
                "15m",
            ],
        ] {
            let filtered = out(&a.all, &with_tenant(&args, tenant));
            assert!(!filtered.is_empty());
            assert_eq!(filtered, out(solo, &args), "{tenant}: {args:?}");
        }

        // agents: the unfiltered rows of the tenant's agents.
        let agents = agents_named_by(&got, tenant);
        assert!(!agents.is_empty());
        let rows = json_lines(&out(
            &a.all,
            &with_tenant(&["agents", "--format", "json"], tenant),
        ));
        let restricted: Vec<Value> = all_agents
            .iter()
            .filter(|r| agents.contains(r["agentId"].as_str().unwrap()))
            .cloned()
            .collect();
        assert_eq!(rows, restricted, "{tenant}: agents");
        let to = ["agents", "--format", "json", "--to", TO];
        let rows = json_lines(&out(&a.all, &with_tenant(&to, tenant)));
        let own: Vec<Value> = json_lines(&out(solo, &to))
            .into_iter()
            .filter(|r| agents.contains(r["agentId"].as_str().unwrap()))
            .collect();
        assert_eq!(rows, own, "{tenant}: agents --to");

        // stats: its line of --by-tenant, counted from the outputs above.
        let line = json_lines(&out(
            &a.all,
            &["stats", "--tenant", tenant, "--format", "json"],
        ));
        assert_eq!(line.len(), 1);
        assert_eq!(
            Some(&line[0]),
            by_tenant.iter().find(|s| s["tenant"] == tenant)
        );
        let legs = json_lines(&legs);
        let contacts: BTreeSet<&str> = legs
            .iter()
            .filter_map(|l| l["contactId"].as_str())
            .collect();
        let own_events = got
            .iter()
            .filter(|l| own_tenant(&serde_json::from_str(l).unwrap()).as_deref() == Some(tenant))
            .count();
        assert_eq!(line[0]["legs"].as_u64(), Some(legs.len() as u64));
        assert_eq!(line[0]["contacts"].as_u64(), Some(contacts.len() as u64));
        assert_eq!(line[0]["events"].as_u64(), Some(own_events as u64));
        let (min, max) = (line[0]["minTimeMs"].as_i64(), line[0]["maxTimeMs"].as_i64());
        assert!(min.is_some() && min <= max, "{line:?}");
    }

    // A tenant the archive does not hold is an error naming those it does.
    let nosuch = ccvault(&a.all, &["stats", "--tenant", "nosuch"]).expect_code(1);
    assert!(
        nosuch.stderr.contains("no events of tenant \"nosuch\"")
            && nosuch
                .stderr
                .contains(r#"its tenants: "acme01", "globex02", "initech03""#),
        "{}",
        nosuch.stderr
    );
    let human = out(&a.all, &["stats", "--by-tenant"]);
    assert!(human.starts_with("TENANT") && human.contains("(none)") && human.contains("globex02"));
}

#[test]
fn show_refuses_a_leg_of_another_tenant() {
    let a = archives();
    let legs = json_lines(&out(
        &a.all,
        &["interactions", "--format", "json", "--tenant", "acme01"],
    ));
    let guid = legs[0]["interactionGUID"].as_str().unwrap();
    for mode in [
        vec!["show", guid],
        vec!["show", guid, "--raw"],
        vec!["show", guid, "--format", "json"],
    ] {
        assert_eq!(
            out(&a.all, &with_tenant(&mode, "acme01")),
            out(&a.all, &mode),
            "{mode:?}"
        );
        let refused = ccvault(&a.all, &with_tenant(&mode, "globex02")).expect_code(1);
        assert!(
            refused.stderr.contains(&format!(
                "interaction \"{guid}\" belongs to tenant \"acme01\", not to \"globex02\""
            )),
            "{}",
            refused.stderr
        );
        assert!(refused.stdout.is_empty());
    }
    let r = ccvault(&a.all, &["interactions", "--tenant", ""]).expect_code(2);
    assert!(r.stderr.contains("is not a tenant name"), "{}", r.stderr);
}

/// A tenant the archive holds no event of (a typo): every command limited
/// to it says so on stderr, naming the tenants there are, and answers
/// empty with exit 0 (`stats`, which describes the tenant, exits 1). Until
/// 2026-12-06 only `stats` said anything.
#[test]
fn an_unknown_tenant_is_said_with_the_tenants_there_are() {
    let a = archives();
    let said = "no events of tenant \"acme1\"";
    for args in [
        &["interactions"][..],
        &["report"],
        &["agents"],
        &["export"],
        &["export", "--what", "interactions"],
    ] {
        let run = ccvault(&a.all, &with_tenant(args, "acme1")).ok();
        let stdout = run.stdout_str();
        assert!(
            TENANTS.iter().all(|(t, _)| !stdout.contains(t)),
            "{args:?}: {stdout}"
        );
        assert!(
            run.stderr.contains(said) && run.stderr.contains("\"acme01\", "),
            "{args:?}: {}",
            run.stderr
        );
        // Even with -q: it says what the answer lacks (a cron job's quiet
        // export of a misspelt tenant said nothing: an outside audit).
        let mut quiet = vec!["-q"];
        quiet.extend(with_tenant(args, "acme1"));
        let run = ccvault(&a.all, &quiet).ok();
        assert!(run.stderr.contains(said), "-q {args:?}: {}", run.stderr);
        let known = ccvault(&a.all, &with_tenant(args, "acme01")).ok();
        assert!(
            !known.stderr.contains("no events of tenant"),
            "{args:?}: {}",
            known.stderr
        );
    }
    let stats = ccvault(&a.all, &with_tenant(&["stats"], "acme1")).expect_code(1);
    assert!(stats.stderr.contains(said), "{}", stats.stderr);
}

/// Any tenant the archive names is one `--tenant` takes: a GUID's last part
/// may hold a `/`.
#[test]
fn a_tenant_with_a_slash_is_read_like_any_other() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.ndjson");
    std::fs::write(
        &input,
        r#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"int-1-x-a/b","queueId":"7","msgInfo":{"timestamp":1763900000000}}}"#.to_owned() + "\n",
    )
    .unwrap();
    let dir = tmp.path().join("a");
    common::import(&dir, &[&input], &[]);
    let by_tenant = out(&dir, &["stats", "--by-tenant", "--format", "json"]);
    assert!(by_tenant.contains(r#""tenant":"a/b""#), "{by_tenant}");
    let legs = json_lines(&out(
        &dir,
        &["interactions", "--format", "json", "--tenant", "a/b"],
    ));
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0]["interactionGUID"], "int-1-x-a/b");
}

/// The rows a Parquet export reports writing to `table` (its status line
/// on stderr: `  events        123 rows in …`).
fn exported_rows(stderr: &str, table: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(table)).then(|| words.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no line for {table} in {stderr}"))
}

/// `--tenant` reads through the tenant index only: with every record of
/// globex02 damaged in the log (its name overwritten in place, so each
/// record's CRC fails), the other tenants' exports, NDJSON and Parquet,
/// are what they were and report nothing, while the unfiltered export
/// reports the damage and globex02's own export says what it left out. A filtered
/// read that touched a globex02 record (to drop it) would see the damage.
#[test]
fn a_tenants_reads_never_touch_another_tenants_records() {
    let a = archives();
    let mut before = BTreeMap::new();
    for (tenant, _) in TENANTS {
        before.insert(tenant, out(&a.all, &with_tenant(&["export"], tenant)));
    }
    let unfiltered = out(&a.all, &["export"]);
    let own_lines = |text: &str, tenant: &str| {
        text.lines()
            .filter(|l| own_tenant(&serde_json::from_str(l).unwrap()).as_deref() == Some(tenant))
            .count()
    };
    let globex_lines = own_lines(&unfiltered, "globex02");
    assert!(globex_lines >= 60);

    // Damage every record that names globex02 (its GUIDs end in it).
    let mut hits_in_log = 0;
    for seg in std::fs::read_dir(a.all.join("log")).unwrap() {
        let seg = seg.unwrap().path();
        let mut bytes = std::fs::read(&seg).unwrap();
        let hits: Vec<usize> = bytes
            .windows(8)
            .enumerate()
            .filter(|(_, w)| w == b"globex02")
            .map(|(i, _)| i)
            .collect();
        for i in &hits {
            bytes[i + 5] = b'X';
        }
        hits_in_log += hits.len();
        std::fs::write(&seg, bytes).unwrap();
    }
    assert!(hits_in_log >= globex_lines, "{hits_in_log}");

    let all = ccvault(&a.all, &["export"]).ok();
    assert!(
        all.stderr.contains("the export leaves out"),
        "{}",
        all.stderr
    );
    // The damaged records are lost to the scan (globex02's own, and the
    // few without a tenant that name it elsewhere in their payload; the
    // scan's resynchronisation may skip more around them).
    let left = all.stdout_str();
    let damaged = unfiltered
        .lines()
        .filter(|l| l.contains("globex02"))
        .count();
    assert!(damaged >= globex_lines);
    assert!(left.lines().count() <= unfiltered.lines().count() - damaged);
    assert!(!left.contains("globex02"));
    assert_eq!(own_lines(&left, "globex02"), 0);
    // Its own export serves what is left of it (nothing) and says what it
    // left out.
    let own = ccvault(&a.all, &with_tenant(&["export"], "globex02")).ok();
    assert_eq!(own_lines(&own.stdout_str(), "globex02"), 0);
    assert!(
        own.stderr.contains("in damaged places of the log"),
        "{}",
        own.stderr
    );
    // And so does its Parquet export, which reads the same lookups.
    let parquet = a.all.with_file_name("parquet-globex02");
    let args = [
        "export",
        "--format",
        "parquet",
        "--out",
        parquet.to_str().unwrap(),
    ];
    let said = ccvault(&a.all, &with_tenant(&args, "globex02")).ok().stderr;
    let skipped: usize = said
        .split("leaves out ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of damaged places: {said}"));
    assert!(skipped >= globex_lines, "{said}");

    for tenant in ["acme01", "initech03"] {
        let got = ccvault(&a.all, &with_tenant(&["export"], tenant)).ok();
        assert_eq!(got.stdout_str(), before[tenant], "{tenant}");
        assert!(got.stderr.is_empty(), "{tenant}: {}", got.stderr);
        let dir = a.all.with_file_name(format!("parquet-{tenant}"));
        let args = [
            "export",
            "--format",
            "parquet",
            "--out",
            dir.to_str().unwrap(),
        ];
        let said = ccvault(&a.all, &with_tenant(&args, tenant)).ok().stderr;
        assert!(!said.contains("damaged"), "{tenant}: {said}");
        let own_events = own_lines(&before[tenant], tenant) as u64;
        assert_eq!(exported_rows(&said, "events"), own_events, "{said}");
        assert!(exported_rows(&said, "interactions") >= 60, "{said}");
    }
}
