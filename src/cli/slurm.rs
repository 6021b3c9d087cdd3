//! `p2sbench slurm`: an experiment as a Slurm job array. Writes two sbatch scripts into
//! `<out>/<name>/slurm/`: `shards.sbatch`, whose task I runs `p2sbench run FILE --shard I/N`, and
//! `report.sbatch`, which renders the plots and the report; prints them, or submits them
//! (`--submit`): the array, then under `[select]` the array once more for the final trials, then
//! the report job, each `--dependency=afterany` on the one before.

use crate::error::InputError;
use crate::spec::{self, Experiment};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The long `--help` of `slurm`.
pub const LONG_ABOUT: &str = "\
Run an experiment on a Slurm cluster as a job array: task I of N runs
`p2sbench run FILE --shard I/N` (the I-th of N disjoint parts of the trials, balanced by expected
cost), every task writing into one results directory on a shared filesystem; a job that depends
on the array (--dependency=afterany) renders the plots and the report. Writes
<out>/<name>/slurm/shards.sbatch and report.sbatch (logs go to <out>/<name>/slurm/logs/) and
prints them with the sbatch commands that submit them; --submit submits them and prints the job
ids. Under [select] the array is submitted twice, the second run (after the first) training the
final trials once the search is complete.

The scripts call the p2sbench binary that wrote them, by its absolute path, in the directory
where this command ran (relative paths in the experiment file resolve as they do here). Trials
already done are skipped and unfinished ones resume from their checkpoints, so any task can be
submitted again: --tasks 1,3 --submit submits tasks 1 and 3 of the same N shards and a new report
job (plain `sbatch --array=1,3 shards.sbatch` works too).

Stopping: on SIGTERM (scancel, preemption) a task's p2sbench saves a checkpoint at its next
training step and exits with code 3. With --requeue the tasks may be requeued (preemption,
`scontrol requeue`) and resume from that checkpoint. --signal SIG[@SECONDS] (e.g. USR1@300)
asks Slurm for SIG that many seconds before the time limit; the task then stops the same way and,
with --requeue, requeues itself.

Exit status 2 for an invalid experiment file, filter, --shards, --array-parallelism, --time,
--signal, --tasks or --sbatch-arg; nothing is written then.";

#[derive(clap::Args, Debug)]
pub struct SlurmArgs {
    /// The experiment file.
    pub file: PathBuf,
    /// Results root on the shared filesystem; the experiment's directory is <out>/<name>.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Array tasks (N shards). Default: one per selected trial.
    #[arg(long)]
    pub shards: Option<usize>,
    /// At most K tasks of the array run at once (--array=0-(N-1)%K). Default: all.
    #[arg(long, value_name = "K")]
    pub array_parallelism: Option<usize>,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// GPUs for each task (one trial trains on one GPU; more serve --jobs).
    #[arg(long)]
    pub gpus_per_task: Option<u32>,
    /// CPU cores for each task (libtorch's threads; default: Slurm's, usually 1).
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Time limit of each task: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS.
    #[arg(long)]
    pub time: Option<String>,
    /// A further sbatch option for both scripts, e.g. --sbatch-arg=--account=abc (repeatable).
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Let Slurm requeue the tasks (preemption, node failure, `scontrol requeue`); with --signal,
    /// a task stopped by that signal requeues itself. A requeued task appends to its log.
    #[arg(long)]
    pub requeue: bool,
    /// SIG[@SECONDS]: have Slurm send SIG (USR1, USR2, …; not TERM or KILL) SECONDS (default 60)
    /// before the time limit; the task checkpoints and stops (and requeues with --requeue).
    #[arg(long, value_name = "SIG[@SECONDS]")]
    pub signal: Option<String>,
    /// Trials each task trains at once (`run --jobs`).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// As `run --only`.
    #[arg(long, value_name = "FILTER")]
    pub only: Option<String>,
    /// As `run --skip`.
    #[arg(long, value_name = "FILTER")]
    pub skip: Option<String>,
    /// Submit only these tasks of the array (e.g. 1,3 or 0-2), to resubmit them.
    #[arg(long, value_name = "LIST")]
    pub tasks: Option<String>,
    /// Submit with sbatch and print the job ids (otherwise only write and print the scripts).
    #[arg(long)]
    pub submit: bool,
}

/// The scripts for one experiment.
#[derive(Debug, Clone)]
pub struct Scripts {
    /// `<out>/<name>/slurm`.
    pub dir: PathBuf,
    pub shards: String,
    pub report: String,
    /// The array of the first submission (`0-(N-1)%K`, or the --tasks list).
    pub array: String,
    /// The whole array (the second submission under `[select]`).
    pub full_array: String,
    pub select: bool,
}

fn bad(flag: &str, message: String) -> anyhow::Error {
    InputError { location: flag.into(), message }.into()
}

/// A word for bash, in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) })
}

/// A path as a `#SBATCH` option value: sbatch splits those lines at white space.
fn directive_path(path: &Path, what: &str) -> Result<String> {
    let text = path.to_string_lossy().into_owned();
    if text.chars().any(|c| c.is_whitespace() || c == '"' || c == '\'') {
        return Err(bad(what, format!("{text}: the path goes into #SBATCH lines, which cannot hold spaces or quotes")));
    }
    Ok(text)
}

/// Checks a Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS (or UNLIMITED).
fn check_time(text: &str) -> Result<()> {
    if text.eq_ignore_ascii_case("unlimited") || text.eq_ignore_ascii_case("infinite") {
        return Ok(());
    }
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, text),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let numbers =
        days.into_iter().chain(parts.iter().copied()).all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numbers && parts.len() <= 3 {
        return Ok(());
    }
    Err(bad(
        "--time",
        format!("\"{text}\" is not a Slurm time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"),
    ))
}

/// `SIG[@SECONDS]` → (signal name without SIG, seconds).
fn parse_signal(text: &str) -> Result<(String, u32)> {
    let (name, seconds) = text.split_once('@').map_or((text, None), |(n, s)| (n, Some(s)));
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name).to_string();
    const ALLOWED: [&str; 8] = ["USR1", "USR2", "HUP", "INT", "QUIT", "ALRM", "XCPU", "URG"];
    if !ALLOWED.contains(&name.as_str()) {
        return Err(bad(
            "--signal",
            format!(
                "\"{text}\": expected one of {} (SIGTERM already stops a task; Slurm sends it on scancel and preemption)",
                ALLOWED.join(", ")
            ),
        ));
    }
    let seconds = match seconds {
        None => 60,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|&s| s <= 65535)
            .ok_or_else(|| bad("--signal", format!("\"{text}\": SECONDS must be a whole number up to 65535")))?,
    };
    Ok((name, seconds))
}

/// Checks `--tasks` (indices and ranges below `shards`) and returns it as sbatch's array list.
fn parse_tasks(text: &str, shards: usize) -> Result<String> {
    let mut items = Vec::new();
    for item in text.split(',').map(str::trim) {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let (lo, hi) = match (lo.trim().parse::<usize>(), hi.trim().parse::<usize>()) {
            (Ok(lo), Ok(hi)) if lo <= hi => (lo, hi),
            _ => return Err(bad("--tasks", format!("\"{item}\" is not a task index or range (e.g. 1,3 or 0-2)"))),
        };
        if hi >= shards {
            return Err(bad("--tasks", format!("task {hi} does not exist: the array has tasks 0 to {}", shards - 1)));
        }
        items.push(if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") });
    }
    Ok(items.join(","))
}

/// Where the scripts run and what wrote them.
pub struct Origin<'a> {
    /// The p2sbench binary the scripts call.
    pub binary: &'a Path,
    /// The directory they run in.
    pub workdir: &'a Path,
    /// The `p2sbench slurm …` command line, for the scripts' comments.
    pub command: &'a str,
}

/// Builds the scripts for `args` (validating every option) and `selected` trials of `exp`.
pub fn scripts(args: &SlurmArgs, exp: &Experiment, selected: usize, origin: &Origin) -> Result<Scripts> {
    let shards = args.shards.unwrap_or(selected.max(1));
    if shards == 0 {
        return Err(bad("--shards", "expected at least 1".into()));
    }
    let parallel = match args.array_parallelism {
        Some(0) => return Err(bad("--array-parallelism", "expected at least 1".into())),
        Some(k) => format!("%{k}"),
        None => String::new(),
    };
    if let Some(t) = &args.time {
        check_time(t)?;
    }
    let signal = args.signal.as_deref().map(parse_signal).transpose()?;
    for a in &args.sbatch_args {
        if !a.starts_with('-') || a.contains('\n') {
            return Err(bad("--sbatch-arg", format!("\"{a}\": expected one sbatch option, e.g. --account=abc")));
        }
    }
    let full_array = format!("0-{}{parallel}", shards - 1);
    let array = match &args.tasks {
        Some(t) => format!("{}{parallel}", parse_tasks(t, shards)?),
        None => full_array.clone(),
    };
    let out = absolute(&args.out)?;
    let dir = out.join(&exp.name).join("slurm");
    let logs = directive_path(&dir.join("logs"), "--out")?;
    let chdir = directive_path(origin.workdir, "the working directory")?;
    let file = absolute(&args.file)?;
    let results = out.join(&exp.name);
    let (bin, file_q, out_q) =
        (quote(&origin.binary.to_string_lossy()), quote(&file.to_string_lossy()), quote(&out.to_string_lossy()));

    let mut common = Vec::new();
    if let Some(p) = &args.partition {
        common.push(format!("--partition={p}"));
    }
    if let Some(c) = args.cpus_per_task {
        common.push(format!("--cpus-per-task={c}"));
    }
    common.push(format!("--chdir={chdir}"));
    let extra: Vec<String> = args.sbatch_args.clone();

    let mut head =
        vec![format!("--job-name=p2sbench-{}", exp.name), format!("--array={full_array}"), "--ntasks=1".to_string()];
    head.extend(common.iter().cloned());
    if let Some(g) = args.gpus_per_task {
        head.push(format!("--gpus-per-task={g}"));
    }
    if let Some(t) = &args.time {
        head.push(format!("--time={t}"));
    }
    head.push(format!("--output={logs}/shard-%A_%a.out"));
    if args.requeue {
        // A requeued task writes the same log: append, so the stop and the resume both show.
        head.extend(["--requeue".into(), "--open-mode=append".into()]);
    }
    if let Some((sig, secs)) = &signal {
        head.push(format!("--signal=B:{sig}@{secs}"));
    }
    head.extend(extra.iter().cloned());

    let mut run = format!("{bin} run {file_q} --out {out_q} --shard \"${{SLURM_ARRAY_TASK_ID}}/{shards}\"");
    if args.jobs != 1 {
        run.push_str(&format!(" --jobs {}", args.jobs));
    }
    for (flag, filter) in [("--only", &args.only), ("--skip", &args.skip)] {
        if let Some(f) = filter {
            run.push_str(&format!(" {flag} {}", quote(f)));
        }
    }
    let mut sh = String::new();
    sh.push_str("#!/bin/bash\n");
    sh.push_str(&format!(
        "# Experiment \"{}\" ({}) as a Slurm job array of {shards} shards, written by `p2sbench slurm`.\n",
        exp.name,
        file.display()
    ));
    sh.push_str(&format!(
        "#   {}\n\
         # Task I trains `p2sbench run --shard I/{shards}`: trials already done are skipped, unfinished ones\n\
         # resume from their checkpoints. Resubmit, e.g., tasks 1 and 2 (and a new report job) with that\n\
         # command plus --tasks 1,2 --submit, or plainly: sbatch --array=1,2 {}\n",
        origin.command,
        dir.join("shards.sbatch").display()
    ));
    for h in &head {
        sh.push_str(&format!("#SBATCH {h}\n"));
    }
    sh.push_str("set -u\n");
    sh.push_str(&format!(
        ": \"${{SLURM_ARRAY_TASK_ID:?submit this script as a job array, e.g. sbatch --array=0-{} $0}}\"\n",
        shards - 1
    ));
    sh.push_str(&format!(
        "echo \"p2sbench shard ${{SLURM_ARRAY_TASK_ID}}/{shards}: job ${{SLURM_JOB_ID}} on $(hostname) at $(date -Is)\"\n"
    ));
    sh.push_str(
        "# On SIGTERM (scancel, preemption) p2sbench saves a checkpoint at its next step and exits with\n\
         # code 3; this shell forwards the signal and stays until p2sbench has exited.\n",
    );
    sh.push_str(&format!("{run} &\nchild=$!\nrequeue=no\n"));
    sh.push_str("trap 'kill -TERM \"$child\" 2>/dev/null' TERM\n");
    if let Some((sig, secs)) = &signal {
        sh.push_str(&format!(
            "# SIG{sig} comes {secs} s before the time limit: stop the same way{}.\n",
            if args.requeue { ", then requeue this task" } else { "" }
        ));
        let requeue = if args.requeue { "requeue=yes; " } else { "" };
        sh.push_str(&format!("trap '{requeue}kill -TERM \"$child\" 2>/dev/null' {sig}\n"));
    }
    sh.push_str(
        "while :; do\n\
         \x20   wait \"$child\"; status=$?\n\
         \x20   if ! kill -0 \"$child\" 2>/dev/null; then\n\
         \x20       wait \"$child\" 2>/dev/null; again=$?\n\
         \x20       if [ \"$again\" -ne 127 ]; then status=$again; fi\n\
         \x20       break\n\
         \x20   fi\n\
         done\n",
    );
    if args.requeue && signal.is_some() {
        sh.push_str(
            "if [ \"$status\" -eq 3 ] && [ \"$requeue\" = yes ]; then\n\
             \x20   echo \"requeueing ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}: it resumes from its checkpoints\"\n\
             \x20   scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n\
             fi\n",
        );
    }
    sh.push_str("echo \"p2sbench exited with code $status at $(date -Is)\"\nexit \"$status\"\n");

    let mut report_head = vec![format!("--job-name=p2sbench-{}-report", exp.name), "--ntasks=1".to_string()];
    report_head.extend(common);
    report_head.push(format!("--output={logs}/report-%j.out"));
    report_head.extend(extra);
    let mut report = String::new();
    report.push_str("#!/bin/bash\n");
    report.push_str(&format!(
        "# Plots and report of experiment \"{}\" from what its shards wrote, written by `p2sbench slurm`;\n\
         # submitted with --dependency=afterany on the array. `report` first rebuilds trials.parquet\n\
         # from the trial directories.\n",
        exp.name
    ));
    for h in &report_head {
        report.push_str(&format!("#SBATCH {h}\n"));
    }
    let results_q = quote(&results.to_string_lossy());
    report.push_str(&format!("set -eu\n{bin} plot {results_q}\n{bin} report {results_q}\n"));
    Ok(Scripts { dir, shards: sh, report, array, full_array, select: exp.select.is_some() })
}

/// `p2sbench slurm`.
pub fn run(args: &SlurmArgs) -> Result<()> {
    let exp = spec::load(&args.file)?;
    let selected = super::select_trials(&exp, args.only.as_deref(), args.skip.as_deref())?;
    let binary = std::env::current_exe().context("locating the p2sbench binary")?;
    let binary = binary.canonicalize().unwrap_or(binary);
    let words: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| if a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=./,:%@".contains(&b)) { a } else { quote(&a) })
        .collect();
    let command = format!("p2sbench {}", words.join(" "));
    let origin = Origin { binary: &binary, workdir: &std::env::current_dir()?, command: &command };
    let s = scripts(args, &exp, selected.len(), &origin)?;
    let logs = s.dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let (shards_path, report_path) = (s.dir.join("shards.sbatch"), s.dir.join("report.sbatch"));
    for (path, text) in [(&shards_path, &s.shards), (&report_path, &s.report)] {
        crate::store::write_atomic(path, text.as_bytes())?;
    }
    if !args.submit {
        println!("wrote {}:\n{}", shards_path.display(), s.shards);
        println!("wrote {}:\n{}", report_path.display(), s.report);
        println!("submit with (or run this command again with --submit):");
        let array = if s.array == s.full_array { String::new() } else { format!(" --array={}", s.array) };
        println!("  shards=$(sbatch --parsable{array} {})", shards_path.display());
        let mut last = "$shards";
        if s.select {
            println!("  finals=$(sbatch --parsable --dependency=afterany:$shards {})", shards_path.display());
            last = "$finals";
        }
        println!("  sbatch --dependency=afterany:{last} {}", report_path.display());
        return Ok(());
    }
    let shards = sbatch(&[format!("--array={}", s.array)], &shards_path)?;
    println!("submitted shards: {shards} (array {} of {})", s.array, shards_path.display());
    let mut last = shards.clone();
    let mut ids = vec![shards.clone()];
    if s.select {
        let finals = sbatch(&[format!("--dependency=afterany:{shards}")], &shards_path)?;
        println!(
            "submitted finals: {finals} (array {} again, after {shards}: the final trials of [select])",
            s.full_array
        );
        ids.push(finals.clone());
        last = finals;
    }
    let report = sbatch(&[format!("--dependency=afterany:{last}")], &report_path)?;
    println!("submitted report: {report} (after {last})");
    ids.push(report);
    println!("watch: squeue -j {}; logs in {}", ids.join(","), logs.display());
    Ok(())
}

/// Submits `script` with sbatch and returns the job id.
fn sbatch(options: &[String], script: &Path) -> Result<String> {
    let out =
        std::process::Command::new("sbatch").arg("--parsable").args(options).arg(script).output().map_err(|e| {
            anyhow::anyhow!(
                "running sbatch: {e} (is this a Slurm login node? without --submit the scripts are only written)"
            )
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "sbatch {} {} failed ({}): {}{}",
        options.join(" "),
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        stdout.trim()
    );
    let id = stdout.trim().split(';').next().unwrap_or("").to_string();
    anyhow::ensure!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()), "sbatch printed no job id: {stdout}");
    Ok(id)
}
