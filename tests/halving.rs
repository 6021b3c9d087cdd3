//! Successive halving under `[select]` (`method = "halving"`): rungs and promotions by
//! validation score, pruned settings, promoted trials continuing from their checkpoints to the
//! result of an uninterrupted trial, selection.json's record, a rerun after a kill, and shards
//! that take each other's promoted trials and choose as one process does.

mod common;

use p2sbench::runner::{self, RunOptions};
use p2sbench::spec::{self, Experiment, TrialConfig};
use p2sbench::store::selection::Selection;
use p2sbench::store::{ExperimentDir, State, TrialStatus};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Four CosFace and three P2SGrad learning rates, 4 epochs, rungs at 1, 2 and 4 epochs (η = 2).
fn study(dir: &Path, method: &str) -> (PathBuf, Experiment) {
    let head = &common::TINY[..common::TINY.find("[[loss]]").unwrap()];
    let head = head.replace("epochs = 2", "epochs = 4").replace("lr_milestones = [1]", "lr_milestones = [3]");
    let tail = &common::TINY[common::TINY.find("[eval]").unwrap()..];
    let source = format!(
        "{head}[[loss]]\nname = \"cosface\"\ns = 16.0\nm = 0.2\n\"train.lr\" = [0.005, 0.02, 0.05, 0.1]\n\
         [[loss]]\nname = \"p2sgrad\"\n\"train.lr\" = [0.3, 1.0, 3.0]\n{tail}\
         [select]\nmetric = \"lfw/accuracy_mean\"\ntune = [\"train.lr\"]\nseeds = [11]\nvalidation_identities = 4\n\
         method = \"{method}\"\neta = 2\nmin_epochs = 1\n"
    );
    let file = dir.join(format!("{method}.toml"));
    std::fs::write(&file, &source).unwrap();
    (file.clone(), spec::load(&file).unwrap())
}

fn p2sbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_p2sbench"))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn status(root: &ExperimentDir, t: &TrialConfig) -> TrialStatus {
    TrialStatus::read(&root.trial(&t.id())).unwrap_or_else(|| panic!("{} has a status", t.id()))
}

/// selection.json without its wall-clock lines.
fn selection_text(root: &ExperimentDir) -> String {
    let text = std::fs::read_to_string(root.root.join("selection.json")).unwrap();
    text.lines().filter(|l| !l.contains("seconds")).collect::<Vec<_>>().join("\n")
}

fn states(root: &ExperimentDir, exp: &Experiment) -> BTreeMap<String, State> {
    exp.trials.iter().map(|t| (t.id(), status(root, t).state)).collect()
}

#[test]
fn halving_promotes_the_best_1_over_eta_per_rung_and_promoted_trials_equal_uninterrupted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (_, exp) = study(dir.path(), "halving");
    let out = dir.path().join("r");
    let summaries = runner::run_experiment(&exp, &RunOptions::new(&out)).unwrap();
    let root = ExperimentDir::new(&out, "tiny");
    let selection = Selection::read(&root.root).unwrap().expect("selection.json");
    assert_eq!(selection.choices.len(), 2);
    let steps_per_epoch = 96 / 16;
    for (choice, (loss, settings)) in selection.choices.iter().zip([("cosface", 4usize), ("p2sgrad", 3)]) {
        let h = choice.halving.as_ref().expect("a halving record");
        assert_eq!(h.eta, 2);
        assert_eq!(h.rungs.iter().map(|r| r.epochs).collect::<Vec<_>>(), vec![1, 2, 4], "{loss}");
        // Every setting reaches the first rung; the best ⌊n/η⌋ (at least one) of each rung go on,
        // best first and the earlier setting on a tie.
        assert_eq!(h.rungs[0].settings.len(), settings, "{loss}");
        for (k, rung) in h.rungs.iter().enumerate() {
            // Scores equal to 12 significant digits tie.
            let round = |v: f64| format!("{v:.11e}").parse::<f64>().unwrap();
            let mut ranked: Vec<(usize, f64)> =
                rung.settings.iter().enumerate().map(|(i, s)| (i, round(s.score.unwrap()))).collect();
            ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
            let quota = if k + 1 == h.rungs.len() { 1 } else { (rung.settings.len() / 2).max(1) };
            let promoted: Vec<bool> = rung.settings.iter().map(|s| s.promoted).collect();
            let expected: Vec<bool> =
                (0..rung.settings.len()).map(|i| ranked[..quota].iter().any(|&(j, _)| j == i)).collect();
            assert_eq!(promoted, expected, "{loss} rung {k}: {rung:?}");
            if let Some(next) = h.rungs.get(k + 1) {
                let on: Vec<&String> = rung.settings.iter().filter(|s| s.promoted).map(|s| &s.setting).collect();
                assert_eq!(next.settings.iter().map(|s| &s.setting).collect::<Vec<_>>(), on, "{loss} rung {k}");
            }
        }
        let last = h.rungs.last().unwrap();
        let winner = last.settings.iter().find(|s| s.promoted).unwrap();
        assert_eq!(choice.chosen, winner.setting, "{loss}");
        // Epochs: 4 + 2 + 2·2 (CosFace), 3 + 1 + 1·2 (P2SGrad), against every setting for 4.
        let expected_epochs = settings + (settings / 2) + 2 * ((settings / 2) / 2).max(1);
        assert_eq!((h.trial_epochs, h.grid_trial_epochs), (expected_epochs, 4 * settings), "{loss}");
        // The search trials: one done, the others pruned at the rung they stopped at.
        let search: Vec<&TrialConfig> =
            exp.trials.iter().filter(|t| t.loss.name == loss && t.split.is_some()).collect();
        let done: Vec<&&TrialConfig> = search.iter().filter(|t| status(&root, t).state == State::Done).collect();
        assert_eq!(done.len(), 1, "{loss}");
        assert!(search.iter().all(|t| matches!(status(&root, t).state, State::Done | State::Pruned)), "{loss}");
        let st = status(&root, done[0]);
        assert_eq!(st.rungs.iter().map(|r| r.epochs).collect::<Vec<_>>(), vec![1, 2, 4], "{loss}");
        // It went on from its checkpoint at the second rung, not from scratch.
        assert_eq!(st.resumed_from, Some(2 * steps_per_epoch), "{loss}");
        let finals: Vec<_> = summaries.iter().filter(|s| s.loss == loss && s.seed == 11).collect();
        assert_eq!(finals.len(), 1, "{loss}: one final trial");
        assert_eq!(finals[0].state, State::Done);

        // The same trial trained in one go (the grid) gives the same files: steps, evaluations
        // (every epoch is evaluated, the rungs' included) and angles.
        let (_, grid) = study(dir.path(), "grid");
        let same = grid.trials.iter().find(|t| t.id() == done[0].id()).unwrap().clone();
        let grid_out = dir.path().join(format!("grid-{loss}"));
        runner::run_selected(&grid, std::slice::from_ref(&same), &RunOptions::new(&grid_out)).unwrap();
        let straight = ExperimentDir::new(&grid_out, "tiny");
        let st = status(&straight, &same);
        assert_eq!((st.resumed_from, st.rungs.len()), (None, 0), "{loss}: trained in one go");
        for file in common::TRIAL_FRAMES {
            let (a, b) = (root.trial(&same.id()).join(file), straight.trial(&same.id()).join(file));
            assert!(common::frames_equal(&a, &b), "{loss} {file}: halving's promoted trial ≠ uninterrupted");
        }
    }
    // Against the whole grid: halving's choice scores on the grid run what it scored here (the
    // same training), within or not within the grid winner's interval, at half the trial-epochs.
    let (_, grid) = study(dir.path(), "grid");
    let grid_out = dir.path().join("grid-all");
    runner::run_experiment(&grid, &RunOptions::new(&grid_out)).unwrap();
    let grid_root = ExperimentDir::new(&grid_out, "tiny");
    let rows = p2sbench::select::against_grid::against_grid(&grid_root.root, &root.root).unwrap();
    assert_eq!(rows.len(), 2);
    for (row, choice) in rows.iter().zip(&selection.choices) {
        assert_eq!((&row.group, &row.halving_choice), (&choice.group, &choice.chosen));
        assert_eq!(row.halving_score, choice.validation_score, "{}: the same trial, trained in one go", row.group);
        let (lo, hi) = row.grid_interval.expect("the winner's bootstrap interval");
        assert!(lo <= row.grid_score && row.grid_score <= hi, "{row:?}");
        assert_eq!(row.within, lo <= row.halving_score && row.halving_score <= hi, "{row:?}");
        assert_eq!(2 * row.halving_epochs, row.grid_epochs, "{row:?}");
    }
    let cli = p2sbench().arg("search-vs-grid").arg(&grid_root.root).arg(&root.root).output().unwrap();
    assert_eq!(cli.status.code(), Some(0), "{}", text(&cli));
    let table = String::from_utf8_lossy(&cli.stdout).to_string();
    assert!(table.contains("| cosface m=0.2, s=16 | ") && table.contains("| all | "), "{table}");
    let swapped = p2sbench().arg("search-vs-grid").arg(&root.root).arg(&grid_root.root).output().unwrap();
    assert_eq!(swapped.status.code(), Some(2), "{}", text(&swapped));
    assert!(text(&swapped).contains("select.method is halving, expected grid"), "{}", text(&swapped));

    // trials.parquet says which trials were pruned.
    let table = p2sbench::store::read_parquet(&root.trials_table()).unwrap();
    let statuses = common::strings(&table, "status");
    assert_eq!(statuses.iter().filter(|s| *s == "pruned").count(), 3 + 2, "{statuses:?}");
    // A second run trains nothing and chooses the same.
    let before = selection_text(&root);
    let attempts: Vec<u32> = exp.trials.iter().map(|t| status(&root, t).attempts).collect();
    runner::run_experiment(&exp, &RunOptions::new(&out)).unwrap();
    assert_eq!(exp.trials.iter().map(|t| status(&root, t).attempts).collect::<Vec<_>>(), attempts);
    assert_eq!(selection_text(&root), before);
    // The report shows the rungs.
    let report = std::fs::read_to_string(p2sbench::report::write_report(&root.root).unwrap().markdown).unwrap();
    assert!(report.contains("successive halving"), "{report}");
}

/// Polls `done` every 20 ms for up to `seconds`.
fn wait_for(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {seconds} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn halving_resumes_after_a_kill_and_shards_choose_as_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let (file, exp) = study(dir.path(), "halving");
    let run = |out: &Path, args: &[&str]| {
        let o = p2sbench().arg("run").arg(&file).arg("--out").arg(out).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        text(&o)
    };
    let single = dir.path().join("single");
    run(&single, &[]);
    let reference = ExperimentDir::new(&single, "tiny");
    let expected = selection_text(&reference);

    // Killed (SIGKILL: no checkpoint on the way out) once two trials have paused at a rung.
    let killed = dir.path().join("killed");
    let root = ExperimentDir::new(&killed, "tiny");
    let mut child = p2sbench()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&killed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let paused = |r: &ExperimentDir| {
        exp.trials
            .iter()
            .filter(|t| TrialStatus::read(&r.trial(&t.id())).is_some_and(|s| s.state == State::Paused))
            .count()
    };
    wait_for(120, "two paused trials", || paused(&root) >= 2);
    child.kill().unwrap();
    child.wait().unwrap();
    let before: BTreeMap<String, u32> = exp
        .trials
        .iter()
        .filter_map(|t| Some((t.id(), TrialStatus::read(&root.trial(&t.id()))?)))
        .filter(|(_, s)| s.state == State::Paused)
        .map(|(id, s)| (id, s.attempts))
        .collect();
    let log = run(&killed, &[]);
    assert_eq!(selection_text(&root), expected, "after a kill:\n{log}");
    // Trials paused before the kill were not trained to their first rung again.
    for id in before.keys() {
        assert!(!log.contains(&format!("{id}: paused at epoch 1 ")), "{id} retrained:\n{log}");
    }
    assert_eq!(states(&root, &exp), states(&reference, &exp));

    // Two shards at once (the second with two workers), and one after the other: any shard
    // trains whatever rung is ready, and each trial reaches each rung once.
    let shared = dir.path().join("shared");
    let shard = |i: usize, jobs: &str| {
        p2sbench()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(&shared)
            .args(["--shard", &format!("{i}/2"), "--jobs", jobs])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [shard(0, "1"), shard(1, "2")];
    let logs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            text(&o)
        })
        .collect();
    let both = ExperimentDir::new(&shared, "tiny");
    assert_eq!(selection_text(&both), expected, "{}", logs.join("\n---\n"));
    assert_eq!(states(&both, &exp), states(&reference, &exp));
    let mut reached: BTreeMap<String, usize> = BTreeMap::new();
    for line in logs.iter().flat_map(|l| l.lines()) {
        if let Some((id, rest)) = line.split_once(": ") {
            if rest.starts_with("paused at epoch ") || rest.starts_with("done in ") {
                let rung = rest.split(" in ").next().unwrap();
                *reached.entry(format!("{id} {rung}")).or_default() += 1;
            }
        }
    }
    assert!(reached.values().all(|&n| n == 1), "a trial reached a rung twice: {reached:?}");
    let sequential = dir.path().join("sequential");
    run(&sequential, &["--shard", "1/2"]);
    run(&sequential, &["--shard", "0/2"]);
    assert_eq!(selection_text(&ExperimentDir::new(&sequential, "tiny")), expected);
}
