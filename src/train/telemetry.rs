//! Telemetry: one [`StepRow`] per logged step (the steps.parquet columns of DESIGN.md, defined in
//! [`crate::store::schema`]), computed from the cosine matrix, ∂L/∂cos (read with
//! `run_backward`), ∂L/∂x and the parameter gradients. Coefficients and feature-gradient norms
//! are per sample (the batch-mean gradient × B).

pub use crate::store::schema::{AngleRow, EvalRow, StepRow};
use tch::{Kind, Tensor};

/// The tensors of one step that the statistics are read from (all detached or gradients).
pub struct StepTensors<'a> {
    pub cos: &'a Tensor,
    pub labels: &'a Tensor,
    pub logits_for_acc: &'a Tensor,
    pub grad_cos: &'a Tensor,
    pub grad_feat: &'a Tensor,
    pub feat_norm: &'a Tensor,
    /// Which samples of the batch are noisy (bool [B]); `None` without label noise.
    pub noisy: Option<&'a Tensor>,
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// Angle, coefficient and feature statistics of a batch. Gradient norms, loss, lr, step and
/// timing are filled in by the caller.
pub fn batch_stats(t: &StepTensors) -> StepRow {
    let _guard = tch::no_grad_guard();
    let b = t.cos.size()[0] as f64;
    let c = t.cos.size()[1] as f64;
    let labels = t.labels.unsqueeze(1);
    let cos = t.cos.to_kind(Kind::Double);
    let theta = cos.clamp(-1.0, 1.0).acos() * (180.0 / std::f64::consts::PI);
    let theta_y = theta.gather(1, &labels, false).squeeze_dim(1);
    let theta_sum_other = theta.sum(Kind::Double) - theta_y.sum(Kind::Double);
    let g = t.grad_cos.to_kind(Kind::Double);
    let g_y = g.gather(1, &labels, false).squeeze_dim(1);
    let g_other = g.abs().sum_dim_intlist(1, false, Kind::Double) - g_y.abs();
    let feat_grad_norms = t.grad_feat.to_kind(Kind::Double).norm_scalaropt_dim(2, [1], false);
    let correct = t.logits_for_acc.argmax(1, false).eq_tensor(t.labels).to_kind(Kind::Double);
    let masked_mean = |values: &Tensor, mask: &Tensor| -> Option<f64> {
        let n = mask.sum(Kind::Int64).int64_value(&[]);
        (n > 0).then(|| scalar(&values.masked_select(mask).mean(Kind::Double)))
    };
    let (clean, noisy) = match t.noisy {
        Some(mask) => (mask.logical_not(), mask.shallow_clone()),
        None => (theta_y.ones_like().to_kind(Kind::Bool), theta_y.zeros_like().to_kind(Kind::Bool)),
    };
    StepRow {
        train_acc: scalar(&correct.mean(Kind::Double)),
        theta_y_deg_mean: scalar(&theta_y.mean(Kind::Double)),
        theta_y_deg_p50: scalar(&theta_y.quantile_scalar(0.5, None::<i64>, false, "linear")),
        theta_other_deg_mean: if c > 1.0 { scalar(&theta_sum_other) / (b * (c - 1.0)) } else { 0.0 },
        cos_y_mean: scalar(&cos.gather(1, &labels, false).mean(Kind::Double)),
        coef_y_mean: scalar(&g_y.mean(Kind::Double)) * b,
        coef_other_sum_mean: scalar(&g_other.mean(Kind::Double)) * b,
        grad_norm_feat_mean: scalar(&feat_grad_norms.mean(Kind::Double)) * b,
        feat_norm_mean: scalar(&t.feat_norm.to_kind(Kind::Double).mean(Kind::Double)),
        theta_y_deg_mean_clean: masked_mean(&theta_y, &clean),
        theta_y_deg_mean_noisy: masked_mean(&theta_y, &noisy),
        coef_y_mean_clean: masked_mean(&g_y, &clean).map(|v| v * b),
        coef_y_mean_noisy: masked_mean(&g_y, &noisy).map(|v| v * b),
        ..StepRow::default()
    }
}

/// √(Σ ‖grad‖²) over the tensors' gradients (undefined gradients count as zero).
pub fn grad_norm(params: &[Tensor]) -> f64 {
    let _guard = tch::no_grad_guard();
    params
        .iter()
        .map(|p| p.grad())
        .filter(|g| g.defined())
        .map(|g| g.to_kind(Kind::Double).square().sum(Kind::Double).double_value(&[]))
        .sum::<f64>()
        .sqrt()
}
