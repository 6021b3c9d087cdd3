//! Statistics on plain `f64` numbers (no tensors, no frames): the uncertainty that comes with
//! every reported number. Each procedure matches a named reference, and `tests/statistics.rs`
//! checks it against that reference on the same numbers (scipy, statsmodels, numpy in the
//! set-up's Python).
//!
//! - Descriptives: [`mean`]; [`sample_std`] (ddof = 1, as `numpy.std(x, ddof=1)`).
//! - Distributions: [`normal_cdf`] (½·erfc(−z/√2), `libm`'s erfc) and [`normal_quantile`]
//!   (Wichura's AS 241, PPND16, about 1e-16 relative by its paper), as `scipy.stats.norm.cdf`/`ppf`;
//!   [`student_t_cdf`] and [`student_t_quantile`] as `scipy.stats.t.cdf`/`ppf`: the cdf through
//!   the regularised incomplete beta function I_x(ν/2, ½) with x = ν/(ν + t²), evaluated by its
//!   continued fraction (modified Lentz) with ln Γ from `libm` (musl's `lgamma`); the quantile by
//!   safeguarded Newton steps on that cdf inside a bracket (closed forms for ν = 1 and 2).
//! - Intervals and tests: [`t_interval`] (`scipy.stats.t.interval(level, n − 1, mean, s/√n)`);
//!   [`paired_t_test`] (`scipy.stats.ttest_rel`, two-sided); [`holm`] (Holm's step-down adjusted
//!   p-values, `statsmodels.stats.multitest.multipletests(p, method="holm")[1]`).
//! - Bootstrap: [`quantile`] (`numpy.percentile(x, 100·q)`, method "linear", on sorted data);
//!   [`percentile_interval`]; [`resample_counts`] (one nonparametric resample of n items as
//!   multiplicities, reproducible from (n, seed, resample index) alone, so two callers that resample
//!   the same n items with the same seed draw the same resamples: common random numbers);
//!   [`bootstrap_mean_interval`]; [`paired_contrast`] (a linear combination of settings paired over
//!   training seeds and identity-bootstrap replicates: the fiducial interval of a mean whose error
//!   is a t over seeds plus a normal over identities, [`TPlusNormal`]; the identity bootstrap's
//!   percentile interval for a single seed).
//! - Effect sizes and planning: [`probability_of_improvement`] (rliable's P(X > Y), Agarwal et al.
//!   2021, "Deep RL at the edge of the statistical precipice"); [`minimum_detectable_difference`]
//!   and [`pairs_needed`] for a paired two-sided t-test, by the usual normal-style approximation
//!   (t_{1−α/2} + t_{power})·sd/√n with n − 1 degrees of freedom, which is close to but not the
//!   exact noncentral-t power (statsmodels' `TTestPower`); the test bounds the difference.
//! - [`spread_permutation_test`]: is the spread (max − min) of the settings' means over seeds
//!   larger than exchangeable settings would give? A within-block permutation test.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// The confidence level of every interval the project reports.
pub const LEVEL: f64 = 0.95;

/// A closed interval [lo, hi].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// lo ≤ v ≤ hi.
    pub fn contains(&self, v: f64) -> bool {
        self.lo <= v && v <= self.hi
    }

    /// hi − lo.
    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }
}

/// The arithmetic mean; NaN for an empty slice.
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    x.iter().sum::<f64>() / x.len() as f64
}

/// The sample standard deviation (ddof = 1, two passes); `None` for fewer than 2 values.
pub fn sample_std(x: &[f64]) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    let m = mean(x);
    let ss: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    Some((ss / (x.len() - 1) as f64).sqrt())
}

/// Φ(z), the standard normal cdf.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// Φ⁻¹(p) by Wichura's AS 241 (PPND16); −∞ at 0, +∞ at 1, NaN outside [0, 1].
// The coefficients keep the paper's published digits, so the transcription can be checked.
#[allow(clippy::excessive_precision)]
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    // Rational approximations of AS 241 (Applied Statistics 37(3), 1988), numerator and
    // denominator coefficients in increasing powers of r.
    const A: [f64; 8] = [
        3.387_132_872_796_366_608,
        1.331_416_678_917_843_774_5e2,
        1.971_590_950_306_551_442_7e3,
        1.373_169_376_550_946_112_5e4,
        4.592_195_393_154_987_145_7e4,
        6.726_577_092_700_870_085_3e4,
        3.343_057_558_358_812_810_5e4,
        2.509_080_928_730_122_672_7e3,
    ];
    const B: [f64; 8] = [
        1.0,
        4.231_333_070_160_091_125_2e1,
        6.871_870_074_920_579_083e2,
        5.394_196_021_424_751_107_7e3,
        2.121_379_430_158_659_586_7e4,
        3.930_789_580_009_271_061e4,
        2.872_908_573_572_194_267_4e4,
        5.226_495_278_852_854_561e3,
    ];
    const C: [f64; 8] = [
        1.423_437_110_749_683_577_34,
        4.630_337_846_156_545_295_9,
        5.769_497_221_460_691_405_5,
        3.647_848_324_763_204_605_04,
        1.270_458_252_452_368_382_58,
        2.417_807_251_774_506_117_7e-1,
        2.272_384_498_926_918_458_33e-2,
        7.745_450_142_783_414_076_4e-4,
    ];
    const D: [f64; 8] = [
        1.0,
        2.053_191_626_637_758_821_87,
        1.676_384_830_183_803_849_4,
        6.897_673_349_851_000_045_5e-1,
        1.481_039_764_274_800_745_9e-1,
        1.519_866_656_361_645_719_66e-2,
        5.475_938_084_995_344_946e-4,
        1.050_750_071_644_416_843_24e-9,
    ];
    const E: [f64; 8] = [
        6.657_904_643_501_103_777_2,
        5.463_784_911_164_114_369_9,
        1.784_826_539_917_291_335_8,
        2.965_605_718_285_048_912_3e-1,
        2.653_218_952_657_612_309_3e-2,
        1.242_660_947_388_078_438_6e-3,
        2.711_555_568_743_487_578_15e-5,
        2.010_334_399_292_288_132_65e-7,
    ];
    const F: [f64; 8] = [
        1.0,
        5.998_322_065_558_879_376_9e-1,
        1.369_298_809_227_358_053_1e-1,
        1.487_536_129_085_061_485_25e-2,
        7.868_691_311_456_132_591e-4,
        1.846_318_317_510_054_681_8e-5,
        1.421_511_758_316_445_888_7e-7,
        2.044_263_103_389_939_785_64e-15,
    ];
    fn ratio(num: &[f64; 8], den: &[f64; 8], r: f64) -> f64 {
        let poly = |c: &[f64; 8]| c.iter().rev().fold(0.0, |acc, &k| acc * r + k);
        poly(num) / poly(den)
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        return q * ratio(&A, &B, 0.180625 - q * q);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let z = if r <= 5.0 { ratio(&C, &D, r - 1.6) } else { ratio(&E, &F, r - 5.0) };
    if q < 0.0 {
        -z
    } else {
        z
    }
}

/// ln B(a, b).
fn ln_beta(a: f64, b: f64) -> f64 {
    libm::lgamma(a) + libm::lgamma(b) - libm::lgamma(a + b)
}

/// The continued fraction of I_x(a, b) (Numerical Recipes' `betacf` form), by the modified Lentz
/// method; converges fast for x < (a + 1)/(a + b + 2).
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
    let mut h = d;
    for m in 1..=100_000 {
        let m = m as f64;
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function I_x(a, b), given x and y = 1 − x both computed
/// accurately by the caller (whichever is small carries the precision).
fn incomplete_beta(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let ln_x = if x < 0.5 { x.ln() } else { (-y).ln_1p() };
    let ln_y = if y < 0.5 { y.ln() } else { (-x).ln_1p() };
    let front = (a * ln_x + b * ln_y - ln_beta(a, b)).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, y) / b
    }
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom (`scipy.stats.t.cdf`); NaN for df ≤ 0.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    if df.is_infinite() {
        return normal_cdf(t);
    }
    // P(|T| > |t|) = I_x(ν/2, ½) with x = ν/(ν + t²), 1 − x = t²/(ν + t²).
    let t2 = t * t;
    let both_tails = incomplete_beta(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2));
    let tail = 0.5 * both_tails;
    if t < 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// The density of Student's t.
fn student_t_pdf(t: f64, df: f64) -> f64 {
    let ln = libm::lgamma(0.5 * (df + 1.0))
        - libm::lgamma(0.5 * df)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - 0.5 * (df + 1.0) * (t * t / df).ln_1p();
    ln.exp()
}

/// The p-quantile of Student's t with `df` degrees of freedom (`scipy.stats.t.ppf`): −∞ at 0,
/// +∞ at 1, NaN outside [0, 1] or for df ≤ 0. Relative accuracy about 1e-14 where the cdf is.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p.is_nan() || df.is_nan() || df <= 0.0 || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p > 0.5 {
        // 1 − p is exact for p in (0.5, 1).
        return -student_t_quantile(1.0 - p, df);
    }
    if df.is_infinite() {
        return normal_quantile(p);
    }
    if df == 1.0 {
        // Cauchy: tan(π(p − ½)) = −1/tan(πp).
        return -1.0 / (std::f64::consts::PI * p).tan();
    }
    if df == 2.0 {
        return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    }
    // Lower tail, t < 0. Start from the Cornish–Fisher expansion around the normal quantile,
    // bracket the root between two negative points, then Newton steps that fall back to a
    // geometric bisection whenever they leave the bracket.
    let z = normal_quantile(p);
    let mut t = z + (z.powi(3) + z) / (4.0 * df) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * df * df);
    if t >= 0.0 || !t.is_finite() {
        t = z.min(-1e-3);
    }
    let (mut lo, mut hi) = (t, t); // cdf(lo) ≤ p ≤ cdf(hi), lo ≤ hi < 0
    if student_t_cdf(t, df) > p {
        while student_t_cdf(lo, df) > p {
            lo *= 2.0;
            if !lo.is_finite() {
                return f64::NEG_INFINITY;
            }
        }
    } else {
        while student_t_cdf(hi, df) < p {
            hi *= 0.5;
        }
    }
    let mut t = 0.5 * (lo + hi);
    for _ in 0..500 {
        let f = student_t_cdf(t, df) - p;
        if f == 0.0 {
            return t;
        }
        if f < 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        let newton = t - f / student_t_pdf(t, df);
        let next = if newton > lo && newton < hi && newton.is_finite() {
            newton
        } else if lo / hi > 4.0 {
            -(lo * hi).sqrt()
        } else {
            0.5 * (lo + hi)
        };
        if (next - t).abs() <= 1e-15 * t.abs() || (hi - lo).abs() <= 1e-15 * hi.abs() {
            return next;
        }
        t = next;
    }
    t
}

/// The two-sided `level` interval for the mean, mean ± t_{(1+level)/2, n−1}·s/√n (as
/// `scipy.stats.t.interval(level, n − 1, loc=mean, scale=s/√n)`); `None` for fewer than 2 values.
/// Equal values give the one-point interval [mean, mean].
pub fn t_interval(x: &[f64], level: f64) -> Option<Interval> {
    let s = sample_std(x)?;
    let m = mean(x);
    let half = student_t_quantile(0.5 * (1.0 + level), (x.len() - 1) as f64) * s / (x.len() as f64).sqrt();
    Some(Interval { lo: m - half, hi: m + half })
}

/// A paired t-test's result: mean of x − y, the t statistic, its degrees of freedom, the
/// two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    pub mean_diff: f64,
    pub t: f64,
    pub df: f64,
    pub p: f64,
}

/// The two-sided paired t-test of x against y (`scipy.stats.ttest_rel(x, y)`); `None` for fewer
/// than 2 pairs. When every difference is the same (zero variance, where scipy gives NaN): p = 1
/// and t = 0 if that difference is 0, else p = 0 and t = ±∞.
///
/// Panics when x and y differ in length (the pairs are the caller's to build).
pub fn paired_t_test(x: &[f64], y: &[f64]) -> Option<TTest> {
    assert_eq!(x.len(), y.len(), "paired_t_test: {} values against {}", x.len(), y.len());
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    let sd = sample_std(&d)?;
    let df = (d.len() - 1) as f64;
    if d.iter().all(|&v| v == d[0]) {
        let mean_diff = d[0];
        return Some(if mean_diff == 0.0 {
            TTest { mean_diff, t: 0.0, df, p: 1.0 }
        } else {
            TTest { mean_diff, t: f64::INFINITY.copysign(mean_diff), df, p: 0.0 }
        });
    }
    let mean_diff = mean(&d);
    let t = mean_diff / (sd / (d.len() as f64).sqrt());
    let p = (2.0 * student_t_cdf(-t.abs(), df)).min(1.0);
    Some(TTest { mean_diff, t, df, p })
}

/// Holm's step-down adjusted p-values, in the input's order
/// (`statsmodels.stats.multitest.multipletests(p, method="holm")[1]`): sorted ascending,
/// p_(k)·(m − k) (k from 0), running maximum, capped at 1. A NaN sorts last, as in numpy, and
/// makes its own adjusted value NaN.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| match (p[a].is_nan(), p[b].is_nan()) {
        (false, false) => p[a].total_cmp(&p[b]),
        (na, nb) => na.cmp(&nb),
    });
    let mut out = vec![f64::NAN; m];
    let mut running = f64::NEG_INFINITY;
    for (k, &i) in order.iter().enumerate() {
        let raw = p[i] * (m - k) as f64;
        // NaN propagates, as numpy's maximum.accumulate does.
        running = if raw.is_nan() || running.is_nan() { f64::NAN } else { running.max(raw) };
        out[i] = if running > 1.0 { 1.0 } else { running };
    }
    out
}

/// The q-quantile (0 ≤ q ≤ 1) of already-sorted data by linear interpolation between order
/// statistics at position (n − 1)·q: `numpy.percentile(x, 100·q)` with its default method
/// "linear", including numpy's two-sided interpolation formula. NaN for empty data or q outside
/// [0, 1].
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 || q.is_nan() || !(0.0..=1.0).contains(&q) {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * q;
    let lo = h.floor();
    let i = lo as usize;
    if i >= n - 1 {
        return sorted[n - 1];
    }
    let (a, b, g) = (sorted[i], sorted[i + 1], h - lo);
    let diff = b - a;
    if g >= 0.5 {
        b - diff * (1.0 - g)
    } else {
        a + diff * g
    }
}

/// The percentile interval of bootstrap replicates: the (1 − level)/2 and (1 + level)/2
/// quantiles ([`quantile`]) of a sorted copy (NaN sorts last). [NaN, NaN] for no replicates.
pub fn percentile_interval(replicates: &[f64], level: f64) -> Interval {
    let mut sorted = replicates.to_vec();
    sorted.sort_by(f64::total_cmp);
    Interval { lo: quantile(&sorted, 0.5 * (1.0 - level)), hi: quantile(&sorted, 0.5 * (1.0 + level)) }
}

/// One nonparametric bootstrap resample of n items: how many times each item is drawn in n draws
/// with replacement (the counts sum to n). The draws come from ChaCha8 keyed by
/// `seed` (8 bytes, little-endian) ‖ `resample` (8 bytes, little-endian) ‖ 16 zero bytes, each
/// draw `gen_range(0..n)`; so resample b depends on (n, seed, b) alone and every caller with the
/// same n and seed gets the same b-th resample.
pub fn resample_counts(n: usize, seed: u64, resample: u64) -> Vec<u32> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&resample.to_le_bytes());
    let mut rng = ChaCha8Rng::from_seed(key);
    let mut counts = vec![0u32; n];
    for _ in 0..n {
        counts[rng.gen_range(0..n)] += 1;
    }
    counts
}

/// The percentile bootstrap interval of the mean of x: `resamples` resamples from
/// [`resample_counts`]`(n, seed, b)`, b = 0, 1, …; `None` for fewer than 2 values or no resamples.
pub fn bootstrap_mean_interval(x: &[f64], resamples: usize, seed: u64, level: f64) -> Option<Interval> {
    if x.len() < 2 || resamples == 0 {
        return None;
    }
    let n = x.len();
    let means: Vec<f64> = (0..resamples as u64)
        .map(|b| {
            let counts = resample_counts(n, seed, b);
            counts.iter().zip(x).map(|(&c, &v)| c as f64 * v).sum::<f64>() / n as f64
        })
        .collect();
    Some(percentile_interval(&means, level))
}

/// The probability of improvement of X over Y (rliable, Agarwal et al. 2021): the mean over
/// every pair (i, j) of S(x_i, y_j), where S = 1 if x_i > y_j, ½ if equal, 0 otherwise (the
/// Mann–Whitney U of x over y divided by |x|·|y|). NaN when either side is empty.
pub fn probability_of_improvement(x: &[f64], y: &[f64]) -> f64 {
    if x.is_empty() || y.is_empty() {
        return f64::NAN;
    }
    let mut ys = y.to_vec();
    ys.sort_by(f64::total_cmp);
    let mut score = 0.0;
    for &v in x {
        let below = ys.partition_point(|&w| w < v);
        let not_above = ys.partition_point(|&w| w <= v);
        score += below as f64 + 0.5 * (not_above - below) as f64;
    }
    score / (x.len() as f64 * y.len() as f64)
}

/// The smallest true mean difference a two-sided paired t-test at α = 1 − `level` on n pairs
/// detects with probability `power`, when the differences have standard deviation `sd`:
/// (t_{1−α/2, n−1} + t_{power, n−1})·sd/√n. This is the usual approximation (it ignores the far
/// tail and uses the central t for the alternative). Against the exact noncentral-t answer
/// (statsmodels' `TTestPower`) it is optimistic for few pairs: 5 % smaller at n = 3 (level 0.95,
/// power 0.8), 13 % at n = 3 with level 0.99, within 2 % from n = 10 (`tests/statistics.rs`).
/// `None` for n < 2 or a negative or non-finite sd.
pub fn minimum_detectable_difference(sd: f64, n: usize, level: f64, power: f64) -> Option<f64> {
    if n < 2 || !sd.is_finite() || sd < 0.0 {
        return None;
    }
    let df = (n - 1) as f64;
    let alpha = 1.0 - level;
    Some((student_t_quantile(1.0 - alpha / 2.0, df) + student_t_quantile(power, df)) * sd / (n as f64).sqrt())
}

/// The most pairs [`pairs_needed`] considers.
const MAX_PAIRS: usize = 100_000;

/// The smallest n ≥ 2 with [`minimum_detectable_difference`]`(sd, n, level, power)` ≤ delta:
/// `Some(2)` when sd == 0; `None` when sd is not finite or negative, delta is NaN, or more than
/// 100,000 pairs would be needed. The difference falls with n (for power ≥ ½ both quantiles
/// fall with the degrees of freedom), so the search doubles n, then bisects.
pub fn pairs_needed(sd: f64, delta: f64, level: f64, power: f64) -> Option<usize> {
    if !sd.is_finite() || sd < 0.0 || delta.is_nan() {
        return None;
    }
    if sd == 0.0 {
        return Some(2);
    }
    let ok = |n: usize| minimum_detectable_difference(sd, n, level, power).is_some_and(|d| d <= delta);
    if ok(2) {
        return Some(2);
    }
    let (mut bad, mut good) = (2, 4);
    while !ok(good) {
        if good >= MAX_PAIRS {
            return None;
        }
        bad = good;
        good = (good * 2).min(MAX_PAIRS);
    }
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        if ok(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(good)
}

/// A within-block permutation test for the spread of settings. `values[block][setting]` holds
/// complete blocks (typically training seeds) × settings; the statistic is max − min over
/// settings of the setting's mean over blocks. Under H0 the settings are exchangeable within
/// each block, so each permutation shuffles every block's row independently (Fisher–Yates from
/// one ChaCha8 stream seeded by `seed` through `seed_from_u64`), and
/// p = (1 + #{permuted statistic ≥ observed − 1e-12}) / (1 + permutations).
/// `None` for fewer than 2 blocks or 2 settings. Panics when rows differ in length.
pub fn spread_permutation_test(values: &[Vec<f64>], permutations: usize, seed: u64) -> Option<f64> {
    let settings = values.first()?.len();
    if values.len() < 2 || settings < 2 {
        return None;
    }
    for (b, row) in values.iter().enumerate() {
        assert_eq!(
            row.len(),
            settings,
            "spread_permutation_test: block {b} has {} settings, block 0 {settings}",
            row.len()
        );
    }
    let spread = |rows: &[Vec<f64>]| {
        let means: Vec<f64> =
            (0..settings).map(|k| rows.iter().map(|r| r[k]).sum::<f64>() / rows.len() as f64).collect();
        means.iter().copied().fold(f64::NEG_INFINITY, f64::max) - means.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let observed = spread(values);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = values.to_vec();
    let mut extreme = 0usize;
    for _ in 0..permutations {
        for row in rows.iter_mut() {
            row.shuffle(&mut rng);
        }
        if spread(&rows) >= observed - 1e-12 {
            extreme += 1;
        }
    }
    Some((1 + extreme) as f64 / (1 + permutations) as f64)
}

/// One trial's number: its point estimate and its identity-bootstrap replicates (possibly none).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedValues {
    pub point: f64,
    pub replicates: Vec<f32>,
}

/// One term of a contrast: a coefficient times a setting, given as its trials by training seed.
#[derive(Debug, Clone, Copy)]
pub struct Term<'a> {
    pub coef: f64,
    pub seeds: &'a BTreeMap<i64, SeedValues>,
}

/// A contrast Σ coef·setting estimated over common seeds, with its interval, p-value, standard
/// error and degrees of freedom ([`paired_contrast`] says how each is formed).
#[derive(Debug, Clone, PartialEq)]
pub struct Contrast {
    /// Mean over the common seeds of Σ coef·point.
    pub estimate: f64,
    /// Two or more seeds: estimate ± the (1 + level)/2 quantile of se_seeds·T_{K−1} + se_id·Z,
    /// which is t_{(1+level)/2, df}·se. One seed: the percentile interval of the identity
    /// replicates.
    pub interval: Interval,
    /// Two-sided p for "the contrast is 0": two or more seeds, P(|se_seeds·T_{K−1} + se_id·Z| ≥
    /// |estimate|); one seed, the bootstrap p min(1, 2·(1 + min(#{Δ_r ≤ 0}, #{Δ_r ≥ 0}))/(R + 1)).
    pub p: f64,
    /// The standard error: √(s²_d/K + V_id) with two or more seeds; with one seed the standard
    /// deviation (ddof 1) of the identity replicates.
    pub se: f64,
    /// The degrees of freedom of the interval: the df with t_{(1+level)/2, df}·se equal to its
    /// half-width, between K − 1 (the seeds carry all the variance) and ∞ (the identities do, or
    /// the seeds agree exactly). ∞ with one seed.
    pub df: f64,
    /// Common seeds used (K).
    pub seeds: usize,
    /// Identity replicates used per seed: min(R, `resamples`) (0 when any term had none).
    pub replicates: usize,
    /// Σ coef·point for each common seed, in seed order.
    pub per_seed: Vec<f64>,
}

/// The contrast Σ_t coef_t·setting_t of settings trained with the same seeds and scored on the
/// same identities, with its `level` interval and two-sided p-value.
///
/// S = the seeds present in every term (`None` if there are no terms or S is empty), K = |S|;
/// R = the smallest replicate count over every term at the seeds of S (0 if any is empty), of
/// which the first min(R, `resamples`) are used (all of them when `resamples` ≥ R; nothing is
/// cycled or redrawn). Replicate r of every trial must come from the same identity resample
/// (as [`resample_counts`] with a shared seed gives). d_s = Σ_t coef_t·point_t[s] is the
/// contrast at seed s; the estimate is their mean.
///
/// **Two or more seeds.** With n identities, the contrast of seed s on identity i is
/// a_i + b_s + c_is (identity, seed, and seed × identity parts; variances σ²_a, σ²_b, σ²_c), so
/// Var(estimate) = σ²_a/n + σ²_b/K + σ²_c/(nK). Two estimates carry it:
/// - s²_d/K, with s²_d the sample variance (ddof 1) of the d_s, estimates σ²_b/K + σ²_c/(nK).
///   The identity part a is common to all seeds (same identities) and is not in it.
/// - The identity bootstrap gives the rest. Let Δ_{s,r} = Σ_t coef_t·replicates_t[s][r],
///   D_r = mean_s Δ_{s,r}, V_mean = Var_r(D_r) ≈ (σ²_a + σ²_c/K)/n and V_seed = mean_s
///   Var_r(Δ_{s,r}) ≈ (σ²_a + σ²_c)/n (variances ddof 1). V_mean holds the seed × identity
///   part once more, which s²_d/K already has; removing it leaves
///   V_id = max(0, (K·V_mean − V_seed)/(K − 1)) ≈ σ²_a/n.
///
///   Adding V_mean itself would count σ²_c/(nK) twice: where the seed × identity variation
///   dominates, that made the interval cover 98.8 % (5 seeds) and 99.4 % (10 seeds) at nominal
///   95 % (these figures and those below come from 1,000 experiments of the simulation in
///   `tests/statistics.rs` with 200 identity replicates, run while this procedure was chosen). If the seeds were scored on different identities, V_mean ≈ V_seed/K and
///   V_id ≈ 0, which is right: s²_d then holds the identity variance.
///
/// se² = s²_d/K + V_id. The interval and p treat V_id as known (it rests on the identities,
/// typically dozens or more) and s²_d as a variance with K − 1 degrees of freedom: the estimate
/// minus the truth is distributed as se_seeds·T_{K−1} + se_id·Z (se_seeds = √(s²_d/K),
/// se_id = √V_id, T Student's t, Z standard normal, independent) — the fiducial (generalised
/// pivotal) solution of a mean whose variance is part unknown, part known. The interval is
/// estimate ± its (1 + level)/2 quantile and p = P(|se_seeds·T + se_id·Z| ≥ |estimate|),
/// computed as a normal scale mixture over χ²_{K−1} ([`TPlusNormal`]). Without identity
/// variance this is exactly the paired t-test over seeds (`scipy.stats.ttest_rel` for two
/// terms); when the seeds agree exactly, the normal interval. With se = 0 the interval is
/// [estimate, estimate] and p is 1 if the estimate is 0, else 0.
///
/// Why not simpler: a two-level percentile bootstrap (seeds with replacement × identity
/// replicates) shrinks the seed variance by (K − 1)/K and has no t correction (84.6 % coverage
/// with 5 seeds carrying the variance, 90.4 % with 10); a t interval with Welch–Satterthwaite
/// degrees of freedom fails with 2 seeds (89.7 % with the seeds carrying the variance: s²_d with
/// one degree of freedom is often tiny, which makes the df large exactly when the interval is
/// already too narrow). The fiducial interval never fell below 94 % in those simulations (2, 3, 5
/// and 10 seeds, five mixes of the three variances); with 2 seeds and identity variance as large
/// as the seed variance it is conservative (about 99 %), the price of estimating a variance from
/// two seeds.
///
/// **One seed** (identity bootstrap only; what is estimated is that seed's models' difference on
/// the population of identities): with R ≥ 2 the percentile interval ([`percentile_interval`])
/// of Δ_r = Σ_t coef_t·replicates_t[r] and the bootstrap p above; `None` with R < 2 (nothing
/// varies: no interval can be formed).
///
/// The coverage of each case is measured by `tests/statistics.rs` and reported in the README's
/// "Tests" section.
///
/// `None` as well when `resamples` is 0. `_seed` is unused (the procedure draws nothing); it
/// stays in the signature so that callers need not change.
pub fn paired_contrast(terms: &[Term], resamples: usize, _seed: u64, level: f64) -> Option<Contrast> {
    let first = terms.first()?;
    let common: Vec<i64> =
        first.seeds.keys().copied().filter(|s| terms.iter().all(|t| t.seeds.contains_key(s))).collect();
    if common.is_empty() || resamples == 0 {
        return None;
    }
    let k = common.len();
    let replicates =
        terms.iter().flat_map(|t| common.iter().map(|s| t.seeds[s].replicates.len())).min().unwrap_or(0).min(resamples);
    if k == 1 && replicates < 2 {
        return None;
    }
    let per_seed: Vec<f64> = common.iter().map(|s| terms.iter().map(|t| t.coef * t.seeds[s].point).sum()).collect();
    let estimate = mean(&per_seed);
    // Δ_{s,r}: the contrast of each seed at each identity replicate, [seed][r].
    let at_replicate: Vec<Vec<f64>> = common
        .iter()
        .map(|s| {
            (0..replicates).map(|r| terms.iter().map(|t| t.coef * t.seeds[s].replicates[r] as f64).sum()).collect()
        })
        .collect();
    // D_r: their seed mean.
    let seed_mean: Vec<f64> =
        (0..replicates).map(|r| at_replicate.iter().map(|d| d[r]).sum::<f64>() / k as f64).collect();
    let variance = |x: &[f64]| sample_std(x).map_or(0.0, |s| s * s);
    if k == 1 {
        let at_most_zero = seed_mean.iter().filter(|&&d| d <= 0.0).count();
        let at_least_zero = seed_mean.iter().filter(|&&d| d >= 0.0).count();
        let p = (2.0 * (1 + at_most_zero.min(at_least_zero)) as f64 / (replicates + 1) as f64).min(1.0);
        return Some(Contrast {
            estimate,
            interval: percentile_interval(&seed_mean, level),
            p,
            se: variance(&seed_mean).sqrt(),
            df: f64::INFINITY,
            seeds: k,
            replicates,
            per_seed,
        });
    }
    let between = variance(&per_seed) / k as f64;
    let identity = if replicates >= 2 {
        let of_mean = variance(&seed_mean);
        let of_seed = at_replicate.iter().map(|d| variance(d)).sum::<f64>() / k as f64;
        ((k as f64 * of_mean - of_seed) / (k - 1) as f64).max(0.0)
    } else {
        0.0
    };
    let se = (between + identity).sqrt();
    let (interval, p, df) = if se == 0.0 {
        let p = if estimate == 0.0 { 1.0 } else { 0.0 };
        (Interval { lo: estimate, hi: estimate }, p, f64::INFINITY)
    } else {
        let w = TPlusNormal::new(between.sqrt(), (k - 1) as f64, identity.sqrt());
        let half = w.two_sided_quantile(1.0 - level);
        let df = w.effective_df(half / se, level);
        (Interval { lo: estimate - half, hi: estimate + half }, w.two_sided_tail(estimate.abs()), df)
    };
    Some(Contrast { estimate, interval, p, se, df, seeds: k, replicates, per_seed })
}

/// The distribution of W = b·T_ν + c·Z, T Student's t with ν degrees of freedom and Z standard
/// normal, independent (b, c ≥ 0, not both 0). Given X ~ χ²_ν, T = Z′/√(X/ν), so W is normal
/// with variance b²·ν/X + c²: W is a scale mixture of normals over X, which is integrated by
/// the trapezoid rule in y = ln X (the integrand is smooth and decays at both ends faster than
/// exponentially, where the trapezoid rule converges geometrically) on 2,000 nodes between the
/// points where the log-density of y has fallen 45 below its mode (e^−45 ≈ 3e-20), with the
/// weights normalised to sum to 1. With c = 0 it is exactly the scaled t, with b = 0 the
/// scaled normal (no quadrature).
#[derive(Debug, Clone)]
pub struct TPlusNormal {
    b: f64,
    nu: f64,
    c: f64,
    /// (standard deviation of W given the node's X, normalised weight) per node.
    nodes: Vec<(f64, f64)>,
}

impl TPlusNormal {
    const NODES: usize = 2000;

    /// Panics when b or c is negative or not finite, or ν ≤ 0.
    pub fn new(b: f64, nu: f64, c: f64) -> TPlusNormal {
        assert!(b.is_finite() && c.is_finite() && b >= 0.0 && c >= 0.0 && nu > 0.0, "TPlusNormal({b}, {nu}, {c})");
        let mut nodes = Vec::new();
        if b > 0.0 && c > 0.0 {
            // The log-density of y = ln X, up to a constant: ν·y/2 − e^y/2, mode at ln ν.
            let log_density = |y: f64| 0.5 * nu * y - 0.5 * y.exp();
            let mode = nu.ln();
            let top = log_density(mode);
            let edge = |direction: f64| {
                let (mut inside, mut outside) = (mode, mode + direction);
                while log_density(outside) > top - 45.0 {
                    inside = outside;
                    outside = mode + 2.0 * (outside - mode);
                }
                for _ in 0..100 {
                    let mid = 0.5 * (inside + outside);
                    if log_density(mid) > top - 45.0 {
                        inside = mid;
                    } else {
                        outside = mid;
                    }
                }
                outside
            };
            let (lo, hi) = (edge(-1.0), edge(1.0));
            let step = (hi - lo) / (Self::NODES - 1) as f64;
            let mut total = 0.0;
            for j in 0..Self::NODES {
                let y = lo + step * j as f64;
                let end = if j == 0 || j == Self::NODES - 1 { 0.5 } else { 1.0 };
                let weight = end * (log_density(y) - top).exp();
                total += weight;
                nodes.push(((b * b * nu / y.exp() + c * c).sqrt(), weight));
            }
            nodes.iter_mut().for_each(|n| n.1 /= total);
        }
        TPlusNormal { b, nu, c, nodes }
    }

    /// P(|W| ≥ h) for h ≥ 0.
    pub fn two_sided_tail(&self, h: f64) -> f64 {
        if self.c == 0.0 {
            return (2.0 * student_t_cdf(-h / self.b, self.nu)).min(1.0);
        }
        if self.b == 0.0 {
            return (2.0 * normal_cdf(-h / self.c)).min(1.0);
        }
        let tail: f64 = self.nodes.iter().map(|&(sd, w)| w * normal_cdf(-h / sd)).sum();
        (2.0 * tail).min(1.0)
    }

    /// The h ≥ 0 with P(|W| ≥ h) = alpha (0 < alpha < 1): the half-width of the central
    /// 1 − alpha interval. Bisection on the tail, to the precision of f64.
    pub fn two_sided_quantile(&self, alpha: f64) -> f64 {
        if self.c == 0.0 {
            return self.b * student_t_quantile(1.0 - 0.5 * alpha, self.nu);
        }
        if self.b == 0.0 {
            return self.c * normal_quantile(1.0 - 0.5 * alpha);
        }
        let (mut lo, mut hi) = (0.0, self.b + self.c);
        while self.two_sided_tail(hi) > alpha {
            lo = hi;
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if self.two_sided_tail(mid) > alpha {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }

    /// The degrees of freedom df ∈ [ν, ∞] with t_{(1+level)/2, df} = `ratio` (a half-width over
    /// √(b² + c²)): ν at or above ν's quantile, ∞ at or below the normal's, else by bisection in
    /// ln df.
    fn effective_df(&self, ratio: f64, level: f64) -> f64 {
        if self.c == 0.0 {
            return self.nu;
        }
        if self.b == 0.0 {
            return f64::INFINITY;
        }
        let q = 0.5 * (1.0 + level);
        if ratio >= student_t_quantile(q, self.nu) {
            return self.nu;
        }
        if ratio <= normal_quantile(q) {
            return f64::INFINITY;
        }
        let (mut lo, mut hi) = (self.nu.ln(), self.nu.ln() + 1.0);
        while student_t_quantile(q, hi.exp()) > ratio {
            lo = hi;
            hi += 2.0 * (hi - self.nu.ln());
            if hi > 700.0 {
                return f64::INFINITY;
            }
        }
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if student_t_quantile(q, mid.exp()) > ratio {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (0.5 * (lo + hi)).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewer_than_two_values_give_none() {
        assert!(mean(&[]).is_nan());
        assert_eq!(mean(&[3.0]), 3.0);
        assert_eq!(sample_std(&[1.0]), None);
        assert_eq!(t_interval(&[1.0], LEVEL), None);
        assert_eq!(paired_t_test(&[1.0], &[2.0]), None);
        assert_eq!(bootstrap_mean_interval(&[1.0], 100, 0, LEVEL), None);
        assert_eq!(minimum_detectable_difference(1.0, 1, LEVEL, 0.8), None);
        assert_eq!(spread_permutation_test(&[vec![1.0, 2.0]], 10, 0), None);
        assert_eq!(spread_permutation_test(&[vec![1.0], vec![2.0]], 10, 0), None);
        assert_eq!(sample_std(&[1.0, 3.0]), Some(2f64.sqrt()));
    }

    #[test]
    fn equal_values_have_no_spread() {
        let x = [0.25; 7];
        assert_eq!(sample_std(&x), Some(0.0));
        let i = t_interval(&x, LEVEL).unwrap();
        assert_eq!((i.lo, i.hi), (mean(&x), mean(&x)));
        assert_eq!(i.width(), 0.0);
        let i = bootstrap_mean_interval(&x, 50, 1, LEVEL).unwrap();
        assert_eq!((i.lo, i.hi), (0.25, 0.25));
        // Zero variance of the differences.
        let t = paired_t_test(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((t.mean_diff, t.t, t.df, t.p), (0.0, 0.0, 2.0, 1.0));
        let t = paired_t_test(&[1.5, 2.5, 3.5], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((t.mean_diff, t.t, t.p), (0.5, f64::INFINITY, 0.0));
        let t = paired_t_test(&[0.5, 1.5], &[1.0, 2.0]).unwrap();
        assert_eq!((t.t, t.p), (f64::NEG_INFINITY, 0.0));
        assert_eq!(pairs_needed(0.0, 0.01, LEVEL, 0.8), Some(2));
        assert_eq!(minimum_detectable_difference(0.0, 5, LEVEL, 0.8), Some(0.0));
        // Every permutation has the observed spread: p = 1.
        assert_eq!(spread_permutation_test(&[vec![1.0, 1.0], vec![2.0, 2.0]], 19, 3), Some(1.0));
    }

    #[test]
    fn interval_helpers() {
        let i = Interval { lo: -1.0, hi: 2.0 };
        assert!(i.contains(-1.0) && i.contains(2.0) && i.contains(0.0));
        assert!(!i.contains(2.000001) && !i.contains(f64::NAN));
        assert_eq!(i.width(), 3.0);
    }

    #[test]
    fn distributions_at_known_points() {
        assert_eq!(normal_cdf(0.0), 0.5);
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-14);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert!(normal_quantile(1.5).is_nan());
        assert_eq!(student_t_cdf(0.0, 4.0), 0.5);
        // Cauchy: F(1) = 3/4; ν = 2: F(t) = ½ + t/(2√(2 + t²)).
        assert!((student_t_cdf(1.0, 1.0) - 0.75).abs() < 1e-15);
        assert!((student_t_cdf(1.5, 2.0) - (0.5 + 1.5 / (2.0 * (2.0f64 + 2.25).sqrt()))).abs() < 1e-15);
        for df in [1.0, 2.0, 3.0, 7.5, 50.0] {
            for p in [1e-8, 0.01, 0.3, 0.5, 0.9, 0.999] {
                let t = student_t_quantile(p, df);
                assert!((student_t_cdf(t, df) - p).abs() <= 1e-13 * p.min(1.0 - p).max(1e-3), "df {df} p {p}: t {t}");
            }
        }
        assert_eq!(student_t_quantile(1.0, 3.0), f64::INFINITY);
        assert!(student_t_quantile(0.5, -1.0).is_nan());
    }

    #[test]
    fn holm_is_monotone_capped_and_in_input_order() {
        let p = [0.04, 0.01, 0.03, 0.5, 0.01];
        let adj = holm(&p);
        // Sorted: 0.01 ×5, 0.01 ×4, 0.03 ×3, 0.04 ×2, 0.5 ×1, running maximum.
        for (a, want) in adj.iter().zip([0.09, 0.05, 0.09, 0.5, 0.05]) {
            assert!((a - want).abs() < 1e-15, "{adj:?}");
        }
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        for w in order.windows(2) {
            assert!(adj[w[0]] <= adj[w[1]]);
        }
        for (a, q) in adj.iter().zip(p) {
            assert!(*a >= q && *a <= 1.0);
        }
        assert_eq!(holm(&[0.6, 0.7]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
        let with_nan = holm(&[f64::NAN, 0.01]);
        assert!(with_nan[0].is_nan() && with_nan[1] == 0.02);
    }

    #[test]
    fn quantile_interpolates_linearly() {
        let x = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile(&x, 0.0), 1.0);
        assert_eq!(quantile(&x, 1.0), 8.0);
        assert_eq!(quantile(&x, 0.5), 3.0);
        assert_eq!(quantile(&x, 0.25), 1.75);
        assert!(quantile(&[], 0.5).is_nan());
        assert!(quantile(&x, 1.5).is_nan());
        let i = percentile_interval(&[8.0, 1.0, 4.0, 2.0], 0.5);
        assert_eq!((i.lo, i.hi), (1.75, 5.0));
    }

    #[test]
    fn resample_counts_sum_to_n_and_are_reproducible() {
        for n in [0, 1, 2, 17, 60] {
            for b in 0..5 {
                let c = resample_counts(n, 11, b);
                assert_eq!(c.len(), n);
                assert_eq!(c.iter().sum::<u32>() as usize, n);
                assert_eq!(c, resample_counts(n, 11, b));
            }
        }
        assert_ne!(resample_counts(60, 11, 0), resample_counts(60, 11, 1));
        assert_ne!(resample_counts(60, 11, 0), resample_counts(60, 12, 0));
        // Every item is drawn with probability 1/n: the mean count over many resamples is ≈ 1.
        let total: Vec<u32> = (0..2000).map(|b| resample_counts(10, 5, b)).fold(vec![0; 10], |mut acc, c| {
            acc.iter_mut().zip(c).for_each(|(a, v)| *a += v);
            acc
        });
        for t in total {
            assert!((1800..2200).contains(&t), "{t}");
        }
    }

    #[test]
    fn probability_of_improvement_by_hand() {
        // x = {1, 2}, y = {1, 3}: pairs (1,1) ½, (1,3) 0, (2,1) 1, (2,3) 0 → 1.5/4.
        assert_eq!(probability_of_improvement(&[1.0, 2.0], &[1.0, 3.0]), 0.375);
        assert_eq!(probability_of_improvement(&[5.0], &[1.0, 2.0, 3.0]), 1.0);
        assert_eq!(probability_of_improvement(&[0.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(probability_of_improvement(&[2.0, 2.0], &[2.0]), 0.5);
        // P(X > Y) + P(Y > X) = 1.
        let (x, y) = ([0.3, 0.9, 0.5, 0.5], [0.5, 0.1, 0.7]);
        assert_eq!(probability_of_improvement(&x, &y) + probability_of_improvement(&y, &x), 1.0);
        assert!(probability_of_improvement(&[], &y).is_nan());
    }

    #[test]
    fn pairs_needed_is_the_smallest_sufficient_n() {
        let (sd, delta) = (0.02, 0.01);
        let n = pairs_needed(sd, delta, LEVEL, 0.8).unwrap();
        assert!(minimum_detectable_difference(sd, n, LEVEL, 0.8).unwrap() <= delta);
        assert!(minimum_detectable_difference(sd, n - 1, LEVEL, 0.8).unwrap() > delta);
        assert_eq!(pairs_needed(f64::NAN, delta, LEVEL, 0.8), None);
        assert_eq!(pairs_needed(1.0, 1e-6, LEVEL, 0.8), None);
        assert_eq!(pairs_needed(1.0, 0.0, LEVEL, 0.8), None);
        assert_eq!(pairs_needed(0.001, 1.0, LEVEL, 0.8), Some(2));
    }

    #[test]
    fn spread_test_finds_a_real_spread() {
        // Setting 2 is higher in every block: the observed spread is the largest possible.
        let values: Vec<Vec<f64>> = (0..8).map(|b| vec![b as f64, b as f64 + 0.1, b as f64 + 1.0]).collect();
        let p = spread_permutation_test(&values, 999, 7).unwrap();
        assert!(p < 0.01, "{p}");
        assert_eq!(p, spread_permutation_test(&values, 999, 7).unwrap());
    }

    fn trials(points: &[(i64, f64, Vec<f32>)]) -> BTreeMap<i64, SeedValues> {
        points.iter().map(|(s, p, r)| (*s, SeedValues { point: *p, replicates: r.clone() })).collect()
    }

    #[test]
    fn paired_contrast_uses_common_seeds_and_pairs() {
        let a = trials(&[(1, 0.9, vec![0.91, 0.89]), (2, 0.8, vec![0.8, 0.81, 0.82]), (3, 0.7, vec![])]);
        let b = trials(&[(1, 0.5, vec![0.5, 0.52]), (2, 0.6, vec![0.61, 0.6])]);
        let c =
            paired_contrast(&[Term { coef: 1.0, seeds: &a }, Term { coef: -1.0, seeds: &b }], 200, 4, LEVEL).unwrap();
        assert_eq!(c.seeds, 2);
        assert_eq!(c.replicates, 2);
        assert_eq!(c.per_seed.len(), 2);
        assert!((c.per_seed[0] - 0.4).abs() < 1e-12 && (c.per_seed[1] - 0.2).abs() < 1e-12);
        assert!((c.estimate - 0.3).abs() < 1e-12);
        // By hand: s²_d = (0.1² + 0.1²)/1 = 0.02, over K = 2: 0.01. Δ_1 = (0.41, 0.37),
        // Δ_2 = (0.19, 0.21): V_seed = (0.0008 + 0.0002)/2 = 0.0005; D = (0.30, 0.29):
        // V_mean = 0.00005. V_id = max(0, (2·0.00005 − 0.0005)/1) = 0: the seeds' disagreement
        // already holds all the identity variation there is, and this is the t-test over seeds.
        assert!((c.se - 0.1).abs() < 1e-12, "{}", c.se);
        assert_eq!(c.df, 1.0);
        let half = student_t_quantile(0.975, 1.0) * 0.1;
        assert!((c.interval.lo - (0.3 - half)).abs() < 1e-12 && (c.interval.hi - (0.3 + half)).abs() < 1e-12);
        assert!((c.p - 2.0 * student_t_cdf(-3.0, 1.0)).abs() < 1e-12, "{}", c.p);
        assert!(c.p > 0.05 && c.interval.contains(0.0)); // two seeds that disagree by 0.2
                                                         // A setting against itself: se = 0, so p = 1 and the interval is [0, 0].
        let same =
            paired_contrast(&[Term { coef: 1.0, seeds: &a }, Term { coef: -1.0, seeds: &a }], 50, 4, LEVEL).unwrap();
        assert_eq!((same.estimate, same.interval, same.p, same.se), (0.0, Interval { lo: 0.0, hi: 0.0 }, 1.0, 0.0));
        assert_eq!((same.seeds, same.df), (3, f64::INFINITY));
        assert_eq!(same.replicates, 0); // seed 3 has no replicates: points only
                                        // A constant nonzero difference with no spread at all (exact binary fractions): p = 0.
        let x = trials(&[(1, 0.75, vec![]), (2, 0.5, vec![]), (3, 1.0, vec![])]);
        let y = trials(&[(1, 0.5, vec![]), (2, 0.25, vec![]), (3, 0.75, vec![])]);
        let c =
            paired_contrast(&[Term { coef: 1.0, seeds: &x }, Term { coef: -1.0, seeds: &y }], 50, 4, LEVEL).unwrap();
        assert_eq!((c.estimate, c.se, c.p, c.df), (0.25, 0.0, 0.0, f64::INFINITY));
        assert_eq!(c.interval, Interval { lo: 0.25, hi: 0.25 });
        // No common seed; a single seed without replicates; no terms; no resamples.
        let other = trials(&[(9, 0.1, vec![])]);
        assert_eq!(
            paired_contrast(&[Term { coef: 1.0, seeds: &a }, Term { coef: 1.0, seeds: &other }], 10, 0, LEVEL),
            None
        );
        let single = trials(&[(3, 0.7, vec![])]);
        assert_eq!(paired_contrast(&[Term { coef: 1.0, seeds: &single }], 10, 0, LEVEL), None);
        assert_eq!(paired_contrast(&[], 10, 0, LEVEL), None);
        assert_eq!(paired_contrast(&[Term { coef: 1.0, seeds: &a }], 0, 0, LEVEL), None);
    }

    #[test]
    fn paired_contrast_without_replicates_is_the_paired_t_test() {
        let x = [0.91, 0.88, 0.93, 0.9, 0.87];
        let y = [0.9, 0.85, 0.9, 0.9, 0.84];
        let a = trials(&x.iter().enumerate().map(|(s, &v)| (s as i64, v, vec![])).collect::<Vec<_>>());
        let b = trials(&y.iter().enumerate().map(|(s, &v)| (s as i64, v, vec![0.5, 0.6])).collect::<Vec<_>>());
        let c =
            paired_contrast(&[Term { coef: 1.0, seeds: &a }, Term { coef: -1.0, seeds: &b }], 100, 0, LEVEL).unwrap();
        let t = paired_t_test(&x, &y).unwrap();
        let d: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p - q).collect();
        let i = t_interval(&d, LEVEL).unwrap();
        assert_eq!((c.replicates, c.df), (0, 4.0));
        assert!((c.estimate - t.mean_diff).abs() < 1e-15 && (c.estimate / c.se - t.t).abs() < 1e-9);
        assert!((c.p - t.p).abs() < 1e-15, "{} against {}", c.p, t.p);
        assert!((c.interval.lo - i.lo).abs() < 1e-15 && (c.interval.hi - i.hi).abs() < 1e-15);
        // One replicate per trial, or `resamples` = 1, carries no identity variance: the same test.
        let with = |v: &[f64], reps: Vec<f32>| {
            trials(&v.iter().enumerate().map(|(s, &p)| (s as i64, p, reps.clone())).collect::<Vec<_>>())
        };
        let (a1, b1) = (with(&x, vec![0.3]), with(&y, vec![0.5]));
        let c1 =
            paired_contrast(&[Term { coef: 1.0, seeds: &a1 }, Term { coef: -1.0, seeds: &b1 }], 100, 0, LEVEL).unwrap();
        assert_eq!((c1.replicates, c1.p, c1.interval, c1.df), (1, c.p, c.interval, c.df));
        let (a2, b2) = (with(&x, vec![0.3, 0.9]), with(&y, vec![0.5, 0.1]));
        let c2 =
            paired_contrast(&[Term { coef: 1.0, seeds: &a2 }, Term { coef: -1.0, seeds: &b2 }], 1, 0, LEVEL).unwrap();
        assert_eq!((c2.replicates, c2.p, c2.interval, c2.df), (1, c.p, c.interval, c.df));
        let c3 =
            paired_contrast(&[Term { coef: 1.0, seeds: &a2 }, Term { coef: -1.0, seeds: &b2 }], 2, 0, LEVEL).unwrap();
        assert!(c3.replicates == 2 && c3.se > c.se && c3.df > c.df && c3.p > c.p, "{c3:?}");
    }

    #[test]
    fn paired_contrast_adds_the_identity_variance() {
        // Two seeds with the same difference 0.125 (s²_d = 0): only the identity variance is left,
        // with the normal's quantile (df = ∞). Δ_1 = Δ_2 = D = (0.08, 0.10, 0.12): V_seed =
        // V_mean = 0.0004, V_id = (2·0.0004 − 0.0004)/1 = 0.0004.
        let a = trials(&[(1, 0.75, vec![0.48, 0.5, 0.52]), (2, 0.625, vec![0.58, 0.6, 0.62, 0.9])]);
        let b = trials(&[(1, 0.625, vec![0.4, 0.4, 0.4]), (2, 0.5, vec![0.5, 0.5, 0.5])]);
        let c =
            paired_contrast(&[Term { coef: 1.0, seeds: &a }, Term { coef: -1.0, seeds: &b }], 100, 0, LEVEL).unwrap();
        assert_eq!((c.seeds, c.replicates, c.df), (2, 3, f64::INFINITY));
        assert!((c.se - 0.02).abs() < 1e-7, "{}", c.se);
        assert_eq!(c.estimate, 0.125);
        assert!((c.interval.hi - (0.125 + normal_quantile(0.975) * c.se)).abs() < 1e-12);
        assert!((c.p - 2.0 * normal_cdf(-0.125 / c.se)).abs() < 1e-12);
        // `resamples` caps the replicates used: the first two give V_id = 0.0002.
        let c2 =
            paired_contrast(&[Term { coef: 1.0, seeds: &a }, Term { coef: -1.0, seeds: &b }], 2, 0, LEVEL).unwrap();
        assert_eq!(c2.replicates, 2);
        assert!((c2.se - 0.0002f64.sqrt()).abs() < 1e-7, "{}", c2.se);
    }

    #[test]
    fn paired_contrast_with_one_seed_is_the_identity_bootstrap() {
        let reps: Vec<f32> = (0..39).map(|r| 0.01 * (r as f32 - 5.0)).collect();
        let a = trials(&[(7, 0.15, reps.clone())]);
        let zero = trials(&[(7, 0.0, vec![0.0; 50])]);
        let c = paired_contrast(&[Term { coef: 1.0, seeds: &a }, Term { coef: -1.0, seeds: &zero }], 1000, 0, LEVEL)
            .unwrap();
        let deltas: Vec<f64> = reps.iter().map(|&v| v as f64).collect();
        assert_eq!((c.seeds, c.replicates, c.df), (1, 39, f64::INFINITY));
        assert_eq!(c.interval, percentile_interval(&deltas, LEVEL));
        assert_eq!(c.se, sample_std(&deltas).unwrap());
        // 6 replicates ≤ 0 (r = 0..5), 34 ≥ 0 (r = 5..38): p = 2·(1 + 6)/40.
        assert!((c.p - 14.0 / 40.0).abs() < 1e-15, "{}", c.p);
        assert!((c.estimate - 0.15).abs() < 1e-15);
        // Fewer than two replicates, or `resamples` = 1: no interval.
        let few = trials(&[(7, 0.15, vec![0.1])]);
        assert_eq!(paired_contrast(&[Term { coef: 1.0, seeds: &few }], 1000, 0, LEVEL), None);
        assert_eq!(paired_contrast(&[Term { coef: 1.0, seeds: &a }], 1, 0, LEVEL), None);
    }

    #[test]
    fn paired_contrast_with_both_parts_and_the_interaction_removed() {
        // Three seeds. Δ_{s,r} = d_s + shared_r + own_{s,r}: the shared identity part
        // (−0.02, 0, 0.02, 0) and a seed × identity part (±0.01).
        let shared = [-0.02, 0.0, 0.02, 0.0];
        let own = [[0.01, -0.01, 0.0, 0.0], [0.0, 0.0, 0.01, -0.01], [-0.01, 0.01, -0.01, 0.01]];
        let points = [0.5, 0.25, 0.375];
        let zero: BTreeMap<i64, SeedValues> =
            (0..3).map(|s| (s, SeedValues { point: 0.0, replicates: vec![0.0; 4] })).collect();
        let a: BTreeMap<i64, SeedValues> = (0..3)
            .map(|s| {
                let reps = (0..4).map(|r| (points[s] + shared[r] + own[s][r]) as f32).collect();
                (s as i64, SeedValues { point: points[s], replicates: reps })
            })
            .collect();
        let c = paired_contrast(&[Term { coef: 1.0, seeds: &a }, Term { coef: -1.0, seeds: &zero }], 100, 0, LEVEL)
            .unwrap();
        let f = |x: &[f64]| sample_std(x).unwrap().powi(2);
        let deltas: Vec<Vec<f64>> =
            (0..3).map(|s| (0..4).map(|r| (points[s] + shared[r] + own[s][r]) as f32 as f64).collect()).collect();
        let d: Vec<f64> = (0..4).map(|r| deltas.iter().map(|x| x[r]).sum::<f64>() / 3.0).collect();
        let v_seed = deltas.iter().map(|x| f(x)).sum::<f64>() / 3.0;
        let v_id = (3.0 * f(&d) - v_seed) / 2.0;
        let between = f(&points) / 3.0;
        assert!(v_id > 0.0 && v_id < f(&d), "{v_id}");
        assert!((c.se - (between + v_id).sqrt()).abs() < 1e-15, "{}", c.se);
        let w = TPlusNormal::new(between.sqrt(), 2.0, v_id.sqrt());
        let half = w.two_sided_quantile(0.05);
        assert!(
            (c.interval.lo - (c.estimate - half)).abs() < 1e-14 && (c.interval.hi - (c.estimate + half)).abs() < 1e-14
        );
        assert!((c.p - w.two_sided_tail(c.estimate.abs())).abs() < 1e-14);
        // Between the normal's and t_2's half-widths; df between 2 and ∞ reproduces it.
        assert!(half > normal_quantile(0.975) * c.se && half < student_t_quantile(0.975, 2.0) * c.se);
        assert!(c.df > 2.0 && c.df.is_finite());
        assert!((student_t_quantile(0.975, c.df) * c.se - half).abs() < 1e-9 * half, "{}", c.df);
    }

    #[test]
    fn t_plus_normal_reduces_to_its_parts() {
        // c = 0: the scaled t; b = 0: the scaled normal; tiny c or b: close to them through the
        // quadrature (with b = 1e-12 the t part matters only where χ²_ν < 1e-23, P < 1e-11).
        for nu in [1.0, 2.0, 4.0, 30.0] {
            let t = TPlusNormal::new(0.3, nu, 0.0);
            assert_eq!(t.two_sided_tail(0.6), 2.0 * student_t_cdf(-2.0, nu));
            assert_eq!(t.two_sided_quantile(0.05), 0.3 * student_t_quantile(0.975, nu));
            let near_t = TPlusNormal::new(0.3, nu, 1e-6);
            assert!((near_t.two_sided_tail(0.6) - 2.0 * student_t_cdf(-2.0, nu)).abs() < 1e-9);
            let q = near_t.two_sided_quantile(0.05);
            assert!((q - 0.3 * student_t_quantile(0.975, nu)).abs() < 1e-8 * q, "ν {nu}: {q}");
            assert!((near_t.two_sided_tail(q) - 0.05).abs() < 1e-12);
            let near_normal = TPlusNormal::new(1e-12, nu, 0.3);
            assert!((near_normal.two_sided_tail(0.6) - 2.0 * normal_cdf(-2.0)).abs() < 1e-9);
        }
        let z = TPlusNormal::new(0.0, 3.0, 0.5);
        assert_eq!(z.two_sided_tail(1.0), 2.0 * normal_cdf(-2.0));
        assert_eq!(z.two_sided_quantile(0.05), 0.5 * normal_quantile(0.975));
        // Large ν: the t is nearly normal, so W is nearly N(0, b² + c²).
        let big = TPlusNormal::new(0.3, 1e6, 0.4);
        assert!((big.two_sided_tail(0.5) - 2.0 * normal_cdf(-1.0)).abs() < 1e-6);
    }
}
