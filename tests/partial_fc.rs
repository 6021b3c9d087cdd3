//! Partial FC (`model.sample_rate`) through the real trainer: the sample's telemetry, a
//! resume in the middle of an epoch drawing the samples an uninterrupted trial draws, rate 1
//! using every class, and the value checks. Equality with PyTorch (insightface's sampling over
//! the same indices) is in tests/parity.rs.

mod common;

use p2sbench::runner;
use p2sbench::spec::TrialConfig;
use p2sbench::train::{self, Checkpointing, TrialOutcome};
use std::collections::BTreeSet;

/// 40 identities × 4 images, batches of 16 (10 steps an epoch), CosFace and P2SGrad at `rate`.
fn trials(rate: f64) -> Vec<TrialConfig> {
    trials_with(&format!("embedding = 16\nsample_rate = {rate}"))
}

/// [`trials`] with `model` in place of the tiny experiment's `embedding = 16` line.
fn trials_with(model: &str) -> Vec<TrialConfig> {
    let head = &common::TINY[..common::TINY.find("[[loss]]").unwrap()];
    let tail = &common::TINY[common::TINY.find("[eval]").unwrap()..];
    let head = head
        .replace("identities = 12", "identities = 40")
        .replace("images_per_identity = 8", "images_per_identity = 4")
        .replace("log_every = 2", "log_every = 1\ncheckpoint_every = 4")
        .replace("embedding = 16", model);
    let blocks = "[[loss]]\nname = \"cosface\"\ns = 16.0\nm = 0.2\n[[loss]]\nname = \"p2sgrad\"\n";
    common::experiment(&format!("{head}{blocks}{tail}")).trials
}

fn train(trial: &TrialConfig, ck: Option<&Checkpointing>, on_step: &mut dyn FnMut(i64)) -> TrialOutcome {
    let data = runner::shared_data(trial).unwrap();
    let set = p2sbench::data::noise::apply(&data.train, &trial.data, &trial.noise);
    let evaluation = runner::HeldoutEvaluation { cfg: trial, data: &data, stop: None };
    train::train_trial(trial, &set, &evaluation, tch::Device::Cpu, ck, on_step).unwrap()
}

#[test]
fn sampled_centres_are_logged_and_a_resume_mid_epoch_draws_the_same_samples() {
    for trial in trials(0.5) {
        let id = trial.id();
        let reference = train(&trial, None, &mut |_| {});
        // ⌊0.5 · 40⌋ = 20 centres a step, the batch's own (at most 16) among them.
        for r in &reference.rows.steps {
            assert_eq!(r.sampled_classes, 20, "{id} step {}", r.step);
            assert!((1..=16).contains(&r.sampled_positives), "{id} step {}: {}", r.step, r.sampled_positives);
        }
        let positives: BTreeSet<i64> = reference.rows.steps.iter().map(|r| r.sampled_positives).collect();
        assert!(positives.len() > 1, "{id}: the batches' class counts vary: {positives:?}");

        // Interrupted at step 15 (the middle of the second epoch; the last checkpoint is step 12).
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpointing { dir: dir.path(), trial: &id, stop: None, pause_after: None };
        let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train(&trial, Some(&ck), &mut |step| assert!(step < 15, "interrupt"))
        }));
        assert!(interrupted.is_err(), "{id}: the run was not interrupted");
        let resumed = train(&trial, Some(&ck), &mut |_| {});
        assert_eq!(resumed.resumed_from, Some(12), "{id}: the rerun did not resume from the step-12 checkpoint");
        assert_eq!(
            common::untimed(resumed.rows.steps),
            common::untimed(reference.rows.steps.clone()),
            "{id}: telemetry differs after a resume"
        );
        assert_eq!(resumed.rows.evals, reference.rows.evals, "{id}");
    }
}

#[test]
fn rate_one_uses_every_class_and_another_rate_trains_differently() {
    let (all, half) = (trials(1.0), trials(0.5));
    // Rate 1 is not written into the trial: the ids of existing results stay what they were.
    assert_eq!(all[0].id(), trials_with("embedding = 16")[0].id());
    assert_ne!(all[0].id(), half[0].id());
    let full = train(&all[0], None, &mut |_| {});
    for r in &full.rows.steps {
        assert_eq!(r.sampled_classes, 40);
    }
    let sampled = train(&half[0], None, &mut |_| {});
    assert_eq!(full.init_checksum, sampled.init_checksum, "the same start");
    assert_eq!(full.data_order_checksum, sampled.data_order_checksum, "the same batches");
    assert_ne!(full.rows.steps[1].loss, sampled.rows.steps[1].loss, "a loss over 20 centres is not the one over 40");
}
