//! Telemetry: one [`StepRow`] per logged step (the steps.parquet columns of DESIGN.md), computed
//! from the cosine matrix, ∂L/∂cos (read with `run_backward`), ∂L/∂x and the parameter gradients.
//! Coefficients and feature-gradient norms are per sample (the batch-mean gradient × B).

use polars::prelude::*;
use tch::{Kind, Tensor};

/// One row of steps.parquet.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub step: i64,
    pub epoch: i64,
    pub lr: f64,
    pub loss: f64,
    pub train_acc: f64,
    pub theta_y_deg_mean: f64,
    pub theta_y_deg_p50: f64,
    pub theta_other_deg_mean: f64,
    pub cos_y_mean: f64,
    pub coef_y_mean: f64,
    pub coef_other_sum_mean: f64,
    pub grad_norm_feat_mean: f64,
    pub grad_norm_class_weights: f64,
    pub grad_norm_backbone: f64,
    pub feat_norm_mean: f64,
    pub scale: f64,
    pub step_seconds: f64,
}

impl StepRow {
    /// Every value but the wall-clock one is finite.
    pub fn is_finite(&self) -> bool {
        [
            self.loss,
            self.train_acc,
            self.theta_y_deg_mean,
            self.theta_y_deg_p50,
            self.theta_other_deg_mean,
            self.cos_y_mean,
            self.coef_y_mean,
            self.coef_other_sum_mean,
            self.grad_norm_feat_mean,
            self.grad_norm_class_weights,
            self.grad_norm_backbone,
            self.feat_norm_mean,
            self.scale,
        ]
        .iter()
        .all(|v| v.is_finite())
    }
}

/// The tensors of one step that the statistics are read from (all detached or gradients).
pub struct StepTensors<'a> {
    pub cos: &'a Tensor,
    pub labels: &'a Tensor,
    pub logits_for_acc: &'a Tensor,
    pub grad_cos: &'a Tensor,
    pub grad_feat: &'a Tensor,
    pub feat_norm: &'a Tensor,
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
    StepRow {
        step: 0,
        epoch: 0,
        lr: 0.0,
        loss: 0.0,
        train_acc: scalar(&correct.mean(Kind::Double)),
        theta_y_deg_mean: scalar(&theta_y.mean(Kind::Double)),
        theta_y_deg_p50: scalar(&theta_y.quantile_scalar(0.5, None::<i64>, false, "linear")),
        theta_other_deg_mean: if c > 1.0 { scalar(&theta_sum_other) / (b * (c - 1.0)) } else { 0.0 },
        cos_y_mean: scalar(&cos.gather(1, &labels, false).mean(Kind::Double)),
        coef_y_mean: scalar(&g_y.mean(Kind::Double)) * b,
        coef_other_sum_mean: scalar(&g_other.mean(Kind::Double)) * b,
        grad_norm_feat_mean: scalar(&feat_grad_norms.mean(Kind::Double)) * b,
        grad_norm_class_weights: 0.0,
        grad_norm_backbone: 0.0,
        feat_norm_mean: scalar(&t.feat_norm.to_kind(Kind::Double).mean(Kind::Double)),
        scale: 0.0,
        step_seconds: 0.0,
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

/// The steps.parquet frame for one trial.
pub fn steps_frame(trial: &str, rows: &[StepRow]) -> PolarsResult<DataFrame> {
    let f = |get: fn(&StepRow) -> f64| rows.iter().map(get).collect::<Vec<f64>>();
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Column::new("trial".into(), vec![trial; n]),
            Column::new("step".into(), rows.iter().map(|r| r.step).collect::<Vec<i64>>()),
            Column::new("epoch".into(), rows.iter().map(|r| r.epoch).collect::<Vec<i64>>()),
            Column::new("lr".into(), f(|r| r.lr)),
            Column::new("loss".into(), f(|r| r.loss)),
            Column::new("train_acc".into(), f(|r| r.train_acc)),
            Column::new("theta_y_deg_mean".into(), f(|r| r.theta_y_deg_mean)),
            Column::new("theta_y_deg_p50".into(), f(|r| r.theta_y_deg_p50)),
            Column::new("theta_other_deg_mean".into(), f(|r| r.theta_other_deg_mean)),
            Column::new("cos_y_mean".into(), f(|r| r.cos_y_mean)),
            Column::new("coef_y_mean".into(), f(|r| r.coef_y_mean)),
            Column::new("coef_other_sum_mean".into(), f(|r| r.coef_other_sum_mean)),
            Column::new("grad_norm_feat_mean".into(), f(|r| r.grad_norm_feat_mean)),
            Column::new("grad_norm_class_weights".into(), f(|r| r.grad_norm_class_weights)),
            Column::new("grad_norm_backbone".into(), f(|r| r.grad_norm_backbone)),
            Column::new("feat_norm_mean".into(), f(|r| r.feat_norm_mean)),
            Column::new("scale".into(), f(|r| r.scale)),
            Column::new("step_seconds".into(), f(|r| r.step_seconds)),
        ],
    )
}

/// One row of evals.parquet.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRow {
    pub step: i64,
    pub protocol: String,
    pub variant: String,
    pub metric: String,
    pub value: f64,
}

/// The evals.parquet frame for one trial.
pub fn evals_frame(trial: &str, rows: &[EvalRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Column::new("trial".into(), vec![trial; n]),
            Column::new("step".into(), rows.iter().map(|r| r.step).collect::<Vec<i64>>()),
            Column::new("protocol".into(), rows.iter().map(|r| r.protocol.as_str()).collect::<Vec<&str>>()),
            Column::new("variant".into(), rows.iter().map(|r| r.variant.as_str()).collect::<Vec<&str>>()),
            Column::new("metric".into(), rows.iter().map(|r| r.metric.as_str()).collect::<Vec<&str>>()),
            Column::new("value".into(), rows.iter().map(|r| r.value).collect::<Vec<f64>>()),
        ],
    )
}
