//! The `curves` command's loss settings: `--loss NAME[:key=value,...]` (repeatable), sweep
//! flags that apply to every listed loss having that parameter (`--s 16,32,64`, `--m 0.35`,
//! `--set key=v1,v2`) and `--classes`. Values are checked against the loss's parameter spec;
//! every problem is an [`InputError`] naming the flag and what was expected.

use super::curves::CurveSpec;
use crate::error::InputError;
use crate::loss::{self, LossConfig, ParamKind, ParamSpec, ParamValue};
use std::collections::BTreeMap;

/// A sweep over one parameter, from `--s`, `--m` or `--set key=...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The flag as the user wrote it, for messages (`--s`, `--set m=…`).
    pub flag: String,
    pub key: String,
    pub values: Vec<String>,
}

/// Parses `--set key=v1,v2,...`.
pub fn parse_set(text: &str) -> Result<Sweep, InputError> {
    let flag = format!("--set {text}");
    let Some((key, values)) = text.split_once('=') else {
        return Err(bad(&flag, "expected key=value or key=v1,v2,... (e.g. --set m=0.2,0.35)"));
    };
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if key.trim().is_empty() || values.iter().any(String::is_empty) {
        return Err(bad(&flag, "expected key=value or key=v1,v2,... with no empty parts"));
    }
    Ok(Sweep { flag, key: key.trim().to_string(), values })
}

fn bad(location: &str, message: impl Into<String>) -> InputError {
    InputError { location: location.to_string(), message: message.into() }
}

/// Converts the text of a value to a parameter of the spec's kind and range-checks it.
fn convert(text: &str, spec: &ParamSpec) -> Result<ParamValue, String> {
    let wrong = || format!("expected {} for {}, found \"{text}\"", spec.kind.describe(), spec.name);
    let v = match spec.kind {
        ParamKind::Float => ParamValue::Float(text.parse::<f64>().map_err(|_| wrong())?),
        ParamKind::Int => ParamValue::Int(text.parse::<i64>().map_err(|_| wrong())?),
        ParamKind::Bool => ParamValue::Bool(text.parse::<bool>().map_err(|_| wrong())?),
        ParamKind::Choice(options) if options.contains(&text) => ParamValue::Str(text.to_string()),
        ParamKind::Choice(_) => return Err(wrong()),
    };
    (spec.check)(&v).map_err(|expected| format!("{}: expected {expected}, found {text}", spec.name))?;
    Ok(v)
}

/// Resolves the `--loss` specs, the sweeps and the class counts into the settings to draw: per
/// `--loss`, its defaults, then the sweeps (grid product, for the parameters it has), then its
/// own `key=value`s (which win over a sweep of the same key); each × every class count.
pub fn resolve(losses: &[String], sweeps: &[Sweep], classes: &[i64]) -> Result<Vec<CurveSpec>, InputError> {
    let known: Vec<&str> = loss::registry().iter().map(|e| e.name).collect();
    if losses.is_empty() {
        return Err(bad("--loss", format!("give at least one loss, one of {known:?}")));
    }
    if let Some(c) = classes.iter().find(|&&c| c < 2) {
        return Err(bad("--classes", format!("expected class counts of at least 2, found {c}")));
    }
    for (i, s) in sweeps.iter().enumerate() {
        if let Some(other) = sweeps[..i].iter().find(|o| o.key == s.key) {
            return Err(bad(
                &s.flag,
                format!("\"{}\" is already swept by {}; give its values once", s.key, other.flag),
            ));
        }
    }
    let mut used = vec![false; sweeps.len()];
    let mut out = Vec::new();
    for text in losses {
        let flag = format!("--loss {text}");
        let (name, assignments) = match text.split_once(':') {
            Some((n, rest)) => (n.trim(), rest),
            None => (text.trim(), ""),
        };
        let entry = loss::find(name)
            .ok_or_else(|| bad(&flag, format!("unknown loss \"{name}\"; expected one of {known:?}")))?;
        let allowed: Vec<&str> = entry.params.iter().map(|p| p.name).collect();
        let spec_of =
            |key: &str, flag: &str| {
                entry.params.iter().find(|p| p.name == key).ok_or_else(|| {
                    bad(flag, format!("{name} has no parameter \"{key}\"; its parameters are {allowed:?}"))
                })
            };
        let mut fixed: BTreeMap<String, ParamValue> = BTreeMap::new();
        for part in assignments.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(bad(&flag, format!("expected key=value, found \"{part}\" (e.g. cosface:s=16,m=0.35)")));
            };
            let spec = spec_of(key.trim(), &flag)?;
            let v = convert(value.trim(), spec).map_err(|m| bad(&flag, m))?;
            fixed.insert(spec.name.to_string(), v);
        }
        let mut grid: Vec<BTreeMap<String, ParamValue>> =
            vec![entry.params.iter().map(|p| (p.name.to_string(), p.default.value())).collect()];
        for p in entry.params {
            if let Some(v) = fixed.get(p.name) {
                for g in &mut grid {
                    g.insert(p.name.to_string(), v.clone());
                }
                continue;
            }
            for (i, sweep) in sweeps.iter().enumerate().filter(|(_, s)| s.key == p.name) {
                used[i] = true;
                let values = sweep.values.iter().map(|t| convert(t, p)).collect::<Result<Vec<_>, _>>();
                let values = values.map_err(|m| bad(&sweep.flag, format!("{m} (for {name})")))?;
                grid = grid
                    .into_iter()
                    .flat_map(|g| {
                        values.iter().map(move |v| {
                            let mut g = g.clone();
                            g.insert(p.name.to_string(), v.clone());
                            g
                        })
                    })
                    .collect();
            }
        }
        for params in grid {
            let config = LossConfig { name: name.to_string(), params };
            loss::validate(&config).map_err(|m| bad(&flag, m))?;
            for &c in classes {
                out.push(CurveSpec { loss: config.clone(), classes: c });
            }
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        let names: Vec<&str> = losses.iter().map(|l| l.split(':').next().unwrap_or("").trim()).collect();
        return Err(bad(
            &sweeps[i].flag,
            format!("none of the losses {names:?} has a parameter \"{}\" that is not set in its --loss", sweeps[i].key),
        ));
    }
    Ok(out)
}
