//! Hostile `.segz` files: the length fields of the header, of the block
//! index and of a block header are overwritten with large values, in two
//! ways each — flipped bytes alone (the CRCs then fail), and flipped bytes
//! with every CRC recomputed, as a crafted file would have them. Reading
//! such a file must not allocate what the fields claim (a counting
//! allocator measures the largest live total while verify, a scan and
//! random reads run), must report the damage naming the `.segz` and a
//! position in it, and must still serve every record whose block is intact.
//!
//! One test function runs every case in turn: the allocator counts the
//! whole process, so no other test may run beside it in this binary.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

use ccvault_log::{segz_file_name, verify, Compression, Log, LogReader, Record};
use common::*;

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed unchanged to the system allocator, whose
// contract is the same; the counters only observe the sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Header fields (docs/FORMAT.md §1.7): seg_len at 20, block count at 28,
/// index position at 32, header CRC of bytes 0..76 at 76.
fn fix_header_crc(b: &mut [u8]) {
    let crc = crc32fast::hash(&b[..76]);
    put_u32(b, 76, crc);
}

/// The block index's CRC: the last 4 bytes, over the entries before them.
fn fix_index_crc(b: &mut [u8]) {
    let index = u64_at(b, 32) as usize;
    let end = b.len() - 4;
    let crc = crc32fast::hash(&b[index..end]);
    put_u32(b, end, crc);
}

/// Block header CRC: bytes 28..32 over bytes 0..28 of the block header.
fn fix_block_crc(b: &mut [u8], at: usize) {
    let crc = crc32fast::hash(&b[at..at + 28]);
    put_u32(b, at + 28, crc);
}

/// What a case does to the original `.segz` bytes.
type Tamper = fn(&mut Vec<u8>);

#[test]
fn crafted_length_fields_of_a_segz_allocate_nothing_they_claim() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, _) = Log::open(&dir, opts(64 << 10), None).unwrap();
    let positions = write_records(&mut log, 0, 300, 600);
    let reader = log.reader();
    let records: Vec<Record> = positions
        .iter()
        .map(|&p| reader.read_at(p).unwrap())
        .collect();
    let c = Compression {
        level: 3,
        block_bytes: 4096,
    };
    log.compact_sealed(c).unwrap();
    drop(log);
    let seg = reader.segments()[0];
    let name = segz_file_name(seg);
    let path = dir.join(&name);
    let original = fs::read(&path).unwrap();
    let n_blocks = u32_at(&original, 28) as usize;
    assert!(n_blocks >= 3, "{n_blocks} blocks");
    // The records of the first segment: the ones a tampered header can hide.
    let in_seg = positions.iter().filter(|p| p.segment == seg).count();

    // Reading the intact log once sets the baseline of what reading costs.
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    assert!(verify(&dir).unwrap().is_clean());
    let _ = scan_all(&dir);
    let baseline = PEAK.load(Ordering::Relaxed);

    let cases: [(&str, Tamper); 8] = [
        ("seg_len flipped", |b| b[23] ^= 0xFF),
        ("seg_len crafted to 4 GiB", |b| {
            put_u32(b, 20, u32::MAX);
            fix_header_crc(b);
        }),
        ("block count flipped", |b| b[31] ^= 0x7F),
        ("block count crafted", |b| {
            put_u32(b, 28, u32::MAX);
            fix_header_crc(b);
        }),
        ("index position crafted", |b| {
            put_u32(b, 36, 0x7FFF_FFFF);
            fix_header_crc(b);
        }),
        (
            "last block's raw_len crafted in the index and header",
            |b| {
                // A consistent lie: the last block covers up to 4 GiB.
                let n = u32_at(b, 28) as usize;
                let e = u64_at(b, 32) as usize + 24 * (n - 1);
                let raw_pos = u32_at(b, e + 8);
                let big = u32::MAX - raw_pos;
                put_u32(b, e + 12, big);
                fix_index_crc(b);
                b[20..28].copy_from_slice(&u64::from(u32::MAX).to_le_bytes());
                fix_header_crc(b);
            },
        ),
        ("a block's raw_len crafted everywhere with every CRC", |b| {
            // The last block claims 80 MiB in its own header, the index
            // and the header's seg_len: everything agrees but the data.
            let n = u32_at(b, 28) as usize;
            let e = u64_at(b, 32) as usize + 24 * (n - 1);
            let file_pos = u64_at(b, e) as usize;
            let raw_pos = u32_at(b, e + 8);
            let big: u32 = 80 << 20;
            put_u32(b, e + 12, big);
            fix_index_crc(b);
            put_u32(b, file_pos + 8, big);
            fix_block_crc(b, file_pos);
            let seg_len = u64::from(raw_pos) + u64::from(big);
            b[20..28].copy_from_slice(&seg_len.to_le_bytes());
            fix_header_crc(b);
        }),
        ("a block header's comp_len flipped", |b| {
            let first = u64_at(b, u64_at(b, 32) as usize) as usize;
            b[first + 15] ^= 0x7F;
        }),
    ];
    for (what, tamper) in cases {
        let mut bytes = original.clone();
        tamper(&mut bytes);
        assert_ne!(bytes, original, "{what}");
        fs::write(&path, &bytes).unwrap();

        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        let report = verify(&dir).unwrap();
        let (recs, damage) = scan_all(&dir);
        let reader = LogReader::open(&dir).unwrap();
        let mut served = 0;
        for (&p, r) in positions.iter().zip(&records) {
            if let Ok(got) = reader.read_at(p) {
                assert_eq!(&got, r, "{what}: {p}");
                served += 1;
            }
        }
        let peak = PEAK.load(Ordering::Relaxed);
        // The fields claim up to 4 GiB; reading may cost what reading the
        // intact file cost, plus a few MiB of slack.
        assert!(
            peak < baseline + (8 << 20),
            "{what}: reading allocated {peak} bytes at the peak, the intact file {baseline}"
        );

        assert!(!report.is_clean(), "{what} went unnoticed");
        assert!(!damage.is_empty(), "{what}: the scan saw no damage");
        // The damage is named by the `.segz` and a byte in it (a lost
        // block also shows as an offset gap at the next segment).
        for found in [&report.damage, &damage] {
            assert!(
                found.iter().any(|d| {
                    let text = d.to_string();
                    text.contains(&name) && text.contains("byte ")
                }),
                "{what}: {found:?}"
            );
        }
        // Every record the scan serves is one that was written, where it
        // was written; and only this segment's records may be missing.
        for (p, r) in &recs {
            let i = r.offset as usize;
            assert_eq!((positions[i], &records[i]), (*p, r), "{what}");
        }
        assert!(recs.len() >= records.len() - in_seg, "{what}");
        assert!(served >= records.len() - in_seg, "{what}");
        assert_eq!(report.records as usize, recs.len(), "{what}");
    }
    fs::write(&path, &original).unwrap();
    assert!(verify(&dir).unwrap().is_clean());
}
