//! Uncertainty of the protocols and of the report (issue 21): a weight in the identity bootstrap
//! is that many copies of the item (ROC, 1:N, MegaFace's partial curves), rates are flagged where
//! the protocol cannot resolve them, and end to end: intervals in evals.parquet, replicates in
//! bootstrap.parquet, `n/r` instead of an unresolvable number in the report, and "no detectable
//! difference" between one setting run under two names.

mod common;

use p2sbench::metrics::builtin::{ijbc_style, IjbcStyleOptions};
use p2sbench::metrics::ijbc::{self, PoolOptions, Search};
use p2sbench::metrics::roc::{sorted_scores, FarReadout, Roc};
use p2sbench::metrics::Features;
use p2sbench::store;
use rand::{Rng, SeedableRng};

fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// Scores with ties (rounded), labels, and small integer weights.
fn scored(n: usize, seed: u64) -> (Vec<f32>, Vec<bool>, Vec<u64>) {
    let mut r = rng(seed);
    let genuine: Vec<bool> = (0..n).map(|_| r.gen_bool(0.2)).collect();
    let scores = genuine
        .iter()
        .map(|&g| ((r.gen_range(0.0..1.0) + if g { 0.6 } else { 0.0 }) * 50.0f32).round() / 50.0)
        .collect();
    let weights = (0..n).map(|_| r.gen_range(0..4)).collect();
    (scores, genuine, weights)
}

#[test]
fn a_weighted_roc_is_the_roc_of_that_many_copies() {
    for seed in 0..20 {
        let (scores, genuine, weights) = scored(400, seed);
        let (mut s2, mut g2) = (Vec::new(), Vec::new());
        for i in 0..scores.len() {
            for _ in 0..weights[i] {
                s2.push(scores[i]);
                g2.push(genuine[i]);
            }
        }
        for drop in [false, true] {
            let weighted = Roc::from_sorted(&sorted_scores(&scores, &genuine), |i| weights[i as usize], drop);
            let copies = Roc::from_scores(&s2, &g2, drop);
            assert_eq!(weighted, copies, "seed {seed}, drop_intermediate {drop}");
            for far in [1e-3, 1e-2, 0.05, 0.1, 0.3] {
                for readout in [FarReadout::Nearest, FarReadout::AtMost] {
                    assert_eq!(weighted.tar_at_far(far, readout), copies.tar_at_far(far, readout));
                }
            }
        }
    }
}

#[test]
fn a_weighted_partial_curve_is_the_partial_curve_of_copies() {
    let (scores, genuine, weights) = scored(300, 7);
    let positives: Vec<usize> = (0..scores.len()).filter(|&i| genuine[i]).collect();
    let mut negatives: Vec<usize> = (0..scores.len()).filter(|&i| !genuine[i]).collect();
    negatives.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let kept = &negatives[..40];
    let negative_weight: u64 = negatives.iter().map(|&i| weights[i]).sum();
    let items: Vec<usize> = positives.iter().chain(kept).copied().collect();
    let order = sorted_scores(
        &items.iter().map(|&i| scores[i]).collect::<Vec<_>>(),
        &items.iter().map(|&i| genuine[i]).collect::<Vec<_>>(),
    );
    let weighted = Roc::from_top_sorted(&order, |k| weights[items[k as usize]], negative_weight, true);
    let copy = |ix: &[usize]| -> Vec<f32> {
        ix.iter().flat_map(|&i| std::iter::repeat_n(scores[i], weights[i] as usize)).collect()
    };
    let copies = Roc::from_top(&copy(&positives), &copy(kept), negative_weight);
    for far in [1e-3, 1e-2, 0.02, 0.05] {
        for readout in [FarReadout::Nearest, FarReadout::AtMost] {
            assert_eq!(weighted.tar_at_far(far, readout), copies.tar_at_far(far, readout), "far {far}");
        }
    }
}

#[test]
fn weighted_searches_are_copies_of_searches() {
    let mut r = rng(3);
    let searches: Vec<Search> = (0..200)
        .map(|i| {
            if r.gen_bool(0.3) {
                Search::NonMated { subject: i, top_score: r.gen_range(0.0..1.0) }
            } else {
                Search::Mated { subject: i, rank: r.gen_range(1..15), mate_score: r.gen_range(0.0..1.0) }
            }
        })
        .collect();
    let weights: Vec<u64> = (0..searches.len()).map(|_| r.gen_range(0..3)).collect();
    let copies: Vec<Search> =
        searches.iter().zip(&weights).flat_map(|(s, &w)| std::iter::repeat_n(*s, w as usize)).collect();
    assert_eq!(ijbc::one_to_n_metrics(&searches, |i| weights[i]), ijbc::one_to_n_metrics(&copies, |_| 1));
}

#[test]
fn rates_below_one_over_far_are_flagged_unresolvable() {
    // 12 identities × 3 templates: 594 impostor template pairs.
    let labels: Vec<i64> = (0..12).flat_map(|l| std::iter::repeat_n(l, 6)).collect();
    let opts = IjbcStyleOptions { templates_per_identity: 3, max_media_size: 2, max_impostor_pairs: 200_000 };
    let protocol = ijbc_style(&labels, &opts, 5);
    let mut r = rng(1);
    let f = Features::new(labels.len(), 8, (0..labels.len() * 8).map(|_| r.gen_range(-1.0..1.0)).collect());
    let result = ijbc::evaluate(&protocol, &f, &PoolOptions::default(), FarReadout::Nearest);
    let impostors = protocol.pairs.genuine.iter().filter(|g| !**g).count() as u64;
    assert_eq!(impostors, 594);
    for (far, resolvable) in [(1e-6, false), (1e-4, false), (1e-3, false), (1e-2, true), (1e-1, true)] {
        let d = &result.details[&format!("tar@far={}", p2sbench::metrics::rate_label(far))];
        assert_eq!((d.comparisons, d.resolvable), (Some(impostors), Some(resolvable)), "far {far}");
    }
    // 1:N: 12 identities in two galleries of 6; each probe is non-mated in one of them.
    let d = &result.details["g1/tpir@fpir=1e-2"];
    assert_eq!(d.resolvable, Some(false));
    assert_eq!(d.comparisons, Some(12));
    assert_eq!(result.details["g1/tpir@fpir=1e-1"].resolvable, Some(true));
}

const TWO_NAMES: &str = r#"name = "twonames"
description = "CosFace m=0.35 and the combined margin (1, 0, 0.35), which is the same loss"
[data]
identities = 12
heldout_identities = 30
images_per_identity = 6
image_size = 16
channels = 1
seed = 5
[model]
widths = [4, 8]
embedding = 16
[train]
epochs = 2
batch_size = 24
seeds = [1, 2]
threads = 1
[[loss]]
name = "cosface"
s = 16.0
m = 0.35
[[loss]]
name = "combined"
s = 16.0
m1 = 1.0
m2 = 0.0
m3 = 0.35
[eval]
protocols = ["lfw", "ijbc"]
bootstrap = 200
[eval.lfw]
pairs_per_fold = 100
[report]
baseline = "cosface"
"#;

/// Rows of the markdown table that follows `heading`.
fn table_after(md: &str, heading: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let rest = &md[md.find(heading).unwrap_or_else(|| panic!("{heading} not in the report"))..];
    let lines: Vec<&str> =
        rest.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).collect();
    let cells = |l: &str| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect::<Vec<_>>();
    (cells(lines[0]), lines[2..].iter().map(|l| cells(l)).collect())
}

#[test]
fn without_a_bootstrap_there_are_no_intervals_and_the_report_still_renders() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("twonames.toml");
    let text = TWO_NAMES.replace("bootstrap = 200", "bootstrap = 0").replace("seeds = [1, 2]", "seeds = [1]");
    std::fs::write(&spec, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            tmp.path().join("results").to_str().unwrap(),
            "--only",
            "loss=cosface",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trials = tmp.path().join("results/twonames/trials");
    let dir = std::fs::read_dir(&trials).unwrap().next().unwrap().unwrap().path();
    assert_eq!(store::read_parquet(&dir.join("bootstrap.parquet")).unwrap().height(), 0);
    let evals = store::read_parquet(&dir.join("evals.parquet")).unwrap();
    assert_eq!(evals.column("ci_lo").unwrap().null_count(), evals.height());
    let md = std::fs::read_to_string(tmp.path().join("results/twonames/report.md")).unwrap();
    let (header, rows) = table_after(&md, "## Results");
    let acc = header.iter().position(|h| h == "LFW accuracy (%)").unwrap();
    assert!(!rows[0][acc].contains('['), "no interval without a bootstrap: {rows:?}");
}

#[test]
fn one_setting_under_two_names_has_no_detectable_difference_and_every_number_its_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("twonames.toml");
    std::fs::write(&spec, TWO_NAMES).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["run", spec.to_str().unwrap(), "--out", tmp.path().join("results").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = tmp.path().join("results/twonames");

    // Every trial: intervals around the values, replicates of the last evaluation.
    for entry in std::fs::read_dir(root.join("trials")).unwrap() {
        let dir = entry.unwrap().path();
        let evals = store::read_parquet(&dir.join("evals.parquet")).unwrap();
        let metric = common::strings(&evals, "metric");
        let value: Vec<f64> = evals.column("value").unwrap().f64().unwrap().into_no_null_iter().collect();
        let lo: Vec<Option<f64>> = evals.column("ci_lo").unwrap().f64().unwrap().into_iter().collect();
        let hi: Vec<Option<f64>> = evals.column("ci_hi").unwrap().f64().unwrap().into_iter().collect();
        for i in 0..evals.height() {
            if metric[i] == "accuracy_mean" || metric[i] == "auc" {
                let (l, h) = (lo[i].unwrap(), hi[i].unwrap());
                assert!(l <= h && l <= value[i] + 0.05 && h >= value[i] - 0.05, "{}: {l} {} {h}", metric[i], value[i]);
            }
            if metric[i] == "accuracy_std" {
                assert!(lo[i].is_none(), "the fold std has no interval");
            }
        }
        let boot = store::read_parquet(&dir.join("bootstrap.parquet")).unwrap();
        assert!(boot.height() > 0);
        let lists = boot.column("replicates").unwrap().list().unwrap().clone();
        assert_eq!(lists.get_as_series(0).unwrap().len(), 200);
    }

    let md = std::fs::read_to_string(root.join("report.md")).unwrap();
    // IJB-C's built-in 1:1 protocol here has fewer than 10^4 impostor pairs: its TAR at
    // FAR = 1e-6 … 1e-4 is printed as n/r in every row, with the count in a note.
    let (header, rows) = table_after(&md, "## Results");
    for far in ["1e-6", "1e-5", "1e-4"] {
        let col = header.iter().position(|h| h == &format!("IJB-C TAR@FAR={far} (%)")).unwrap();
        assert!(rows.iter().all(|r| r[col] == "n/r"), "{far}: {rows:?}");
    }
    assert!(md.contains("n/r: IJB-C TAR@FAR=1e-6 is not resolvable: it rests on"));
    let acc = header.iter().position(|h| h == "LFW accuracy (%)").unwrap();
    assert!(rows.iter().all(|r| r[acc].contains(" [") && r[acc].ends_with(']')), "{rows:?}");

    // The combined margin (1, 0, 0.35) against CosFace m = 0.35: no detectable difference.
    let (header, rows) = table_after(&md, "## Comparisons");
    let verdict = header.iter().position(|h| h == "verdict").unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(r[1].starts_with("combined") && r[2].starts_with("cosface"), "{r:?}");
        assert_eq!(r[verdict], "no detectable difference", "{r:?}");
    }
    assert!(md.contains("### Power"));
}
