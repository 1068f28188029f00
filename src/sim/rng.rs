//! A tiny seeded generator (SplitMix64): the simulator's output must be
//! byte-identical for a seed on every machine and every version of every
//! dependency, so it owns its generator rather than borrowing one whose
//! stream may change between releases.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent stream for one purpose (an order, a fault draw), so
    /// adding a draw in one place does not shift every later order.
    pub fn fork(&self, salt: u64) -> Rng {
        let mut r = Rng(self.0 ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (`hi >= lo`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.saturating_sub(lo).saturating_add(1).max(1) as u64;
        lo.saturating_add((self.next_u64() % span) as i64)
    }

    /// True with probability `p` (0..=1), to a millionth.
    pub fn chance(&mut self, p: f64) -> bool {
        let millionths = (p.clamp(0.0, 1.0) * 1_000_000.0) as u64;
        self.next_u64() % 1_000_000 < millionths
    }

    /// One of `items`, uniformly; `fallback` when there are none.
    pub fn pick<T: Copy>(&mut self, items: &[T], fallback: T) -> T {
        let i = self.next_u64() % items.len().max(1) as u64;
        items.get(i as usize).copied().unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream_and_forks_differ() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(
            Rng::new(7).fork(1).next_u64(),
            Rng::new(7).fork(2).next_u64()
        );
        let mut r = Rng::new(1);
        assert!(
            (0..1000)
                .map(|_| r.range(3, 5))
                .all(|x| (3..=5).contains(&x))
        );
    }
}
