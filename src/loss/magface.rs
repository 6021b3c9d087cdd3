//! MagFace (Meng et al., CVPR 2021, arXiv 2103.06627): an ArcFace margin that grows with the
//! feature magnitude a = ‖x‖, plus a regulariser that rewards large magnitudes:
//!
//!     a    = clamp(‖x‖, l_a, u_a)
//!     m(a) = (u_m − l_m)/(u_a − l_a)·(a − l_a) + l_m
//!     f_y  = s·cos(θ_y + m(a))        f_j = s·cos θ_j
//!     L    = CE(f) + λ_g·mean_i(a_i/u_a² + 1/a_i)
//!
//! Gradients flow into ‖x‖ through m(a) and the regulariser (zero outside [l_a, u_a], where the
//! clamp holds a). `easy_margin` (default true, the official `MagLinear`) applies the margin only
//! where cos θ_y > 0; without it, where θ_y + m(a) > π the target is cos θ_y − m(a)·sin m(a).
//! Defaults are the official training script's: s = 64, l_a = 10, u_a = 110, l_m = 0.45,
//! u_m = 0.8, λ_g = 35.

use super::params::{any, non_negative, positive, Default, ParamKind, ParamSpec};
use super::{clamp_cos, cross_entropy, with_target, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput};
use std::f64::consts::{FRAC_PI_2, PI};

const fn float(name: &'static str, default: f64, help: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Float, default: Default::Float(default), check: positive, help }
}

pub const ENTRY: LossEntry = LossEntry {
    name: "magface",
    summary: "MagFace: s·cos(θ_y + m(‖x‖)) + λ_g·(‖x‖/u_a² + 1/‖x‖) (Meng et al. 2021)",
    params: &[
        float("s", 64.0, "logit scale s"),
        float("l_a", 10.0, "lower bound of the magnitude a = ‖x‖"),
        float("u_a", 110.0, "upper bound of the magnitude"),
        float("l_margin", 0.45, "margin at a = l_a (radians)"),
        float("u_margin", 0.8, "margin at a = u_a (radians)"),
        ParamSpec {
            name: "lambda_g",
            kind: ParamKind::Float,
            default: Default::Float(35.0),
            check: non_negative,
            help: "weight λ_g of the magnitude regulariser",
        },
        ParamSpec {
            name: "easy_margin",
            kind: ParamKind::Bool,
            default: Default::Bool(true),
            check: any,
            help: "apply the margin only where cos θ_y > 0",
        },
    ],
    validate,
    build,
};

fn validate(c: &LossConfig) -> Result<(), String> {
    if c.f64("l_a") >= c.f64("u_a") {
        return Err(format!("l_a ({}) must be below u_a ({})", c.f64("l_a"), c.f64("u_a")));
    }
    for key in ["l_margin", "u_margin"] {
        if c.f64(key) >= FRAC_PI_2 {
            return Err(format!("{key} ({}) must be an angle below π/2", c.f64(key)));
        }
    }
    Ok(())
}

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(MagFace {
        s: c.f64("s"),
        l_a: c.f64("l_a"),
        u_a: c.f64("u_a"),
        l_margin: c.f64("l_margin"),
        u_margin: c.f64("u_margin"),
        lambda_g: c.f64("lambda_g"),
        easy_margin: c.bool("easy_margin"),
    })
}

pub struct MagFace {
    pub s: f64,
    pub l_a: f64,
    pub u_a: f64,
    pub l_margin: f64,
    pub u_margin: f64,
    pub lambda_g: f64,
    pub easy_margin: bool,
}

impl Loss for MagFace {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let a = b.feat_norm.clamp(self.l_a, self.u_a);
        let margin = (&a - self.l_a) * ((self.u_margin - self.l_margin) / (self.u_a - self.l_a)) + self.l_margin;
        let cos_y = b.target_cos();
        let c = clamp_cos(&cos_y);
        let shifted = &c * margin.cos() - (c.square().neg() + 1.0).sqrt() * margin.sin();
        let target = if self.easy_margin {
            shifted.where_self(&cos_y.gt(0.0), &cos_y)
        } else {
            let threshold = (margin.neg() + PI).cos();
            let fallback = &cos_y - (margin.neg() + PI).sin() * &margin;
            shifted.where_self(&cos_y.gt_tensor(&threshold), &fallback)
        };
        let logits = with_target(b.cos, &target, b.labels) * self.s;
        let kind = b.cos.kind();
        let regulariser = (&a / (self.u_a * self.u_a) + a.reciprocal()).mean(kind);
        let loss = cross_entropy(&logits, b.labels) + regulariser * self.lambda_g;
        LossOutput { loss, scale: self.s, plain_logits: None, logits: Some(logits) }
    }
}
