//! k-fold verification accuracy (the LFW protocol's metric), insightface's variant: squared L2
//! distance between L2-normalised features, thresholds 0.00..3.99 in steps of 0.01, contiguous
//! folds split as scikit-learn's `KFold(shuffle=False)` splits them (the first n mod k folds one
//! pair larger), the threshold that maximises accuracy on the other folds (first maximum on
//! ties), accuracy on the held fold; mean and population std over folds. Also the built-in
//! LFW-style pair construction from labelled images.

/// One pair: indices of the two feature rows and whether they show the same identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub same: bool,
}

/// The outcome of the k-fold protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldAccuracy {
    pub mean: f64,
    pub std: f64,
    pub per_fold: Vec<f64>,
    pub thresholds: Vec<f64>,
}

/// The default threshold grid: 0.00, 0.01, …, 3.99.
pub fn default_thresholds() -> Vec<f64> {
    (0..400).map(|i| i as f64 * 0.01).collect()
}

/// Squared L2 distance between the L2-normalised rows `a` and `b` of `features` ([n, dim]).
pub fn squared_l2_normalised(features: &[f32], dim: usize, a: usize, b: usize) -> f64 {
    let fa = &features[a * dim..(a + 1) * dim];
    let fb = &features[b * dim..(b + 1) * dim];
    let norm = |f: &[f32]| f.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt().max(1e-12);
    let (na, nb) = (norm(fa), norm(fb));
    fa.iter().zip(fb).map(|(&x, &y)| (x as f64 / na - y as f64 / nb).powi(2)).sum()
}

/// Accuracy of predicting "same" when distance < threshold.
fn accuracy(dist: &[f64], same: &[bool], threshold: f64) -> f64 {
    let correct = dist.iter().zip(same).filter(|(&d, &s)| (d < threshold) == s).count();
    correct as f64 / dist.len().max(1) as f64
}

/// Cosine distance 1 − cos(a, b) between rows `a` and `b` of `features` ([n, dim]).
pub fn cosine_distance(features: &[f32], dim: usize, a: usize, b: usize) -> f64 {
    let fa = &features[a * dim..(a + 1) * dim];
    let fb = &features[b * dim..(b + 1) * dim];
    let norm = |f: &[f32]| f.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt().max(1e-12);
    let dot: f64 = fa.iter().zip(fb).map(|(&x, &y)| x as f64 * y as f64).sum();
    1.0 - dot / (norm(fa) * norm(fb))
}

/// Half-open bounds of contiguous fold `k` of `folds` over `n` items, as scikit-learn's
/// `KFold(n_splits=folds, shuffle=False)`: the first `n % folds` folds hold one item more.
pub fn fold_bounds(n: usize, folds: usize, k: usize) -> (usize, usize) {
    let (base, extra) = (n / folds, n % folds);
    let lo = k * base + k.min(extra);
    (lo, lo + base + usize::from(k < extra))
}

/// k-fold accuracy over pair distances (`dist[i]` for pair i), contiguous folds.
pub fn kfold_accuracy(dist: &[f64], same: &[bool], folds: usize, thresholds: &[f64]) -> FoldAccuracy {
    let n = dist.len();
    let mut per_fold = Vec::with_capacity(folds);
    let mut chosen = Vec::with_capacity(folds);
    for k in 0..folds {
        let (lo, hi) = fold_bounds(n, folds, k);
        let train_d: Vec<f64> = dist[..lo].iter().chain(&dist[hi..]).copied().collect();
        let train_s: Vec<bool> = same[..lo].iter().chain(&same[hi..]).copied().collect();
        let mut best = (f64::NEG_INFINITY, thresholds[0]);
        for &t in thresholds {
            let acc = accuracy(&train_d, &train_s, t);
            if acc > best.0 {
                best = (acc, t);
            }
        }
        chosen.push(best.1);
        per_fold.push(accuracy(&dist[lo..hi], &same[lo..hi], best.1));
    }
    let mean = per_fold.iter().sum::<f64>() / folds as f64;
    let std = (per_fold.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / folds as f64).sqrt();
    FoldAccuracy { mean, std, per_fold, thresholds: chosen }
}

/// Builds an LFW-style pair list from labels: `folds` folds, each `per_fold` matched pairs
/// followed by `per_fold` mismatched pairs, deterministic from `seed`. Fewer pairs are drawn
/// when the identities cannot supply that many distinct ones.
pub fn lfw_style_pairs(labels: &[i64], folds: usize, per_fold: usize, seed: u64) -> Vec<Pair> {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut by_class: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let classes: Vec<&Vec<usize>> = by_class.values().collect();
    let mut matched: Vec<(usize, usize)> = Vec::new();
    for members in classes.iter().filter(|m| m.len() >= 2) {
        for i in 0..members.len() {
            for j in i + 1..members.len() {
                matched.push((members[i], members[j]));
            }
        }
    }
    matched.shuffle(&mut rng);
    let want = folds * per_fold;
    let per_fold = per_fold.min(matched.len() / folds).max(1);
    let mut seen = std::collections::BTreeSet::new();
    let mut mismatched = Vec::new();
    let mut tries = 0;
    while mismatched.len() < folds * per_fold && tries < want * 50 && classes.len() >= 2 {
        tries += 1;
        let ca = rng.gen_range(0..classes.len());
        let cb = rng.gen_range(0..classes.len());
        if ca == cb {
            continue;
        }
        let a = classes[ca][rng.gen_range(0..classes[ca].len())];
        let b = classes[cb][rng.gen_range(0..classes[cb].len())];
        if seen.insert((a.min(b), a.max(b))) {
            mismatched.push((a, b));
        }
    }
    let mut pairs = Vec::with_capacity(2 * folds * per_fold);
    for k in 0..folds {
        for &(a, b) in matched.iter().skip(k * per_fold).take(per_fold) {
            pairs.push(Pair { a, b, same: true });
        }
        for &(a, b) in mismatched.iter().skip(k * per_fold).take(per_fold) {
            pairs.push(Pair { a, b, same: false });
        }
    }
    pairs
}

/// The insightface LFW variant on features: distances, then [`kfold_accuracy`].
pub fn verify(features: &[f32], dim: usize, pairs: &[Pair], folds: usize) -> FoldAccuracy {
    let dist: Vec<f64> = pairs.iter().map(|p| squared_l2_normalised(features, dim, p.a, p.b)).collect();
    let same: Vec<bool> = pairs.iter().map(|p| p.same).collect();
    kfold_accuracy(&dist, &same, folds, &default_thresholds())
}
