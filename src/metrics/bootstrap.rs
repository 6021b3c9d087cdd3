//! 95 % intervals of the protocols' metrics by bootstrap over the held-out identities, the
//! independent unit of a face protocol (DESIGN.md, "Statistics").
//!
//! Each resample draws the units with replacement ([`crate::stats::resample_counts`]: unit `u`
//! taken `w_u` times) and recomputes the metric with every item weighted by its units:
//!
//! - a pair (LFW pairs, IJB-C 1:1 template pairs, MegaFace probe pairs) of two units `a ≠ b`
//!   counts `w_a · w_b` times (each copy of `a` against each copy of `b`), a pair within one unit
//!   `w_a` times (the pairs of each copy);
//! - a MegaFace probe × distractor comparison and a 1:N search count as their probe's unit; the
//!   distractors and galleries are the protocol's fixed galleries and are not resampled (a
//!   duplicated gallery identity would tie with its own copy).
//!
//! Weighted items are exactly what rebuilding the pairs, templates and probes of the resampled
//! identities would give, without building them: a weight of 1 everywhere reproduces the point
//! estimate (tested), and a weight of 0 leaves the item out as scikit-learn's `sample_weight`
//! does. Resample `b` draws the same units for every trial evaluated on the same identities
//! (the seed is `data.seed`), so two trials' replicates pair up: the paired comparisons of the
//! report rest on that.
//!
//! The unit is the identity wherever the protocol knows identities (the built-in protocols,
//! LFW's pairs.txt names, MegaFace's FaceScrub ids, IJB-C's 1:N subjects). Where it does not,
//! the unit is the nearest independent thing and is recorded: an insightface `.bin` pack holds
//! no identities (unit: the pair), and IJB-C's 1:1 meta files tie no subject to a template
//! (unit: the template).

use super::ijbc::{self, Search};
use super::megaface::SetOutcome;
use super::roc::{sorted_scores, FarReadout, Roc};
use super::verification::{fold_bounds, Pair};
use super::{rate_label, ProtocolResult};
use crate::stats;
use rayon::prelude::*;

/// How many resamples, drawn from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resampling {
    pub resamples: usize,
    pub seed: u64,
}

/// Protocol streams, so that the protocols' draws are independent of each other.
const LFW_STREAM: u64 = 0x4c46_5700;
const MEGAFACE_STREAM: u64 = 0x4d45_4741;
const IJBC_STREAM: u64 = 0x494a_4243;

/// The weight of a pair of units under unit weights `w`.
#[inline]
fn pair_weight(w: &[u32], a: u32, b: u32) -> u64 {
    if a == b {
        w[a as usize] as u64
    } else {
        w[a as usize] as u64 * w[b as usize] as u64
    }
}

/// The unit weights of every resample, in order.
fn draws(units: usize, r: Resampling, stream: u64) -> impl IndexedParallelIterator<Item = Vec<u32>> {
    (0..r.resamples).into_par_iter().map(move |b| stats::resample_counts(units, r.seed ^ stream, b as u64))
}

/// Records `replicates` of metric `name` and their percentile interval.
fn record(result: &mut ProtocolResult, name: &str, replicates: Vec<f32>, unit: &str) {
    let finite: Vec<f64> = replicates.iter().filter(|v| v.is_finite()).map(|&v| v as f64).collect();
    let d = result.detail_mut(name);
    if finite.len() >= 2 {
        let i = stats::percentile_interval(&finite, stats::LEVEL);
        d.interval = Some((i.lo, i.hi));
    }
    d.replicates = replicates;
    d.unit = Some(unit.to_string());
}

/// The k-fold accuracy of [`super::verification::kfold_accuracy`] with pair `i` counted
/// `weight(i)` times, on distances pre-binned against the threshold grid: `bins[i]` is the
/// number of thresholds ≤ `dist[i]` (so "same" is predicted at threshold `j` iff `bins[i] ≤ j`).
/// Folds stay where the pairs are; a fold left without weight is skipped. `None` when every
/// fold is.
pub fn weighted_kfold_accuracy(
    bins: &[u32],
    same: &[bool],
    folds: usize,
    thresholds: usize,
    weight: impl Fn(usize) -> u64,
) -> Option<f64> {
    let n = bins.len();
    let width = thresholds + 1;
    // Per fold: weighted counts of same and different pairs per bin.
    let mut same_hist = vec![0u64; folds * width];
    let mut diff_hist = vec![0u64; folds * width];
    for k in 0..folds {
        let (lo, hi) = fold_bounds(n, folds, k);
        for i in lo..hi {
            let w = weight(i);
            let h = if same[i] { &mut same_hist } else { &mut diff_hist };
            h[k * width + bins[i] as usize] += w;
        }
    }
    let total = |h: &[u64], j: usize| -> u64 { (0..folds).map(|k| h[k * width + j]).sum() };
    let all_same: Vec<u64> = (0..width).map(|j| total(&same_hist, j)).collect();
    let all_diff: Vec<u64> = (0..width).map(|j| total(&diff_hist, j)).collect();
    let (mut sum, mut used) = (0.0, 0usize);
    for k in 0..folds {
        let fold_same = &same_hist[k * width..(k + 1) * width];
        let fold_diff = &diff_hist[k * width..(k + 1) * width];
        let fold_n: u64 = fold_same.iter().chain(fold_diff).sum();
        if fold_n == 0 {
            continue;
        }
        // Correct predictions on the other folds at each threshold j:
        // same pairs with bin ≤ j, plus different pairs with bin > j.
        let train_diff_total: u64 = (0..width).map(|j| all_diff[j] - fold_diff[j]).sum();
        let (mut same_le, mut diff_le) = (0u64, 0u64);
        let mut best = (None::<u64>, 0usize);
        for j in 0..thresholds {
            same_le += all_same[j] - fold_same[j];
            diff_le += all_diff[j] - fold_diff[j];
            let correct = same_le + (train_diff_total - diff_le);
            if best.0.is_none_or(|b| correct > b) {
                best = (Some(correct), j);
            }
        }
        let j = best.1;
        let held_same: u64 = fold_same[..=j].iter().sum();
        let held_diff: u64 = fold_diff[j + 1..].iter().sum();
        sum += (held_same + held_diff) as f64 / fold_n as f64;
        used += 1;
    }
    (used > 0).then(|| sum / used as f64)
}

/// The bin of each distance: the number of `thresholds` (ascending) at or below it.
pub fn threshold_bins(dist: &[f64], thresholds: &[f64]) -> Vec<u32> {
    dist.iter().map(|&d| thresholds.partition_point(|&t| t <= d) as u32).collect()
}

/// LFW: the interval of `accuracy_mean`. `units[i]` are the units of pair `i`'s two images
/// (`units` in all); `dist` the pairs' distances under the protocol's threshold grid.
#[allow(clippy::too_many_arguments)]
pub fn lfw(
    result: &mut ProtocolResult,
    pairs: &[Pair],
    dist: &[f64],
    thresholds: &[f64],
    folds: usize,
    units: &[(u32, u32)],
    unit_count: usize,
    unit: &str,
    r: Resampling,
) {
    if r.resamples == 0 || pairs.is_empty() || !thresholds.windows(2).all(|w| w[0] < w[1]) {
        return;
    }
    let bins = threshold_bins(dist, thresholds);
    let same: Vec<bool> = pairs.iter().map(|p| p.same).collect();
    let replicates: Vec<f32> = draws(unit_count, r, LFW_STREAM)
        .map(|w| {
            let acc = weighted_kfold_accuracy(&bins, &same, folds, thresholds.len(), |i| {
                pair_weight(&w, units[i].0, units[i].1)
            });
            acc.map_or(f32::NAN, |a| a as f32)
        })
        .collect();
    record(result, "accuracy_mean", replicates, unit);
}

/// The units of an IJB-C protocol: of each 1:1 template (by template id) and of each 1:N probe.
pub struct IjbcUnits<'a> {
    pub template: &'a dyn Fn(u32) -> u32,
    pub probe: &'a [u32],
    pub count: usize,
    /// What a unit is, for the 1:1 and the 1:N metrics.
    pub names: (&'a str, &'a str),
}

/// IJB-C: intervals of the 1:1 TAR@FAR and AUC and of the 1:N ranks and TPIR@FPIR (per gallery
/// and their mean).
pub fn ijbc(
    result: &mut ProtocolResult,
    protocol: &ijbc::IjbcProtocol,
    parts: &ijbc::Parts,
    readout: FarReadout,
    units: &IjbcUnits,
    r: Resampling,
) {
    if r.resamples == 0 {
        return;
    }
    let pairs = &protocol.pairs;
    let pair_units: Vec<(u32, u32)> =
        pairs.t1.iter().zip(&pairs.t2).map(|(&a, &b)| ((units.template)(a), (units.template)(b))).collect();
    let order = sorted_scores(&parts.scores, &pairs.genuine);
    let one_to_one: Vec<Vec<(String, f64)>> = draws(units.count, r, IJBC_STREAM)
        .map(|w| {
            let roc = Roc::from_sorted(
                &order,
                |i| {
                    let (a, b) = pair_units[i as usize];
                    pair_weight(&w, a, b)
                },
                true,
            );
            let mut out: Vec<(String, f64)> = ijbc::FARS
                .iter()
                .filter_map(|&far| Some((format!("tar@far={}", rate_label(far)), roc.tar_at_far(far, readout)?.tar)))
                .collect();
            out.extend(roc.auc().map(|a| ("auc".to_string(), a)));
            let searches: Option<Vec<Vec<(String, f64)>>> = parts.searches.as_ref().map(|galleries| {
                galleries
                    .iter()
                    .map(|s: &Vec<Search>| ijbc::one_to_n_metrics(s, |i| w[units.probe[i] as usize] as u64))
                    .collect()
            });
            if let Some(per) = searches {
                for (name, v1) in &per[0] {
                    if let Some((_, v2)) = per[1].iter().find(|(n, _)| n == name) {
                        out.push((name.clone(), (v1 + v2) / 2.0));
                    }
                }
                for (g, metrics) in per.iter().enumerate() {
                    out.extend(metrics.iter().map(|(n, v)| (format!("g{}/{n}", g + 1), *v)));
                }
            }
            out
        })
        .collect();
    let names: Vec<String> = result.metrics.iter().map(|(n, _)| n.clone()).collect();
    for name in names {
        let replicates: Vec<f32> = one_to_one
            .iter()
            .map(|rep| rep.iter().find(|(n, _)| *n == name).map_or(f32::NAN, |(_, v)| *v as f32))
            .collect();
        let one_to_n = name.starts_with("rank") || name.contains("tpir") || name.contains('/');
        record(result, &name, replicates, if one_to_n { units.names.1 } else { units.names.0 });
    }
}

/// MegaFace: intervals of rank-1 at every distractor set and of TAR@FAR at the largest, over
/// the probe identities (`probe_ids`, one per probe, `identities` in all).
pub fn megaface(
    result: &mut ProtocolResult,
    outcomes: &[SetOutcome],
    far: f64,
    readout: FarReadout,
    probe_ids: &[u32],
    identities: usize,
    r: Resampling,
) {
    if r.resamples == 0 || outcomes.is_empty() {
        return;
    }
    let largest =
        outcomes.iter().enumerate().max_by_key(|(_, o)| (o.distractors, o.name.parse::<usize>().unwrap_or(0)));
    let tar_name = format!("tar@far={}", rate_label(far));
    // The largest set's positives and kept negatives, sorted once; index < positives: a positive.
    let tar_input = largest.filter(|_| result.get(&tar_name).is_some()).map(|(s, o)| {
        let npos = o.parts.positives.len();
        let scores: Vec<f32> =
            o.parts.positives.iter().map(|p| p.0).chain(o.parts.top_negatives.iter().map(|n| n.0)).collect();
        let genuine: Vec<bool> = (0..scores.len()).map(|i| i < npos).collect();
        (s, npos, sorted_scores(&scores, &genuine))
    });
    let replicates: Vec<(Vec<f32>, f32)> = draws(identities, r, MEGAFACE_STREAM)
        .map(|w| {
            let probe_w = |p: usize| w[probe_ids[p] as usize] as u64;
            let rank1: Vec<f32> = outcomes
                .iter()
                .map(|o| {
                    let (mut hits, mut trials) = (0u64, 0u64);
                    for (p, &(h, t)) in o.parts.probe_hits.iter().enumerate() {
                        hits += probe_w(p) * h as u64;
                        trials += probe_w(p) * t as u64;
                    }
                    if trials > 0 {
                        (hits as f64 / trials as f64) as f32
                    } else {
                        f32::NAN
                    }
                })
                .collect();
            let tar = tar_input.as_ref().map_or(f32::NAN, |(s, npos, order)| {
                let o = &outcomes[*s];
                let negatives: u64 = (0..probe_ids.len()).map(|p| probe_w(p) * o.distractors as u64).sum();
                let weight = |i: u32| {
                    let i = i as usize;
                    if i < *npos {
                        w[o.parts.positives[i].1 as usize] as u64
                    } else {
                        probe_w(o.parts.top_negatives[i - npos].1 as usize)
                    }
                };
                let roc = Roc::from_top_sorted(order, weight, negatives, o.parts.partial);
                roc.tar_at_far(far, readout).map_or(f32::NAN, |t| t.tar as f32)
            });
            (rank1, tar)
        })
        .collect();
    for (s, o) in outcomes.iter().enumerate() {
        let reps = replicates.iter().map(|(rank1, _)| rank1[s]).collect();
        record(result, &format!("rank1@distractors={}", o.name), reps, "probe identity");
    }
    if tar_input.is_some() {
        record(result, &tar_name, replicates.iter().map(|(_, t)| *t).collect(), "probe identity");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::verification::{default_thresholds, kfold_accuracy};
    use rand::{Rng, SeedableRng};

    #[test]
    fn unit_weights_reproduce_the_kfold_accuracy() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for n in [20usize, 57, 600] {
            let same: Vec<bool> = (0..n).map(|i| (i / 5) % 2 == 0).collect();
            let dist: Vec<f64> =
                same.iter().map(|&s| if s { rng.gen_range(0.2..2.4) } else { rng.gen_range(1.0..3.9) }).collect();
            let t = default_thresholds();
            let want = kfold_accuracy(&dist, &same, 10, &t).mean;
            let got = weighted_kfold_accuracy(&threshold_bins(&dist, &t), &same, 10, t.len(), |_| 1).unwrap();
            assert_eq!(got, want, "n = {n}");
            // Doubling every weight changes nothing either.
            let doubled = weighted_kfold_accuracy(&threshold_bins(&dist, &t), &same, 10, t.len(), |_| 2).unwrap();
            assert_eq!(doubled, want);
        }
    }

    #[test]
    fn a_weighted_pair_is_that_many_copies() {
        // Weight 3 on pair 0 equals pair 0 written three times in its fold (folds re-cut to match).
        let dist = [0.5, 1.5, 0.7, 2.5, 0.9, 3.0];
        let same = [true, false, true, false, true, false];
        let t = default_thresholds();
        let got =
            weighted_kfold_accuracy(&threshold_bins(&dist, &t), &same, 2, t.len(), |i| if i == 0 { 3 } else { 1 });
        // Fold 0 = pairs 0..3 (pair 0 thrice), fold 1 = pairs 3..6: the same as 8 pairs cut 5 | 3.
        let dist8 = [0.5, 0.5, 0.5, 1.5, 0.7, 2.5, 0.9, 3.0];
        let same8 = [true, true, true, false, true, false, true, false];
        let bins8 = threshold_bins(&dist8, &t);
        let fold = |lo: usize, hi: usize| -> f64 {
            // Threshold chosen on the other fold, accuracy on this one, by brute force.
            let other: Vec<usize> = (0..8).filter(|&i| i < lo || i >= hi).collect();
            let correct = |ix: &[usize], j: usize| ix.iter().filter(|&&i| (bins8[i] as usize <= j) == same8[i]).count();
            let j = (0..t.len()).fold(0, |b, j| if correct(&other, j) > correct(&other, b) { j } else { b });
            correct(&(lo..hi).collect::<Vec<_>>(), j) as f64 / (hi - lo) as f64
        };
        assert_eq!(got, Some((fold(0, 5) + fold(5, 8)) / 2.0));
    }

    #[test]
    fn pair_weights_follow_the_units() {
        let w = [2, 0, 3];
        assert_eq!(pair_weight(&w, 0, 0), 2);
        assert_eq!(pair_weight(&w, 0, 2), 6);
        assert_eq!(pair_weight(&w, 1, 2), 0);
    }
}
