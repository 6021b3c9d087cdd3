//! Tune on validation, report on test (`[select]`; Musgrave et al., "A Metric Learning Reality
//! Check", ECCV 2020): group the search trials by loss and condition (everything but the tuned
//! keys and the seed), average each setting's validation metric over its search seeds, choose
//! the best setting of each group, and derive the final trials: the chosen setting on every
//! `select.seeds` seed, evaluated on the test identities only. The search is the full grid, or
//! successive halving ([`halving`]).

pub mod against_grid;
pub mod halving;

use crate::error::InputError;
use crate::spec::{short_value, Experiment, Goal, SearchMethod, SelectSpec, Split, SplitPart, TrialConfig};
use crate::store::selection::{ChoiceRecord, HalvingRecord, Selection};
use crate::store::{ExperimentDir, State, TrialStatus};
use std::collections::BTreeMap;

/// One group's choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The loss and the group's conditions, as a label (`cosface s=30, data.identities=50`).
    pub group: String,
    /// The chosen setting's tuned values, as a label (`m=0.35, train.lr=0.1`).
    pub setting: String,
    /// The chosen setting's mean validation metric over its search seeds.
    pub score: f64,
    /// Settings searched in this group, the search trials they took, and their seconds.
    pub settings_searched: usize,
    pub search_trials: usize,
    pub search_seconds: f64,
    /// Each tuned key with the values searched in this group.
    pub search_space: Vec<(String, Vec<String>)>,
    /// A search trial of the chosen setting (the final trials are it with other seeds).
    pub chosen: TrialConfig,
    /// Under successive halving: its rungs' decisions and epochs spent.
    pub halving: Option<HalvingRecord>,
}

/// Why a group has no choice yet.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// Some of its search trials have not finished.
    Searching { group: String, unfinished: usize },
    /// Every search trial finished, none of them done (all failed or diverged).
    NothingDone { group: String },
}

/// Every value of a trial that is tuned under `select` (loss parameters by name, axes dotted).
fn tuned(select: &SelectSpec, t: &TrialConfig) -> Vec<(String, String)> {
    let params = t.loss.params.iter().map(|(k, v)| (k.clone(), v.short()));
    let axes = t.axes.iter().map(|(k, v)| (k.clone(), short_value(v)));
    params.chain(axes).filter(|(k, _)| select.tune.contains(k)).collect()
}

/// Every trial's status in `dir` that has one, by id (read once for a whole decision).
fn statuses(exp: &Experiment, dir: &ExperimentDir) -> BTreeMap<String, TrialStatus> {
    exp.trials.iter().filter_map(|t| Some((t.id(), TrialStatus::read(&dir.trial(&t.id()))?))).collect()
}

/// A score as settings are ranked by: to 12 significant digits, so that two scores that differ
/// only by rounding (a mean of folds summed in another order) tie, and the earlier setting wins.
fn comparable(score: f64) -> f64 {
    format!("{score:.11e}").parse().unwrap_or(score)
}

/// A trial's tuned values as a label (`m=0.35, train.lr=0.1`): its setting within its group.
fn setting_of(select: &SelectSpec, t: &TrialConfig) -> String {
    tuned(select, t).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// The group label of a trial: its loss with every untuned parameter and axis, and its noise.
fn group_of(select: &SelectSpec, t: &TrialConfig) -> String {
    let untuned = |k: &String| !select.tune.contains(k);
    let params: Vec<String> =
        t.loss.params.iter().filter(|(k, _)| untuned(k)).map(|(k, v)| format!("{k}={}", v.short())).collect();
    let axes: Vec<String> =
        t.axes.iter().filter(|(k, _)| untuned(k)).map(|(k, v)| format!("{k}={}", short_value(v))).collect();
    let mut label = t.loss.name.clone();
    let rest: Vec<String> = params.into_iter().chain(axes).collect();
    if !rest.is_empty() {
        label = format!("{label} {}", rest.join(", "));
    }
    if !t.noise.is_clean() {
        label = format!("{label}, noise {}", t.noise.label());
    }
    label
}

/// How many loss/condition groups the search of `exp` has (each gets its own final trials).
pub fn group_count(exp: &Experiment) -> usize {
    let Some(select) = &exp.select else { return 0 };
    exp.trials.iter().map(|t| group_of(select, t)).collect::<std::collections::BTreeSet<_>>().len()
}

/// The choice of every group whose search is complete, and why the others have none.
pub fn choose(exp: &Experiment, dir: &ExperimentDir) -> anyhow::Result<(Vec<Choice>, Vec<Pending>)> {
    let Some(select) = &exp.select else { return Ok((Vec::new(), Vec::new())) };
    let (protocol, metric) = select.protocol_metric().expect("select.metric is checked when the spec is read");
    // (file order, group) → (file order, setting) → (its first search trial, scores over seeds)
    type Settings = BTreeMap<(usize, String), (TrialConfig, Vec<f64>)>;
    let mut groups: BTreeMap<(usize, String), Settings> = BTreeMap::new();
    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut unfinished: BTreeMap<String, usize> = BTreeMap::new();
    let mut trials: BTreeMap<String, usize> = BTreeMap::new();
    let mut seconds: BTreeMap<String, f64> = BTreeMap::new();
    let mut space: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
    let statuses = statuses(exp, dir);
    for (i, t) in exp.trials.iter().enumerate() {
        let group = group_of(select, t);
        let order = *first_seen.entry(group.clone()).or_insert(i);
        *trials.entry(group.clone()).or_default() += 1;
        let keys = space.entry(group.clone()).or_default();
        for (k, v) in tuned(select, t) {
            match keys.iter_mut().find(|(name, _)| *name == k) {
                Some((_, values)) if !values.contains(&v) => values.push(v),
                Some(_) => {}
                None => keys.push((k, vec![v])),
            }
        }
        let entry = groups.entry((order, group.clone())).or_default().entry((i, setting_of(select, t)));
        let scores = &mut entry.or_insert_with(|| (t.clone(), Vec::new())).1;
        let tdir = dir.trial(&t.id());
        let status = statuses.get(&t.id());
        *seconds.entry(group.clone()).or_default() += status.as_ref().map_or(0.0, |s| s.seconds);
        match &status {
            Some(s) if s.state == State::Done => match s.results_in(&tdir)?.and_then(|r| r.final_value(protocol, metric)) {
                Some(v) => scores.push(v),
                None => {
                    return Err(InputError {
                        location: format!("{}: select.metric", exp.path.display()),
                        message: format!(
                            "{}: trial {} reported no {protocol} metric \"{metric}\" on validation (see its evals.parquet for the metric names)",
                            select.metric,
                            t.id()
                        ),
                    }
                    .into())
                }
            },
            Some(s) if matches!(s.state, State::Failed | State::Diverged | State::Pruned) => {}
            _ => *unfinished.entry(group.clone()).or_default() += 1,
        }
    }
    let mut halving = match select.method {
        SearchMethod::Halving => Some(halving::plan_with(exp, select, dir, &statuses)?.groups),
        SearchMethod::Grid => None,
    };
    let (mut choices, mut pending) = (Vec::new(), Vec::new());
    for ((_, group), settings) in groups {
        if let Some(&n) = unfinished.get(&group) {
            pending.push(Pending::Searching { group, unfinished: n });
            continue;
        }
        // Under halving, the best of the settings that reached the last rung.
        let halved = halving.as_mut().and_then(|h| h.remove(&group));
        let finalists = halved.as_ref().map(|h| h.finalists.clone().unwrap_or_default());
        let scored = settings
            .iter()
            .filter(|(_, (_, scores))| !scores.is_empty())
            .filter(|((_, setting), _)| finalists.as_ref().is_none_or(|f| f.contains(setting)))
            .map(|(key, (t, scores))| (key, t, scores.iter().sum::<f64>() / scores.len() as f64));
        let better = |a: f64, b: f64| match select.goal {
            Goal::Max => comparable(a) > comparable(b),
            Goal::Min => comparable(a) < comparable(b),
        };
        let mut best: Option<(&(usize, String), &TrialConfig, f64)> = None;
        for candidate in scored {
            if best.as_ref().is_none_or(|b| better(candidate.2, b.2)) {
                best = Some(candidate);
            }
        }
        match best {
            Some(((_, setting), t, score)) => choices.push(Choice {
                group: group.clone(),
                setting: setting.clone(),
                score,
                settings_searched: settings.len(),
                search_trials: trials[&group],
                search_seconds: seconds[&group],
                search_space: space.remove(&group).unwrap_or_default(),
                chosen: t.clone(),
                halving: halved.map(|h| h.record),
            }),
            None => pending.push(Pending::NothingDone { group }),
        }
    }
    Ok((choices, pending))
}

/// The final trials of `choices`: each chosen setting on every `select.seeds` seed, evaluated on
/// the test identities.
pub fn final_trials(select: &SelectSpec, choices: &[Choice]) -> Vec<TrialConfig> {
    let mut out = Vec::new();
    for c in choices {
        for &seed in &select.seeds {
            let mut t = c.chosen.clone();
            t.seed = seed;
            t.split = t.split.map(|s| Split { part: SplitPart::Test, ..s });
            out.push(t);
        }
    }
    out
}

/// `selection.json`'s record of `choices`.
pub fn record(exp: &Experiment, select: &SelectSpec, choices: &[Choice]) -> Selection {
    let split = exp.trials.first().and_then(|t| t.split);
    let validation = split.map_or(0, |s| s.validation_identities);
    let heldout = exp.trials.first().map_or(0, |t| t.data.heldout_identities);
    Selection {
        metric: select.metric.clone(),
        goal: format!("{:?}", select.goal).to_lowercase(),
        tune: select.tune.clone(),
        validation_identities: validation,
        test_identities: heldout.saturating_sub(validation),
        search_seeds: {
            let mut seen = std::collections::BTreeSet::new();
            exp.trials.iter().map(|t| t.seed).filter(|&s| seen.insert(s)).collect()
        },
        final_seeds: select.seeds.clone(),
        choices: choices
            .iter()
            .map(|c| ChoiceRecord {
                group: c.group.clone(),
                search_space: c.search_space.clone(),
                settings_searched: c.settings_searched,
                search_trials: c.search_trials,
                search_seconds: c.search_seconds,
                chosen: c.setting.clone(),
                validation_score: c.score,
                setting: c.chosen.setting(),
                final_trials: final_trials(select, std::slice::from_ref(c)).iter().map(TrialConfig::id).collect(),
                halving: c.halving.clone(),
            })
            .collect(),
    }
}
