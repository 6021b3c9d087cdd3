//! SphereFace / A-softmax (Liu et al., CVPR 2017, arXiv 1704.08063) and its normalised variant.
//!
//! Class weights are normalised; the target logit is ‖x‖·ψ(θ_y) with
//! ψ(θ) = (−1)^k·cos(mθ) − 2k on θ ∈ [kπ/m, (k+1)π/m] (monotone, continuous), and cos(mθ)
//! is the Chebyshev polynomial T_m(cos θ), as in the original Caffe layer. Training blends ψ
//! with plain softmax through λ, exactly as that layer does:
//!
//!     f_y = ‖x‖·(λ·cos θ_y + ψ(θ_y)) / (1 + λ),   f_j = ‖x‖·cos θ_j (j ≠ y)
//!     λ   = max(lambda_min, base·(1 + gamma·iter)^(−power)),   iter = step + 1
//!
//! (the Caffe layer increments its iteration counter before computing λ, so the first training
//! step uses iter = 1). The defaults are the released SphereFace-20 prototxt's: m = 4, base = 1000,
//! gamma = 0.12, power = 1, lambda_min = 5. One deliberate difference: the Caffe backward
//! rescales the target's (W, x) gradient coefficients to unit length; here the gradient is the
//! exact derivative of the forward (autograd).
//!
//! `sphereface_norm` replaces ‖x‖ by a fixed scale s (features normalised as well), the form the
//! ArcFace paper compares at s = 64; with base = lambda_min = 0 it equals the combined margin
//! (s, m1 = m, 0, 0).

use super::params::{no_constraints, non_negative, positive, Default, ParamKind, ParamSpec};
use super::{
    clamp_cos, softmax_output, with_target, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput,
};
use tch::Tensor;

const M: ParamSpec = ParamSpec {
    name: "m",
    kind: ParamKind::Int,
    default: Default::Int(4),
    check: positive,
    help: "integer angular margin m (ψ uses cos(mθ))",
};
const BASE: ParamSpec = ParamSpec {
    name: "base",
    kind: ParamKind::Float,
    default: Default::Float(1000.0),
    check: non_negative,
    help: "λ schedule: base·(1 + gamma·iter)^(−power); 0 keeps λ = lambda_min",
};
const GAMMA: ParamSpec = ParamSpec {
    name: "gamma",
    kind: ParamKind::Float,
    default: Default::Float(0.12),
    check: non_negative,
    help: "λ schedule: gamma",
};
const POWER: ParamSpec = ParamSpec {
    name: "power",
    kind: ParamKind::Float,
    default: Default::Float(1.0),
    check: non_negative,
    help: "λ schedule: power",
};
const LAMBDA_MIN: ParamSpec = ParamSpec {
    name: "lambda_min",
    kind: ParamKind::Float,
    default: Default::Float(5.0),
    check: non_negative,
    help: "λ schedule: floor of λ",
};

pub const ENTRY: LossEntry = LossEntry {
    name: "sphereface",
    summary: "SphereFace / A-softmax: ‖x‖·ψ(θ_y), ψ = (−1)^k cos(mθ) − 2k, λ-annealed (Liu et al. 2017)",
    params: &[M, BASE, GAMMA, POWER, LAMBDA_MIN],
    validate: no_constraints,
    build,
};

pub const NORMALISED_ENTRY: LossEntry = LossEntry {
    name: "sphereface_norm",
    summary: "normalised SphereFace: s·ψ(θ_y) with the same ψ and λ schedule (features normalised)",
    params: &[
        ParamSpec {
            name: "s",
            kind: ParamKind::Float,
            default: Default::Float(64.0),
            check: positive,
            help: "logit scale s (replaces ‖x‖)",
        },
        M,
        BASE,
        GAMMA,
        POWER,
        LAMBDA_MIN,
    ],
    validate: no_constraints,
    build: build_normalised,
};

fn schedule(c: &LossConfig) -> LambdaSchedule {
    LambdaSchedule {
        base: c.f64("base"),
        gamma: c.f64("gamma"),
        power: c.f64("power"),
        lambda_min: c.f64("lambda_min"),
    }
}

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(SphereFace { m: c.f64("m") as i64, scale: None, schedule: schedule(c), step: 0 })
}

fn build_normalised(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(SphereFace { m: c.f64("m") as i64, scale: Some(c.f64("s")), schedule: schedule(c), step: 0 })
}

/// The original code's λ annealing.
#[derive(Debug, Clone, Copy)]
pub struct LambdaSchedule {
    pub base: f64,
    pub gamma: f64,
    pub power: f64,
    pub lambda_min: f64,
}

impl LambdaSchedule {
    /// λ at 0-based training step `step` (Caffe's counter is step + 1 when λ is computed).
    pub fn lambda(&self, step: i64) -> f64 {
        let iter = (step + 1) as f64;
        (self.base * (1.0 + self.gamma * iter).powf(-self.power)).max(self.lambda_min)
    }
}

pub struct SphereFace {
    pub m: i64,
    /// `None`: the feature norm ‖x‖ (original); `Some(s)`: a fixed scale (normalised variant).
    pub scale: Option<f64>,
    pub schedule: LambdaSchedule,
    pub step: i64,
}

/// cos(mθ) as the Chebyshev polynomial T_m(c): exact derivative, no `acos`.
fn chebyshev(c: &Tensor, m: i64) -> Tensor {
    let (mut prev, mut cur) = (c.ones_like(), c.shallow_clone());
    if m == 0 {
        return prev;
    }
    for _ in 1..m {
        let next = c * &cur * 2.0 - &prev;
        prev = cur;
        cur = next;
    }
    cur
}

impl SphereFace {
    /// ψ(θ) = (−1)^k·cos(mθ) − 2k for cosines `cos_y` (any shape); k from θ without gradient.
    pub fn psi(&self, cos_y: &Tensor) -> Tensor {
        let m = self.m as f64;
        let k = tch::no_grad(|| (clamp_cos(cos_y).acos() * (m / std::f64::consts::PI)).floor().clamp(0.0, m - 1.0));
        let sign = (k.remainder(2.0) * -2.0) + 1.0;
        sign * chebyshev(cos_y, self.m) - k * 2.0
    }
}

impl Loss for SphereFace {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let lambda = self.schedule.lambda(self.step);
        let cos_y = b.target_cos();
        let target = (&cos_y * lambda + self.psi(&cos_y)) / (1.0 + lambda);
        let angular = with_target(b.cos, &target, b.labels);
        match self.scale {
            Some(s) => softmax_output(angular * s, b.labels, s),
            None => softmax_output(angular * b.feat_norm, b.labels, 1.0),
        }
    }

    fn on_step(&mut self, step: i64) {
        self.step = step;
    }
}
