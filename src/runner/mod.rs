//! Runs an experiment end to end: lays out the results directory, generates the shared data
//! once, trains each trial (skipping those already done), writes each trial's files as it
//! finishes, keeps trials.parquet current, and prints the summary table. Several processes can
//! share one results directory as shards (`--shard I/N`): each trains its part of the trials,
//! every trial under a lock of its own, and each keeps trials.parquet current through its
//! [`Registry`], merging with what the others wrote.

mod registry;

pub use registry::{refresh_statuses, write_trials_table, Known, Registry};

use crate::data::{self, noise};
use crate::data::{Dataset, ImageSet};
use crate::extract::suite::Suite;
use crate::model::Network;
use crate::spec::shard::Shard;
use crate::spec::{EvalSpec, Experiment, SearchMethod, SelectSpec, Split, SplitPart, TrialConfig};
use crate::store::schema;
use crate::store::{self, trial_files, ExperimentDir, State, TrialResults, TrialStatus};
use crate::train;
use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Train only this shard of the selected trials, sharing the results directory with the
    /// other shards' processes.
    pub shard: Option<Shard>,
    /// A stop request (SIGTERM sets it in `p2sbench run`): running trials save a checkpoint after
    /// their current step, no trial starts, and the run returns [`Interrupted`].
    pub stop: Option<&'static AtomicBool>,
}

impl RunOptions {
    pub fn new(out: impl Into<PathBuf>) -> RunOptions {
        RunOptions { out: out.into(), progress: false, jobs: 1, fail_fast: false, shard: None, stop: None }
    }
}

/// The run stopped on request ([`RunOptions::stop`]) before finishing its trials.
#[derive(Debug, thiserror::Error)]
#[error("stopped on request (SIGTERM): unfinished trials keep their checkpoints and resume from them when run again")]
pub struct Interrupted;

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
    /// Mean batch accuracy over the logged steps of the last epoch trained.
    pub train_accuracy: Option<f64>,
    pub seconds: f64,
    pub diverged_step: Option<i64>,
    /// Why a failed trial failed (status.json's `error`).
    pub error: Option<String>,
}

/// Runs every trial of `exp` that is not already done; see [`run_selected`].
pub fn run_experiment(exp: &Experiment, opts: &RunOptions) -> Result<Vec<TrialSummary>> {
    run_selected(exp, &exp.trials, opts)
}

/// Runs the `selected` trials of `exp` (all, or those `--only`/`--skip` kept; with a shard, its
/// part of them) that are not already done, resuming unfinished ones from their checkpoints;
/// returns one summary per trial it ran or found, in file order. Under `[select]` the selected
/// trials are the search; the final trials of every group whose search is complete (and whose
/// chosen setting was selected) follow. A shard trains its part of those finals, and only once
/// every selected search trial has finished in whichever shard, so that every shard computes
/// the same finals (`p2sbench slurm` runs the shards a second time for them).
/// trials.parquet lists every trial of the file (and the final trials known). Holds the results
/// directory's lock for the whole run: exclusively, or shared with the other shards.
pub fn run_selected(exp: &Experiment, selected: &[TrialConfig], opts: &RunOptions) -> Result<Vec<TrialSummary>> {
    let first = &exp.trials[0];
    let device = crate::model::device(first.train.device).map_err(|m| anyhow::anyhow!("train.device: {m}"))?;
    // Data first: a dataset that cannot be read leaves no results directory behind.
    let started = Instant::now();
    let data = DataCache::build(exp)?;
    let dir = ExperimentDir::new(&opts.out, &exp.name);
    let _lock = match opts.shard {
        Some(_) => store::lock_shared(&dir.root)?,
        None => store::lock(&dir.root)?,
    };
    store::write_atomic(&dir.spec(), exp.source.as_bytes())?;
    let mine = opts.shard.map_or_else(|| selected.to_vec(), |s| s.pick(selected));
    let pool = Pool::new(opts, first, mine.len());
    let shard = opts.shard.map_or(String::new(), |s| format!(", shard {s}: {} of them", mine.len()));
    pool.say(format!(
        "{}: {} trials ({} selected{shard}) on {device:?}, {} at a time with {} thread(s) each; data ready in {:.1}s",
        exp.name,
        exp.trials.len(),
        selected.len(),
        pool.jobs,
        pool.threads,
        started.elapsed().as_secs_f64()
    ))?;
    let (registry, _) = Registry::open(exp, &dir)?;
    let search = match &exp.select {
        Some(select) if select.method == SearchMethod::Halving => {
            // Any process may take any selected trial's next rung; its own part first.
            let rest = selected.iter().filter(|t| !mine.iter().any(|m| m.id() == t.id()));
            let order: Vec<TrialConfig> = mine.iter().chain(rest).cloned().collect();
            pool.halve(exp, select, &order, &dir, &data, device, &registry)
        }
        _ => pool.run(&Job::whole(&mine), &dir, &data, device, &registry),
    };
    let (mut summaries, stopped) = flushed(&registry, search)?;
    if let (Some(select), false) = (&exp.select, stopped || pool.interrupted()) {
        let known = registry.reload(exp)?;
        for p in &known.pending {
            pool.say(match p {
                crate::select::Pending::Searching { group, unfinished } => {
                    format!("select: {group}: {unfinished} search trial(s) unfinished, no final trials yet")
                }
                crate::select::Pending::NothingDone { group } => {
                    format!("select: {group}: every search trial failed or diverged, nothing to choose")
                }
            })?;
        }
        for c in &known.choices {
            pool.say(format!(
                "select: {}: chose {} ({} = {:.4} on validation, best of {} settings)",
                c.group, c.setting, select.metric, c.score, c.settings_searched
            ))?;
        }
        let chosen = finals_to_run(select, &known.choices, selected);
        let chosen = match opts.shard {
            None => chosen,
            Some(shard) => match unfinished(selected, &dir) {
                0 => shard.pick(&chosen),
                n => {
                    pool.say(format!(
                        "select: {n} selected search trial(s) unfinished in other shards: the final trials run when the shards run again after every search trial has finished"
                    ))?;
                    Vec::new()
                }
            },
        };
        let (finals, _) = flushed(&registry, pool.run(&Job::whole(&chosen), &dir, &data, device, &registry))?;
        summaries.extend(finals);
    }
    pool.overall.finish_and_clear();
    let known = registry.reload(exp)?;
    if pool.interrupted() {
        return Err(Interrupted.into());
    }
    let stale = stale_trials(&dir, &known.trials);
    if !stale.is_empty() {
        println!(
            "{} trial(s) in {} are no longer in the experiment file (kept, not deleted): {}",
            stale.len(),
            dir.root.display(),
            stale.join(", ")
        );
    }
    Ok(summaries)
}

/// `result`, with trials.parquet written first when it is an error (the run ends there).
fn flushed<T>(registry: &Registry, result: Result<T>) -> Result<T> {
    if result.is_err() {
        let _ = registry.flush();
    }
    result
}

/// The final trials that `selected` search trials lead to: those of the `choices` whose chosen
/// setting was among the selected ones.
fn finals_to_run(select: &SelectSpec, choices: &[crate::select::Choice], selected: &[TrialConfig]) -> Vec<TrialConfig> {
    let searched: BTreeSet<String> = selected.iter().map(setting_key).collect();
    let finals = crate::select::final_trials(select, choices);
    finals.into_iter().filter(|t| searched.contains(&setting_key(t))).collect()
}

/// How many of `trials` have not finished (done, pruned, failed or diverged) in the results
/// directory.
fn unfinished(trials: &[TrialConfig], dir: &ExperimentDir) -> usize {
    let finished = |t: &TrialConfig| {
        TrialStatus::read(&dir.trial(&t.id()))
            .is_some_and(|s| matches!(s.state, State::Done | State::Pruned | State::Failed | State::Diverged))
    };
    trials.iter().filter(|t| !finished(t)).count()
}

/// How many trials of a run over `selected` have not finished in the results directory, in
/// whichever process: the selected ones and, under `[select]`, the final trials they lead to
/// (once known). A shard renders the plots and the report only when this is 0.
pub fn unfinished_trials(exp: &Experiment, selected: &[TrialConfig], dir: &ExperimentDir) -> Result<usize> {
    let mut left = unfinished(selected, dir);
    if let Some(select) = &exp.select {
        let (choices, _) = crate::select::choose(exp, dir)?;
        left += unfinished(&finals_to_run(select, &choices, selected), dir);
    }
    Ok(left)
}

/// A trial's setting without its seed: what `--only`/`--skip` kept of the search decides which
/// final trials run.
fn setting_key(t: &TrialConfig) -> String {
    format!(
        "{} {} {} {}",
        t.loss.label(),
        t.axes_text(),
        t.noise.label(),
        t.split.map_or(0, |s| s.validation_identities)
    )
}

/// A trial to train, and how far: to the end, or to a rung of successive halving.
#[derive(Debug, Clone)]
struct Job {
    cfg: TrialConfig,
    /// The epochs of the rung to reach (`train.epochs` for the last); `None` outside halving.
    rung: Option<usize>,
}

impl Job {
    fn whole(trials: &[TrialConfig]) -> Vec<Job> {
        trials.iter().map(|t| Job { cfg: t.clone(), rung: None }).collect()
    }
}

/// How long a process under halving waits before looking again for work, while the only work
/// left is in other processes' hands (their results may promote settings it can then train).
const HALVING_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Passes of halving with the same work, one after another, before it stops as stuck.
const HALVING_REPEATS: usize = 5;

/// The worker threads that train trials, their progress bars, and the core split between them.
struct Pool {
    jobs: usize,
    threads: usize,
    fail_fast: bool,
    stop: Option<&'static AtomicBool>,
    bars: MultiProgress,
    overall: ProgressBar,
    style: ProgressStyle,
}

impl Pool {
    fn new(opts: &RunOptions, first: &TrialConfig, selected: usize) -> Pool {
        let jobs = opts.jobs.max(1).min(selected.max(1));
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
        let overall = bars.add(ProgressBar::new(selected as u64).with_style(style.clone()).with_prefix("experiment"));
        Pool { jobs, threads, fail_fast: opts.fail_fast, stop: opts.stop, bars, overall, style }
    }

    /// Whether a stop was requested ([`RunOptions::stop`]).
    fn interrupted(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }

    fn say(&self, line: String) -> std::io::Result<()> {
        say(&self.bars, line)
    }

    /// Successive halving over the search trials `order` (this process's part first): trains
    /// every trial that has a rung to reach and that no other process is training, prunes those
    /// a complete rung stops, and looks again, until no work is left; waits while only other
    /// processes have work (it may promote settings). One summary per trial, in `order`.
    #[allow(clippy::too_many_arguments)]
    fn halve(
        &self,
        exp: &Experiment,
        select: &SelectSpec,
        order: &[TrialConfig],
        dir: &ExperimentDir,
        data: &DataCache,
        device: tch::Device,
        registry: &Registry,
    ) -> Result<(Vec<TrialSummary>, bool)> {
        let position: BTreeMap<String, usize> = order.iter().enumerate().map(|(i, t)| (t.id(), i)).collect();
        let (mut previous, mut repeats): (Option<Vec<(String, usize)>>, usize) = (None, 0);
        let mut fail_fast = false;
        loop {
            let plan = crate::select::halving::plan(exp, select, dir)?;
            for t in plan.prune.iter().filter(|t| position.contains_key(&t.id())) {
                if mark_pruned(dir, t)? {
                    registry.record(&t.id())?;
                }
            }
            let mut work: Vec<Job> = plan
                .work
                .into_iter()
                .filter(|(t, _)| position.contains_key(&t.id()))
                .map(|(cfg, rung)| Job { cfg, rung: Some(rung) })
                .collect();
            work.sort_by_key(|j| position[&j.cfg.id()]);
            let mut busy = 0;
            work.retain(|j| match store::try_lock_trial(&dir.trial(&j.cfg.id())) {
                Ok(Some(_)) => true,
                Ok(None) => {
                    busy += 1;
                    false
                }
                Err(_) => true, // run_trial reports it
            });
            if work.is_empty() {
                if busy == 0 || self.interrupted() {
                    break;
                }
                std::thread::sleep(HALVING_POLL);
                continue;
            }
            let pass: Vec<(String, usize)> = work.iter().map(|j| (j.cfg.id(), j.rung.unwrap_or(0))).collect();
            // The same work twice: another process held a lock for a moment, or training cannot
            // reach the rung; the first clears up on its own.
            repeats = if previous.as_ref() == Some(&pass) { repeats + 1 } else { 0 };
            if repeats > 0 {
                std::thread::sleep(HALVING_POLL);
            }
            if repeats == HALVING_REPEATS {
                anyhow::bail!(
                    "successive halving made no progress: {} trial(s) did not reach their rung (first: {} to {} epochs); see their status.json",
                    pass.len(),
                    pass[0].0,
                    pass[0].1
                );
            }
            previous = Some(pass);
            let (_, stopped) = self.run(&work, dir, data, device, registry)?;
            if stopped || self.interrupted() {
                fail_fast = stopped;
                break;
            }
        }
        // Every selected trial's line as it stands now (a trial reaches several rungs, and may
        // be pruned since it paused, or trained by another process).
        let lines = order.iter().map(|t| {
            let trial_dir = dir.trial(&t.id());
            summary(t, &TrialStatus::read(&trial_dir).unwrap_or_default(), &trial_dir)
        });
        Ok((lines.collect(), fail_fast))
    }

    /// Trains `trials` on the workers, keeping trials.parquet current through `registry`; the
    /// summaries in order, and whether `--fail-fast` stopped the run.
    fn run(
        &self,
        trials: &[Job],
        dir: &ExperimentDir,
        data: &DataCache,
        device: tch::Device,
        registry: &Registry,
    ) -> Result<(Vec<TrialSummary>, bool)> {
        self.overall.set_length(self.overall.position() + trials.len() as u64);
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let results: Mutex<Vec<Option<TrialSummary>>> = Mutex::new(vec![None; trials.len()]);
        let worker = || -> Result<()> {
            tch::set_num_threads(self.threads as i32);
            loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= trials.len() || stop.load(Ordering::SeqCst) || self.interrupted() {
                    return Ok(());
                }
                let Job { cfg, rung } = &trials[k];
                let (summary, changed) = run_trial(cfg, *rung, dir, data.get(cfg), device, self).inspect_err(|e| {
                    mark_failed(dir, cfg, e);
                    let _ = registry.record(&cfg.id());
                })?;
                if self.fail_fast && matches!(summary.state, State::Failed | State::Diverged) {
                    stop.store(true, Ordering::SeqCst);
                }
                results.lock().expect("no poisoned lock")[k] = Some(summary);
                if changed {
                    registry.record(&cfg.id())?;
                }
                self.overall.inc(1);
            }
        };
        std::thread::scope(|scope| -> Result<()> {
            let handles: Vec<_> = (0..self.jobs.min(trials.len().max(1))).map(|_| scope.spawn(worker)).collect();
            for h in handles {
                h.join().map_err(|_| anyhow::anyhow!("a trial worker panicked outside training"))??;
            }
            Ok(())
        })?;
        let summaries = results.into_inner().expect("no poisoned lock").into_iter().flatten().collect();
        Ok((summaries, stop.load(Ordering::SeqCst)))
    }
}

/// A line for the person running the experiment: above the progress bars on a terminal, else
/// on stderr (the bars are hidden there, and would swallow it).
fn say(bars: &MultiProgress, line: String) -> std::io::Result<()> {
    if bars.is_hidden() {
        eprintln!("{line}");
        Ok(())
    } else {
        bars.println(line)
    }
}

/// Marks a trial paused at a rung it does not go on from as pruned (under its lock; left alone
/// when another process holds it or it is no longer paused). Whether it marked it.
fn mark_pruned(dir: &ExperimentDir, cfg: &TrialConfig) -> Result<bool> {
    let trial_dir = dir.trial(&cfg.id());
    let Some(_lock) = store::try_lock_trial(&trial_dir)? else { return Ok(false) };
    match TrialStatus::read(&trial_dir).filter(|s| s.state == State::Paused) {
        Some(status) => {
            TrialStatus { state: State::Pruned, ..status }.write(&trial_dir)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Whether a trial with `status` has already reached `rung` epochs (a paused or pruned trial
/// of successive halving).
fn reached(status: &TrialStatus, rung: Option<usize>) -> bool {
    let trained = status.rungs.iter().map(|r| r.epochs).max().unwrap_or(0);
    matches!(status.state, State::Paused | State::Pruned) && rung.is_some_and(|r| trained >= r)
}

/// Trains one trial (or resumes it from its checkpoint) unless it is done (or, under halving,
/// has reached `rung`) or another process holds its lock; writes its files. With `rung` below
/// its epochs it pauses there, `paused`, with that rung's evaluation in its status. On a stop
/// request it saves a checkpoint and stays `running`. Returns its summary and whether its status
/// changed (false when it was left as it was).
fn run_trial(
    cfg: &TrialConfig,
    rung: Option<usize>,
    dir: &ExperimentDir,
    data: &TrialData,
    device: tch::Device,
    pool: &Pool,
) -> Result<(TrialSummary, bool)> {
    let (bars, style) = (&pool.bars, &pool.style);
    let id = cfg.id();
    let trial_dir = dir.trial(&id);
    if let Some(status) = TrialStatus::read(&trial_dir) {
        let finished = status.state == State::Done || reached(&status, rung);
        if finished && done_files_problem(&trial_dir, &status).is_none() {
            return Ok((summary(cfg, &status, &trial_dir), false));
        }
    }
    let Some(_trial_lock) = store::try_lock_trial(&trial_dir)? else {
        say(bars, format!("{id}: another process is training it; left to that one"))?;
        let running = TrialStatus { state: State::Running, ..Default::default() };
        return Ok((summary(cfg, &TrialStatus::read(&trial_dir).unwrap_or(running), &trial_dir), false));
    };
    // Read under the lock: another process may have finished the trial since.
    let warn = |message: String| say(bars, format!("warning: {message}"));
    let previous = TrialStatus::read_checked(&trial_dir)
        .or_else(|m| warn(format!("{m}; the trial runs again from its last good checkpoint")).map(|()| None))?;
    if let Some(status) = previous.as_ref().filter(|s| s.state == State::Done || reached(s, rung)) {
        match done_files_problem(&trial_dir, status) {
            None => return Ok((summary(cfg, status, &trial_dir), false)),
            Some(problem) => warn(format!("{problem}; the trial runs again from its last good checkpoint"))?,
        }
    }
    let checkpoint_dir = trial_dir.join(trial_files::CHECKPOINT);
    if let Err(e) = train::checkpoint::verify(&checkpoint_dir) {
        let kept = trial_dir.join(format!("{}.unreadable", trial_files::CHECKPOINT));
        warn(format!("{e:#}; the trial starts again from scratch (the checkpoint is kept as {})", kept.display()))?;
        let _ = std::fs::remove_dir_all(&kept);
        std::fs::rename(&checkpoint_dir, &kept).with_context(|| format!("moving {}", checkpoint_dir.display()))?;
    }
    let attempts = previous.as_ref().map_or(0, |s| s.attempts) + 1;
    let earlier_seconds = previous.as_ref().map_or(0.0, |s| s.seconds);
    store::write_atomic(&trial_dir.join(trial_files::CONFIG), toml::to_string(cfg)?.as_bytes())?;
    let device_name = crate::model::device_name(device);
    let running = TrialStatus {
        state: State::Running,
        attempts,
        seconds: earlier_seconds,
        device: Some(device_name.clone()),
        rungs: previous.as_ref().map(|s| s.rungs.clone()).unwrap_or_default(),
        ..Default::default()
    };
    running.write(&trial_dir)?;
    let train_set = noise::apply(&data.train, &cfg.data, &cfg.noise);
    let total_steps = cfg.train.epochs * train::steps_per_epoch(train_set.images.len(), cfg.train.batch_size);
    let bar = bars.add(ProgressBar::new(total_steps as u64).with_style(style.clone()).with_prefix("trial"));
    bar.set_message(id.clone());
    let t0 = Instant::now();
    let checkpointing = train::Checkpointing {
        dir: &checkpoint_dir,
        trial: &id,
        stop: pool.stop.map(|s| s as &AtomicBool),
        pause_after: rung,
    };
    let result = behind_boundary(|| {
        let evaluation = HeldoutEvaluation { cfg, data, stop: pool.stop.map(|s| s as &AtomicBool) };
        train::train_trial(cfg, &train_set, &evaluation, device, Some(&checkpointing), &mut |s| {
            bar.set_position(s as u64)
        })
    });
    bar.finish_and_clear();
    let seconds = earlier_seconds + t0.elapsed().as_secs_f64();
    let status = match result {
        Ok(outcome) => {
            let results = write_trial_results(&trial_dir, &id, &outcome)?;
            let state = match (outcome.diverged_step, outcome.paused_after) {
                (Some(_), _) => State::Diverged,
                (None, Some(_)) => State::Paused,
                (None, None) => State::Done,
            };
            let resumed = outcome.resumed_from.map_or(String::new(), |s| format!(", resumed from step {s}"));
            let at = outcome.paused_after.map_or(String::new(), |e| format!(" at epoch {e}"));
            say(bars, format!("{id}: {}{at} in {seconds:.1}s{resumed}", state.as_str()))?;
            let (skipped_images, resumed_from) = (outcome.skipped_images, outcome.resumed_from);
            let diverged_step = outcome.diverged_step;
            let mut rungs = running.rungs.clone();
            if rung.is_some() && state != State::Diverged {
                let epochs = outcome.paused_after.unwrap_or(cfg.train.epochs);
                rungs.retain(|r| r.epochs != epochs);
                rungs.push(store::RungResult { epochs, values: results.finals.clone() });
            }
            let results = Some(results);
            TrialStatus {
                state,
                seconds,
                diverged_step,
                skipped_images,
                resumed_from,
                results,
                rungs,
                ..running.clone()
            }
        }
        Err(e) if e.is::<train::Stopped>() => {
            say(bars, format!("{id}: {e}; it resumes from there when run again"))?;
            TrialStatus { seconds, ..running.clone() }
        }
        Err(e) if store::is_storage_full(&e) => {
            let failed =
                TrialStatus { state: State::Failed, seconds, error: Some(format!("{e:#}")), ..running.clone() };
            let _ = failed.write(&trial_dir);
            return Err(e.context(format!("trial {id}: the disk is full; free space and run again to resume")));
        }
        Err(e) => {
            say(bars, format!("{id}: failed: {e:#}"))?;
            TrialStatus { state: State::Failed, seconds, error: Some(format!("{e:#}")), ..running.clone() }
        }
    };
    status.write(&trial_dir)?;
    Ok((summary(cfg, &status, &trial_dir), true))
}

/// Writes a trained trial's result files into `trial_dir` (steps, evals, angles and bootstrap
/// parquet, checksums.json); returns what its status records of them.
pub fn write_trial_results(trial_dir: &Path, id: &str, outcome: &train::TrialOutcome) -> Result<TrialResults> {
    let rows = &outcome.rows;
    let mut files = BTreeMap::new();
    for (file, mut frame) in [
        (trial_files::STEPS, schema::steps_frame(id, &rows.steps)?),
        (trial_files::EVALS, schema::evals_frame(id, &rows.evals)?),
        (trial_files::ANGLES, schema::angles_frame(id, &rows.angles)?),
        (trial_files::BOOTSTRAP, schema::bootstrap_frame(id, &rows.evals)?),
    ] {
        let path = trial_dir.join(file);
        store::write_parquet(&path, &mut frame)?;
        files.insert(file.to_string(), std::fs::metadata(&path)?.len());
    }
    let checksums = Checksums { init: outcome.init_checksum.clone(), data_order: outcome.data_order_checksum.clone() };
    store::write_atomic(&trial_dir.join(trial_files::CHECKSUMS), serde_json::to_string_pretty(&checksums)?.as_bytes())?;
    Ok(TrialResults::of(files, &rows.steps, &rows.evals))
}

/// Why a done trial's result files are not the ones its status recorded (a file cut short or
/// replaced), if they are not; read from its files for directories written before statuses
/// recorded them.
fn done_files_problem(trial_dir: &Path, status: &TrialStatus) -> Option<String> {
    match &status.results {
        Some(results) => results.changed_file(trial_dir),
        None => train::checkpoint::read_rows(trial_dir).err().map(|e| format!("{e:#}")),
    }
}

/// Runs `f` behind a panic boundary: tch reports a libtorch error (out of memory, a shape
/// mismatch) as a panic, which becomes an error carrying its message, so the trial fails and
/// the others go on.
fn behind_boundary<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = crate::error::panic_message(&*payload).unwrap_or("a panic without a message");
        Err(anyhow::anyhow!("{}", panic_text(message)))
    })
}

/// A panic message, shortened where it carries a libtorch error: tch panics with
/// `…: Torch("<message>\nException raised from …")` followed by the C++ frames.
fn panic_text(message: &str) -> String {
    match message.split_once("Torch(\"") {
        Some((_, rest)) => {
            format!("libtorch error: {}", rest.split("\\n").next().unwrap_or(rest).trim_end_matches("\")"))
        }
        None => format!("panicked: {message}"),
    }
}

/// Marks a trial whose run stopped on `error` outside training (its files could not be
/// written) as failed, so the process never leaves it `running`; best effort, since the
/// cause (a full disk) may stop this write too.
fn mark_failed(dir: &ExperimentDir, cfg: &TrialConfig, error: &anyhow::Error) {
    let trial_dir = dir.trial(&cfg.id());
    if !matches!(store::try_lock_trial(&trial_dir), Ok(Some(_))) {
        return; // another process is training it
    }
    if let Some(mut status) = TrialStatus::read(&trial_dir).filter(|s| s.state == State::Running) {
        status.state = State::Failed;
        status.error = Some(format!("{error:#}"));
        if status.write(&trial_dir).is_err() {
            // No room even for status.json: without it the trial is pending, never `running`.
            let _ = std::fs::remove_file(trial_dir.join(trial_files::STATUS));
        }
    }
}

/// Trial directories under the results that are none of `trials` (the file no longer makes them).
pub fn stale_trials(dir: &ExperimentDir, trials: &[TrialConfig]) -> Vec<String> {
    let current: BTreeSet<String> = trials.iter().map(|t| t.id()).collect();
    let Ok(entries) = std::fs::read_dir(dir.root.join("trials")) else { return Vec::new() };
    let mut stale: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !current.contains(name))
        .collect();
    stale.sort();
    stale
}

/// The data of a group of trials that share `[data]`, `[eval]` and their held-out split.
pub struct TrialData {
    pub train: Arc<dyn Dataset>,
    /// The held-out identities the trials are evaluated on (under `[select]`, the split's part).
    pub heldout: ImageSet,
    /// The evaluation protocols `[eval]` selects: built-in ones constructed over the held-out
    /// identities, real-file ones read once.
    pub protocols: Suite,
}

/// A trial's evaluation as training calls it: the suite's protocols on the held-out data.
pub struct HeldoutEvaluation<'a> {
    pub cfg: &'a TrialConfig,
    pub data: &'a TrialData,
    /// A stop request (SIGTERM): the evaluation ends before its next protocol with
    /// [`train::Stopped`]; training saved the epoch before evaluating it, so the resumed trial
    /// makes the whole evaluation again.
    pub stop: Option<&'a AtomicBool>,
}

impl train::Evaluate for HeldoutEvaluation<'_> {
    fn evaluate(&self, net: &Network, device: tch::Device, step: i64) -> Result<Vec<schema::EvalRow>> {
        let spec = evaluation_spec(self.cfg);
        let stop = || self.stop.is_some_and(|s| s.load(Ordering::SeqCst));
        let results = self.data.protocols.run_until(&spec, &self.cfg.data, net, &self.data.heldout, device, &stop)?;
        let Some(results) = results else { return Err(train::Stopped { step }.into()) };
        let mut rows = Vec::new();
        for r in &results {
            for row in r.rows() {
                let d = row.detail;
                rows.push(schema::EvalRow {
                    step,
                    protocol: r.protocol.clone(),
                    variant: row.variant,
                    metric: row.metric,
                    value: row.value,
                    ci_lo: d.interval.map(|i| i.0),
                    ci_hi: d.interval.map(|i| i.1),
                    ci_unit: d.unit,
                    comparisons: d.comparisons.map(|c| c as i64),
                    resolvable: d.resolvable,
                    replicates: d.replicates,
                });
            }
        }
        Ok(rows)
    }
}

/// Generates (or reads) the training and held-out identities and prepares the evaluation protocols.
pub fn shared_data(cfg: &TrialConfig) -> Result<TrialData> {
    trial_data(cfg, data::training_set(&cfg.data)?)
}

/// [`shared_data`] on a training set already made.
fn trial_data(cfg: &TrialConfig, train: Arc<dyn Dataset>) -> Result<TrialData> {
    let heldout = data::heldout_set(&cfg.data)?;
    let heldout = match cfg.split {
        Some(split) => {
            let v = split.validation_identities;
            match split.part {
                SplitPart::Validation => heldout.identities(0..v),
                SplitPart::Test => heldout.identities(v..heldout.num_classes),
            }
        }
        None => heldout,
    };
    let protocols = Suite::new(&evaluation_spec(cfg), &cfg.data, &heldout.labels)?;
    Ok(TrialData { train, heldout, protocols })
}

/// What a trial is evaluated with: `[eval]`, except that search trials (validation) run the
/// built-in protocols only, so that no real benchmark is measured for settings still being chosen.
fn evaluation_spec(cfg: &TrialConfig) -> EvalSpec {
    let mut spec = cfg.eval.clone();
    if cfg.split.is_some_and(|s| s.part == SplitPart::Validation) {
        (spec.lfw.pairs, spec.lfw.images, spec.lfw.bin) = (None, None, None);
        (spec.megaface.probes, spec.megaface.probe_images, spec.megaface.distractor_images) = (None, None, None);
        spec.megaface.distractors.clear();
        (spec.ijbc.meta, spec.ijbc.images, spec.ijbc.detector_scores) = (None, None, false);
        spec.bins.clear();
    }
    spec
}

/// The data of every trial of an experiment, made once per distinct `[data]` (training sets) and
/// per distinct `[data]`, `[eval]` and held-out split (held-out sets and protocols); under
/// `[select]` the test split of every search group is made too.
pub struct DataCache {
    groups: BTreeMap<String, TrialData>,
}

impl DataCache {
    pub fn build(exp: &Experiment) -> Result<DataCache> {
        let group_key =
            |t: &TrialConfig| serde_json::to_string(&(&t.data, &t.eval, &t.split)).expect("configs serialise");
        let mut trains: BTreeMap<String, Arc<dyn Dataset>> = BTreeMap::new();
        let mut groups = BTreeMap::new();
        let finals = exp.trials.iter().filter_map(|t| {
            let split = t.split?;
            Some(TrialConfig { split: Some(Split { part: SplitPart::Test, ..split }), ..t.clone() })
        });
        for t in exp.trials.iter().cloned().chain(finals) {
            let key = group_key(&t);
            if groups.contains_key(&key) {
                continue;
            }
            let data_key = serde_json::to_string(&t.data).expect("configs serialise");
            let train = match trains.get(&data_key) {
                Some(train) => train.clone(),
                None => trains.entry(data_key).or_insert(data::training_set(&t.data)?).clone(),
            };
            groups.insert(key, trial_data(&t, train)?);
        }
        for t in &exp.trials {
            let images = groups[&group_key(t)].train.len();
            if t.train.batch_size > images {
                let at = t.data.path.as_deref().map_or(exp.path.clone(), Path::to_path_buf);
                let message =
                    format!("train.batch_size {} is more than the {images} training images", t.train.batch_size);
                return Err(crate::error::InputError::file(at, message).into());
            }
        }
        Ok(DataCache { groups })
    }

    /// The data of `cfg` (one of the experiment's trials).
    pub fn get(&self, cfg: &TrialConfig) -> &TrialData {
        let key = serde_json::to_string(&(&cfg.data, &cfg.eval, &cfg.split)).expect("configs serialise");
        &self.groups[&key]
    }
}

fn summary(cfg: &TrialConfig, status: &TrialStatus, trial_dir: &Path) -> TrialSummary {
    let results = status.results_in(trial_dir).ok().flatten();
    TrialSummary {
        id: cfg.id(),
        loss: cfg.loss.name.clone(),
        params: [cfg.loss.short_params(), cfg.axes_text()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        seed: cfg.seed,
        noise: cfg.noise.label(),
        state: status.state,
        lfw_accuracy: results.as_ref().and_then(|r| r.final_value("lfw", "accuracy_mean")),
        train_accuracy: results.and_then(|r| r.train_accuracy),
        seconds: status.seconds,
        diverged_step: status.diverged_step,
        error: status.error.clone(),
    }
}

/// The closing table: loss, parameters, noise, held-out accuracy, seconds.
pub fn format_summary(rows: &[TrialSummary]) -> String {
    let header = ["loss", "parameters", "seed", "noise", "status", "train acc %", "lfw acc %", "seconds"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let percent = |v: Option<f64>| v.map_or("-".to_string(), |a| format!("{:.2}", a * 100.0));
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
                percent(r.train_accuracy),
                percent(r.lfw_accuracy),
                format!("{:.1}", r.seconds),
            ]
        })
        .collect();
    let mut text = text_columns(&header, &cells, &[false, false, true, false, true, true, true, true]);
    for r in rows.iter().filter(|r| matches!(r.state, State::Failed | State::Diverged)) {
        let why = match (&r.error, r.diverged_step) {
            (Some(error), _) => error.clone(),
            (None, Some(step)) => format!("the loss became NaN or infinite at step {step}"),
            (None, None) => "no reason recorded".to_string(),
        };
        text.push_str(&format!("{} {}: {why}\n", r.state.as_str(), r.id));
    }
    text
}

/// Trials of `rows` that failed or diverged (the run's exit code is 1 when there are any).
pub fn unsuccessful(rows: &[TrialSummary]) -> usize {
    rows.iter().filter(|r| matches!(r.state, State::Failed | State::Diverged)).count()
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
