//! Fuzzing on the stable toolchain, inside `cargo test`: each target is a
//! proptest property fed with arbitrary bytes and with mutations (bit flips,
//! overwrites, insertions, deletions, truncations, splices) of a corpus of
//! seed inputs kept in the repository, after replaying every seed as is.
//!
//! Guarantees:
//! - Deterministic: the cases come from a fixed seed, so a run in CI is the
//!   same run on a laptop; a failure is shrunk and saved by proptest beside
//!   the test file (`fuzz.proptest-regressions`) and replayed first from then on.
//! - A fixed budget per target ([`config`]): the fuzz targets stay a few
//!   seconds of the test suite.
//! - Only for tests: no library crate depends on it.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, RngSeed};

/// The seed inputs in `dir` (every file, sorted by name), as `(name, bytes)`.
/// Panics, failing the test, when the corpus is missing or empty: a target
/// with no seeds would fuzz far less than it claims.
#[allow(clippy::panic)]
pub fn corpus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} unreadable: {e}", dir.display()));
    let mut seeds: Vec<(String, Vec<u8>)> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let bytes = std::fs::read(&path).ok()?;
            Some((path.file_name()?.to_string_lossy().into_owned(), bytes))
        })
        .collect();
    seeds.sort();
    if seeds.is_empty() {
        panic!("fuzz corpus {} is empty", dir.display());
    }
    seeds
}

/// The seed of every target's cases unless `CCVAULT_FUZZ_SEED` says otherwise.
pub const DEFAULT_SEED: u64 = 0xCC7A_0017;

/// The proptest configuration of a fuzz target: `cases` cases from a fixed
/// seed; a failure is saved as `<test file>.proptest-regressions` beside
/// the test and replayed first by every later run.
///
/// A longer campaign than the test suite's budget (docs/OPERATIONS.md,
/// "Fuzzing"): `CCVAULT_FUZZ_CASES=N` runs N cases a target instead, and
/// `CCVAULT_FUZZ_SEED=S` (a decimal number) draws them from seed S, so
/// campaigns with different seeds explore different inputs and any one of
/// them is replayed exactly by setting the same two variables.
pub fn config(cases: u32) -> Config {
    Config {
        cases: env_number("CCVAULT_FUZZ_CASES")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(env_number("CCVAULT_FUZZ_SEED").unwrap_or(DEFAULT_SEED)),
        ..Config::default()
    }
}

/// A decimal number from the environment; panics (failing the test) when
/// the variable is set but is not one, rather than fuzzing with the default
/// while the caller believes otherwise.
#[allow(clippy::panic)]
fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={text:?} is not a decimal number"),
    }
}

/// One change to a byte string; positions wrap around its length.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// Copies bytes from elsewhere in the input over `to` (repeats a field,
    /// a frame, a quote).
    Copy {
        from: usize,
        to: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..8u8).prop_map(|(p, b)| Mutation::FlipBit(p, b)),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::Set(p, v)),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        2 => (any::<usize>(), 1..64usize).prop_map(|(p, n)| Mutation::Delete(p, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<usize>(), 1..64usize)
            .prop_map(|(from, to, len)| Mutation::Copy { from, to, len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    if n == 0 {
        if let Mutation::Insert(_, v) = m {
            bytes.extend_from_slice(v);
        }
        return;
    }
    match m {
        Mutation::FlipBit(p, b) => bytes[p % n] ^= 1 << b,
        Mutation::Set(p, v) => bytes[p % n] = *v,
        Mutation::Insert(p, v) => {
            let at = p % (n + 1);
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Delete(p, len) => {
            let at = p % n;
            bytes.drain(at..(at + len).min(n));
        }
        Mutation::Truncate(p) => bytes.truncate(p % n),
        Mutation::Copy { from, to, len } => {
            let (from, to) = (from % n, to % n);
            let len = (*len).min(n - from).min(n - to);
            bytes.copy_within(from..from + len, to);
        }
    }
}

/// Inputs for a target: arbitrary bytes (up to `max_len`), or a seed with
/// one to eight mutations (most cases: seeds reach deep into a parser).
pub fn inputs(seeds: Vec<Vec<u8>>, max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        proptest::sample::select(seeds),
        proptest::collection::vec(mutation(), 1..8),
    )
        .prop_map(|(mut bytes, mutations)| {
            for m in &mutations {
                apply(&mut bytes, m);
            }
            bytes
        });
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..max_len),
        4 => mutated,
    ]
}
