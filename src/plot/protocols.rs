//! Protocol figures from the curve points in evals.parquet (see [`crate::results::names`] for
//! the metric names): ROC (TAR against FAR, log x) and TPIR against FPIR, CMC (identification
//! rate against rank), and MegaFace rank-1 against the number of distractors (log x). One panel
//! per protocol (and variant, where a protocol ran several), one line per loss (its
//! representative setting), mean over seeds with bars at the 95 % interval
//! (aggregate::IntervalMethod); points a protocol cannot resolve (fewer impostor comparisons than 1/FAR)
//! are not drawn.

use super::{Ctx, Rendered};
use crate::figure::panel::{Draw, Panel, PanelFigure, Scale, Series};
use crate::figure::style::{loss_color, LegendEntry, Mark};
use crate::results::aggregate::SettingMetric;
use crate::results::names::{protocol_label, protocol_rank, Curve, Metric};
use anyhow::Result;

/// `(protocol, variant)` pairs with points of `curve`, in table order.
fn panels_of(rows: &[SettingMetric], curve: Curve) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for m in rows {
        if Metric::parse(&m.metric).curve_point().is_some_and(|(c, _)| c == curve) {
            let k = (m.protocol.clone(), m.variant.clone());
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out.sort_by(|a, b| protocol_rank(&a.0).cmp(&protocol_rank(&b.0)).then(a.cmp(b)));
    out
}

/// What tells `variant` apart from the other `variants` of its protocol: its `key=value` parts
/// that not all of them share (`part=g1`), or "combined" when it has none of its own.
pub fn variant_label(variant: &str, variants: &[&str]) -> String {
    let parts = |v: &str| v.split(';').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect::<Vec<_>>();
    let own: Vec<String> =
        parts(variant).into_iter().filter(|p| !variants.iter().all(|v| parts(v).contains(p))).collect();
    if own.is_empty() {
        "combined".into()
    } else {
        own.join("; ")
    }
}

/// What one protocol figure draws.
#[derive(Clone, Copy)]
struct CurveSpec {
    curve: Curve,
    title: &'static str,
    x_label: &'static str,
    y_label: &'static str,
    x_scale: Scale,
    stem: &'static str,
    caption: &'static str,
}

fn curve_figure(ctx: &Ctx, spec: &CurveSpec) -> Result<Rendered> {
    let CurveSpec { curve, title, x_label, y_label, x_scale, stem, caption } = *spec;
    let keys = panels_of(&ctx.rows, curve);
    if keys.is_empty() {
        let example = match curve {
            Curve::Roc => "tar@far=1e-4",
            Curve::Tpir => "tpir@fpir=1e-2",
            Curve::Cmc => "cmc@rank=5 or rank5",
            Curve::Distractors => "rank1@distractors=1000",
        };
        return Ok(Err(format!("evals.parquet holds no metric like `{example}` for any done trial")));
    }
    let variants_of = |p: &str| keys.iter().filter(|k| k.0 == p).map(|k| k.1.as_str()).collect::<Vec<&str>>();
    let mut panels = Vec::new();
    for (protocol, variant) in &keys {
        let variants = variants_of(protocol);
        let panel_title = if variants.len() > 1 {
            format!("{}: {}", protocol_label(protocol), variant_label(variant, &variants))
        } else {
            protocol_label(protocol)
        };
        let mut p = Panel::new(panel_title, x_label, y_label);
        p.x_scale = x_scale;
        for rep in &ctx.reps {
            let mut pts: Vec<(f64, f64, (f64, f64))> = ctx
                .rows
                .iter()
                .filter(|m| {
                    m.setting == rep.setting
                        && m.noise_ratio == rep.noise_ratio
                        && m.noise_kind == rep.noise_kind
                        && &m.protocol == protocol
                        && &m.variant == variant
                })
                .filter(|m| m.resolvable != Some(false))
                .filter_map(|m| {
                    let metric = Metric::parse(&m.metric);
                    let (c, x) = metric.curve_point()?;
                    let scale = if metric.is_rate() { 100.0 } else { 1.0 };
                    (c == curve).then_some((x, m.mean * scale, super::interval_bounds(m, scale)))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut s = Series::new(loss_color(&rep.loss), Draw::LineDots, pts.iter().map(|p| (p.0, p.1)).collect());
            if pts.iter().any(|p| p.2 .1 > p.2 .0) {
                s.err = Some(pts.iter().map(|p| p.2).collect());
            }
            p.series.push(s);
        }
        if !p.is_empty() {
            panels.push(p);
        }
    }
    if panels.is_empty() {
        return Ok(Err("no curve points for the settings drawn".into()));
    }
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
    let cols = panels.len().min(3);
    let fig = PanelFigure { title: title.to_string(), panels, legend, cols };
    let t = fig.title.clone();
    Ok(Ok(vec![ctx.save(&fig, stem, &t, caption)?]))
}

/// ROC: TAR against FAR; and TPIR against FPIR for open-set identification when present.
pub fn roc(ctx: &Ctx) -> Result<Rendered> {
    let mut out = Vec::new();
    let mut reasons = Vec::new();
    for (curve, title, x, y, stem, caption) in [
        (
            Curve::Roc,
            "Verification ROC",
            "false accept rate (FAR)",
            "true accept rate TAR (%)",
            "roc",
            "1:1 verification: true accept rate against false accept rate (log scale), one line per loss, bars at the 95 % interval; points the protocol cannot resolve (fewer impostor comparisons than 1/FAR) are left out.",
        ),
        (
            Curve::Tpir,
            "Open-set identification",
            "false positive identification rate (FPIR)",
            "TPIR (%)",
            "tpir",
            "1:N open-set identification: true positive identification rate against false positive identification rate (log scale).",
        ),
    ] {
        let spec = CurveSpec { curve, title, x_label: x, y_label: y, x_scale: Scale::Log, stem, caption };
        match curve_figure(ctx, &spec)? {
            Ok(f) => out.extend(f),
            Err(e) => reasons.push(e),
        }
    }
    Ok(if out.is_empty() { Err(reasons.join("; ")) } else { Ok(out) })
}

/// CMC: identification rate against rank.
pub fn cmc(ctx: &Ctx) -> Result<Rendered> {
    let spec = CurveSpec {
        curve: Curve::Cmc,
        title: "Cumulative match characteristic",
        x_label: "rank",
        y_label: "identification rate (%)",
        x_scale: Scale::Auto,
        stem: "cmc",
        caption: "Closed-set identification rate within the top k against k, one line per loss.",
    };
    curve_figure(ctx, &spec)
}

/// MegaFace rank-1 against the number of distractors.
pub fn distractors(ctx: &Ctx) -> Result<Rendered> {
    let spec = CurveSpec {
        curve: Curve::Distractors,
        title: "Rank-1 identification against gallery size",
        x_label: "number of distractors",
        y_label: "rank-1 identification rate (%)",
        x_scale: Scale::Log,
        stem: "megaface_distractors",
        caption: "Rank-1 identification rate against the number of distractors in the gallery (log scale), one line per loss.",
    };
    curve_figure(ctx, &spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_labels_name_what_differs() {
        let v = ["a=1; b=2", "a=1; b=2; part=g1", "a=1; b=2; part=g2"];
        assert_eq!(variant_label(v[0], &v), "combined");
        assert_eq!(variant_label(v[1], &v), "part=g1");
        assert_eq!(variant_label(v[2], &v), "part=g2");
    }
}
