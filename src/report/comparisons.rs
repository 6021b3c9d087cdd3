//! The report's comparisons, all paired over seeds and held-out identities
//! ([`crate::results::compare`]):
//!
//! - each setting against the baseline (`[report] baseline`; or every pair, `comparisons =
//!   "all"`) on each protocol's primary metric, with Holm's correction across the comparisons
//!   of the table, the probability of improvement P(X > Y) over seeds as rliable defines it, and
//!   a verdict in words;
//! - the power of each of those comparisons: the smallest difference it could detect (80 %
//!   power at the observed variance) and how many seeds would detect one point;
//! - under label noise, one loss's drop (clean − noisy) against another's.

use super::markdown::Table;
use super::tables::{contrast_cell, p_text};
use crate::results::aggregate::{self, ColumnKey, SettingMetric};
use crate::results::compare::{self, Cell, Paired};
use crate::results::names::{protocol_label, Metric};
use crate::results::{noise_label, Results};
use crate::stats::{self, Contrast};
use anyhow::Result;

/// Power the report's detectable differences are stated at.
pub const POWER: f64 = 0.8;

/// The baseline setting: `[report] baseline` (a loss name: its first setting; or a setting),
/// else P2SGrad's first setting when it ran, else the best setting on `key`.
pub fn baseline(r: &Results, rows: &[SettingMetric], key: &ColumnKey, clean: f64) -> Option<String> {
    let here: Vec<&SettingMetric> = rows.iter().filter(|m| m.noise_ratio == clean && &m.key() == key).collect();
    let wanted = r.spec_value("report.baseline").and_then(|v| v.as_str()).map(str::to_string);
    let by_name = |name: &str| {
        here.iter()
            .find(|m| m.setting == name || r.setting_label(&m.setting) == name)
            .or_else(|| here.iter().find(|m| m.loss == name))
            .map(|m| m.setting.clone())
    };
    if let Some(w) = wanted {
        return by_name(&w);
    }
    if let Some(p2s) = by_name("p2sgrad") {
        return Some(p2s);
    }
    let higher = Metric::parse(&key.metric).higher_is_better();
    here.iter()
        .filter(|m| m.resolvable != Some(false))
        .max_by(|a, b| if higher { a.mean.total_cmp(&b.mean) } else { b.mean.total_cmp(&a.mean) })
        .map(|m| m.setting.clone())
}

/// One paired comparison X − Y of a column.
pub struct Comparison {
    pub x: String,
    pub y: String,
    pub key: ColumnKey,
    pub contrast: Contrast,
    pub holm: f64,
    /// P(X > Y) over seeds (rliable).
    pub improvement: f64,
}

/// The comparisons of the clean settings on each protocol's primary metric, Holm-corrected
/// together.
pub fn comparisons(r: &Results, rows: &[SettingMetric], paired: &Paired, clean: f64) -> Result<Vec<Comparison>> {
    let clean_rows: Vec<SettingMetric> = rows.iter().filter(|m| m.noise_ratio == clean).cloned().collect();
    let all_pairs = r.spec_value("report.comparisons").and_then(|v| v.as_str()) == Some("all");
    let order = aggregate::setting_order(r)?;
    let mut out = Vec::new();
    for key in aggregate::primary_columns(&clean_rows) {
        let mut settings: Vec<&SettingMetric> =
            clean_rows.iter().filter(|m| m.key() == key && m.resolvable != Some(false)).collect();
        settings.sort_by_key(|m| order.get(&m.setting).copied().unwrap_or(usize::MAX));
        let pairs: Vec<(&SettingMetric, &SettingMetric)> = if all_pairs {
            settings.iter().enumerate().flat_map(|(i, a)| settings[i + 1..].iter().map(move |b| (*a, *b))).collect()
        } else {
            let Some(base) = baseline(r, rows, &key, clean) else { continue };
            let Some(b) = settings.iter().find(|m| m.setting == base).copied() else { continue };
            settings.iter().filter(|m| m.setting != base).map(|m| (*m, b)).collect()
        };
        for (x, y) in pairs {
            let (cx, cy) = (cell(x, &key), cell(y, &key));
            let Some(contrast) = paired.difference(&cx, &cy) else { continue };
            let points = |c: &Cell| -> Vec<f64> {
                paired.seeds(c).map_or(Vec::new(), |m| m.values().map(|v| v.point).collect())
            };
            let improvement = stats::probability_of_improvement(&points(&cx), &points(&cy));
            out.push(Comparison {
                x: x.setting.clone(),
                y: y.setting.clone(),
                key: key.clone(),
                contrast,
                holm: 1.0,
                improvement,
            });
        }
    }
    let adjusted = stats::holm(&out.iter().map(|c| c.contrast.p).collect::<Vec<_>>());
    for (c, p) in out.iter_mut().zip(adjusted) {
        c.holm = p;
    }
    Ok(out)
}

fn cell(m: &SettingMetric, key: &ColumnKey) -> Cell {
    Cell::new(&m.setting, &m.noise_kind, m.noise_ratio, key)
}

fn metric_name(key: &ColumnKey) -> String {
    format!("{} {}", protocol_label(&key.protocol), Metric::parse(&key.metric).label())
}

fn unit(key: &ColumnKey) -> (f64, &'static str) {
    if Metric::parse(&key.metric).is_rate() {
        (100.0, " (points)")
    } else {
        (1.0, "")
    }
}

/// A table of one row per comparison: metric, setting, against, seeds, then `columns`.
fn comparison_table(columns: &[&str]) -> Table {
    let header = ["metric", "setting", "against", "seeds"].iter().chain(columns).map(|c| c.to_string()).collect();
    Table::new(header, 3)
}

/// The Comparisons table.
pub fn comparisons_table(r: &Results, found: &[Comparison]) -> Table {
    let columns = ["difference [95 % interval]", "p", "p (Holm)", "P(X > Y)", "verdict"];
    let mut t = comparison_table(&columns);
    for c in found {
        let rate = Metric::parse(&c.key.metric).is_rate();
        t.rows.push(vec![
            format!("{}{}", metric_name(&c.key), unit(&c.key).1),
            r.setting_label(&c.x),
            r.setting_label(&c.y),
            c.contrast.seeds.to_string(),
            contrast_cell(&c.contrast, rate),
            p_text(c.contrast.p),
            p_text(c.holm),
            format!("{:.2}", c.improvement),
            compare::verdict(c.contrast.estimate, c.holm, Metric::parse(&c.key.metric).higher_is_better()).into(),
        ]);
    }
    t
}

/// t quantile for `df` degrees of freedom (the normal's when `df` is infinite).
fn t_quantile(p: f64, df: f64) -> f64 {
    if df.is_finite() {
        stats::student_t_quantile(p, df)
    } else {
        stats::normal_quantile(p)
    }
}

/// The smallest difference a two-sided test at 5 % detects with [`POWER`], at standard error
/// `se` with `df` degrees of freedom.
pub fn detectable(se: f64, df: f64) -> f64 {
    (t_quantile(1.0 - compare::ALPHA / 2.0, df) + t_quantile(POWER, df)) * se
}

/// How many seeds would detect a difference of `delta` with [`POWER`], from a comparison's
/// per-seed spread and its identity part: `Ok(n)`, or `Err(reason)` when seeds alone cannot
/// (one seed gives no spread; the held-out identities' part already exceeds `delta`).
pub fn seeds_for(c: &Contrast, delta: f64) -> std::result::Result<usize, &'static str> {
    let k = c.per_seed.len();
    let Some(sd) = stats::sample_std(&c.per_seed) else { return Err("needs ≥ 2 seeds") };
    let seed_part = sd * sd / k as f64;
    let identity_part = (c.se * c.se - seed_part).max(0.0);
    if detectable(identity_part.sqrt(), f64::INFINITY) > delta {
        return Err("not by seeds: the held-out identities limit it");
    }
    (2..=100_000)
        .find(|&n| {
            let s = sd * sd / n as f64;
            let se = (s + identity_part).sqrt();
            let df = if s > 0.0 { (n - 1) as f64 * (se * se / s).powi(2) } else { f64::INFINITY };
            detectable(se, df) <= delta
        })
        .ok_or("more than 100,000 seeds")
}

/// The Power table: per comparison, its standard error, the smallest difference it could
/// detect, and the seeds that would detect one point.
pub fn power_table(r: &Results, found: &[Comparison]) -> Table {
    let mut t = comparison_table(&["standard error", "detectable difference (80 % power)", "seeds to detect 1 point"]);
    for c in found {
        let (k, _) = unit(&c.key);
        let one_point = if k == 100.0 { 0.01 } else { 1.0 };
        t.rows.push(vec![
            format!("{}{}", metric_name(&c.key), unit(&c.key).1),
            r.setting_label(&c.x),
            r.setting_label(&c.y),
            c.contrast.seeds.to_string(),
            format!("{:.2}", c.contrast.se * k),
            format!("{:.2}", detectable(c.contrast.se, c.contrast.df) * k),
            match seeds_for(&c.contrast, one_point) {
                Ok(n) => n.to_string(),
                Err(why) => why.to_string(),
            },
        ]);
    }
    t
}

/// Under label noise, for each noisy setting: every pair of losses' representative settings,
/// the difference of their drops (clean − noisy) on the first protocol's primary metric,
/// Holm-corrected across the table. `None` without a noise study or with one loss.
pub fn drop_table(r: &Results, rows: &[SettingMetric], paired: &Paired) -> Result<Option<(Table, String)>> {
    if !r.has_noise_study()? {
        return Ok(None);
    }
    let clean = aggregate::clean_ratio(r)?;
    let noise_settings = r.noise_settings()?;
    let clean_kind = noise_settings.iter().find(|(_, n)| *n == clean).map_or("none".to_string(), |(k, _)| k.clone());
    let Some(key) = aggregate::primary_columns(rows).into_iter().next() else { return Ok(None) };
    let reps = aggregate::representatives(r, rows)?;
    let rate = Metric::parse(&key.metric).is_rate();
    let higher = Metric::parse(&key.metric).higher_is_better();
    let mut found: Vec<(String, String, String, Contrast, Contrast, Contrast)> = Vec::new();
    for (kind, n) in noise_settings.iter().filter(|(_, n)| *n != clean) {
        for (i, a) in reps.iter().enumerate() {
            for b in &reps[i + 1..] {
                let c = |s: &str, k: &str, ratio: f64| Cell::new(s, k, ratio, &key);
                let (ac, an) = (c(&a.setting, &clean_kind, clean), c(&a.setting, kind, *n));
                let (bc, bn) = (c(&b.setting, &clean_kind, clean), c(&b.setting, kind, *n));
                let (Some(da), Some(db)) = (paired.difference(&ac, &an), paired.difference(&bc, &bn)) else { continue };
                let Some(dd) = paired.contrast(&[(1.0, &ac), (-1.0, &an), (-1.0, &bc), (1.0, &bn)]) else { continue };
                found.push((noise_label(kind, *n), a.setting.clone(), b.setting.clone(), da, db, dd));
            }
        }
    }
    if found.is_empty() {
        return Ok(None);
    }
    let adjusted = stats::holm(&found.iter().map(|f| f.5.p).collect::<Vec<_>>());
    let mut t = Table::new(
        vec![
            "noise".into(),
            "setting A".into(),
            "setting B".into(),
            "drop of A".into(),
            "drop of B".into(),
            "drop of A − drop of B".into(),
            "p".into(),
            "p (Holm)".into(),
            "verdict".into(),
        ],
        3,
    );
    for ((noise, a, b, da, db, dd), holm) in found.iter().zip(adjusted) {
        // A smaller drop is the more robust loss, whatever the metric's direction.
        let verdict = if holm >= compare::ALPHA || dd.estimate == 0.0 {
            "no detectable difference".to_string()
        } else if (dd.estimate < 0.0) == higher {
            "A drops less".to_string()
        } else {
            "A drops more".to_string()
        };
        t.rows.push(vec![
            noise.clone(),
            r.setting_label(a),
            r.setting_label(b),
            contrast_cell(da, rate),
            contrast_cell(db, rate),
            contrast_cell(dd, rate),
            p_text(dd.p),
            p_text(holm),
            verdict,
        ]);
    }
    Ok(Some((t, metric_name(&key))))
}
