//! Study figures, one per protocol's primary metric (the first column of the paper table for that
//! protocol): hyper-parameter sensitivity (a heatmap of the metric over a loss's two swept
//! parameters, e.g. s × m, one panel per loss; a line where only one parameter was swept;
//! P2SGrad, which has no hyper-parameters, as a reference line and a mark on the colour bar) and
//! noise robustness (the metric against the noise ratio per setting, mean over seeds with bars at the 95 % interval).

use super::{Ctx, Rendered};
use crate::figure::panel::{self, Draw, Panel, PanelFigure, Scale, Series};
use crate::figure::style::{self, de, loss_color, shade, LegendEntry, Mark};
use crate::results::aggregate::{self, ColumnKey, SettingMetric};
use crate::results::names::{protocol_label, Metric};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The reference loss drawn on every sensitivity panel.
pub const REFERENCE: &str = "p2sgrad";

/// Viridis, sampled at five points and interpolated linearly.
pub fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// One heatmap panel: metric over two parameters.
#[derive(Debug, Clone)]
pub struct Heatmap {
    pub title: String,
    pub x_name: String,
    pub y_name: String,
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
    /// (x index, y index, value)
    pub cells: Vec<(usize, usize, f64)>,
}

/// A panel of the sensitivity figure.
#[derive(Debug, Clone)]
pub enum StudyPanel {
    Heat(Heatmap),
    Line(Panel),
}

/// The sensitivity figure: panels, a shared colour scale, the reference value.
#[derive(Debug, Clone)]
pub struct SensitivityFigure {
    pub title: String,
    pub metric_label: String,
    pub panels: Vec<StudyPanel>,
    pub range: (f64, f64),
    pub reference: Option<f64>,
    pub legend: Vec<LegendEntry>,
}

const COLORBAR_W: u32 = 130;

fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn draw_heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, h: &Heatmap, range: (f64, f64)) -> Result<()> {
    let (nx, ny) = (h.xs.len(), h.ys.len());
    let xs = h.xs.clone();
    let ys = h.ys.clone();
    let x_fmt = move |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < xs.len() {
            panel::linear_label(xs[i as usize], 0.0)
        } else {
            String::new()
        }
    };
    let y_fmt = move |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < ys.len() {
            panel::linear_label(ys[i as usize], 0.0)
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(style::fit(&h.title, area.dim_in_pixel().0, style::CAPTION_PX), style::bold(style::CAPTION_PX))
        .margin(12)
        .x_label_area_size(58)
        .y_label_area_size(86)
        .build_cartesian_2d(-0.5..nx as f64 - 0.5, -0.5..ny as f64 - 0.5)
        .map_err(de)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(h.x_name.clone())
        .y_desc(h.y_name.clone())
        .axis_desc_style(style::text(style::AXIS_PX))
        .label_style(style::text(style::TICK_PX))
        .x_labels(nx * 2 + 1)
        .y_labels(ny * 2 + 1)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()
        .map_err(de)?;
    let (lo, hi) = range;
    for &(ix, iy, v) in &h.cells {
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        let c = viridis(t);
        let (x, y) = (ix as f64, iy as f64);
        chart
            .draw_series(std::iter::once(Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], c.filled())))
            .map_err(de)?;
        let ink = if t > 0.6 { BLACK } else { WHITE };
        chart
            .plotting_area()
            .draw(&Text::new(
                fmt_value(v),
                (x, y),
                style::bold(style::TICK_PX + 1.0).color(&ink).pos(Pos::new(HPos::Center, VPos::Center)),
            ))
            .map_err(de)?;
    }
    Ok(())
}

fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: &str,
    range: (f64, f64),
    reference: Option<f64>,
) -> Result<()> {
    let (_, h) = area.dim_in_pixel();
    let (top, bottom) = (70i32, h as i32 - 70);
    let (x0, x1) = (14i32, 38i32);
    let (lo, hi) = range;
    let n = (bottom - top).max(1);
    for i in 0..n {
        let t = 1.0 - i as f64 / n as f64;
        area.draw(&Rectangle::new([(x0, top + i), (x1, top + i + 1)], viridis(t).filled())).map_err(de)?;
    }
    area.draw(&Rectangle::new([(x0, top), (x1, bottom)], BLACK.stroke_width(1))).map_err(de)?;
    let y_of =
        |v: f64| if hi > lo { bottom - ((v - lo) / (hi - lo) * n as f64).round() as i32 } else { (top + bottom) / 2 };
    let tick = style::text(style::TICK_PX).pos(Pos::new(HPos::Left, VPos::Center));
    let reference_y = reference.map(y_of);
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let y = y_of(v);
        area.draw(&PathElement::new(vec![(x1, y), (x1 + 5, y)], BLACK.stroke_width(1))).map_err(de)?;
        // The reference's label takes precedence over a tick label it would overlap.
        if reference_y.is_none_or(|r| (r - y).abs() > 18) {
            area.draw_text(&fmt_value(v), &tick, (x1 + 8, y)).map_err(de)?;
        }
    }
    area.draw_text(label, &style::text(style::TICK_PX).pos(Pos::new(HPos::Left, VPos::Bottom)), (x0, top - 14))
        .map_err(de)?;
    if let Some(y) = reference_y {
        let c = loss_color(REFERENCE);
        area.draw(&PathElement::new(vec![(x0 - 6, y), (x1 + 6, y)], c.stroke_width(4))).map_err(de)?;
        area.draw_text(
            "P2SGrad",
            &style::bold(style::TICK_PX).color(&c).pos(Pos::new(HPos::Left, VPos::Center)),
            (x1 + 8, y),
        )
        .map_err(de)?;
    }
    Ok(())
}

impl style::Figure for SensitivityFigure {
    fn size(&self) -> (u32, u32) {
        let (w, h) = style::grid_size(self.panels.len(), 3, style::legend_width(&self.legend), &self.title);
        (w + COLORBAR_W, h)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = style::frame(root, &self.title, &self.legend)?;
        let (w, _) = body.dim_in_pixel();
        let heat = self.panels.iter().any(|p| matches!(p, StudyPanel::Heat(_)));
        let (grid, bar) = body.split_horizontally(w.saturating_sub(COLORBAR_W));
        if heat {
            draw_colorbar(&bar, &self.metric_label, self.range, self.reference)?;
        }
        let cols = self.panels.len().clamp(1, 3);
        let rows = self.panels.len().div_ceil(cols);
        for (area, p) in grid.split_evenly((rows, cols)).iter().zip(&self.panels) {
            match p {
                StudyPanel::Heat(h) => draw_heatmap(area, h, self.range)?,
                StudyPanel::Line(l) => panel::draw_panel(area, l)?,
            }
        }
        Ok(())
    }
}

fn scale_of(key: &ColumnKey) -> f64 {
    if Metric::parse(&key.metric).is_rate() {
        100.0
    } else {
        1.0
    }
}

fn metric_title(key: &ColumnKey) -> String {
    let m = Metric::parse(&key.metric);
    format!("{} {}{}", protocol_label(&key.protocol), m.label(), if m.is_rate() { " (%)" } else { "" })
}

fn slug(key: &ColumnKey) -> String {
    format!("{}_{}", key.protocol, key.metric)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// The distinct values of parameter `name` among `rows`, sorted.
fn values_of(ctx: &Ctx, rows: &[&SettingMetric], name: &str) -> Vec<f64> {
    let mut v: Vec<f64> = rows.iter().filter_map(|m| ctx.param(&m.setting, name)).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// The swept parameters of a loss's settings (numeric, more than one value), `s` then `m` first.
fn swept(ctx: &Ctx, rows: &[&SettingMetric]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in rows {
        let Some(config) = ctx.r.settings.get(&m.setting) else { continue };
        for (k, v) in &config.params {
            if v.as_f64().is_some() && !names.contains(k) && values_of(ctx, rows, k).len() > 1 {
                names.push(k.clone());
            }
        }
    }
    names.sort_by_key(|n| (n != "s" && n != "alpha", n != "m", n.clone()));
    names
}

/// Sensitivity figures, one per protocol's primary metric.
pub fn sensitivity(ctx: &Ctx) -> Result<Rendered> {
    let clean = aggregate::clean_ratio(ctx.r)?;
    let losses = aggregate::loss_order(ctx.r)?;
    let mut out = Vec::new();
    for key in aggregate::primary_columns(&ctx.rows) {
        let scale = scale_of(&key);
        let at_key: Vec<&SettingMetric> =
            ctx.rows.iter().filter(|m| m.key() == key && m.noise_ratio == clean).collect();
        let reference = at_key.iter().find(|m| m.loss == REFERENCE).map(|m| m.mean * scale);
        let mut panels = Vec::new();
        let mut legend = Vec::new();
        let mut values: Vec<f64> = reference.into_iter().collect();
        for loss in &losses {
            let rows: Vec<&SettingMetric> = at_key.iter().copied().filter(|m| &m.loss == loss).collect();
            let axes = swept(ctx, &rows);
            if rows.len() < 2 || axes.is_empty() {
                continue;
            }
            let averaged =
                if axes.len() > 2 { format!(" (mean over {})", axes[2..].join(", ")) } else { String::new() };
            if axes.len() == 1 {
                let mut pts: Vec<(f64, f64, (f64, f64))> = rows
                    .iter()
                    .filter_map(|m| {
                        Some((ctx.param(&m.setting, &axes[0])?, m.mean * scale, super::interval_bounds(m, scale)))
                    })
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut p = Panel::new(loss.clone(), axes[0].clone(), metric_title(&key));
                p.y_scale = Scale::Linear;
                let mut s = Series::new(loss_color(loss), Draw::LineDots, pts.iter().map(|p| (p.0, p.1)).collect());
                if pts.iter().any(|p| p.2 .1 > p.2 .0) {
                    s.err = Some(pts.iter().map(|p| p.2).collect());
                }
                p.series.push(s);
                if let Some(r) = reference {
                    p.hlines.push(panel::HLine { y: r, color: loss_color(REFERENCE), label: "P2SGrad".into() });
                }
                panels.push(StudyPanel::Line(p));
            } else {
                let (xs, ys) = (values_of(ctx, &rows, &axes[0]), values_of(ctx, &rows, &axes[1]));
                let mut cells = Vec::new();
                for (ix, x) in xs.iter().enumerate() {
                    for (iy, y) in ys.iter().enumerate() {
                        let here: Vec<f64> = rows
                            .iter()
                            .filter(|m| {
                                ctx.param(&m.setting, &axes[0]) == Some(*x)
                                    && ctx.param(&m.setting, &axes[1]) == Some(*y)
                            })
                            .map(|m| m.mean * scale)
                            .collect();
                        if !here.is_empty() {
                            let v = here.iter().sum::<f64>() / here.len() as f64;
                            values.push(v);
                            cells.push((ix, iy, v));
                        }
                    }
                }
                panels.push(StudyPanel::Heat(Heatmap {
                    title: format!("{loss}{averaged}"),
                    x_name: axes[0].clone(),
                    y_name: axes[1].clone(),
                    xs,
                    ys,
                    cells,
                }));
            }
            legend.push(LegendEntry::new(loss.clone(), loss_color(loss), Mark::Swatch));
        }
        if panels.is_empty() {
            continue;
        }
        match reference {
            Some(r) => {
                legend.push(LegendEntry::new(
                    format!("P2SGrad: {}", fmt_value(r)),
                    loss_color(REFERENCE),
                    Mark::Dashed,
                ));
                legend.push(LegendEntry::note("(no hyper-parameters)"));
            }
            None => legend.push(LegendEntry::note("no P2SGrad trial to compare")),
        }
        for p in &panels {
            if let StudyPanel::Line(l) = p {
                values.extend(l.series.iter().flat_map(|s| s.points.iter().map(|q| q.1)));
            }
        }
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let title = format!("Sensitivity: {}", metric_title(&key));
        let fig = SensitivityFigure {
            title: title.clone(),
            metric_label: if scale == 100.0 { "mean (%)".into() } else { "mean".into() },
            panels,
            range: (lo, hi),
            reference,
            legend,
        };
        let stem = format!("sensitivity_{}", slug(&key));
        out.push(ctx.save(
            &fig,
            &stem,
            &title,
            "The metric (mean over seeds) over each loss's hyper-parameter grid, one panel per loss with a shared colour scale; P2SGrad, which has no hyper-parameters, is marked on the colour bar and as a dashed line.",
        )?);
    }
    Ok(if out.is_empty() {
        Err("no hyper-parameter sweep: no loss has more than one setting with evaluations".into())
    } else {
        Ok(out)
    })
}

/// Noise-robustness figures, one per protocol's primary metric: a panel per noise kind, the
/// metric against the noise ratio (the clean value at 0 % in every panel).
pub fn noise_robustness(ctx: &Ctx) -> Result<Rendered> {
    if !ctx.r.has_noise_study()? {
        return Ok(Err("no noise study: every trial has the same noise setting".into()));
    }
    let order = aggregate::setting_order(ctx.r)?;
    let clean = aggregate::clean_ratio(ctx.r)?;
    let mut kinds: Vec<String> = ctx.r.noise_settings()?.into_iter().map(|(k, _)| k).filter(|k| k != "none").collect();
    kinds.dedup();
    let mut out = Vec::new();
    for key in aggregate::primary_columns(&ctx.rows) {
        let scale = scale_of(&key);
        let rows: Vec<&SettingMetric> = ctx.rows.iter().filter(|m| m.key() == key).collect();
        let mut settings: Vec<(&str, &str)> = Vec::new();
        for m in &rows {
            if !settings.iter().any(|s| s.1 == m.setting) {
                settings.push((&m.loss, &m.setting));
            }
        }
        settings.sort_by_key(|s| order.get(s.1).copied().unwrap_or(usize::MAX));
        let mut panels = Vec::new();
        let mut legend = Vec::new();
        for kind in &kinds {
            let mut p = Panel::new(format!("{} noise", kind), "label noise ratio (%)", metric_title(&key));
            for (loss, setting) in &settings {
                let same: Vec<&&str> = settings.iter().filter(|s| s.0 == *loss).map(|s| &s.1).collect();
                let k = same.iter().position(|s| **s == *setting).unwrap_or(0);
                let color = shade(loss_color(loss), k, same.len());
                let mut pts: Vec<(f64, f64, (f64, f64))> = rows
                    .iter()
                    .filter(|m| m.setting == *setting && (m.noise_kind == *kind || m.noise_ratio == clean))
                    .map(|m| (m.noise_ratio * 100.0, m.mean * scale, super::interval_bounds(m, scale)))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                if pts.len() < 2 {
                    continue;
                }
                let mut s = Series::new(color, Draw::LineDots, pts.iter().map(|p| (p.0, p.1)).collect());
                s.err = Some(pts.iter().map(|p| p.2).collect());
                p.series.push(s);
                let entry = ctx.setting_label(setting, "none", 0.0);
                if !legend.iter().any(|e: &LegendEntry| e.label == entry) {
                    legend.push(LegendEntry::new(entry, color, Mark::Line));
                }
            }
            if !p.is_empty() {
                panels.push(p);
            }
        }
        if panels.is_empty() {
            continue;
        }
        legend.push(LegendEntry::note("bars: 95 % intervals"));
        let title = format!("Noise robustness: {}", metric_title(&key));
        let cols = panels.len().min(3);
        let fig = PanelFigure { title: title.clone(), panels, legend, cols };
        out.push(ctx.save(
            &fig,
            &format!("noise_{}", slug(&key)),
            &title,
            "The metric against the label-noise ratio, a panel per noise kind, one line per setting (shades of the loss's colour), mean over seeds with bars at the 95 % interval.",
        )?);
    }
    Ok(if out.is_empty() { Err("no setting was evaluated at two or more noise ratios".into()) } else { Ok(out) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_and_clamps() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(2.0), viridis(1.0));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
    }

    #[test]
    fn slugs_are_file_names() {
        let k = ColumnKey { protocol: "ijbc".into(), variant: String::new(), metric: "tar@far=1e-4".into() };
        assert_eq!(slug(&k), "ijbc_tar_far_1e_4");
    }
}
