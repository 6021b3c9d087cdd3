//! CosFace / AM-softmax (Wang et al. 2018): target logit s·(cos θ_y − m), others s·cos θ_j.

use super::params::{no_constraints, non_negative, Default, ParamKind, ParamSpec, SCALE_64};
use super::{softmax_output, with_target, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput};

pub const ENTRY: LossEntry = LossEntry {
    name: "cosface",
    summary: "CosFace / AM-softmax: s·(cos θ_y − m) (Wang et al. 2018)",
    params: &[
        SCALE_64,
        ParamSpec {
            name: "m",
            kind: ParamKind::Float,
            default: Default::Float(0.35),
            check: non_negative,
            help: "additive cosine margin m",
        },
    ],
    validate: no_constraints,
    build,
};

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(CosFace { s: c.f64("s"), m: c.f64("m") })
}

pub struct CosFace {
    pub s: f64,
    pub m: f64,
}

impl Loss for CosFace {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let target = b.target_cos() - self.m;
        let logits = with_target(b.cos, &target, b.labels) * self.s;
        softmax_output(logits, b.labels, self.s)
    }
}
