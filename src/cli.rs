//! Command-line interface: clap commands mapped onto library calls. Bad input (an experiment
//! file that fails validation, a malformed data or protocol file: `SpecError` or `InputError`
//! anywhere in the error chain) exits with code 2 before anything is written; other failures 1.

use crate::error::InputError;
use crate::loss;
use crate::plot;
use crate::report::{self, run_info::RunInfo};
use crate::runner::{self, RunOptions};
use crate::spec::{self, SpecError};
use crate::train;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

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
    /// Run a TOML experiment: train every trial (each loss setting × seed) on identical networks,
    /// write telemetry and evaluations under <out>/<experiment name>/, and print a summary table.
    ///
    /// Trials already marked done in the results directory are skipped, so re-running an
    /// experiment only trains what is missing. Exit code 2: the experiment file is invalid
    /// (the message names file:line:col); nothing is written then.
    Run {
        /// The experiment file (see experiments/quickstart.toml).
        file: PathBuf,
        /// Results root; the experiment's directory is <out>/<name>.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Validate and list the trials (ids and resolved parameters) without training.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the losses, their parameters and defaults.
    Losses,
    /// Render every figure of an experiment (PNG and SVG under <dir>/plots/) from its parquet
    /// files alone, without retraining: training curves, gradient magnitudes, angles, g_y against
    /// θ_y, protocol curves and study figures. Kinds the results hold no data for are skipped
    /// and listed in plots/plots.json. Exit code 2: a results file is missing or malformed.
    Plot {
        /// The experiment's results directory (results/<experiment name>).
        dir: PathBuf,
    },
    /// Write <dir>/report.md from the parquet files alone, without retraining: hardware and time,
    /// every trial's status, paper-style tables (mean ± std over seeds), sensitivity spread, noise
    /// robustness, published numbers beside ours, and the figures of `plot`. Exit code 2: a
    /// results file is missing or malformed.
    Report {
        /// The experiment's results directory (results/<experiment name>).
        dir: PathBuf,
    },
    /// Score features (a .npy file, devkit feature files) or a trained trial on a protocol's real
    /// files: LFW (and insightface .bin packs), MegaFace Challenge 1, IJB-C. Prints the metrics,
    /// or one JSON object with --json: {"protocol", "variant", "metrics"}. Exit code 2: a missing
    /// or malformed input file (the message names the file and line or record).
    Eval {
        #[command(subcommand)]
        protocol: crate::eval::command::EvalCommand,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => 0,
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

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { file, out, dry_run } => {
            let exp = spec::load(&file)?;
            if dry_run {
                print!("{}", dry_run_table(&exp));
                return Ok(());
            }
            let opts = RunOptions { out: out.clone(), progress: std::io::stderr().is_terminal() };
            let started = std::time::Instant::now();
            let summaries = runner::run_experiment(&exp, &opts)?;
            print!("{}", runner::format_summary(&summaries));
            let dir = out.join(&exp.name);
            record_run(&exp, &dir, started.elapsed().as_secs_f64())?;
            plot_and_report(&dir)?;
            println!("results: {}", dir.display());
            Ok(())
        }
        Command::Plot { dir } => {
            let manifest = plot::render_all(&dir)?;
            print_manifest(&dir, &manifest);
            Ok(())
        }
        Command::Report { dir } => {
            println!("report: {}", report::write_report(&dir)?.display());
            Ok(())
        }
        Command::Eval { protocol } => crate::eval::command::run(protocol),
        Command::Losses => {
            for entry in loss::registry() {
                println!("{:<10} {}", entry.name, entry.summary);
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
            Ok(())
        }
    }
}

/// Writes run.json (hardware, device, wall time) next to the results, for the report.
fn record_run(exp: &spec::Experiment, dir: &std::path::Path, wall_seconds: f64) -> anyhow::Result<()> {
    let device = match exp.trials.first() {
        Some(t) => match train::resolve_device(t.train.device)? {
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
    let report = report::write_report(dir).context("training finished, but writing the report failed")?;
    println!("report: {}", report.display());
    Ok(())
}

fn print_manifest(dir: &std::path::Path, manifest: &plot::Manifest) {
    println!("plots: {} figures in {}", manifest.figures.len(), dir.join("plots").display());
    for s in &manifest.skipped {
        println!("  skipped {}: {}", s.kind, s.reason);
    }
}

/// The `--dry-run` listing: one line per trial, then the count.
pub fn dry_run_table(exp: &spec::Experiment) -> String {
    let mut out = format!("{:<44} {:<10} {:<5} parameters\n", "trial", "loss", "seed");
    for t in &exp.trials {
        out.push_str(&format!("{:<44} {:<10} {:<5} {}\n", t.id(), t.loss.name, t.seed, t.loss.params_text()));
    }
    out.push_str(&format!("{} trials\n", exp.trials.len()));
    out
}
