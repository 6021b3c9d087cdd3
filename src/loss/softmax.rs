//! Plain softmax: logits W_jᵀx + b_j, written as ‖x‖·‖W_j‖·cos θ_ij + b_j so that ∂L/∂cos
//! is defined and the telemetry reads the same way as for the cosine losses.

use super::params::no_constraints;
use super::{cross_entropy, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput};

pub const ENTRY: LossEntry = LossEntry {
    name: "softmax",
    summary: "plain FC softmax cross-entropy, logits W_j·x + b_j",
    params: &[],
    validate: no_constraints,
    build,
};

fn build(_: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(Softmax)
}

pub struct Softmax;

impl Loss for Softmax {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let scaled = b.cos * b.feat_norm * b.weight_norm;
        let logits = match b.bias {
            Some(bias) => scaled + bias,
            None => scaled,
        };
        LossOutput {
            loss: cross_entropy(&logits, b.labels),
            scale: 1.0,
            plain_logits: Some(logits.shallow_clone()),
            logits: Some(logits),
        }
    }

    fn uses_bias(&self) -> bool {
        true
    }
}
