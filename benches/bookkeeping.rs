//! The bookkeeping of large studies at 100, 1,000 and 10,000 trials, without training: one real
//! tiny trial (10 identities, one epoch, the `[eval]` defaults with 1,000 bootstrap replicates)
//! is trained once, and every trial of a seed sweep is then written from its rows the way `run`
//! writes a finished trial (config.toml, a running status, the result files through
//! `runner::write_trial_results`, the done status, then its row through the run's
//! `runner::Registry`), timed per trial. Then, as processes of the release binary, with their
//! wall time and peak resident memory (medians of interleaved rounds): `run` again on the
//! finished study (every trial skipped, then `plot` and `report` as `run` ends), `run
//! --dry-run`, `report` and `plot`, first once with `.cache/` removed (the first report after
//! new trials reads every trial's files), then warm. Last, 8 concurrent shard processes against one process
//! doing the same trials' bookkeeping on one results directory (each process is this benchmark
//! again, started with BOOKKEEPING_WORKER). Run with `make bench` or
//! `cargo bench --bench bookkeeping`; BOOKKEEPING_SIZES (default 100,1000,10000),
//! BOOKKEEPING_ROUNDS (default 3) and BOOKKEEPING_SHARD_TRIALS (default 800) change it.

mod common;

use p2sbench::runner::{self, Registry, RunOptions};
use p2sbench::spec::{self, shard::Shard, Experiment, TrialConfig};
use p2sbench::store::{self, trial_files, ExperimentDir, State, TrialStatus};
use p2sbench::train::{self, TrialOutcome};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The issue's tiny trial, swept over `seeds` seeds.
fn spec_text(seeds: usize) -> String {
    let seeds: Vec<String> = (1..=seeds).map(|s| s.to_string()).collect();
    format!(
        r#"name = "bookbench"
[data]
identities = 10
heldout_identities = 10
images_per_identity = 4
image_size = 16
seed = 3
[model]
widths = [8, 16]
embedding = 16
[train]
epochs = 1
batch_size = 20
seeds = [{}]
device = "cpu"
threads = 1
[[loss]]
name = "cosface"
"#,
        seeds.join(", ")
    )
}

fn experiment(root: &Path, seeds: usize) -> (PathBuf, Experiment) {
    std::fs::create_dir_all(root).expect("directory");
    let file = root.join("bookbench.toml");
    std::fs::write(&file, spec_text(seeds)).expect("spec");
    let exp = spec::load(&file).expect("valid spec");
    (file, exp)
}

/// The rows of one real trained trial.
struct Template {
    rows: train::checkpoint::Rows,
    checksums: runner::Checksums,
    seconds: f64,
}

fn template(root: &Path) -> Template {
    let (_, exp) = experiment(root, 1);
    runner::run_experiment(&exp, &RunOptions::new(root.join("results"))).expect("the template trial trains");
    template_from(root)
}

/// The template's outcome as trial `cfg`: its evaluations shifted by its seed and its bootstrap
/// replicates perturbed by it, so that no two trials' files are alike (as no two real trials'
/// are: a file of repeated values would compress unrealistically well).
fn outcome(t: &Template, cfg: &TrialConfig) -> TrialOutcome {
    let mut rows = t.rows.clone();
    let shift = (cfg.seed % 11) as f64 * 1e-3;
    for e in &mut rows.evals {
        e.value += shift;
        for (k, r) in e.replicates.iter_mut().enumerate() {
            let noise = (cfg.seed.wrapping_mul(2_654_435_761).wrapping_add(k as u64 * 40_503) % 1000) as f32;
            *r += shift as f32 + noise * 1e-5;
        }
    }
    TrialOutcome {
        rows,
        init_checksum: t.checksums.init.clone(),
        data_order_checksum: t.checksums.data_order.clone(),
        diverged_step: None,
        resumed_from: None,
        skipped_images: 0,
        paused_after: None,
    }
}

/// What `run` writes around one trial's training, in its order; the seconds of the whole and of
/// the registry's part.
fn bookkeep(dir: &ExperimentDir, registry: &Registry, cfg: &TrialConfig, t: &Template) -> (f64, f64) {
    let trained = outcome(t, cfg);
    let started = Instant::now();
    let id = cfg.id();
    let tdir = dir.trial(&id);
    assert!(TrialStatus::read(&tdir).is_none(), "a fresh trial");
    let _lock = store::try_lock_trial(&tdir).expect("lock").expect("free");
    store::write_atomic(&tdir.join(trial_files::CONFIG), toml::to_string(cfg).expect("toml").as_bytes())
        .expect("config");
    let running = TrialStatus { state: State::Running, attempts: 1, device: Some("cpu".into()), ..Default::default() };
    running.write(&tdir).expect("status");
    let results = runner::write_trial_results(&tdir, &id, &trained).expect("results");
    TrialStatus { state: State::Done, seconds: t.seconds, results: Some(results), ..running }
        .write(&tdir)
        .expect("status");
    let table = Instant::now();
    registry.record(&id).expect("record");
    (started.elapsed().as_secs_f64(), table.elapsed().as_secs_f64())
}

/// Every trial of `exp` (or a shard's part) bookkept in `out`, as one run; the per-trial
/// seconds of everything and of the table (opening and closing the registry included).
fn bookkeep_all(exp: &Experiment, out: &Path, shard: Option<Shard>, t: &Template) -> (f64, f64) {
    let dir = ExperimentDir::new(out, &exp.name);
    let _lock = match shard {
        Some(_) => store::lock_shared(&dir.root),
        None => store::lock(&dir.root),
    }
    .expect("results directory lock");
    let mine = shard.map_or_else(|| exp.trials.clone(), |s| s.pick(&exp.trials));
    let started = Instant::now();
    let (registry, _) = Registry::open(exp, &dir).expect("registry");
    let mut table = started.elapsed().as_secs_f64();
    for cfg in &mine {
        table += bookkeep(&dir, &registry, cfg, t).1;
    }
    let closing = Instant::now();
    registry.reload(exp).expect("the run's last table");
    table += closing.elapsed().as_secs_f64();
    let n = mine.len() as f64;
    (started.elapsed().as_secs_f64() / n, table / n)
}

/// Wall seconds and peak resident MiB of a child process: its `VmHWM`, polled every 5 ms until
/// it exits (the rusage of `wait4` would include this process's own peak, which a spawned
/// child inherits).
fn measured(cmd: &mut Command) -> (f64, f64) {
    let started = Instant::now();
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("spawn");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0.0f64;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        }) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(status.success(), "{cmd:?} failed: {status}");
    (started.elapsed().as_secs_f64(), peak_kib / 1024.0)
}

fn p2sbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_p2sbench"))
}

/// A shard worker: BOOKKEEPING_WORKER = "<template dir>|<spec>|<out>|<shard>".
fn worker(arg: &str) {
    let parts: Vec<&str> = arg.split('|').collect();
    let t = template_from(Path::new(parts[0]));
    let exp = spec::load(Path::new(parts[1])).expect("spec");
    let shard = Shard::parse(parts[3]).expect("shard");
    bookkeep_all(&exp, Path::new(parts[2]), Some(shard), &t);
}

fn template_from(root: &Path) -> Template {
    let (_, exp) = experiment(root, 1);
    let tdir = ExperimentDir::new(&root.join("results"), &exp.name).trial(&exp.trials[0].id());
    Template {
        rows: train::checkpoint::read_rows(&tdir).expect("rows"),
        checksums: runner::Checksums::read(&tdir).expect("checksums"),
        seconds: TrialStatus::read(&tdir).expect("status").seconds,
    }
}

fn main() {
    store::large_thread_stacks();
    if let Ok(arg) = std::env::var("BOOKKEEPING_WORKER") {
        return worker(&arg);
    }
    let sizes: Vec<usize> = std::env::var("BOOKKEEPING_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BOOKKEEPING_SIZES: numbers"))
        .collect();
    let rounds: usize = common::env_or("BOOKKEEPING_ROUNDS", 3);
    let shard_trials: usize = common::env_or("BOOKKEEPING_SHARD_TRIALS", 800);
    // BOOKKEEPING_DIR keeps the studies there (for profiling); by default a temporary directory.
    let temporary = tempfile::tempdir().expect("temporary directory");
    let work = std::env::var_os("BOOKKEEPING_DIR").map_or_else(|| temporary.path().to_path_buf(), PathBuf::from);
    let template_root = work.join("template");
    let t = template(&template_root);

    println!("bookkeeping of a seed sweep of tiny trials (release build, {} cores):", num_cores());
    let mut studies = Vec::new();
    for &n in &sizes {
        let root = work.join(format!("n{n}"));
        let (file, exp) = experiment(&root, n);
        let out = root.join("results");
        let (total, table) = bookkeep_all(&exp, &out, None, &t);
        println!(
            "  {n:>6} trials: run overhead per trial {:.2} ms (result files and statuses included), of which trials.parquet {:.3} ms",
            total * 1e3,
            table * 1e3
        );
        studies.push((n, file, out.join(&exp.name), out));
    }

    if rounds == 0 {
        return;
    }
    // The first report and plot after new trials read every trial's files (and write the cache).
    let mut cold = Vec::new();
    for (_, _, dir, _) in &studies {
        let _ = std::fs::remove_dir_all(dir.join(".cache"));
        let report = measured(p2sbench().arg("report").arg(dir));
        let plot = measured(p2sbench().arg("plot").arg(dir));
        cold.push((report, plot));
    }
    println!("the first report and plot, the cache cold (wall time, peak resident memory):");
    for ((n, ..), ((rs, rm), (ps, pm))) in studies.iter().zip(&cold) {
        println!("  {n:>6} trials: report {rs:.2} s / {rm:.0} MiB; plot {ps:.2} s / {pm:.0} MiB");
    }
    let commands = ["run again (all done)", "run --dry-run", "report", "plot"];
    let mut figures = vec![vec![(Vec::new(), Vec::new()); commands.len()]; studies.len()];
    for _ in 0..rounds {
        for (k, (_, file, dir, out)) in studies.iter().enumerate() {
            let mut cmds = [
                {
                    let mut c = p2sbench();
                    c.arg("run").arg(file).arg("--out").arg(out);
                    c
                },
                {
                    let mut c = p2sbench();
                    c.arg("run").arg(file).arg("--out").arg(out).arg("--dry-run");
                    c
                },
                {
                    let mut c = p2sbench();
                    c.arg("report").arg(dir);
                    c
                },
                {
                    let mut c = p2sbench();
                    c.arg("plot").arg(dir);
                    c
                },
            ];
            for (c, cmd) in cmds.iter_mut().enumerate() {
                let (seconds, mib) = measured(cmd);
                figures[k][c].0.push(seconds);
                figures[k][c].1.push(mib);
            }
        }
    }
    println!(
        "commands as processes, the cache warm ({rounds} interleaved rounds, median wall time, peak resident memory):"
    );
    for (k, (n, ..)) in studies.iter().enumerate() {
        let cells: Vec<String> = commands
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let (s, _, _) = common::summary(&figures[k][c].0);
                let (m, _, _) = common::summary(&figures[k][c].1);
                format!("{name} {s:.2} s / {m:.0} MiB")
            })
            .collect();
        println!("  {n:>6} trials: {}", cells.join("; "));
    }

    // 8 shard processes against one, on the same trials' bookkeeping.
    let (file, _) = experiment(&work.join("shards"), shard_trials);
    let mut one = Vec::new();
    let mut eight = Vec::new();
    let exe = std::env::current_exe().expect("this benchmark");
    for round in 0..rounds {
        for (shards, times) in [(1usize, &mut one), (8, &mut eight)] {
            let out = work.join(format!("shards-{round}-{shards}"));
            let started = Instant::now();
            let children: Vec<_> = (0..shards)
                .map(|s| {
                    let arg = format!("{}|{}|{}|{s}/{shards}", template_root.display(), file.display(), out.display());
                    Command::new(&exe).env("BOOKKEEPING_WORKER", arg).spawn().expect("worker")
                })
                .collect();
            for mut c in children {
                assert!(c.wait().expect("worker").success(), "a shard worker failed");
            }
            times.push(started.elapsed().as_secs_f64() / shard_trials as f64);
            let table = store::read_parquet(&out.join("bookbench").join("trials.parquet")).expect("trials.parquet");
            let done = table.column("status").expect("status").str().expect("text").into_iter();
            assert_eq!(
                done.filter(|s| *s == Some("done")).count(),
                shard_trials,
                "every shard's rows are in the table"
            );
        }
    }
    let (a, _, _) = common::summary(&one);
    let (b, _, _) = common::summary(&eight);
    println!(
        "shards: {shard_trials} trials' bookkeeping on one results directory, per trial: 1 process {:.2} ms, 8 concurrent shard processes {:.2} ms ({:.2}x)",
        a * 1e3,
        b * 1e3,
        b / a
    );
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
