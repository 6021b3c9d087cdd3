//! Nothing lost, nothing crashes: a libtorch error fails only its own trial, `run`'s exit codes,
//! and a stored trial configuration checked by the spec's rules before `eval --model` uses it.

mod common;

use p2sbench::store::{self, ExperimentDir, State, TrialStatus};
use std::path::Path;
use std::process::{Command, Output};

fn p2sbench_run(file: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_p2sbench")).arg("run").arg(file).arg("--out").arg(out).output().unwrap()
}

/// Three CosFace trials over `model.embedding`; `middle` is the second one's embedding.
fn three_trials(middle: &str) -> String {
    common::TINY.split("[[loss]]").next().unwrap().to_string()
        + &format!("[sweep]\n\"model.embedding\" = [8, {middle}, 16]\n[[loss]]\nname = \"cosface\"\n[eval]\n")
}

#[test]
fn a_libtorch_error_fails_its_trial_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("three.toml");
    let out = dir.path().join("results");

    std::fs::write(&file, three_trials("12")).unwrap();
    let good = p2sbench_run(&file, &out);
    assert_eq!(good.status.code(), Some(0), "{}", String::from_utf8_lossy(&good.stderr));

    // 2^62 dimensions: libtorch refuses the class-weight tensor ("Storage size calculation
    // overflowed"), which tch raises as a panic in the middle of the trial's set-up.
    std::fs::write(&file, three_trials("4611686018427387904")).unwrap();
    let run = p2sbench_run(&file, &out);
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.status.code(), Some(1), "some trial failed: exit code 1\n{stdout}\n{stderr}");
    let exp = common::experiment(&std::fs::read_to_string(&file).unwrap());
    let root = ExperimentDir::new(&out, "tiny");
    let states: Vec<State> =
        exp.trials.iter().map(|t| TrialStatus::read(&root.trial(&t.id())).unwrap().state).collect();
    assert_eq!(states, [State::Done, State::Failed, State::Done]);
    let failed = TrialStatus::read(&root.trial(&exp.trials[1].id())).unwrap();
    let error = failed.error.unwrap();
    assert!(error.starts_with("libtorch error: Storage size calculation overflowed"), "{error}");
    assert!(!error.contains("frame #"), "the C++ frames are cut: {error}");
    assert!(stdout.contains(&format!("failed {}: libtorch error", exp.trials[1].id())), "{stdout}");
    assert!(stderr.contains("1 of 3 trial(s) failed or diverged"), "{stderr}");
    let trials = store::read_parquet(&root.trials_table()).unwrap();
    assert_eq!(common::strings(&trials, "status"), ["done", "failed", "done"]);
    assert_eq!(common::strings(&trials, "error")[1], error);
    assert!(common::strings(&trials, "error")[0].is_empty());
}

#[test]
fn a_diverged_trial_makes_the_exit_code_1() {
    let text = common::TINY.split("[[loss]]").next().unwrap().replace("lr = 0.05", "lr = 1e30")
        + "[[loss]]\nname = \"softmax\"\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("diverge.toml");
    std::fs::write(&file, text).unwrap();
    let run = p2sbench_run(&file, &dir.path().join("results"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("diverged softmax-") && stdout.contains("the loss became NaN or infinite at step"),
        "{stdout}"
    );
}

#[test]
fn eval_model_checks_the_trial_configuration_by_the_spec_rules() {
    let exp = common::experiment(common::TINY);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let written = toml::to_string(&exp.trials[1]).unwrap();
    let read = |text: &str| {
        std::fs::write(&config, text).unwrap();
        p2sbench::extract::trained::read_config(dir.path()).map(|_| ()).map_err(|e| e.to_string())
    };
    assert_eq!(read(&written), Ok(()));
    for (edit, expected) in [
        (written.replace("name = \"cosface\"", "name = \"cosfase\""), "unknown loss \"cosfase\""),
        (written.replace("m = 0.2\n", ""), "loss cosface: parameter m is missing"),
        (written.replace("batch_size = 16", "batch_size = 1"), "train.batch_size: expected at least 2"),
        (written.replace("embedding = 16", "embedding = 1"), "model.embedding: expected an embedding dimension"),
    ] {
        let error = read(&edit).unwrap_err();
        assert!(error.contains(&config.display().to_string()) && error.contains(expected), "{error}");
    }

    // Through the command: exit code 2, the file named.
    std::fs::write(&config, written.replace("name = \"cosface\"", "name = \"cosfase\"")).unwrap();
    let pairs = dir.path().join("pairs.txt");
    std::fs::write(&pairs, "2\t1\nA\t1\t2\nA\t1\tB\t1\nB\t1\t2\nB\t2\tA\t2\n").unwrap();
    let eval = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["eval", "lfw", "--pairs"])
        .arg(&pairs)
        .arg("--images")
        .arg(dir.path())
        .arg("--model")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&eval.stderr);
    assert_eq!(eval.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("config.toml") && stderr.contains("unknown loss \"cosfase\""), "{stderr}");
}

/// Three losses of the tiny experiment, checkpointed every 3 steps, written to `dir`/tiny.toml.
fn checkpointed_trio(dir: &Path) -> (std::path::PathBuf, p2sbench::spec::Experiment) {
    let text = common::TINY.split("[[loss]]").next().unwrap().replace("log_every = 2", "log_every = 1\ncheckpoint_every = 3")
        + "[[loss]]\nname = \"cosface\"\ns = 16.0\n[[loss]]\nname = \"p2sgrad\"\n[[loss]]\nname = \"softmax\"\n[eval]\nevery_epochs = 1\n"
        // No bootstrap replicates: the full-disk test sizes its disk by these trials' files.
        + "bootstrap = 0\n";
    let file = dir.join("tiny.toml");
    std::fs::write(&file, &text).unwrap();
    (file, common::experiment(&text))
}

#[test]
fn corrupted_trial_files_are_reported_and_the_trials_recover_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let (file, exp) = checkpointed_trio(dir.path());
    let (clean_out, out) = (dir.path().join("clean"), dir.path().join("results"));
    for o in [&clean_out, &out] {
        assert_eq!(p2sbench_run(&file, o).status.code(), Some(0));
    }
    let root = ExperimentDir::new(&out, "tiny");
    let trial = |k: usize| root.trial(&exp.trials[k].id());
    // A done trial's results cut short; a status that is not JSON; a checkpoint that is garbage.
    let evals = trial(0).join("evals.parquet");
    let bytes = std::fs::read(&evals).unwrap();
    std::fs::write(&evals, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(trial(1).join("status.json"), "{\"state\": \"do").unwrap();
    std::fs::write(trial(2).join("status.json"), "{\"state\": \"running\", \"attempts\": 1, \"seconds\": 1.0}")
        .unwrap();
    std::fs::write(trial(2).join("checkpoint").join("state.safetensors"), b"garbage").unwrap();

    let rerun = p2sbench_run(&file, &out);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert_eq!(rerun.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("{}: parquet", evals.display())), "{stderr}");
    assert!(stderr.contains(&format!("{}: not a trial status", trial(1).join("status.json").display())), "{stderr}");
    assert!(stderr.contains(&trial(2).join("checkpoint").join("state.safetensors").display().to_string()), "{stderr}");
    assert!(stderr.contains("starts again from scratch"), "{stderr}");
    assert!(trial(2).join("checkpoint.unreadable").is_dir(), "the unreadable checkpoint is kept aside");
    for k in 0..3 {
        assert_eq!(TrialStatus::read(&trial(k)).unwrap().state, State::Done);
    }
    let clean = ExperimentDir::new(&clean_out, "tiny");
    assert_eq!(
        common::trial_frames(&root, &exp),
        common::trial_frames(&clean, &exp),
        "recovered results equal an undisturbed run's"
    );
}

/// A size-limited tmpfs, unmounted when dropped.
struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let mounted =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).status();
        assert!(
            mounted.is_ok_and(|s| s.success()),
            "the full-disk test mounts a small tmpfs, which needs root (CI runs as root): run `sudo make test`, \
             or `cargo test --test robustness -- --skip full_disk` to leave it out knowingly"
        );
        SmallDisk { at: at.to_path_buf() }
    }

    fn grow(&self, size: &str) {
        let status =
            Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.at).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

/// Every file under `dir`: no temporary file is left, and every parquet, JSON and checkpoint
/// file reads back whole.
fn assert_nothing_half_written(dir: &Path) {
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-"), "a temporary file was left: {}", entry.display());
        match entry.extension().and_then(|e| e.to_str()) {
            Some("parquet") => drop(store::read_parquet(&entry).unwrap()),
            Some("json") => drop(serde_json::from_slice::<serde_json::Value>(&std::fs::read(&entry).unwrap()).unwrap()),
            Some("safetensors") => drop(p2sbench::model::weights::read(&entry).unwrap()),
            _ => {}
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_full_disk_stops_the_run_cleanly_and_a_rerun_resumes_to_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let (file, exp) = checkpointed_trio(dir.path());
    let clean_out = dir.path().join("clean");
    assert_eq!(p2sbench_run(&file, &clean_out).status.code(), Some(0));

    // 260 KiB holds the first trial (124 KiB on disk with its checkpoint) and a checkpoint of the
    // second, but not all three.
    let disk = SmallDisk::mount(&dir.path().join("small"), "260k");
    let full = p2sbench_run(&file, &disk.at);
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{stderr}");
    let root = ExperimentDir::new(&disk.at, "tiny");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains(&format!("writing {}", root.root.join("trials").display())), "names the file: {stderr}");
    assert!(stderr.contains("the disk is full; free space and run again to resume"), "{stderr}");
    assert_nothing_half_written(&disk.at);
    let states: Vec<Option<State>> =
        exp.trials.iter().map(|t| TrialStatus::read(&root.trial(&t.id())).map(|s| s.state)).collect();
    assert_eq!(states[0], Some(State::Done), "the first trial fits: {states:?}");
    assert!(!states.contains(&Some(State::Running)), "no trial is left running: {states:?}");

    // Where the stopped trials must resume: each unfinished trial's last checkpoint.
    let stopped: Vec<(std::path::PathBuf, i64)> = exp
        .trials
        .iter()
        .map(|t| root.trial(&t.id()))
        .filter(|d| TrialStatus::read(d).is_none_or(|s| s.state != State::Done))
        .filter_map(|d| common::checkpoint_step(&d).map(|step| (d, step)))
        .collect();
    assert!(!stopped.is_empty(), "no unfinished trial has a checkpoint, so nothing shows a resume: {states:?}");

    disk.grow("64m");
    let rerun = p2sbench_run(&file, &disk.at);
    let log = String::from_utf8_lossy(&rerun.stderr);
    assert_eq!(rerun.status.code(), Some(0), "{log}");
    for (trial_dir, step) in &stopped {
        common::assert_resumed(trial_dir, *step, &log);
    }
    assert_nothing_half_written(&disk.at);
    let clean = ExperimentDir::new(&clean_out, "tiny");
    assert_eq!(
        common::trial_frames(&root, &exp),
        common::trial_frames(&clean, &exp),
        "resumed results equal an undisturbed run's"
    );
}
