//! Loss scaling (GradScaler's rule) through the real trainer on CPU tensors
//! (`train.loss_scaling = "on"`): scaling by powers of two changes no bit of float32 training, a
//! checkpoint keeps the scaler's state so a resumed trial equals an uninterrupted one, an
//! overflow skips its step and halves the scale instead of ending the trial, and only a run of
//! skipped steps is a divergence.

mod common;

use p2sbench::runner;
use p2sbench::spec::TrialConfig;
use p2sbench::train::{self, scaler, Checkpointing, TrialOutcome};

/// The tiny experiment's CosFace trial (12 steps) with `extra` lines in `[train]`, logging every
/// step; `lr`, when given, replaces its learning rate and trains 4 epochs (24 steps).
fn trial(lr: Option<&str>, extra: &str) -> TrialConfig {
    let head = &common::TINY[..common::TINY.find("[[loss]]").unwrap()];
    let tail = &common::TINY[common::TINY.find("[eval]").unwrap()..];
    let mut head = head.replace("log_every = 2", &format!("log_every = 1\ncheckpoint_every = 2\n{extra}"));
    if let Some(lr) = lr {
        head = head.replace("lr = 0.05", &format!("lr = {lr}")).replace("epochs = 2", "epochs = 4");
    }
    let exp = common::experiment(&format!("{head}[[loss]]\nname = \"cosface\"\ns = 16.0\nm = 0.2\n{tail}"));
    exp.trials[0].clone()
}

fn train(cfg: &TrialConfig, ck: Option<&Checkpointing>, on_step: &mut dyn FnMut(i64)) -> TrialOutcome {
    let data = runner::shared_data(cfg).unwrap();
    let set = p2sbench::data::noise::apply(&data.train, &cfg.data, &cfg.noise);
    let evaluation = runner::HeldoutEvaluation { cfg, data: &data, stop: None };
    train::train_trial(cfg, &set, &evaluation, tch::Device::Cpu, ck, on_step).unwrap()
}

fn losses(o: &TrialOutcome) -> Vec<(i64, f64)> {
    o.rows.steps.iter().map(|r| (r.step, r.loss)).collect()
}

#[test]
fn scaling_changes_no_bit_and_resumes_with_its_state() {
    let plain = train(&trial(None, ""), None, &mut |_| {});
    let scaled_cfg = trial(None, "loss_scaling = \"on\"\nscaler_growth_interval = 3");
    let scaled = train(&scaled_cfg, None, &mut |_| {});
    assert_eq!(losses(&scaled), losses(&plain), "multiplying by 2^k and dividing again is exact in float32");
    // Interrupted after step 5 (the last checkpoint is step 4, its scale grown once: 3 good
    // steps), then resumed: the scaler goes on from its saved state.
    let id = scaled_cfg.id();
    let dir = tempfile::tempdir().unwrap();
    let ck = Checkpointing { dir: dir.path(), trial: &id, stop: None, pause_after: None };
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train(&scaled_cfg, Some(&ck), &mut |step| assert!(step < 5, "interrupt"))
    }));
    assert!(interrupted.is_err());
    let saved = p2sbench::model::weights::read(&dir.path().join("state.safetensors")).unwrap();
    let scale = saved.iter().find(|(n, _)| n == "meta/amp_scale").expect("the scaler's state").1.double_value(&[0]);
    assert_eq!(scale, 2.0 * scaler::INITIAL_SCALE, "grown once after 3 good steps");
    let resumed = train(&scaled_cfg, Some(&ck), &mut |_| {});
    assert_eq!(resumed.resumed_from, Some(4));
    assert_eq!(common::untimed(resumed.rows.steps.clone()), common::untimed(scaled.rows.steps.clone()));
}

#[test]
fn an_overflow_skips_its_step_and_only_a_run_of_them_diverges() {
    // A scale of 1e38 overflows float32 at once: the first steps are skipped, each halving it,
    // then training goes on.
    let overflowing = train(&trial(None, "loss_scaling = \"on\"\nscaler_init_scale = 1e38"), None, &mut |_| {});
    assert_eq!(overflowing.diverged_step, None, "an overflow is not a divergence");
    let logged: Vec<i64> = overflowing.rows.steps.iter().map(|r| r.step).collect();
    let skipped = logged[0];
    assert!(skipped >= 1 && (skipped as usize) < logged.len(), "steps 0..{skipped} skipped: {logged:?}");
    assert!(logged.windows(2).all(|w| w[1] == w[0] + 1), "after the skips every step is taken: {logged:?}");
    assert!(overflowing.rows.steps.iter().all(|r| r.loss.is_finite()));
    // A learning rate that blows the weights up: every later step is skipped, and the trial
    // diverges after a run of them, at the first of the run.
    let blown = train(&trial(Some("3e38"), "loss_scaling = \"on\""), None, &mut |_| {});
    let first = blown.diverged_step.expect("a run of skipped steps diverges");
    assert!(blown.rows.steps.iter().all(|r| r.step < first), "no row from the run of skipped steps on");
    // Without scaling the first non-finite loss is the divergence: the same step.
    let without = train(&trial(Some("3e38"), ""), None, &mut |_| {});
    assert_eq!(without.diverged_step, Some(first));
}
