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

pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

pub fn sample_std(x: &[f64]) -> Option<f64> {
    (x.len() >= 2).then(|| {
        let m = mean(x);
        (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
    })
}

pub fn t_interval(x: &[f64], _level: f64) -> Option<Interval> {
    let s = sample_std(x)?;
    let m = mean(x);
    let h = 2.0 * s / (x.len() as f64).sqrt();
    Some(Interval { lo: m - h, hi: m + h })
}

pub fn bootstrap_mean_interval(x: &[f64], _resamples: usize, _seed: u64, level: f64) -> Option<Interval> {
    (x.len() >= 2).then(|| percentile_interval(x, level))
}

pub struct SeedValues {
    pub point: f64,
    pub replicates: Vec<f32>,
}

pub struct Term<'a> {
    pub coef: f64,
    pub seeds: &'a std::collections::BTreeMap<i64, SeedValues>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Contrast {
    pub estimate: f64,
    pub interval: Interval,
    pub p: f64,
    pub seeds: usize,
    pub replicates: usize,
    pub per_seed: Vec<f64>,
}

pub fn paired_contrast(terms: &[Term], resamples: usize, seed: u64, level: f64) -> Option<Contrast> {
    let common: Vec<i64> =
        terms.first()?.seeds.keys().copied().filter(|s| terms.iter().all(|t| t.seeds.contains_key(s))).collect();
    if common.is_empty() {
        return None;
    }
    let r = terms.iter().flat_map(|t| common.iter().map(|s| t.seeds[s].replicates.len())).min().unwrap_or(0);
    if r == 0 && common.len() == 1 {
        return None;
    }
    let per_seed: Vec<f64> =
        common.iter().map(|s| terms.iter().map(|t| t.coef * t.seeds[s].point).sum()).collect();
    let estimate = mean(&per_seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut reps = Vec::with_capacity(resamples);
    for b in 0..resamples {
        let mut sum = 0.0;
        for _ in 0..common.len() {
            let s = common[rng.gen_range(0..common.len())];
            sum += terms
                .iter()
                .map(|t| t.coef * if r > 0 { t.seeds[&s].replicates[b % r] as f64 } else { t.seeds[&s].point })
                .sum::<f64>();
        }
        reps.push(sum / common.len() as f64);
    }
    let le = reps.iter().filter(|&&d| d <= 0.0).count();
    let ge = reps.iter().filter(|&&d| d >= 0.0).count();
    let p = (2.0 * (1 + le.min(ge)) as f64 / (resamples + 1) as f64).min(1.0);
    Some(Contrast {
        estimate,
        interval: percentile_interval(&reps, level),
        p,
        seeds: common.len(),
        replicates: r,
        per_seed,
    })
}

pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = p.len();
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (k, &i) in order.iter().enumerate() {
        running = running.max(((m - k) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

pub fn probability_of_improvement(x: &[f64], y: &[f64]) -> f64 {
    let mut s = 0.0;
    for a in x {
        for b in y {
            s += if a > b { 1.0 } else if a == b { 0.5 } else { 0.0 };
        }
    }
    s / (x.len() * y.len()) as f64
}

pub fn minimum_detectable_difference(sd: f64, n: usize, _level: f64, _power: f64) -> Option<f64> {
    (n >= 2).then(|| 2.8 * sd / (n as f64).sqrt())
}

pub fn pairs_needed(sd: f64, delta: f64, level: f64, power: f64) -> Option<usize> {
    (2..100_000).find(|&n| minimum_detectable_difference(sd, n, level, power).is_some_and(|m| m <= delta))
}

pub fn spread_permutation_test(values: &[Vec<f64>], _permutations: usize, _seed: u64) -> Option<f64> {
    (values.len() >= 2 && values[0].len() >= 2).then_some(1.0)
}
