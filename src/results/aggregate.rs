//! The polars aggregations behind every table and figure: each trial's final evaluation (the
//! last evaluated step), joined with trials.parquet and reduced over seeds per setting (loss and
//! hyper-parameters) and noise ratio; steps averaged over seeds; the spread of a metric over a
//! loss's hyper-parameter grid; the drop of a metric from clean to noisy training; and the
//! choice of one representative setting per loss for the figures that show one curve per loss.

use super::names::{self as metrics, Metric};
use super::{floats, strings, Results};
use crate::stats;
use anyhow::Result;
use polars::prelude::*;
use std::collections::BTreeMap;

/// One metric of one setting at one noise ratio, reduced over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingMetric {
    pub loss: String,
    pub params: String,
    pub setting: String,
    /// `none` for clean training, else the noise kind (`flip`, `outlier`).
    pub noise_kind: String,
    pub noise_ratio: f64,
    pub protocol: String,
    pub variant: String,
    pub metric: String,
    pub mean: f64,
    /// Sample standard deviation over seeds (`None` with one seed).
    pub std: Option<f64>,
    /// Number of seeds (done trials) behind the numbers.
    pub n: usize,
    /// The 95 % interval of `mean` and how it was made ([`IntervalMethod`]).
    pub interval: Option<(f64, f64)>,
    pub method: Option<IntervalMethod>,
    /// For a rate at a false-positive rate: whether every trial's protocol resolves it, and the
    /// fewest impostor comparisons (or non-mated searches) behind it.
    pub resolvable: Option<bool>,
    pub comparisons: Option<i64>,
}

/// How a setting's 95 % interval was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntervalMethod {
    /// One seed: that trial's bootstrap over the held-out identities.
    Identities,
    /// 2 to [`SEED_BOOTSTRAP_FROM`] − 1 seeds, or more than [`SEED_BOOTSTRAP_UNTIL`]: Student's
    /// t-interval over the seeds.
    TOverSeeds,
    /// [`SEED_BOOTSTRAP_FROM`] to [`SEED_BOOTSTRAP_UNTIL`] seeds: the percentile bootstrap of the
    /// mean over seeds.
    BootstrapOverSeeds,
}

/// From this many seeds on, a setting's interval is the bootstrap over seeds rather than the
/// t-interval (a percentile bootstrap of a mean needs about ten values to cover well).
pub const SEED_BOOTSTRAP_FROM: usize = 10;
/// Beyond this many seeds the t-interval again: the mean of so many is normal to within the
/// bootstrap's own Monte-Carlo error, and the bootstrap's cost grows with seeds × resamples (in
/// a ten-thousand-seed sweep it took about a seventh of `plot` and `report`).
pub const SEED_BOOTSTRAP_UNTIL: usize = 1000;

impl IntervalMethod {
    /// How the report describes it.
    pub fn describe(self) -> &'static str {
        match self {
            IntervalMethod::Identities => "one seed: the trial's bootstrap over the held-out identities",
            IntervalMethod::TOverSeeds => "Student's t-interval over seeds",
            IntervalMethod::BootstrapOverSeeds => "percentile bootstrap over seeds",
        }
    }
}

/// A table column: one metric of one protocol variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnKey {
    pub protocol: String,
    pub variant: String,
    pub metric: String,
}

impl SettingMetric {
    pub fn key(&self) -> ColumnKey {
        ColumnKey { protocol: self.protocol.clone(), variant: self.variant.clone(), metric: self.metric.clone() }
    }
}

/// Columns of trials.parquet joined onto per-trial rows.
fn trial_keys(r: &Results) -> LazyFrame {
    r.trials.clone().lazy().select([
        col("trial"),
        col("loss"),
        col("params"),
        col("setting"),
        col("seed"),
        col("noise_kind"),
        col("noise_ratio"),
        col("status"),
    ])
}

/// Each done trial's last evaluated value of every (protocol, variant, metric), with its loss,
/// setting, seed and noise ratio. `None` when no trial wrote evaluations.
pub fn final_evals(r: &Results) -> Option<LazyFrame> {
    let evals = r.evals.as_ref()?;
    Some(
        evals
            .clone()
            .lazy()
            .group_by([col("trial"), col("protocol"), col("variant"), col("metric")])
            .agg(
                ["value", "ci_lo", "ci_hi", "resolvable", "comparisons"]
                    .map(|c| col(c).sort_by([col("step")], SortMultipleOptions::default()).last().alias(c))
                    .into_iter()
                    .chain([col("step").max().alias("step")])
                    .collect::<Vec<_>>(),
            )
            .join(trial_keys(r), [col("trial")], [col("trial")], JoinArgs::new(JoinType::Inner))
            .filter(col("status").eq(lit("done"))),
    )
}

/// [`final_evals`] reduced over seeds: mean, sample std, min, max and count per setting, noise
/// ratio and metric.
pub fn by_setting_frame(r: &Results) -> Option<LazyFrame> {
    Some(
        final_evals(r)?
            .group_by([
                col("loss"),
                col("params"),
                col("setting"),
                col("noise_kind"),
                col("noise_ratio"),
                col("protocol"),
                col("variant"),
                col("metric"),
            ])
            .agg([
                col("value").mean().alias("mean"),
                col("value").std(1).alias("std"),
                col("value").count().cast(DataType::Int64).alias("n"),
            ]),
    )
}

/// The order settings first appear in trials.parquet (the experiment file's order).
pub fn setting_order(r: &Results) -> Result<BTreeMap<String, usize>> {
    let mut order = BTreeMap::new();
    for s in strings(&r.trials, "setting")? {
        let next = order.len();
        order.entry(s).or_insert(next);
    }
    Ok(order)
}

/// Loss names in the order they first appear in trials.parquet.
pub fn loss_order(r: &Results) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for l in strings(&r.trials, "loss")? {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    Ok(out)
}

/// Each setting's metrics reduced over seeds, in trials.parquet order of settings, then noise
/// ratio: mean, std, n and the 95 % interval ([`IntervalMethod`]), with the resolution of rates
/// at a false-positive rate.
pub fn by_setting(r: &Results) -> Result<Vec<SettingMetric>> {
    let Some(lf) = final_evals(r) else { return Ok(Vec::new()) };
    let df = lf.collect()?;
    let text = |name: &str| strings(&df, name);
    let (loss, params, setting, protocol, variant, metric) =
        (text("loss")?, text("params")?, text("setting")?, text("protocol")?, text("variant")?, text("metric")?);
    let kind = text("noise_kind")?;
    let (noise, value, lo, hi) =
        (floats(&df, "noise_ratio")?, floats(&df, "value")?, floats(&df, "ci_lo")?, floats(&df, "ci_hi")?);
    let (resolvable, comparisons) = (floats(&df, "resolvable")?, floats(&df, "comparisons")?);
    // (setting, noise kind, noise ratio bits, protocol, variant, metric) → row indices.
    type Group = (String, String, u64, String, String, String);
    let mut groups: BTreeMap<Group, Vec<usize>> = BTreeMap::new();
    for i in 0..df.height() {
        let key = (
            setting[i].clone(),
            kind[i].clone(),
            noise[i].unwrap_or(0.0).to_bits(),
            protocol[i].clone(),
            variant[i].clone(),
            metric[i].clone(),
        );
        groups.entry(key).or_default().push(i);
    }
    let mut rows = Vec::new();
    for ((setting_name, noise_kind, ratio, protocol_name, variant_name, metric_name), idx) in groups {
        let values: Vec<f64> = idx.iter().filter_map(|&i| value[i]).filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            continue;
        }
        let n = values.len();
        let (interval, method) = match n {
            1 => {
                let i = idx.iter().find(|&&i| value[i].is_some_and(f64::is_finite)).copied().unwrap_or(idx[0]);
                (lo[i].zip(hi[i]), lo[i].zip(hi[i]).map(|_| IntervalMethod::Identities))
            }
            n if !(SEED_BOOTSTRAP_FROM..=SEED_BOOTSTRAP_UNTIL).contains(&n) => {
                (stats::t_interval(&values, stats::LEVEL).map(|i| (i.lo, i.hi)), Some(IntervalMethod::TOverSeeds))
            }
            _ => {
                let seed = SEED_BOOTSTRAP_SEED;
                let i = stats::bootstrap_mean_interval(&values, SEED_RESAMPLES, seed, stats::LEVEL);
                (i.map(|i| (i.lo, i.hi)), Some(IntervalMethod::BootstrapOverSeeds))
            }
        };
        // A rate's interval stays within [0, 1] (a t-interval over few seeds can leave it).
        let interval = match Metric::parse(&metric_name).is_rate() {
            true => interval.map(|(lo, hi)| (lo.max(0.0), hi.min(1.0))),
            false => interval,
        };
        let flags: Vec<f64> = idx.iter().filter_map(|&i| resolvable[i]).collect();
        let i0 = idx[0];
        rows.push(SettingMetric {
            loss: loss[i0].clone(),
            params: params[i0].clone(),
            setting: setting_name,
            noise_kind,
            noise_ratio: f64::from_bits(ratio),
            protocol: protocol_name,
            variant: variant_name,
            metric: metric_name,
            mean: stats::mean(&values),
            std: stats::sample_std(&values),
            n,
            method: interval.and(method),
            interval,
            resolvable: (!flags.is_empty()).then(|| flags.iter().all(|&f| f != 0.0)),
            comparisons: idx.iter().filter_map(|&i| comparisons[i]).map(|c| c as i64).min(),
        });
    }
    let order = setting_order(r)?;
    rows.sort_by(|a, b| {
        order
            .get(&a.setting)
            .cmp(&order.get(&b.setting))
            .then(a.noise_kind.cmp(&b.noise_kind))
            .then(a.noise_ratio.total_cmp(&b.noise_ratio))
            .then(a.key().cmp(&b.key()))
    });
    Ok(rows)
}

/// Resamples and seed of the bootstrap over seeds (fixed: a report re-renders identically).
pub const SEED_RESAMPLES: usize = 10_000;
const SEED_BOOTSTRAP_SEED: u64 = 0x5eed;

/// The paper-table columns present in `rows`: headline metrics (see [`metrics::is_headline`]) in
/// protocol order, then metric order, then variant. Rows for one part of a protocol (a variant
/// with `part=`, e.g. IJB-C's galleries G1 and G2, whose mean the protocol also reports) are left
/// to the figures.
pub fn headline_columns(rows: &[SettingMetric]) -> Vec<ColumnKey> {
    let mut keys: Vec<ColumnKey> = Vec::new();
    for r in rows.iter().filter(|r| !r.variant.split(';').any(|kv| kv.trim().starts_with("part="))) {
        let k = r.key();
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let largest = |protocol: &str| {
        keys.iter()
            .filter(|k| k.protocol == protocol)
            .filter_map(|k| match Metric::parse(&k.metric).curve_point() {
                Some((metrics::Curve::Distractors, n)) => Some(n),
                _ => None,
            })
            .max_by(f64::total_cmp)
    };
    let mut out: Vec<ColumnKey> = keys
        .iter()
        .filter(|k| metrics::is_headline(&Metric::parse(&k.metric), largest(&k.protocol)))
        .cloned()
        .collect();
    out.sort_by(|a, b| {
        metrics::protocol_rank(&a.protocol)
            .cmp(&metrics::protocol_rank(&b.protocol))
            .then(a.protocol.cmp(&b.protocol))
            .then(metrics::metric_order(&Metric::parse(&a.metric), &Metric::parse(&b.metric)))
            .then(a.variant.cmp(&b.variant))
    });
    out
}

/// [`headline_columns`] without the rates some trial's protocol cannot resolve (fewer impostor
/// comparisons than 1/FAR): what studies, comparisons and figures are made of.
pub fn resolvable_columns(rows: &[SettingMetric]) -> Vec<ColumnKey> {
    headline_columns(rows)
        .into_iter()
        .filter(|k| !rows.iter().any(|m| &m.key() == k && m.resolvable == Some(false)))
        .collect()
}

/// Each protocol's primary metric, the one the study figures are drawn for: accuracy where the
/// protocol has it, else TAR@FAR=1e-4 (IJB-C's headline), else rank-1 (MegaFace's), else its first
/// headline column.
pub fn primary_columns(rows: &[SettingMetric]) -> Vec<ColumnKey> {
    let headline = resolvable_columns(rows);
    let mut protocols: Vec<&str> = Vec::new();
    for k in &headline {
        if !protocols.contains(&k.protocol.as_str()) {
            protocols.push(&k.protocol);
        }
    }
    let preferences: [&dyn Fn(&Metric) -> bool; 3] = [
        &|m| m.base.starts_with("accuracy"),
        &|m| m.curve_point().is_some_and(|(c, x)| c == metrics::Curve::Roc && (x - 1e-4).abs() < 1e-12),
        &|m| m.curve_point() == Some((metrics::Curve::Cmc, 1.0)),
    ];
    protocols
        .into_iter()
        .filter_map(|p| {
            let mine: Vec<&ColumnKey> = headline.iter().filter(|k| k.protocol == p).collect();
            preferences
                .iter()
                .find_map(|want| mine.iter().find(|k| want(&Metric::parse(&k.metric))))
                .or(mine.first())
                .map(|k| (*k).clone())
        })
        .collect()
}

/// The clean noise ratio: 0 when present, else the smallest ratio.
pub fn clean_ratio(r: &Results) -> Result<f64> {
    Ok(floats(&r.trials, "noise_ratio")?.into_iter().flatten().min_by(f64::total_cmp).unwrap_or(0.0))
}

/// The noise kind of the clean ratio's trials (`none` unless every trial is noisy).
fn clean_kind(r: &Results) -> Result<String> {
    let clean = clean_ratio(r)?;
    Ok(r.noise_settings()?.into_iter().find(|(_, ratio)| *ratio == clean).map_or("none".into(), |(k, _)| k))
}

/// One setting chosen to stand for its loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Representative {
    pub loss: String,
    pub setting: String,
    pub noise_kind: String,
    pub noise_ratio: f64,
}

/// One setting per loss for the figures that draw one curve per loss: at the clean noise ratio,
/// the setting with the best mean of the experiment's first headline metric; without
/// evaluations, the first setting in trials.parquet.
pub fn representatives(r: &Results, rows: &[SettingMetric]) -> Result<Vec<Representative>> {
    let clean = clean_ratio(r)?;
    let primary = headline_columns(rows).into_iter().next();
    let losses = strings(&r.trials, "loss")?;
    let settings = strings(&r.trials, "setting")?;
    let noise = floats(&r.trials, "noise_ratio")?;
    let mut out = Vec::new();
    for loss in loss_order(r)? {
        let candidates = rows
            .iter()
            .filter(|m| m.loss == loss && m.noise_ratio == clean && primary.as_ref().is_some_and(|p| &m.key() == p));
        let better = |a: &&SettingMetric, b: &&SettingMetric| {
            let o = a.mean.total_cmp(&b.mean);
            if Metric::parse(&a.metric).higher_is_better() {
                o
            } else {
                o.reverse()
            }
        };
        // max_by keeps the last of equals; reverse so the first-listed setting wins ties.
        let best = candidates.rev().max_by(better);
        let setting = match best {
            Some(m) => m.setting.clone(),
            None => {
                let first = (0..losses.len())
                    .find(|&i| losses[i] == loss && noise[i].unwrap_or(0.0) == clean)
                    .or_else(|| losses.iter().position(|l| l == &loss));
                match first {
                    Some(i) => settings[i].clone(),
                    None => continue,
                }
            }
        };
        let noise_kind = if clean == 0.0 { "none".to_string() } else { clean_kind(r)? };
        out.push(Representative { loss, setting, noise_kind, noise_ratio: clean });
    }
    Ok(out)
}

/// Per-step means over seeds of `columns` (those steps.parquet has) for every setting and noise
/// setting: columns `setting`, `noise_kind`, `noise_ratio`, `step`, `seeds` and the requested ones
/// (steps.parquet has a `loss` column of its own, the loss value, so the loss name is not joined).
pub fn steps_by_setting(r: &Results, columns: &[&str]) -> Result<Option<DataFrame>> {
    let Some(steps) = &r.steps else { return Ok(None) };
    let present: Vec<&str> =
        columns.iter().copied().filter(|c| steps.get_column_names().iter().any(|n| n.as_str() == *c)).collect();
    let mut aggs = vec![col("trial").n_unique().cast(DataType::Int64).alias("seeds")];
    aggs.extend(present.iter().map(|c| col(*c).cast(DataType::Float64).mean().alias(*c)));
    let keys = r.trials.clone().lazy().select([col("trial"), col("setting"), col("noise_kind"), col("noise_ratio")]);
    let df = steps
        .clone()
        .lazy()
        .join(keys, [col("trial")], [col("trial")], JoinArgs::new(JoinType::Inner))
        .group_by([col("setting"), col("noise_kind"), col("noise_ratio"), col("step")])
        .agg(aggs)
        .sort(["setting", "noise_kind", "noise_ratio", "step"], SortMultipleOptions::default())
        .collect()?;
    Ok(Some(df))
}

/// Spread of each metric over each loss's hyper-parameter grid, per noise setting: columns `loss`,
/// `noise_kind`, `noise_ratio`, `protocol`, `variant`, `metric`, `settings` (grid size, > 1), `lo`, `hi`,
/// `spread` (hi − lo of the seed means).
pub fn sensitivity_spread(r: &Results) -> Result<Option<DataFrame>> {
    let Some(lf) = by_setting_frame(r) else { return Ok(None) };
    let df = lf
        .group_by([col("loss"), col("noise_kind"), col("noise_ratio"), col("protocol"), col("variant"), col("metric")])
        .agg([
            col("setting").n_unique().cast(DataType::Int64).alias("settings"),
            col("mean").min().alias("lo"),
            col("mean").max().alias("hi"),
        ])
        .filter(col("settings").gt(lit(1)))
        .with_column((col("hi") - col("lo")).alias("spread"))
        .collect()?;
    Ok(Some(df))
}

/// Each setting's metrics at every noise ratio beside its clean value: the rows of
/// [`by_setting_frame`] plus `clean` (the mean at the clean ratio) and `drop` (clean − mean).
pub fn noise_drops(r: &Results) -> Result<Option<DataFrame>> {
    let Some(lf) = by_setting_frame(r) else { return Ok(None) };
    let clean = clean_ratio(r)?;
    let clean_rows = lf.clone().filter(col("noise_ratio").eq(lit(clean))).select([
        col("setting"),
        col("protocol"),
        col("variant"),
        col("metric"),
        col("mean").alias("clean"),
    ]);
    let on = [col("setting"), col("protocol"), col("variant"), col("metric")];
    let df = lf
        .join(clean_rows, on.clone(), on, JoinArgs::new(JoinType::Left))
        .with_column((col("clean") - col("mean")).alias("drop"))
        .collect()?;
    Ok(Some(df))
}

/// The evaluations of metric `key` by done trials, joined with each trial's setting and noise.
fn done_evals(r: &Results, key: &ColumnKey) -> Option<LazyFrame> {
    Some(
        r.evals
            .as_ref()?
            .clone()
            .lazy()
            .filter(
                col("protocol")
                    .eq(lit(key.protocol.as_str()))
                    .and(col("metric").eq(lit(key.metric.as_str())))
                    .and(col("variant").eq(lit(key.variant.as_str()))),
            )
            .join(trial_keys(r), [col("trial")], [col("trial")], JoinArgs::new(JoinType::Inner))
            .filter(col("status").eq(lit("done"))),
    )
}

/// One evaluation of a setting's metric over training: step, mean over trials, 95 % interval.
pub type SeriesPoint = (f64, f64, Option<(f64, f64)>);

/// A setting's evaluations of one metric over training: per evaluated step, the mean over its
/// done trials and its 95 % interval (t over seeds; with one trial, that evaluation's bootstrap
/// interval), as `(step, mean, interval)` (headline rows only, not one part of a protocol).
pub fn eval_series(
    r: &Results,
    setting: &str,
    noise_kind: &str,
    noise_ratio: f64,
    key: &ColumnKey,
) -> Result<Vec<SeriesPoint>> {
    let Some(df) = done_evals(r, key) else { return Ok(Vec::new()) };
    let df = df
        .filter(
            col("setting")
                .eq(lit(setting))
                .and(col("noise_kind").eq(lit(noise_kind)))
                .and(col("noise_ratio").eq(lit(noise_ratio))),
        )
        .select([col("step"), col("value"), col("ci_lo"), col("ci_hi")])
        .collect()?;
    let (step, value, lo, hi) =
        (floats(&df, "step")?, floats(&df, "value")?, floats(&df, "ci_lo")?, floats(&df, "ci_hi")?);
    let mut by_step: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for i in 0..df.height() {
        if let (Some(s), Some(v)) = (step[i], value[i]) {
            if v.is_finite() {
                by_step.entry((s as i64) as u64).or_default().push(i);
            }
        }
    }
    Ok(by_step
        .into_iter()
        .map(|(s, idx)| {
            let values: Vec<f64> = idx.iter().filter_map(|&i| value[i]).collect();
            let interval = match idx.as_slice() {
                [one] => lo[*one].zip(hi[*one]),
                _ => stats::t_interval(&values, stats::LEVEL).map(|i| (i.lo, i.hi)),
            };
            (s as f64, stats::mean(&values), interval)
        })
        .collect())
}

/// Whether training reached a plateau: per setting and noise setting, how far the metric `key`
/// moved (max − min over a trial's evaluations in the last fifth of its steps, the largest over
/// seeds) and how many evaluations that window held (fewest over seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct Plateau {
    pub setting: String,
    pub noise_kind: String,
    pub noise_ratio: f64,
    pub movement: f64,
    pub evaluations: usize,
}

/// [`Plateau`] of every setting with done trials, in the experiment's order.
pub fn plateaus(r: &Results, key: &ColumnKey) -> Result<Vec<Plateau>> {
    let Some(df) = done_evals(r, key) else { return Ok(Vec::new()) };
    let df = df.collect()?;
    let (trial, setting, kind) = (strings(&df, "trial")?, strings(&df, "setting")?, strings(&df, "noise_kind")?);
    let (ratio, step, value) = (floats(&df, "noise_ratio")?, floats(&df, "step")?, floats(&df, "value")?);
    // trial → (setting, kind, ratio, [(step, value)])
    type Trial<'a> = (&'a str, &'a str, f64, Vec<(f64, f64)>);
    let mut by_trial: BTreeMap<&str, Trial> = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(s), Some(v)) = (step[i], value[i]) else { continue };
        let e = by_trial.entry(&trial[i]).or_insert((&setting[i], &kind[i], ratio[i].unwrap_or(0.0), Vec::new()));
        e.3.push((s, v));
    }
    let order = setting_order(r)?;
    let mut out: Vec<Plateau> = Vec::new();
    for (_, (setting, kind, ratio, points)) in by_trial {
        let (movement, evaluations) = last_fifth_movement(&points);
        match out.iter_mut().find(|p| p.setting == setting && p.noise_kind == kind && p.noise_ratio == ratio) {
            Some(p) => {
                p.movement = p.movement.max(movement);
                p.evaluations = p.evaluations.min(evaluations);
            }
            None => out.push(Plateau {
                setting: setting.to_string(),
                noise_kind: kind.to_string(),
                noise_ratio: ratio,
                movement,
                evaluations,
            }),
        }
    }
    out.sort_by_key(|p| (order.get(&p.setting).copied().unwrap_or(usize::MAX), p.noise_kind.clone()));
    Ok(out)
}

/// Of (step, value) points: max − min of the values at steps in the last fifth of the last step
/// (from 0.8·last on), and how many points that window holds.
pub fn last_fifth_movement(points: &[(f64, f64)]) -> (f64, usize) {
    let last = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let window: Vec<f64> = points.iter().filter(|p| p.0 >= 0.8 * last).map(|p| p.1).collect();
    let hi = window.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lo = window.iter().copied().fold(f64::INFINITY, f64::min);
    (if window.is_empty() { 0.0 } else { hi - lo }, window.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movement_over_the_last_fifth() {
        let points = [(10.0, 0.5), (50.0, 0.7), (80.0, 0.80), (90.0, 0.83), (100.0, 0.81)];
        let (movement, n) = last_fifth_movement(&points);
        assert_eq!(n, 3);
        assert!((movement - 0.03).abs() < 1e-12);
        assert_eq!(last_fifth_movement(&[(5.0, 0.9)]), (0.0, 1));
    }
}
