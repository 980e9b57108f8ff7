//! Micro benchmark of the segment log: append + flush throughput and scan throughput.
//!
//! Run: `cargo bench -p ccvault-log --bench log` (optional args: records, runs).
//! Prints the median of a few runs, in records/s and MB/s of segment bytes.

// A benchmark: a failure may stop it (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use ccvault_log::{
    FsyncPolicy, Log, LogError, LogOptions, NewRecord, Position, ScanRef, SourceKind,
};

fn payload(i: u64) -> Vec<u8> {
    // ~800 bytes of event-like JSON
    let mut s = format!(
        "{{\"Interaction\":{{\"eventType\":\"InteractionQueued\",\"interactionGUID\":\"int-{:012}\",\
         \"tenantId\":\"tenant-1\",\"queueId\":{},\"agentId\":\"agent-{}\",\"timestamp\":{},\"attrs\":\"",
        i,
        i % 17,
        i % 250,
        1_700_000_000_000u64 + i * 37
    );
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while s.len() < 795 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push((b'a' + (x % 26) as u8) as char);
    }
    s.push_str("\"}}");
    s.into_bytes()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(what: &str, n: u64, bytes: u64, d: Duration) {
    let s = d.as_secs_f64();
    println!(
        "{what:<44} {:>10.0} records/s {:>9.1} MB/s  ({n} records, {:.3} s median)",
        n as f64 / s,
        bytes as f64 / s / 1e6,
        s
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let payloads: Vec<Vec<u8>> = (0..1024).map(payload).collect();
    let raw_bytes: u64 = (0..n)
        .map(|i| payloads[(i % 1024) as usize].len() as u64)
        .sum();
    let tmp = tempfile::tempdir().expect("tempdir");

    for (policy, batch) in [(FsyncPolicy::Batch, 1000u64), (FsyncPolicy::Never, 1000)] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for run in 0..runs {
            let dir = tmp.path().join(format!("append-{policy}-{run}"));
            let opts = LogOptions {
                segment_bytes: 64 << 20,
                fsync: policy,
                ..LogOptions::default()
            };
            let t = Instant::now();
            let (mut log, _) = Log::open(&dir, opts, None).expect("open");
            for i in 0..n {
                let rec = NewRecord {
                    kind: ccvault_log::RecordKind::Message,
                    ingest_ms: 1_700_000_000_000 + i as i64,
                    quarantined: false,
                    source_kind: SourceKind::Mqtt,
                    source: "ccvault/events",
                    line: 0,
                    message_id: "",
                    publish_time: "2024-05-01T12:00:00.123Z",
                    quarantine_reason: "",
                    payload: &payloads[(i % 1024) as usize],
                };
                log.append(&rec).expect("append");
                if (i + 1) % batch == 0 {
                    log.flush().expect("flush");
                }
            }
            log.flush().expect("flush");
            times.push(t.elapsed());
            bytes = log.reader().total_bytes();
            drop(log);
            if run + 1 < runs {
                std::fs::remove_dir_all(&dir).expect("cleanup");
            }
        }
        report(
            &format!("append+flush (fsync={policy}, flush/{batch})"),
            n,
            bytes,
            median(times),
        );
        if policy == FsyncPolicy::Batch {
            println!(
                "  size: {bytes} segment bytes for {raw_bytes} payload bytes = {:.3}x",
                bytes as f64 / raw_bytes as f64
            );
        }
    }

    let dir = tmp.path().join(format!("append-batch-{}", runs - 1));
    let (log, _) = Log::open(&dir, LogOptions::default(), None).expect("open");
    let reader = log.reader();
    let bytes = reader.total_bytes();

    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut count = 0u64;
        let mut sum = 0u64;
        reader
            .scan_with(Position::START, |item| -> Result<(), LogError> {
                if let ScanRef::Record(_, r) = item {
                    count += 1;
                    sum += r.payload.len() as u64;
                }
                Ok(())
            })
            .expect("scan");
        times.push(t.elapsed());
        assert_eq!(count, n);
        assert_eq!(sum, raw_bytes);
    }
    report("scan_with (borrowed, CRC-checked)", n, bytes, median(times));

    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let count = reader.scan(Position::START).filter(|i| i.is_ok()).count() as u64;
        times.push(t.elapsed());
        assert_eq!(count, n);
    }
    report("scan iterator (owned Record)", n, bytes, median(times));

    // random reads
    let mut positions = Vec::with_capacity(n as usize);
    reader
        .scan_with(Position::START, |item| -> Result<(), LogError> {
            if let ScanRef::Record(p, _) = item {
                positions.push(p);
            }
            Ok(())
        })
        .expect("scan");
    let k = positions.len().min(100_000);
    let mut times = Vec::new();
    for _ in 0..runs {
        let mut x = 0x0123_4567_89AB_CDEF_u64;
        let t = Instant::now();
        for _ in 0..k {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = positions[(x % positions.len() as u64) as usize];
            reader.read_at(p).expect("read_at");
        }
        times.push(t.elapsed());
    }
    report(
        "read_at (random, page cache)",
        k as u64,
        k as u64 * (bytes / n),
        median(times),
    );
}
