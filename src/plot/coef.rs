//! Empirical target coefficient g_y against the target angle θ_y, from telemetry: every logged
//! step of every seed of a loss's representative setting is one point (its batch means of θ_y
//! and g_y), with the analytic g_y(θ) of the same setting from [`crate::analysis`] drawn over
//! them.

use super::{Ctx, Rendered};
use crate::analysis::curves::CurveSpec;
use crate::figure::panel::{Draw, Panel, PanelFigure, Scale, Series};
use crate::figure::style::{loss_color, LegendEntry, Mark};
use crate::loss::LossConfig;
use crate::results::aggregate::Representative;
use crate::results::floats;
use anyhow::Result;
use plotters::style::RGBColor;
use polars::prelude::*;

/// Colour of the analytic curve.
const ANALYTIC: RGBColor = RGBColor(30, 30, 30);

/// The analytic target coefficient g_y(θ) of the loss setting `loss` with `classes` training
/// classes, at the angles `theta_deg` (degrees), per sample, from the loss-zoo analysis
/// ([`crate::analysis::curves`]: the loss's own implementation with autograd, non-target angles
/// at 90°, ‖x‖ = `feat_norm`). `None` without at least two classes.
pub fn analytic_coef(loss: &LossConfig, classes: Option<usize>, feat_norm: f64, theta_deg: &[f64]) -> Option<Vec<f64>> {
    let classes = i64::try_from(classes?).ok().filter(|&c| c >= 2)?;
    let spec = CurveSpec { loss: loss.clone(), classes };
    Some(crate::analysis::curves::compute(&spec, theta_deg, feat_norm).points.iter().map(|p| p.coef_target).collect())
}

/// (θ_y mean, g_y mean) of every logged step of a setting's trials.
fn points(ctx: &Ctx, rep: &Representative, theta: &str, coef: &str) -> Result<Vec<(f64, f64)>> {
    let Some(steps) = &ctx.r.steps else { return Ok(Vec::new()) };
    let names = steps.get_column_names();
    if !names.iter().any(|n| n.as_str() == theta) || !names.iter().any(|n| n.as_str() == coef) {
        return Ok(Vec::new());
    }
    let keys =
        ctx.r.trials.clone().lazy().select([col("trial"), col("setting"), col("noise_kind"), col("noise_ratio")]);
    let df = steps
        .clone()
        .lazy()
        .join(keys, [col("trial")], [col("trial")], JoinArgs::new(JoinType::Inner))
        .filter(
            col("setting")
                .eq(lit(rep.setting.as_str()))
                .and(col("noise_kind").eq(lit(rep.noise_kind.as_str())))
                .and(col("noise_ratio").eq(lit(rep.noise_ratio))),
        )
        .select([col(theta).cast(DataType::Float64), col(coef).cast(DataType::Float64)])
        .collect()?;
    let (t, g) = (floats(&df, theta)?, floats(&df, coef)?);
    Ok(t.into_iter()
        .zip(g)
        .filter_map(|(t, g)| Some((t?, g?)))
        .filter(|(t, g)| t.is_finite() && g.is_finite())
        .collect())
}

/// The mean ‖x‖ over a setting's logged steps (the analytic curves of softmax depend on it).
fn mean_feat_norm(ctx: &Ctx, rep: &Representative) -> Result<Option<f64>> {
    let Some(steps) = &ctx.steps else { return Ok(None) };
    let v = super::training::step_series(steps, &rep.setting, &rep.noise_kind, rep.noise_ratio, "feat_norm_mean")?;
    Ok((!v.is_empty()).then(|| v.iter().map(|p| p.1).sum::<f64>() / v.len() as f64))
}

/// The g_y against θ_y figure.
pub fn coef_vs_theta(ctx: &Ctx) -> Result<Rendered> {
    if ctx.r.steps.is_none() {
        return Ok(Err("no trial has a steps.parquet".into()));
    }
    let classes = ctx.r.classes();
    let mut panels = Vec::new();
    let mut legend = Vec::new();
    let mut analytic_drawn = false;
    for rep in &ctx.reps {
        let pts = points(ctx, rep, "theta_y_deg_mean", "coef_y_mean")?;
        if pts.is_empty() {
            continue;
        }
        let color = loss_color(&rep.loss);
        let label = ctx.setting_label(&rep.setting, &rep.noise_kind, rep.noise_ratio);
        let mut p = Panel::new(label.clone(), "θ_y (degrees)", "g_y = ∂L/∂cos θ_y per sample");
        p.y_scale = Scale::Linear;
        let feat_norm = mean_feat_norm(ctx, rep)?.unwrap_or(1.0);
        let hi = pts.iter().map(|p| p.0).fold(0.0, f64::max);
        let grid: Vec<f64> = (0..=120).map(|i| i as f64 / 120.0 * (hi + 10.0).min(180.0)).collect();
        let analytic = ctx.r.settings.get(&rep.setting).and_then(|c| analytic_coef(c, classes, feat_norm, &grid));
        if let Some(g) = analytic {
            p.series.push(Series::new(ANALYTIC, Draw::Line, grid.iter().copied().zip(g).collect()));
            analytic_drawn = true;
        }
        p.series.push(Series::new(color, Draw::Dots, pts));
        legend.push(LegendEntry::new(label, color, Mark::Dot));
        panels.push(p);
    }
    if panels.is_empty() {
        return Ok(Err("steps.parquet has no theta_y_deg_mean / coef_y_mean values".into()));
    }
    legend.push(LegendEntry::note("one dot per logged step"));
    legend.push(LegendEntry::note("(batch means, all seeds)"));
    if analytic_drawn {
        legend.push(LegendEntry::new("analytic g_y(θ)", ANALYTIC, Mark::Line));
    } else {
        legend.push(LegendEntry::note("analytic curve not available"));
    }
    let cols = panels.len().min(3);
    let fig = PanelFigure { title: "Target coefficient g_y against target angle θ_y".into(), panels, legend, cols };
    let caption = if analytic_drawn {
        "Empirical g_y against θ_y (one dot per logged step, batch means) with the analytic g_y(θ) of the same loss, parameters and number of classes (non-target angles at 90°, ‖x‖ = the run's mean feature norm)."
    } else {
        "Empirical g_y against θ_y (one dot per logged step, batch means). No analytic curve: experiment.toml does not give the number of classes, or the losses are not in this build's registry."
    };
    let title = fig.title.clone();
    Ok(Ok(vec![ctx.save(&fig, "coef_vs_theta", &title, caption)?]))
}
