//! ArcFace (Deng et al. 2019): target logit s·cos(θ_y + m), others s·cos θ_j.
//!
//! `gradient = "exact"` differentiates cos(θ+m) = cos θ·cos m − sin θ·sin m, so
//! ψ'(cos θ) = sin(θ+m)/sin θ. Where θ + m > π the target becomes cos θ − m·sin m (insightface's
//! fallback, keeps ψ monotone). `gradient = "straight-through"` applies the margin without
//! gradient (ψ' := 1), as insightface does since Dec 2022. `easy_margin` applies the margin only
//! where cos θ > 0.

use super::params::{any, no_constraints, Default, ParamKind, ParamSpec, ParamValue, SCALE_64};
use super::{
    clamp_cos, softmax_output, with_target, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput,
};
use tch::Tensor;

pub(super) fn margin_below_half_pi(v: &ParamValue) -> Result<(), String> {
    match v.as_f64() {
        Some(m) if (0.0..std::f64::consts::FRAC_PI_2).contains(&m) => Ok(()),
        _ => Err("an angular margin in radians with 0 <= m < π/2".into()),
    }
}

/// ArcFace's additive angular margin m (0.5 rad), shared with CurricularFace.
pub(super) const ANGULAR_MARGIN: ParamSpec = ParamSpec {
    name: "m",
    kind: ParamKind::Float,
    default: Default::Float(0.5),
    check: margin_below_half_pi,
    help: "additive angular margin m (radians)",
};

pub const ENTRY: LossEntry = LossEntry {
    name: "arcface",
    summary: "ArcFace: s·cos(θ_y + m) (Deng et al. 2019)",
    params: &[
        SCALE_64,
        ANGULAR_MARGIN,
        ParamSpec {
            name: "gradient",
            kind: ParamKind::Choice(&["exact", "straight-through"]),
            default: Default::Str("exact"),
            check: any,
            help: "exact ψ' or straight-through (margin without gradient)",
        },
        ParamSpec {
            name: "easy_margin",
            kind: ParamKind::Bool,
            default: Default::Bool(false),
            check: any,
            help: "apply the margin only where cos θ_y > 0",
        },
    ],
    validate: no_constraints,
    build,
};

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(ArcFace {
        s: c.f64("s"),
        m: c.f64("m"),
        straight_through: c.str("gradient") == "straight-through",
        easy_margin: c.bool("easy_margin"),
    })
}

pub struct ArcFace {
    pub s: f64,
    pub m: f64,
    pub straight_through: bool,
    pub easy_margin: bool,
}

impl ArcFace {
    /// ψ(cos θ) = cos(θ + m) with the fallback (or easy margin) applied, [B,1] → [B,1].
    pub fn psi(&self, cos_y: &Tensor) -> Tensor {
        let c = clamp_cos(cos_y);
        let sin = (c.square().neg() + 1.0).sqrt();
        let shifted = &c * self.m.cos() - sin * self.m.sin();
        if self.easy_margin {
            shifted.where_self(&cos_y.gt(0.0), cos_y)
        } else {
            // θ + m > π  ⇔  cos θ < cos(π − m)
            let threshold = (std::f64::consts::PI - self.m).cos();
            let fallback = cos_y - self.m * self.m.sin();
            shifted.where_self(&cos_y.gt(threshold), &fallback)
        }
    }
}

impl Loss for ArcFace {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let cos_y = b.target_cos();
        let psi = self.psi(&cos_y);
        let target = if self.straight_through { &cos_y + (psi - &cos_y).detach() } else { psi };
        let logits = with_target(b.cos, &target, b.labels) * self.s;
        softmax_output(logits, b.labels, self.s)
    }
}
