//! The deterministic xorshift64 PRNG of the tests: the log crate's tests use it
//! as a module, the end-to-end tests at the top level include this file by
//! path, so a seed means the same sequence everywhere.

/// Deterministic xorshift64 PRNG (seed must not be 0).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
