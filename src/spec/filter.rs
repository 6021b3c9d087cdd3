//! Trial filters for `--only` and `--skip`: `loss=arcface,s=64` keeps (or drops) the trials
//! whose resolved settings match every `key=value` pair. Keys: `loss`, `seed`, `noise` (kind),
//! `ratio` (noise ratio), `id`, any loss parameter, or any swept key (`train.lr`, as written in
//! `[sweep]` or a loss block); numbers compare by value (`64` = `64.0`).

use super::TrialConfig;
use crate::error::InputError;

/// A parsed filter: all pairs must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pairs: Vec<(String, String)>,
}

impl Filter {
    /// Parses `key=value[,key=value…]`; `flag` names the option in errors.
    pub fn parse(text: &str, flag: &str) -> Result<Filter, InputError> {
        let mut pairs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(InputError {
                    location: flag.to_string(),
                    message: format!("\"{part}\" is not key=value (e.g. --only 'loss=arcface,s=64')"),
                });
            };
            pairs.push((k.trim().to_string(), v.trim().to_string()));
        }
        if pairs.is_empty() {
            return Err(InputError { location: flag.to_string(), message: "an empty filter".into() });
        }
        Ok(Filter { pairs })
    }

    pub fn matches(&self, trial: &TrialConfig) -> bool {
        self.pairs.iter().all(|(k, v)| match k.as_str() {
            "loss" => trial.loss.name == *v,
            "seed" => same_number(&trial.seed.to_string(), v),
            "noise" => format!("{:?}", trial.noise.kind).eq_ignore_ascii_case(v),
            "ratio" => same_number(&trial.noise.ratio.to_string(), v),
            "id" => trial.id() == *v,
            key => match trial.axes.get(key) {
                Some(a) => same_number(&super::short_value(a), v) || super::short_value(a) == *v,
                None => trial.loss.params.get(key).is_some_and(|p| same_number(&p.short(), v) || p.short() == *v),
            },
        })
    }

    /// Keys that name nothing in any of `trials` (a likely typo).
    pub fn unknown_keys(&self, trials: &[TrialConfig]) -> Vec<String> {
        self.pairs
            .iter()
            .map(|(k, _)| k)
            .filter(|k| {
                !["loss", "seed", "noise", "ratio", "id"].contains(&k.as_str())
                    && !trials.iter().any(|t| t.loss.params.contains_key(k.as_str()) || t.axes.contains_key(k.as_str()))
            })
            .cloned()
            .collect()
    }
}

fn same_number(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The trials kept by `--only` (all must match, if given) and not dropped by `--skip`.
pub fn select(trials: &[TrialConfig], only: Option<&Filter>, skip: Option<&Filter>) -> Vec<TrialConfig> {
    trials
        .iter()
        .filter(|t| only.is_none_or(|f| f.matches(t)) && !skip.is_some_and(|f| f.matches(t)))
        .cloned()
        .collect()
}
