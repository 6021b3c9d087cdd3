//! The training loop: one trial = one network trained with one loss. SGD with momentum and
//! weight decay, a step learning-rate schedule, data order from the trial's seed, telemetry every
//! `log_every` steps, and the held-out evaluation every `eval.every_epochs` and at the end.

pub mod telemetry;

use crate::data::ImageSet;
use crate::digest::short_hex;
use crate::eval::{features, verification};
use crate::loss::{self, CosineBatch, LossContext};
use crate::model::Network;
use crate::spec::{DeviceChoice, TrialConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use std::time::Instant;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Tensor};
use telemetry::{EvalRow, StepRow, StepTensors};

/// The data every trial of an experiment shares.
pub struct TrialData {
    pub train: ImageSet,
    pub heldout: ImageSet,
    /// LFW-style pairs over the held-out images.
    pub lfw_pairs: Vec<verification::Pair>,
}

/// What a trial produced.
pub struct TrialOutcome {
    pub steps: Vec<StepRow>,
    pub evals: Vec<EvalRow>,
    pub init_checksum: String,
    /// SHA-256 (first 16 hex digits) of the sequence of image indices the trial trained on.
    pub data_order_checksum: String,
    /// The step whose loss or telemetry was not finite, if any (training stopped there).
    pub diverged_step: Option<i64>,
}

/// Resolves `device = "auto" | "cpu" | "cuda"`.
pub fn resolve_device(choice: DeviceChoice) -> anyhow::Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => anyhow::bail!("train.device = \"cuda\" but libtorch sees no CUDA device"),
    }
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

/// Trains one trial; `on_step` is called after every optimiser step with the global step.
pub fn train_trial(
    cfg: &TrialConfig,
    data: &TrialData,
    device: Device,
    on_step: &mut dyn FnMut(i64),
) -> anyhow::Result<TrialOutcome> {
    let train = &data.train;
    let ctx = LossContext { num_classes: train.num_classes as i64 };
    let mut loss_fn = loss::build(&cfg.loss, &ctx);
    let net =
        Network::new(&cfg.model, train.channels, train.size, train.num_classes, loss_fn.uses_bias(), cfg.seed, device);
    let init_checksum = net.init_checksum();
    let mut opt = nn::Sgd { momentum: cfg.train.momentum, dampening: 0.0, wd: cfg.train.weight_decay, nesterov: false }
        .build(&net.vs, cfg.train.lr)?;
    let backbone = net.backbone_params();
    let mut steps = Vec::new();
    let mut evals = Vec::new();
    let mut step: i64 = 0;
    let mut order_hash = Sha256::new();
    for epoch in 0..cfg.train.epochs {
        let lr = lr_at(cfg, epoch);
        opt.set_lr(lr);
        let order = epoch_order(train.len(), cfg.seed, epoch);
        for batch in batches(&order, cfg.train.batch_size) {
            let started = Instant::now();
            for &i in batch {
                order_hash.update((i as u64).to_le_bytes());
            }
            let log = step % cfg.train.log_every as i64 == 0;
            let images = train.images(batch, device);
            let labels = train.labels(batch, device);
            let x = net.embed(&images, true);
            let feat_norm = x.norm_scalaropt_dim(2, [1], true);
            let w = &net.class_weights;
            let w_norm = w.norm_scalaropt_dim(2, [1], true);
            let cos = (&x / feat_norm.clamp_min(1e-12)).matmul(&(w / w_norm.clamp_min(1e-12)).tr());
            let w_norm_row = w_norm.tr();
            let out = loss_fn.forward(&CosineBatch {
                cos: &cos,
                feat_norm: &feat_norm,
                weight_norm: &w_norm_row,
                bias: net.class_bias.as_ref(),
                labels: &labels,
            });
            let loss_value = out.loss.double_value(&[]);
            opt.zero_grad();
            let mut row = None;
            if log {
                let grads = Tensor::run_backward(&[&out.loss], &[&cos, &x], true, false);
                let stats = telemetry::batch_stats(&StepTensors {
                    cos: &cos.detach(),
                    labels: &labels,
                    logits_for_acc: &out.plain_logits.as_ref().unwrap_or(&cos).detach(),
                    grad_cos: &grads[0],
                    grad_feat: &grads[1],
                    feat_norm: &feat_norm.detach(),
                });
                row = Some(stats);
            }
            out.loss.backward();
            if let Some(mut r) = row.take() {
                r.step = step;
                r.epoch = epoch as i64;
                r.lr = lr;
                r.loss = loss_value;
                r.scale = out.scale;
                r.grad_norm_class_weights = telemetry::grad_norm(std::slice::from_ref(w));
                r.grad_norm_backbone = telemetry::grad_norm(&backbone);
                r.step_seconds = started.elapsed().as_secs_f64();
                let finite = r.is_finite();
                steps.push(r);
                if !finite {
                    return Ok(TrialOutcome {
                        steps,
                        evals,
                        init_checksum,
                        data_order_checksum: short_hex(order_hash),
                        diverged_step: Some(step),
                    });
                }
            }
            if !loss_value.is_finite() {
                return Ok(TrialOutcome {
                    steps,
                    evals,
                    init_checksum,
                    data_order_checksum: short_hex(order_hash),
                    diverged_step: Some(step),
                });
            }
            opt.step();
            step += 1;
            on_step(step);
        }
        let last = epoch + 1 == cfg.train.epochs;
        let every = cfg.eval.every_epochs;
        if last || (every > 0 && (epoch + 1) % every == 0) {
            evals.extend(evaluate(cfg, &net, data, device, step));
        }
    }
    Ok(TrialOutcome { steps, evals, init_checksum, data_order_checksum: short_hex(order_hash), diverged_step: None })
}

/// Runs the configured protocols on the held-out identities.
pub fn evaluate(cfg: &TrialConfig, net: &Network, data: &TrialData, device: Device, step: i64) -> Vec<EvalRow> {
    let mut rows = Vec::new();
    if cfg.eval.protocols.iter().any(|p| p == "lfw") && !data.lfw_pairs.is_empty() {
        let (feats, dim) = features::extract(net, &data.heldout, cfg.eval.flip, 256, device);
        let result = verification::verify(&feats, dim, &data.lfw_pairs, cfg.eval.lfw.folds);
        let variant = format!(
            "builtin heldout; flip={:?}; distance=squared-l2-normalised; thresholds=0.00:3.99:0.01; folds={} contiguous",
            cfg.eval.flip, cfg.eval.lfw.folds
        )
        .to_lowercase();
        for (metric, value) in [("accuracy_mean", result.mean), ("accuracy_std", result.std)] {
            rows.push(EvalRow { step, protocol: "lfw".into(), variant: variant.clone(), metric: metric.into(), value });
        }
    }
    rows
}
