//! A write that fails (here: the file size limit, standing in for a full disk)
//! returns an error, stops the writer, and the next open recovers a consistent log.
//! Alone in its test binary because the limit applies to the whole process.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use ccvault_log::{verify, Log, LogError};
use common::*;

fn set_fsize_limit(limit: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain libc calls with valid arguments.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

#[test]
fn write_error_poisons_writer_and_reopen_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, _) = Log::open(&dir, opts(1 << 20), None).unwrap();
    write_records(&mut log, 0, 50, 300);
    let size = std::fs::metadata(segment_files(&dir).pop().unwrap())
        .unwrap()
        .len();

    // allow ~10 more records, then writes fail part way
    set_fsize_limit(size + 2500);
    let mut acked = 50;
    let mut i = 50;
    let err = loop {
        log.append(&TestRec::new(i, 300).as_new()).unwrap();
        i += 1;
        match log.flush() {
            Ok(n) => acked = n,
            Err(e) => break e,
        }
        assert!(i < 1000, "the size limit never hit");
    };
    set_fsize_limit(libc::RLIM_INFINITY);
    assert!(matches!(err, LogError::Io { .. }), "{err}");
    assert!(err.to_string().contains(".seg"), "{err}");
    let again = log.append(&TestRec::new(i, 300).as_new()).unwrap_err();
    assert!(matches!(again, LogError::Poisoned { .. }), "{again}");

    assert!(log.flush().is_err());
    drop(log);

    let (mut log, rec) = Log::open(&dir, opts(1 << 20), None).unwrap();
    assert!(rec.next_offset >= acked, "lost acknowledged records");
    assert!(rec.damaged.is_empty());
    let next = rec.next_offset;
    write_records(&mut log, next, next + 5, 300);
    drop(log);
    let (recs, damage) = scan_all(&dir);
    assert!(damage.is_empty());
    assert_eq!(recs.len() as u64, next + 5);
    for (k, (_, r)) in recs.iter().enumerate() {
        assert!(TestRec::new(k as u64, 300).matches(k as u64, r));
    }
    assert!(verify(&dir).unwrap().is_clean());

    // The failure taken by a waiter on another thread (the store's
    // durability waiter): the writer's next call still names its cause,
    // where until 2026-12-07 it said "an earlier write or fsync failed"
    // alone, all an `ingest` on a full disk could then say (an outside
    // audit).
    let (mut log, _) = Log::open(&dir, opts(1 << 20), None).unwrap();
    let waiter = log.durable_waiter();
    let size = std::fs::metadata(segment_files(&dir).pop().unwrap())
        .unwrap()
        .len();
    set_fsize_limit(size + 2500);
    let mut i = next + 5;
    let taken = loop {
        log.append(&TestRec::new(i, 300).as_new()).unwrap();
        i += 1;
        let through = log.flush_nowait().unwrap();
        let waited = std::thread::scope(|s| s.spawn(|| waiter.wait(through)).join().unwrap());
        if let Err(e) = waited {
            break e;
        }
        assert!(i < next + 1000, "the size limit never hit");
    };
    set_fsize_limit(libc::RLIM_INFINITY);
    assert!(matches!(taken, LogError::Io { .. }), "{taken}");
    let after = log.append(&TestRec::new(i, 300).as_new()).unwrap_err();
    assert!(matches!(after, LogError::Poisoned { .. }), "{after}");
    assert!(
        after.to_string().contains("File too large") && after.to_string().contains(".seg"),
        "{after}"
    );
}
