//! Writing curves: a per-setting table (the default, for reading in a terminal), CSV, JSON
//! records, and a PNG or SVG figure drawn with the shared plot style (one row of panels per
//! class count: P_y, g_y and ‖∂L/∂x‖ against θ_y; one colour per loss, shades for its settings).

use super::curves::Curve;
use crate::figure::panel::{Draw, Panel, PanelFigure, Series};
use crate::figure::style::{self, LegendEntry, Mark};
use crate::loss::{self, LossConfig, ParamValue};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Parameters always shown in a setting's label; the others only when not at their default.
const HEADLINE: &[&str] = &["s", "m", "alpha", "m1", "m2", "m3"];

/// `arcface s=64 m=0.5`: the loss, its headline parameters and any other non-default ones, in
/// the registry's parameter order.
pub fn setting_label(config: &LossConfig) -> String {
    let mut out = config.name.clone();
    if let Some(entry) = loss::find(&config.name) {
        for p in entry.params {
            let Some(v) = config.params.get(p.name) else { continue };
            if HEADLINE.contains(&p.name) || *v != p.default.value() {
                out.push_str(&format!(" {}={}", p.name, v.short()));
            }
        }
    }
    out
}

/// Every parameter as `key=value` separated by spaces (no commas, so CSV needs no quoting).
fn params_text(config: &LossConfig) -> String {
    config.params.iter().map(|(k, v)| format!("{k}={}", v.short())).collect::<Vec<_>>().join(" ")
}

/// The default output: one block per setting, a header line then aligned columns.
pub fn table(curves: &[Curve]) -> String {
    let mut out = String::new();
    for c in curves {
        out.push_str(&format!(
            "# {}  C={}  ‖x‖={}  ({})\n",
            setting_label(&c.spec.loss),
            c.spec.classes,
            c.feat_norm,
            params_text(&c.spec.loss)
        ));
        let p_name = if c.spec.loss.name == "p2sgrad" { "cos_theta_y" } else { "p_target" };
        out.push_str(&format!(
            "{:>9} {:>13} {:>13} {:>17} {:>10}\n",
            "theta_deg", p_name, "coef_target", "grad_norm_feature", "scale"
        ));
        for p in &c.points {
            out.push_str(&format!(
                "{:>9} {:>13.6e} {:>13.6e} {:>17.6e} {:>10.4}\n",
                p.theta_deg, p.p_target, p.coef_target, p.grad_norm_feature, p.scale
            ));
        }
        out.push('\n');
    }
    out
}

/// The CSV column names, in order.
pub const CSV_HEADER: &str = "loss,params,classes,feat_norm,theta_deg,p_target,coef_target,grad_norm_feature,scale";

/// One row per (setting, angle); `params` is `key=value` pairs separated by spaces.
pub fn csv(curves: &[Curve]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for c in curves {
        let params = params_text(&c.spec.loss);
        for p in &c.points {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                c.spec.loss.name,
                params,
                c.spec.classes,
                c.feat_norm,
                p.theta_deg,
                p.p_target,
                p.coef_target,
                p.grad_norm_feature,
                p.scale
            ));
        }
    }
    out
}

/// One JSON record (see `p2sbench curves --help`).
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub loss: &'a str,
    pub params: &'a BTreeMap<String, ParamValue>,
    pub classes: i64,
    pub feat_norm: f64,
    pub theta_deg: f64,
    pub p_target: f64,
    pub coef_target: f64,
    pub grad_norm_feature: f64,
    pub scale: f64,
}

/// A JSON list of [`Record`]s, one per (setting, angle).
pub fn json(curves: &[Curve]) -> Result<String> {
    let records: Vec<Record> = curves
        .iter()
        .flat_map(|c| {
            c.points.iter().map(move |p| Record {
                loss: &c.spec.loss.name,
                params: &c.spec.loss.params,
                classes: c.spec.classes,
                feat_norm: c.feat_norm,
                theta_deg: p.theta_deg,
                p_target: p.p_target,
                coef_target: p.coef_target,
                grad_norm_feature: p.grad_norm_feature,
                scale: p.scale,
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&records)? + "\n")
}

/// The figure: a row of three panels per class count, every setting overlaid.
pub fn figure(curves: &[Curve]) -> PanelFigure {
    let mut settings: Vec<&LossConfig> = Vec::new();
    let mut classes: Vec<i64> = Vec::new();
    for c in curves {
        if !settings.contains(&&c.spec.loss) {
            settings.push(&c.spec.loss);
        }
        if !classes.contains(&c.spec.classes) {
            classes.push(c.spec.classes);
        }
    }
    let color = |cfg: &LossConfig| {
        let family: Vec<&&LossConfig> = settings.iter().filter(|s| s.name == cfg.name).collect();
        let k = family.iter().position(|s| **s == cfg).unwrap_or(0);
        style::shade(style::loss_color(&cfg.name), k, family.len())
    };
    let feat_norm = curves.first().map(|c| c.feat_norm).unwrap_or(1.0);
    let mut panels = Vec::new();
    for &c in &classes {
        let mut p = Panel::new(format!("P_y(θ), C = {c}"), "θ_y (degrees)", "P_y (P2SGrad: cos θ_y)");
        let mut g = Panel::new(format!("g_y = ∂L/∂cos θ_y, C = {c}"), "θ_y (degrees)", "g_y (per sample)");
        let mut n = Panel::new(format!("‖∂L/∂x‖, C = {c}"), "θ_y (degrees)", "‖∂L/∂x‖ (per sample)");
        for curve in curves.iter().filter(|cv| cv.spec.classes == c) {
            let col = color(&curve.spec.loss);
            let pts = |f: fn(&super::curves::CurvePoint) -> f64| {
                curve.points.iter().map(|pt| (pt.theta_deg, f(pt))).collect::<Vec<_>>()
            };
            p.series.push(Series::new(col, Draw::Line, pts(|pt| pt.p_target)));
            g.series.push(Series::new(col, Draw::Line, pts(|pt| pt.coef_target)));
            n.series.push(Series::new(col, Draw::Line, pts(|pt| pt.grad_norm_feature)));
        }
        panels.extend([p, g, n]);
    }
    let mut legend: Vec<LegendEntry> =
        settings.iter().map(|s| LegendEntry::new(setting_label(s), color(s), Mark::Line)).collect();
    legend.push(LegendEntry::note(""));
    legend.push(LegendEntry::note("non-target angles 90°"));
    legend.push(LegendEntry::note(format!("‖x‖ = {feat_norm}, ‖W_j‖ = 1")));
    PanelFigure {
        title: "Target probability, coefficient and feature gradient against θ_y".into(),
        panels,
        legend,
        cols: 3,
    }
}

/// Renders the figure to `path` as PNG (`svg = false`) or SVG.
pub fn write_image(curves: &[Curve], path: &Path, svg: bool) -> Result<()> {
    style::write(&figure(curves), path, svg)
}
