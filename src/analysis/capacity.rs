//! P2SGrad's capacity bound (LOSSES.md, "P2SGrad's capacity bound"): with C classes in D
//! dimensions the surrogate ½Σ_j(cos θ_ij − 1[j=y])², averaged over balanced samples, is at least
//! ½·max(0, 1 − D/C) (best rank-D approximation of the one-hot targets), and at that minimum the
//! mean target cosine is D/C. So the best mean cos θ_y P2SGrad can reach is min(1, D/C): 1 while
//! C ≤ D, falling as D/C beyond. The cross-entropy losses have no such bound. Under Partial FC
//! the loss of a step sees K sampled class centres, and the bound is taken at K/D.

use crate::figure::panel::{Draw, Panel, PanelFigure, Scale, Series};
use crate::figure::style::{loss_color, LegendEntry, Mark};
use plotters::style::RGBColor;
use serde::Serialize;

/// The analytic optimum of P2SGrad's surrogate at one (C, D).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Capacity {
    pub classes: i64,
    /// The class centres a step's loss sees: C, or ⌊rate·C⌋ under Partial FC.
    pub sampled: i64,
    pub embedding: i64,
    /// K / D (sampled classes per dimension; C/D without Partial FC).
    pub ratio: f64,
    /// The best mean target cosine, min(1, D/K).
    pub best_mean_cos_y: f64,
    /// The lower bound of the mean surrogate, ½·max(0, 1 − D/K).
    pub surrogate_bound: f64,
}

/// min(1, D/C) and ½·max(0, 1 − D/C) at C/D = `ratio`.
pub fn at_ratio(ratio: f64) -> (f64, f64) {
    ((1.0 / ratio).min(1.0), 0.5 * (1.0 - 1.0 / ratio).max(0.0))
}

/// The bound at `classes` C and `embedding` D.
pub fn capacity(classes: i64, embedding: i64) -> Capacity {
    sampled_capacity(classes, classes, embedding)
}

/// The bound when each step's loss sees `sampled` of `classes` class centres (Partial FC).
pub fn sampled_capacity(classes: i64, sampled: i64, embedding: i64) -> Capacity {
    let ratio = sampled as f64 / embedding as f64;
    let (best_mean_cos_y, surrogate_bound) = at_ratio(ratio);
    Capacity { classes, sampled, embedding, ratio, best_mean_cos_y, surrogate_bound }
}

/// `points` C/D values spaced evenly in log2 from `lo` to `hi` (both included).
pub fn ratio_grid(lo: f64, hi: f64, points: usize) -> Vec<f64> {
    let (a, b) = (lo.log2(), hi.log2());
    (0..points).map(|i| (a + (b - a) * i as f64 / (points - 1).max(1) as f64).exp2()).collect()
}

/// A measured point beside the bound: a loss's mean target cosine (and optionally a second
/// number, held-out accuracy) at one C/D.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub loss: String,
    pub ratio: f64,
    pub mean_cos_y: f64,
    pub accuracy: Option<f64>,
    /// 95 % intervals of the two, drawn as bars where given.
    pub cos_y_interval: Option<(f64, f64)>,
    pub accuracy_interval: Option<(f64, f64)>,
}

/// Colour of the analytic curves.
pub const ANALYTIC: RGBColor = RGBColor(30, 30, 30);

/// The capacity figure: the best mean cos θ_y min(1, D/C) and the surrogate bound against C/D
/// (log scale), the given (C, D) points marked; with `measured`, the losses' measured mean
/// cos θ_y over the analytic curve and, where given, their held-out accuracy in a third panel.
pub fn figure(points: &[Capacity], measured: &[Measured], accuracy_label: &str) -> PanelFigure {
    let ratios: Vec<f64> = points.iter().map(|p| p.ratio).chain(measured.iter().map(|m| m.ratio)).collect();
    let lo = ratios.iter().copied().fold(0.25f64, f64::min) / 1.5;
    let hi = ratios.iter().copied().fold(8.0f64, f64::max) * 1.5;
    let grid = ratio_grid(lo, hi, 200);
    let curve = |f: fn(f64) -> f64| grid.iter().map(|&r| (r, f(r))).collect::<Vec<_>>();
    let mut cos =
        Panel::new("Best mean cos θ_y of P2SGrad's surrogate", "C / D (classes per dimension)", "mean cos θ_y");
    let mut bound =
        Panel::new("Lower bound of P2SGrad's mean surrogate", "C / D (classes per dimension)", "½·max(0, 1 − D/C)");
    for p in [&mut cos, &mut bound] {
        p.x_scale = Scale::Log;
        p.y_scale = Scale::Linear;
    }
    cos.series.push(Series::new(ANALYTIC, Draw::Line, curve(|r| at_ratio(r).0)));
    bound.series.push(Series::new(ANALYTIC, Draw::Line, curve(|r| at_ratio(r).1)));
    if !points.is_empty() {
        cos.series.push(Series::new(
            ANALYTIC,
            Draw::HollowDots,
            points.iter().map(|p| (p.ratio, p.best_mean_cos_y)).collect(),
        ));
        bound.series.push(Series::new(
            ANALYTIC,
            Draw::HollowDots,
            points.iter().map(|p| (p.ratio, p.surrogate_bound)).collect(),
        ));
    }
    let mut legend = vec![LegendEntry::new("analytic bound", ANALYTIC, Mark::Line)];
    let mut losses: Vec<&str> = Vec::new();
    for m in measured {
        if !losses.contains(&m.loss.as_str()) {
            losses.push(&m.loss);
        }
    }
    let mut accuracy =
        Panel::new(format!("Held-out {accuracy_label}"), "C / D (classes per dimension)", accuracy_label);
    accuracy.x_scale = Scale::Log;
    accuracy.y_scale = Scale::Linear;
    for loss in &losses {
        let color = loss_color(loss);
        let mut mine: Vec<&Measured> = measured.iter().filter(|m| m.loss == *loss).collect();
        mine.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
        let mut s = Series::new(color, Draw::LineDots, mine.iter().map(|m| (m.ratio, m.mean_cos_y)).collect());
        if mine.iter().any(|m| m.cos_y_interval.is_some()) {
            s.err = Some(mine.iter().map(|m| m.cos_y_interval.unwrap_or((m.mean_cos_y, m.mean_cos_y))).collect());
        }
        cos.series.push(s);
        let with_acc: Vec<&&Measured> = mine.iter().filter(|m| m.accuracy.is_some()).collect();
        if !with_acc.is_empty() {
            let point = |m: &Measured| m.accuracy.unwrap_or(f64::NAN) * 100.0;
            let mut s = Series::new(color, Draw::LineDots, with_acc.iter().map(|m| (m.ratio, point(m))).collect());
            if with_acc.iter().any(|m| m.accuracy_interval.is_some()) {
                let bar =
                    |m: &Measured| m.accuracy_interval.map_or((point(m), point(m)), |(a, b)| (a * 100.0, b * 100.0));
                s.err = Some(with_acc.iter().map(|m| bar(m)).collect());
            }
            accuracy.series.push(s);
        }
        legend.push(LegendEntry::new(format!("{loss} (measured)"), color, Mark::Line));
    }
    let mut panels = vec![cos];
    if measured.is_empty() {
        panels.push(bound);
    } else if !accuracy.series.is_empty() {
        panels.push(accuracy);
    }
    if !points.is_empty() {
        legend.push(LegendEntry::note("circles: the (C, D) asked for"));
    }
    let cols = panels.len();
    PanelFigure { title: "P2SGrad's capacity: classes per embedding dimension".into(), panels, legend, cols }
}

/// The bound's figure for `points` alone, to `path` as PNG (`svg = false`) or SVG.
pub fn write_image(points: &[Capacity], path: &std::path::Path, svg: bool) -> anyhow::Result<()> {
    crate::figure::style::write(&figure(points, &[], ""), path, svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_of_losses_md() {
        // LOSSES.md: C = 200, D = 64 gives cos θ_y* ≈ 0.32 and a surrogate of at least 0.34.
        let c = capacity(200, 64);
        assert!((c.best_mean_cos_y - 0.32).abs() < 1e-12 && (c.surrogate_bound - 0.34).abs() < 1e-12);
        assert_eq!(capacity(32, 64).best_mean_cos_y, 1.0);
        assert_eq!(capacity(32, 64).surrogate_bound, 0.0);
        assert!((capacity(10575, 512).best_mean_cos_y - 0.0484).abs() < 1e-4);
        let g = ratio_grid(0.25, 8.0, 6);
        assert!((g[0] - 0.25).abs() < 1e-12 && (g[5] - 8.0).abs() < 1e-9 && (g[2] - 1.0).abs() < 1e-9);
    }
}
