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
    /// The θ_y and g_y means over the clean and the noisy samples of the batch; `None` where
    /// the batch has no such sample (always for `_noisy` without label noise).
    pub theta_y_deg_mean_clean: Option<f64>,
    pub theta_y_deg_mean_noisy: Option<f64>,
    pub coef_y_mean_clean: Option<f64>,
    pub coef_y_mean_noisy: Option<f64>,
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
        .chain(
            [self.theta_y_deg_mean_clean, self.theta_y_deg_mean_noisy, self.coef_y_mean_clean, self.coef_y_mean_noisy]
                .iter()
                .flatten(),
        )
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
        theta_y_deg_mean_clean: masked_mean(&theta_y, &clean),
        theta_y_deg_mean_noisy: masked_mean(&theta_y, &noisy),
        coef_y_mean_clean: masked_mean(&g_y, &clean).map(|v| v * b),
        coef_y_mean_noisy: masked_mean(&g_y, &noisy).map(|v| v * b),
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
    let opt = |get: fn(&StepRow) -> Option<f64>| rows.iter().map(get).collect::<Vec<Option<f64>>>();
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
            Column::new("theta_y_deg_mean_clean".into(), opt(|r| r.theta_y_deg_mean_clean)),
            Column::new("theta_y_deg_mean_noisy".into(), opt(|r| r.theta_y_deg_mean_noisy)),
            Column::new("coef_y_mean_clean".into(), opt(|r| r.coef_y_mean_clean)),
            Column::new("coef_y_mean_noisy".into(), opt(|r| r.coef_y_mean_noisy)),
        ],
    )
}

/// Reads rows back from a steps frame written by [`steps_frame`] (for resuming a trial).
pub fn steps_from_frame(df: &DataFrame) -> PolarsResult<Vec<StepRow>> {
    let f = |name: &str| -> PolarsResult<Vec<f64>> { Ok(df.column(name)?.f64()?.into_no_null_iter().collect()) };
    let o = |name: &str| -> PolarsResult<Vec<Option<f64>>> {
        let c = df.column(name)?.f64()?;
        Ok((0..c.len()).map(|i| c.get(i)).collect())
    };
    let i = |name: &str| -> PolarsResult<Vec<i64>> { Ok(df.column(name)?.i64()?.into_no_null_iter().collect()) };
    let (step, epoch) = (i("step")?, i("epoch")?);
    let cols: Vec<Vec<f64>> = [
        "lr",
        "loss",
        "train_acc",
        "theta_y_deg_mean",
        "theta_y_deg_p50",
        "theta_other_deg_mean",
        "cos_y_mean",
        "coef_y_mean",
        "coef_other_sum_mean",
        "grad_norm_feat_mean",
        "grad_norm_class_weights",
        "grad_norm_backbone",
        "feat_norm_mean",
        "scale",
        "step_seconds",
    ]
    .iter()
    .map(|n| f(n))
    .collect::<PolarsResult<_>>()?;
    let opts: Vec<Vec<Option<f64>>> =
        ["theta_y_deg_mean_clean", "theta_y_deg_mean_noisy", "coef_y_mean_clean", "coef_y_mean_noisy"]
            .iter()
            .map(|n| o(n))
            .collect::<PolarsResult<_>>()?;
    Ok((0..df.height())
        .map(|k| StepRow {
            step: step[k],
            epoch: epoch[k],
            lr: cols[0][k],
            loss: cols[1][k],
            train_acc: cols[2][k],
            theta_y_deg_mean: cols[3][k],
            theta_y_deg_p50: cols[4][k],
            theta_other_deg_mean: cols[5][k],
            cos_y_mean: cols[6][k],
            coef_y_mean: cols[7][k],
            coef_other_sum_mean: cols[8][k],
            grad_norm_feat_mean: cols[9][k],
            grad_norm_class_weights: cols[10][k],
            grad_norm_backbone: cols[11][k],
            feat_norm_mean: cols[12][k],
            scale: cols[13][k],
            step_seconds: cols[14][k],
            theta_y_deg_mean_clean: opts[0][k],
            theta_y_deg_mean_noisy: opts[1][k],
            coef_y_mean_clean: opts[2][k],
            coef_y_mean_noisy: opts[3][k],
        })
        .collect())
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

/// Reads rows back from an evals frame written by [`evals_frame`] (for resuming a trial).
pub fn evals_from_frame(df: &DataFrame) -> PolarsResult<Vec<EvalRow>> {
    let text = |name: &str| -> PolarsResult<Vec<String>> {
        let c = df.column(name)?.str()?;
        Ok((0..c.len()).map(|i| c.get(i).unwrap_or_default().to_string()).collect())
    };
    let step: Vec<i64> = df.column("step")?.i64()?.into_no_null_iter().collect();
    let value: Vec<f64> = df.column("value")?.f64()?.into_no_null_iter().collect();
    let (protocol, variant, metric) = (text("protocol")?, text("variant")?, text("metric")?);
    Ok((0..df.height())
        .map(|k| EvalRow {
            step: step[k],
            protocol: protocol[k].clone(),
            variant: variant[k].clone(),
            metric: metric[k].clone(),
            value: value[k],
        })
        .collect())
}

/// Width of the θ_y histogram bins in angles.parquet, degrees.
pub const ANGLE_BIN_DEG: f64 = 2.0;

/// One bin of a θ_y histogram (angles.parquet): at `step`, over the training-image sample
/// `samples` ("all", or "clean"/"noisy" under label noise).
#[derive(Debug, Clone, PartialEq)]
pub struct AngleRow {
    pub step: i64,
    pub samples: String,
    pub bin_lo_deg: f64,
    pub bin_hi_deg: f64,
    pub count: i64,
}

/// Histogram rows of target angles `theta_deg` (degrees) in [`ANGLE_BIN_DEG`] bins over 0..180.
pub fn angle_histogram(step: i64, samples: &str, theta_deg: &[f64]) -> Vec<AngleRow> {
    let bins = (180.0 / ANGLE_BIN_DEG) as usize;
    let mut counts = vec![0i64; bins];
    for &t in theta_deg {
        counts[((t / ANGLE_BIN_DEG) as usize).min(bins - 1)] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(b, count)| AngleRow {
            step,
            samples: samples.to_string(),
            bin_lo_deg: b as f64 * ANGLE_BIN_DEG,
            bin_hi_deg: (b + 1) as f64 * ANGLE_BIN_DEG,
            count,
        })
        .collect()
}

/// The angles.parquet frame for one trial.
pub fn angles_frame(trial: &str, rows: &[AngleRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Column::new("trial".into(), vec![trial; n]),
            Column::new("step".into(), rows.iter().map(|r| r.step).collect::<Vec<i64>>()),
            Column::new("samples".into(), rows.iter().map(|r| r.samples.as_str()).collect::<Vec<&str>>()),
            Column::new("bin_lo_deg".into(), rows.iter().map(|r| r.bin_lo_deg).collect::<Vec<f64>>()),
            Column::new("bin_hi_deg".into(), rows.iter().map(|r| r.bin_hi_deg).collect::<Vec<f64>>()),
            Column::new("count".into(), rows.iter().map(|r| r.count).collect::<Vec<i64>>()),
        ],
    )
}

/// Reads rows back from an angles frame written by [`angles_frame`] (for resuming a trial).
pub fn angles_from_frame(df: &DataFrame) -> PolarsResult<Vec<AngleRow>> {
    let samples = df.column("samples")?.str()?;
    let step: Vec<i64> = df.column("step")?.i64()?.into_no_null_iter().collect();
    let lo: Vec<f64> = df.column("bin_lo_deg")?.f64()?.into_no_null_iter().collect();
    let hi: Vec<f64> = df.column("bin_hi_deg")?.f64()?.into_no_null_iter().collect();
    let count: Vec<i64> = df.column("count")?.i64()?.into_no_null_iter().collect();
    Ok((0..df.height())
        .map(|k| AngleRow {
            step: step[k],
            samples: samples.get(k).unwrap_or_default().to_string(),
            bin_lo_deg: lo[k],
            bin_hi_deg: hi[k],
            count: count[k],
        })
        .collect())
}
