//! A stop at an epoch's end never loses the epoch: the checkpoint is saved before the epoch's
//! evaluation, so a SIGTERM there stops at once, a SIGTERM during the evaluation ends it before
//! its next protocol, and a process killed during an evaluation that outlasts the stop window
//! (Slurm's SIGKILL) resumes by making that evaluation first, to the results of an
//! uninterrupted trial.

mod common;

use p2sbench::model::{weights, Network};
use p2sbench::runner::{self, HeldoutEvaluation};
use p2sbench::spec::TrialConfig;
use p2sbench::store::schema::EvalRow;
use p2sbench::train::{self, Checkpointing, Evaluate, Stopped, TrialOutcome};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The tiny experiment's CosFace trial: 6 steps an epoch, 2 epochs, evaluated after each.
fn trial() -> TrialConfig {
    let head = &common::TINY[..common::TINY.find("[[loss]]").unwrap()];
    let tail = &common::TINY[common::TINY.find("[eval]").unwrap()..];
    common::experiment(&format!("{head}[[loss]]\nname = \"cosface\"\ns = 16.0\nm = 0.2\n{tail}")).trials[0].clone()
}

/// What happens during the evaluation of a step.
#[derive(Clone, Copy)]
enum During {
    /// A SIGTERM arrives as it starts: the held-out evaluation (which watches the stop flag)
    /// ends before its next protocol.
    Term(i64),
    /// An evaluation that outlasts the stop window: the stop is requested while it runs, and the
    /// process is killed before it ends (an error here).
    Kill(i64),
}

/// The held-out evaluation, recording the steps it was asked for.
struct Evaluation<'a> {
    inner: HeldoutEvaluation<'a>,
    stop: &'a AtomicBool,
    during: Option<During>,
    asked: Mutex<Vec<i64>>,
}

impl Evaluate for Evaluation<'_> {
    fn evaluate(&self, net: &Network, device: tch::Device, step: i64) -> anyhow::Result<Vec<EvalRow>> {
        self.asked.lock().unwrap().push(step);
        match self.during {
            Some(During::Kill(at)) if at == step => {
                self.stop.store(true, Ordering::SeqCst);
                anyhow::bail!("killed during the evaluation of step {step}");
            }
            Some(During::Term(at)) if at == step => self.stop.store(true, Ordering::SeqCst),
            _ => {}
        }
        self.inner.evaluate(net, device, step)
    }
}

/// The checkpoint's step and whether it owes its epoch's evaluation.
fn saved(dir: &Path) -> (i64, bool) {
    let tensors = weights::read(&dir.join("state.safetensors")).unwrap();
    let get = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.int64_value(&[0]));
    (get("meta/step").unwrap(), get("meta/eval_pending") == Some(1))
}

fn train(
    cfg: &TrialConfig,
    ck: &Checkpointing,
    stop: &AtomicBool,
    during: Option<During>,
    on_step: &mut dyn FnMut(i64),
) -> (anyhow::Result<TrialOutcome>, Vec<i64>) {
    let data = runner::shared_data(cfg).unwrap();
    let set = p2sbench::data::noise::apply(&data.train, &cfg.data, &cfg.noise);
    let inner = HeldoutEvaluation { cfg, data: &data, stop: Some(stop) };
    let evaluation = Evaluation { inner, stop, during, asked: Mutex::new(Vec::new()) };
    let result = train::train_trial(cfg, &set, &evaluation, tch::Device::Cpu, Some(ck), on_step);
    (result, evaluation.asked.into_inner().unwrap())
}

#[test]
fn an_epoch_is_saved_before_its_evaluation_and_a_resumed_trial_evaluates_it_first() {
    let cfg = trial();
    let id = cfg.id();
    let uninterrupted = {
        let (dir, stop) = (tempfile::tempdir().unwrap(), AtomicBool::new(false));
        let ck = Checkpointing { dir: dir.path(), trial: &id, stop: Some(&stop), pause_after: None };
        let (result, asked) = train(&cfg, &ck, &stop, None, &mut |_| {});
        assert_eq!(asked, vec![6, 12]);
        result.unwrap()
    };

    // SIGTERM during the epoch's last step: the checkpoint is saved and the trial stops before
    // evaluating; the resumed trial evaluates step 6 first.
    let (dir, stop) = (tempfile::tempdir().unwrap(), AtomicBool::new(false));
    let ck = Checkpointing { dir: dir.path(), trial: &id, stop: Some(&stop), pause_after: None };
    let (result, asked) = train(&cfg, &ck, &stop, None, &mut |step| stop.store(step == 6, Ordering::SeqCst));
    let Err(stopped) = result else { panic!("the trial did not stop") };
    assert_eq!(stopped.downcast::<Stopped>().unwrap().step, 6);
    assert!(asked.is_empty(), "no evaluation after the stop: {asked:?}");
    assert_eq!(saved(dir.path()), (6, true));
    stop.store(false, Ordering::SeqCst);
    let (result, asked) = train(&cfg, &ck, &stop, None, &mut |_| {});
    let resumed = result.unwrap();
    assert_eq!((resumed.resumed_from, asked), (Some(6), vec![6, 12]), "the owed evaluation came first");
    assert_same(&resumed, &uninterrupted);

    // Killed during an evaluation that outlasts the stop window: nothing of the epoch is lost.
    let (dir, stop) = (tempfile::tempdir().unwrap(), AtomicBool::new(false));
    let ck = Checkpointing { dir: dir.path(), trial: &id, stop: Some(&stop), pause_after: None };
    let (result, _) = train(&cfg, &ck, &stop, Some(During::Kill(12)), &mut |_| {});
    let Err(killed) = result else { panic!("the trial was not killed") };
    assert!(format!("{killed:#}").contains("killed during the evaluation of step 12"), "{killed:#}");
    assert_eq!(saved(dir.path()), (12, true), "the last epoch was saved before its evaluation");
    stop.store(false, Ordering::SeqCst);
    let (result, asked) = train(&cfg, &ck, &stop, None, &mut |_| {});
    let resumed = result.unwrap();
    assert_eq!((resumed.resumed_from, asked), (Some(12), vec![12]), "only the owed evaluation ran");
    assert_same(&resumed, &uninterrupted);
    assert_eq!(saved(dir.path()), (12, false));

    // SIGTERM as an evaluation starts: it ends before its first protocol, stopped at that step;
    // the resumed trial evaluates that epoch first.
    let (dir, stop) = (tempfile::tempdir().unwrap(), AtomicBool::new(false));
    let ck = Checkpointing { dir: dir.path(), trial: &id, stop: Some(&stop), pause_after: None };
    let (result, asked) = train(&cfg, &ck, &stop, Some(During::Term(6)), &mut |_| {});
    let Err(stopped) = result else { panic!("the evaluation did not stop") };
    assert_eq!(stopped.downcast::<Stopped>().unwrap().step, 6);
    assert_eq!((asked, saved(dir.path())), (vec![6], (6, true)));
    stop.store(false, Ordering::SeqCst);
    let (result, asked) = train(&cfg, &ck, &stop, None, &mut |_| {});
    let resumed = result.unwrap();
    assert_eq!((resumed.resumed_from, asked), (Some(6), vec![6, 12]));
    assert_same(&resumed, &uninterrupted);
}

fn assert_same(a: &TrialOutcome, b: &TrialOutcome) {
    assert_eq!(common::untimed(a.rows.steps.clone()), common::untimed(b.rows.steps.clone()));
    assert_eq!(a.rows.evals, b.rows.evals);
    assert_eq!(a.rows.angles, b.rows.angles);
}
