//! The report's tables, built from the polars aggregations in [`crate::results::aggregate`]: the
//! paper-style results table (mean ± std over seeds, best per column marked), the sensitivity
//! spread over each loss's hyper-parameter grid, the noise-robustness table (each metric per
//! noise ratio and its drop from clean), the published P2SGrad/AdaCos numbers beside ours, and the
//! trial list.

use super::markdown::{best, duration, mean_std, Table};
use crate::results::aggregate::{self, ColumnKey, IntervalMethod, SettingMetric};
use crate::results::compare::{self, Cell, Paired};
use crate::results::names::{protocol_label, Curve, Metric};
use crate::results::{floats, noise_label, strings, Results};
use crate::store::TrialStatus;
use anyhow::Result;
use std::collections::BTreeMap;

/// Column headers for metric columns, with variant tags where a protocol ran several variants;
/// returns the headers and the `(tag, variant)` footnotes.
pub fn column_headers(keys: &[ColumnKey]) -> (Vec<String>, Vec<(String, String)>) {
    let mut notes: Vec<(String, String)> = Vec::new();
    let mut headers = Vec::new();
    for k in keys {
        let m = Metric::parse(&k.metric);
        let unit = if m.is_rate() { " (%)" } else { "" };
        let several = keys.iter().any(|o| o.protocol == k.protocol && o.variant != k.variant);
        let tag = if several {
            let pos =
                match notes.iter().position(|(_, v)| v == &format!("{}: {}", protocol_label(&k.protocol), k.variant)) {
                    Some(p) => p,
                    None => {
                        notes.push((
                            format!("v{}", notes.len() + 1),
                            format!("{}: {}", protocol_label(&k.protocol), k.variant),
                        ));
                        notes.len() - 1
                    }
                };
            format!(" [{}]", notes[pos].0)
        } else {
            String::new()
        };
        headers.push(format!("{} {}{unit}{tag}", protocol_label(&k.protocol), m.label()));
    }
    (headers, notes)
}

fn cell_of<'a>(rows: &'a [SettingMetric], setting: &str, noise: f64, key: &ColumnKey) -> Option<&'a SettingMetric> {
    rows.iter().find(|m| m.setting == setting && m.noise_ratio == noise && &m.key() == key)
}

/// The settings of `rows` at noise ratio `noise`, in order, with their loss and params.
fn settings_at(rows: &[SettingMetric], noise: f64) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for m in rows.iter().filter(|m| m.noise_ratio == noise) {
        if !out.iter().any(|s| s.0 == m.setting) {
            out.push((m.setting.clone(), m.loss.clone(), m.params.clone()));
        }
    }
    out
}

/// What a table cell shows beside the mean: the 95 % interval, or the std over seeds
/// (`[report] latex_cells`, for tables.tex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellStyle {
    Interval,
    Std,
}

/// A metric's cell: `mean [lo, hi]` (rates in %), `mean ± fold std [lo, hi]` for one trial's
/// LFW-style accuracy (insightface prints the std over folds), `n/r` for a rate its protocol
/// cannot resolve. `std` cells show `mean ± std` over seeds instead of the interval.
pub fn metric_cell(m: &SettingMetric, fold_std: Option<f64>, cells: CellStyle) -> String {
    if m.resolvable == Some(false) {
        return "n/r".into();
    }
    let rate = Metric::parse(&m.metric).is_rate();
    let k = if rate { 100.0 } else { 1.0 };
    if cells == CellStyle::Std {
        return mean_std(m.mean, m.std, rate);
    }
    let mut text = format!("{:.2}", m.mean * k);
    if let (1, Some(s)) = (m.n, fold_std) {
        text.push_str(&format!(" ± {:.2}", s * k));
    }
    if let Some((lo, hi)) = m.interval {
        text.push_str(&format!(" [{:.2}, {:.2}]", lo * k, hi * k));
    }
    text
}

/// The fold std of `m`'s protocol variant (`accuracy_std` beside `accuracy_mean`), if recorded.
fn fold_std(rows: &[SettingMetric], m: &SettingMetric) -> Option<f64> {
    let name = m.metric.strip_suffix("_mean")?;
    rows.iter()
        .find(|o| {
            o.setting == m.setting
                && o.noise_kind == m.noise_kind
                && o.noise_ratio == m.noise_ratio
                && o.protocol == m.protocol
                && o.variant == m.variant
                && o.metric == format!("{name}_std")
        })
        .map(|o| o.mean)
}

/// The notes under a table of cells: how its intervals were made, and every column shown as
/// `n/r` with the comparisons behind it.
pub fn interval_notes(shown: &[&SettingMetric]) -> Vec<String> {
    let mut notes = Vec::new();
    let methods: std::collections::BTreeSet<IntervalMethod> = shown.iter().filter_map(|m| m.method).collect();
    if !methods.is_empty() {
        let list: Vec<String> = methods.iter().map(|m| m.describe().to_string()).collect();
        notes.push(format!("[lo, hi]: 95 % interval ({})", list.join("; ")));
    }
    let mut unresolved: Vec<(String, i64)> = Vec::new();
    for m in shown.iter().filter(|m| m.resolvable == Some(false)) {
        let name = format!("{} {}", protocol_label(&m.protocol), Metric::parse(&m.metric).label());
        if !unresolved.iter().any(|(n, _)| n == &name) {
            unresolved.push((name, m.comparisons.unwrap_or(0)));
        }
    }
    for (name, c) in unresolved {
        let (what, rate) =
            if name.contains("TPIR") { ("non-mated searches", "FPIR") } else { ("impostor comparisons", "FAR") };
        notes.push(format!(
            "n/r: {name} is not resolvable: it rests on {c} {what}, fewer than 1/{rate}, so the number would be the rate at the protocol's highest threshold, not a measurement at that {rate}"
        ));
    }
    notes
}

/// The paper-style table at the clean noise ratio: rows = loss with hyper-parameters, columns =
/// the headline metrics that ran, each cell [`metric_cell`]; a cell is bold where that
/// setting is significantly better than the next best of its column (paired comparison,
/// p < 0.05). Returns the table and its notes (variant tags first).
pub fn paper_table(
    rows: &[SettingMetric],
    clean: f64,
    paired: &Paired,
    cells: CellStyle,
) -> (Table, Vec<(String, String)>) {
    let clean_rows: Vec<SettingMetric> = rows.iter().filter(|m| m.noise_ratio == clean).cloned().collect();
    let keys = aggregate::headline_columns(&clean_rows);
    let (headers, mut notes) = column_headers(&keys);
    let mut header = vec!["loss".to_string(), "hyper-parameters".to_string(), "seeds".to_string()];
    header.extend(headers);
    let mut t = Table::new(header, 2);
    let settings = settings_at(&clean_rows, clean);
    let bold: Vec<Option<String>> = keys.iter().map(|k| significant_best(&clean_rows, k, paired)).collect();
    let mut shown = Vec::new();
    for (setting, loss, _) in &settings {
        let cells_of: Vec<Option<&SettingMetric>> =
            keys.iter().map(|k| cell_of(&clean_rows, setting, clean, k)).collect();
        let seeds = cells_of.iter().flatten().map(|m| m.n).max().unwrap_or(0);
        // The loss's parameters and the trial's swept settings (a per-loss learning rate).
        let label = setting.strip_prefix(loss.as_str()).map(str::trim).filter(|l| !l.is_empty()).unwrap_or("–");
        let mut row = vec![loss.clone(), label.to_string(), seeds.to_string()];
        for (i, c) in cells_of.iter().enumerate() {
            row.push(match c {
                Some(m) => {
                    shown.push(*m);
                    let text = metric_cell(m, fold_std(&clean_rows, m), cells);
                    if bold[i].as_deref() == Some(setting.as_str()) {
                        best(&text)
                    } else {
                        text
                    }
                }
                None => "–".into(),
            });
        }
        t.rows.push(row);
    }
    notes.extend(interval_notes(&shown).into_iter().map(|n| (String::new(), n)));
    (t, notes)
}

/// The setting of column `key` that is significantly better than the next best (by mean) in a
/// paired comparison, if any.
fn significant_best(rows: &[SettingMetric], key: &ColumnKey, paired: &Paired) -> Option<String> {
    let higher = Metric::parse(&key.metric).higher_is_better();
    let mut column: Vec<&SettingMetric> =
        rows.iter().filter(|m| &m.key() == key && m.resolvable != Some(false)).collect();
    if column.len() < 2 {
        return None;
    }
    column.sort_by(|a, b| if higher { b.mean.total_cmp(&a.mean) } else { a.mean.total_cmp(&b.mean) });
    let (first, second) = (column[0], column[1]);
    let cell = |m: &SettingMetric| Cell::new(&m.setting, &m.noise_kind, m.noise_ratio, key);
    let c = paired.difference(&cell(first), &cell(second))?;
    (c.p < compare::ALPHA && (c.estimate > 0.0) == higher && c.estimate != 0.0).then(|| first.setting.clone())
}

/// Per loss (and noise setting) with more than one setting: the spread (max − min of the seed
/// means) of each headline metric over its grid, the grid's range, and whether the spread
/// exceeds what the seeds alone produce (a permutation test of the settings within each seed:
/// `p` under "the setting does not matter"). `None` when no loss has more than one setting.
pub fn sensitivity_table(r: &Results, rows: &[SettingMetric], paired: &Paired) -> Result<Option<Table>> {
    let keys = aggregate::resolvable_columns(rows);
    let noisy = r.has_noise_study()?;
    let (headers, _) = column_headers(&keys);
    let mut header = vec!["loss".to_string()];
    if noisy {
        header.push("noise".into());
    }
    header.push("settings".into());
    let first_metric = header.len();
    for h in headers {
        header.push(format!("{h}: spread (range)"));
        header.push("p (settings vs seeds)".into());
    }
    let mut t = Table::new(header, first_metric - 1);
    for l in aggregate::loss_order(r)? {
        for (kind, ratio) in r.noise_settings()? {
            let mine: Vec<&SettingMetric> =
                rows.iter().filter(|m| m.loss == l && m.noise_kind == kind && m.noise_ratio == ratio).collect();
            let mut grid: Vec<&str> = mine.iter().map(|m| m.setting.as_str()).collect();
            grid.dedup();
            grid.sort_unstable();
            grid.dedup();
            if grid.len() < 2 {
                continue;
            }
            let mut row = vec![l.clone()];
            if noisy {
                row.push(noise_label(&kind, ratio));
            }
            row.push(grid.len().to_string());
            for k in &keys {
                let column: Vec<&&SettingMetric> =
                    mine.iter().filter(|m| &m.key() == k && m.resolvable != Some(false)).collect();
                if column.len() < 2 {
                    row.extend(["–".into(), "–".into()]);
                    continue;
                }
                let rate = if Metric::parse(&k.metric).is_rate() { 100.0 } else { 1.0 };
                let lo = column.iter().map(|m| m.mean).fold(f64::INFINITY, f64::min);
                let hi = column.iter().map(|m| m.mean).fold(f64::NEG_INFINITY, f64::max);
                row.push(format!("{:.2} ({:.2}–{:.2})", (hi - lo) * rate, lo * rate, hi * rate));
                let cells: Vec<Cell> = column.iter().map(|m| Cell::new(&m.setting, &kind, ratio, k)).collect();
                row.push(match compare::spread_test(paired, &cells) {
                    Some(p) => format!(
                        "{} ({})",
                        p_text(p),
                        if p < compare::ALPHA { "exceeds seed noise" } else { "within seed noise" }
                    ),
                    None => "needs ≥ 2 seeds".into(),
                });
            }
            t.rows.push(row);
        }
    }
    Ok((!t.rows.is_empty()).then_some(t))
}

/// A p-value as the report prints it.
pub fn p_text(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// One noise table per headline metric: each setting's cell per noise setting (kind and ratio)
/// and its drop from clean (clean − noisy, paired over seeds and identities) with the 95 %
/// interval. Empty without a noise study.
pub fn noise_tables(r: &Results, rows: &[SettingMetric], paired: &Paired) -> Result<Vec<(String, Table, Vec<String>)>> {
    if !r.has_noise_study()? {
        return Ok(Vec::new());
    }
    let clean = aggregate::clean_ratio(r)?;
    let clean_kind = r.noise_settings()?.into_iter().find(|(_, n)| *n == clean).map_or("none".into(), |(k, _)| k);
    let noise_settings = r.noise_settings()?;
    let order = aggregate::setting_order(r)?;
    let keys = aggregate::resolvable_columns(rows);
    let (headers, _) = column_headers(&keys);
    let mut out = Vec::new();
    for (k, title) in keys.iter().zip(headers) {
        let rate = Metric::parse(&k.metric).is_rate();
        let mut settings: Vec<&String> = rows.iter().filter(|m| &m.key() == k).map(|m| &m.setting).collect();
        settings.sort_by_key(|s| order.get(*s).copied().unwrap_or(usize::MAX));
        settings.dedup();
        if settings.is_empty() {
            continue;
        }
        let mut header = vec!["setting".to_string()];
        for (kind, n) in &noise_settings {
            header.push(noise_label(kind, *n));
            if *n != clean {
                header.push(format!("drop at {}", noise_label(kind, *n)));
            }
        }
        let mut t = Table::new(header, 1);
        let mut shown = Vec::new();
        for s in settings {
            let mut row = vec![s.clone()];
            for (kind, n) in &noise_settings {
                let m = rows
                    .iter()
                    .find(|m| &m.setting == s && &m.noise_kind == kind && m.noise_ratio == *n && &m.key() == k);
                row.push(match m {
                    Some(m) => {
                        shown.push(m);
                        metric_cell(m, None, CellStyle::Interval)
                    }
                    None => "–".into(),
                });
                if *n != clean {
                    let drop = m.filter(|m| m.resolvable != Some(false)).and_then(|_| {
                        paired.difference(&Cell::new(s, &clean_kind, clean, k), &Cell::new(s, kind, *n, k))
                    });
                    row.push(match drop {
                        Some(c) => contrast_cell(&c, rate),
                        None => "–".into(),
                    });
                }
            }
            t.rows.push(row);
        }
        let mut notes = interval_notes(&shown);
        notes.push(
            "drop: clean − noisy of the same setting, paired over seeds and held-out identities, with its 95 % interval"
                .into(),
        );
        out.push((title, t, notes));
    }
    Ok(out)
}

/// `+1.23 [0.45, 2.01]`: a contrast and its 95 % interval (rates in points).
pub fn contrast_cell(c: &crate::stats::Contrast, rate: bool) -> String {
    let k = if rate { 100.0 } else { 1.0 };
    format!("{:+.2} [{:+.2}, {:+.2}]", c.estimate * k, c.interval.lo * k, c.interval.hi * k)
}

/// Published numbers (LOSSES.md: quoted in the ArcFace journal version, Tables 6–7): MegaFace
/// Challenge 1 rank-1 on the refined set and IJB-C 1:1 TAR @ FAR = 1e-4, in %.
pub const PUBLISHED: &[(&str, f64, f64)] = &[("P2SGrad", 97.25, 92.25), ("AdaCos", 97.41, 92.4)];

/// Our MegaFace rank-1 for a setting: `rank1` (or `cmc@rank=1`), else rank-1 at the largest
/// gallery, else a rank-1 over a named gallery (`rank1@distractors=all`); as a fraction.
fn our_megaface(rows: &[SettingMetric], setting: &str, noise: f64) -> Option<f64> {
    let here: Vec<&SettingMetric> =
        rows.iter().filter(|m| m.setting == setting && m.noise_ratio == noise && m.protocol == "megaface").collect();
    here.iter()
        .find(|m| Metric::parse(&m.metric).curve_point() == Some((Curve::Cmc, 1.0)))
        .or_else(|| {
            here.iter()
                .filter(|m| matches!(Metric::parse(&m.metric).curve_point(), Some((Curve::Distractors, _))))
                .max_by(|a, b| {
                    let x = |m: &SettingMetric| Metric::parse(&m.metric).curve_point().map_or(0.0, |p| p.1);
                    x(a).total_cmp(&x(b))
                })
        })
        .or_else(|| here.iter().find(|m| m.metric.to_lowercase().starts_with("rank1@")))
        .map(|m| m.mean)
}

/// Our IJB-C TAR@FAR=1e-4 for a setting, as a fraction; NaN where the protocol cannot resolve it.
fn our_ijbc(rows: &[SettingMetric], setting: &str, noise: f64) -> Option<f64> {
    rows.iter()
        .filter(|m| m.setting == setting && m.noise_ratio == noise && m.protocol == "ijbc")
        .find(|m| {
            Metric::parse(&m.metric).curve_point().is_some_and(|(c, x)| c == Curve::Roc && (x - 1e-4).abs() < 1e-12)
        })
        .map(|m| if m.resolvable == Some(false) { f64::NAN } else { m.mean })
}

/// The published numbers beside ours (one representative setting per loss); `scale` describes
/// our run.
pub fn published_table(r: &Results, rows: &[SettingMetric], scale: &str) -> Result<Table> {
    let mut t = Table::new(
        vec![
            "loss".into(),
            "source".into(),
            "training scale".into(),
            "MegaFace rank-1 (%)".into(),
            "IJB-C TAR@FAR=1e-4 (%)".into(),
        ],
        3,
    );
    for (loss, mega, ijbc) in PUBLISHED {
        t.rows.push(vec![
            loss.to_string(),
            "published (ArcFace journal version, Tables 6–7)".into(),
            "MS1M, ResNet-scale network".into(),
            format!("{mega:.2}"),
            format!("{ijbc:.2}"),
        ]);
    }
    for rep in aggregate::representatives(r, rows)? {
        let fmt = |v: Option<f64>| match v {
            None => "not run".to_string(),
            Some(v) if v.is_nan() => "n/r".to_string(),
            Some(v) => format!("{:.2}", v * 100.0),
        };
        t.rows.push(vec![
            r.setting_label(&rep.setting),
            "this run".into(),
            scale.to_string(),
            fmt(our_megaface(rows, &rep.setting, rep.noise_ratio)),
            fmt(our_ijbc(rows, &rep.setting, rep.noise_ratio)),
        ]);
    }
    Ok(t)
}

/// The trial list: id, loss, hyper-parameters, noise, status, note, seed, attempts, seconds.
pub fn trials_table(r: &Results) -> Result<Table> {
    let df = &r.all_trials()?;
    let ids = strings(df, "trial")?;
    let axes =
        if crate::results::has_column(df, "axes") { strings(df, "axes")? } else { vec![String::new(); df.height()] };
    let split =
        if crate::results::has_column(df, "split") { strings(df, "split")? } else { vec![String::new(); df.height()] };
    let (loss, params, status) = (strings(df, "loss")?, strings(df, "params")?, strings(df, "status")?);
    let seed = floats(df, "seed")?;
    let noise = floats(df, "noise_ratio")?;
    let kind = strings(df, "noise_kind")?;
    let attempts =
        if crate::results::has_column(df, "attempts") { floats(df, "attempts")? } else { vec![None; df.height()] };
    let seconds =
        if crate::results::has_column(df, "seconds") { floats(df, "seconds")? } else { vec![None; df.height()] };
    let mut t = Table::new(
        vec![
            "trial".into(),
            "loss".into(),
            "hyper-parameters".into(),
            "noise".into(),
            "status".into(),
            "note".into(),
            "seed".into(),
            "attempts".into(),
            "seconds".into(),
        ],
        6,
    );
    if split.iter().any(|s| !s.is_empty()) {
        t.header.push("evaluated on".into());
    }
    for i in 0..df.height() {
        let st = TrialStatus::read(&r.dir.trial(&ids[i]));
        let note = match &st {
            Some(s) if s.diverged_step.is_some() => format!("diverged at step {}", s.diverged_step.unwrap_or(0)),
            Some(s) => s
                .error
                .as_deref()
                .map(|e| e.lines().next().unwrap_or("").chars().take(120).collect())
                .unwrap_or_default(),
            None => String::new(),
        };
        let num = |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
        t.rows.push(vec![
            format!("`{}`", ids[i]),
            loss[i].clone(),
            match [params[i].as_str(), axes[i].as_str()].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>() {
                parts if parts.is_empty() => "–".into(),
                parts => parts.join(", "),
            },
            noise_label(&kind[i], noise[i].unwrap_or(0.0)),
            status[i].clone(),
            note,
            num(seed[i], 0),
            num(attempts[i], 0),
            num(seconds[i], 1),
        ]);
        if t.header.len() > 9 {
            t.rows.last_mut().expect("just pushed").push(split[i].clone());
        }
    }
    Ok(t)
}

/// Trials per status, via polars.
pub fn status_counts(r: &Results) -> Result<BTreeMap<String, usize>> {
    use polars::prelude::*;
    let df = r
        .all_trials()?
        .lazy()
        .group_by([col("status")])
        .agg([col("trial").count().cast(DataType::Int64).alias("n")])
        .collect()?;
    let (s, n) = (strings(&df, "status")?, floats(&df, "n")?);
    Ok(s.into_iter().zip(n).map(|(s, n)| (s, n.unwrap_or(0.0) as usize)).collect())
}

/// Sum of the trials' seconds, via polars.
pub fn total_seconds(r: &Results) -> Result<Option<f64>> {
    use polars::prelude::*;
    let all = r.all_trials()?;
    if !crate::results::has_column(&all, "seconds") {
        return Ok(None);
    }
    let df = all.lazy().select([col("seconds").cast(DataType::Float64).sum()]).collect()?;
    Ok(floats(&df, "seconds")?.first().copied().flatten())
}

/// Under `[select]`: per loss and condition, the search space, what the search cost, the
/// setting chosen on validation, its validation score, and its test result over the final
/// seeds. `None` without a selection.
pub fn selection_table(r: &Results) -> Result<Option<Table>> {
    use polars::prelude::*;
    let Some(sel) = &r.selection else { return Ok(None) };
    let (protocol, metric) = sel.metric.split_once('/').unwrap_or(("", sel.metric.as_str()));
    let rate = crate::results::names::Metric::parse(metric).is_rate();
    let tested = match aggregate::final_evals(r) {
        Some(f) => f
            .filter(col("protocol").eq(lit(protocol)).and(col("metric").eq(lit(metric))))
            .select([col("trial"), col("variant"), col("value"), col("ci_lo"), col("ci_hi")])
            .collect()?,
        None => DataFrame::empty(),
    };
    let (mut ids, mut values) = (Vec::new(), Vec::new());
    if tested.height() > 0 {
        let (variant, value) = (strings(&tested, "variant")?, floats(&tested, "value")?);
        let (lo, hi) = (floats(&tested, "ci_lo")?, floats(&tested, "ci_hi")?);
        // Rows of one part of a protocol (IJB-C's galleries) are not the headline number.
        for (i, id) in
            strings(&tested, "trial")?.into_iter().enumerate().filter(|(i, _)| !variant[*i].contains("part="))
        {
            ids.push(id);
            values.push(value[i].map(|v| (v, lo[i].zip(hi[i]))));
        }
    }
    let header = vec![
        "loss (and condition)".into(),
        "search space".into(),
        "search cost".into(),
        "chosen on validation".into(),
        format!("validation {}", sel.metric),
        format!("test {} (final seeds)", sel.metric),
    ];
    let mut t = Table::new(header, 4);
    for c in &sel.choices {
        let space: Vec<String> = c.search_space.iter().map(|(k, v)| format!("{k} ∈ {{{}}}", v.join(", "))).collect();
        let test: Vec<(f64, Option<(f64, f64)>)> =
            ids.iter().zip(&values).filter(|(id, _)| c.final_trials.contains(id)).filter_map(|(_, v)| *v).collect();
        let points: Vec<f64> = test.iter().map(|t| t.0).collect();
        // One final seed: its identity-bootstrap interval; more: the t-interval over them.
        let interval = match test.as_slice() {
            [(_, one)] => *one,
            _ => crate::stats::t_interval(&points, crate::stats::LEVEL).map(|i| (i.lo, i.hi)),
        };
        let k = if rate { 100.0 } else { 1.0 };
        let test_cell = match (points.is_empty(), interval) {
            (true, _) => "not trained yet".to_string(),
            (false, Some((lo, hi))) => {
                let (lo, hi) = if rate { (lo.max(0.0), hi.min(1.0)) } else { (lo, hi) };
                format!("{:.2} [{:.2}, {:.2}] (n = {})", crate::stats::mean(&points) * k, lo * k, hi * k, points.len())
            }
            (false, None) => format!("{} (n = {})", mean_std(crate::stats::mean(&points), None, rate), points.len()),
        };
        t.rows.push(vec![
            c.group.clone(),
            if space.is_empty() { "–".into() } else { space.join("; ") },
            match &c.halving {
                Some(h) => format!(
                    "{} settings, {} trials, {}; successive halving (η = {}): {} of the grid's {} trial-epochs ({:.0} %)",
                    c.settings_searched,
                    c.search_trials,
                    duration(c.search_seconds),
                    h.eta,
                    h.trial_epochs,
                    h.grid_trial_epochs,
                    100.0 * h.trial_epochs as f64 / h.grid_trial_epochs.max(1) as f64
                ),
                None => {
                    format!("{} settings, {} trials, {}", c.settings_searched, c.search_trials, duration(c.search_seconds))
                }
            },
            c.chosen.clone(),
            mean_std(c.validation_score, None, rate),
            test_cell,
        ]);
    }
    Ok(Some(t))
}

/// Under successive halving: per group and rung, the epochs there and each setting's mean
/// validation score, those that went on in bold. `None` when no choice was made by halving.
pub fn halving_table(r: &Results) -> Option<Table> {
    let sel = r.selection.as_ref()?;
    let (_, metric) = sel.metric.split_once('/').unwrap_or(("", sel.metric.as_str()));
    let rate = crate::results::names::Metric::parse(metric).is_rate();
    let mut t = Table::new(
        vec!["loss (and condition)".into(), "rung (epochs)".into(), format!("validation {} (**went on**)", sel.metric)],
        2,
    );
    for c in &sel.choices {
        let Some(h) = &c.halving else { continue };
        for rung in &h.rungs {
            let cells: Vec<String> = rung
                .settings
                .iter()
                .map(|s| {
                    let score = s.score.map_or("–".to_string(), |v| mean_std(v, None, rate));
                    let cell = format!("{}: {score}", s.setting);
                    if s.promoted {
                        format!("**{cell}**")
                    } else {
                        cell
                    }
                })
                .collect();
            t.rows.push(vec![c.group.clone(), rung.epochs.to_string(), cells.join("; ")]);
        }
    }
    (!t.rows.is_empty()).then_some(t)
}

/// Convergence: per setting, how far the first headline metric moved over the last fifth of
/// training (points for rates), the evaluations in that window, and whether that is under one
/// point (a plateau). `None` without evaluations.
pub fn plateau_table(r: &Results, rows: &[SettingMetric]) -> Result<Option<(String, Table)>> {
    let Some(key) = aggregate::primary_columns(rows).into_iter().next() else { return Ok(None) };
    let plateaus = aggregate::plateaus(r, &key)?;
    if plateaus.is_empty() {
        return Ok(None);
    }
    let metric = Metric::parse(&key.metric);
    let k = if metric.is_rate() { 100.0 } else { 1.0 };
    let name = format!("{} {}", protocol_label(&key.protocol), metric.label());
    let unit = if metric.is_rate() { " (points)" } else { "" };
    let mut t = Table::new(
        vec![
            "setting".into(),
            "noise".into(),
            format!("movement of {name}{unit}"),
            "evaluations in the last fifth".into(),
            "plateau (< 1 point)".into(),
        ],
        2,
    );
    for p in &plateaus {
        let single = p.evaluations < 2;
        t.rows.push(vec![
            r.setting_label(&p.setting),
            noise_label(&p.noise_kind, p.noise_ratio),
            if single { "–".into() } else { format!("{:.2}", p.movement * k) },
            p.evaluations.to_string(),
            if single {
                "unknown: one evaluation".into()
            } else if p.movement * k < 1.0 {
                "yes".into()
            } else {
                "no".into()
            },
        ]);
    }
    Ok(Some((name, t)))
}
