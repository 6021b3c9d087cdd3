//! Studies: sweep expansion (grid, zip, seeds, noise axes, ids, filters), the dry-run and summary
//! tables, label-noise injection, divergence handling, the results-directory lock, and resume
//! after SIGKILL.

mod common;

use p2sbench::data::{noise, synthetic};
use p2sbench::runner::{self, RunOptions};
use p2sbench::spec::filter::{select, Filter};
use p2sbench::spec::{NoiseKind, NoiseSetting};
use p2sbench::store::{self, ExperimentDir, State};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SWEEP: &str = r#"name = "sweep"
[data]
identities = 6
heldout_identities = 4
images_per_identity = 4
image_size = 16
[model]
widths = [4]
embedding = 8
[train]
epochs = 1
batch_size = 8
seeds = [1, 2]
[[loss]]
name = "cosface"
s = [16.0, 32.0, 64.0]
m = [0.2, 0.35]
[[loss]]
name = "arcface"
s = [16.0, 32.0]
m = [0.3, 0.5]
zip = [["s", "m"]]
[[loss]]
name = "p2sgrad"
[noise]
ratio = [0.0, 0.2]
kind = ["flip", "outlier"]
"#;

#[test]
fn sweep_expands_to_the_grid_with_zip_seeds_and_noise() {
    let exp = common::experiment(SWEEP);
    // losses: cosface 3×2 + arcface zipped 2 + p2sgrad 1 = 9; noise: clean, flip0.2, outlier0.2 = 3; seeds 2.
    assert_eq!(exp.trials.len(), 9 * 3 * 2);
    let arc: Vec<String> =
        exp.trials.iter().filter(|t| t.loss.name == "arcface").map(|t| t.loss.params_text()).collect();
    assert!(arc.iter().all(|p| p.contains("m=0.3, s=16") || p.contains("m=0.5, s=32")), "{arc:?}");
    let ids: Vec<String> = exp.trials.iter().map(|t| t.id()).collect();
    let again: Vec<String> = common::experiment(SWEEP).trials.iter().map(|t| t.id()).collect();
    assert_eq!(ids, again, "ids are stable");
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    assert!(ids.iter().any(|id| id.starts_with("cosface-m0.2-s64-flip0.2-seed2-")), "{ids:?}");
    // A changed hyper-parameter is a different trial; an execution setting is not.
    let threads = common::experiment(&SWEEP.replace("seeds = [1, 2]", "seeds = [1, 2]\nthreads = 1"));
    assert_eq!(threads.trials[0].id(), ids[0]);
    let changed = common::experiment(&SWEEP.replace("epochs = 1", "epochs = 2"));
    assert_ne!(changed.trials[0].id(), ids[0]);
}

#[test]
fn filters_select_by_resolved_parameters() {
    let exp = common::experiment(SWEEP);
    let only = Filter::parse("loss=cosface,s=64", "--only").unwrap();
    let kept = select(&exp.trials, Some(&only), None);
    assert_eq!(kept.len(), 2 * 3 * 2);
    assert!(kept.iter().all(|t| t.loss.name == "cosface" && t.loss.f64("s") == 64.0));
    let skip = Filter::parse("noise=outlier", "--skip").unwrap();
    let kept = select(&exp.trials, Some(&only), Some(&skip));
    assert_eq!(kept.len(), 2 * 2 * 2);
    assert!(Filter::parse("loss", "--only").is_err());
    let typo = Filter::parse("margin=0.5", "--only").unwrap();
    assert_eq!(typo.unknown_keys(&exp.trials), ["margin"]);
}

#[test]
fn dry_run_prints_the_trial_table_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sweep.toml");
    std::fs::write(&file, SWEEP).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["run", "--dry-run", "--only", "loss=arcface"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("12 trials (of 54 in the file)"), "{text}");
    assert!(text.contains("outlier0.2"), "{text}");
    // Each column starts where its header does, after two spaces.
    let lines: Vec<&str> = text.lines().take_while(|l| !l.ends_with("in the file)")).collect();
    assert_eq!(lines.len(), 13, "{text}");
    for h in ["loss", "seed", "noise", "parameters"] {
        let at = lines[0].find(h).unwrap();
        for l in &lines[1..] {
            assert!(l[..at].ends_with("  ") && !l[at..].starts_with(' '), "{h} at {at} in {l:?}\n{text}");
        }
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["run", "--dry-run", "--only", "nope"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_summary_table_sizes_its_columns_to_their_content() {
    let row =
        |loss: &str, params: &str, state: State, acc: Option<f64>, diverged_step: Option<i64>| runner::TrialSummary {
            id: String::new(),
            loss: loss.into(),
            params: params.into(),
            seed: 1,
            noise: "none".into(),
            state,
            lfw_accuracy: acc,
            train_accuracy: Some(0.99),
            seconds: 12.34,
            diverged_step,
            error: None,
        };
    let rows = [
        row("p2sgrad", "reduction=paper", State::Done, Some(0.5018), None),
        row("arcface", "easy_margin=false, gradient=exact, m=0.5, s=64", State::Done, Some(0.853), None),
        row("curricularface", "m=0.5, s=64", State::Diverged, None, Some(120)),
    ];
    let text = runner::format_summary(&rows);
    let all: Vec<&str> = text.lines().collect();
    let (lines, reasons) = all.split_at(4);
    // Below the table, each trial that failed or diverged with its reason.
    assert_eq!(reasons, ["diverged : the loss became NaN or infinite at step 120"], "{text}");
    // The last column is right-aligned: every line is as wide as the header's.
    assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
    // Left-aligned columns start where their header starts; right-aligned ones end where it ends.
    let start = |l: &str, cell: &str| l.find(cell).unwrap_or_else(|| panic!("{cell} not in {l:?}"));
    let cells = [
        ["reduction=paper", "easy_margin=false, gradient=exact, m=0.5, s=64", "m=0.5, s=64"],
        ["none", "none", "none"],
    ];
    for (h, column) in ["parameters", "noise"].iter().zip(cells) {
        for (l, cell) in lines[1..].iter().zip(column) {
            assert_eq!(start(l, cell), start(lines[0], h), "{h}\n{text}");
        }
    }
    let end = |l: &str, cell: &str| start(l, cell) + cell.len();
    for (h, column) in [("status", ["done", "done", "diverged@120"]), ("lfw acc %", ["50.18", "85.30", "-"])] {
        for (l, cell) in lines[1..].iter().zip(column) {
            assert_eq!(end(l, &format!("{cell}  ")) - 2, end(lines[0], h), "{h}\n{text}");
        }
    }
    assert!(lines[1..].iter().all(|l| l.ends_with("12.3")), "{text}");
}

fn noise_setting(kind: NoiseKind, ratio: f64) -> NoiseSetting {
    NoiseSetting { kind, ratio, seed: 5, outlier_identities: 7 }
}

#[test]
fn noise_injection_is_exact_deterministic_and_outliers_come_from_outside() {
    let exp = common::experiment(common::TINY);
    let spec = &exp.trials[0].data;
    let clean = synthetic::training_set(spec);
    let shared: std::sync::Arc<dyn p2sbench::data::Dataset> = std::sync::Arc::new(clean.clone());
    let n = clean.len();
    let image_len = clean.channels * clean.size * clean.size;
    let flip = noise::apply(&shared, spec, &noise_setting(NoiseKind::Flip, 0.25));
    assert_eq!(flip.noisy_count(), n / 4);
    for i in 0..n {
        assert_eq!(flip.labels[i] != clean.labels[i], flip.noisy[i], "image {i}: label changed iff noisy");
    }
    let again = noise::apply(&shared, spec, &noise_setting(NoiseKind::Flip, 0.25));
    assert_eq!(flip.noisy, again.noisy);
    assert_eq!(flip.labels, again.labels);
    assert!(std::sync::Arc::ptr_eq(&flip.images, &shared), "flips keep the images");

    let outlier = noise::apply(&shared, spec, &noise_setting(NoiseKind::Outlier, 0.25));
    assert_eq!(outlier.noisy_count(), n / 4);
    assert_eq!(outlier.labels, clean.labels, "outliers keep their label");
    let pool: Vec<Vec<u8>> = (0..7)
        .flat_map(|k| (0..spec.images_per_identity).map(move |j| (k, j)))
        .map(|(k, j)| synthetic::render_one(spec, noise::first_outlier_identity(spec) + k, j))
        .collect();
    let heldout = synthetic::heldout_set(spec);
    let known: Vec<&[u8]> = clean.pixels.chunks(image_len).chain(heldout.pixels.chunks(image_len)).collect();
    for i in (0..n).filter(|&i| outlier.noisy[i]) {
        let img = &outlier.images.in_memory().unwrap().pixels[i * image_len..(i + 1) * image_len];
        assert!(pool.iter().any(|p| p.as_slice() == img), "image {i} is not from the outlier pool");
        assert!(!known.contains(&img), "image {i} shows a training or held-out identity");
    }
    let mixed = noise::apply(&shared, spec, &noise_setting(NoiseKind::Mixed, 0.5));
    let flipped = (0..n).filter(|&i| mixed.labels[i] != clean.labels[i]).count();
    assert_eq!(mixed.noisy_count(), n / 2);
    assert_eq!(flipped, n / 4);
}

fn run(text: &str, out: &Path) -> Vec<runner::TrialSummary> {
    runner::run_experiment(&common::experiment(text), &RunOptions::new(out)).unwrap()
}

#[test]
fn every_loss_sees_the_same_noisy_images_and_telemetry_splits_them() {
    // Every loss under flip noise, and P2SGrad also clean and under outlier noise (same ratio and
    // seed): the same images in the same order, with other labels (flip) or another noisy mask
    // (outlier keeps the labels).
    let text = format!("{}[noise]\nratio = [0.0, 0.3]\nkind = [\"flip\", \"outlier\"]\nseed = 9\n", common::TINY);
    let exp = common::experiment(&text);
    let chosen: Vec<_> =
        exp.trials.iter().filter(|t| t.noise.label() == "flip0.3" || t.loss.name == "p2sgrad").cloned().collect();
    let out = tempfile::tempdir().unwrap();
    let summaries = runner::run_selected(&exp, &chosen, &RunOptions::new(out.path())).unwrap();
    assert_eq!(summaries.len(), 7);
    let dir = ExperimentDir::new(out.path(), "tiny");
    let trials = store::read_parquet(&dir.trials_table()).unwrap();
    let (ids, orders) = (common::strings(&trials, "trial"), common::strings(&trials, "data_order_checksum"));
    let order = |id: &str| orders[ids.iter().position(|i| i == id).unwrap()].clone();
    let orders_of = |loss: Option<&str>, setting: &str| -> Vec<String> {
        let picked = summaries.iter().filter(|s| s.noise == setting && loss.is_none_or(|l| s.loss == l));
        picked.map(|s| order(&s.id)).collect()
    };
    let flip = orders_of(None, "flip0.3");
    assert_eq!(flip.len(), 5);
    assert!(flip[0].len() == 16 && flip.iter().all(|o| o == &flip[0]), "the losses saw other noisy batches: {flip:?}");
    let (clean, outlier) = (orders_of(Some("p2sgrad"), "none"), orders_of(Some("p2sgrad"), "outlier0.3"));
    assert_eq!((clean.len(), outlier.len()), (1, 1), "{summaries:?}");
    assert_ne!(clean[0], flip[0], "flipped labels leave the checksum unchanged");
    assert_ne!(clean[0], outlier[0], "the noisy mask leaves the checksum unchanged");
    assert_ne!(flip[0], outlier[0], "flip and outlier noise differ in their labels only");
    for id in summaries.iter().filter(|s| s.noise == "flip0.3").map(|s| &s.id) {
        let angles = store::read_parquet(&dir.trial(id).join("angles.parquet")).unwrap();
        let samples = common::strings(&angles, "samples");
        let count = angles.column("count").unwrap().i64().unwrap();
        let total = |which: &str| -> i64 {
            (0..angles.height()).filter(|&i| samples[i] == which).map(|i| count.get(i).unwrap()).sum()
        };
        // 96 training images, 29 of them noisy (round(0.3 · 96)), two evaluation points.
        assert_eq!((total("all"), total("clean"), total("noisy")), (2 * 96, 2 * 67, 2 * 29), "{id}");
        let steps = store::read_parquet(&dir.trial(id).join("steps.parquet")).unwrap();
        for name in ["theta_y_deg_mean_clean", "theta_y_deg_mean_noisy", "coef_y_mean_clean", "coef_y_mean_noisy"] {
            let col = steps.column(name).unwrap().f64().unwrap();
            assert!(col.null_count() < steps.height(), "{id}: {name} is empty");
            assert!((0..col.len()).filter_map(|i| col.get(i)).all(f64::is_finite));
        }
    }
}

#[test]
fn a_diverging_trial_is_marked_and_the_others_go_on() {
    // An absurd learning rate drives softmax (unnormalised logits) to inf/NaN.
    let text = common::TINY.replace("lr = 0.05", "lr = 1e30").replace("log_every = 2", "log_every = 1");
    let out = tempfile::tempdir().unwrap();
    let summaries = run(&text, out.path());
    let softmax = summaries.iter().find(|s| s.loss == "softmax").unwrap();
    assert_eq!(softmax.state, store::State::Diverged, "{summaries:?}");
    let step = softmax.diverged_step.unwrap();
    let dir = ExperimentDir::new(out.path(), "tiny");
    let steps = store::read_parquet(&dir.trial(&softmax.id).join("steps.parquet")).unwrap();
    let logged: Vec<i64> = steps.column("step").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert!(logged.iter().all(|&s| s < step), "rows after the divergence: {logged:?} vs {step}");
    let loss = steps.column("loss").unwrap().f64().unwrap();
    assert!(loss.into_no_null_iter().all(f64::is_finite), "the kept rows are the finite ones");
    assert_eq!(summaries.len(), 5, "the other trials ran");
    let status = store::TrialStatus::read(&dir.trial(&softmax.id)).unwrap();
    assert_eq!(status.diverged_step, Some(step));
}

#[test]
fn the_first_non_finite_step_is_exact_when_the_flag_is_read_rarely() {
    // The trainer reads its device-side divergence flag only at logging steps, checkpoints and
    // epoch ends; with a row every 4 steps the step it reports must still be the first bad one.
    let diverged_at = |log_every: usize| {
        let text = common::TINY
            .replace("lr = 0.05", "lr = 1e30")
            .replace("log_every = 2", &format!("log_every = {log_every}"));
        let out = tempfile::tempdir().unwrap();
        let summaries = run(&text, out.path());
        summaries.iter().find(|s| s.loss == "softmax").unwrap().diverged_step.expect("softmax diverges")
    };
    let (every_step, sparse) = (diverged_at(1), diverged_at(4));
    assert_eq!(sparse, every_step, "the sparse run reports another step");
    assert!(sparse % 4 != 0, "step {sparse} is a logging step, so this checks nothing");
}

#[test]
fn a_second_run_on_the_same_directory_is_refused_until_the_first_ends() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("tiny");
    let held = store::lock(&dir).unwrap();
    let err = runner::run_experiment(&common::experiment(common::TINY), &RunOptions::new(out.path())).unwrap_err();
    assert!(format!("{err:#}").contains("in use by another p2sbench run"), "{err:#}");
    drop(held);
    assert!(store::lock(&dir).is_ok(), "the lock is free once its holder is gone");
}

/// A run long enough to be killed mid-trial, checkpointing often.
fn long_experiment() -> String {
    common::TINY
        .replace("epochs = 2", "epochs = 6")
        .replace("lr_milestones = [1]", "lr_milestones = [3]")
        .replace("log_every = 2", "log_every = 1\ncheckpoint_every = 2")
}

#[test]
fn a_trial_killed_with_sigkill_resumes_to_identical_results() {
    let text = long_experiment();
    let exp = common::experiment(&text);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("tiny.toml");
    std::fs::write(&file, &text).unwrap();

    let reference = work.path().join("reference");
    runner::run_experiment(&exp, &RunOptions::new(&reference)).unwrap();

    let resumed = work.path().join("resumed");
    let second = exp.trials[1].id();
    let dir = ExperimentDir::new(&resumed, "tiny");
    let run = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_p2sbench"));
        cmd.args(["run", "--out"]).arg(&resumed).arg(&file);
        cmd
    };
    let mut child = run().stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Kill once the second trial has a checkpoint but has not finished.
    let state = dir.trial(&second).join("checkpoint").join("state.safetensors");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !state.exists() {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let status = store::TrialStatus::read(&dir.trial(&second)).unwrap();
    assert_eq!(status.state, store::State::Running, "killed mid-trial");
    assert!(!dir.trial(&second).join("steps.parquet").exists());
    let killed_at = common::checkpoint_step(&dir.trial(&second)).expect("the killed trial has a checkpoint");

    let rerun = run().output().unwrap();
    let log = String::from_utf8_lossy(&rerun.stderr);
    assert_eq!(rerun.status.code(), Some(0), "{log}");
    common::assert_resumed(&dir.trial(&second), killed_at, &log);
    assert_eq!(store::TrialStatus::read(&dir.trial(&second)).unwrap().attempts, 2);
    let reference_dir = ExperimentDir::new(&reference, "tiny");
    for t in &exp.trials {
        let id = t.id();
        for file in common::TRIAL_FRAMES {
            assert!(
                common::frames_equal(&reference_dir.trial(&id).join(file), &dir.trial(&id).join(file)),
                "{id}/{file} differs after resume"
            );
        }
    }
    let trials = store::read_parquet(&dir.trials_table()).unwrap();
    assert_eq!(common::strings(&trials, "status"), vec!["done"; 5]);
}

#[test]
fn parallel_jobs_give_the_same_results_as_sequential_ones_with_equal_threads() {
    let text = common::TINY.to_string();
    let exp = common::experiment(&text);
    let seq = tempfile::tempdir().unwrap();
    let par = tempfile::tempdir().unwrap();
    runner::run_experiment(&exp, &RunOptions::new(seq.path())).unwrap();
    let opts = RunOptions { jobs: 2, ..RunOptions::new(par.path()) };
    let summaries = runner::run_experiment(&exp, &opts).unwrap();
    assert_eq!(summaries.len(), 5);
    let (a, b) = (ExperimentDir::new(seq.path(), "tiny"), ExperimentDir::new(par.path(), "tiny"));
    for t in &exp.trials {
        let id = t.id();
        for file in common::TRIAL_FRAMES {
            assert!(common::frames_equal(&a.trial(&id).join(file), &b.trial(&id).join(file)), "{id}/{file}");
        }
    }
    assert!(common::frames_equal(&a.trials_table(), &b.trials_table()));
}

#[test]
fn fail_fast_stops_after_the_first_diverged_trial() {
    // softmax first, at an absurd learning rate, so it diverges before the others start.
    let blocks = common::TINY.split("[[loss]]").collect::<Vec<_>>();
    let head = blocks[0];
    let eval = &blocks[5][blocks[5].find("[eval]").unwrap()..];
    let text = format!(
        "{}[[loss]]\nname = \"softmax\"\n[[loss]]\nname = \"p2sgrad\"\n[[loss]]\nname = \"cosface\"\n{eval}",
        head.replace("lr = 0.05", "lr = 1e30").replace("log_every = 2", "log_every = 1")
    );
    let exp = common::experiment(&text);
    let out = tempfile::tempdir().unwrap();
    let summaries =
        runner::run_experiment(&exp, &RunOptions { fail_fast: true, ..RunOptions::new(out.path()) }).unwrap();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(summaries[0].state, store::State::Diverged);
    let trials = store::read_parquet(&ExperimentDir::new(out.path(), "tiny").trials_table()).unwrap();
    assert_eq!(common::strings(&trials, "status"), ["diverged", "pending", "pending"]);
}

#[test]
fn a_changed_file_reuses_unchanged_trials_and_reports_removed_ones() {
    let out = tempfile::tempdir().unwrap();
    run(common::TINY, out.path());
    let dir = ExperimentDir::new(out.path(), "tiny");
    let before = common::experiment(common::TINY);
    let kept = before.trials[0].id();
    let removed = before.trials[4].id(); // softmax
    let kept_time = std::fs::metadata(dir.trial(&kept).join("steps.parquet")).unwrap().modified().unwrap();
    let changed = common::TINY.replace("[[loss]]\nname = \"softmax\"\n", "[[loss]]\nname = \"normface\"\n");
    let exp = common::experiment(&changed);
    assert_eq!(runner::stale_trials(&dir, &exp.trials), vec![removed.clone()]);
    let summaries = runner::run_experiment(&exp, &RunOptions::new(out.path())).unwrap();
    assert!(summaries.iter().any(|s| s.loss == "normface" && s.state == store::State::Done));
    let after = std::fs::metadata(dir.trial(&kept).join("steps.parquet")).unwrap().modified().unwrap();
    assert_eq!(kept_time, after, "an unchanged trial was retrained");
    assert!(dir.trial(&removed).join("steps.parquet").exists(), "a removed trial's results are kept");
    let trials = store::read_parquet(&dir.trials_table()).unwrap();
    assert!(!common::strings(&trials, "trial").contains(&removed), "trials.parquet lists the file's trials");
}

/// TINY with cosface and p2sgrad only, each block with its own learning rates.
fn two_losses(extra: &str) -> String {
    let head = &common::TINY[..common::TINY.find("[[loss]]").unwrap()];
    let tail = &common::TINY[common::TINY.find("[eval]").unwrap()..];
    let blocks = "[[loss]]\nname = \"cosface\"\ns = 16.0\nm = 0.2\n\"train.lr\" = [0.02, 0.05]\n\
                  [[loss]]\nname = \"p2sgrad\"\ntrain.lr = [0.5, 1.0]\n";
    format!("{head}{blocks}{tail}{extra}")
}

#[test]
fn sweeps_of_spec_keys_and_per_loss_rates_share_starts_and_batches() {
    let text = two_losses("[sweep]\n\"data.identities\" = [8, 12]\n");
    let out = tempfile::tempdir().unwrap();
    let summaries = run(&text, out.path());
    assert_eq!(summaries.len(), 8, "2 losses × 2 rates × 2 identity counts");
    let trials = store::read_parquet(&ExperimentDir::new(out.path(), "tiny").trials_table()).unwrap();
    let identities = trials.column("data.identities").unwrap().f64().unwrap().clone();
    let lr = trials.column("train.lr").unwrap().f64().unwrap().clone();
    let init = common::strings(&trials, "init_checksum");
    let order = common::strings(&trials, "data_order_checksum");
    let ids = common::strings(&trials, "trial");
    for i in 0..trials.height() {
        for j in 0..trials.height() {
            let same_data = identities.get(i) == identities.get(j);
            assert_eq!(same_data, init[i] == init[j], "{} vs {}: starts", ids[i], ids[j]);
            assert_eq!(same_data, order[i] == order[j], "{} vs {}: batches", ids[i], ids[j]);
        }
    }
    // Each trial trained at its own block's rate (before the milestone).
    let dir = ExperimentDir::new(out.path(), "tiny");
    for (i, id) in ids.iter().enumerate() {
        let steps = store::read_parquet(&dir.trial(id).join("steps.parquet")).unwrap();
        let first = steps.column("lr").unwrap().f64().unwrap().get(0).unwrap();
        assert_eq!(Some(first), lr.get(i), "{id}");
        assert!(id.contains(&format!("-identities{}-", identities.get(i).unwrap())), "{id}");
    }
    // C/D varies (8 and 12 classes at D = 16): the capacity figure is drawn; the report checks convergence.
    let manifest = p2sbench::plot::render_all(&dir.root).unwrap();
    assert!(manifest.figures.iter().any(|f| f.stem == "capacity"), "{:?}", manifest.skipped);
    let report = std::fs::read_to_string(p2sbench::report::write_report(&dir.root).unwrap().markdown).unwrap();
    assert!(
        report.contains("## Convergence")
            && report.contains("| cosface m=0.2, s=16, data.identities=8, train.lr=0.02 |"),
        "{report}"
    );
    let only = Filter::parse("train.lr=0.5,data.identities=8", "--only").unwrap();
    let exp = common::experiment(&text);
    let kept = select(&exp.trials, Some(&only), None);
    assert_eq!(kept.len(), 1, "{:?}", kept.iter().map(|t| t.id()).collect::<Vec<_>>());
}

#[test]
fn select_tunes_on_validation_and_tests_only_the_choice() {
    let text = two_losses(
        "[select]\nmetric = \"lfw/accuracy_mean\"\ntune = [\"train.lr\"]\nseeds = [11]\nvalidation_identities = 4\n",
    );
    let out = tempfile::tempdir().unwrap();
    let summaries = run(&text, out.path());
    assert_eq!(summaries.len(), 6, "4 search trials, then one final trial per loss");
    let dir = ExperimentDir::new(out.path(), "tiny");
    let trials = store::read_parquet(&dir.trials_table()).unwrap();
    let split = common::strings(&trials, "split");
    assert_eq!(split.iter().filter(|s| *s == "validation").count(), 4);
    assert_eq!(split.iter().filter(|s| *s == "test").count(), 2);
    let last_accuracy = |id: &str| {
        let evals = store::read_parquet(&dir.trial(id).join("evals.parquet")).unwrap();
        let rows = p2sbench::store::schema::evals_from_frame(&evals).unwrap();
        rows.iter().filter(|r| r.metric == "accuracy_mean").max_by_key(|r| r.step).unwrap().value
    };
    let exp = common::experiment(&text);
    for loss in ["cosface", "p2sgrad"] {
        let search: Vec<_> = exp.trials.iter().filter(|t| t.loss.name == loss).collect();
        // The first of the best (the selection keeps the earlier setting on a tie).
        let scores: Vec<f64> = search.iter().map(|t| last_accuracy(&t.id())).collect();
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let best = search[scores.iter().position(|&s| s == top).unwrap()].train.lr;
        let finals: Vec<_> = summaries.iter().filter(|s| s.loss == loss && s.seed == 11).collect();
        assert_eq!(finals.len(), 1, "{loss}");
        let config: p2sbench::spec::TrialConfig =
            toml::from_str(&std::fs::read_to_string(dir.trial(&finals[0].id).join("config.toml")).unwrap()).unwrap();
        assert_eq!(config.train.lr, best, "{loss}: the final trial is not the best search setting");
        assert_eq!(config.split.unwrap().part, p2sbench::spec::SplitPart::Test);
        assert_eq!(config.split.unwrap().validation_identities, 4);
    }
    let report = std::fs::read_to_string(p2sbench::report::write_report(&dir.root).unwrap().markdown).unwrap();
    assert!(report.contains("## Tuned on validation, reported on test"), "{report}");
    assert!(report.contains("train.lr ∈ {0.02, 0.05}") && report.contains("train.lr ∈ {0.5, 1}"), "{report}");
    // A second run has nothing left to do, and chooses the same.
    let again = run(&text, out.path());
    assert_eq!(
        again.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        summaries.iter().map(|s| s.id.clone()).collect::<Vec<_>>()
    );
}
