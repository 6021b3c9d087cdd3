//! The x–y panel most figures are made of: lines, dashed lines, markers and error bars on linear
//! or log axes, optional horizontal reference lines, drawn with the shared style. Log axes are
//! drawn on log10-transformed values with tick labels written back as powers of ten, so every
//! panel has one coordinate type whatever its scales.

use super::style::{self, de, LegendEntry};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// How an axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log,
    /// Log when every value is positive and they span two decades or more.
    Auto,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    Line,
    Dashed,
    /// Line with a marker at every point.
    LineDots,
    Dots,
    HollowDots,
}

/// One series of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    pub color: RGBColor,
    pub draw: Draw,
    pub points: Vec<(f64, f64)>,
    /// Error bars (or, with `band`, a shaded band): the (lower, upper) bound at each point.
    pub err: Option<Vec<(f64, f64)>>,
    /// Draw `err` as a band along the line rather than as bars.
    pub band: bool,
}

impl Series {
    pub fn new(color: RGBColor, draw: Draw, points: Vec<(f64, f64)>) -> Series {
        Series { color, draw, points, err: None, band: false }
    }
}

/// A horizontal reference line with a label drawn at its right end.
#[derive(Debug, Clone)]
pub struct HLine {
    pub y: f64,
    pub color: RGBColor,
    pub label: String,
}

/// One panel.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub series: Vec<Series>,
    pub hlines: Vec<HLine>,
}

impl Panel {
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Panel {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: Vec::new(),
            hlines: Vec::new(),
        }
    }

    /// Whether the panel has anything to draw.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.points.is_empty())
    }
}

/// Decides whether an axis over `values` is drawn on a log scale.
pub fn use_log(scale: Scale, values: impl Iterator<Item = f64>) -> bool {
    match scale {
        Scale::Linear => false,
        Scale::Log => true,
        Scale::Auto => {
            let (mut lo, mut hi, mut any) = (f64::INFINITY, 0.0f64, false);
            for v in values.filter(|v| v.is_finite()) {
                if v <= 0.0 {
                    return false;
                }
                lo = lo.min(v);
                hi = hi.max(v);
                any = true;
            }
            any && hi / lo >= 100.0
        }
    }
}

/// A tick label for a log10 coordinate: `1e-4`, `0.01`, `1`, `100`, `3.2e-5`.
pub fn pow10_label(v: f64) -> String {
    let x = 10f64.powf(v);
    if (v - v.round()).abs() < 1e-6 {
        let k = v.round() as i32;
        return if (-2..=3).contains(&k) { format!("{}", 10f64.powi(k)) } else { format!("1e{k}") };
    }
    if (1e-2..1e4).contains(&x) {
        format!("{}", (x * 100.0).round() / 100.0)
    } else {
        format!("{x:.1e}")
    }
}

/// A tick label for a linear coordinate, short whatever the range.
pub fn linear_label(v: f64, span: f64) -> String {
    if v == 0.0 || v.abs() < span * 1e-9 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let decimals = if span > 0.0 { (2.0 - span.log10().floor()).clamp(0.0, 6.0) as usize } else { 2 };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The padded range of `values`; a single value gets ±1 (a decade on a log axis) or ±5 %.
fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let pad = if lo.abs() > 1e-12 && !log { lo.abs() * 0.05 } else { 1.0 };
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Draws `panel` in `area`.
pub fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> Result<()> {
    let xs = || panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = || {
        panel
            .series
            .iter()
            .flat_map(|s| {
                s.points.iter().enumerate().flat_map(move |(i, p)| {
                    let (lo, hi) = s.err.as_ref().and_then(|e| e.get(i)).copied().unwrap_or((p.1, p.1));
                    [lo.min(p.1), hi.max(p.1)]
                })
            })
            .chain(panel.hlines.iter().map(|h| h.y))
    };
    let x_log = use_log(panel.x_scale, xs());
    let y_log = use_log(panel.y_scale, ys().filter(|v| v.is_finite()));
    let tx = move |v: f64| if x_log { v.log10() } else { v };
    let ty = move |v: f64| if y_log { v.log10() } else { v };
    let (x0, x1) = range(xs().map(tx), x_log);
    let (y0, y1) = range(ys().map(ty), y_log);
    let x_label = |v: &f64| if x_log { pow10_label(*v) } else { linear_label(*v, x1 - x0) };
    let y_label = |v: &f64| if y_log { pow10_label(*v) } else { linear_label(*v, y1 - y0) };
    let x_desc = if x_log { format!("{} (log scale)", panel.x_label) } else { panel.x_label.clone() };
    let y_desc = if y_log { format!("{} (log scale)", panel.y_label) } else { panel.y_label.clone() };

    let mut chart = ChartBuilder::on(area)
        .caption(style::fit(&panel.title, area.dim_in_pixel().0, style::CAPTION_PX), style::bold(style::CAPTION_PX))
        .margin(12)
        .x_label_area_size(58)
        .y_label_area_size(86)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style(style::text(style::AXIS_PX))
        .label_style(style::text(style::TICK_PX))
        .x_labels(if x_log { ((x1 - x0).ceil() as usize + 1).clamp(3, 10) } else { 6 })
        .y_labels(if y_log { ((y1 - y0).ceil() as usize + 1).clamp(3, 10) } else { 6 })
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(de)?;

    for h in &panel.hlines {
        let y = ty(h.y);
        if !y.is_finite() {
            continue;
        }
        chart.draw_series(DashedLineSeries::new([(x0, y), (x1, y)], 10, 6, h.color.stroke_width(2))).map_err(de)?;
        chart
            .plotting_area()
            .draw(&Text::new(
                h.label.clone(),
                (x1, y),
                style::text(style::TICK_PX).color(&h.color).pos(Pos::new(HPos::Right, VPos::Bottom)),
            ))
            .map_err(de)?;
    }
    for s in panel.series.iter().filter(|s| s.band) {
        let Some(err) = &s.err else { continue };
        let edge: Vec<(f64, f64)> = s
            .points
            .iter()
            .zip(err)
            .map(|(&(x, _), &(lo, _))| (tx(x), ty(lo)))
            .chain(s.points.iter().zip(err).rev().map(|(&(x, _), &(_, hi))| (tx(x), ty(hi))))
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if edge.len() >= 3 {
            chart.draw_series(std::iter::once(Polygon::new(edge, s.color.mix(0.18).filled()))).map_err(de)?;
        }
    }
    for s in &panel.series {
        let pts: Vec<(f64, f64)> =
            s.points.iter().map(|&(x, y)| (tx(x), ty(y))).filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        let stroke = s.color.stroke_width(3);
        match s.draw {
            Draw::Line | Draw::LineDots => {
                chart.draw_series(LineSeries::new(pts.clone(), stroke)).map_err(de)?;
            }
            Draw::Dashed => {
                chart.draw_series(DashedLineSeries::new(pts.clone(), 10, 6, stroke)).map_err(de)?;
            }
            Draw::Dots | Draw::HollowDots => {}
        }
        match s.draw {
            Draw::LineDots | Draw::Dots => {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, s.color.filled()))).map_err(de)?;
            }
            Draw::HollowDots => {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, s.color.stroke_width(2)))).map_err(de)?;
            }
            _ => {}
        }
        if let (Some(err), false) = (&s.err, s.band) {
            for (&(x, _), &(lo, hi)) in s.points.iter().zip(err) {
                let (lo, hi, xx) = (ty(lo), ty(hi), tx(x));
                if !(lo.is_finite() && hi.is_finite() && xx.is_finite()) || hi <= lo {
                    continue;
                }
                let cap = (x1 - x0) * 0.008;
                for seg in [[(xx, lo), (xx, hi)], [(xx - cap, lo), (xx + cap, lo)], [(xx - cap, hi), (xx + cap, hi)]] {
                    chart.draw_series(std::iter::once(PathElement::new(seg, s.color.stroke_width(2)))).map_err(de)?;
                }
            }
        }
    }
    Ok(())
}

/// A figure made of a grid of [`Panel`]s with a title and a legend column.
#[derive(Debug, Clone)]
pub struct PanelFigure {
    pub title: String,
    pub panels: Vec<Panel>,
    pub legend: Vec<LegendEntry>,
    pub cols: usize,
}

impl style::Figure for PanelFigure {
    fn size(&self) -> (u32, u32) {
        style::grid_size(self.panels.len(), self.cols, style::legend_width(&self.legend), &self.title)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = style::frame(root, &self.title, &self.legend)?;
        let cols = self.cols.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().max(1).div_ceil(cols);
        for (area, panel) in body.split_evenly((rows, cols)).iter().zip(&self.panels) {
            draw_panel(area, panel)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_log_only_for_wide_positive_ranges() {
        assert!(use_log(Scale::Auto, [1e-4, 1.0].into_iter()));
        assert!(!use_log(Scale::Auto, [1.0, 50.0].into_iter()));
        assert!(!use_log(Scale::Auto, [-1.0, 1e4].into_iter()));
        assert!(!use_log(Scale::Auto, std::iter::empty()));
        assert!(use_log(Scale::Log, [1.0].into_iter()));
    }

    #[test]
    fn tick_labels() {
        assert_eq!(pow10_label(-4.0), "1e-4");
        assert_eq!(pow10_label(0.0), "1");
        assert_eq!(pow10_label(2.0), "100");
        assert_eq!(pow10_label(-1.0), "0.1");
        assert_eq!(linear_label(0.25, 1.0), "0.25");
        assert_eq!(linear_label(1500.0, 3000.0), "1500");
        assert_eq!(linear_label(-3.5e-18, 0.1), "0");
    }
}
