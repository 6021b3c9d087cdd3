//! AdaCos (Zhang et al., CVPR 2019, arXiv 1905.00292): logits s·cos θ_j with no margin and no
//! hand-set scale.
//!
//! `mode = "fixed"`: s = √2·ln(C − 1). `mode = "dynamic"` (the paper's main method, default):
//! before each step's logits, without gradient,
//!
//!     B_avg = (1/B) Σ_i Σ_{j≠y_i} exp(s_{t−1}·cos θ_ij)
//!     s_t   = ln(B_avg) / cos(min(π/4, θ_med))       θ_med = median of the target angles θ_iy
//!
//! starting from s_0 = √2·ln(C − 1); the logits then use s_t (as the paper's Algorithm 1 and
//! the public PyTorch port do). The median of an even count is the lower middle value
//! (`torch.median`). `scale` in the telemetry is the s used for the step.

use super::params::{any, no_constraints, Default, ParamKind, ParamSpec};
use super::{clamp_cos, softmax_output, CosineBatch, Loss, LossConfig, LossContext, LossEntry, LossOutput};
use std::f64::consts::FRAC_PI_4;
use tch::Kind;

pub const ENTRY: LossEntry = LossEntry {
    name: "adacos",
    summary: "AdaCos: s·cos θ_j with s = √2·ln(C−1) (fixed) or adapted each step (dynamic) (Zhang et al. 2019)",
    params: &[ParamSpec {
        name: "mode",
        kind: ParamKind::Choice(&["dynamic", "fixed"]),
        default: Default::Str("dynamic"),
        check: any,
        help: "dynamic: s re-estimated from every batch; fixed: s = √2·ln(C−1)",
    }],
    validate: no_constraints,
    build,
};

fn build(c: &LossConfig, ctx: &LossContext) -> Box<dyn Loss> {
    Box::new(AdaCos { s: fixed_scale(ctx.num_classes), dynamic: c.str("mode") == "dynamic", frozen: false })
}

/// The fixed AdaCos scale √2·ln(C − 1).
pub fn fixed_scale(num_classes: i64) -> f64 {
    std::f64::consts::SQRT_2 * ((num_classes - 1) as f64).ln()
}

pub struct AdaCos {
    /// The scale in force (s_t once the step's update has run).
    pub s: f64,
    pub dynamic: bool,
    pub frozen: bool,
}

impl AdaCos {
    /// s_t from the batch and s_{t−1} = `self.s`, without gradient.
    fn updated_scale(&self, b: &CosineBatch) -> f64 {
        tch::no_grad(|| {
            let cos = b.cos.detach().to_kind(Kind::Double);
            let target = b.labels.one_hot(cos.size()[1]).to_kind(Kind::Bool);
            let batch = cos.size()[0] as f64;
            // ln B_avg = ln Σ_{i, j≠y} e^{s·cos} − ln B, summed stably.
            let log_b_avg =
                (&cos * self.s).masked_fill(&target, f64::NEG_INFINITY).logsumexp([0, 1], false) - batch.ln();
            let theta_med = clamp_cos(&b.target_cos().detach().to_kind(Kind::Double)).acos().median();
            let denominator = theta_med.clamp_max(FRAC_PI_4).cos();
            (log_b_avg / denominator).double_value(&[])
        })
    }
}

impl Loss for AdaCos {
    fn forward(&mut self, b: &CosineBatch) -> LossOutput {
        if self.dynamic && !self.frozen {
            self.s = self.updated_scale(b);
        }
        softmax_output(b.cos * self.s, b.labels, self.s)
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    fn state(&self) -> Vec<f64> {
        vec![self.s]
    }

    fn set_state(&mut self, state: &[f64]) {
        if let [s] = state {
            self.s = *s;
        }
    }
}
