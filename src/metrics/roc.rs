//! ROC curves and TAR @ FAR read-outs, shared by MegaFace, IJB-C and the plots.
//!
//! A curve follows scikit-learn's `roc_curve`, which insightface's `eval_ijbc.py` calls: one point
//! per distinct score (accept when score ≥ threshold), optionally without the collinear
//! intermediate points (`drop_intermediate`, sklearn's default), and a first point (0, 0) at an
//! infinite threshold. Two read-outs of TAR at a target FAR:
//!
//! - [`FarReadout::Nearest`] (insightface `eval_ijbc.py`): the point whose FAR is nearest the
//!   target; on equal distance the later point (higher TAR) wins.
//! - [`FarReadout::AtMost`]: the highest TAR among points whose FAR does not exceed the target —
//!   what a threshold fixed at that FAR gives.
//!
//! When there are too many negatives to keep (MegaFace: 3.5·10⁹), [`TopScores`] keeps only the
//! highest ones and [`Roc::from_top`] builds the exact part of the curve from them; a read-out
//! that would need a point beyond it returns `None` instead of a wrong number.

use rayon::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How TAR is read off the ROC curve at a target FAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FarReadout {
    /// The ROC point nearest the target FAR; ties go to the higher TAR (insightface eval_ijbc).
    Nearest,
    /// The highest TAR with FAR ≤ target (a threshold set at that FAR).
    AtMost,
}

impl FarReadout {
    pub fn name(self) -> &'static str {
        match self {
            FarReadout::Nearest => "nearest-roc-point",
            FarReadout::AtMost => "highest-tar-with-far-at-most-target",
        }
    }
}

/// A ROC curve as counts: point i accepts `fps[i]` of `negatives` and `tps[i]` of `positives`
/// at `thresholds[i]` (accept when score ≥ threshold). Point 0 is (0, 0) at +∞.
#[derive(Debug, Clone, PartialEq)]
pub struct Roc {
    pub fps: Vec<u64>,
    pub tps: Vec<u64>,
    pub thresholds: Vec<f32>,
    pub positives: u64,
    pub negatives: u64,
    /// Points beyond the curve's end accept at least this many negatives (partial curves);
    /// `None` when the curve is complete.
    pub unknown_from_fps: Option<u64>,
}

/// A TAR read-out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TarAtFar {
    pub tar: f64,
    /// The FAR of the point read.
    pub far: f64,
    pub threshold: f32,
}

impl Roc {
    /// The full curve of labelled scores (`true` = genuine pair).
    pub fn from_scores(scores: &[f32], genuine: &[bool], drop_intermediate: bool) -> Roc {
        Roc::from_sorted(&sorted_scores(scores, genuine), |_| 1, drop_intermediate)
    }

    /// The curve of `order` (scores sorted highest first, see [`sorted_scores`]), item `i`
    /// counted `weight(i)` times; items of weight 0 are left out, as scikit-learn's
    /// `roc_curve(sample_weight=…)` leaves them out.
    pub fn from_sorted(order: &[(f32, bool, u32)], weight: impl Fn(u32) -> u64, drop_intermediate: bool) -> Roc {
        let (mut positives, mut negatives) = (0u64, 0u64);
        for &(_, g, i) in order {
            if g {
                positives += weight(i);
            } else {
                negatives += weight(i);
            }
        }
        let mut roc = Roc {
            fps: vec![0],
            tps: vec![0],
            thresholds: vec![f32::INFINITY],
            positives,
            negatives,
            unknown_from_fps: None,
        };
        // One point per distinct score, then sklearn's drop rule, decided as the points stream by:
        // keep the first and last points and every point where the second difference of fps or
        // tps is non-zero.
        let mut prev: Option<(u64, u64, f32)> = None;
        let mut cur: Option<(u64, u64, f32)> = None;
        let keep = |roc: &mut Roc, p: (u64, u64, f32)| {
            roc.fps.push(p.0);
            roc.tps.push(p.1);
            roc.thresholds.push(p.2);
        };
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut pending = false;
        for (k, &(s, g, i)) in order.iter().enumerate() {
            let w = weight(i);
            if g {
                tp += w;
            } else {
                fp += w;
            }
            pending |= w > 0;
            if order.get(k + 1).is_some_and(|next| next.0.total_cmp(&s).is_eq()) || !pending {
                continue;
            }
            pending = false;
            let next = (fp, tp, s);
            if let Some(c) = cur {
                let collinear = prev.is_some_and(|a| next.0 + a.0 == 2 * c.0 && next.1 + a.1 == 2 * c.1);
                if !(drop_intermediate && collinear) {
                    keep(&mut roc, c);
                }
                prev = Some(c);
            }
            cur = Some(next);
        }
        if let Some(c) = cur {
            keep(&mut roc, c);
        }
        roc
    }

    /// The exact upper part of the curve from every positive score and only the highest
    /// negatives (`top_negatives`, any order) of `negatives` in all.
    pub fn from_top(positive_scores: &[f32], top_negatives: &[f32], negatives: u64) -> Roc {
        let scores: Vec<f32> = positive_scores.iter().chain(top_negatives).copied().collect();
        let genuine: Vec<bool> = std::iter::repeat_n(true, positive_scores.len())
            .chain(std::iter::repeat_n(false, top_negatives.len()))
            .collect();
        let order = sorted_scores(&scores, &genuine);
        Roc::from_top_sorted(&order, |_| 1, negatives, (top_negatives.len() as u64) < negatives)
    }

    /// [`Roc::from_top`] on `order` (positives and kept negatives, highest first), weighted as
    /// [`Roc::from_sorted`]; `negatives` is the weight of all negatives, kept or not, and
    /// `partial` says whether some were not kept.
    pub fn from_top_sorted(
        order: &[(f32, bool, u32)],
        weight: impl Fn(u32) -> u64,
        negatives: u64,
        partial: bool,
    ) -> Roc {
        let mut roc = Roc::from_sorted(order, &weight, false);
        let kept = roc.negatives;
        roc.negatives = negatives;
        if partial {
            // Below the lowest kept negative, unkept negatives (all ≤ it) would also be accepted.
            let lowest = order.iter().filter(|p| !p.1).map(|p| p.0).fold(f32::INFINITY, f32::min);
            let keep = roc.thresholds.iter().take_while(|&&t| t > lowest).count();
            roc.fps.truncate(keep);
            roc.tps.truncate(keep);
            roc.thresholds.truncate(keep);
            roc.unknown_from_fps = Some(kept);
        }
        roc
    }

    pub fn fpr(&self, i: usize) -> f64 {
        self.fps[i] as f64 / self.negatives as f64
    }

    pub fn tpr(&self, i: usize) -> f64 {
        self.tps[i] as f64 / self.positives as f64
    }

    /// TAR at `far` by `readout`; `None` without positives or negatives, or when a partial curve
    /// does not reach far enough to answer exactly.
    pub fn tar_at_far(&self, far: f64, readout: FarReadout) -> Option<TarAtFar> {
        if self.positives == 0 || self.negatives == 0 {
            return None;
        }
        let n = self.fps.len();
        let best = match readout {
            FarReadout::Nearest => {
                let mut best = 0;
                for i in 1..n {
                    if (self.fpr(i) - far).abs() <= (self.fpr(best) - far).abs() {
                        best = i;
                    }
                }
                if let Some(min_fps) = self.unknown_from_fps {
                    // Any point not on the curve is at least this far from the target.
                    if (self.fpr(best) - far).abs() >= min_fps as f64 / self.negatives as f64 - far {
                        return None;
                    }
                }
                best
            }
            FarReadout::AtMost => {
                if let Some(min_fps) = self.unknown_from_fps {
                    if min_fps as f64 / self.negatives as f64 <= far {
                        return None;
                    }
                }
                (0..n).rev().find(|&i| self.fpr(i) <= far)?
            }
        };
        Some(TarAtFar { tar: self.tpr(best), far: self.fpr(best), threshold: self.thresholds[best] })
    }

    /// Area under a complete curve (trapezoids over its points).
    pub fn auc(&self) -> Option<f64> {
        if self.unknown_from_fps.is_some() || self.positives == 0 || self.negatives == 0 {
            return None;
        }
        let mut area = 0.0;
        for i in 1..self.fps.len() {
            area += (self.fpr(i) - self.fpr(i - 1)) * (self.tpr(i) + self.tpr(i - 1)) / 2.0;
        }
        Some(area)
    }
}

/// Labelled scores (`true` = genuine) sorted highest first, as [`Roc::from_sorted`] takes them;
/// `.2` is the item's index in the input.
pub fn sorted_scores(scores: &[f32], genuine: &[bool]) -> Vec<(f32, bool, u32)> {
    assert_eq!(scores.len(), genuine.len());
    let mut order: Vec<(f32, bool, u32)> =
        scores.iter().zip(genuine).enumerate().map(|(i, (&s, &g))| (s, g, i as u32)).collect();
    order.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    order
}

/// How many of the highest negatives [`Roc::from_top`] needs to read TAR at `far` exactly with
/// either read-out, out of `negatives` in all.
pub fn negatives_needed(far: f64, negatives: u64) -> usize {
    ((2.0 * far * negatives as f64).floor() as u64 + 2).min(negatives) as usize
}

/// f32 with a total order, for heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Total(f32);
impl Eq for Total {}
impl PartialOrd for Total {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Total {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The `k` highest of a stream of scores (a bounded min-heap), each with a tag (MegaFace: the
/// probe it came from). Merging two is exact, so per-thread instances combine into the same
/// result in any order.
#[derive(Debug, Clone)]
pub struct TopScores {
    k: usize,
    heap: BinaryHeap<Reverse<(Total, u32)>>,
}

impl TopScores {
    pub fn new(k: usize) -> TopScores {
        TopScores { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    /// Scores at or below this cannot enter (−∞ until `k` are held).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |r| r.0 .0 .0)
        }
    }

    #[inline]
    pub fn push(&mut self, score: f32) {
        self.push_tagged(score, 0);
    }

    #[inline]
    pub fn push_tagged(&mut self, score: f32, tag: u32) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Reverse((Total(score), tag)));
        } else if score > self.threshold() {
            self.heap.pop();
            self.heap.push(Reverse((Total(score), tag)));
        }
    }

    /// Offers every score of `scores` above the current threshold.
    #[inline]
    pub fn offer(&mut self, scores: &[f32]) {
        self.offer_tagged(scores, 0);
    }

    /// [`TopScores::offer`], every score tagged `tag`.
    #[inline]
    pub fn offer_tagged(&mut self, scores: &[f32], tag: u32) {
        let mut t = self.threshold();
        for &s in scores {
            if s > t {
                self.push_tagged(s, tag);
                t = self.threshold();
            }
        }
    }

    pub fn merge(&mut self, other: TopScores) {
        for Reverse((Total(s), tag)) in other.heap {
            self.push_tagged(s, tag);
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The held scores, highest first.
    pub fn into_sorted(self) -> Vec<f32> {
        self.into_sorted_tagged().into_iter().map(|(s, _)| s).collect()
    }

    /// The held scores with their tags, highest first.
    pub fn into_sorted_tagged(self) -> Vec<(f32, u32)> {
        let mut v: Vec<(f32, u32)> = self.heap.into_iter().map(|Reverse((Total(s), tag))| (s, tag)).collect();
        v.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        v
    }
}
