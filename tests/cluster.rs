//! Scale-out: `run --shard I/N` (disjoint, balanced, stable parts of the trials), several
//! processes sharing one results directory (per-trial locks, tables rebuilt from the trial
//! directories, the last shard rendering the report), SIGTERM checkpointing, the sbatch scripts
//! of `p2sbench slurm` run by bash, and (ignored unless `make test-slurm` starts a one-node Slurm
//! cluster) a job array against a real Slurm.

mod common;

use p2sbench::spec::shard::{self, Shard};
use p2sbench::spec::{self, Experiment};
use p2sbench::store::{self, ExperimentDir, State, TrialStatus};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn p2sbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_p2sbench"))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The tiny experiment (five losses), plus `extra` lines in its `[train]` table.
fn tiny(dir: &Path, extra: &str) -> (PathBuf, Experiment) {
    let source = common::TINY.replace("[train]\n", &format!("[train]\n{extra}\n"));
    let file = dir.join("tiny.toml");
    std::fs::write(&file, &source).unwrap();
    (file.clone(), spec::load(&file).unwrap())
}

/// One CosFace trial per seed that trains for a few seconds, checkpointed every 8 steps: long
/// enough for a signal to reach it mid-trial.
fn slow(dir: &Path, name: &str, seeds: &str, epochs: usize) -> (PathBuf, Experiment) {
    let source = format!(
        "name = \"{name}\"\n[data]\nidentities = 24\nheldout_identities = 8\nimages_per_identity = 16\nimage_size = 24\n\
         difficulty = 0.3\nseed = 3\n[model]\nwidths = [16, 32]\nembedding = 32\n[train]\nepochs = {epochs}\n\
         batch_size = 16\nlr = 0.05\nlr_milestones = [{}]\nseeds = {seeds}\ndevice = \"cpu\"\nthreads = 1\nlog_every = 4\n\
         checkpoint_every = 8\n[[loss]]\nname = \"cosface\"\ns = 16.0\nm = 0.2\n[[loss]]\nname = \"p2sgrad\"\n\
         [eval]\nevery_epochs = 5\n[eval.lfw]\nfolds = 4\npairs_per_fold = 10\n",
        epochs / 2
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, &source).unwrap();
    (file.clone(), spec::load(&file).unwrap())
}

/// trials.parquet without its wall-clock column.
fn trials_table(root: &ExperimentDir) -> polars::prelude::DataFrame {
    let df = store::read_parquet(&root.trials_table()).unwrap();
    df.drop("seconds").unwrap()
}

/// Polls `done` every 50 ms for up to `seconds`; panics with `what` when it never holds.
fn wait_for(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {seconds} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn state(root: &ExperimentDir, id: &str) -> Option<State> {
    TrialStatus::read(&root.trial(id)).map(|s| s.state)
}

/// How often each trial id is reported trained to completion ("<id>: done in …") in `logs`.
fn completions(logs: &[String]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for line in logs.iter().flat_map(|l| l.lines()) {
        if let Some((id, rest)) = line.split_once(": ") {
            if rest.starts_with("done in ") {
                *count.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    count
}

fn send(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child process of this test.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0, "signal {signal} to {pid}");
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn shards_are_disjoint_stable_and_balanced_by_expected_cost() {
    let dir = tempfile::tempdir().unwrap();
    // Twelve trials whose costs differ: eight at 2 epochs, four at 6 (per-loss overrides).
    let source = common::TINY.replace("[[loss]]\nname = \"softmax\"\n", "")
        + "[[loss]]\nname = \"normface\"\n\"train.epochs\" = 6\n"
        + "[[loss]]\nname = \"softmax\"\n\"train.epochs\" = 6\n";
    let source = source.replace("seeds = [1]", "seeds = [1, 2]");
    let file = dir.path().join("mixed.toml");
    std::fs::write(&file, &source).unwrap();
    let exp = spec::load(&file).unwrap();
    assert_eq!(exp.trials.len(), 12);
    for n in 1..=5 {
        let parts: Vec<Vec<String>> =
            (0..n).map(|i| Shard { index: i, count: n }.pick(&exp.trials).iter().map(|t| t.id()).collect()).collect();
        let mut all: Vec<String> = parts.concat();
        all.sort();
        let mut expected: Vec<String> = exp.trials.iter().map(|t| t.id()).collect();
        expected.sort();
        assert_eq!(all, expected, "{n} shards cover every trial exactly once");
        let again: Vec<Vec<String>> =
            (0..n).map(|i| Shard { index: i, count: n }.pick(&exp.trials).iter().map(|t| t.id()).collect()).collect();
        assert_eq!(parts, again, "the split is the same on every call");
        let cost = |ids: &Vec<String>| -> f64 {
            exp.trials.iter().filter(|t| ids.contains(&t.id())).map(shard::expected_cost).sum()
        };
        let loads: Vec<f64> = parts.iter().map(cost).collect();
        let biggest = exp.trials.iter().map(shard::expected_cost).fold(0.0, f64::max);
        let (lo, hi) = loads.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &l| (lo.min(l), hi.max(l)));
        assert!(hi - lo <= biggest, "{n} shards: loads {loads:?} differ by more than one trial's cost {biggest}");
    }
    let long = exp.trials.iter().filter(|t| t.train.epochs == 6).map(shard::expected_cost).next().unwrap();
    let short = exp.trials.iter().filter(|t| t.train.epochs == 2).map(shard::expected_cost).next().unwrap();
    assert!((long / short - 3.0).abs() < 1e-9, "cost scales with epochs: {long} vs {short}");
    // With 2 shards, the 4 long and 8 short trials split 2 + 4 each.
    for i in 0..2 {
        let part = Shard { index: i, count: 2 }.pick(&exp.trials);
        assert_eq!(part.iter().filter(|t| t.train.epochs == 6).count(), 2, "shard {i}");
        assert_eq!(part.len(), 6, "shard {i}");
    }
}

#[test]
fn a_bad_shard_is_refused_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = tiny(dir.path(), "");
    for bad in ["2/2", "1", "a/3", "0/0", "-1/2"] {
        let out = p2sbench()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(dir.path().join("r"))
            .arg(format!("--shard={bad}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--shard {bad}: {}", text(&out));
        assert!(text(&out).contains("--shard"), "--shard {bad}: {}", text(&out));
    }
    assert!(!dir.path().join("r").exists(), "nothing is written for a bad --shard");
    let listed = p2sbench().arg("run").arg(&file).args(["--dry-run", "--shard", "1/2"]).output().unwrap();
    assert!(text(&listed).contains("shard 1/2: 2 of the 5 selected trials"), "{}", text(&listed));
}

#[test]
fn shard_processes_share_one_results_directory_and_the_last_renders_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (file, exp) = tiny(dir.path(), "");
    let (single, shared) = (dir.path().join("single"), dir.path().join("shared"));
    let out = p2sbench().arg("run").arg(&file).arg("--out").arg(&single).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Three shards at once, the second with two workers.
    let mut children: Vec<Child> = (0..3)
        .map(|i| {
            let mut cmd = p2sbench();
            cmd.arg("run").arg(&file).arg("--out").arg(&shared).arg("--shard").arg(format!("{i}/3"));
            if i == 1 {
                cmd.args(["--jobs", "2"]);
            }
            spawn(&mut cmd)
        })
        .collect();
    let outputs: Vec<Output> = children.drain(..).map(|c| c.wait_with_output().unwrap()).collect();
    let logs: Vec<String> = outputs.iter().map(text).collect();
    for (o, log) in outputs.iter().zip(&logs) {
        assert_eq!(o.status.code(), Some(0), "{log}");
    }
    let trained = completions(&logs);
    assert_eq!(trained.len(), exp.trials.len(), "{trained:?}");
    assert!(trained.values().all(|&n| n == 1), "every trial trained exactly once: {trained:?}");
    let rendered = logs.iter().filter(|l| l.contains("report: ")).count();
    assert!(rendered >= 1, "the last shard renders the report:\n{}", logs.join("\n---\n"));
    let (a, b) = (ExperimentDir::new(&single, "tiny"), ExperimentDir::new(&shared, "tiny"));
    assert!(b.report().is_file() && b.report_html().is_file());
    assert_eq!(common::trial_frames(&b, &exp), common::trial_frames(&a, &exp), "shards train what one run trains");
    assert!(trials_table(&a).equals_missing(&trials_table(&b)), "trials.parquet lists every trial, done");
    let report = std::fs::read_to_string(b.report()).unwrap();
    assert!(!report.contains("pending") && !report.contains("running"), "{report}");
}

#[test]
fn under_select_shards_train_the_finals_once_the_whole_search_has_finished() {
    let dir = tempfile::tempdir().unwrap();
    let head = &common::TINY[..common::TINY.find("[[loss]]").unwrap()];
    let tail = &common::TINY[common::TINY.find("[eval]").unwrap()..];
    let source = format!(
        "{head}[[loss]]\nname = \"cosface\"\ns = 16.0\n\"train.lr\" = [0.02, 0.05]\n[[loss]]\nname = \"p2sgrad\"\n\
         \"train.lr\" = [0.5, 1.0]\n{tail}[select]\nmetric = \"lfw/accuracy_mean\"\ntune = [\"train.lr\"]\nseeds = [11, 12]\n\
         validation_identities = 4\n"
    );
    let file = dir.path().join("tiny.toml");
    std::fs::write(&file, &source).unwrap();
    let (single, shared) = (dir.path().join("single"), dir.path().join("shared"));
    let out = p2sbench().arg("run").arg(&file).arg("--out").arg(&single).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shard = |i: usize| {
        let o =
            p2sbench().arg("run").arg(&file).arg("--out").arg(&shared).arg(format!("--shard={i}/2")).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        text(&o)
    };
    // First pass: shard 0 leaves the finals to a later run; shard 1, last to finish the search,
    // trains its part of them; second pass: shard 0 trains the rest and renders.
    let first = [shard(0), shard(1)];
    assert!(first[0].contains("the final trials run when the shards run again"), "{}", first[0]);
    let second = [shard(0), shard(1)];
    let logs: Vec<String> = first.iter().chain(&second).cloned().collect();
    let trained = completions(&logs);
    assert_eq!(trained.len(), 4 + 4, "4 search and 2 × 2 final trials: {trained:?}");
    assert!(trained.values().all(|&n| n == 1), "{trained:?}");
    assert_eq!(completions(&first[1..]).keys().filter(|id| id.contains("-test-")).count(), 2, "{}", first[1]);
    let (a, b) = (ExperimentDir::new(&single, "tiny"), ExperimentDir::new(&shared, "tiny"));
    assert!(trials_table(&a).equals_missing(&trials_table(&b)), "the same search, choices and finals");
    let selection = |d: &ExperimentDir| std::fs::read_to_string(d.root.join("selection.json")).unwrap();
    let strip = |t: String| t.lines().filter(|l| !l.contains("seconds")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(selection(&a)), strip(selection(&b)));
    assert!(b.report().is_file());
}

#[test]
fn report_reads_the_statuses_again_from_the_trial_directories() {
    let dir = tempfile::tempdir().unwrap();
    let (file, exp) = tiny(dir.path(), "");
    let out = dir.path().join("r");
    // Shard 0 alone: the others' trials are pending in its table.
    let first = p2sbench().arg("run").arg(&file).arg("--out").arg(&out).args(["--shard", "0/2"]).output().unwrap();
    assert!(text(&first).contains("unfinished in other shards"), "{}", text(&first));
    let root = ExperimentDir::new(&out, "tiny");
    assert!(!root.report().exists(), "no report while shard 1's trials are unfinished");
    let mine: Vec<String> = Shard { index: 1, count: 2 }.pick(&exp.trials).iter().map(|t| t.id()).collect();
    // Shard 1's trials trained by a process that stopped before writing the table: simulated
    // by training them into a copy and moving their directories over.
    let other = dir.path().join("other");
    let second = p2sbench().arg("run").arg(&file).arg("--out").arg(&other).args(["--shard", "1/2"]).output().unwrap();
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    for id in &mine {
        std::fs::rename(ExperimentDir::new(&other, "tiny").trial(id), root.trial(id)).unwrap();
    }
    let statuses =
        |root: &ExperimentDir| common::strings(&store::read_parquet(&root.trials_table()).unwrap(), "status");
    assert_eq!(statuses(&root).iter().filter(|s| *s == "pending").count(), mine.len());
    let report = p2sbench().arg("report").arg(&root.root).output().unwrap();
    assert!(report.status.success(), "{}", text(&report));
    assert!(statuses(&root).iter().all(|s| s == "done"), "{:?}", statuses(&root));
    let md = std::fs::read_to_string(root.report()).unwrap();
    assert!(!md.contains("pending"), "{md}");
}

#[test]
fn a_trial_another_process_is_training_is_left_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (file, exp) = tiny(dir.path(), "");
    let out = dir.path().join("r");
    let root = ExperimentDir::new(&out, "tiny");
    let held = exp.trials[1].id();
    let lock = store::try_lock_trial(&root.trial(&held)).unwrap().expect("the trial is free");
    let run = p2sbench().arg("run").arg(&file).arg("--out").arg(&out).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(text(&run).contains(&format!("{held}: another process is training it")), "{}", text(&run));
    assert_eq!(state(&root, &held), None, "untouched");
    assert_eq!(completions(&[text(&run)]).len(), exp.trials.len() - 1);
    drop(lock);
    let again = p2sbench().arg("run").arg(&file).arg("--out").arg(&out).output().unwrap();
    assert_eq!(completions(&[text(&again)]).keys().collect::<Vec<_>>(), vec![&held], "{}", text(&again));
}

#[test]
fn sigterm_checkpoints_every_running_trial_and_a_rerun_resumes_to_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let (file, exp) = slow(dir.path(), "slow", "[1, 2]", 30);
    let (clean, out) = (dir.path().join("clean"), dir.path().join("r"));
    let reference = p2sbench().arg("run").arg(&file).arg("--out").arg(&clean).output().unwrap();
    assert_eq!(reference.status.code(), Some(0), "{}", text(&reference));
    let root = ExperimentDir::new(&out, "slow");
    let first = exp.trials[0].id();
    let child = spawn(p2sbench().arg("run").arg(&file).arg("--out").arg(&out).args(["--jobs", "2"]));
    wait_for(60, "the first trial to checkpoint", || root.trial(&first).join("checkpoint").is_dir());
    send(child.id(), libc::SIGTERM);
    let stopped = child.wait_with_output().unwrap();
    let log = text(&stopped);
    assert_eq!(stopped.status.code(), Some(3), "{log}");
    assert!(log.contains("stopped on request (SIGTERM)"), "{log}");
    // Every trial still running at the stop (one per job) says where it stopped, and its
    // checkpoint is of that step.
    let mut stops = BTreeMap::new();
    for line in log.lines() {
        if let Some((id, rest)) = line.split_once(": stopped at step ") {
            let step: i64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            assert!(stops.insert(id.to_string(), step).is_none(), "{id} stopped twice: {log}");
        }
    }
    let mut running: Vec<String> =
        exp.trials.iter().map(|t| t.id()).filter(|id| state(&root, id) == Some(State::Running)).collect();
    running.sort();
    assert_eq!(stops.keys().cloned().collect::<Vec<_>>(), running, "{log}");
    assert_eq!(running.len(), 2, "both jobs were mid-trial: {log}");
    assert!(stops.contains_key(&first), "{log}");
    for (id, &step) in &stops {
        assert_eq!(common::checkpoint_step(&root.trial(id)), Some(step), "{id}: {log}");
    }
    assert!(!root.report().exists(), "a stopped run renders nothing");
    let table = common::strings(&store::read_parquet(&root.trials_table()).unwrap(), "status");
    assert!(table.contains(&"running".to_string()), "trials.parquet says where the trials stand: {table:?}");
    let resumed = p2sbench().arg("run").arg(&file).arg("--out").arg(&out).output().unwrap();
    let log = text(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{log}");
    for (id, &step) in &stops {
        common::assert_resumed(&root.trial(id), step, &log);
    }
    let a = ExperimentDir::new(&clean, "slow");
    assert_eq!(common::trial_frames(&root, &exp), common::trial_frames(&a, &exp), "resumed = uninterrupted");
}

/// `p2sbench slurm` for `file`, writing into `out`, with `args`.
fn slurm(file: &Path, out: &Path, args: &[&str]) -> Output {
    p2sbench().arg("slurm").arg(file).arg("--out").arg(out).args(args).output().unwrap()
}

#[test]
fn slurm_writes_a_job_array_and_a_dependent_report_job() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = tiny(dir.path(), "");
    let out = dir.path().join("r");
    let args = [
        "--partition=gpu",
        "--gpus-per-task=1",
        "--cpus-per-task=4",
        "--time=2:00:00",
        "--array-parallelism=2",
        "--sbatch-arg=--account=face",
        "--requeue",
        "--signal=USR1@120",
    ];
    let written = slurm(&file, &out, &args);
    assert_eq!(written.status.code(), Some(0), "{}", text(&written));
    let scripts = out.join("tiny/slurm");
    let shards = std::fs::read_to_string(scripts.join("shards.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=0-4%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --time=2:00:00",
        "#SBATCH --account=face",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "#SBATCH --signal=B:USR1@120",
        "--shard \"${SLURM_ARRAY_TASK_ID}/5\"",
        "scontrol requeue",
    ] {
        assert!(shards.contains(line), "shards.sbatch lacks {line:?}:\n{shards}");
    }
    let report = std::fs::read_to_string(scripts.join("report.sbatch")).unwrap();
    assert!(report.contains(" plot ") && report.contains(" report "), "{report}");
    assert!(
        !report.contains("--array") && !report.contains("--gpus"),
        "the report job needs no array or GPU:\n{report}"
    );
    let printed = text(&written);
    assert!(printed.contains("sbatch --dependency=afterany:$shards"), "{printed}");
    // --shards, and resubmitting some tasks.
    let three = slurm(&file, &out, &["--shards=3", "--tasks=1,2"]);
    assert!(text(&three).contains("--array=1,2"), "{}", text(&three));
    for (bad, flag) in [
        ("--time=soon", "--time"),
        ("--signal=TERM", "--signal"),
        ("--tasks=7", "--tasks"),
        ("--shards=0", "--shards"),
        ("--array-parallelism=0", "--array-parallelism"),
        ("--sbatch-arg=account", "--sbatch-arg"),
    ] {
        let o = slurm(&file, &dir.path().join("bad"), &[bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains(flag), "{bad}: {}", text(&o));
    }
    assert!(!dir.path().join("bad").exists(), "nothing is written for a bad option");
}

/// Runs an sbatch script with bash as Slurm would run array task `task`.
fn run_script(script: &Path, task: usize, count: usize) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .env("SLURM_ARRAY_TASK_ID", task.to_string())
        .env("SLURM_ARRAY_TASK_COUNT", count.to_string())
        .env("SLURM_ARRAY_JOB_ID", "100")
        .env("SLURM_JOB_ID", (101 + task).to_string());
    cmd
}

#[test]
fn the_sbatch_scripts_run_their_shards_and_forward_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (file, exp) = slow(dir.path(), "slow", "[1]", 30);
    let out = dir.path().join("r");
    let written = slurm(&file, &out, &["--shards=2"]);
    assert_eq!(written.status.code(), Some(0), "{}", text(&written));
    let scripts = out.join("slow/slurm");
    let root = ExperimentDir::new(&out, "slow");
    // Task 0 stopped by SIGTERM to the batch shell, as scancel and preemption send it.
    let mine = Shard { index: 0, count: 2 }.pick(&exp.trials)[0].id();
    let task0 = spawn(&mut run_script(&scripts.join("shards.sbatch"), 0, 2));
    wait_for(60, "task 0's trial to checkpoint", || root.trial(&mine).join("checkpoint").is_dir());
    send(task0.id(), libc::SIGTERM);
    let stopped = task0.wait_with_output().unwrap();
    assert_eq!(stopped.status.code(), Some(3), "{}", text(&stopped));
    assert!(text(&stopped).contains("p2sbench exited with code 3"), "{}", text(&stopped));
    assert_eq!(state(&root, &mine), Some(State::Running));
    let mut logs = vec![text(&stopped)];
    for task in [1, 0] {
        let o = run_script(&scripts.join("shards.sbatch"), task, 2).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        logs.push(text(&o));
    }
    assert!(logs[2].contains("resumed from step"), "{}", logs[2]);
    assert!(completions(&logs).values().all(|&n| n == 1) && completions(&logs).len() == 2, "{logs:?}");
    std::fs::remove_file(root.report()).unwrap();
    let report = Command::new("bash").arg(scripts.join("report.sbatch")).output().unwrap();
    assert!(report.status.success(), "{}", text(&report));
    assert!(root.report().is_file() && root.report_html().is_file());
}

/// Runs `cmd` and returns its stdout, failing the test on a non-zero exit.
fn checked(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The job ids `p2sbench slurm --submit` printed ("submitted shards: 12 …").
fn submitted(printed: &str, what: &str) -> String {
    let line =
        printed.lines().find(|l| l.starts_with(&format!("submitted {what}: "))).unwrap_or_else(|| panic!("{printed}"));
    line.split_whitespace().nth(2).unwrap().to_string()
}

/// Waits until Slurm lists none of `jobs` as pending or running.
fn wait_for_jobs(jobs: &[&str], seconds: u64) {
    wait_for(seconds, &format!("jobs {jobs:?}"), || {
        checked(Command::new("squeue").args(["-h", "-o", "%i", "-j", &jobs.join(",")])).trim().is_empty()
    });
}

/// Against a real Slurm (`make test-slurm` starts a one-node cluster and sets SLURM_CONF): six
/// trials as a job array of three tasks, one task cancelled with scancel mid-trial and
/// resubmitted; every trial trains exactly once, the parquet content equals one `p2sbench run`'s,
/// and the dependent job renders the report.
#[test]
#[ignore = "needs a Slurm cluster: make test-slurm"]
fn slurm_job_array_trains_every_trial_once_resumes_cancelled_tasks_and_renders_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (file, exp) = slow(dir.path(), "sweep", "[1, 2, 3]", 40);
    assert_eq!(exp.trials.len(), 6);
    let (single, out) = (dir.path().join("single"), dir.path().join("shared"));
    let reference = p2sbench().arg("run").arg(&file).arg("--out").arg(&single).output().unwrap();
    assert_eq!(reference.status.code(), Some(0), "{}", text(&reference));
    let printed = String::from_utf8_lossy(
        &slurm(
            &file,
            &out,
            &[
                "--shards=3",
                "--array-parallelism=3",
                "--cpus-per-task=1",
                "--time=10",
                "--requeue",
                "--signal=USR1@60",
                "--submit",
            ],
        )
        .stdout,
    )
    .into_owned();
    let (array, report) = (submitted(&printed, "shards"), submitted(&printed, "report"));
    let root = ExperimentDir::new(&out, "sweep");
    let victim = Shard { index: 1, count: 3 }.pick(&exp.trials)[0].id();
    let requeued = Shard { index: 2, count: 3 }.pick(&exp.trials)[0].id();
    let signalled = Shard { index: 0, count: 3 }.pick(&exp.trials)[0].id();
    let checkpointed = |id: &str| root.trial(id).join("checkpoint").is_dir();
    wait_for(120, "task 1's first trial to checkpoint", || checkpointed(&victim));
    checked(Command::new("scancel").arg(format!("{array}_1")));
    // Task 2 requeued mid-trial (as preemption does): Slurm stops it and runs it again by itself.
    wait_for(120, "task 2's first trial to checkpoint", || checkpointed(&requeued));
    checked(Command::new("scontrol").args(["requeue", &format!("{array}_2")]));
    // Task 0 gets --signal's SIGUSR1 (as before its time limit): it stops and requeues itself.
    wait_for(120, "task 0's first trial to checkpoint", || checkpointed(&signalled));
    checked(Command::new("scancel").args(["--signal=USR1", "--batch", &format!("{array}_0")]));
    wait_for_jobs(&[&array, &report], 300);
    assert_eq!(state(&root, &victim), Some(State::Running), "the cancelled trial kept its checkpoint");
    for (task, id) in [(2, &requeued), (0, &signalled)] {
        assert_eq!(state(&root, id), Some(State::Done), "requeued task {task} finished its trials");
        let log = std::fs::read_to_string(root.root.join(format!("slurm/logs/shard-{array}_{task}.out"))).unwrap();
        assert!(
            log.contains(&format!("{id}: stopped at step")) && log.contains("resumed from step"),
            "requeued task {task} resumed from its checkpoint:\n{log}"
        );
    }
    let task0 = std::fs::read_to_string(root.root.join(format!("slurm/logs/shard-{array}_0.out"))).unwrap();
    assert!(task0.contains(&format!("requeueing {array}_0")), "{task0}");
    let logs_dir = root.root.join("slurm/logs");
    let first_report = std::fs::read_to_string(logs_dir.join(format!("report-{report}.out"))).unwrap();
    assert!(first_report.contains("report: "), "the report job ran after the array:\n{first_report}");
    // Resubmit the cancelled task (and a new report job).
    let again =
        String::from_utf8_lossy(&slurm(&file, &out, &["--shards=3", "--tasks=1", "--submit"]).stdout).into_owned();
    let (array2, report2) = (submitted(&again, "shards"), submitted(&again, "report"));
    wait_for_jobs(&[&array2, &report2], 300);
    let logs: Vec<String> = std::fs::read_dir(&logs_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("shard-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(logs.len(), 4, "three tasks and the resubmitted one");
    let trained = completions(&logs);
    assert_eq!(trained.len(), 6, "{trained:?}\n{}", logs.join("\n---\n"));
    assert!(trained.values().all(|&n| n == 1), "every trial trained exactly once: {trained:?}");
    let all = logs.join("\n");
    assert!(all.contains(&format!("{victim}: stopped at step")) && all.contains("resumed from step"), "{all}");
    assert!(exp.trials.iter().all(|t| state(&root, &t.id()) == Some(State::Done)));
    let a = ExperimentDir::new(&single, "sweep");
    assert_eq!(
        common::trial_frames(&root, &exp),
        common::trial_frames(&a, &exp),
        "the array trains what one run trains"
    );
    let without_attempts = |root: &ExperimentDir| trials_table(root).drop("attempts").unwrap();
    assert!(without_attempts(&a).equals_missing(&without_attempts(&root)));
    let table = store::read_parquet(&root.trials_table()).unwrap();
    let attempts: Vec<i64> = table.column("attempts").unwrap().i64().unwrap().into_no_null_iter().collect();
    let ids = common::strings(&table, "trial");
    for (id, n) in ids.iter().zip(attempts) {
        assert_eq!(n, if [&victim, &requeued, &signalled].contains(&id) { 2 } else { 1 }, "{id}: attempts");
    }
    let last_report = std::fs::read_to_string(logs_dir.join(format!("report-{report2}.out"))).unwrap();
    assert!(last_report.contains("report: "), "{last_report}");
    let md = std::fs::read_to_string(root.report()).unwrap();
    assert!(!md.contains("pending") && !md.contains("running"), "{md}");
}
