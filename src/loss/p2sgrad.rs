//! P2SGrad (Zhang et al., CVPR 2019): the gradient g_ij = cos θ_ij − 1[j = y_i], obtained by
//! autograd on the surrogate ½ Σ_j (cos θ_ij − 1[j = y_i])². No scale, no margin.
//!
//! `reduction = "paper"` (default) sums over classes and averages over the batch;
//! `"mse-mean"` averages over batch and classes of (cos − 1[j=y])², as public PyTorch ports
//! that use `MSELoss()` do (gradient 2/C times the paper's).

use super::params::{any, no_constraints, Default, ParamKind, ParamSpec};
use super::{CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput};

pub const ENTRY: LossEntry = LossEntry {
    name: "p2sgrad",
    summary: "P2SGrad: gradient cos θ_ij − 1[j=y] via ½Σ_j(cos θ_ij − 1[j=y])² (Zhang et al. 2019)",
    params: &[ParamSpec {
        name: "reduction",
        kind: ParamKind::Choice(&["paper", "mse-mean"]),
        default: Default::Str("paper"),
        check: any,
        help: "paper: sum over classes, mean over batch; mse-mean: mean over both (PyTorch ports)",
    }],
    validate: no_constraints,
    build,
};

fn build(c: &LossConfig, _: &LossContext) -> Box<dyn Loss> {
    Box::new(P2SGrad { mse_mean: c.str("reduction") == "mse-mean" })
}

pub struct P2SGrad {
    pub mse_mean: bool,
}

impl Loss for P2SGrad {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        let residual = b.cos - b.one_hot();
        let kind = b.cos.kind();
        let loss = if self.mse_mean {
            residual.square().mean(kind)
        } else {
            residual.square().sum_dim_intlist(1, false, kind).mean(kind) * 0.5
        };
        LossOutput { loss, scale: 1.0, plain_logits: None, logits: None }
    }
}
