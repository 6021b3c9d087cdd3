//! Runs an experiment end to end: lays out the results directory, generates the shared data
//! once, trains each trial (skipping those already done), writes each trial's files as it
//! finishes, keeps trials.parquet current, and prints the summary table.

use crate::data::ImageSet;
use crate::data::{self, noise};
use crate::extract::suite::Suite;
use crate::loss::ParamValue;
use crate::model::Network;
use crate::spec::{Experiment, TrialConfig};
use crate::store::schema;
use crate::store::{self, trial_files, ExperimentDir, State, TrialStatus};
use crate::train;
use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use polars::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results root; the experiment goes to `<out>/<name>/`.
    pub out: PathBuf,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
    /// Trials trained at once; the cores are split between them.
    pub jobs: usize,
    /// Stop starting trials after the first one that fails or diverges.
    pub fail_fast: bool,
}

impl RunOptions {
    pub fn new(out: impl Into<PathBuf>) -> RunOptions {
        RunOptions { out: out.into(), progress: false, jobs: 1, fail_fast: false }
    }
}

/// `checksums.json`: what makes trials comparable: identical initial parameters and data order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Checksums {
    pub init: String,
    pub data_order: String,
}

impl Checksums {
    pub fn read(trial_dir: &Path) -> Option<Checksums> {
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
    pub noise: String,
    pub state: State,
    pub lfw_accuracy: Option<f64>,
    pub seconds: f64,
    pub diverged_step: Option<i64>,
}

/// Runs every trial of `exp` that is not already done; see [`run_selected`].
pub fn run_experiment(exp: &Experiment, opts: &RunOptions) -> Result<Vec<TrialSummary>> {
    run_selected(exp, &exp.trials, opts)
}

/// Runs the `selected` trials of `exp` (all, or those `--only`/`--skip` kept) that are not
/// already done, resuming unfinished ones from their checkpoints; returns one summary per
/// selected trial, in file order. trials.parquet always lists every trial of the file. Holds the
/// results directory's lock for the whole run.
pub fn run_selected(exp: &Experiment, selected: &[TrialConfig], opts: &RunOptions) -> Result<Vec<TrialSummary>> {
    let first = &exp.trials[0];
    let device = crate::model::device(first.train.device).map_err(|m| anyhow::anyhow!("train.device: {m}"))?;
    // Data first: a dataset that cannot be read leaves no results directory behind.
    let started = Instant::now();
    let data = shared_data(first)?;
    let dir = ExperimentDir::new(&opts.out, &exp.name);
    let _lock = store::lock(&dir.root)?;
    store::write_atomic(&dir.spec(), exp.source.as_bytes())?;
    let jobs = opts.jobs.max(1).min(selected.len().max(1));
    let threads = match first.train.threads {
        0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) / jobs).max(1),
        n => n,
    };
    let bars = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = crate::progress::style();
    let overall = bars.add(ProgressBar::new(selected.len() as u64).with_style(style.clone()).with_prefix("experiment"));
    let stale = stale_trials(&dir, exp);
    if !stale.is_empty() {
        bars.println(format!(
            "{} trial(s) in {} are no longer in the experiment file (kept, not deleted): {}",
            stale.len(),
            dir.root.display(),
            stale.join(", ")
        ))?;
    }
    bars.println(format!(
        "{}: {} trials ({} selected) on {device:?}, {jobs} at a time with {threads} thread(s) each; data generated in {:.1}s",
        exp.name,
        exp.trials.len(),
        selected.len(),
        started.elapsed().as_secs_f64()
    ))?;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<TrialSummary>>> = Mutex::new(vec![None; selected.len()]);
    let table = Mutex::new(());
    let worker = || -> Result<()> {
        tch::set_num_threads(threads as i32);
        loop {
            let k = next.fetch_add(1, Ordering::SeqCst);
            if k >= selected.len() || stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let summary = run_trial(&selected[k], &dir, &data, device, &bars, &style)?;
            if opts.fail_fast && matches!(summary.state, State::Failed | State::Diverged) {
                stop.store(true, Ordering::SeqCst);
            }
            results.lock().expect("no poisoned lock")[k] = Some(summary);
            let _table = table.lock().expect("no poisoned lock");
            write_trials_table(&dir, exp)?;
            overall.inc(1);
        }
    };
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..jobs).map(|_| scope.spawn(worker)).collect();
        for h in handles {
            h.join().expect("trial worker panicked")?;
        }
        Ok(())
    })?;
    overall.finish_and_clear();
    write_trials_table(&dir, exp)?;
    Ok(results.into_inner().expect("no poisoned lock").into_iter().flatten().collect())
}

/// Trains one trial (or resumes it from its checkpoint) unless it is done; writes its files.
fn run_trial(
    cfg: &TrialConfig,
    dir: &ExperimentDir,
    data: &TrialData,
    device: tch::Device,
    bars: &MultiProgress,
    style: &ProgressStyle,
) -> Result<TrialSummary> {
    let id = cfg.id();
    let trial_dir = dir.trial(&id);
    let previous = TrialStatus::read(&trial_dir);
    if let Some(status) = previous.as_ref().filter(|s| s.state == State::Done) {
        return Ok(summary(cfg, status, &trial_dir));
    }
    let attempts = previous.as_ref().map_or(0, |s| s.attempts) + 1;
    let earlier_seconds = previous.as_ref().map_or(0.0, |s| s.seconds);
    store::write_atomic(&trial_dir.join(trial_files::CONFIG), toml::to_string(cfg)?.as_bytes())?;
    TrialStatus { state: State::Running, attempts, seconds: earlier_seconds, error: None, diverged_step: None }
        .write(&trial_dir)?;
    let train_set = noise::apply(&data.train, &cfg.data, &cfg.noise);
    let total_steps = cfg.train.epochs * train::steps_per_epoch(train_set.images.len(), cfg.train.batch_size);
    let bar = bars.add(ProgressBar::new(total_steps as u64).with_style(style.clone()).with_prefix("trial"));
    bar.set_message(id.clone());
    let t0 = Instant::now();
    let checkpoint_dir = trial_dir.join(trial_files::CHECKPOINT);
    let checkpointing = train::Checkpointing { dir: &checkpoint_dir, trial: &id };
    let result =
        train::train_trial(cfg, &train_set, &HeldoutEvaluation { cfg, data }, device, Some(&checkpointing), &mut |s| {
            bar.set_position(s as u64)
        });
    bar.finish_and_clear();
    let seconds = earlier_seconds + t0.elapsed().as_secs_f64();
    let status = match result {
        Ok(outcome) => {
            let rows = &outcome.rows;
            for (file, mut frame) in [
                (trial_files::STEPS, schema::steps_frame(&id, &rows.steps)?),
                (trial_files::EVALS, schema::evals_frame(&id, &rows.evals)?),
                (trial_files::ANGLES, schema::angles_frame(&id, &rows.angles)?),
            ] {
                store::write_parquet(&trial_dir.join(file), &mut frame)?;
            }
            let checksums = Checksums { init: outcome.init_checksum, data_order: outcome.data_order_checksum };
            store::write_atomic(
                &trial_dir.join(trial_files::CHECKSUMS),
                serde_json::to_string_pretty(&checksums)?.as_bytes(),
            )?;
            let state = if outcome.diverged_step.is_some() { State::Diverged } else { State::Done };
            TrialStatus { state, attempts, seconds, error: None, diverged_step: outcome.diverged_step }
        }
        Err(e) => {
            TrialStatus { state: State::Failed, attempts, seconds, error: Some(format!("{e:#}")), diverged_step: None }
        }
    };
    status.write(&trial_dir)?;
    Ok(summary(cfg, &status, &trial_dir))
}

/// Trial directories under the results that the experiment file no longer produces.
pub fn stale_trials(dir: &ExperimentDir, exp: &Experiment) -> Vec<String> {
    let current: BTreeSet<String> = exp.trials.iter().map(|t| t.id()).collect();
    let Ok(entries) = std::fs::read_dir(dir.root.join("trials")) else { return Vec::new() };
    let mut stale: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !current.contains(name))
        .collect();
    stale.sort();
    stale
}

/// The data every trial of an experiment shares.
pub struct TrialData {
    pub train: ImageSet,
    pub heldout: ImageSet,
    /// The evaluation protocols `[eval]` selects: built-in ones constructed over the held-out
    /// identities, real-file ones read once.
    pub protocols: Suite,
}

/// A trial's evaluation as training calls it: the suite's protocols on the held-out data.
pub struct HeldoutEvaluation<'a> {
    pub cfg: &'a TrialConfig,
    pub data: &'a TrialData,
}

impl train::Evaluate for HeldoutEvaluation<'_> {
    fn evaluate(&self, net: &Network, device: tch::Device, step: i64) -> Result<Vec<schema::EvalRow>> {
        let results = self.data.protocols.run(&self.cfg.eval, &self.cfg.data, net, &self.data.heldout, device)?;
        let mut rows = Vec::new();
        for r in &results {
            for (variant, metric, value) in r.rows() {
                rows.push(schema::EvalRow { step, protocol: r.protocol.clone(), variant, metric, value });
            }
        }
        Ok(rows)
    }
}

/// Generates (or reads) the training and held-out identities and prepares the evaluation protocols.
pub fn shared_data(cfg: &TrialConfig) -> Result<TrialData> {
    let train = data::training_set(&cfg.data)?;
    let heldout = data::heldout_set(&cfg.data)?;
    let protocols = Suite::new(&cfg.eval, &cfg.data, &heldout.labels)?;
    Ok(TrialData { train, heldout, protocols })
}

fn final_metric(trial_dir: &Path, protocol: &str, metric: &str) -> Option<f64> {
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

fn summary(cfg: &TrialConfig, status: &TrialStatus, trial_dir: &Path) -> TrialSummary {
    TrialSummary {
        id: cfg.id(),
        loss: cfg.loss.name.clone(),
        params: cfg.loss.params_text(),
        seed: cfg.seed,
        noise: cfg.noise.label(),
        state: status.state,
        lfw_accuracy: final_metric(trial_dir, "lfw", "accuracy_mean"),
        seconds: status.seconds,
        diverged_step: status.diverged_step,
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
    let mut diverged = Vec::with_capacity(n);
    let mut acc_mean = Vec::with_capacity(n);
    let mut acc_std = Vec::with_capacity(n);
    for cfg in trials {
        let id = cfg.id();
        let tdir = dir.trial(&id);
        let status = TrialStatus::read(&tdir);
        states.push(status.as_ref().map_or("pending", |s| s.state.as_str()));
        seconds.push(status.as_ref().map(|s| s.seconds));
        attempts.push(status.as_ref().map_or(0, |s| s.attempts as i64));
        diverged.push(status.as_ref().and_then(|s| s.diverged_step));
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
        Column::new("noise".into(), trials.iter().map(|t| t.noise.label()).collect::<Vec<_>>()),
        Column::new(
            "noise_kind".into(),
            trials.iter().map(|t| format!("{:?}", t.noise.kind).to_lowercase()).collect::<Vec<_>>(),
        ),
        Column::new("noise_ratio".into(), trials.iter().map(|t| t.noise.ratio).collect::<Vec<_>>()),
        Column::new("status".into(), states),
        Column::new("attempts".into(), attempts),
        Column::new("diverged_step".into(), diverged),
        Column::new("init_checksum".into(), init_checksums),
        Column::new("data_order_checksum".into(), order_checksums),
        Column::new("lfw_accuracy_mean".into(), acc_mean),
        Column::new("lfw_accuracy_std".into(), acc_std),
        Column::new("seconds".into(), seconds),
    ]);
    let mut df = DataFrame::new(n, columns)?;
    store::write_parquet(&dir.trials_table(), &mut df)
}

/// The closing table: loss, parameters, noise, held-out accuracy, seconds.
pub fn format_summary(rows: &[TrialSummary]) -> String {
    let header = ["loss", "parameters", "seed", "noise", "status", "lfw acc %", "seconds"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let acc = r.lfw_accuracy.map_or("-".to_string(), |a| format!("{:.2}", a * 100.0));
            let state = match r.diverged_step {
                Some(step) => format!("{}@{step}", r.state.as_str()),
                None => r.state.as_str().to_string(),
            };
            vec![
                r.loss.clone(),
                r.params.clone(),
                r.seed.to_string(),
                r.noise.clone(),
                state,
                acc,
                format!("{:.1}", r.seconds),
            ]
        })
        .collect();
    text_columns(&header, &cells, &[false, false, true, false, true, true, true])
}

/// A plain-text table, each column as wide as its widest cell (header included), columns
/// separated by two spaces, `right[i]` right-aligning column i; no trailing spaces.
pub fn text_columns(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let all = std::iter::once(header.iter().map(|h| h.to_string()).collect::<Vec<_>>()).chain(rows.iter().cloned());
    let all: Vec<Vec<String>> = all.collect();
    let width = |i: usize| all.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let mut out = String::new();
    for row in &all {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| if right.get(i) == Some(&true) { format!("{c:>w$}") } else { format!("{c:<w$}") })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
