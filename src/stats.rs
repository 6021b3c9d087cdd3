//! Placeholder statistics (replaced by the full module on merge): percentiles and resampling.

use rand::{Rng, SeedableRng};

pub const LEVEL: f64 = 0.95;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() {
        sorted[i] + f * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

pub fn percentile_interval(replicates: &[f64], level: f64) -> Interval {
    let mut v = replicates.to_vec();
    v.sort_by(f64::total_cmp);
    Interval { lo: quantile(&v, (1.0 - level) / 2.0), hi: quantile(&v, (1.0 + level) / 2.0) }
}

pub fn resample_counts(n: usize, seed: u64, resample: u64) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ resample.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut counts = vec![0u32; n];
    for _ in 0..n {
        counts[rng.gen_range(0..n)] += 1;
    }
    counts
}
