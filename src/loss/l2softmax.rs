//! L2-softmax (Ranjan et al. 2017): features L2-normalised and scaled by α, class weights
//! left free: logits W_jᵀ(α·x̂) + b_j = α·‖W_j‖·cos θ_ij + b_j.

use super::params::{no_constraints, positive, Default, ParamKind, ParamSpec};
use super::{cross_entropy, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput};

pub const ENTRY: LossEntry = LossEntry {
    name: "l2softmax",
    summary: "L2-softmax: W_j·(α·x/‖x‖) + b_j (Ranjan et al. 2017)",
    params: &[ParamSpec {
        name: "alpha",
        kind: ParamKind::Float,
        default: Default::Float(16.0),
        check: positive,
        help: "feature scale α",
    }],
    validate: no_constraints,
    build,
};

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(L2Softmax { alpha: c.f64("alpha") })
}

pub struct L2Softmax {
    pub alpha: f64,
}

impl Loss for L2Softmax {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let scaled = b.cos * b.weight_norm * self.alpha;
        let logits = match b.bias {
            Some(bias) => scaled + bias,
            None => scaled,
        };
        LossOutput {
            loss: cross_entropy(&logits, b.labels),
            scale: self.alpha,
            plain_logits: Some(logits.shallow_clone()),
            logits: Some(logits),
        }
    }

    fn uses_bias(&self) -> bool {
        true
    }
}
