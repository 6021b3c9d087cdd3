//! Command-line interface: clap commands mapped onto library calls. Bad input (an experiment
//! file that fails validation, a malformed data or protocol file: `SpecError` or `InputError`
//! anywhere in the error chain) exits with code 2 before anything is written; other failures 1.

use crate::error::InputError;
use crate::loss;
use crate::runner::{self, RunOptions};
use crate::spec::{self, SpecError};
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
            let summaries = runner::run_experiment(&exp, &opts)?;
            print!("{}", runner::format_summary(&summaries));
            println!("results: {}", out.join(&exp.name).display());
            Ok(())
        }
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

/// The `--dry-run` listing: one line per trial, then the count.
pub fn dry_run_table(exp: &spec::Experiment) -> String {
    let mut out = format!("{:<44} {:<10} {:<5} parameters\n", "trial", "loss", "seed");
    for t in &exp.trials {
        out.push_str(&format!("{:<44} {:<10} {:<5} {}\n", t.id(), t.loss.name, t.seed, t.loss.params_text()));
    }
    out.push_str(&format!("{} trials\n", exp.trials.len()));
    out
}
