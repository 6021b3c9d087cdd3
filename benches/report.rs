//! `report` on large results directories, with the intervals: a sensitivity-style study (CosFace
//! s × m, ArcFace s × m, P2SGrad, AdaCos: 17 settings) over enough seeds for 100 and 1,000
//! trials, written directly as a run writes them (status.json, steps.parquet, evals.parquet
//! with intervals every 2 epochs, bootstrap.parquet with 1,000 replicates, trials.parquet,
//! experiment.toml) without training. Prints the median wall time of `report` (and of `plot`)
//! over interleaved repetitions. Run with `make bench` or `cargo bench --bench report`;
//! REPORT_BENCH_ROUNDS sets the repetitions (default 3).

mod common;

use p2sbench::runner;
use p2sbench::spec;
use p2sbench::store::schema::{self, EvalRow, StepRow};
use p2sbench::store::{self, trial_files, ExperimentDir, State, TrialStatus};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Instant;

fn spec_text(seeds: usize) -> String {
    let seeds: Vec<String> = (1..=seeds).map(|s| s.to_string()).collect();
    format!(
        r#"name = "reportbench"
[data]
identities = 100
heldout_identities = 50
images_per_identity = 30
image_size = 32
channels = 1
seed = 11
[model]
widths = [16, 32, 64]
embedding = 128
[train]
epochs = 30
batch_size = 64
seeds = [{}]
log_every = 10
[[loss]]
name = "cosface"
s = [16.0, 32.0, 64.0]
m = [0.2, 0.35, 0.5]
[[loss]]
name = "arcface"
s = [16.0, 32.0, 64.0]
m = [0.3, 0.5]
[[loss]]
name = "p2sgrad"
[[loss]]
name = "adacos"
[eval]
protocols = ["lfw"]
every_epochs = 2
"#,
        seeds.join(", ")
    )
}

const STEPS_PER_EPOCH: i64 = 46;
const REPLICATES: usize = 1000;

/// Writes a results directory of `seeds` × 17 done trials.
fn build(root: &Path, seeds: usize) -> usize {
    let text = spec_text(seeds);
    let exp = spec::parse(Path::new("reportbench.toml"), &text).expect("valid spec");
    let dir = ExperimentDir { root: root.to_path_buf() };
    std::fs::create_dir_all(root.join("trials")).expect("results directory");
    std::fs::write(dir.spec(), &text).expect("experiment.toml");
    let settings: Vec<String> = {
        let mut s: Vec<String> = exp.trials.iter().map(|t| t.setting()).collect();
        s.dedup();
        s
    };
    for t in &exp.trials {
        let id = t.id();
        let tdir = dir.trial(&id);
        std::fs::create_dir_all(&tdir).expect("trial directory");
        let effect = settings.iter().position(|s| *s == t.setting()).unwrap_or(0) as f64 * 0.002;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(t.seed * 1000 + effect.to_bits() % 997);
        let steps: Vec<StepRow> = (0..30 * STEPS_PER_EPOCH / 10)
            .map(|k| StepRow {
                step: k * 10,
                epoch: k * 10 / STEPS_PER_EPOCH,
                lr: 0.1,
                loss: 5.0 / (1.0 + k as f64),
                train_acc: rng.gen_range(0.0..1.0),
                theta_y_deg_mean: rng.gen_range(20.0..90.0),
                theta_y_deg_p50: rng.gen_range(20.0..90.0),
                theta_other_deg_mean: 90.0,
                cos_y_mean: rng.gen_range(0.0..1.0),
                coef_y_mean: rng.gen_range(0.0..1.0),
                coef_other_sum_mean: rng.gen_range(0.0..1.0),
                grad_norm_feat_mean: rng.gen_range(0.0..1.0),
                grad_norm_class_weights: rng.gen_range(0.0..1.0),
                grad_norm_backbone: rng.gen_range(0.0..1.0),
                feat_norm_mean: 10.0,
                scale: 30.0,
                step_seconds: 0.01,
                ..Default::default()
            })
            .collect();
        let seed_effect = rng.gen_range(-0.01..0.01);
        let mut evals = Vec::new();
        for e in 1..=15 {
            let step = e * 2 * STEPS_PER_EPOCH;
            let value = 0.85 + effect + seed_effect + 0.002 * e as f64;
            let replicates: Vec<f32> = if e == 15 {
                (0..REPLICATES).map(|_| (value + rng.gen_range(-0.01..0.01)) as f32).collect()
            } else {
                Vec::new()
            };
            let variant = "source=builtin heldout; distance=squared-l2; flip=sum".to_string();
            evals.push(EvalRow {
                step,
                protocol: "lfw".into(),
                variant: variant.clone(),
                metric: "accuracy_mean".into(),
                value,
                ci_lo: Some(value - 0.01),
                ci_hi: Some(value + 0.01),
                ci_unit: Some("identity".into()),
                replicates,
                ..Default::default()
            });
            evals.push(EvalRow {
                step,
                protocol: "lfw".into(),
                variant,
                metric: "accuracy_std".into(),
                value: 0.01,
                ..Default::default()
            });
        }
        for (file, mut frame) in [
            (trial_files::STEPS, schema::steps_frame(&id, &steps).expect("steps")),
            (trial_files::EVALS, schema::evals_frame(&id, &evals).expect("evals")),
            (trial_files::BOOTSTRAP, schema::bootstrap_frame(&id, &evals).expect("bootstrap")),
        ] {
            store::write_parquet(&tdir.join(file), &mut frame).expect("parquet");
        }
        let status = TrialStatus { state: State::Done, attempts: 1, seconds: 30.0, ..Default::default() };
        status.write(&tdir).expect("status.json");
    }
    runner::write_trials_table(&dir, &exp.trials).expect("trials.parquet");
    exp.trials.len()
}

fn main() {
    p2sbench::store::large_thread_stacks();
    let rounds: usize = common::env_or("REPORT_BENCH_ROUNDS", 3);
    let sizes = [(6, "100"), (59, "1,000")];
    let dirs: Vec<(tempfile::TempDir, usize)> = sizes
        .iter()
        .map(|&(seeds, _)| {
            let d = tempfile::tempdir().expect("temporary directory");
            let n = build(d.path(), seeds);
            (d, n)
        })
        .collect();
    let mut report = vec![Vec::new(); dirs.len()];
    let mut plot = vec![Vec::new(); dirs.len()];
    for _ in 0..rounds {
        for (k, (d, _)) in dirs.iter().enumerate() {
            let t = Instant::now();
            p2sbench::plot::render_all(d.path()).expect("plot");
            plot[k].push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            p2sbench::report::write_report(d.path()).expect("report");
            report[k].push(t.elapsed().as_secs_f64());
        }
    }
    println!("report and plot with intervals and paired comparisons ({rounds} interleaved rounds, median):");
    for (k, (_, n)) in dirs.iter().enumerate() {
        let (r, _, _) = common::summary(&report[k]);
        let (p, _, _) = common::summary(&plot[k]);
        println!("  {n:>5} trials: report {r:.2} s, plot {p:.2} s");
    }
}
