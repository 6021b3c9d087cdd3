//! Figures over training steps, one line per loss (its representative setting, averaged over
//! seeds): training curves (loss, accuracy, learning rate), gradient magnitudes (|g_y|,
//! Σ_{j≠y}|g_j|, ‖∂L/∂x‖, ‖∂L/∂W‖), angles (mean θ_y and θ_j), and, in noise studies, the
//! clean-sample against noisy-sample telemetry.

use super::{Ctx, Rendered};
use crate::figure::panel::{Draw, Panel, PanelFigure, Scale, Series};
use crate::figure::style::{loss_color, LegendEntry, Mark};
use crate::results::aggregate;
use crate::results::{floats, has_column, noise_label, strings};
use anyhow::Result;
use polars::prelude::DataFrame;

/// `(step, value)` of a steps column for one setting under one noise setting (seed means).
pub fn step_series(
    steps: &DataFrame,
    setting: &str,
    noise_kind: &str,
    noise_ratio: f64,
    column: &str,
) -> Result<Vec<(f64, f64)>> {
    if !has_column(steps, column) {
        return Ok(Vec::new());
    }
    let settings = strings(steps, "setting")?;
    let noise = floats(steps, "noise_ratio")?;
    let kind = strings(steps, "noise_kind")?;
    let step = floats(steps, "step")?;
    let value = floats(steps, column)?;
    Ok((0..steps.height())
        .filter(|&i| settings[i] == setting && kind[i] == noise_kind && noise[i].unwrap_or(0.0) == noise_ratio)
        .filter_map(|i| Some((step[i]?, value[i].filter(|v| v.is_finite())?)))
        .collect())
}

/// A panel over steps: title, y label, steps column, transform of its values, y scale.
type StepPanel<'s> = (&'s str, &'s str, &'s str, fn(f64) -> f64, Scale);

/// One panel per [`StepPanel`], a line per representative.
fn rep_panels(ctx: &Ctx, steps: &DataFrame, specs: &[StepPanel]) -> Result<Vec<Panel>> {
    let mut panels = Vec::new();
    for &(title, y_label, column, f, scale) in specs {
        let mut p = Panel::new(title, "training step", y_label);
        p.y_scale = scale;
        for rep in &ctx.reps {
            let pts = step_series(steps, &rep.setting, &rep.noise_kind, rep.noise_ratio, column)?;
            p.series.push(Series::new(
                loss_color(&rep.loss),
                Draw::Line,
                pts.into_iter().map(|(x, y)| (x, f(y))).collect(),
            ));
        }
        if !p.is_empty() {
            panels.push(p);
        }
    }
    Ok(panels)
}

fn rep_legend(ctx: &Ctx) -> Vec<LegendEntry> {
    let mut legend: Vec<LegendEntry> = ctx
        .reps
        .iter()
        .map(|r| {
            LegendEntry::new(
                ctx.setting_label(&r.setting, &r.noise_kind, r.noise_ratio),
                loss_color(&r.loss),
                Mark::Line,
            )
        })
        .collect();
    legend.extend(ctx.seeds_note());
    legend
}

fn steps_or_skip<'c>(ctx: &'c Ctx) -> std::result::Result<&'c DataFrame, String> {
    ctx.steps.as_ref().filter(|s| s.height() > 0).ok_or_else(|| "no trial has a steps.parquet".to_string())
}

fn one_figure(ctx: &Ctx, fig: PanelFigure, stem: &str, caption: &str) -> Result<Rendered> {
    if fig.panels.is_empty() {
        return Ok(Err("steps.parquet has none of the columns this figure reads".into()));
    }
    let title = fig.title.clone();
    Ok(Ok(vec![ctx.save(&fig, stem, &title, caption)?]))
}

fn id(v: f64) -> f64 {
    v
}
fn percent(v: f64) -> f64 {
    v * 100.0
}

/// Loss, training accuracy and learning rate over steps.
pub fn training_curves(ctx: &Ctx) -> Result<Rendered> {
    let steps = match steps_or_skip(ctx) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let panels = rep_panels(
        ctx,
        steps,
        &[
            ("Training loss", "batch-mean loss", "loss", id, Scale::Auto),
            ("Training accuracy", "accuracy on the batch (%)", "train_acc", percent, Scale::Linear),
            ("Learning rate", "learning rate", "lr", id, Scale::Auto),
        ],
    )?;
    let mut panels = panels;
    if let Some(key) = aggregate::primary_columns(&ctx.rows).into_iter().next() {
        let label = crate::results::names::protocol_label(&key.protocol);
        let metric = crate::results::names::Metric::parse(&key.metric);
        let scale = if metric.is_rate() { 100.0 } else { 1.0 };
        let mut p = Panel::new(format!("Held-out {label} {}", metric.label()), "training step", "at each evaluation");
        p.y_scale = Scale::Linear;
        for rep in &ctx.reps {
            let pts = aggregate::eval_series(ctx.r, &rep.setting, &rep.noise_kind, rep.noise_ratio, &key)?;
            let mut s =
                Series::new(loss_color(&rep.loss), Draw::LineDots, pts.iter().map(|p| (p.0, p.1 * scale)).collect());
            if pts.iter().all(|p| p.2.is_some()) && !pts.is_empty() {
                s.err = Some(pts.iter().map(|p| p.2.map_or((p.1, p.1), |(lo, hi)| (lo * scale, hi * scale))).collect());
                s.band = true;
            }
            p.series.push(s);
        }
        if !p.is_empty() {
            panels.push(p);
        }
    }
    let mut legend = rep_legend(ctx);
    if ctx.reps.iter().any(|r| r.loss == "p2sgrad") {
        legend.push(LegendEntry::note("P2SGrad's loss is its surrogate"));
        legend.push(LegendEntry::note("½Σ_j(cos θ_j − 1[j=y])²"));
    }
    let cols = if panels.len() == 4 { 2 } else { 3 };
    let fig = PanelFigure { title: "Training curves".into(), panels, legend, cols };
    one_figure(
        ctx,
        fig,
        "training_curves",
        "Batch-mean loss, batch accuracy (argmax of the margin-free logits), learning rate and the held-out headline metric at each evaluation against the training step, one line per loss; the held-out metric's band is its 95 % interval (t over seeds; with one seed, the bootstrap over held-out identities).",
    )
}

/// Gradient magnitudes over steps.
pub fn gradients(ctx: &Ctx) -> Result<Rendered> {
    let steps = match steps_or_skip(ctx) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let panels = rep_panels(
        ctx,
        steps,
        &[
            ("Target coefficient |g_y|", "|∂L/∂cos θ_y| per sample", "coef_y_mean", f64::abs, Scale::Auto),
            (
                "Non-target coefficients Σ_j≠y |g_j|",
                "Σ_j≠y |∂L/∂cos θ_j| per sample",
                "coef_other_sum_mean",
                id,
                Scale::Auto,
            ),
            ("Feature gradient ‖∂L/∂x‖", "‖∂L/∂x_i‖ per sample", "grad_norm_feat_mean", id, Scale::Auto),
            (
                "Class-weight gradient ‖∂L/∂W‖",
                "‖∂L/∂W‖_F of the batch loss",
                "grad_norm_class_weights",
                id,
                Scale::Auto,
            ),
        ],
    )?;
    let fig = PanelFigure { title: "Gradient magnitudes".into(), panels, legend: rep_legend(ctx), cols: 2 };
    one_figure(
        ctx,
        fig,
        "gradients",
        "The modulation coefficients g = ∂L/∂cos θ (target and summed non-target, per sample) and the feature and class-weight gradient norms against the training step; log scale where the values span two decades or more.",
    )
}

/// Mean target and non-target angles over steps.
pub fn angles(ctx: &Ctx) -> Result<Rendered> {
    let steps = match steps_or_skip(ctx) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let panels = rep_panels(
        ctx,
        steps,
        &[
            ("Mean target angle θ_y", "θ_y (degrees)", "theta_y_deg_mean", id, Scale::Linear),
            ("Mean non-target angle θ_j", "θ_j, j ≠ y (degrees)", "theta_other_deg_mean", id, Scale::Linear),
        ],
    )?;
    let fig = PanelFigure { title: "Angles".into(), panels, legend: rep_legend(ctx), cols: 2 };
    one_figure(
        ctx,
        fig,
        "angles",
        "Mean angle between each feature and its own class weight (θ_y) and the other class weights (θ_j) against the training step.",
    )
}

/// θ_y and |g_y| of clean against noisy-label samples, at the largest noise ratio.
pub fn noise_telemetry(ctx: &Ctx) -> Result<Rendered> {
    let steps = match steps_or_skip(ctx) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    if !ctx.r.has_noise_study()? {
        return Ok(Err("no noise study: every trial has the same noise ratio".into()));
    }
    // Clean trials fill the `_clean` columns too (every sample is clean); only `_noisy` values
    // mean there is something to compare.
    let noisy = ["theta_y_deg_mean_noisy", "coef_y_mean_noisy"];
    if !noisy.iter().any(|c| floats(steps, c).is_ok_and(|v| v.iter().flatten().next().is_some())) {
        return Ok(Err(
            "steps.parquet has no noisy-sample telemetry (theta_y_deg_mean_noisy, coef_y_mean_noisy)".into()
        ));
    }
    let Some((kind, max_noise)) = super::worst_noise(ctx.r)? else {
        return Ok(Err("no noisy trials".into()));
    };
    let settings = aggregate::loss_order(ctx.r)?;
    let mut panels = Vec::new();
    for (title, y_label, stem, f) in [
        ("Target angle θ_y: clean vs noisy samples", "θ_y (degrees)", "theta_y_deg_mean", id as fn(f64) -> f64),
        ("Target coefficient |g_y|: clean vs noisy", "|∂L/∂cos θ_y| per sample", "coef_y_mean", f64::abs),
    ] {
        let mut p = Panel::new(title, "training step", y_label);
        p.y_scale = if stem == "coef_y_mean" { Scale::Auto } else { Scale::Linear };
        for loss in &settings {
            let Some(rep) = ctx.reps.iter().find(|r| &r.loss == loss) else { continue };
            for (suffix, draw) in [("_clean", Draw::Line), ("_noisy", Draw::Dashed)] {
                let pts = step_series(steps, &rep.setting, &kind, max_noise, &format!("{stem}{suffix}"))?;
                p.series.push(Series::new(loss_color(loss), draw, pts.into_iter().map(|(x, y)| (x, f(y))).collect()));
            }
        }
        if !p.is_empty() {
            panels.push(p);
        }
    }
    if panels.is_empty() {
        return Ok(Err(format!(
            "the representative settings have no clean/noisy telemetry at noise ratio {max_noise}"
        )));
    }
    let mut legend: Vec<LegendEntry> = ctx
        .reps
        .iter()
        .map(|r| LegendEntry::new(ctx.setting_label(&r.setting, &kind, max_noise), loss_color(&r.loss), Mark::Line))
        .collect();
    legend.push(LegendEntry::note("solid: clean-label samples"));
    legend.push(LegendEntry::note("dashed: noisy-label samples"));
    let fig = PanelFigure {
        title: format!("Clean vs noisy samples at {} label noise", noise_label(&kind, max_noise)),
        panels,
        legend,
        cols: 2,
    };
    let title = fig.title.clone();
    Ok(Ok(vec![ctx.save(
        &fig,
        "noise_telemetry",
        &title,
        "Target angle and target coefficient of the samples whose labels are clean against those whose labels were corrupted, at the largest noise ratio (the first noise kind at it), one setting per loss.",
    )?]))
}
