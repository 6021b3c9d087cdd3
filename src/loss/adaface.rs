//! AdaFace (Kim et al., CVPR 2022, arXiv 2204.00964): a margin that adapts to image quality,
//! with the feature norm ‖x‖ as the quality proxy. Per sample, without gradient through the norm:
//!
//!     a      = clip(‖x‖, 0.001, 100)
//!     μ, σ  ← EMA (weight t_alpha) of the batch mean and (unbiased) std of a; start 20 and 100
//!     ẑ      = clip(h·(a − μ)/(σ + ε), −1, 1)                      ε = 0.001
//!     f_y    = s·(cos(clip(θ_y − m·ẑ, ε, π − ε)) − (m + m·ẑ))     f_j = s·cos θ_j
//!
//! with every cosine first clamped to [−1 + ε, 1 − ε], as the official code does (so the
//! gradient is zero for |cos θ| > 1 − ε). A batch of one sample has no std; σ's update then
//! uses 0. Defaults m = 0.4, h = 0.333, s = 64, t_alpha = 0.01 (the paper's training scripts).

use super::params::{no_constraints, non_negative, Default, ParamKind, ParamSpec, ParamValue, SCALE_64};
use super::{softmax_output, with_target, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput};
use tch::Kind;

/// The official code's ε (cosine clamp, angle clip, σ guard).
pub const EPS: f64 = 1e-3;
/// Initial running mean and std of the feature norms (the official buffers).
pub const INITIAL_MEAN: f64 = 20.0;
pub const INITIAL_STD: f64 = 100.0;

fn unit_interval(v: &ParamValue) -> Result<(), String> {
    match v.as_f64() {
        Some(x) if x > 0.0 && x <= 1.0 => Ok(()),
        _ => Err("a number with 0 < t_alpha <= 1".into()),
    }
}

pub const ENTRY: LossEntry = LossEntry {
    name: "adaface",
    summary: "AdaFace: norm-adaptive angular + additive margin (Kim et al. 2022)",
    params: &[
        SCALE_64,
        ParamSpec {
            name: "m",
            kind: ParamKind::Float,
            default: Default::Float(0.4),
            check: non_negative,
            help: "margin m",
        },
        ParamSpec {
            name: "h",
            kind: ParamKind::Float,
            default: Default::Float(0.333),
            check: non_negative,
            help: "concentration h of the normalised feature norm",
        },
        ParamSpec {
            name: "t_alpha",
            kind: ParamKind::Float,
            default: Default::Float(0.01),
            check: unit_interval,
            help: "EMA weight of the batch statistics of ‖x‖",
        },
    ],
    validate: no_constraints,
    build,
};

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(AdaFace {
        s: c.f64("s"),
        m: c.f64("m"),
        h: c.f64("h"),
        t_alpha: c.f64("t_alpha"),
        batch_mean: INITIAL_MEAN,
        batch_std: INITIAL_STD,
        frozen: false,
    })
}

pub struct AdaFace {
    pub s: f64,
    pub m: f64,
    pub h: f64,
    pub t_alpha: f64,
    pub batch_mean: f64,
    pub batch_std: f64,
    pub frozen: bool,
}

impl Loss for AdaFace {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let cos = b.cos.clamp(-1.0 + EPS, 1.0 - EPS);
        let norms = b.feat_norm.detach().clamp(0.001, 100.0);
        if !self.frozen {
            let (mean, std) = tch::no_grad(|| {
                let n = norms.to_kind(Kind::Double);
                let mean = n.mean(Kind::Double).double_value(&[]);
                let std = if n.numel() > 1 { n.std(true).double_value(&[]) } else { 0.0 };
                (mean, std)
            });
            self.batch_mean = mean * self.t_alpha + (1.0 - self.t_alpha) * self.batch_mean;
            self.batch_std = std * self.t_alpha + (1.0 - self.t_alpha) * self.batch_std;
        }
        let scaler = ((norms - self.batch_mean) / (self.batch_std + EPS) * self.h).clamp(-1.0, 1.0);
        let cos_y = cos.gather(1, &b.labels.unsqueeze(1), false);
        let angle = (cos_y.acos() - &scaler * self.m).clamp(EPS, std::f64::consts::PI - EPS);
        let target = angle.cos() - (scaler * self.m + self.m);
        softmax_output(with_target(&cos, &target, b.labels) * self.s, b.labels, self.s)
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    fn state(&self) -> Vec<f64> {
        vec![self.batch_mean, self.batch_std]
    }

    fn set_state(&mut self, state: &[f64]) {
        if let [mean, std] = state {
            self.batch_mean = *mean;
            self.batch_std = *std;
        }
    }
}
