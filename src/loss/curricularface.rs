//! CurricularFace (Huang et al., CVPR 2020, arXiv 2004.00288): ArcFace's target logit
//! s·cos(θ_y + m) (with its fallback cos θ − m·sin m where θ + m > π), and hard negatives
//! re-weighted by an adaptive curriculum t:
//!
//!     f_j = s·cos θ_j·(t + cos θ_j)   where cos θ_j > cos(θ_y + m)   (hard), else s·cos θ_j
//!     t  ← 0.01·mean_i(cos θ_iy) + 0.99·t   (no gradient; t starts at 0; updated before use)
//!
//! as the official code does (the hard-example test uses cos(θ_y + m) without the fallback).
//! Defaults s = 64, m = 0.5 (the paper's).

use super::arcface::{ArcFace, ANGULAR_MARGIN};
use super::params::{no_constraints, SCALE_64};
use super::{
    clamp_cos, softmax_output, with_target, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput,
};
use tch::Kind;

/// The EMA weight of the batch's mean target cosine in t (the official code's 0.01).
pub const T_MOMENTUM: f64 = 0.01;

pub const ENTRY: LossEntry = LossEntry {
    name: "curricularface",
    summary: "CurricularFace: ArcFace target, hard negatives s·cos θ_j·(t + cos θ_j), t adaptive (Huang et al. 2020)",
    params: &[SCALE_64, ANGULAR_MARGIN],
    validate: no_constraints,
    build,
};

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(CurricularFace { s: c.f64("s"), m: c.f64("m"), t: 0.0, frozen: false })
}

pub struct CurricularFace {
    pub s: f64,
    pub m: f64,
    /// The curriculum parameter t in force.
    pub t: f64,
    pub frozen: bool,
}

impl Loss for CurricularFace {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let cos_y = b.target_cos();
        if !self.frozen {
            let mean = tch::no_grad(|| cos_y.detach().to_kind(Kind::Double).mean(Kind::Double).double_value(&[]));
            self.t = T_MOMENTUM * mean + (1.0 - T_MOMENTUM) * self.t;
        }
        let arc = ArcFace { s: self.s, m: self.m, straight_through: false, easy_margin: false };
        let target = arc.psi(&cos_y);
        let hard = tch::no_grad(|| {
            let c = clamp_cos(&cos_y);
            let shifted = &c * self.m.cos() - (c.square().neg() + 1.0).sqrt() * self.m.sin();
            b.cos.gt_tensor(&shifted)
        });
        let others = (b.cos * (b.cos + self.t)).where_self(&hard, b.cos);
        softmax_output(with_target(&others, &target, b.labels) * self.s, b.labels, self.s)
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    fn state(&self) -> Vec<f64> {
        vec![self.t]
    }

    fn set_state(&mut self, state: &[f64]) {
        if let [t] = state {
            self.t = *t;
        }
    }
}
