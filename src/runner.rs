//! Runs an experiment end to end: lays out the results directory, generates the shared data
//! once, trains each trial (skipping those already done), writes each trial's files as it
//! finishes, keeps trials.parquet current, and prints the summary table.

use crate::data::synthetic;
use crate::eval::verification;
use crate::loss::ParamValue;
use crate::spec::{Experiment, TrialConfig};
use crate::store::{self, trial_files, ExperimentDir, State, TrialStatus};
use crate::train::{self, telemetry, TrialData};
use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use polars::prelude::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results root; the experiment goes to `<out>/<name>/`.
    pub out: PathBuf,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
}

/// `checksums.json`: what makes trials comparable: identical initial parameters and data order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Checksums {
    pub init: String,
    pub data_order: String,
}

impl Checksums {
    pub fn read(trial_dir: &std::path::Path) -> Option<Checksums> {
        serde_json::from_str(&std::fs::read_to_string(trial_dir.join(trial_files::CHECKSUMS)).ok()?).ok()
    }
}

/// One line of the closing summary.
#[derive(Debug, Clone)]
pub struct TrialSummary {
    pub id: String,
    pub loss: String,
    pub params: String,
    pub seed: u64,
    pub state: State,
    pub lfw_accuracy: Option<f64>,
    pub seconds: f64,
}

/// Runs every trial of `exp` that is not already done; returns one summary per trial.
pub fn run_experiment(exp: &Experiment, opts: &RunOptions) -> Result<Vec<TrialSummary>> {
    let dir = ExperimentDir::new(&opts.out, &exp.name);
    std::fs::create_dir_all(&dir.root).with_context(|| format!("creating {}", dir.root.display()))?;
    store::write_atomic(&dir.spec(), exp.source.as_bytes())?;
    let first = &exp.trials[0];
    let device = train::resolve_device(first.train.device)?;
    if first.train.threads > 0 {
        tch::set_num_threads(first.train.threads as i32);
    }
    let bars = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
        .expect("valid template")
        .progress_chars("=> ");
    let overall =
        bars.add(ProgressBar::new(exp.trials.len() as u64).with_style(style.clone()).with_prefix("experiment"));
    let started = Instant::now();
    let data = shared_data(first);
    bars.println(format!(
        "{}: {} trials on {:?}, data generated in {:.1}s",
        exp.name,
        exp.trials.len(),
        device,
        started.elapsed().as_secs_f64()
    ))?;
    let mut summaries = Vec::new();
    for cfg in &exp.trials {
        let id = cfg.id();
        let trial_dir = dir.trial(&id);
        overall.set_message(id.clone());
        let previous = TrialStatus::read(&trial_dir);
        if let Some(status) = previous.as_ref().filter(|s| s.state == State::Done) {
            summaries.push(summary(cfg, status, &trial_dir));
            overall.inc(1);
            continue;
        }
        let attempts = previous.map_or(0, |s| s.attempts) + 1;
        store::write_atomic(&trial_dir.join(trial_files::CONFIG), toml::to_string(cfg)?.as_bytes())?;
        TrialStatus { state: State::Running, attempts, seconds: 0.0, error: None, diverged_step: None }
            .write(&trial_dir)?;
        let total_steps = cfg.train.epochs * train::steps_per_epoch(data.train.len(), cfg.train.batch_size);
        let bar = bars.add(ProgressBar::new(total_steps as u64).with_style(style.clone()).with_prefix("trial"));
        bar.set_message(id.clone());
        let t0 = Instant::now();
        let result = train::train_trial(cfg, &data, device, &mut |s| bar.set_position(s as u64));
        bar.finish_and_clear();
        let seconds = t0.elapsed().as_secs_f64();
        let status = match result {
            Ok(outcome) => {
                store::write_parquet(
                    &trial_dir.join(trial_files::STEPS),
                    &mut telemetry::steps_frame(&id, &outcome.steps)?,
                )?;
                store::write_parquet(
                    &trial_dir.join(trial_files::EVALS),
                    &mut telemetry::evals_frame(&id, &outcome.evals)?,
                )?;
                let checksums =
                    Checksums { init: outcome.init_checksum.clone(), data_order: outcome.data_order_checksum.clone() };
                store::write_atomic(
                    &trial_dir.join(trial_files::CHECKSUMS),
                    serde_json::to_string_pretty(&checksums)?.as_bytes(),
                )?;
                let state = if outcome.diverged_step.is_some() { State::Diverged } else { State::Done };
                TrialStatus { state, attempts, seconds, error: None, diverged_step: outcome.diverged_step }
            }
            Err(e) => TrialStatus {
                state: State::Failed,
                attempts,
                seconds,
                error: Some(format!("{e:#}")),
                diverged_step: None,
            },
        };
        status.write(&trial_dir)?;
        summaries.push(summary(cfg, &status, &trial_dir));
        write_trials_table(&dir, exp)?;
        overall.inc(1);
    }
    overall.finish_and_clear();
    write_trials_table(&dir, exp)?;
    Ok(summaries)
}

/// Generates the training and held-out identities and the LFW-style pairs.
pub fn shared_data(cfg: &TrialConfig) -> TrialData {
    let train = synthetic::training_set(&cfg.data);
    let heldout = synthetic::heldout_set(&cfg.data);
    let lfw_pairs =
        verification::lfw_style_pairs(&heldout.labels, cfg.eval.lfw.folds, cfg.eval.lfw.pairs_per_fold, cfg.data.seed);
    TrialData { train, heldout, lfw_pairs }
}

fn final_metric(trial_dir: &std::path::Path, protocol: &str, metric: &str) -> Option<f64> {
    let df = store::read_parquet(&trial_dir.join(trial_files::EVALS)).ok()?;
    let out = df
        .lazy()
        .filter(col("protocol").eq(lit(protocol)).and(col("metric").eq(lit(metric))))
        .sort(["step"], Default::default())
        .select([col("value").last()])
        .collect()
        .ok()?;
    out.column("value").ok()?.f64().ok()?.get(0)
}

fn summary(cfg: &TrialConfig, status: &TrialStatus, trial_dir: &std::path::Path) -> TrialSummary {
    TrialSummary {
        id: cfg.id(),
        loss: cfg.loss.name.clone(),
        params: cfg.loss.params_text(),
        seed: cfg.seed,
        state: status.state,
        lfw_accuracy: final_metric(trial_dir, "lfw", "accuracy_mean"),
        seconds: status.seconds,
    }
}

/// trials.parquet: one row per trial of the experiment, with every hyper-parameter as a column.
pub fn write_trials_table(dir: &ExperimentDir, exp: &Experiment) -> Result<()> {
    let trials = &exp.trials;
    let n = trials.len();
    let mut ids = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut init_checksums = Vec::with_capacity(n);
    let mut order_checksums = Vec::with_capacity(n);
    let mut seconds = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut acc_mean = Vec::with_capacity(n);
    let mut acc_std = Vec::with_capacity(n);
    for cfg in trials {
        let id = cfg.id();
        let tdir = dir.trial(&id);
        let status = TrialStatus::read(&tdir);
        states.push(status.as_ref().map_or("pending", |s| s.state.as_str()));
        seconds.push(status.as_ref().map(|s| s.seconds));
        attempts.push(status.as_ref().map_or(0, |s| s.attempts as i64));
        let checksums = Checksums::read(&tdir);
        init_checksums.push(checksums.as_ref().map(|c| c.init.clone()));
        order_checksums.push(checksums.map(|c| c.data_order));
        acc_mean.push(final_metric(&tdir, "lfw", "accuracy_mean"));
        acc_std.push(final_metric(&tdir, "lfw", "accuracy_std"));
        ids.push(id);
    }
    let mut columns = vec![
        Column::new("trial".into(), ids),
        Column::new("loss".into(), trials.iter().map(|t| t.loss.name.as_str()).collect::<Vec<_>>()),
        Column::new("params".into(), trials.iter().map(|t| t.loss.params_text()).collect::<Vec<_>>()),
    ];
    let names: BTreeSet<&String> = trials.iter().flat_map(|t| t.loss.params.keys()).collect();
    for name in names {
        let values: Vec<Option<&ParamValue>> = trials.iter().map(|t| t.loss.params.get(name)).collect();
        let column = if values.iter().flatten().all(|v| v.as_f64().is_some()) {
            Column::new(name.as_str().into(), values.iter().map(|v| v.and_then(ParamValue::as_f64)).collect::<Vec<_>>())
        } else {
            Column::new(name.as_str().into(), values.iter().map(|v| v.map(ParamValue::short)).collect::<Vec<_>>())
        };
        columns.push(column);
    }
    columns.extend([
        Column::new("seed".into(), trials.iter().map(|t| t.seed as i64).collect::<Vec<_>>()),
        Column::new("noise".into(), vec!["none"; n]),
        Column::new("status".into(), states),
        Column::new("attempts".into(), attempts),
        Column::new("init_checksum".into(), init_checksums),
        Column::new("data_order_checksum".into(), order_checksums),
        Column::new("lfw_accuracy_mean".into(), acc_mean),
        Column::new("lfw_accuracy_std".into(), acc_std),
        Column::new("seconds".into(), seconds),
    ]);
    let mut df = DataFrame::new(n, columns)?;
    store::write_parquet(&dir.trials_table(), &mut df)
}

/// The closing table: loss, parameters, held-out accuracy, seconds.
pub fn format_summary(rows: &[TrialSummary]) -> String {
    let mut out = format!(
        "{:<12} {:<40} {:>5} {:>9} {:>12} {:>8}\n",
        "loss", "parameters", "seed", "status", "lfw acc %", "seconds"
    );
    for r in rows {
        let acc = r.lfw_accuracy.map_or("-".to_string(), |a| format!("{:.2}", a * 100.0));
        out.push_str(&format!(
            "{:<12} {:<40} {:>5} {:>9} {:>12} {:>8.1}\n",
            r.loss,
            r.params,
            r.seed,
            r.state.as_str(),
            acc,
            r.seconds
        ));
    }
    out
}
