//! The training loop: one trial = one network trained with one loss. SGD with momentum and
//! weight decay, a step learning-rate schedule, data order from the trial's seed (batches read,
//! decoded and augmented ahead of the step by `data::loader`), mixed precision on request,
//! telemetry every `log_every` steps, and the held-out evaluation every `eval.every_epochs` and
//! at the end.

pub mod checkpoint;
pub mod scaler;
pub mod sgd;
pub mod telemetry;

use crate::data::loader::{self, Loader, LoaderOptions};
use crate::data::noise::TrainSet;
use crate::data::{self, Dataset};
use crate::digest::short_hex;
use crate::loss::{self, CosineBatch, LossContext};
use crate::model::{amp, partial_fc, Network};
use crate::spec::TrialConfig;
use crate::spec::{LossScaling, Precision};
use crate::store::schema::{self, AngleRow, EvalRow};
use checkpoint::Rows;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sgd::Sgd;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Device, Tensor};
use telemetry::StepTensors;

/// The held-out evaluation, handed in by the caller: training calls it at every evaluation
/// point and knows nothing of protocols. It returns one row per metric (with `step` as given).
pub trait Evaluate: Sync {
    fn evaluate(&self, net: &Network, device: Device, step: i64) -> anyhow::Result<Vec<EvalRow>>;
}

/// What a trial produced.
pub struct TrialOutcome {
    /// Telemetry, evaluation and θ_y-histogram rows.
    pub rows: Rows,
    pub init_checksum: String,
    /// SHA-256 (first 16 hex digits) of the sequence of training images the trial's batches
    /// hold: each image's index, the label it is trained with and whether it is noisy.
    pub data_order_checksum: String,
    /// The step whose loss or telemetry was not finite, if any (training stopped there).
    pub diverged_step: Option<i64>,
    /// The step of the checkpoint training resumed from, if it did.
    pub resumed_from: Option<i64>,
    /// Training images left out of their batch as unreadable (`data.on_bad_image = "skip"`),
    /// counted over the whole trial (resumed attempts included).
    pub skipped_images: u64,
    /// The epochs trained when training paused at [`Checkpointing::pause_after`] (before
    /// `train.epochs`); `None` when it trained to the end or diverged.
    pub paused_after: Option<usize>,
}

/// Training stopped early because [`Checkpointing::stop`] was set: the checkpoint of `step` is
/// saved, and training the trial again resumes from it.
#[derive(Debug, thiserror::Error)]
#[error("stopped at step {step} on request; its checkpoint is saved")]
pub struct Stopped {
    pub step: i64,
}

/// The learning rate in force during `epoch` (0-based).
pub fn lr_at(cfg: &TrialConfig, epoch: usize) -> f64 {
    let decays = cfg.train.lr_milestones.iter().filter(|&&m| m <= epoch).count();
    cfg.train.lr * cfg.train.lr_gamma.powi(decays as i32)
}

/// The order in which epoch `epoch` visits the training images: a permutation from the seed.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9).wrapping_add(epoch as u64));
    order.shuffle(&mut rng);
    order
}

/// Batches of an epoch: full batches only (the remainder is dropped, as face-recognition
/// training loops do, so batch statistics are comparable).
pub fn batches(order: &[usize], batch_size: usize) -> impl Iterator<Item = &[usize]> {
    order.chunks_exact(batch_size.min(order.len()).max(1))
}

/// Steps per epoch for a training set of `n` images.
pub fn steps_per_epoch(n: usize, batch_size: usize) -> usize {
    n / batch_size.min(n).max(1)
}

/// Where a trial keeps its checkpoint, and how often.
pub struct Checkpointing<'a> {
    pub dir: &'a Path,
    /// The trial id, written into the checkpoint's telemetry rows.
    pub trial: &'a str,
    /// A stop request (SIGTERM sets it): training saves a checkpoint after the step under way and
    /// returns [`Stopped`]; at an epoch's end that is evaluated, the checkpoint is saved before
    /// the evaluation, and a resumed trial makes the evaluation first.
    pub stop: Option<&'a AtomicBool>,
    /// Pause after this many epochs (a rung of successive halving): evaluate there, save the
    /// checkpoint and return with [`TrialOutcome::paused_after`] set. Training the trial again
    /// goes on from that checkpoint exactly as if it had not paused.
    pub pause_after: Option<usize>,
}

impl Checkpointing<'_> {
    fn stop_requested(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// Trains one trial on `train` (the training set with this trial's label noise), calling
/// `evaluator` at the evaluation points `[eval]` sets. With `checkpoint`, it resumes from a checkpoint found there and
/// writes one every `train.checkpoint_every` steps, at every epoch end, and when its `stop` flag
/// is set (then returning [`Stopped`]). `on_step` is called after every optimiser step with the
/// global step.
pub fn train_trial(
    cfg: &TrialConfig,
    train: &TrainSet,
    evaluator: &dyn Evaluate,
    device: Device,
    checkpoint: Option<&Checkpointing>,
    on_step: &mut dyn FnMut(i64),
) -> anyhow::Result<TrialOutcome> {
    let images = &*train.images;
    // Under Partial FC the loss is over the sampled class centres: it is built for that many.
    let sampled_classes = cfg.model.sampled_classes(images.num_classes());
    let partial_fc = cfg.model.sample_rate < 1.0;
    let ctx = LossContext { num_classes: sampled_classes as i64 };
    let mut loss_fn = loss::build(&cfg.loss, &ctx);
    let mut net = Network::new(
        &cfg.model,
        images.channels(),
        images.size(),
        images.num_classes(),
        loss_fn.uses_bias(),
        cfg.seed,
        device,
    );
    let init_checksum = net.init_checksum();
    if cfg.train.memory_format.channels_last() {
        net.use_channels_last();
    }
    let mut opt = Sgd::new(&net.vs, cfg.train.momentum, cfg.train.weight_decay, cfg.train.lr);
    let trainable: Vec<Tensor> = opt.params.iter().map(|(_, t)| t.shallow_clone()).collect();
    let amp_on = cfg.train.precision == Precision::Amp;
    // float16 (autocast on CUDA) needs loss scaling; bfloat16 (on the CPU) does not.
    let scaling = match cfg.train.loss_scaling {
        LossScaling::Auto => amp_on && device.is_cuda(),
        LossScaling::On => true,
        LossScaling::Off => false,
    };
    let growth_interval = cfg.train.scaler_growth_interval as i64;
    let mut scaler = scaling.then(|| scaler::GradScaler::new(cfg.train.scaler_init_scale, growth_interval));
    let backbone = net.backbone_params();
    let noisy_mask = (!train.is_clean()).then(|| Tensor::from_slice(&train.noisy));
    let (mut step, mut rows, mut resumed_from, mut skipped) = (0i64, Rows::default(), None, 0u64);
    let mut eval_pending = false;
    if let Some(ck) = checkpoint {
        if let Some(restored) = checkpoint::load(ck.dir, &net.vs, &mut opt)? {
            step = restored.step;
            eval_pending = restored.eval_pending;
            resumed_from = Some(step);
            rows = restored.rows;
            skipped = restored.skipped_images;
            loss_fn.set_state(&restored.loss_state);
            if let (Some(s), Some(saved)) = (scaler.as_mut(), restored.scaler) {
                *s = scaler::GradScaler { growth_interval, ..saved };
            }
        }
    }
    let per_epoch = steps_per_epoch(images.len(), cfg.train.batch_size) as i64;
    let resume_epoch = (step / per_epoch.max(1)) as usize;
    let mut non_finite = FirstNonFinite::new(device);
    let mut order_hash = Sha256::new();
    let outcome = |rows, order_hash: Sha256, diverged_step, skipped_images| TrialOutcome {
        rows,
        init_checksum: init_checksum.clone(),
        data_order_checksum: short_hex(order_hash),
        diverged_step,
        resumed_from,
        skipped_images,
        paused_after: None,
    };
    let pause_after = checkpoint.and_then(|ck| ck.pause_after).filter(|&e| e < cfg.train.epochs);
    let loading = LoaderOptions::for_training(&cfg.data, cfg.seed);
    let (channels, size) = (images.channels(), images.size());
    for epoch in 0..cfg.train.epochs {
        let lr = lr_at(cfg, epoch);
        opt.lr = lr;
        let order = epoch_order(images.len(), cfg.seed, epoch);
        let epoch_batches: Vec<&[usize]> = batches(&order, cfg.train.batch_size).collect();
        for batch in &epoch_batches {
            for &i in *batch {
                order_hash.update((i as u64).to_le_bytes());
                order_hash.update(train.labels[i].to_le_bytes());
                order_hash.update([u8::from(train.noisy.get(i).copied().unwrap_or(false))]);
            }
        }
        let first = match epoch.cmp(&resume_epoch) {
            std::cmp::Ordering::Less => epoch_batches.len(),
            std::cmp::Ordering::Equal => (step % per_epoch) as usize,
            std::cmp::Ordering::Greater => 0,
        };
        let todo: Vec<Vec<usize>> = epoch_batches[first..].iter().map(|b| b.to_vec()).collect();
        let mut loader = Loader::start(train.images.clone(), todo, epoch, loading);
        for _ in first..epoch_batches.len() {
            // Step time includes any wait for the loader: a starved step shows up in telemetry.
            let started = Instant::now();
            let loaded = loader.next_batch().expect("the loader delivers every batch or an error")?;
            skipped += loaded.skipped.len() as u64;
            let batch = &loaded.indices;
            if batch.len() < 2 {
                anyhow::bail!(
                    "step {step}: fewer than 2 readable images in the batch ({} skipped: {})",
                    loaded.skipped.len(),
                    loaded.skipped.join("; ")
                );
            }
            let log = step % cfg.train.log_every as i64 == 0;
            let batch_images = data::input_tensor(&loaded.pixels, batch.len(), channels, size, device);
            let batch_labels: Vec<i64> = batch.iter().map(|&i| train.labels[i]).collect();
            let sample = partial_fc
                .then(|| partial_fc::sample(&batch_labels, images.num_classes(), sampled_classes, cfg.seed, step));
            loss_fn.on_step(step);
            let x = if amp_on {
                amp::autocast(device, || net.embed(&batch_images, true)).to_kind(tch::Kind::Float)
            } else {
                net.embed(&batch_images, true)
            };
            let head = (&net.class_weights, net.class_bias.as_ref());
            let ClassStep { cos, feat_norm, labels, out } =
                class_step(loss_fn.as_mut(), &x, head, &batch_labels, sample.as_ref(), device);
            // Under loss scaling a non-finite loss skips the step (below), as GradScaler does.
            if scaler.is_none() {
                non_finite.record(&out.loss, step);
            }
            opt.zero_grad();
            let mut row = None;
            if log {
                if let Some(bad) = non_finite.read() {
                    return Ok(outcome(rows, order_hash, Some(bad), skipped));
                }
                let grads = Tensor::run_backward(&[&out.loss], &[&cos, &x], true, false);
                let batch_noisy = noisy_mask.as_ref().map(|m| {
                    let idx: Vec<i64> = batch.iter().map(|&i| i as i64).collect();
                    m.index_select(0, &Tensor::from_slice(&idx)).to_device(device)
                });
                row = Some(telemetry::batch_stats(&StepTensors {
                    cos: &cos.detach(),
                    labels: &labels,
                    logits_for_acc: &out.plain_logits.as_ref().unwrap_or(&cos).detach(),
                    grad_cos: &grads[0],
                    grad_feat: &grads[1],
                    feat_norm: &feat_norm.detach(),
                    noisy: batch_noisy.as_ref(),
                }));
            }
            let take_step = match scaler.as_mut() {
                Some(s) => {
                    s.scale_loss(&out.loss).backward();
                    let finite = s.unscale(&trainable);
                    if s.diverged() {
                        let first = step + 1 - scaler::MAX_SKIPPED_IN_A_ROW;
                        return Ok(outcome(rows, order_hash, Some(first), skipped));
                    }
                    finite
                }
                None => {
                    out.loss.backward();
                    true
                }
            };
            if let Some(mut r) = row.take() {
                r.step = step;
                r.epoch = epoch as i64;
                r.lr = lr;
                r.loss = out.loss.double_value(&[]);
                r.scale = out.scale;
                r.grad_norm_class_weights = telemetry::grad_norm(std::slice::from_ref(&net.class_weights));
                r.sampled_classes = cos.size()[1];
                r.sampled_positives = match &sample {
                    Some(s) => s.positives as i64,
                    None => batch_labels.iter().collect::<std::collections::BTreeSet<_>>().len() as i64,
                };
                r.grad_norm_backbone = telemetry::grad_norm(&backbone);
                r.step_seconds = started.elapsed().as_secs_f64();
                // A step the loss scaler skips (float16 overflow) logs no row: its gradients
                // are not finite by design, not a divergence (only a run of them is).
                if take_step {
                    if !r.is_finite() {
                        return Ok(outcome(rows, order_hash, Some(step), skipped));
                    }
                    rows.steps.push(r);
                }
            }
            if take_step {
                if let Some(max_norm) = cfg.train.clip_grad_norm {
                    sgd::clip_grad_norm(&backbone, max_norm);
                }
                opt.step();
            }
            step += 1;
            on_step(step);
            let epoch_end = step % per_epoch == 0;
            let every = cfg.train.checkpoint_every as i64;
            let stop = checkpoint.is_some_and(|ck| ck.stop_requested());
            if let Some(ck) = checkpoint.filter(|_| (stop || every > 0 && step % every == 0) && !epoch_end) {
                if let Some(bad) = non_finite.read() {
                    return Ok(outcome(rows, order_hash, Some(bad), skipped));
                }
                let state =
                    checkpoint::State { step, loss_state: &loss_fn.state(), skipped, scaler, eval_pending: false };
                checkpoint::save(ck.dir, ck.trial, &net.vs, &opt, &state, &rows)?;
                if stop {
                    return Err(Stopped { step }.into());
                }
            }
        }
        drop(loader);
        // An epoch before the checkpoint is done, unless its evaluation was still owed.
        let owed = eval_pending && epoch + 1 == resume_epoch;
        if epoch < resume_epoch && !owed {
            continue;
        }
        if let Some(bad) = non_finite.read() {
            return Ok(outcome(rows, order_hash, Some(bad), skipped));
        }
        let last = epoch + 1 == cfg.train.epochs;
        let pause = pause_after == Some(epoch + 1);
        let every = cfg.eval.every_epochs;
        let evaluate = last || pause || (every > 0 && (epoch + 1) % every == 0);
        if let Some(ck) = checkpoint.filter(|_| evaluate && !owed) {
            // The epoch is saved before its evaluation, which may outlast a stop's grace period
            // (Slurm's SIGKILL then loses no training): a stop now ends here, and a resumed
            // trial evaluates this epoch first.
            let state = checkpoint::State { step, loss_state: &loss_fn.state(), skipped, scaler, eval_pending: true };
            checkpoint::save(ck.dir, ck.trial, &net.vs, &opt, &state, &rows)?;
            if ck.stop_requested() {
                return Err(Stopped { step }.into());
            }
        }
        if evaluate {
            rows.evals.extend(evaluator.evaluate(&net, device, step)?);
            rows.angles.extend(target_angle_histograms(&net, train, device, step, loading)?);
        }
        if let Some(ck) = checkpoint {
            let state = checkpoint::State { step, loss_state: &loss_fn.state(), skipped, scaler, eval_pending: false };
            checkpoint::save(ck.dir, ck.trial, &net.vs, &opt, &state, &rows)?;
            if pause {
                return Ok(TrialOutcome { paused_after: Some(epoch + 1), ..outcome(rows, order_hash, None, skipped) });
            }
            if ck.stop_requested() && !last {
                return Err(Stopped { step }.into());
            }
        }
    }
    Ok(outcome(rows, order_hash, None, skipped))
}

/// One step's class layer on the features `x`: the cosines, the features' norms, the labels as
/// the loss sees them, and the loss.
pub struct ClassStep {
    pub cos: Tensor,
    pub feat_norm: Tensor,
    pub labels: Tensor,
    pub out: loss::LossOutput,
}

/// The class layer of a step: with a Partial FC `sample`, the sampled rows of the class weights
/// and bias (`head`) and the labels as positions among them; else all of them. Only the rows
/// used get gradient; weight decay and momentum still move the others, as in PyTorch. cos θ is
/// built as a graph node from the normalised features and weights, for every loss.
pub fn class_step(
    loss_fn: &mut dyn loss::Loss,
    x: &Tensor,
    (weights, bias): (&Tensor, Option<&Tensor>),
    batch_labels: &[i64],
    sample: Option<&partial_fc::Sample>,
    device: Device,
) -> ClassStep {
    let labels = Tensor::from_slice(sample.map_or(batch_labels, |s| &s.labels)).to_device(device);
    let class_index = sample.map(|s| Tensor::from_slice(&s.classes).to_device(device));
    let rows = |t: &Tensor| class_index.as_ref().map_or_else(|| t.shallow_clone(), |ix| t.index_select(0, ix));
    let feat_norm = x.norm_scalaropt_dim(2, [1], true);
    let w = rows(weights);
    let bias = bias.map(rows);
    let w_norm = w.norm_scalaropt_dim(2, [1], true);
    let cos = (x / feat_norm.clamp_min(1e-12)).matmul(&(&w / w_norm.clamp_min(1e-12)).tr());
    let w_norm_row = w_norm.tr();
    let out = loss_fn.forward(&CosineBatch {
        cos: &cos,
        feat_norm: &feat_norm,
        weight_norm: &w_norm_row,
        bias: bias.as_ref(),
        labels: &labels,
    });
    ClassStep { cos, feat_norm, labels, out }
}

/// The labels `train` trains `batch` with (noisy ones included), int64 [b], on `device`.
fn train_labels(train: &TrainSet, batch: &[usize], device: Device) -> Tensor {
    let labels: Vec<i64> = batch.iter().map(|&i| train.labels[i]).collect();
    Tensor::from_slice(&labels).to_device(device)
}

/// The first step whose loss was not finite, kept on the device so that no step waits for the
/// host: each step adds a few tiny device ops, and the flag is read (one synchronisation) only at
/// logging steps, checkpoints and epoch ends. The step it reports is exact.
struct FirstNonFinite {
    /// The step, or −1 while every loss so far was finite (int64 scalar on the device).
    first: Tensor,
}

impl FirstNonFinite {
    fn new(device: Device) -> FirstNonFinite {
        FirstNonFinite { first: Tensor::from(-1i64).to_device(device) }
    }

    fn record(&mut self, loss: &Tensor, step: i64) {
        let _guard = tch::no_grad_guard();
        let new = loss.isfinite().logical_not().logical_and(&self.first.lt(0));
        self.first = Tensor::where_scalarself(&new, step, &self.first);
    }

    fn read(&self) -> Option<i64> {
        Some(self.first.int64_value(&[])).filter(|&s| s >= 0)
    }
}

/// Training images whose θ_y the angle histograms are taken over: at most this many, evenly spaced.
const ANGLE_SAMPLE: usize = 4096;

/// θ_y histograms of an evenly spaced sample of the training images (not augmented), embedded
/// in eval mode: "all", and under label noise "clean" and "noisy" separately (angles against the
/// label trained on). Images are read as `loading` says (an unreadable one under `skip` is left
/// out of the sample).
pub fn target_angle_histograms(
    net: &Network,
    train: &TrainSet,
    device: Device,
    step: i64,
    loading: LoaderOptions,
) -> anyhow::Result<Vec<AngleRow>> {
    let _guard = tch::no_grad_guard();
    let images: &dyn Dataset = &*train.images;
    let stride = images.len().div_ceil(ANGLE_SAMPLE).max(1);
    let sample: Vec<usize> = (0..images.len()).step_by(stride).collect();
    let (mut theta, mut taken) = (Vec::with_capacity(sample.len()), Vec::with_capacity(sample.len()));
    let w = net.class_weights.shallow_clone();
    let w_hat = &w / w.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    for chunk in sample.chunks(256) {
        let loaded = loader::load_batch(images, chunk, 0, &loading.plain())?;
        if loaded.indices.is_empty() {
            continue;
        }
        let input = data::input_tensor(&loaded.pixels, loaded.indices.len(), images.channels(), images.size(), device);
        let x = net.embed(&input, false);
        let x_hat = &x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
        let labels = train_labels(train, &loaded.indices, device).unsqueeze(1);
        let cos_y = x_hat.matmul(&w_hat.tr()).gather(1, &labels, false).clamp(-1.0, 1.0);
        let degrees = (cos_y.acos() * (180.0 / std::f64::consts::PI)).to_kind(tch::Kind::Double).flatten(0, -1);
        theta.extend(Vec::<f64>::try_from(&degrees.to_device(Device::Cpu)).expect("angles are doubles"));
        taken.extend(loaded.indices);
    }
    let mut rows = schema::angle_histogram(step, "all", &theta);
    if !train.is_clean() {
        let pick = |noisy: bool| -> Vec<f64> {
            taken.iter().zip(&theta).filter(|(&i, _)| train.noisy[i] == noisy).map(|(_, &t)| t).collect()
        };
        rows.extend(schema::angle_histogram(step, "clean", &pick(false)));
        rows.extend(schema::angle_histogram(step, "noisy", &pick(true)));
    }
    Ok(rows)
}
