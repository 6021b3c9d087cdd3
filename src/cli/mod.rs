//! Command-line interface: clap commands mapped onto library calls ([`eval`]: `p2sbench eval`;
//! [`curves`]: `p2sbench curves`; the rest here). Bad input (an experiment
//! file that fails validation, a malformed data or protocol file: `SpecError` or `InputError`
//! anywhere in the error chain) exits with code 2 before anything is written; other failures 1,
//! as does a `run` whose trials failed or diverged.

pub mod capacity;
pub mod curves;
pub mod eval;
pub mod slurm;

use crate::error::InputError;
use crate::loss;
use crate::plot;
use crate::report;
use crate::runner::{self, RunOptions};
use crate::spec::shard::Shard;
use crate::spec::{self, SpecError};
use crate::store::run_info::RunInfo;
use crate::store::{self, ExperimentDir};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Parser, Debug)]
#[command(
    name = "p2sbench",
    version,
    about = "Benchmark cosine-softmax losses (P2SGrad, CosFace, ArcFace, …) for face recognition"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a TOML experiment: train every trial (each loss setting × noise setting × seed) on
    /// identical networks, write telemetry and evaluations under <out>/<experiment name>/, render
    /// the plots and the report (report.md and report.html), and print a summary table.
    ///
    /// Re-running skips trials that are done and resumes unfinished ones from their last
    /// checkpoint (bit-identical on CPU); a changed file reuses unchanged trials and lists the
    /// ones no longer in it. One run per results directory at a time (a lock that a killed run
    /// does not leave behind). Relative paths in the file (data.path, protocol files) are
    /// relative to the file's own directory.
    ///
    /// Each trial trains behind a boundary: a libtorch error (out of memory, a shape error) or a
    /// panic marks that trial `failed`, with the error text in status.json and trials.parquet, and
    /// the other trials go on (unless --fail-fast).
    ///
    /// With --shard I/N the run trains the I-th of N disjoint parts of the selected trials, so
    /// that N processes (a Slurm job array: see `p2sbench slurm`) share one results directory:
    /// each trial trains under a lock of its own, and the last shard to finish renders the plots
    /// and the report. On SIGTERM a run saves a checkpoint of every trial under way after its
    /// current step and exits with code 3; running it again resumes from there.
    ///
    /// Under `[select]` with `method = "halving"` the search is successive halving: trials
    /// pause at each rung (`paused`), the best 1/η of each group's settings go on from their
    /// checkpoints and the others stop (`pruned`); shards take any trial whose rung is ready.
    ///
    /// Exit codes: 0 every selected trial is done; 1 some trial failed or diverged (the summary
    /// lists each with its reason), or the run stopped on an error such as a full disk; 2 the
    /// experiment file, a filter, --shard or a data file is invalid (the message names
    /// file:line:col or the file); nothing is written then; 3 stopped by SIGTERM.
    Run {
        /// The experiment file (see experiments/quickstart.toml).
        file: PathBuf,
        /// Results root; the experiment's directory is <out>/<name>.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Validate and list the trials (ids and resolved parameters) without training.
        #[arg(long)]
        dry_run: bool,
        /// Run only the trials matching every key=value pair, e.g. 'loss=arcface,s=64'. Keys: loss,
        /// seed, noise (kind), ratio (noise ratio), id, or any loss parameter.
        #[arg(long, value_name = "FILTER")]
        only: Option<String>,
        /// Leave out the trials matching every key=value pair (same keys as --only).
        #[arg(long, value_name = "FILTER")]
        skip: Option<String>,
        /// Trials trained at once; the cores are split between them (libtorch threads per trial
        /// = cores / jobs unless train.threads is set).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Start no further trial after one fails or diverges.
        #[arg(long)]
        fail_fast: bool,
        /// I/N: train only the I-th (0-based) of N disjoint parts of the selected trials,
        /// balanced by expected cost and the same on every run, beside other shards writing to
        /// the same results directory.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
    },
    /// List the losses, their parameters and defaults.
    Losses,
    /// Render every figure of an experiment (PNG and SVG under <dir>/plots/) from its parquet
    /// files alone, without retraining: training curves, gradient magnitudes, angles, g_y against
    /// θ_y, protocol curves and study figures. Kinds the results hold no data for are skipped
    /// and listed in plots/plots.json. The trials' statuses in trials.parquet are first read
    /// again from their directories (what shards wrote). Exit code 2: a results file is missing
    /// or malformed.
    Plot {
        /// The experiment's results directory (results/<experiment name>).
        dir: PathBuf,
    },
    /// Write <dir>/report.md from the parquet files alone, without retraining: hardware and time,
    /// every trial's status, paper-style tables (mean ± std over seeds), sensitivity spread, noise
    /// robustness, published numbers beside ours, and the figures of `plot`. Also <dir>/report.html:
    /// the same report as one self-contained page for a browser (figures inline as SVG, tables
    /// sortable by a click on a column header, trial statuses as coloured badges). The trials'
    /// statuses in trials.parquet are first read again from their directories (what shards
    /// wrote). Exit code 2: a results file (or a figure's SVG) is missing or malformed.
    Report {
        /// The experiment's results directory (results/<experiment name>).
        dir: PathBuf,
    },
    /// Score features (a .npy file, devkit feature files), a trained trial (--model) or an ONNX
    /// face model (--onnx, run by tract) on a protocol's real files: LFW (and insightface .bin
    /// packs), MegaFace Challenge 1, IJB-C. Prints the metrics,
    /// or one JSON object with --json: {"protocol", "variant", "metrics"}. Exit code 2: a missing
    /// or malformed input file (the message names the file and line or record).
    Eval {
        #[command(subcommand)]
        protocol: eval::EvalCommand,
    },
    /// Export a trained trial's network out of the harness: to ONNX (every backbone, with the
    /// conventions of insightface's model zoo, so that its `model_zoo.get_model` loads the file
    /// as a recognition model) or to safetensors under insightface's names (the IResNets and
    /// mbf at 3 × 112 × 112: arcface_torch's `get_model(name, num_features=D)` loads it with
    /// strict=True). A JSON file beside it (<out>.json) names the trial, the loss, the input and
    /// its normalisation.
    ///
    /// The ONNX model is the backbone and embedding layer in inference mode (batch norm with its
    /// running statistics), opset 13, input "input" N × C × H × W (N dynamic) normalised as in
    /// training, (x − 127.5) / 127.5 on RGB (or grey) 0..255 pixels, output "embedding" N × D
    /// (not L2-normalised).
    ///
    /// Exit code 2: no trial there, no checkpoint, or a format the trial's network has no form
    /// in (the message says which); nothing is written then.
    Export {
        /// A trial directory (results/<experiment>/trials/<id>), or an experiment's results
        /// directory with --trial.
        dir: PathBuf,
        /// The trial's id (or a prefix of it naming one trial), when DIR is an experiment's
        /// results directory.
        #[arg(long)]
        trial: Option<String>,
        /// What to write.
        #[arg(long, value_enum, default_value = "onnx")]
        to: crate::export::Format,
        /// The file to write (default: <trial id>.onnx or <trial id>.safetensors here).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// P_y(θ), g_y(θ) = ∂L/∂cos θ_y and ‖∂L/∂x‖ against the target angle for loss settings,
    /// without training (table, CSV, JSON, PNG or SVG). Exit code 2: an invalid setting.
    #[command(long_about = curves::LONG_ABOUT)]
    Curves(curves::CurvesArgs),
    /// P2SGrad's capacity bound: the best mean cos θ_y, min(1, D/C), and the surrogate's lower
    /// bound ½·max(0, 1 − D/C) for C classes in D dimensions, without training.
    #[command(long_about = capacity::LONG_ABOUT)]
    Capacity(capacity::CapacityArgs),
    /// Successive halving against the grid on one search: two results directories of the same
    /// search, one run with `[select] method = "grid"` and one with `method = "halving"`. Prints
    /// a markdown table: per loss (and condition) the grid's winner with the 95 % interval of its
    /// validation score (its search seed's identity bootstrap, or the t-interval over several
    /// seeds), halving's choice with the grid run's validation score of that setting, whether it
    /// lies within the interval, and each run's trial-epochs and search seconds. Exit code 2:
    /// a directory that is not a finished search of that method.
    SearchVsGrid {
        /// The grid run's results directory (results/<experiment name>).
        grid: PathBuf,
        /// The halving run's results directory.
        halving: PathBuf,
    },
    /// Write (and with --submit, submit) the sbatch scripts that run an experiment on a Slurm
    /// cluster as a job array of `run --shard` tasks, and a dependent job that renders the plots
    /// and the report.
    #[command(long_about = slurm::LONG_ABOUT)]
    Slurm(slurm::SlurmArgs),
}

/// The exit code of a `run` stopped by SIGTERM ([`runner::Interrupted`]).
pub const EXIT_INTERRUPTED: i32 = 3;

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) if e.chain().any(|c| c.is::<runner::Interrupted>()) => {
            eprintln!("{e:#}");
            EXIT_INTERRUPTED
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.chain().any(|c| c.is::<SpecError>() || c.is::<InputError>()) {
                2
            } else {
                1
            }
        }
    }
}

/// Set by SIGTERM during `run`.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGTERM set the run's stop flag instead of killing the process; returns the flag.
fn stop_on_sigterm() -> anyhow::Result<&'static AtomicBool> {
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler only stores to an
    // atomic, which is async-signal-safe.
    let installed = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = request_stop as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut())
    };
    anyhow::ensure!(installed == 0, "installing the SIGTERM handler: {}", std::io::Error::last_os_error());
    Ok(&STOP)
}

/// The trials `--only` and `--skip` keep, after checking that every key they name exists.
pub fn select_trials(
    exp: &spec::Experiment,
    only: Option<&str>,
    skip: Option<&str>,
) -> anyhow::Result<Vec<spec::TrialConfig>> {
    let only = only.map(|f| spec::filter::Filter::parse(f, "--only")).transpose()?;
    let skip = skip.map(|f| spec::filter::Filter::parse(f, "--skip")).transpose()?;
    for (flag, filter) in [("--only", &only), ("--skip", &skip)] {
        if let Some(unknown) = filter.as_ref().map(|f| f.unknown_keys(&exp.trials)).filter(|u| !u.is_empty()) {
            let message = format!("no trial has the key(s) {unknown:?}");
            return Err(InputError { location: flag.into(), message }.into());
        }
    }
    Ok(spec::filter::select(&exp.trials, only.as_ref(), skip.as_ref()))
}

/// The exit code: 0, or 1 when a `run` ended with failed or diverged trials.
fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run { file, out, dry_run, only, skip, jobs, fail_fast, shard } => {
            let exp = spec::load_with(&file, !dry_run)?;
            let selected = select_trials(&exp, only.as_deref(), skip.as_deref())?;
            let shard = shard.map(|s| Shard::parse(&s)).transpose()?;
            if dry_run {
                let listed = shard.map_or_else(|| selected.clone(), |s| s.pick(&selected));
                print!("{}", dry_run_table(&exp, &listed));
                if let Some(s) = shard {
                    println!("shard {s}: {} of the {} selected trials", listed.len(), selected.len());
                }
                return Ok(0);
            }
            let opts = RunOptions {
                out: out.clone(),
                progress: std::io::stderr().is_terminal(),
                jobs,
                fail_fast,
                shard,
                stop: Some(stop_on_sigterm()?),
            };
            let started = std::time::Instant::now();
            let summaries = runner::run_selected(&exp, &selected, &opts)?;
            print!("{}", runner::format_summary(&summaries));
            let dir = ExperimentDir::new(&out, &exp.name);
            // The last process to finish renders: the check and the rendering hold the tables lock.
            let tables = store::lock_tables(&dir.root)?;
            match if shard.is_some() { runner::unfinished_trials(&exp, &selected, &dir)? } else { 0 } {
                0 => {
                    record_run(&exp, &dir.root, started.elapsed().as_secs_f64())?;
                    plot_and_report(&dir.root)?;
                }
                left => println!(
                    "{left} trial(s) unfinished in other shards: the last shard to finish (or `p2sbench report {}`) renders the plots and the report",
                    dir.root.display()
                ),
            }
            drop(tables);
            println!("results: {}", dir.root.display());
            match runner::unsuccessful(&summaries) {
                0 => Ok(0),
                n => {
                    eprintln!("{n} of {} trial(s) failed or diverged (listed above); exit code 1", summaries.len());
                    Ok(1)
                }
            }
        }
        Command::Plot { dir } => {
            let _tables = runner::refresh_statuses(&dir)?;
            let manifest = plot::render_all(&dir)?;
            print_manifest(&dir, &manifest);
            Ok(0)
        }
        Command::Report { dir } => {
            let _tables = runner::refresh_statuses(&dir)?;
            let files = report::write_report(&dir)?;
            println!("report: {}, {} and {}", files.markdown.display(), files.html.display(), files.latex.display());
            Ok(0)
        }
        Command::Eval { protocol } => eval::run(protocol).map(|()| 0),
        Command::Export { dir, trial, to, out } => {
            let trial_dir = export_trial(&dir, trial.as_deref())?;
            let out = out.unwrap_or_else(|| {
                let id = trial_dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                PathBuf::from(id).with_extension(match to {
                    crate::export::Format::Onnx => "onnx",
                    crate::export::Format::Insightface => "safetensors",
                })
            });
            let written = crate::export::export(&trial_dir, to, &out)?;
            println!("wrote {} and {}", written.model.display(), written.description.display());
            Ok(0)
        }
        Command::Curves(args) => curves::run(&args).map(|()| 0),
        Command::Capacity(args) => capacity::run(&args).map(|()| 0),
        Command::Slurm(args) => slurm::run(&args).map(|()| 0),
        Command::SearchVsGrid { grid, halving } => {
            let rows = crate::select::against_grid::against_grid(&grid, &halving)?;
            print!("{}", crate::select::against_grid::to_markdown(&rows));
            Ok(0)
        }
        Command::Losses => {
            for entry in loss::registry() {
                println!("{:<16} {}", entry.name, entry.summary);
                for p in entry.params {
                    println!(
                        "    {:<12} {:<45} default {:<10} {}",
                        p.name,
                        p.kind.describe(),
                        p.default.value().short(),
                        p.help
                    );
                }
            }
            Ok(0)
        }
    }
}

/// Writes run.json (hardware, device, wall time) next to the results, for the report.
fn record_run(exp: &spec::Experiment, dir: &std::path::Path, wall_seconds: f64) -> anyhow::Result<()> {
    let device = match exp.trials.first() {
        Some(t) => match crate::model::device(t.train.device).map_err(anyhow::Error::msg)? {
            tch::Device::Cpu => "cpu".to_string(),
            tch::Device::Cuda(i) => format!("cuda:{i}"),
            other => format!("{other:?}").to_lowercase(),
        },
        None => "none".to_string(),
    };
    RunInfo::capture(&device, tch::get_num_threads() as i64, wall_seconds).write(dir)
}

/// The end of `run`: figures, then the report that embeds them.
fn plot_and_report(dir: &std::path::Path) -> anyhow::Result<()> {
    let manifest = plot::render_all(dir).context("training finished, but rendering the plots failed")?;
    print_manifest(dir, &manifest);
    let files = report::write_report(dir).context("training finished, but writing the report failed")?;
    println!("report: {}, {} and {}", files.markdown.display(), files.html.display(), files.latex.display());
    Ok(())
}

fn print_manifest(dir: &std::path::Path, manifest: &crate::results::Manifest) {
    println!("plots: {} figures in {}", manifest.figures.len(), dir.join("plots").display());
    for s in &manifest.skipped {
        println!("  skipped {}: {}", s.kind, s.reason);
    }
}

/// The `--dry-run` listing: one line per selected trial, then the counts (and, under `[select]`,
/// the final trials that will follow the search).
pub fn dry_run_table(exp: &spec::Experiment, trials: &[spec::TrialConfig]) -> String {
    let rows: Vec<Vec<String>> = trials
        .iter()
        .map(|t| {
            let params: Vec<String> =
                [t.loss.params_text(), t.axes_text()].into_iter().filter(|p| !p.is_empty()).collect();
            vec![t.id(), t.loss.name.clone(), t.seed.to_string(), t.noise.label(), params.join(", ")]
        })
        .collect();
    let mut out = runner::text_columns(&["trial", "loss", "seed", "noise", "parameters"], &rows, &[]);
    let total = exp.trials.len();
    out.push_str(&format!("{} trials", trials.len()));
    if trials.len() != total {
        out.push_str(&format!(" (of {total} in the file)"));
    }
    out.push('\n');
    if let Some(select) = &exp.select {
        let groups = crate::select::group_count(exp);
        let split = exp.trials[0].split.expect("search trials have a split");
        out.push_str(&format!(
            "then, for each of the {groups} loss/condition groups, the setting with the best mean {} on the {} validation identities is trained on seeds {:?} and evaluated on the {} test identities: {} final trials\n",
            select.metric,
            split.validation_identities,
            select.seeds,
            exp.trials[0].data.heldout_identities - split.validation_identities,
            groups * select.seeds.len()
        ));
        if select.method == spec::SearchMethod::Halving {
            let rungs = select.rungs(exp.trials[0].train.epochs);
            let grid: usize = exp.trials.iter().map(|t| t.train.epochs).sum();
            out.push_str(&format!(
                "the search is successive halving (η = {}): rungs at {rungs:?} epochs; the best 1/η of each group's settings go on at each rung, the others are pruned (the full grid would train {grid} trial-epochs)\n",
                select.eta
            ));
        }
    }
    out
}

/// The trial directory `export` reads: DIR itself, or DIR/trials/<id> for the one trial whose
/// id starts with `trial`.
fn export_trial(dir: &std::path::Path, trial: Option<&str>) -> Result<PathBuf, InputError> {
    let Some(prefix) = trial else {
        return Ok(dir.to_path_buf());
    };
    let trials = dir.join("trials");
    let entries = std::fs::read_dir(&trials)
        .map_err(|e| InputError::file(&trials, format!("not an experiment's results directory ({e})")))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(InputError::file(&trials, format!("no trial with an id starting with \"{prefix}\""))),
        n => Err(InputError::file(
            &trials,
            format!("{n} trials have ids starting with \"{prefix}\"; give more of the id"),
        )),
    }
}
