//! `plot` and `report` from parquet alone: every figure kind rendered from a fixture results
//! directory written here with polars (sweeps, two seeds, clean and noisy training, every
//! protocol's curve points, θ_y histograms, clean/noisy telemetry columns), the files checked
//! (PNG decodes to a sane size with the loss colours in it, SVG parses); the report's tables
//! checked against values computed here from the fixture's parquet; report.html against
//! report.md (same tables and numbers, figures inline, sortable tables, status badges) and in
//! headless chromium; missing and malformed files as exit-code-2 input errors; and a real tiny
//! run through the CLI, re-rendered afterwards.

mod common;

use p2sbench::error::InputError;
use p2sbench::figure::style;
use p2sbench::plot;
use p2sbench::report;
use p2sbench::results::Manifest;
use p2sbench::store::{self, ExperimentDir, State, TrialStatus};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SPEC: &str = r#"name = "fixture"
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
struct Setting {
    loss: &'static str,
    params: String,
    s: Option<f64>,
    m: Option<f64>,
    alpha: Option<f64>,
}

fn settings() -> Vec<Setting> {
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
const NOISES: [(&str, f64); 3] = [("none", 0.0), ("symmetric", 0.2), ("outlier", 0.2)];

fn noise_text(kind: &str, ratio: f64) -> String {
    if ratio > 0.0 {
        format!("{kind}:{ratio}")
    } else {
        "none".into()
    }
}

/// The final value of the fixture's headline score for a trial (other metrics derive from it).
fn score(st: &Setting, seed: i64, kind: &str, noise: f64) -> f64 {
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

fn eval_rows(v: f64) -> Vec<(&'static str, String, f64)> {
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
fn write_fixture(root: &Path) -> ExperimentDir {
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

fn write_trial(tdir: &Path, id: &str, st: &Setting, seed: i64, kind: &str, noise: f64) {
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
fn png_stats(path: &Path, color: (u8, u8, u8)) -> (u32, u32, f64, bool) {
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

fn svg_texts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}

#[test]
fn renders_every_figure_kind_from_the_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_fixture(tmp.path());
    let manifest = plot::render_all(&dir.root).unwrap();
    // The fixture holds one C/D; the capacity figure is drawn in tests/studies.rs.
    let skipped: Vec<&str> = manifest.skipped.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(skipped, ["capacity"], "skipped: {:?}", manifest.skipped);
    assert!(manifest.skipped[0].reason.contains("C/D"), "{:?}", manifest.skipped);
    let stems: Vec<&str> = manifest.figures.iter().map(|f| f.stem.as_str()).collect();
    for expected in [
        "training_curves",
        "gradients",
        "angles",
        "noise_telemetry",
        "angle_histograms",
        "angle_histograms_noisy",
        "coef_vs_theta",
        "roc",
        "tpir",
        "cmc",
        "megaface_distractors",
        "sensitivity_lfw_accuracy_mean",
        "sensitivity_megaface_rank1",
        "sensitivity_ijbc_tar_far_1e_4",
        "noise_lfw_accuracy_mean",
        "noise_megaface_rank1",
    ] {
        assert!(stems.contains(&expected), "{expected} not in {stems:?}");
    }
    let p2s = style::loss_color("p2sgrad");
    for f in &manifest.figures {
        let png = dir.plots().join(format!("{}.png", f.stem));
        let (w, h, inked, has_p2s) = png_stats(&png, (p2s.0, p2s.1, p2s.2));
        assert!((800..=5000).contains(&w) && (400..=4000).contains(&h), "{}: {w}×{h}", f.stem);
        assert!(inked > 0.01 && inked < 0.6, "{}: {:.3} of the pixels inked", f.stem, inked);
        assert!(has_p2s, "{}: P2SGrad's colour is missing", f.stem);
        let texts = svg_texts(&dir.plots().join(format!("{}.svg", f.stem)));
        assert!(texts.iter().any(|t| t == &f.title), "{}: title {:?} not in the SVG text {texts:?}", f.stem, f.title);
    }
    // The analytic g_y(θ) of every loss (the fixture's experiment.toml gives 40 classes).
    let coef = manifest.figures.iter().find(|f| f.stem == "coef_vs_theta").unwrap();
    assert!(coef.caption.contains("with the analytic g_y(θ)"), "{}", coef.caption);
    assert!(svg_texts(&dir.plots().join("coef_vs_theta.svg")).iter().any(|t| t == "analytic g_y(θ)"));
    let on_disk = Manifest::read(&dir.root).unwrap().unwrap();
    assert_eq!(on_disk, manifest);
}

/// Cells of the first markdown table after `heading`: header and rows.
fn table_after(md: &str, heading: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let start = md.find(heading).unwrap_or_else(|| panic!("no {heading:?} in the report"));
    let lines: Vec<&str> =
        md[start..].lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).collect();
    let split = |l: &str| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect::<Vec<String>>();
    (split(lines[0]), lines[2..].iter().map(|l| split(l)).collect())
}

/// mean and sample std.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0);
    (m, var.sqrt())
}

/// From the fixture's parquet: final value per (trial, protocol, metric) of done trials, keyed by
/// (loss, params, noise) → metric → values over seeds.
fn expected_values(dir: &ExperimentDir) -> BTreeMap<(String, String, String), BTreeMap<String, Vec<f64>>> {
    let trials = store::read_parquet(&dir.trials_table()).unwrap();
    let ids = common::strings(&trials, "trial");
    let (loss, params, noise, status) = (
        common::strings(&trials, "loss"),
        common::strings(&trials, "params"),
        common::strings(&trials, "noise"),
        common::strings(&trials, "status"),
    );
    let mut out: BTreeMap<(String, String, String), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for i in 0..ids.len() {
        if status[i] != "done" {
            continue;
        }
        let evals = store::read_parquet(&dir.trial(&ids[i]).join("evals.parquet")).unwrap();
        let steps: Vec<i64> = evals.column("step").unwrap().i64().unwrap().into_no_null_iter().collect();
        let last = *steps.iter().max().unwrap();
        let (proto, metric) = (common::strings(&evals, "protocol"), common::strings(&evals, "metric"));
        let variant = common::strings(&evals, "variant");
        let values: Vec<f64> = evals.column("value").unwrap().f64().unwrap().into_no_null_iter().collect();
        for j in 0..values.len() {
            // One gallery's part (`part=g1`) is not a paper-table number.
            if steps[j] == last && !variant[j].contains("part=") {
                out.entry((loss[i].clone(), params[i].clone(), noise[i].clone()))
                    .or_default()
                    .entry(format!("{}/{}", proto[j], metric[j]))
                    .or_default()
                    .push(values[j]);
            }
        }
    }
    out
}

fn unbold(s: &str) -> &str {
    s.trim_start_matches("**").trim_end_matches("**")
}

#[test]
fn report_tables_match_values_computed_from_the_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_fixture(tmp.path());
    plot::render_all(&dir.root).unwrap();
    let files = report::write_report(&dir.root).unwrap();
    assert_eq!((&files.markdown, &files.html), (&dir.report(), &dir.root.join("report.html")));
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    let expected = expected_values(&dir);

    // Paper table: clean settings, mean ± std over the two seeds, in %.
    let (header, rows) = table_after(&md, "## Results");
    let columns = [
        ("LFW accuracy (%)", "lfw/accuracy_mean"),
        ("MegaFace rank-1 (%)", "megaface/rank1"),
        ("MegaFace rank-1 @ 10,000 distractors (%)", "megaface/rank1@distractors=10000"),
        ("MegaFace TAR@FAR=1e-6 (%)", "megaface/tar@far=1e-6"),
        ("IJB-C TAR@FAR=1e-6 (%)", "ijbc/tar@far=1e-6"),
        ("IJB-C TAR@FAR=1e-4 (%)", "ijbc/tar@far=1e-4"),
        ("IJB-C TAR@FAR=1e-1 (%)", "ijbc/tar@far=1e-1"),
        ("IJB-C TPIR@FPIR=1e-2 (%)", "ijbc/tpir@fpir=1e-2"),
        ("IJB-C rank-1 (%)", "ijbc/rank1"),
    ];
    for (h, _) in &columns {
        assert!(header.iter().any(|c| c == h), "column {h} missing from {header:?}");
    }
    assert!(!header.iter().any(|c| c.contains("3e-4") || c.contains("0.0003")), "non-decade FAR in {header:?}");
    assert!(!header.iter().any(|c| c.contains("std")), "fold std in {header:?}");
    assert!(
        !header.iter().any(|c| c.contains("[v") || c.contains("rank-5")),
        "gallery parts or CMC points in {header:?}"
    );
    assert_eq!(rows.len(), 12, "one row per clean setting that has evaluations: {rows:?}");
    for (h, key) in &columns {
        let col = header.iter().position(|c| c == h).unwrap();
        let mut best = (f64::NEG_INFINITY, String::new());
        for row in &rows {
            let params = if row[1] == "–" { String::new() } else { row[1].clone() };
            let vals = &expected[&(row[0].clone(), params.clone(), "none".to_string())][*key];
            assert_eq!(vals.len(), 2);
            assert_eq!(row[2], "2", "seeds");
            let (m, s) = mean_std(vals);
            assert_eq!(unbold(&row[col]), format!("{:.2} ± {:.2}", m * 100.0, s * 100.0), "{h} of {row:?}");
            if m > best.0 {
                best = (m, row[col].clone());
            }
        }
        let bold: Vec<&Vec<String>> = rows.iter().filter(|r| r[col].starts_with("**")).collect();
        assert_eq!(bold.len(), 1, "{h}: one best cell");
        assert_eq!(bold[0][col], best.1, "{h}: the best cell is the largest mean");
    }

    // Sensitivity: spread of the setting means over each loss's grid.
    let (header, rows) = table_after(&md, "## Sensitivity to hyper-parameters");
    let col = header.iter().position(|c| c == "LFW accuracy (%)").unwrap();
    for (loss, grid) in [("cosface", 4), ("arcface", 4), ("l2softmax", 2)] {
        let row =
            rows.iter().find(|r| r[0] == loss && r[1] == "clean").unwrap_or_else(|| panic!("{loss} clean: {rows:?}"));
        assert_eq!(row[2], grid.to_string());
        let means: Vec<f64> = expected
            .iter()
            .filter(|((l, _, n), _)| l == loss && n == "none")
            .map(|(_, m)| mean_std(&m["lfw/accuracy_mean"]).0 * 100.0)
            .collect();
        let (lo, hi) = (means.iter().copied().fold(f64::INFINITY, f64::min), means.iter().copied().fold(0.0, f64::max));
        assert_eq!(row[col], format!("{:.2} ({lo:.2}–{hi:.2})", hi - lo), "{loss}");
    }
    assert!(!rows.iter().any(|r| r[0] == "p2sgrad" || r[0] == "softmax"), "single-setting losses have no spread");

    // Noise: each kind and ratio apart, and the drop from clean.
    let (header, rows) = table_after(&md, "### LFW accuracy (%)");
    assert_eq!(
        header,
        ["setting", "clean", "outlier 20%", "drop at outlier 20%", "symmetric 20%", "drop at symmetric 20%"]
    );
    for row in &rows {
        let (loss, params) = row[0].split_once(' ').unwrap_or((&row[0], ""));
        let at = |noise: &str| {
            mean_std(&expected[&(loss.to_string(), params.to_string(), noise.to_string())]["lfw/accuracy_mean"])
        };
        let clean = at("none");
        assert_eq!(row[1], format!("{:.2} ± {:.2}", clean.0 * 100.0, clean.1 * 100.0));
        for (col, noise) in [(2, "outlier:0.2"), (4, "symmetric:0.2")] {
            let noisy = at(noise);
            assert_eq!(row[col], format!("{:.2} ± {:.2}", noisy.0 * 100.0, noisy.1 * 100.0), "{noise}");
            assert_eq!(row[col + 1], format!("{:.2}", (clean.0 - noisy.0) * 100.0), "{} {noise}", row[0]);
        }
    }
    assert_eq!(rows.len(), 12);

    // Published numbers beside ours, with our MegaFace rank-1 and IJB-C TAR@1e-4.
    let (header, rows) = table_after(&md, "## Published numbers beside ours");
    assert_eq!(header[3], "MegaFace rank-1 (%)");
    let published = rows.iter().find(|r| r[0] == "P2SGrad").unwrap();
    assert_eq!((published[3].as_str(), published[4].as_str()), ("97.25", "92.25"));
    let ours = rows.iter().find(|r| r[0] == "p2sgrad" && r[1] == "this run").unwrap();
    let mine = &expected[&("p2sgrad".into(), "reduction=paper".into(), "none".into())];
    assert_eq!(ours[3], format!("{:.2}", mean_std(&mine["megaface/rank1"]).0 * 100.0));
    assert_eq!(ours[4], format!("{:.2}", mean_std(&mine["ijbc/tar@far=1e-4"]).0 * 100.0));
    assert_eq!(ours[2], "40 classes × 10 images, 3 epochs");

    // Trials: every one listed with its status, the failed one with its error.
    let (_, rows) = table_after(&md, "## Trials");
    assert_eq!(rows.len(), 76);
    let failed = rows.iter().find(|r| r[4] == "failed").unwrap();
    assert_eq!((failed[0].as_str(), failed[5].as_str()), ("`cosface-m0.35s64-failed`", "out of memory"));
    assert_eq!(rows.iter().filter(|r| r[3] == "symmetric 20%").count(), 24);
    assert!(md.contains("- Trials: 76 (1 diverged, 72 done, 1 failed, 1 pending, 1 running)"), "{md}");
    // Figures embedded by relative path, and each exists.
    for f in Manifest::read(&dir.root).unwrap().unwrap().figures {
        assert!(md.contains(&format!("![{}](plots/{}.png)", f.title, f.stem)));
    }
    assert!(md.contains("- Hardware: not recorded"), "the fixture has no run.json");

    check_html_against_markdown(&dir, &md, &std::fs::read_to_string(&files.html).unwrap());
}

/// Drops every `<tag …>…</tag>` element, content included.
fn drop_elements(html: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        out.push_str(&rest[..start]);
        let end = rest[start..].find(&close).unwrap_or_else(|| panic!("unclosed <{tag}>")) + start + close.len();
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The text a reader sees: figures, style and script dropped, every tag a space, entities decoded.
fn html_text(html: &str) -> String {
    let mut s = html.to_string();
    for tag in ["style", "script", "svg", "title", "nav"] {
        s = drop_elements(&s, tag);
    }
    let mut out = String::new();
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// What a reader sees of report.md: markup, link targets and images dropped.
fn markdown_text(md: &str) -> String {
    let mut out = String::new();
    let mut rest = md;
    while let Some(start) = rest.find("](") {
        let (before, after) = rest.split_at(start);
        let end = after.find(')').unwrap() + 1;
        match before.rfind("![") {
            // An image: its alt text is the SVG's label, not page text.
            Some(img) if !before[img..].contains(']') => out.push_str(&before[..img]),
            _ => out.push_str(before),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out.replace("\\|", "|").replace("**", "").replace('`', "")
}

/// Every run of digits, in order.
fn numbers(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|t| t.trim_matches('.'))
        .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

/// Every markdown table: rows of cells as a reader sees them (header first, rule dropped).
fn markdown_tables(md: &str) -> Vec<Vec<Vec<String>>> {
    let mut tables: Vec<Vec<Vec<String>>> = Vec::new();
    let mut previous_was_row = false;
    for line in md.lines() {
        let is_row = line.starts_with('|');
        if is_row && !line.starts_with("|---") {
            let cells: Vec<String> = line
                .trim_matches('|')
                .replace("\\|", "\u{1}")
                .split('|')
                .map(|c| markdown_text(c).replace('\u{1}', "|").trim().to_string())
                .collect();
            if !previous_was_row {
                tables.push(Vec::new());
            }
            tables.last_mut().unwrap().push(cells);
        }
        previous_was_row = is_row;
    }
    tables
}

/// Every HTML table: rows of cell texts.
fn html_tables(html: &str) -> Vec<Vec<Vec<String>>> {
    html.split("<table")
        .skip(1)
        .map(|t| {
            let t = &t[..t.find("</table>").unwrap()];
            t.split("<tr>")
                .skip(1)
                .map(|row| {
                    row.split("<t")
                        .skip(1)
                        .filter(|c| c.starts_with('h') || c.starts_with('d'))
                        .map(|c| html_text(&format!("<t{c}")).split_whitespace().collect::<Vec<_>>().join(" "))
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// report.html holds report.md: the same tables cell by cell and the same numbers in the same
/// order, every figure inline, every table sortable, statuses as badges, nothing loaded.
fn check_html_against_markdown(dir: &ExperimentDir, md: &str, html: &str) {
    let (md_tables, html_tables) = (markdown_tables(md), html_tables(html));
    assert!(md_tables.len() >= 6, "{} tables in report.md", md_tables.len());
    assert_eq!(html_tables.len(), md_tables.len(), "tables in report.html vs report.md");
    for (i, (h, m)) in html_tables.iter().zip(&md_tables).enumerate() {
        let m: Vec<Vec<String>> =
            m.iter().map(|r| r.iter().map(|c| c.split_whitespace().collect::<Vec<_>>().join(" ")).collect()).collect();
        assert_eq!(h, &m, "table {i}");
    }
    let (md_numbers, html_numbers) = (numbers(&markdown_text(md)), numbers(&html_text(html)));
    assert!(md_numbers.len() > 1000, "{} numbers in report.md", md_numbers.len());
    if let Some(i) = (0..md_numbers.len().max(html_numbers.len())).find(|&i| md_numbers.get(i) != html_numbers.get(i)) {
        panic!(
            "number {i} differs: report.md has {:?}, report.html {:?}",
            &md_numbers[i.saturating_sub(3)..(i + 3).min(md_numbers.len())],
            &html_numbers[i.saturating_sub(3)..(i + 3).min(html_numbers.len())]
        );
    }
    for leftover in ["**", "](", "| ---", "\\|"] {
        assert!(!html_text(html).contains(leftover), "markdown syntax {leftover:?} left in the page's text");
    }

    // Figures: each manifest figure's SVG inline, in a <figure>; nothing fetched.
    let figures = Manifest::read(&dir.root).unwrap().unwrap().figures;
    assert_eq!(html.matches("<figure><svg").count(), figures.len());
    for f in &figures {
        let svg = std::fs::read_to_string(dir.plots().join(format!("{}.svg", f.stem))).unwrap();
        let body = &svg[svg.find("<svg").unwrap()..];
        let inner = &body[body.find('>').unwrap()..].trim_end();
        assert!(html.contains(inner), "{}: the SVG is not inline", f.stem);
        assert!(html.contains(&format!("aria-label=\"{}\"", f.title)), "{}: no labelled figure", f.stem);
    }
    for external in ["<img", "<link", "<iframe", " src=", "url(", "@import", "http://", "https://"] {
        let outside_svg = drop_elements(html, "svg");
        assert!(!outside_svg.contains(external), "report.html loads something: {external:?}");
    }
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"), "no CSP");
    let sections: Vec<&str> = md.lines().filter_map(|l| l.strip_prefix("## ")).collect();
    let nav = &html[html.find("<nav").unwrap()..html.find("</nav>").unwrap()];
    assert_eq!(nav.matches("<a href=\"#").count(), sections.len(), "contents: {nav}");

    // Sortable: every table, and the script that sorts them.
    assert_eq!(html.matches("<table class=\"sortable\">").count(), html_tables.len());
    assert!(html.contains("querySelectorAll('table.sortable')") && html.contains("addEventListener('click'"));

    // Status badges: one per trial, by state, each state its own colour.
    let trials = &md_tables.last().unwrap()[1..];
    for state in ["done", "failed", "diverged", "running", "pending"] {
        let n = trials.iter().filter(|r| r[4] == state).count();
        assert!(n > 0, "the fixture has a {state} trial");
        assert_eq!(html.matches(&format!("<span class=\"badge status-{state}\">{state}</span>")).count(), n, "{state}");
        assert!(html.contains(&format!(".status-{state} {{ background: #")), "{state} has no colour");
    }
}

/// Debian's chromium, which `make test` installs (scripts/setup-chromium.sh).
const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless chromium on `url` with a fresh profile; returns stdout and stderr.
fn chromium(url: &str, args: &[String]) -> (String, String) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the report.html browser test needs Debian's chromium. `make test` installs it \
         (scripts/setup-chromium.sh, as root); or install it once as root: apt-get install -y chromium"
    );
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("timeout")
        .args(["120", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .args(["--disable-dev-shm-usage", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "chromium {args:?} {url}: {}\n{stderr}", out.status);
    (stdout, stderr)
}

/// Collects errors from the first moment: uncaught exceptions, failed loads, console.error, CSP.
const ERROR_COLLECTOR: &str = r#"<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  __errors.push('error: ' + (e.message || (e.target && e.target.outerHTML || '').slice(0, 120)));
}, true);
window.addEventListener('unhandledrejection', function (e) { __errors.push('rejection: ' + e.reason); });
document.addEventListener('securitypolicyviolation', function (e) { __errors.push('csp: ' + e.blockedURI); });
var consoleError = console.error;
console.error = function () { __errors.push('console: ' + Array.prototype.join.call(arguments, ' ')); consoleError.apply(console, arguments); };
</script>"#;

/// After the page's own script: measures every figure, sorts the Results table by LFW accuracy
/// twice through real clicks, reads the badges' colours; the result goes into the DOM as JSON.
const PROBE: &str = r#"<script>
(function () {
  var result = { errors: window.__errors };
  result.figures = Array.prototype.map.call(document.querySelectorAll('figure > svg'), function (s) {
    var r = s.getBoundingClientRect(), b = s.getBBox();
    return { label: s.getAttribute('aria-label'), width: r.width, height: r.height,
             drawn_width: b.width, drawn_height: b.height, texts: s.querySelectorAll('text').length };
  });
  var table = document.querySelector('#results ~ .table-wrap table');
  var head = table.tHead.rows[0].cells;
  var col = Array.prototype.map.call(head, function (c) { return c.textContent.trim(); }).indexOf('LFW accuracy (%)');
  function column() {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return parseFloat(r.cells[col].textContent); });
  }
  result.unsorted = column();
  head[col].click();
  result.ascending = column();
  head[col].click();
  result.descending = column();
  result.aria = head[col].getAttribute('aria-sort');
  result.badges = {};
  document.querySelectorAll('.badge').forEach(function (b) { result.badges[b.textContent] = getComputedStyle(b).backgroundColor; });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
})();
</script>"#;

/// The page with `head` added at the start of its head and `body` at the end of its body.
fn inject(html: &str, head: &str, body: &str) -> String {
    let h = html.find("<head>").unwrap() + "<head>".len();
    let b = html.rfind("</body>").unwrap();
    format!("{}{head}{}{body}{}", &html[..h], &html[h..b], &html[b..])
}

/// Width, height, inked fraction and distinct colours of a PNG, and which of `colours` occur.
fn screenshot_stats(path: &Path, colours: &[(u8, u8, u8)]) -> (u32, u32, f64, usize, Vec<bool>) {
    let (w, h, inked, _) = png_stats(path, (0, 0, 0));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let seen: std::collections::BTreeSet<(u8, u8, u8)> =
        buf[..info.buffer_size()].chunks(channels).map(|p| (p[0], p[1], p[2])).collect();
    (w, h, inked, seen.len(), colours.iter().map(|c| seen.contains(c)).collect())
}

fn hex(c: &str) -> (u8, u8, u8) {
    let v = |i: usize| u8::from_str_radix(&c[i..i + 2], 16).unwrap();
    (v(1), v(3), v(5))
}

/// report.html in a real browser (Debian's headless chromium): the page runs without an error,
/// every figure has a size and drawn content, a click on a header sorts the table, the badges are
/// coloured, and screenshots of the top, the figures and the trials are real, non-blank images.
/// The pages and the screenshots stay in target/tmp/report_html/ for a person to look at.
#[test]
fn report_html_renders_in_headless_chromium() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_html");
    let _ = std::fs::remove_dir_all(&root);
    let dir = write_fixture(&root);
    plot::render_all(&dir.root).unwrap();
    let page = report::write_report(&dir.root).unwrap().html;
    let html = std::fs::read_to_string(&page).unwrap();
    let md = std::fs::read_to_string(dir.report()).unwrap();

    // The same page with the error collector first and the probe last.
    let probe_page = root.join("probe.html");
    std::fs::write(&probe_page, inject(&html, ERROR_COLLECTOR, PROBE)).unwrap();
    let (dom, stderr) = chromium(&format!("file://{}", probe_page.display()), &["--dump-dom".to_string()]);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "the page logged to the console:\n{}", console.join("\n"));
    let json = dom
        .split_once("<pre id=\"probe\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(j, _)| j.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        .unwrap_or_else(|| {
            panic!("the probe did not run; the page as chromium left it:\n{}", &dom[..dom.len().min(3000)])
        });
    let probe: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(probe["errors"], serde_json::json!([]), "errors in the page");

    let figures = Manifest::read(&dir.root).unwrap().unwrap().figures;
    let drawn = probe["figures"].as_array().unwrap();
    assert_eq!(drawn.len(), figures.len(), "{drawn:?}");
    for (f, d) in figures.iter().zip(drawn) {
        assert_eq!(d["label"], f.title.as_str());
        let size = |k: &str| d[k].as_f64().unwrap();
        assert!(size("width") > 300.0 && size("height") > 150.0, "{}: shown at {d}", f.stem);
        assert!(size("drawn_width") > 100.0 && size("drawn_height") > 50.0, "{}: drawn content {d}", f.stem);
        assert!(d["texts"].as_u64().unwrap() > 3, "{}: {d}", f.stem);
    }

    // Sorting by a real click, against the numbers of report.md's Results table.
    let (header, rows) = table_after(&md, "## Results");
    let col = header.iter().position(|c| c == "LFW accuracy (%)").unwrap();
    let mut expected: Vec<f64> =
        rows.iter().map(|r| unbold(&r[col]).split(' ').next().unwrap().parse().unwrap()).collect();
    let floats = |k: &str| probe[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<f64>>();
    assert_eq!(floats("unsorted"), expected, "before sorting: report.md's order");
    expected.sort_by(f64::total_cmp);
    assert_eq!(floats("ascending"), expected);
    expected.reverse();
    assert_eq!(floats("descending"), expected);
    assert_eq!(probe["aria"], "descending");

    // Badges: each state a different, non-transparent colour.
    let badges = probe["badges"].as_object().unwrap();
    let colours: std::collections::BTreeSet<&str> = badges.values().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(badges.len(), 5, "{badges:?}");
    assert_eq!(colours.len(), 5, "{badges:?}");
    assert!(!colours.iter().any(|c| c.contains("rgba(0, 0, 0, 0)")), "{badges:?}");

    // Screenshots: the page as it opens (run, results), then the figures and the trials with the
    // sections before them hidden (headless chromium paints only the first screen of a page).
    // The trials are sorted by status, descending, with a click on the header.
    let colour = |state: &str| hex(html.split(&format!(".status-{state} {{ background: ")).nth(1).unwrap());
    let p2s = style::loss_color("p2sgrad");
    let only = |id: &str| format!("<style>main > :not(#{id}, #{id} ~ *) {{ display: none; }}</style>");
    let click_status = "<script>var th = document.querySelector('#trials ~ .table-wrap th:nth-child(5)'); th.click(); th.click();</script>";
    let shots = [
        ("top", String::new(), String::new(), vec![]),
        ("figures", only("figures"), String::new(), vec![(p2s.0, p2s.1, p2s.2)]),
        (
            "trials",
            only("trials"),
            click_status.to_string(),
            ["running", "pending", "failed", "done"].map(colour).to_vec(),
        ),
    ];
    for (name, style, script, colours) in shots {
        let shown = root.join(format!("screenshot-{name}.html"));
        std::fs::write(&shown, inject(&html, &style, &script)).unwrap();
        let shot = root.join(format!("screenshot-{name}.png"));
        let (_, stderr) = chromium(
            &format!("file://{}", shown.display()),
            &[format!("--screenshot={}", shot.display()), "--window-size=1400,1800".to_string()],
        );
        let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
        assert!(console.is_empty(), "{name}: {}", console.join("\n"));
        let (w, h, inked, distinct, seen) = screenshot_stats(&shot, &colours);
        assert_eq!((w, h), (1400, 1800), "{name}");
        assert!(inked > 0.02 && inked < 0.9, "{name}: {inked:.3} of the pixels inked");
        assert!(distinct > 50, "{name}: {distinct} colours");
        assert_eq!(seen, vec![true; colours.len()], "{name}: colours {colours:?} on screen");
    }
}

fn input_error(e: &anyhow::Error) -> &InputError {
    e.chain().find_map(|c| c.downcast_ref::<InputError>()).unwrap_or_else(|| panic!("not an InputError: {e:#}"))
}

#[test]
fn missing_or_malformed_results_are_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("nowhere");
    let e = plot::render_all(&nowhere).unwrap_err();
    assert!(input_error(&e).location.contains("nowhere"), "{e:#}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = report::write_report(&empty).unwrap_err();
    assert!(input_error(&e).location.ends_with("trials.parquet"), "{e:#}");

    let dir = write_fixture(&tmp.path().join("bad"));
    // A figure in plots.json without its SVG: an error naming the SVG, and neither report written.
    plot::render_all(&dir.root).unwrap();
    let svg = dir.plots().join("gradients.svg");
    std::fs::remove_file(&svg).unwrap();
    let e = report::write_report(&dir.root).unwrap_err();
    assert_eq!(input_error(&e).location, svg.display().to_string(), "{e:#}");
    assert!(!dir.report().exists() && !dir.root.join("report.html").exists());

    let trials = store::read_parquet(&dir.trials_table()).unwrap();
    let victim = dir.trial(&common::strings(&trials, "trial")[0]).join("evals.parquet");
    std::fs::write(&victim, b"not parquet").unwrap();
    let e = plot::render_all(&dir.root).unwrap_err();
    assert_eq!(input_error(&e).location, victim.display().to_string(), "{e:#}");
    std::fs::remove_file(&victim).unwrap();
    let e = report::write_report(&dir.root).unwrap_err();
    assert!(format!("{e:#}").contains("missing") && input_error(&e).location == victim.display().to_string(), "{e:#}");

    let mut no_status = trials.drop("status").unwrap();
    store::write_parquet(&dir.trials_table(), &mut no_status).unwrap();
    let e = report::write_report(&dir.root).unwrap_err();
    assert!(input_error(&e).message.contains("status"), "{e:#}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2sbench")).arg("plot").arg(&nowhere).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2sbench")).arg("report").arg(&dir.root).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trials.parquet"));
}

/// Every file of `dir` with its bytes, by name.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn run_ends_with_plots_and_report_and_they_re_render_from_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("tiny.toml");
    std::fs::write(&spec, common::TINY).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["run", spec.to_str().unwrap(), "--out", tmp.path().join("results").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = ExperimentDir::new(&tmp.path().join("results"), "tiny");
    let md = std::fs::read_to_string(dir.report()).unwrap();
    let info = p2sbench::store::run_info::RunInfo::read(&dir.root).unwrap().expect("run writes run.json");
    assert_eq!(info.device, "cpu");
    assert!(md.contains(&format!("- Hardware: {} ({} logical cores)", info.cpu_model, info.logical_cores)));

    // Every trial's LFW accuracy in the table is trials.parquet's, in %.
    let trials = store::read_parquet(&dir.trials_table()).unwrap();
    let acc: Vec<f64> = trials.column("lfw_accuracy_mean").unwrap().f64().unwrap().into_no_null_iter().collect();
    let (header, rows) = table_after(&md, "## Results");
    let col = header.iter().position(|c| c == "LFW accuracy (%)").unwrap();
    assert_eq!(rows.len(), 5);
    for (row, (loss, a)) in rows.iter().zip(common::strings(&trials, "loss").iter().zip(acc)) {
        assert_eq!(&row[0], loss);
        assert_eq!(unbold(&row[col]), format!("{:.2}", a * 100.0));
    }
    for id in common::strings(&trials, "trial") {
        assert!(md.contains(&format!("| `{id}` |")), "{id} not in the trials table");
    }
    let manifest = Manifest::read(&dir.root).unwrap().unwrap();
    let stems: Vec<&str> = manifest.figures.iter().map(|f| f.stem.as_str()).collect();
    for stem in ["training_curves", "gradients", "angles", "coef_vs_theta"] {
        assert!(stems.contains(&stem), "{stem} not in {stems:?}");
        assert!(dir.plots().join(format!("{stem}.png")).exists() && dir.plots().join(format!("{stem}.svg")).exists());
    }
    assert!(
        manifest.skipped.iter().any(|s| s.kind == "sensitivity" && s.reason.contains("sweep")),
        "one setting per loss"
    );

    // Re-render from the parquet files alone: same figures, same report.
    let before = files(&dir.plots());
    let page = std::fs::read_to_string(dir.root.join("report.html")).unwrap();
    std::fs::remove_dir_all(dir.plots()).unwrap();
    std::fs::remove_file(dir.report()).unwrap();
    std::fs::remove_file(dir.root.join("report.html")).unwrap();
    for cmd in ["plot", "report"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2sbench")).arg(cmd).arg(&dir.root).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let after = files(&dir.plots());
    let names = |v: &[(PathBuf, Vec<u8>)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before));
    assert!(before.iter().any(|(p, _)| p.extension().is_some_and(|e| e == "png")), "{:?}", names(&before));
    for ((path, a), (_, b)) in before.iter().zip(&after) {
        assert!(a == b, "{} differs when drawn again from the parquet files", path.display());
    }
    assert_eq!(std::fs::read_to_string(dir.report()).unwrap(), md);
    assert_eq!(std::fs::read_to_string(dir.root.join("report.html")).unwrap(), page);
}
