//! Training end to end on a tiny experiment: the results layout, the telemetry columns, finite
//! values, identical starting parameters and data order across losses, and CPU determinism.

mod common;

use p2sbench::runner::{self, RunOptions};
use p2sbench::store::schema::{Field, STEP_COLUMNS, WALL_CLOCK_COLUMN};
use p2sbench::store::{self, ExperimentDir};
use polars::prelude::*;
use std::path::Path;

fn run(out: &Path) -> ExperimentDir {
    let exp = common::experiment(common::TINY);
    let summaries = runner::run_experiment(&exp, &RunOptions::new(out)).unwrap();
    assert_eq!(summaries.len(), 5);
    ExperimentDir::new(out, "tiny")
}

#[test]
fn trains_every_loss_writes_the_layout_and_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let dir_a = run(a.path());
    let dir_b = run(b.path());

    let trials = store::read_parquet(&dir_a.trials_table()).unwrap();
    assert_eq!(trials.height(), 5);
    assert!(common::strings(&trials, "status").iter().all(|s| s == "done"), "{trials}");
    let init = common::strings(&trials, "init_checksum");
    assert!(
        init[0].len() == 16 && init.iter().all(|c| c == &init[0]),
        "trials start from different parameters: {trials}"
    );
    let order = common::strings(&trials, "data_order_checksum");
    assert!(order[0].len() == 16 && order.iter().all(|c| c == &order[0]), "trials saw different batch orders");
    assert_eq!(common::strings(&trials, "loss"), ["p2sgrad", "cosface", "arcface", "l2softmax", "softmax"]);
    assert!(dir_a.spec().exists());

    for id in common::strings(&trials, "trial") {
        let id = id.as_str();
        let tdir = dir_a.trial(id);
        assert!(tdir.join("config.toml").exists() && tdir.join("status.json").exists());
        let steps = store::read_parquet(&tdir.join("steps.parquet")).unwrap();
        let names: Vec<&str> = steps.get_column_names().iter().map(|s| s.as_str()).collect();
        let schema: Vec<&str> = std::iter::once("trial").chain(STEP_COLUMNS.iter().map(|(n, _)| *n)).collect();
        assert_eq!(names, schema);
        // 96 images / 16 = 6 steps an epoch, 2 epochs, a row every 2 steps.
        assert_eq!(steps.height(), 6);
        let required = STEP_COLUMNS.iter().filter(|(n, f)| matches!(f, Field::Float(..)) && *n != WALL_CLOCK_COLUMN);
        for (name, _) in required {
            let col = steps.column(name).unwrap().f64().unwrap();
            assert_eq!(col.null_count(), 0, "{id}: {name} has nulls");
            assert!(col.into_no_null_iter().all(f64::is_finite), "{id}: {name} not finite");
        }
        // Without label noise every sample is clean: the clean means are the overall ones.
        let clean = steps.column("theta_y_deg_mean_clean").unwrap().f64().unwrap();
        let all = steps.column("theta_y_deg_mean").unwrap().f64().unwrap();
        assert!((0..steps.height()).all(|i| (clean.get(i).unwrap() - all.get(i).unwrap()).abs() < 1e-9));
        assert_eq!(steps.column("coef_y_mean_noisy").unwrap().null_count(), steps.height());
        let lr: Vec<f64> = steps.column("lr").unwrap().f64().unwrap().into_no_null_iter().collect();
        let expected_lr = [0.05, 0.05, 0.05, 0.005, 0.005, 0.005];
        assert!(lr.iter().zip(expected_lr).all(|(a, b)| (a - b).abs() < 1e-12), "{id}: lr {lr:?}");
        let angles = store::read_parquet(&tdir.join("angles.parquet")).unwrap();
        // 90 bins of 2° at each of the 2 evaluation points, over all 96 training images.
        assert_eq!(angles.height(), 2 * 90);
        let counts: i64 = angles.column("count").unwrap().i64().unwrap().sum().unwrap();
        assert_eq!(counts, 2 * 96);
        assert_eq!(common::strings(&angles, "samples"), vec!["all"; 180]);
        let evals = store::read_parquet(&tdir.join("evals.parquet")).unwrap();
        // every epoch (2) × accuracy mean and std
        assert_eq!(evals.height(), 4, "{evals}");
        let acc = evals.clone().lazy().filter(col("metric").eq(lit("accuracy_mean"))).collect().unwrap();
        for v in acc.column("value").unwrap().f64().unwrap().into_no_null_iter() {
            assert!((0.0..=1.0).contains(&v));
        }
        for file in common::TRIAL_FRAMES {
            let (a, b) = (tdir.join(file), dir_b.trial(id).join(file));
            assert!(common::frames_equal(&a, &b), "{id}: {file} differs between runs");
        }
    }
    assert!(common::frames_equal(&dir_a.trials_table(), &dir_b.trials_table()));
}

#[test]
fn rerun_skips_done_trials() {
    let out = tempfile::tempdir().unwrap();
    let dir = run(out.path());
    let exp = common::experiment(common::TINY);
    let id = exp.trials[0].id();
    let before = std::fs::metadata(dir.trial(&id).join("steps.parquet")).unwrap().modified().unwrap();
    run(out.path());
    let after = std::fs::metadata(dir.trial(&id).join("steps.parquet")).unwrap().modified().unwrap();
    assert_eq!(before, after, "a done trial was retrained");
}
