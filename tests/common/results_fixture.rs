//! The results directory `plot` and `report` read, written here with polars as `run` would
//! leave it (sweeps, two seeds, clean and noisy training, every protocol's curve points, θ_y
//! histograms, clean/noisy telemetry columns, failed, diverged and unfinished trials), and a PNG
//! reader: shared by tests/plot_report.rs and tests/paper_output.rs.
#![allow(dead_code)]

use p2sbench::store::{self, ExperimentDir, State, TrialStatus};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

pub const SPEC: &str = r#"name = "fixture"
description = "Fixture for the plot and report tests"
[data]
identities = 40
images_per_identity = 10
image_size = 16
[model]
widths = [8]
embedding = 16
[train]
epochs = 3
batch_size = 16
seeds = [1, 2]
"#;

/// One fixture setting: loss, params text, numeric params.
pub struct Setting {
    pub loss: &'static str,
    pub params: String,
    pub s: Option<f64>,
    pub m: Option<f64>,
    pub alpha: Option<f64>,
}

pub fn settings() -> Vec<Setting> {
    let mut out = vec![Setting { loss: "p2sgrad", params: "reduction=paper".into(), s: None, m: None, alpha: None }];
    for (loss, ms) in [("cosface", [0.2, 0.35]), ("arcface", [0.3, 0.5])] {
        for s in [16.0, 32.0] {
            for m in ms {
                out.push(Setting { loss, params: format!("m={m}, s={s}"), s: Some(s), m: Some(m), alpha: None });
            }
        }
    }
    for a in [8.0, 16.0] {
        out.push(Setting { loss: "l2softmax", params: format!("alpha={a}"), s: None, m: None, alpha: Some(a) });
    }
    out.push(Setting { loss: "softmax", params: String::new(), s: None, m: None, alpha: None });
    out
}

/// The fixture's noise settings: clean, and two kinds at 20 % (the `noise_kind` and `noise_ratio`
/// columns; `noise` is the text label).
pub const NOISES: [(&str, f64); 3] = [("none", 0.0), ("symmetric", 0.2), ("outlier", 0.2)];

pub fn noise_text(kind: &str, ratio: f64) -> String {
    if ratio > 0.0 {
        format!("{kind}:{ratio}")
    } else {
        "none".into()
    }
}

/// The final value of the fixture's headline score for a trial (other metrics derive from it).
pub fn score(st: &Setting, seed: i64, kind: &str, noise: f64) -> f64 {
    let base = match st.loss {
        "p2sgrad" => 0.95,
        "cosface" => 0.93,
        "arcface" => 0.94,
        "l2softmax" => 0.90,
        _ => 0.88,
    };
    let params = st.s.unwrap_or(0.0) * 0.0007 + st.m.unwrap_or(0.0) * 0.03 + st.alpha.unwrap_or(0.0) * 0.001;
    let robust = if st.loss == "p2sgrad" { 0.05 } else { 0.12 } * if kind == "outlier" { 0.5 } else { 1.0 };
    base + params + 0.004 * seed as f64 - robust * noise
}

pub fn eval_rows(v: f64) -> Vec<(&'static str, String, f64)> {
    let mut rows = vec![("lfw", "accuracy_mean".to_string(), v), ("lfw", "accuracy_std".to_string(), 0.01)];
    rows.push(("megaface", "rank1".into(), v - 0.05));
    for n in [10.0f64, 100.0, 1000.0, 10000.0] {
        rows.push(("megaface", format!("rank1@distractors={n}"), v - 0.02 * n.log10()));
    }
    for k in [2.0f64, 5.0, 10.0] {
        rows.push(("megaface", format!("cmc@rank={k}"), v - 0.05 + 0.01 * k.ln()));
    }
    rows.push(("megaface", "tar@far=1e-6".into(), v - 0.2));
    for e in 1..=6 {
        rows.push(("ijbc", format!("tar@far=1e-{e}"), v - 0.03 * e as f64));
    }
    rows.push(("ijbc", "tar@far=0.0003".into(), v - 0.1));
    rows.push(("ijbc", "tpir@fpir=1e-2".into(), v - 0.15));
    rows.push(("ijbc", "tpir@fpir=1e-1".into(), v - 0.08));
    for k in [1.0f64, 5.0, 10.0] {
        rows.push(("ijbc", format!("rank{k}"), v - 0.06 + 0.01 * k.ln()));
        // One gallery's number (as IJB-C's G1/G2 are stored): figures only, not the paper table.
        rows.push(("ijbc-g1", format!("rank{k}"), v - 0.07 + 0.01 * k.ln()));
    }
    rows
}

/// Writes the fixture results directory; returns it and the ids of the done trials.
pub fn write_fixture(root: &Path) -> ExperimentDir {
    let dir = ExperimentDir::new(root, "fixture");
    store::write_atomic(&dir.spec(), SPEC.as_bytes()).unwrap();
    let mut t: BTreeMap<&str, Vec<AnyValue>> = BTreeMap::new();
    let mut ids = Vec::new();
    let mut push =
        |id: String, st: &Setting, seed: i64, (kind, ratio): (&str, f64), status: &str, ids: &mut Vec<String>| {
            ids.push(id.clone());
            let cols: [(&str, AnyValue); 12] = [
                ("trial", AnyValue::StringOwned(id.into())),
                ("loss", AnyValue::StringOwned(st.loss.into())),
                ("params", AnyValue::StringOwned(st.params.clone().into())),
                ("s", st.s.map_or(AnyValue::Null, AnyValue::Float64)),
                ("m", st.m.map_or(AnyValue::Null, AnyValue::Float64)),
                ("alpha", st.alpha.map_or(AnyValue::Null, AnyValue::Float64)),
                ("seed", AnyValue::Int64(seed)),
                ("noise", AnyValue::StringOwned(noise_text(kind, ratio).into())),
                ("noise_kind", AnyValue::StringOwned(kind.to_string().into())),
                ("noise_ratio", AnyValue::Float64(ratio)),
                ("status", AnyValue::StringOwned(status.into())),
                ("seconds", AnyValue::Float64(1.5)),
            ];
            for (k, v) in cols {
                t.entry(k).or_default().push(v);
            }
        };
    for st in settings() {
        for (kind, noise) in NOISES {
            for seed in [1i64, 2] {
                let id = format!("{}-{}-{kind}{noise}-seed{seed}", st.loss, st.params.replace([',', ' ', '='], ""));
                let tdir = dir.trial(&id);
                write_trial(&tdir, &id, &st, seed, kind, noise);
                TrialStatus {
                    state: State::Done,
                    attempts: 1,
                    seconds: 1.5,
                    error: None,
                    diverged_step: None,
                    ..Default::default()
                }
                .write(&tdir)
                .unwrap();
                push(id, &st, seed, (kind, noise), "done", &mut ids);
            }
        }
    }
    // A failed trial of a setting nothing else has: listed, never aggregated.
    let failed = Setting { loss: "cosface", params: "m=0.35, s=64".into(), s: Some(64.0), m: Some(0.35), alpha: None };
    let id = "cosface-m0.35s64-failed".to_string();
    TrialStatus {
        state: State::Failed,
        attempts: 1,
        seconds: 0.2,
        error: Some("out of memory".into()),
        ..Default::default()
    }
    .write(&dir.trial(&id))
    .unwrap();
    push(id, &failed, 1, ("none", 0.0), "failed", &mut ids);
    // A diverged trial (its telemetry up to the divergence; never aggregated) and two unfinished.
    let diverged = Setting { loss: "arcface", params: "m=0.5, s=64".into(), s: Some(64.0), m: Some(0.5), alpha: None };
    let id = "arcface-m0.5s64-diverged".to_string();
    write_trial(&dir.trial(&id), &id, &diverged, 1, "none", 0.0);
    TrialStatus {
        state: State::Diverged,
        attempts: 1,
        seconds: 0.4,
        error: None,
        diverged_step: Some(50),
        ..Default::default()
    }
    .write(&dir.trial(&id))
    .unwrap();
    push(id, &diverged, 1, ("none", 0.0), "diverged", &mut ids);
    for (state, text) in [(State::Running, "running"), (State::Pending, "pending")] {
        let unfinished = Setting { loss: "softmax", params: String::new(), s: None, m: None, alpha: None };
        let id = format!("softmax-seed3-{text}");
        TrialStatus { state, attempts: 0, seconds: 0.0, error: None, diverged_step: None, ..Default::default() }
            .write(&dir.trial(&id))
            .unwrap();
        push(id, &unfinished, 3, ("none", 0.0), text, &mut ids);
    }
    let columns: Vec<Column> = [
        "trial",
        "loss",
        "params",
        "s",
        "m",
        "alpha",
        "seed",
        "noise",
        "noise_kind",
        "noise_ratio",
        "status",
        "seconds",
    ]
    .iter()
    .map(|k| Series::from_any_values((*k).into(), &t[k], false).unwrap().into_column())
    .collect();
    store::write_parquet(&dir.trials_table(), &mut DataFrame::new(columns).unwrap()).unwrap();
    dir
}

pub fn write_trial(tdir: &Path, id: &str, st: &Setting, seed: i64, kind: &str, noise: f64) {
    let v = score(st, seed, kind, noise);
    // evals: an early evaluation (lower) and the final one.
    let (mut step, mut proto, mut variant, mut metric, mut value) = (vec![], vec![], vec![], vec![], vec![]);
    for (s, shift) in [(10i64, -0.1), (50, 0.0)] {
        for (p, m, x) in eval_rows(v + shift) {
            step.push(s);
            let (p, part) = p.split_once('-').map_or((p, ""), |(p, g)| (p, g));
            proto.push(p.to_string());
            variant.push(if part.is_empty() { "builtin".to_string() } else { format!("builtin; part={part}") });
            metric.push(m);
            value.push(x);
        }
    }
    let n = step.len();
    let mut evals = df!(
        "trial" => vec![id; n], "step" => step, "protocol" => proto, "variant" => variant,
        "metric" => metric, "value" => value
    )
    .unwrap();
    store::write_parquet(&tdir.join("evals.parquet"), &mut evals).unwrap();

    let scale = st.s.or(st.alpha).unwrap_or(1.0);
    let steps: Vec<i64> = (0..6).map(|i| i * 10).collect();
    let f = |g: &dyn Fn(f64) -> f64| steps.iter().map(|&s| g(s as f64 / 50.0)).collect::<Vec<f64>>();
    let theta = f(&|t| 85.0 - 40.0 * t + seed as f64);
    let mut frame = df!(
        "trial" => vec![id; steps.len()],
        "step" => steps.clone(),
        "epoch" => steps.iter().map(|s| s / 20).collect::<Vec<i64>>(),
        "lr" => f(&|t| if t < 0.7 { 0.1 } else { 0.001 }),
        "loss" => f(&|t| scale * (1.0 - 0.6 * t)),
        "train_acc" => f(&|t| 0.1 + 0.8 * t),
        "theta_y_deg_mean" => theta.clone(),
        "theta_y_deg_p50" => theta.clone(),
        "theta_other_deg_mean" => f(&|_| 89.0),
        "cos_y_mean" => theta.iter().map(|d| d.to_radians().cos()).collect::<Vec<f64>>(),
        "coef_y_mean" => theta.iter().map(|d| -scale * (1.0 - d.to_radians().cos()) * 0.5).collect::<Vec<f64>>(),
        "coef_other_sum_mean" => f(&|t| scale * 0.5 * (1.0 - t) + 1e-3),
        "grad_norm_feat_mean" => f(&|t| 0.5 * (1.0 - 0.9 * t)),
        "grad_norm_class_weights" => f(&|t| 200.0 * (1e-3f64).powf(t)),
        "grad_norm_backbone" => f(&|_| 1.0),
        "feat_norm_mean" => f(&|_| 10.0),
        "scale" => f(&|_| scale),
        "step_seconds" => f(&|_| 0.01)
    )
    .unwrap();
    if noise > 0.0 {
        // The noise study's telemetry: only noisy trials have these columns.
        frame
            .with_column(Column::new(
                "theta_y_deg_mean_clean".into(),
                theta.iter().map(|d| d - 5.0).collect::<Vec<_>>(),
            ))
            .unwrap();
        frame
            .with_column(Column::new("theta_y_deg_mean_noisy".into(), theta.iter().map(|_| 88.0).collect::<Vec<_>>()))
            .unwrap();
        frame.with_column(Column::new("coef_y_mean_clean".into(), f(&|t| -scale * 0.3 * (1.0 - t)))).unwrap();
        frame.with_column(Column::new("coef_y_mean_noisy".into(), f(&|_| -scale * 0.9))).unwrap();
    }
    store::write_parquet(&tdir.join("steps.parquet"), &mut frame).unwrap();

    // θ_y histograms: a bump moving from 80° to 40°; noisy trials split clean/noisy samples.
    let (mut hs, mut lo, mut hi, mut count, mut subset) = (vec![], vec![], vec![], vec![], vec![]);
    for s in [10i64, 30, 50] {
        let centre = 80.0 - 40.0 * s as f64 / 50.0;
        let groups: &[&str] = if noise > 0.0 { &["clean", "noisy"] } else { &["clean"] };
        for g in groups {
            let c = if *g == "noisy" { 85.0 } else { centre };
            for b in 0..18 {
                let mid = b as f64 * 10.0 + 5.0;
                hs.push(s);
                lo.push(b as f64 * 10.0);
                hi.push(b as f64 * 10.0 + 10.0);
                count.push((1000.0 * (-((mid - c) / 15.0).powi(2)).exp()).round() as i64);
                subset.push(g.to_string());
            }
        }
    }
    let mut angles = df!("step" => hs, "bin_lo_deg" => lo, "bin_hi_deg" => hi, "count" => count).unwrap();
    if noise > 0.0 {
        angles.with_column(Column::new("subset".into(), subset)).unwrap();
    }
    store::write_parquet(&tdir.join("angles.parquet"), &mut angles).unwrap();
}

/// Non-white pixels and whether `color` occurs, in a decoded PNG.
pub fn png_stats(path: &Path, color: (u8, u8, u8)) -> (u32, u32, f64, bool) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{}: {:?}", path.display(), info.color_type);
    let pixels: Vec<&[u8]> = bytes.chunks(channels).collect();
    let inked = pixels.iter().filter(|p| p[0] < 250 || p[1] < 250 || p[2] < 250).count();
    let has = pixels.iter().any(|p| (p[0], p[1], p[2]) == color);
    (info.width, info.height, inked as f64 / pixels.len() as f64, has)
}
