//! Empirical target coefficient g_y against the target angle θ_y, from telemetry: every logged
//! step of every seed of a loss's representative setting is one point (its batch means of θ_y
//! and g_y). Where an analytic g_y(θ) is available for the loss, it is drawn over the points.

use super::panel::{Draw, Panel, PanelFigure, Scale, Series};
use super::style::{loss_color, LegendEntry, Mark};
use super::{setting_label, Ctx, Rendered};
use crate::report::aggregate::Representative;
use crate::report::results::{floats, numeric_params};
use anyhow::Result;
use plotters::style::RGBColor;
use polars::prelude::*;

/// Colour of the analytic curve.
const ANALYTIC: RGBColor = RGBColor(30, 30, 30);

/// The analytic target coefficient g_y(θ) of `loss` with numeric `params` and `classes` training
/// classes, at the angles `theta_deg` (degrees), per sample; `None` when no analytic form is
/// available.
///
/// This is the hook for the loss-zoo analysis (issue 3, the `curves` command): it is the one
/// place that connects this figure to it. Until that module is in the crate nothing is drawn here
/// and the figure says "analytic curve not available".
pub fn analytic_coef(
    loss: &str,
    params: &[(String, f64)],
    classes: Option<usize>,
    theta_deg: &[f64],
) -> Option<Vec<f64>> {
    let _ = (loss, params, classes, theta_deg);
    None
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
        let label = setting_label(&rep.setting, &rep.noise_kind, rep.noise_ratio);
        let mut p = Panel::new(label.clone(), "θ_y (degrees)", "g_y = ∂L/∂cos θ_y per sample");
        p.y_scale = Scale::Linear;
        let params = ctx
            .rows
            .iter()
            .find(|m| m.setting == rep.setting)
            .map(|m| numeric_params(&m.params))
            .unwrap_or_else(|| numeric_params(rep.setting.split_once(' ').map_or("", |(_, p)| p)));
        let hi = pts.iter().map(|p| p.0).fold(0.0, f64::max);
        let grid: Vec<f64> = (0..=120).map(|i| i as f64 / 120.0 * (hi + 10.0).min(180.0)).collect();
        if let Some(g) = analytic_coef(&rep.loss, &params, classes, &grid) {
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
        "Empirical g_y against θ_y (one dot per logged step, batch means) with the analytic g_y(θ) for the same loss, parameters and number of classes."
    } else {
        "Empirical g_y against θ_y (one dot per logged step, batch means). No analytic curve: the loss-zoo analysis module is not part of this build."
    };
    let title = fig.title.clone();
    Ok(Ok(vec![ctx.save(&fig, "coef_vs_theta", &title, caption)?]))
}
