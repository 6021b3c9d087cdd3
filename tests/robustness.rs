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
