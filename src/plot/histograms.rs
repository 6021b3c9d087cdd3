//! θ_y histograms from angles.parquet (step, bin_lo_deg, bin_hi_deg, count per trial): the
//! paper-style angle-distribution figure. One panel per loss (its representative setting, counts
//! summed over seeds), one outline per chosen step (the first, middle and last recorded steps,
//! the latest in the loss colour, earlier ones lighter). When angles.parquet splits samples by a text column (clean vs noisy labels), the
//! groups are drawn solid and dashed, and a second figure shows them at the largest noise ratio.

use super::{Ctx, FigureInfo, Rendered};
use crate::figure::panel::{Draw, Panel, PanelFigure, Scale, Series};
use crate::figure::style::{loss_color, shade, LegendEntry, Mark};
use crate::results::{floats, noise_label, strings};
use anyhow::Result;
use polars::prelude::*;

/// Text columns of angles.parquet other than `trial`: the sample groups (e.g. clean/noisy).
fn group_column(angles: &DataFrame) -> Option<String> {
    angles
        .get_columns()
        .iter()
        .find(|c| c.name().as_str() != "trial" && matches!(c.dtype(), DataType::String))
        .map(|c| c.name().to_string())
}

/// The first, middle and last of `steps` (sorted, distinct).
pub fn chosen_steps(mut steps: Vec<i64>) -> Vec<i64> {
    steps.sort_unstable();
    steps.dedup();
    if steps.len() <= 3 {
        return steps;
    }
    vec![steps[0], steps[(steps.len() - 1) / 2], steps[steps.len() - 1]]
}

/// Counts summed over the seeds of each setting: setting, noise_kind, noise_ratio, group, step,
/// bins, count.
fn summed(ctx: &Ctx, angles: &DataFrame, group: Option<&str>) -> Result<DataFrame> {
    let keys =
        ctx.r.trials.clone().lazy().select([col("trial"), col("setting"), col("noise_kind"), col("noise_ratio")]);
    let group_expr = match group {
        Some(g) => col(g).cast(DataType::String).fill_null(lit("")).alias("group"),
        None => lit("").alias("group"),
    };
    Ok(angles
        .clone()
        .lazy()
        .join(keys, [col("trial")], [col("trial")], JoinArgs::new(JoinType::Inner))
        .with_column(group_expr)
        .group_by([
            col("setting"),
            col("noise_kind"),
            col("noise_ratio"),
            col("group"),
            col("step"),
            col("bin_lo_deg"),
            col("bin_hi_deg"),
        ])
        .agg([col("count").cast(DataType::Float64).sum().alias("count")])
        .sort(["setting", "noise_ratio", "group", "step", "bin_lo_deg"], SortMultipleOptions::default())
        .collect()?)
}

/// One figure of histogram panels for `(loss, setting)` pairs under noise `(kind, ratio)`.
fn figure(
    ctx: &Ctx,
    df: &DataFrame,
    panels_for: &[(String, String)],
    (noise_kind, noise_ratio): (&str, f64),
    stem: &str,
    title: &str,
) -> Result<Option<FigureInfo>> {
    let setting = strings(df, "setting")?;
    let kind = strings(df, "noise_kind")?;
    let noise = floats(df, "noise_ratio")?;
    let at_noise = |i: usize| kind[i] == noise_kind && noise[i].unwrap_or(0.0) == noise_ratio;
    let group = strings(df, "group")?;
    let step = floats(df, "step")?;
    let (lo, hi, count) = (floats(df, "bin_lo_deg")?, floats(df, "bin_hi_deg")?, floats(df, "count")?);
    let in_figure = |i: usize| panels_for.iter().any(|(_, s)| s == &setting[i]) && at_noise(i);
    let mut groups: Vec<String> = (0..df.height()).filter(|&i| in_figure(i)).map(|i| group[i].clone()).collect();
    groups.sort();
    groups.dedup();
    // "clean" before "noisy", and before anything else alphabetical.
    groups.sort_by_key(|g| (g != "clean", g.clone()));
    let name = |g: &str| if g.is_empty() { "all".to_string() } else { g.to_string() };
    let mut panels = Vec::new();
    let mut legend = Vec::new();
    for (loss, s) in panels_for {
        let rows: Vec<usize> = (0..df.height()).filter(|&i| &setting[i] == s && at_noise(i)).collect();
        if rows.is_empty() {
            continue;
        }
        let steps = chosen_steps(rows.iter().filter_map(|&i| step[i]).map(|v| v as i64).collect());
        let mut p = Panel::new(ctx.setting_label(s, noise_kind, noise_ratio), "θ_y (degrees)", "share of samples (%)");
        p.y_scale = Scale::Linear;
        for (k, &st) in steps.iter().enumerate() {
            let color = shade(loss_color(loss), steps.len() - 1 - k, steps.len());
            for (gi, g) in groups.iter().enumerate() {
                let bins: Vec<usize> =
                    rows.iter().copied().filter(|&i| step[i] == Some(st as f64) && &group[i] == g).collect();
                let total: f64 = bins.iter().filter_map(|&i| count[i]).sum();
                if bins.is_empty() || total <= 0.0 {
                    continue;
                }
                let mut pts = Vec::with_capacity(bins.len() * 2);
                for &i in &bins {
                    let (Some(a), Some(b), Some(c)) = (lo[i], hi[i], count[i]) else { continue };
                    let share = c / total * 100.0;
                    pts.push((a, share));
                    pts.push((b, share));
                }
                p.series.push(Series::new(color, if gi == 0 { Draw::Line } else { Draw::Dashed }, pts));
            }
            legend.push(LegendEntry::new(format!("{loss}: step {st}"), color, Mark::Line));
        }
        panels.push(p);
    }
    if panels.is_empty() {
        return Ok(None);
    }
    if groups.len() > 1 {
        legend.push(LegendEntry::note(format!("solid: {} samples", name(&groups[0]))));
        for g in &groups[1..] {
            legend.push(LegendEntry::note(format!("dashed: {} samples", name(g))));
        }
    }
    let fig = PanelFigure { title: title.to_string(), panels, legend, cols: 3 };
    Ok(Some(ctx.save(
        &fig,
        stem,
        title,
        "Distribution of the target angle θ_y at the first, middle and last recorded steps (the latest in the loss colour, earlier steps lighter), counts summed over seeds.",
    )?))
}

/// The θ_y histogram figures.
pub fn angle_histograms(ctx: &Ctx) -> Result<Rendered> {
    let Some(angles) = ctx.r.angles.as_ref().filter(|a| a.height() > 0) else {
        return Ok(Err("no trial has an angles.parquet (θ_y histograms are recorded by newer runs)".into()));
    };
    let group = group_column(angles);
    let df = summed(ctx, angles, group.as_deref())?;
    let reps: Vec<(String, String)> = ctx.reps.iter().map(|r| (r.loss.clone(), r.setting.clone())).collect();
    let clean = ctx.reps.first().map_or(("none".to_string(), 0.0), |r| (r.noise_kind.clone(), r.noise_ratio));
    let mut out = Vec::new();
    let title = "Distribution of θ_y during training";
    if let Some(f) = figure(ctx, &df, &reps, (&clean.0, clean.1), "angle_histograms", title)? {
        out.push(f);
    }
    if let Some((kind, ratio)) = super::worst_noise(ctx.r)? {
        let title = format!("Distribution of θ_y at {} label noise", noise_label(&kind, ratio));
        if let Some(f) = figure(ctx, &df, &reps, (&kind, ratio), "angle_histograms_noisy", &title)? {
            out.push(f);
        }
    }
    if out.is_empty() {
        return Ok(Err("angles.parquet holds no rows for the settings drawn".into()));
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_first_middle_last() {
        assert_eq!(chosen_steps(vec![30, 10, 20, 40, 50]), [10, 30, 50]);
        assert_eq!(chosen_steps(vec![5, 5, 7]), [5, 7]);
    }
}
