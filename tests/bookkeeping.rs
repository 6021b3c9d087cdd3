//! The bookkeeping of a study costs the same per trial at any size: a second run of a finished
//! study opens no trial's parquet (each status.json records what bookkeeping needs), and
//! trials.parquet, written at a bounded rate during a run, merges rows with what other
//! processes wrote instead of dropping them. Wall-clock figures are in `benches/bookkeeping.rs`.

mod common;

use p2sbench::runner::{self, Registry, RunOptions};
use p2sbench::store::{self, ExperimentDir, State, TrialStatus};
use std::path::Path;

/// A seed sweep of `seeds` trials of the smallest useful kind.
fn sweep(seeds: usize) -> String {
    let seeds: Vec<String> = (1..=seeds).map(|s| s.to_string()).collect();
    format!(
        r#"name = "sweep"
[data]
identities = 6
heldout_identities = 6
images_per_identity = 2
image_size = 8
seed = 3
[model]
widths = [4]
embedding = 8
[train]
epochs = 1
batch_size = 12
seeds = [{}]
device = "cpu"
threads = 1
[[loss]]
name = "cosface"
[eval]
bootstrap = 20
"#,
        seeds.join(", ")
    )
}

/// The tests count the parquet files this process reads: they take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn table(dir: &ExperimentDir) -> polars::prelude::DataFrame {
    common::untimed_frame(&dir.trials_table())
}

#[test]
fn a_second_run_of_a_finished_study_opens_no_trial_parquet() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::experiment(&sweep(300));
    let dir = ExperimentDir::new(tmp.path(), &exp.name);
    let first = runner::run_experiment(&exp, &RunOptions::new(tmp.path())).unwrap();
    assert_eq!(first.len(), 300);
    assert!(first.iter().all(|s| s.state == State::Done && s.lfw_accuracy.is_some() && s.train_accuracy.is_some()));
    let after_first = table(&dir);
    assert_eq!(common::strings(&after_first, "status"), vec!["done"; 300]);
    let statuses: Vec<TrialStatus> =
        exp.trials.iter().map(|t| TrialStatus::read(&dir.trial(&t.id())).unwrap()).collect();

    let reads = store::trial_parquet_reads();
    let second = runner::run_experiment(&exp, &RunOptions::new(tmp.path())).unwrap();
    assert_eq!(store::trial_parquet_reads(), reads, "the second run opened a trial's parquet");
    // Every trial was skipped: its status is the one the first run wrote (one attempt).
    for (t, before) in exp.trials.iter().zip(&statuses) {
        assert_eq!(&TrialStatus::read(&dir.trial(&t.id())).unwrap(), before);
    }
    assert_eq!(before_after(&first), before_after(&second), "the same summaries, read from the statuses");
    assert!(table(&dir).equals_missing(&after_first), "the same trials.parquet");

    // The count does count: reading a trial's results opens its parquet files.
    p2sbench::results::Results::load(&dir.root).unwrap();
    assert!(store::trial_parquet_reads() > reads);
}

fn before_after(rows: &[runner::TrialSummary]) -> Vec<(String, Option<f64>, Option<f64>)> {
    rows.iter().map(|r| (r.id.clone(), r.lfw_accuracy, r.train_accuracy)).collect()
}

#[test]
fn a_done_trial_written_before_statuses_recorded_results_is_read_from_its_files() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::experiment(&sweep(2));
    let dir = ExperimentDir::new(tmp.path(), &exp.name);
    let first = runner::run_experiment(&exp, &RunOptions::new(tmp.path())).unwrap();
    let trial = dir.trial(&exp.trials[0].id());
    let status = TrialStatus::read(&trial).unwrap();
    TrialStatus { results: None, ..status.clone() }.write(&trial).unwrap();

    let reads = store::trial_parquet_reads();
    let second = runner::run_experiment(&exp, &RunOptions::new(tmp.path())).unwrap();
    assert!(store::trial_parquet_reads() > reads, "its files were read");
    assert_eq!(TrialStatus::read(&trial).unwrap().attempts, 1, "and it was skipped, not trained again");
    assert_eq!(before_after(&first), before_after(&second));
}

/// Writes a finished status for trial `k` of `exp`.
fn finish(dir: &ExperimentDir, exp: &p2sbench::spec::Experiment, k: usize, seconds: f64) -> String {
    let id = exp.trials[k].id();
    TrialStatus { state: State::Done, attempts: 1, seconds, ..Default::default() }.write(&dir.trial(&id)).unwrap();
    id
}

fn statuses(dir: &Path) -> Vec<String> {
    common::strings(&store::read_parquet(&dir.join("trials.parquet")).unwrap(), "status")
}

#[test]
fn registries_of_two_processes_keep_each_others_rows() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::experiment(&sweep(4));
    let dir = ExperimentDir::new(tmp.path(), &exp.name);
    // Two shards open the same results directory before either finished a trial.
    let (a, known) = Registry::open(&exp, &dir).unwrap();
    let (b, _) = Registry::open(&exp, &dir).unwrap();
    assert_eq!(known.trials.len(), 4);
    assert_eq!(statuses(&dir.root), vec!["pending"; 4]);

    let first = finish(&dir, &exp, 0, 1.0);
    a.record(&first).unwrap();
    a.flush().unwrap();
    assert_eq!(statuses(&dir.root), ["done", "pending", "pending", "pending"]);
    let third = finish(&dir, &exp, 2, 2.0);
    b.record(&third).unwrap();
    b.flush().unwrap();
    assert_eq!(statuses(&dir.root), ["done", "pending", "done", "pending"], "b kept a's row");
    // a, which still holds the third trial as pending, does not set it back.
    let second = finish(&dir, &exp, 1, 3.0);
    a.record(&second).unwrap();
    a.flush().unwrap();
    assert_eq!(statuses(&dir.root), ["done", "done", "done", "pending"], "a kept b's row");
    // A trial that finished in a process that has not written the table yet: the run's last
    // table is rebuilt from every trial directory.
    finish(&dir, &exp, 3, 4.0);
    b.reload(&exp).unwrap();
    assert_eq!(statuses(&dir.root), vec!["done"; 4]);
}

#[test]
fn results_load_from_the_cache_until_a_trial_file_changes() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::experiment(&sweep(3));
    let dir = ExperimentDir::new(tmp.path(), &exp.name);
    runner::run_experiment(&exp, &RunOptions::new(tmp.path())).unwrap();
    let _ = std::fs::remove_dir_all(dir.cache());
    let frames = |r: &p2sbench::results::Results| {
        [r.steps.clone().unwrap(), r.evals.clone().unwrap(), r.angles.clone().unwrap()]
    };

    let reads = store::trial_parquet_reads();
    let cold = p2sbench::results::Results::load(&dir.root).unwrap();
    let after_cold = store::trial_parquet_reads();
    assert!(after_cold - reads >= 9, "the first load reads every trial's files");
    assert!(dir.cache().join("steps.parquet").is_file() && dir.cache().join("evals.parquet.json").is_file());
    let warm = p2sbench::results::Results::load(&dir.root).unwrap();
    assert_eq!(store::trial_parquet_reads(), after_cold, "the second load reads the cache only");
    for (a, b) in frames(&cold).iter().zip(frames(&warm).iter()) {
        assert!(a.equals_missing(b), "{a}\n{b}");
    }

    // One trial's evaluations change (a rerun rewrites its file): only that trial is read again.
    let trial = dir.trial(&exp.trials[1].id());
    let path = trial.join("evals.parquet");
    let mut evals = store::read_parquet(&path).unwrap();
    let shifted = evals.column("value").unwrap().as_materialized_series() + 0.5;
    evals.with_column(shifted).unwrap();
    store::write_parquet(&path, &mut evals).unwrap();
    let before = store::trial_parquet_reads();
    let changed = p2sbench::results::Results::load(&dir.root).unwrap();
    assert_eq!(store::trial_parquet_reads() - before, 1, "only the changed file is read");
    let values = |r: &p2sbench::results::Results| -> Vec<f64> {
        r.evals.as_ref().unwrap().column("value").unwrap().f64().unwrap().into_no_null_iter().collect()
    };
    let (old, new) = (values(&warm), values(&changed));
    let ids = common::strings(changed.evals.as_ref().unwrap(), "trial");
    for ((o, n), id) in old.iter().zip(&new).zip(&ids) {
        let expected = if *id == exp.trials[1].id() { o + 0.5 } else { *o };
        assert!((n - expected).abs() < 1e-12, "{id}: {o} → {n}");
    }
    // A cache that does not read is ignored.
    std::fs::write(dir.cache().join("evals.parquet"), b"not parquet").unwrap();
    let rebuilt = p2sbench::results::Results::load(&dir.root).unwrap();
    assert_eq!(values(&rebuilt), new);
}

#[test]
fn a_report_from_the_cache_equals_one_from_the_trial_files() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let text = sweep(2)
        .replace("[[loss]]\nname = \"cosface\"\n", "[[loss]]\nname = \"cosface\"\n[[loss]]\nname = \"p2sgrad\"\n");
    let exp = common::experiment(&text);
    let dir = ExperimentDir::new(tmp.path(), &exp.name);
    runner::run_experiment(&exp, &RunOptions::new(tmp.path())).unwrap();
    let _ = std::fs::remove_dir_all(dir.cache());
    p2sbench::report::write_report(&dir.root).unwrap();
    let cold = std::fs::read_to_string(dir.report()).unwrap();
    assert!(cold.contains("Comparisons"), "the report compares the two losses from their replicates");
    assert!(dir.cache().join("bootstrap.parquet").is_file());
    let reads = store::trial_parquet_reads();
    p2sbench::report::write_report(&dir.root).unwrap();
    assert_eq!(store::trial_parquet_reads(), reads, "the second report reads the cache only");
    assert_eq!(std::fs::read_to_string(dir.report()).unwrap(), cold);
}
