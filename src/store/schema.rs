//! The schema of the per-trial parquet files, defined once: [`StepRow`] and the column table
//! [`STEP_COLUMNS`] that drives steps.parquet's writer, reader and finiteness check (and the
//! tests), plus [`EvalRow`] (evals.parquet) and [`AngleRow`] (angles.parquet). Rows are plain
//! numbers: what computes them from tensors is `train::telemetry`.

use polars::prelude::*;

/// One row of steps.parquet (DESIGN.md's telemetry columns; see [`STEP_COLUMNS`]).
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// The class centres the step's loss was over (all C without Partial FC), and how many of
    /// them are classes of the batch.
    pub sampled_classes: i64,
    pub sampled_positives: i64,
}

/// How a steps.parquet column reads and writes its [`StepRow`] field.
#[derive(Clone, Copy)]
pub enum Field {
    Int(fn(&StepRow) -> i64, fn(&mut StepRow, i64)),
    Float(fn(&StepRow) -> f64, fn(&mut StepRow, f64)),
    /// Null where the row has no value.
    Optional(fn(&StepRow) -> Option<f64>, fn(&mut StepRow, Option<f64>)),
}

/// The wall-clock column: the one value allowed to differ between identical runs, and not
/// checked for finiteness.
pub const WALL_CLOCK_COLUMN: &str = "step_seconds";

/// steps.parquet's columns after `trial`, in file order.
pub const STEP_COLUMNS: &[(&str, Field)] = &[
    ("step", Field::Int(|r| r.step, |r, v| r.step = v)),
    ("epoch", Field::Int(|r| r.epoch, |r, v| r.epoch = v)),
    ("lr", Field::Float(|r| r.lr, |r, v| r.lr = v)),
    ("loss", Field::Float(|r| r.loss, |r, v| r.loss = v)),
    ("train_acc", Field::Float(|r| r.train_acc, |r, v| r.train_acc = v)),
    ("theta_y_deg_mean", Field::Float(|r| r.theta_y_deg_mean, |r, v| r.theta_y_deg_mean = v)),
    ("theta_y_deg_p50", Field::Float(|r| r.theta_y_deg_p50, |r, v| r.theta_y_deg_p50 = v)),
    ("theta_other_deg_mean", Field::Float(|r| r.theta_other_deg_mean, |r, v| r.theta_other_deg_mean = v)),
    ("cos_y_mean", Field::Float(|r| r.cos_y_mean, |r, v| r.cos_y_mean = v)),
    ("coef_y_mean", Field::Float(|r| r.coef_y_mean, |r, v| r.coef_y_mean = v)),
    ("coef_other_sum_mean", Field::Float(|r| r.coef_other_sum_mean, |r, v| r.coef_other_sum_mean = v)),
    ("grad_norm_feat_mean", Field::Float(|r| r.grad_norm_feat_mean, |r, v| r.grad_norm_feat_mean = v)),
    ("grad_norm_class_weights", Field::Float(|r| r.grad_norm_class_weights, |r, v| r.grad_norm_class_weights = v)),
    ("grad_norm_backbone", Field::Float(|r| r.grad_norm_backbone, |r, v| r.grad_norm_backbone = v)),
    ("feat_norm_mean", Field::Float(|r| r.feat_norm_mean, |r, v| r.feat_norm_mean = v)),
    ("scale", Field::Float(|r| r.scale, |r, v| r.scale = v)),
    (WALL_CLOCK_COLUMN, Field::Float(|r| r.step_seconds, |r, v| r.step_seconds = v)),
    ("theta_y_deg_mean_clean", Field::Optional(|r| r.theta_y_deg_mean_clean, |r, v| r.theta_y_deg_mean_clean = v)),
    ("theta_y_deg_mean_noisy", Field::Optional(|r| r.theta_y_deg_mean_noisy, |r, v| r.theta_y_deg_mean_noisy = v)),
    ("coef_y_mean_clean", Field::Optional(|r| r.coef_y_mean_clean, |r, v| r.coef_y_mean_clean = v)),
    ("coef_y_mean_noisy", Field::Optional(|r| r.coef_y_mean_noisy, |r, v| r.coef_y_mean_noisy = v)),
    ("sampled_classes", Field::Int(|r| r.sampled_classes, |r, v| r.sampled_classes = v)),
    ("sampled_positives", Field::Int(|r| r.sampled_positives, |r, v| r.sampled_positives = v)),
];

/// Columns added after results directories were first written: a steps.parquet (or a
/// checkpoint's rows) without them reads as 0.
const LATER_COLUMNS: &[&str] = &["sampled_classes", "sampled_positives"];

impl StepRow {
    /// Every value but the wall-clock one is finite (absent optional values are fine).
    pub fn is_finite(&self) -> bool {
        STEP_COLUMNS.iter().filter(|(name, _)| *name != WALL_CLOCK_COLUMN).all(|(_, field)| match field {
            Field::Int(..) => true,
            Field::Float(get, _) => get(self).is_finite(),
            Field::Optional(get, _) => get(self).is_none_or(f64::is_finite),
        })
    }
}

/// The steps.parquet frame for one trial: `trial`, then [`STEP_COLUMNS`].
pub fn steps_frame(trial: &str, rows: &[StepRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    let mut columns = vec![Column::new("trial".into(), vec![trial; n])];
    for (name, field) in STEP_COLUMNS {
        let name = PlSmallStr::from_static(name);
        columns.push(match field {
            Field::Int(get, _) => Column::new(name, rows.iter().map(get).collect::<Vec<i64>>()),
            Field::Float(get, _) => Column::new(name, rows.iter().map(get).collect::<Vec<f64>>()),
            Field::Optional(get, _) => Column::new(name, rows.iter().map(get).collect::<Vec<Option<f64>>>()),
        });
    }
    DataFrame::new(columns)
}

/// Reads rows back from a frame written by [`steps_frame`] (for resuming a trial).
pub fn steps_from_frame(df: &DataFrame) -> PolarsResult<Vec<StepRow>> {
    let mut rows = vec![StepRow::default(); df.height()];
    for (name, field) in STEP_COLUMNS {
        if LATER_COLUMNS.contains(name) && df.column(name).is_err() {
            continue;
        }
        let column = df.column(name)?;
        match field {
            Field::Int(_, set) => {
                let values = column.i64()?;
                for (i, row) in rows.iter_mut().enumerate() {
                    set(row, values.get(i).unwrap_or_default());
                }
            }
            Field::Float(_, set) => {
                let values = column.f64()?;
                for (i, row) in rows.iter_mut().enumerate() {
                    set(row, values.get(i).unwrap_or(f64::NAN));
                }
            }
            Field::Optional(_, set) => {
                let values = column.f64()?;
                for (i, row) in rows.iter_mut().enumerate() {
                    set(row, values.get(i));
                }
            }
        }
    }
    Ok(rows)
}

/// One row of evals.parquet: a metric's value at a step, with what it rests on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvalRow {
    pub step: i64,
    pub protocol: String,
    pub variant: String,
    pub metric: String,
    pub value: f64,
    /// The 95 % bootstrap interval (`ci_lo`, `ci_hi`) and what was resampled (`ci_unit`).
    pub ci_lo: Option<f64>,
    pub ci_hi: Option<f64>,
    pub ci_unit: Option<String>,
    /// Impostor comparisons (or non-mated searches) behind a rate at a false-positive rate, and
    /// whether they resolve it (at least 1/rate of them).
    pub comparisons: Option<i64>,
    pub resolvable: Option<bool>,
    /// The bootstrap replicates: kept in bootstrap.parquet for the last evaluated step only.
    pub replicates: Vec<f32>,
}

/// The evals.parquet frame for one trial.
pub fn evals_frame(trial: &str, rows: &[EvalRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(vec![
        Column::new("trial".into(), vec![trial; n]),
        Column::new("step".into(), rows.iter().map(|r| r.step).collect::<Vec<i64>>()),
        Column::new("protocol".into(), rows.iter().map(|r| r.protocol.as_str()).collect::<Vec<&str>>()),
        Column::new("variant".into(), rows.iter().map(|r| r.variant.as_str()).collect::<Vec<&str>>()),
        Column::new("metric".into(), rows.iter().map(|r| r.metric.as_str()).collect::<Vec<&str>>()),
        Column::new("value".into(), rows.iter().map(|r| r.value).collect::<Vec<f64>>()),
        Column::new("ci_lo".into(), rows.iter().map(|r| r.ci_lo).collect::<Vec<Option<f64>>>()),
        Column::new("ci_hi".into(), rows.iter().map(|r| r.ci_hi).collect::<Vec<Option<f64>>>()),
        Column::new("ci_unit".into(), rows.iter().map(|r| r.ci_unit.as_deref()).collect::<Vec<Option<&str>>>()),
        Column::new("comparisons".into(), rows.iter().map(|r| r.comparisons).collect::<Vec<Option<i64>>>()),
        Column::new("resolvable".into(), rows.iter().map(|r| r.resolvable).collect::<Vec<Option<bool>>>()),
    ])
}

/// Reads rows back from an evals frame written by [`evals_frame`] (for resuming a trial); the
/// uncertainty columns are optional (frames written before they existed). Replicates come from
/// bootstrap.parquet ([`attach_replicates`]).
pub fn evals_from_frame(df: &DataFrame) -> PolarsResult<Vec<EvalRow>> {
    let text = |name: &str| -> PolarsResult<Vec<Option<String>>> {
        let c = df.column(name)?.str()?;
        Ok((0..c.len()).map(|i| c.get(i).map(str::to_string)).collect())
    };
    let has = |name: &str| df.get_column_names().iter().any(|c| c.as_str() == name);
    let floats = |name: &str| -> PolarsResult<Vec<Option<f64>>> {
        if !has(name) {
            return Ok(vec![None; df.height()]);
        }
        Ok(df.column(name)?.f64()?.into_iter().collect())
    };
    let step: Vec<i64> = df.column("step")?.i64()?.into_no_null_iter().collect();
    let value: Vec<f64> = df.column("value")?.f64()?.into_no_null_iter().collect();
    let (protocol, variant, metric) = (text("protocol")?, text("variant")?, text("metric")?);
    let (lo, hi) = (floats("ci_lo")?, floats("ci_hi")?);
    let unit = if has("ci_unit") { text("ci_unit")? } else { vec![None; df.height()] };
    let comparisons: Vec<Option<i64>> = if has("comparisons") {
        df.column("comparisons")?.i64()?.into_iter().collect()
    } else {
        vec![None; df.height()]
    };
    let resolvable: Vec<Option<bool>> = if has("resolvable") {
        df.column("resolvable")?.bool()?.into_iter().collect()
    } else {
        vec![None; df.height()]
    };
    Ok((0..df.height())
        .map(|k| EvalRow {
            step: step[k],
            protocol: protocol[k].clone().unwrap_or_default(),
            variant: variant[k].clone().unwrap_or_default(),
            metric: metric[k].clone().unwrap_or_default(),
            value: value[k],
            ci_lo: lo[k],
            ci_hi: hi[k],
            ci_unit: unit[k].clone(),
            comparisons: comparisons[k],
            resolvable: resolvable[k],
            replicates: Vec::new(),
        })
        .collect())
}

/// The bootstrap.parquet frame for one trial: the replicates of the rows of the last step that
/// has any (`trial`, `step`, `protocol`, `variant`, `metric`, `replicates` as a list of f32).
pub fn bootstrap_frame(trial: &str, rows: &[EvalRow]) -> PolarsResult<DataFrame> {
    let last = rows.iter().filter(|r| !r.replicates.is_empty()).map(|r| r.step).max();
    let kept: Vec<&EvalRow> = rows.iter().filter(|r| Some(r.step) == last && !r.replicates.is_empty()).collect();
    let n = kept.len();
    let lists: Vec<Series> = kept.iter().map(|r| Series::new("".into(), r.replicates.as_slice())).collect();
    let replicates = if lists.is_empty() {
        Series::new_empty("replicates".into(), &DataType::List(Box::new(DataType::Float32)))
    } else {
        Series::new("replicates".into(), lists)
    };
    DataFrame::new(vec![
        Column::new("trial".into(), vec![trial; n]),
        Column::new("step".into(), kept.iter().map(|r| r.step).collect::<Vec<i64>>()),
        Column::new("protocol".into(), kept.iter().map(|r| r.protocol.as_str()).collect::<Vec<&str>>()),
        Column::new("variant".into(), kept.iter().map(|r| r.variant.as_str()).collect::<Vec<&str>>()),
        Column::new("metric".into(), kept.iter().map(|r| r.metric.as_str()).collect::<Vec<&str>>()),
        replicates.into(),
    ])
}

/// Puts the replicates of a frame written by [`bootstrap_frame`] back on their rows.
pub fn attach_replicates(rows: &mut [EvalRow], df: &DataFrame) -> PolarsResult<()> {
    if df.height() == 0 {
        return Ok(());
    }
    let step = df.column("step")?.i64()?;
    let (protocol, variant, metric) =
        (df.column("protocol")?.str()?, df.column("variant")?.str()?, df.column("metric")?.str()?);
    let lists = df.column("replicates")?.list()?;
    for k in 0..df.height() {
        let key = (step.get(k), protocol.get(k), variant.get(k), metric.get(k));
        let Some(row) = rows.iter_mut().find(|r| {
            (Some(r.step), Some(r.protocol.as_str()), Some(r.variant.as_str()), Some(r.metric.as_str())) == key
        }) else {
            continue;
        };
        if let Some(list) = lists.get_as_series(k) {
            row.replicates = list.f32()?.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect();
        }
    }
    Ok(())
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
    DataFrame::new(vec![
        Column::new("trial".into(), vec![trial; n]),
        Column::new("step".into(), rows.iter().map(|r| r.step).collect::<Vec<i64>>()),
        Column::new("samples".into(), rows.iter().map(|r| r.samples.as_str()).collect::<Vec<&str>>()),
        Column::new("bin_lo_deg".into(), rows.iter().map(|r| r.bin_lo_deg).collect::<Vec<f64>>()),
        Column::new("bin_hi_deg".into(), rows.iter().map(|r| r.bin_hi_deg).collect::<Vec<f64>>()),
        Column::new("count".into(), rows.iter().map(|r| r.count).collect::<Vec<i64>>()),
    ])
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
