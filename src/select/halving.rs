//! Successive halving under `[select]` (`method = "halving"`): each group's settings train to
//! the first rung; once every setting of the group has reached it, the best 1/η (at least one)
//! go on to the next rung from their checkpoints and the rest stop, `pruned`. Decisions are made
//! per group as soon as the group's rung is complete, whichever process completes it (ASHA's
//! asynchrony across groups and shards), never on part of a rung: the decisions are then a
//! function of the trials' results alone, so any timing of shards makes the same choice.
//!
//! [`plan`] reads the trials' statuses (each rung's evaluation is in `status.json`) and says
//! what is to be trained next, what is to be pruned, and what each rung decided.

use super::{comparable, group_of, setting_of, statuses};
use crate::error::InputError;
use crate::spec::{Experiment, Goal, SelectSpec, TrialConfig};
use crate::store::selection::{HalvingRecord, RungDecision, RungSetting};
use crate::store::{ExperimentDir, State, TrialStatus};
use std::collections::{BTreeMap, BTreeSet};

/// What halving does next, and what it has decided so far.
#[derive(Debug, Default)]
pub struct Plan {
    /// Trials to train, each to the epochs of the rung it is to reach next.
    pub work: Vec<(TrialConfig, usize)>,
    /// Trials paused at a rung they do not go on from.
    pub prune: Vec<TrialConfig>,
    /// Per group: its decisions so far, and once its last rung is complete the settings that
    /// reached it (the choice is the best of them).
    pub groups: BTreeMap<String, GroupPlan>,
}

#[derive(Debug, Default)]
pub struct GroupPlan {
    pub record: HalvingRecord,
    /// `Some` once the last rung is complete: the settings that reached it.
    pub finalists: Option<BTreeSet<String>>,
}

/// Where a trial stands at a rung.
enum AtRung {
    /// Not trained that far yet.
    Short,
    /// Evaluated there.
    Value(f64),
    /// Trained to the end before halving ran (no evaluation at this rung): it goes on without
    /// taking a place.
    Whole,
    /// Failed or diverged before the rung.
    Failed,
}

fn at_rung(
    select: &SelectSpec,
    t: &TrialConfig,
    status: Option<&TrialStatus>,
    epochs: usize,
    dir: &ExperimentDir,
) -> anyhow::Result<AtRung> {
    let (protocol, metric) = select.protocol_metric().expect("select.metric is checked when the spec is read");
    let Some(status) = status else { return Ok(AtRung::Short) };
    let missing = || -> anyhow::Error {
        InputError {
            location: format!("{}: select.metric", dir.trial(&t.id()).join("status.json").display()),
            message: format!(
                "{}: trial {} reported no {protocol} metric \"{metric}\" on validation (see its evals.parquet for the metric names)",
                select.metric,
                t.id()
            ),
        }
        .into()
    };
    if let Some(rung) = status.rungs.iter().find(|r| r.epochs == epochs) {
        return rung.value(protocol, metric).map(AtRung::Value).ok_or_else(missing);
    }
    Ok(match status.state {
        State::Failed | State::Diverged => AtRung::Failed,
        State::Done if epochs == t.train.epochs => {
            let results = status.results_in(&dir.trial(&t.id()))?;
            AtRung::Value(results.and_then(|r| r.final_value(protocol, metric)).ok_or_else(missing)?)
        }
        State::Done => AtRung::Whole,
        _ => AtRung::Short,
    })
}

/// Epochs a trial has trained, as its status records.
fn epochs_trained(t: &TrialConfig, status: Option<&TrialStatus>) -> usize {
    match status {
        Some(s) if s.state == State::Done => t.train.epochs,
        Some(s) => s.rungs.iter().map(|r| r.epochs).max().unwrap_or(0),
        None => 0,
    }
}

/// The settings of one group in file order, each with its trials (one per search seed).
type Settings<'a> = Vec<(String, Vec<&'a TrialConfig>)>;

/// What halving does next in `exp`'s search (its `[select]` is `select`, method halving), from
/// the statuses in `dir`.
pub fn plan(exp: &Experiment, select: &SelectSpec, dir: &ExperimentDir) -> anyhow::Result<Plan> {
    plan_with(exp, select, dir, &statuses(exp, dir))
}

/// [`plan`] on statuses already read.
pub fn plan_with(
    exp: &Experiment,
    select: &SelectSpec,
    dir: &ExperimentDir,
    statuses: &BTreeMap<String, TrialStatus>,
) -> anyhow::Result<Plan> {
    let mut groups: Vec<(String, Settings)> = Vec::new();
    for t in &exp.trials {
        let group = group_of(select, t);
        let setting = setting_of(select, t);
        let gi = match groups.iter().position(|(g, _)| *g == group) {
            Some(i) => i,
            None => {
                groups.push((group, Vec::new()));
                groups.len() - 1
            }
        };
        let settings = &mut groups[gi].1;
        match settings.iter_mut().find(|(s, _)| *s == setting) {
            Some((_, trials)) => trials.push(t),
            None => settings.push((setting, vec![t])),
        }
    }
    let mut plan = Plan::default();
    for (group, settings) in groups {
        let group_plan = plan_group(select, &settings, statuses, dir, &mut plan)?;
        plan.groups.insert(group, group_plan);
    }
    Ok(plan)
}

fn plan_group(
    select: &SelectSpec,
    settings: &Settings,
    statuses: &BTreeMap<String, TrialStatus>,
    dir: &ExperimentDir,
    plan: &mut Plan,
) -> anyhow::Result<GroupPlan> {
    let status = |t: &TrialConfig| statuses.get(&t.id());
    let rungs_of = |t: &TrialConfig| select.rungs(t.train.epochs);
    let rung_count = settings.iter().flat_map(|(_, ts)| ts.iter().map(|t| rungs_of(t).len())).min().unwrap_or(0);
    let mut record = HalvingRecord { eta: select.eta, ..Default::default() };
    for (_, trials) in settings {
        for t in trials {
            record.trial_epochs += epochs_trained(t, status(t));
            record.grid_trial_epochs += t.train.epochs;
        }
    }
    let mut alive: Vec<usize> = (0..settings.len()).collect();
    for k in 0..rung_count {
        // The rung's epochs for a trial: its own k-th rung, its last when k is the last.
        let epochs_at = |t: &TrialConfig| {
            let rungs = rungs_of(t);
            if k + 1 == rung_count {
                *rungs.last().expect("a trial has a rung")
            } else {
                rungs[k]
            }
        };
        let mut short = Vec::new();
        // (setting index, mean score over the seeds evaluated, whether it trained whole before)
        let mut reached: Vec<(usize, Option<f64>, bool)> = Vec::new();
        for &i in &alive {
            let (mut values, mut whole) = (Vec::new(), false);
            for &t in &settings[i].1 {
                match at_rung(select, t, status(t), epochs_at(t), dir)? {
                    AtRung::Short => short.push((t.clone(), epochs_at(t))),
                    AtRung::Value(v) => values.push(v),
                    AtRung::Whole => whole = true,
                    AtRung::Failed => {}
                }
            }
            // A score that is not a number ranks nowhere (as under the grid).
            let mean = Some(values.iter().sum::<f64>() / values.len() as f64).filter(|m| !m.is_nan());
            reached.push((i, mean, whole && mean.is_none()));
        }
        if !short.is_empty() {
            plan.work.extend(short);
            return Ok(GroupPlan { record, finalists: None });
        }
        let last = k + 1 == rung_count;
        let quota = if last { 1 } else { (alive.len() / select.eta.max(2)).max(1) };
        let mut ranked: Vec<(usize, f64)> = reached.iter().filter_map(|&(i, s, _)| Some((i, s?))).collect();
        // Best first; a tie keeps file order (the sort is stable).
        ranked.sort_by(|a, b| {
            let order = comparable(a.1).total_cmp(&comparable(b.1));
            match select.goal {
                Goal::Max => order.reverse(),
                Goal::Min => order,
            }
        });
        let on: BTreeSet<usize> = ranked
            .iter()
            .take(quota)
            .map(|&(i, _)| i)
            .chain(reached.iter().filter(|&&(_, _, whole)| whole).map(|&(i, _, _)| i))
            .collect();
        let first = settings[alive[0]].1[0];
        record.rungs.push(RungDecision {
            epochs: epochs_at(first),
            settings: reached
                .iter()
                .map(|&(i, score, _)| RungSetting { setting: settings[i].0.clone(), score, promoted: on.contains(&i) })
                .collect(),
        });
        if last {
            let finalists = reached.iter().filter(|(_, s, _)| s.is_some()).map(|&(i, _, _)| settings[i].0.clone());
            return Ok(GroupPlan { record, finalists: Some(finalists.collect()) });
        }
        for &(i, _, _) in &reached {
            if !on.contains(&i) {
                let paused = |t: &&&TrialConfig| status(t).is_some_and(|s| s.state == State::Paused);
                plan.prune.extend(settings[i].1.iter().filter(paused).map(|t| (*t).clone()));
            }
        }
        alive.retain(|i| on.contains(i));
    }
    Ok(GroupPlan { record, finalists: Some(BTreeSet::new()) })
}

#[cfg(test)]
mod tests {
    use crate::spec::{SearchMethod, SelectSpec};

    fn halving(eta: usize, min_epochs: usize) -> SelectSpec {
        SelectSpec {
            metric: "lfw/accuracy_mean".into(),
            goal: Default::default(),
            tune: vec!["train.lr".into()],
            seeds: vec![9],
            validation_identities: None,
            method: SearchMethod::Halving,
            eta,
            min_epochs,
        }
    }

    #[test]
    fn rungs_grow_by_eta_below_the_epochs_and_end_at_them() {
        assert_eq!(halving(3, 1).rungs(30), vec![1, 3, 9, 27, 30]);
        assert_eq!(halving(3, 4).rungs(30), vec![4, 12, 30]);
        assert_eq!(halving(2, 3).rungs(12), vec![3, 6, 12]);
        let grid = SelectSpec { method: SearchMethod::Grid, ..halving(3, 1) };
        assert_eq!(grid.rungs(30), vec![30]);
    }
}
