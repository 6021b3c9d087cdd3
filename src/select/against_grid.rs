//! Halving's choices against the grid's on the same search (`p2sbench search-vs-grid`): two
//! results directories of one search, one run with `method = "grid"`, one with
//! `method = "halving"`. Per group: the grid's winner with the 95 % interval of its validation
//! score, halving's choice with the grid run's validation score of that same setting (trained to
//! the end there), whether that lies within the winner's interval, and each run's trial-epochs
//! and seconds.

use super::{choose, group_of, setting_of, Choice};
use crate::error::InputError;
use crate::spec::{self, Experiment, SearchMethod, TrialConfig};
use crate::store::{self, schema, ExperimentDir, State, TrialStatus};
use anyhow::Result;
use std::path::Path;

/// One group's comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupComparison {
    pub group: String,
    pub grid_choice: String,
    pub grid_score: f64,
    /// The 95 % interval of the grid winner's validation score: the identity bootstrap of its
    /// one search seed, or the t-interval over several.
    pub grid_interval: Option<(f64, f64)>,
    pub halving_choice: String,
    /// The grid run's validation score of halving's choice.
    pub halving_score: f64,
    pub within: bool,
    pub grid_epochs: usize,
    pub halving_epochs: usize,
    pub grid_seconds: f64,
    pub halving_seconds: f64,
}

/// The experiment a results directory ran (its experiment.toml), with its choices.
fn search(dir: &Path, method: SearchMethod) -> Result<(Experiment, ExperimentDir, Vec<Choice>)> {
    let root = ExperimentDir { root: dir.to_path_buf() };
    let exp = spec::load_with(&root.spec(), false)?;
    let select = exp.select.as_ref().ok_or_else(|| InputError::file(root.spec(), "no [select] table"))?;
    if select.method != method {
        let message = format!("select.method is {:?}, expected {method:?}", select.method).to_lowercase();
        return Err(InputError::file(root.spec(), message).into());
    }
    let (choices, pending) = choose(&exp, &root)?;
    if !pending.is_empty() {
        return Err(InputError::file(root.spec(), format!("the search has not finished: {pending:?}")).into());
    }
    Ok((exp, root, choices))
}

/// The search trials of `group` with `setting`.
fn trials_of<'a>(exp: &'a Experiment, group: &str, setting: &str) -> Vec<&'a TrialConfig> {
    let select = exp.select.as_ref().expect("a search has [select]");
    exp.trials.iter().filter(|t| group_of(select, t) == group && setting_of(select, t) == setting).collect()
}

/// `protocol`/`metric` of a trial's last evaluation with its interval, from its evals.parquet.
fn last_value(dir: &ExperimentDir, t: &TrialConfig, protocol: &str, metric: &str) -> Result<schema::EvalRow> {
    let path = dir.trial(&t.id()).join(store::trial_files::EVALS);
    let rows = schema::evals_from_frame(&store::read_parquet(&path)?)?;
    rows.into_iter()
        .filter(|r| r.protocol == protocol && r.metric == metric && !r.variant.contains("part="))
        .max_by_key(|r| r.step)
        .ok_or_else(|| InputError::file(&path, format!("no {protocol}/{metric}")).into())
}

/// Compares the halving run in `halving` with the grid run in `grid`, group by group.
pub fn against_grid(grid: &Path, halving: &Path) -> Result<Vec<GroupComparison>> {
    let (grid_exp, grid_dir, grid_choices) = search(grid, SearchMethod::Grid)?;
    let (_, _, halving_choices) = search(halving, SearchMethod::Halving)?;
    let select = grid_exp.select.as_ref().expect("checked");
    let (protocol, metric) = select.protocol_metric().expect("checked when read");
    let mut out = Vec::new();
    for g in &grid_choices {
        let h = halving_choices.iter().find(|h| h.group == g.group).ok_or_else(|| {
            InputError::file(halving.join("experiment.toml"), format!("no choice for {} (another search?)", g.group))
        })?;
        let winner: Vec<schema::EvalRow> = trials_of(&grid_exp, &g.group, &g.setting)
            .into_iter()
            .map(|t| last_value(&grid_dir, t, protocol, metric))
            .collect::<Result<_>>()?;
        let grid_interval = match winner.as_slice() {
            [one] => one.ci_lo.zip(one.ci_hi),
            many => {
                let values: Vec<f64> = many.iter().map(|r| r.value).collect();
                crate::stats::t_interval(&values, crate::stats::LEVEL).map(|i| (i.lo, i.hi))
            }
        };
        let same: Vec<f64> = trials_of(&grid_exp, &g.group, &h.setting)
            .into_iter()
            .map(|t| last_value(&grid_dir, t, protocol, metric).map(|r| r.value))
            .collect::<Result<_>>()?;
        let halving_score = crate::stats::mean(&same);
        let grid_epochs = grid_exp
            .trials
            .iter()
            .filter(|t| group_of(select, t) == g.group)
            .filter(|t| TrialStatus::read(&grid_dir.trial(&t.id())).is_some_and(|s| s.state == State::Done))
            .map(|t| t.train.epochs)
            .sum();
        let record = h.halving.as_ref().expect("a halving choice has its record");
        out.push(GroupComparison {
            group: g.group.clone(),
            grid_choice: g.setting.clone(),
            grid_score: g.score,
            grid_interval,
            halving_choice: h.setting.clone(),
            halving_score,
            within: grid_interval.is_some_and(|(lo, hi)| lo <= halving_score && halving_score <= hi),
            grid_epochs,
            halving_epochs: record.trial_epochs,
            grid_seconds: g.search_seconds,
            halving_seconds: h.search_seconds,
        });
    }
    Ok(out)
}

/// The comparison as a markdown table, with a line of totals.
pub fn to_markdown(rows: &[GroupComparison]) -> String {
    let mut md = String::from(
        "| loss | grid: chosen | grid: validation score [95 % interval] | halving: chosen | its validation score (grid run) | within | trial-epochs grid → halving | search seconds grid → halving |\n|---|---|---:|---|---:|---|---:|---:|\n",
    );
    for r in rows {
        let interval = r.grid_interval.map_or("–".to_string(), |(lo, hi)| format!("[{lo:.4}, {hi:.4}]"));
        md.push_str(&format!(
            "| {} | {} | {:.4} {interval} | {} | {:.4} | {} | {} → {} ({:.0} %) | {:.0} → {:.0} |\n",
            r.group,
            r.grid_choice,
            r.grid_score,
            r.halving_choice,
            r.halving_score,
            if r.within { "yes" } else { "**no**" },
            r.grid_epochs,
            r.halving_epochs,
            100.0 * r.halving_epochs as f64 / r.grid_epochs.max(1) as f64,
            r.grid_seconds,
            r.halving_seconds
        ));
    }
    let (ge, he): (usize, usize) =
        (rows.iter().map(|r| r.grid_epochs).sum(), rows.iter().map(|r| r.halving_epochs).sum());
    let (gs, hs): (f64, f64) =
        (rows.iter().map(|r| r.grid_seconds).sum(), rows.iter().map(|r| r.halving_seconds).sum());
    md.push_str(&format!(
        "| all | | | | | {} of {} | {ge} → {he} ({:.0} %) | {gs:.0} → {hs:.0} ({:.0} %) |\n",
        rows.iter().filter(|r| r.within).count(),
        rows.len(),
        100.0 * he as f64 / ge.max(1) as f64,
        100.0 * hs / gs.max(f64::MIN_POSITIVE)
    ));
    md
}
