//! Figures, re-rendered from an experiment's parquet files alone (no retraining): training
//! curves, gradient magnitudes, angles and θ_y histograms, empirical g_y against θ_y, protocol
//! curves (ROC, TPIR, CMC, MegaFace rank-1 against distractors) and study figures (sensitivity
//! over s × m, noise robustness). Each kind renders what the results hold and is skipped, with
//! the reason, when they hold nothing for it. Output: `results/<experiment>/plots/<name>.png`
//! and `.svg`, and `plots/plots.json`, the manifest the report embeds figures from.
//!
//! The look and the panels are [`crate::figure`]'s; reading and aggregating is
//! [`crate::results`]'s.

pub mod capacity;
pub mod coef;
pub mod histograms;
pub mod protocols;
pub mod studies;
pub mod training;

use crate::figure::style;
use crate::results::aggregate::{self, Representative, SettingMetric};
use crate::results::{FigureInfo, Manifest, Results, Skipped, MANIFEST};
use anyhow::Result;
use polars::prelude::DataFrame;
use std::path::{Path, PathBuf};

/// A figure kind's result: the figures drawn, or why there was nothing to draw.
pub type Rendered = std::result::Result<Vec<FigureInfo>, String>;

/// Steps columns the figures read (those absent in a run are skipped).
pub const STEP_COLUMNS: &[&str] = &[
    "lr",
    "loss",
    "train_acc",
    "theta_y_deg_mean",
    "theta_other_deg_mean",
    "coef_y_mean",
    "coef_other_sum_mean",
    "grad_norm_feat_mean",
    "grad_norm_class_weights",
    "feat_norm_mean",
    "theta_y_deg_mean_clean",
    "theta_y_deg_mean_noisy",
    "coef_y_mean_clean",
    "coef_y_mean_noisy",
];

/// Everything the figure kinds share: the results, the per-setting metrics, one representative
/// setting per loss, and the steps averaged over seeds.
pub struct Ctx<'a> {
    pub r: &'a Results,
    pub rows: Vec<SettingMetric>,
    pub reps: Vec<Representative>,
    pub steps: Option<DataFrame>,
    pub out: PathBuf,
}

impl<'a> Ctx<'a> {
    pub fn new(r: &'a Results) -> Result<Ctx<'a>> {
        let rows = aggregate::by_setting(r)?;
        let reps = aggregate::representatives(r, &rows)?;
        let steps = aggregate::steps_by_setting(r, STEP_COLUMNS)?;
        Ok(Ctx { r, rows, reps, steps, out: r.dir.plots() })
    }

    /// Saves a figure under `plots/` and describes it.
    pub fn save<F: style::Figure>(&self, fig: &F, stem: &str, title: &str, caption: &str) -> Result<FigureInfo> {
        style::save(fig, &self.out, stem)?;
        Ok(FigureInfo { stem: stem.into(), title: title.into(), caption: caption.into() })
    }

    /// A legend note "mean over N seeds" when some setting has more than one seed.
    pub fn seeds_note(&self) -> Option<style::LegendEntry> {
        let max = self.rows.iter().map(|m| m.n).max().unwrap_or(1);
        (max > 1).then(|| style::LegendEntry::note(format!("mean over up to {max} seeds")))
    }
}

/// The 95 % interval of `m` scaled by `scale` (its mean twice where it has none).
pub fn interval_bounds(m: &SettingMetric, scale: f64) -> (f64, f64) {
    m.interval.map_or((m.mean * scale, m.mean * scale), |(lo, hi)| (lo * scale, hi * scale))
}

impl Ctx<'_> {
    /// Display label of a setting under a noise setting (see [`Results::setting_label`]):
    /// `cosface m=0.35, s=32, flip 20%`.
    pub fn setting_label(&self, setting: &str, noise_kind: &str, noise_ratio: f64) -> String {
        let s = self.r.setting_label(setting);
        if noise_ratio > 0.0 {
            format!("{s}, {}", crate::results::noise_label(noise_kind, noise_ratio))
        } else {
            s
        }
    }

    /// The numeric value of hyper-parameter `name` in `setting`, from its typed configuration.
    pub fn param(&self, setting: &str, name: &str) -> Option<f64> {
        self.r.settings.get(setting)?.params.get(name)?.as_f64()
    }
}

/// The noisiest setting of a noise study (the largest ratio; the first kind at it), if any.
pub fn worst_noise(r: &Results) -> Result<Option<(String, f64)>> {
    let settings = r.noise_settings()?;
    let max = settings.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    Ok(settings.into_iter().filter(|s| s.0 != "none" && s.1 > 0.0).find(|s| s.1 == max))
}

/// Renders every figure kind of the experiment in `dir` and writes the manifest.
pub fn render_all(dir: &Path) -> Result<Manifest> {
    let r = Results::load(dir)?;
    render(&r)
}

/// Renders every figure kind of loaded results and writes the manifest.
pub fn render(r: &Results) -> Result<Manifest> {
    let ctx = Ctx::new(r)?;
    type Kind = fn(&Ctx) -> Result<Rendered>;
    let kinds: &[(&str, Kind)] = &[
        ("training curves", training::training_curves),
        ("gradient magnitudes", training::gradients),
        ("angles", training::angles),
        ("clean vs noisy telemetry", training::noise_telemetry),
        ("θ_y histograms", histograms::angle_histograms),
        ("g_y against θ_y", coef::coef_vs_theta),
        ("ROC", protocols::roc),
        ("CMC", protocols::cmc),
        ("MegaFace rank-1 vs distractors", protocols::distractors),
        ("sensitivity", studies::sensitivity),
        ("noise robustness", studies::noise_robustness),
        ("capacity", capacity::capacity),
    ];
    let mut manifest = Manifest::default();
    for (kind, render) in kinds {
        match render(&ctx)? {
            Ok(figs) => manifest.figures.extend(figs),
            Err(reason) => manifest.skipped.push(Skipped { kind: kind.to_string(), reason }),
        }
    }
    crate::store::write_atomic(&ctx.out.join(MANIFEST), serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    Ok(manifest)
}
