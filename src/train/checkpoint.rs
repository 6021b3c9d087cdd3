//! Checkpoints for resume: every variable of the network (parameters and batch-norm statistics),
//! the optimiser's momentum buffers, the step reached, the loss's adaptive state, the count of
//! skipped unreadable images, the loss scaler of float16 training, and the telemetry and evaluation rows logged so far. The rows go to parquet files first and the
//! tensors last (each written atomically), so the tensor file, whose presence marks a usable
//! checkpoint, never points at rows that were not written.

use super::scaler::GradScaler;
use super::sgd::Sgd;
use crate::model::weights;
use crate::store;
use crate::store::schema::{self, AngleRow, EvalRow, StepRow};
use anyhow::{Context, Result};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

const STATE: &str = store::trial_files::CHECKPOINT_STATE;
const STEPS: &str = "steps.parquet";
const EVALS: &str = "evals.parquet";
const ANGLES: &str = "angles.parquet";
const BOOTSTRAP: &str = store::trial_files::BOOTSTRAP;

/// The rows a trial has logged so far.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub steps: Vec<StepRow>,
    pub evals: Vec<EvalRow>,
    pub angles: Vec<AngleRow>,
}

/// The training state a checkpoint keeps besides variables, momentum and rows.
pub struct State<'a> {
    pub step: i64,
    pub loss_state: &'a [f64],
    /// Unreadable images skipped so far.
    pub skipped: u64,
    /// The loss scaler (float16 training only).
    pub scaler: Option<GradScaler>,
    /// Saved at an epoch's end before its evaluation: a resumed trial evaluates first.
    pub eval_pending: bool,
}

/// What a checkpoint restores besides the tensors.
pub struct Restored {
    pub step: i64,
    pub loss_state: Vec<f64>,
    pub rows: Rows,
    /// 0 for checkpoints written before skipping existed.
    pub skipped_images: u64,
    pub scaler: Option<GradScaler>,
    /// The evaluation of the epoch that ends at `step` is still to be made ([`State::eval_pending`]).
    pub eval_pending: bool,
}

/// Whether `dir` holds a complete checkpoint.
pub fn exists(dir: &Path) -> bool {
    store::trial_files::checkpoint_state(dir).is_some()
}

/// Writes a checkpoint into `dir`.
pub fn save(dir: &Path, trial: &str, vs: &VarStore, sgd: &Sgd, state: &State, rows: &Rows) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    store::write_parquet(&dir.join(STEPS), &mut schema::steps_frame(trial, &rows.steps)?)?;
    store::write_parquet(&dir.join(EVALS), &mut schema::evals_frame(trial, &rows.evals)?)?;
    store::write_parquet(&dir.join(ANGLES), &mut schema::angles_frame(trial, &rows.angles)?)?;
    store::write_parquet(&dir.join(BOOTSTRAP), &mut schema::bootstrap_frame(trial, &rows.evals)?)?;
    let mut named = weights::named_variables(vs);
    for ((name, _), buf) in sgd.params.iter().zip(&sgd.buffers) {
        if let Some(b) = buf {
            named.push((format!("momentum/{name}"), b.to_device(tch::Device::Cpu)));
        }
    }
    named.push((weights::STEP.into(), Tensor::from_slice(&[state.step])));
    let counts = [rows.steps.len() as i64, rows.evals.len() as i64, rows.angles.len() as i64];
    named.push(("meta/rows".into(), Tensor::from_slice(&counts)));
    named.push(("meta/loss_state".into(), Tensor::from_slice(state.loss_state)));
    if state.skipped > 0 {
        named.push(("meta/skipped_images".into(), Tensor::from_slice(&[state.skipped as i64])));
    }
    if state.eval_pending {
        named.push(("meta/eval_pending".into(), Tensor::from_slice(&[1i64])));
    }
    if let Some(s) = state.scaler {
        named.push(("meta/amp_scale".into(), Tensor::from_slice(&[s.scale])));
        named.push(("meta/amp_good_steps".into(), Tensor::from_slice(&[s.good_steps])));
        named.push(("meta/amp_skipped_in_a_row".into(), Tensor::from_slice(&[s.skipped_in_a_row])));
    }
    store::write_via_temp(&dir.join(STATE), |tmp| Ok(weights::write(&named, tmp)?))?;
    // A checkpoint written before safetensors would shadow nothing, but is stale now.
    let _ = std::fs::remove_file(dir.join(store::trial_files::LEGACY_CHECKPOINT_STATE));
    Ok(())
}

/// Checks that the checkpoint in `dir`, if there is one, reads back: its tensor file with the
/// step, row counts and loss state, and its rows. `Err` names the file that does not.
pub fn verify(dir: &Path) -> Result<()> {
    let Some(path) = store::trial_files::checkpoint_state(dir) else { return Ok(()) };
    let loaded = weights::read(&path).map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    for name in [weights::STEP, "meta/rows", "meta/loss_state"] {
        if !loaded.iter().any(|(n, _)| n == name) {
            anyhow::bail!("{}: no {name}", path.display());
        }
    }
    read_rows(dir).map(|_| ())
}

/// The rows files of a checkpoint (or of a finished trial: the same files).
pub fn read_rows(dir: &Path) -> Result<Rows> {
    let frame = |file: &str| {
        let path = dir.join(file);
        store::read_parquet(&path).map(|df| (path, df))
    };
    let (path, steps) = frame(STEPS)?;
    let steps = schema::steps_from_frame(&steps).with_context(|| format!("{}: not step telemetry", path.display()))?;
    let (path, evals) = frame(EVALS)?;
    let mut evals = schema::evals_from_frame(&evals).with_context(|| format!("{}: not evaluations", path.display()))?;
    // Checkpoints written before intervals existed have no replicates.
    if dir.join(BOOTSTRAP).is_file() {
        let (path, boot) = frame(BOOTSTRAP)?;
        schema::attach_replicates(&mut evals, &boot)
            .with_context(|| format!("{}: not bootstrap replicates", path.display()))?;
    }
    let (path, angles) = frame(ANGLES)?;
    let angles =
        schema::angles_from_frame(&angles).with_context(|| format!("{}: not angle histograms", path.display()))?;
    Ok(Rows { steps, evals, angles })
}

/// Loads the checkpoint in `dir` into `vs` and `sgd`; `None` when there is none.
pub fn load(dir: &Path, vs: &VarStore, sgd: &mut Sgd) -> Result<Option<Restored>> {
    let Some(path) = store::trial_files::checkpoint_state(dir) else { return Ok(None) };
    let loaded = weights::read(&path).map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    let get = |name: &str| loaded.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let device = vs.device();
    weights::copy_into(&loaded, vs).map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    let _guard = tch::no_grad_guard();
    // Buffers take their parameter's memory layout (as the optimiser makes them), whatever the
    // layout they were saved in.
    for ((name, param), buf) in sgd.params.iter().zip(sgd.buffers.iter_mut()) {
        *buf = get(&format!("momentum/{name}")).map(|t| {
            let mut b = param.zeros_like();
            b.copy_(&t.to_device(device));
            b
        });
    }
    let meta = |name: &str| get(name).with_context(|| format!("{}: no {name}", path.display()));
    let step = meta(weights::STEP)?.int64_value(&[0]);
    let counts = meta("meta/rows")?;
    let count = |i: i64| counts.int64_value(&[i]) as usize;
    let loss_state = Vec::<f64>::try_from(meta("meta/loss_state")?.to_kind(Kind::Double))?;
    let mut rows = read_rows(dir)?;
    rows.steps.truncate(count(0));
    rows.evals.truncate(count(1));
    rows.angles.truncate(count(2));
    let skipped_images = get("meta/skipped_images").map_or(0, |t| t.int64_value(&[0]) as u64);
    // The growth interval comes from the trial's config, not from here (the trainer sets it).
    let skipped_in_a_row = get("meta/amp_skipped_in_a_row").map_or(0, |t| t.int64_value(&[0]));
    let scaler = get("meta/amp_scale").zip(get("meta/amp_good_steps")).map(|(scale, good)| GradScaler {
        scale: scale.double_value(&[0]),
        good_steps: good.int64_value(&[0]),
        skipped_in_a_row,
        growth_interval: 0,
    });
    let eval_pending = get("meta/eval_pending").is_some_and(|t| t.int64_value(&[0]) != 0);
    Ok(Some(Restored { step, loss_state, rows, skipped_images, scaler, eval_pending }))
}
