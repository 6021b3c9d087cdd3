//! NormFace (Wang et al., ACM MM 2017, arXiv 1704.06369): features and class weights both
//! normalised, logits s·cos θ_j, no margin.
//!
//! The official prototxt (`scaled_cosine_softmax.prototxt`) learns s, starting from 10; here s is
//! a fixed hyper-parameter with that starting value as its default.

use super::params::{no_constraints, positive, Default, ParamKind, ParamSpec};
use super::{softmax_output, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput};

pub const ENTRY: LossEntry = LossEntry {
    name: "normface",
    summary: "NormFace: s·cos θ_j, no margin (Wang et al. 2017)",
    params: &[ParamSpec {
        name: "s",
        kind: ParamKind::Float,
        default: Default::Float(10.0),
        check: positive,
        help: "logit scale s (fixed; the paper's code learns it from 10)",
    }],
    validate: no_constraints,
    build,
};

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(NormFace { s: c.f64("s") })
}

pub struct NormFace {
    pub s: f64,
}

impl Loss for NormFace {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        softmax_output(b.cos * self.s, b.labels, self.s)
    }
}
