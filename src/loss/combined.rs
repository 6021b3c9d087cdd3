//! Combined margin (Deng et al., ArcFace, CVPR 2019, Eq. 4): target logit
//! s·(cos(m1·θ_y + m2) − m3), others s·cos θ_j. It generalises SphereFace (m1), ArcFace (m2) and
//! CosFace (m3). Defaults (s, m1, m2, m3) = (64, 1, 0.3, 0.2): the paper's best combination (CM1).
//!
//! Where φ = m1·θ + m2 passes π, cos φ stops decreasing; like SphereFace, ψ continues it
//! monotonically: ψ = (−1)^k·cos φ − 2k − m3 for φ ∈ [kπ, (k+1)π]. So the loss equals
//! `sphereface_norm` (m1 = m, λ = 0) and `cosface` (m1 = 1, m2 = 0) everywhere, and `arcface`
//! (m1 = 1, m3 = 0) for θ_y ≤ π − m2; beyond that ArcFace uses insightface's fallback
//! cos θ − m·sin m while this loss continues with −cos(θ + m2) − 2.

use super::params::{no_constraints, non_negative, positive, Default, ParamKind, ParamSpec, SCALE_64};
use super::{
    clamp_cos, softmax_output, with_target, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput,
};
use std::f64::consts::PI;
use tch::Tensor;

pub const ENTRY: LossEntry = LossEntry {
    name: "combined",
    summary: "combined margin: s·(cos(m1·θ_y + m2) − m3) (Deng et al. 2019)",
    params: &[
        SCALE_64,
        ParamSpec {
            name: "m1",
            kind: ParamKind::Float,
            default: Default::Float(1.0),
            check: positive,
            help: "multiplicative angular margin (SphereFace)",
        },
        ParamSpec {
            name: "m2",
            kind: ParamKind::Float,
            default: Default::Float(0.3),
            check: non_negative,
            help: "additive angular margin, radians (ArcFace)",
        },
        ParamSpec {
            name: "m3",
            kind: ParamKind::Float,
            default: Default::Float(0.2),
            check: non_negative,
            help: "additive cosine margin (CosFace)",
        },
    ],
    validate: no_constraints,
    build,
};

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(Combined { s: c.f64("s"), m1: c.f64("m1"), m2: c.f64("m2"), m3: c.f64("m3") })
}

pub struct Combined {
    pub s: f64,
    pub m1: f64,
    pub m2: f64,
    pub m3: f64,
}

impl Combined {
    /// ψ(cos θ) = (−1)^k·cos(m1·θ + m2) − 2k − m3, k = ⌊(m1·θ + m2)/π⌋.
    pub fn psi(&self, cos_y: &Tensor) -> Tensor {
        let c = clamp_cos(cos_y);
        let cos_phi = if self.m1 == 1.0 && self.m2 == 0.0 {
            cos_y.shallow_clone()
        } else if self.m1 == 1.0 {
            // cos(θ + m2) by the addition formula, as ArcFace computes it.
            let sin = (c.square().neg() + 1.0).sqrt();
            &c * self.m2.cos() - sin * self.m2.sin()
        } else {
            (c.acos() * self.m1 + self.m2).cos()
        };
        let k = tch::no_grad(|| ((c.acos() * self.m1 + self.m2) / PI).floor());
        let sign = (k.remainder(2.0) * -2.0) + 1.0;
        sign * cos_phi - k * 2.0 - self.m3
    }
}

impl Loss for Combined {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let target = self.psi(&b.target_cos());
        softmax_output(with_target(b.cos, &target, b.labels) * self.s, b.labels, self.s)
    }
}
