//! [`Rng`]: the small deterministic generator every randomised test draws
//! from. It depends on nothing, so libcore's own unit tests compile this
//! file too (see `libcore/src/lib.rs`, `test_support`).

/// xorshift64*: the deterministic, dependency-free generator the tests
/// draw from, so a failing seed replays exactly. The state must not be 0.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

#[allow(clippy::should_implement_trait)] // infinite, never `None`: not an Iterator
impl Rng {
    /// A generator from any seed (zero included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
