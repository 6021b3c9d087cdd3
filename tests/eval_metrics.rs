//! The protocols' metrics on hand-built cases whose answers are worked out here: ROC read-outs,
//! LFW's k-fold accuracy and its variants, MegaFace rank-1 and TAR@FAR (streamed in blocks),
//! IJB-C pooling, 1:1 and 1:N.

mod common;

use common::at_angles;
use p2sbench::metrics::ijbc::meta::{PairList, TemplateSubjects};
use p2sbench::metrics::ijbc::{self, IjbcProtocol, OneToN, PoolOptions};
use p2sbench::metrics::lfw::{self, Distance, LfwOptions, ThresholdGrid};
use p2sbench::metrics::megaface::{self, DistractorSets, InMemory, MegafaceOptions};
use p2sbench::metrics::roc::{negatives_needed, FarReadout, Roc, TopScores};
use p2sbench::metrics::verification::{fold_bounds, Pair};
use p2sbench::metrics::Features;
use rand::{Rng, SeedableRng};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn roc_points_readouts_and_auc() {
    // G 0.9, N 0.8, G 0.7, N 0.6, G 0.5, N 0.4: a staircase, every point a corner.
    let scores = [0.9f32, 0.8, 0.7, 0.6, 0.5, 0.4];
    let genuine = [true, false, true, false, true, false];
    let roc = Roc::from_scores(&scores, &genuine, true);
    assert_eq!(roc.fps, vec![0, 0, 1, 1, 2, 2, 3]);
    assert_eq!(roc.tps, vec![0, 1, 1, 2, 2, 3, 3]);
    assert_eq!(roc.thresholds[0], f32::INFINITY);
    // FAR 0.3: the nearest points are at FAR 1/3; the later (TAR 2/3) wins. At most 0.3: FAR 0, TAR 1/3.
    let near = roc.tar_at_far(0.3, FarReadout::Nearest).unwrap();
    assert!(close(near.tar, 2.0 / 3.0) && close(near.far, 1.0 / 3.0));
    assert_eq!(near.threshold, 0.7);
    assert!(close(roc.tar_at_far(0.3, FarReadout::AtMost).unwrap().tar, 1.0 / 3.0));
    assert!(close(roc.tar_at_far(0.1, FarReadout::Nearest).unwrap().tar, 1.0 / 3.0));
    // AUC = P(genuine > impostor) = (3 + 2 + 1) / 9.
    assert!(close(roc.auc().unwrap(), 6.0 / 9.0));

    // sklearn's drop_intermediate removes collinear points only.
    let roc = Roc::from_scores(&[0.9, 0.8, 0.7, 0.6, 0.5], &[true, true, true, false, false], true);
    assert_eq!((roc.fps, roc.tps), (vec![0, 0, 0, 2], vec![0, 1, 3, 3]));
    let roc = Roc::from_scores(&[0.9, 0.8, 0.7, 0.6, 0.5], &[true, true, true, false, false], false);
    assert_eq!(roc.fps.len(), 6);
    // Dropping matters to the nearest read-out, as in insightface: G 0.9, N 0.8, N 0.7, N 0.6, G 0.5
    // at FAR 0.5. All points: FAR ⅓ and ⅔ are equally near; the later (⅔, TAR ½) wins. Without the
    // collinear (⅓, ½) and (⅔, ½), FAR 0 and 1 are equally near; the later (1, TAR 1) wins.
    let (s5, g5) = ([0.9, 0.8, 0.7, 0.6, 0.5], [true, false, false, false, true]);
    let kept = Roc::from_scores(&s5, &g5, true);
    assert_eq!((kept.fps.clone(), kept.tps.clone()), (vec![0, 0, 3, 3], vec![0, 1, 1, 2]));
    assert_eq!(kept.tar_at_far(0.5, FarReadout::Nearest).unwrap().tar, 1.0);
    assert_eq!(Roc::from_scores(&s5, &g5, false).tar_at_far(0.5, FarReadout::Nearest).unwrap().tar, 0.5);
    // Tied scores make one point.
    let roc = Roc::from_scores(&[0.5, 0.5], &[true, false], true);
    assert_eq!((roc.fps, roc.tps), (vec![0, 1], vec![0, 1]));
    assert!(Roc::from_scores(&[0.5], &[true], true).tar_at_far(0.1, FarReadout::Nearest).is_none());
}

#[test]
fn partial_curves_from_top_negatives_match_the_full_curve() {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let pos: Vec<f32> = (0..300).map(|_| r.gen_range(0.2..1.0)).collect();
    let neg: Vec<f32> = (0..20_000).map(|_| r.gen_range(-1.0..0.6)).collect();
    let scores: Vec<f32> = pos.iter().chain(&neg).copied().collect();
    let genuine: Vec<bool> = (0..scores.len()).map(|i| i < pos.len()).collect();
    // Without drop_intermediate the partial curve is the full curve's upper part, point for point.
    let full = Roc::from_scores(&scores, &genuine, false);
    for far in [1e-4, 5e-4, 1e-3, 3.3e-3, 1e-2] {
        let k = negatives_needed(far, neg.len() as u64);
        let mut top = TopScores::new(k);
        top.offer(&neg);
        let part = Roc::from_top(&pos, &top.into_sorted(), neg.len() as u64);
        for readout in [FarReadout::Nearest, FarReadout::AtMost] {
            let (a, b) = (full.tar_at_far(far, readout).unwrap(), part.tar_at_far(far, readout).unwrap());
            assert_eq!((a.tar, a.far, a.threshold), (b.tar, b.far, b.threshold), "far {far} {readout:?}");
        }
    }
    // Too few negatives kept: no answer rather than a wrong one.
    let mut top = TopScores::new(3);
    top.offer(&neg);
    let part = Roc::from_top(&pos, &top.into_sorted(), neg.len() as u64);
    assert!(part.tar_at_far(1e-3, FarReadout::AtMost).is_none());
    assert!(part.tar_at_far(1e-3, FarReadout::Nearest).is_none());
}

#[test]
fn top_scores_keep_the_highest_and_merge_exactly() {
    let mut a = TopScores::new(4);
    let mut b = TopScores::new(4);
    for v in [3.0f32, 9.0, 1.0, 7.0, 5.0] {
        a.push(v);
    }
    b.offer(&[8.0, 2.0, 6.0]);
    assert_eq!(a.threshold(), 3.0);
    a.merge(b);
    assert_eq!(a.into_sorted(), vec![9.0, 8.0, 7.0, 6.0]);
}

#[test]
fn lfw_kfold_accuracy_worked_example_and_variants() {
    // Two folds of 2 matched + 2 mismatched pairs, squared L2 distances chosen between grid points:
    // fold 1: same 0.105, 0.505; different 1.005, 0.305. Fold 2: same 0.075, 1.205; different 2.005, 1.505.
    let dist = [0.105, 0.505, 1.005, 0.305, 0.075, 1.205, 2.005, 1.505];
    let same = [true, true, false, false, true, true, false, false];
    // Feature pairs with those distances: angle θ with 2 − 2 cos θ = d.
    let angles: Vec<f64> = dist.iter().flat_map(|&d: &f64| [0.0, (1.0 - d / 2.0).acos().to_degrees()]).collect();
    let features = Features::new(16, 2, at_angles(&angles));
    let pairs: Vec<Pair> = (0..8).map(|k| Pair { a: 2 * k, b: 2 * k + 1, same: same[k] }).collect();
    let opts = LfwOptions { folds: 2, ..LfwOptions::default() };
    let (acc, result) = lfw::evaluate(&features, &pairs, &opts);
    // Held fold 1: fold 2 is separable for 1.205 < t ≤ 1.505; the first grid value is 1.21, where
    // fold 1 gets its two matched pairs right and both mismatched pairs wrong: 0.5.
    // Held fold 2: on fold 1 the best accuracy (0.75) is first reached at t = 0.11, where fold 2
    // gets 0.075 and both mismatched pairs right: 0.75.
    assert_eq!(acc.thresholds.len(), 2);
    assert!(close(acc.thresholds[0], 1.21) && close(acc.thresholds[1], 0.11), "{:?}", acc.thresholds);
    assert_eq!(acc.per_fold, vec![0.5, 0.75]);
    assert!(close(acc.mean, 0.625) && close(acc.std, 0.125));
    assert_eq!(result.get("accuracy_mean"), Some(0.625));
    assert_eq!(result.get("accuracy_std"), Some(0.125));

    // Cosine distance is half the squared L2 one on unit vectors: the same accuracies on a halved grid.
    let grid: ThresholdGrid = "0:2:0.005".parse().unwrap();
    let cos = LfwOptions { distance: Distance::Cosine, thresholds: grid, folds: 2 };
    let (acc_cos, _) = lfw::evaluate(&features, &pairs, &cos);
    assert_eq!(acc_cos.per_fold, acc.per_fold);
    assert!(close(acc_cos.thresholds[0], 0.605) && close(acc_cos.thresholds[1], 0.055));

    // The default grid is numpy's arange(0, 4, 0.01); folds split as sklearn's KFold.
    let g = ThresholdGrid::default().values();
    assert_eq!((g.len(), g[0], g[399]), (400, 0.0, 3.99));
    assert_eq!([fold_bounds(7, 3, 0), fold_bounds(7, 3, 1), fold_bounds(7, 3, 2)], [(0, 3), (3, 5), (5, 7)]);
    assert!("4:0:0.1".parse::<ThresholdGrid>().is_err());
}

/// Probes of identity 0 at 0° and 20°, identity 1 at 90° and 130°; distractors at 45°, 100°,
/// 200°, 300°.
fn megaface_case() -> (Features, Vec<u32>, Vec<f32>) {
    (
        Features::new(4, 2, at_angles(&[0.0, 20.0, 90.0, 130.0])),
        vec![0, 0, 1, 1],
        at_angles(&[45.0, 100.0, 200.0, 300.0]),
    )
}

#[test]
fn megaface_rank1_and_tar_worked_example() {
    let (probes, ids, distractors) = megaface_case();
    let source = InMemory { data: &distractors, dim: 2 };
    // Sets: the first distractor, the first two, all four.
    let sets = DistractorSets::prefixes(&[1, 2, 4], 4);
    // Rank-1 pairs: (0°→20°) cos 20° = 0.940 against the nearest distractor of 0°; (20°→0°) 0.940 vs
    // 20°'s; (90°→130°) and (130°→90°) cos 40° = 0.766 vs 90°'s and 130°'s nearest.
    // Set {45°}: 0.940 > cos 45°, 0.940 > cos 25°, 0.766 > cos 45°, 0.766 > cos 85°: 4/4.
    // Sets with 100°: 90° has cos 10° = 0.985 and 130° has cos 30° = 0.866 above 0.766: 2/4.
    // TAR at FAR 0.18 of 16 negatives: at most 2 negatives may pass (0.985 and 0.906 pass above
    // 0.866): positives above 0.866 are 1 of 2 → 0.5; the nearest point (FAR 3/16) accepts both → 1.0.
    for block in [1, 3, 4096] {
        for readout in [FarReadout::AtMost, FarReadout::Nearest] {
            let opts = MegafaceOptions { far: 0.18, readout, block };
            let out = megaface::evaluate(&probes, &ids, &source, &sets, &opts).unwrap();
            let rank1: Vec<f64> = out.iter().map(|o| o.rank1).collect();
            assert_eq!(rank1, vec![1.0, 0.5, 0.5], "block {block}");
            assert_eq!(out.iter().map(|o| o.distractors).collect::<Vec<_>>(), vec![1, 2, 4]);
            let want = if readout == FarReadout::AtMost { 0.5 } else { 1.0 };
            assert_eq!(out[2].tar, Some(want), "block {block} {readout:?}");
            let r = megaface::result(&out, &opts, "test", "raw");
            assert_eq!(r.get("rank1@distractors=1"), Some(1.0));
            assert_eq!(r.get("rank1@distractors=4"), Some(0.5));
            assert_eq!(r.get("tar@far=0.18"), Some(want));
        }
    }
    // Non-nested sets through membership masks: set 0 = {100°}, set 1 = {45°, 200°, 300°}.
    let sets = DistractorSets { names: vec!["a".into(), "b".into()], masks: Some(vec![0b10, 0b01, 0b10, 0b10]) };
    let out =
        megaface::evaluate(&probes, &ids, &source, &sets, &MegafaceOptions { block: 2, ..Default::default() }).unwrap();
    // Set {100°}: 0.940 pairs pass (0° and 20° are far from 100°), 90° fails, 130° fails: 0.5.
    // Set {45°, 200°, 300°}: the 0.940 pairs pass (nearest cos 45°, cos 25°), 0.766 > cos 45°, > cos 85°: 1.0.
    assert_eq!((out[0].rank1, out[1].rank1), (0.5, 1.0));
}

#[test]
fn megaface_noisy_probes_take_their_identity_centre() {
    let mut probes = Features::new(3, 2, at_angles(&[0.0, 90.0, 45.0]));
    let replaced = megaface::replace_noisy_probes(&mut probes, &[0, 0, 0], &[false, false, true]);
    assert_eq!(replaced, 1);
    let c = (0.5f32).sqrt();
    assert!((probes.row(2)[0] - c).abs() < 1e-6 && (probes.row(2)[1] - c).abs() < 1e-6);
}

#[test]
fn ijbc_pooling_media_then_template() {
    // Template 1: media 10 holds (2, 0) and (0, 1), media 11 holds (1, 0). Template 2: (0, 3).
    let features = Features::new(4, 2, vec![2.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 3.0]);
    let (templates, medias) = (vec![1, 1, 1, 2], vec![10, 10, 11, 12]);
    let unit = |x: f64, y: f64| {
        let n = (x * x + y * y).sqrt();
        [(x / n) as f32, (y / n) as f32]
    };
    let check = |opts: &PoolOptions, want: [f32; 2]| {
        let t = ijbc::pool(&features, &templates, &medias, opts);
        assert_eq!(t.ids, vec![1, 2]);
        let got = t.features.row(t.row_of(1).unwrap());
        assert!((got[0] - want[0]).abs() < 1e-6 && (got[1] - want[1]).abs() < 1e-6, "{got:?} vs {want:?}");
        assert_eq!(t.features.row(t.row_of(2).unwrap()), &[0.0, 1.0]);
        assert!(t.row_of(3).is_none());
    };
    // Normalised first: media 10 = mean((1,0), (0,1)) = (0.5, 0.5); + (1, 0) = (1.5, 0.5).
    check(&PoolOptions::default(), unit(1.5, 0.5));
    // Norms kept: media 10 = (1, 0.5); + (1, 0) = (2, 0.5).
    check(&PoolOptions { keep_norm: true, detector_scores: None }, unit(2.0, 0.5));
    // Weighted by detector scores 0.5, 1, 0.25 (normalised first): (0.25, 0.5) + (0.25, 0) = (0.5, 0.5).
    check(&PoolOptions { keep_norm: false, detector_scores: Some(vec![0.5, 1.0, 0.25, 1.0]) }, unit(0.5, 0.5));
}

#[test]
fn ijbc_one_to_one_and_one_to_n_worked_example() {
    // One image per template; template t at angle a_t. Templates 1..=5 at 0°, 25.84°, 36.87°, 45.57°, 84.26°.
    let deg = |c: f64| c.acos().to_degrees();
    let angles = [0.0, deg(0.9), deg(0.8), deg(0.7), deg(0.1)];
    let features = Features::new(5, 2, at_angles(&angles));
    // Genuine pairs (1,2) 0.9 and (1,4) 0.7; impostors (1,3) 0.8, (1,5) 0.1 and
    // (2,5) cos(84.26° − 25.84°) = cos 58.42° ≈ 0.524.
    let pairs =
        PairList { t1: vec![1, 1, 1, 1, 2], t2: vec![2, 3, 4, 5, 5], genuine: vec![true, false, true, false, false] };
    let protocol = IjbcProtocol { templates: vec![1, 2, 3, 4, 5], medias: vec![1, 2, 3, 4, 5], pairs, one_to_n: None };
    let r = ijbc::evaluate(&protocol, &features, &PoolOptions::default(), FarReadout::Nearest);
    // Curve (after dropping collinear points): (0,0) (0,½)@0.9 (⅓,½)@0.8 (⅓,1)@0.7 (1,1).
    // Every FAR ≤ 0.1 is nearest FAR 0, whose later point has TAR ½.
    for far in ["1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1"] {
        assert_eq!(r.get(&format!("tar@far={far}")), Some(0.5), "{far}");
    }
    // AUC: 0.9 beats all three impostors, 0.7 beats 0.524 and 0.1: 5/6.
    assert!(close(r.get("auc").unwrap(), 5.0 / 6.0));
    let at_most = ijbc::evaluate(&protocol, &features, &PoolOptions::default(), FarReadout::AtMost);
    assert_eq!(at_most.get("tar@far=1e-1"), Some(0.5));

    // 1:N. Gallery G1 enrols subject 7 (template 1, 0°) and subject 8 (template 5, 84.26°); G2
    // enrols subject 9 (template 4, 45.57°). Probes: template 2 (subject 7, 25.84°), template 3
    // (subject 8, 36.87°).
    let g1 = TemplateSubjects { templates: vec![1, 5], subjects: vec![7, 8] };
    let g2 = TemplateSubjects { templates: vec![4], subjects: vec![9] };
    let probes = TemplateSubjects { templates: vec![2, 3], subjects: vec![7, 8] };
    let protocol = IjbcProtocol { one_to_n: Some(OneToN { galleries: [g1, g2], probes }), ..protocol };
    let r = ijbc::evaluate(&protocol, &features, &PoolOptions::default(), FarReadout::Nearest);
    // G1: probe 2 (25.84°): mate 0° scores 0.9 > 0.524 (84.26°): rank 1. Probe 3 (36.87°): mate
    // 84.26° scores cos 47.39° = 0.677 < 0° at 0.8: rank 2. No non-mated probes: no TPIR.
    assert_eq!(r.get("g1/rank1"), Some(0.5));
    assert_eq!(r.get("g1/rank5"), Some(1.0));
    assert_eq!(r.get("g1/tpir@fpir=1e-2"), None);
    // G2 enrols neither probe's subject: no mated probes, no metrics.
    assert_eq!(r.get("g2/rank1"), None);
    assert_eq!(r.get("rank1"), None);
    let rows = r.rows();
    assert!(rows.iter().any(|r| r.variant.ends_with("; part=g1") && r.metric == "rank1" && r.value == 0.5));
}

#[test]
fn ijbc_tpir_threshold_from_non_mated_top_scores() {
    // Gallery: subject 1 at 0°, subject 2 at 90°. Mated probes: subject 1 at 10° (0.985, rank 1) and
    // at 32° (0.848, rank 1); subject 2 at 50° (cos 40° = 0.766 > cos 50° = 0.643, rank 1).
    // Non-mated probes at 5° (top 0.996), 60° (top 0.866), 135° (top 0.707), 180° (top 0.0).
    let deg = [0.0, 90.0, 10.0, 32.0, 50.0, 5.0, 60.0, 135.0, 180.0];
    let features = Features::new(9, 2, at_angles(&deg));
    let templates: Vec<u32> = (1..=9).collect();
    let gallery = TemplateSubjects { templates: vec![1, 2], subjects: vec![1, 2] };
    let probes = TemplateSubjects { templates: vec![3, 4, 5, 6, 7, 8, 9], subjects: vec![1, 1, 2, 3, 4, 5, 6] };
    let t = ijbc::pool(&features, &templates, &templates, &PoolOptions::default());
    let m = ijbc::one_to_n_gallery(&t, &gallery, &probes);
    let get = |name: &str| m.iter().find(|(n, _)| n == name).map(|p| p.1);
    assert_eq!(get("rank1"), Some(1.0));
    // 4 non-mated probes: FPIR 1e-1 → index max(⌊0.4⌋ − 1, 0) = 0 → threshold 0.996 (the highest):
    // no mated probe scores above it. FPIR 1e-2 likewise.
    assert_eq!(get("tpir@fpir=1e-1"), Some(0.0));
    // Without the 5° probe the threshold is the highest of 0.866, 0.707, 0.0: only the 0.985 mate
    // scores above it: TPIR 1/3.
    let probes = TemplateSubjects { templates: vec![3, 4, 5, 7, 8, 9], subjects: vec![1, 1, 2, 4, 5, 6] };
    let m = ijbc::one_to_n_gallery(&t, &gallery, &probes);
    assert!(close(m.iter().find(|(n, _)| n == "tpir@fpir=1e-1").unwrap().1, 1.0 / 3.0));
}
