//! Experiment specs: reading and validating the TOML file, expanding it into trials (the grid
//! product of each `[[loss]]` block's sweep axes × seeds), and the trials' content-addressed ids.
//! Nothing here touches tensors or the disk beyond reading the file.

mod error;
pub mod filter;
mod schema;

pub use error::{line_col, SpecError};
pub use schema::{
    DataKind, DataSpec, DeviceChoice, EvalSpec, FlipMode, LfwSpec, MemoryFormat, ModelSpec, NoiseKind, NoiseSetting,
    NoiseSpec, OneOrMany, RawExperiment, TrainSpec, KNOWN_PROTOCOLS,
};

use crate::loss::{self, LossConfig, ParamKind, ParamValue};
use error::{Key, Locator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A validated experiment: the file's text, its settings, and the trials it expands to.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub path: PathBuf,
    pub source: String,
    pub name: String,
    pub description: String,
    pub trials: Vec<TrialConfig>,
}

/// Everything one trial needs; `config.toml` in its directory is this, serialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialConfig {
    pub experiment: String,
    pub seed: u64,
    pub loss: LossConfig,
    pub data: DataSpec,
    pub model: ModelSpec,
    pub train: TrainSpec,
    pub eval: EvalSpec,
    pub noise: NoiseSetting,
}

impl TrialConfig {
    /// `arcface-s64-m0.5-seed1-1a2b3c`: readable parameters, then a hash of the resolved config
    /// (execution settings — device, threads, checkpointing, the seed list — excluded).
    pub fn id(&self) -> String {
        let noise = if self.noise.is_clean() { String::new() } else { format!("-{}", self.noise.label()) };
        format!("{}{noise}-seed{}-{}", self.loss.label(), self.seed, &self.content_hash()[..6])
    }

    /// SHA-256 (hex) over the canonical JSON of the settings that change a trial's results.
    pub fn content_hash(&self) -> String {
        let mut value = serde_json::to_value(self).expect("trial configs serialise");
        if let Some(train) = value.get_mut("train").and_then(|t| t.as_object_mut()) {
            for key in ["seeds", "device", "threads", "checkpoint_every", "memory_format"] {
                train.remove(key);
            }
        }
        let canonical = serde_json::to_string(&value).expect("json values serialise");
        crate::digest::sha256_hex(canonical.as_bytes())
    }
}

/// Reads, validates and expands an experiment file.
pub fn load(path: &Path) -> Result<Experiment, SpecError> {
    load_with(path, true)
}

/// [`load`], where `files = false` checks the form of data and protocol paths but not that they
/// exist (for `--dry-run` of a set-up meant for another machine).
pub fn load_with(path: &Path, files: bool) -> Result<Experiment, SpecError> {
    let source = std::fs::read_to_string(path).map_err(|source| SpecError::Io { path: path.to_path_buf(), source })?;
    parse_with(path, &source, files)
}

/// Validates and expands experiment text; `path` only names the file in errors.
pub fn parse(path: &Path, source: &str) -> Result<Experiment, SpecError> {
    parse_with(path, source, true)
}

/// [`parse`], with the `files` switch of [`load_with`].
pub fn parse_with(path: &Path, source: &str, files: bool) -> Result<Experiment, SpecError> {
    let doc = toml_edit::ImDocument::parse(source).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let (line, col) = line_col(source, offset);
        SpecError::At { path: path.to_path_buf(), line, col, message: format!("invalid TOML: {}", e.message()) }
    })?;
    let loc = Locator { path, src: source, doc };
    let raw: RawExperiment = toml::from_str(source).map_err(|e| {
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => loc.at_offset(span.start, message),
            None => loc.at(&[], message),
        }
    })?;
    if let Some((keys, message)) = schema::check_values(&raw, files) {
        return Err(loc.at(&keys, message));
    }
    if raw.losses.is_empty() {
        return Err(loc.at(&[], "no [[loss]] blocks: expected at least one, e.g.\n[[loss]]\nname = \"p2sgrad\""));
    }
    let noises = noise_settings(raw.noise.as_ref());
    let mut trials = Vec::new();
    for (index, block) in raw.losses.iter().enumerate() {
        for loss in expand_loss_block(&loc, index, block)? {
            for noise in &noises {
                for &seed in &raw.train.seeds {
                    trials.push(TrialConfig {
                        experiment: raw.name.clone(),
                        seed,
                        loss: loss.clone(),
                        data: raw.data.clone(),
                        model: raw.model.clone(),
                        train: raw.train.clone(),
                        eval: raw.eval.clone(),
                        noise: *noise,
                    });
                }
            }
        }
    }
    let mut seen = BTreeMap::new();
    for (i, t) in trials.iter().enumerate() {
        if let Some(j) = seen.insert(t.id(), i) {
            return Err(loc.at(
                &[],
                format!(
                    "trials {} and {} are the same trial ({}); remove the duplicate loss setting",
                    j + 1,
                    i + 1,
                    t.id()
                ),
            ));
        }
    }
    Ok(Experiment {
        path: path.to_path_buf(),
        source: source.to_string(),
        name: raw.name,
        description: raw.description,
        trials,
    })
}

/// The noise axis: every (kind, ratio) pair, a ratio of 0 collapsing to one clean setting.
fn noise_settings(spec: Option<&NoiseSpec>) -> Vec<NoiseSetting> {
    let Some(spec) = spec else { return vec![NoiseSetting::CLEAN] };
    let mut out: Vec<NoiseSetting> = Vec::new();
    for ratio in spec.ratio.values() {
        for kind in spec.kind.values() {
            let setting = if ratio == 0.0 {
                NoiseSetting::CLEAN
            } else {
                NoiseSetting { kind, ratio, seed: spec.seed, outlier_identities: spec.outlier_identities }
            };
            if !out.contains(&setting) {
                out.push(setting);
            }
        }
    }
    out
}

/// One `[[loss]]` block → its resolved configurations: the grid product of its list values,
/// except that the axes named together in a `zip` group vary together.
fn expand_loss_block(loc: &Locator, index: usize, block: &toml::Table) -> Result<Vec<LossConfig>, SpecError> {
    let here = |key: &str| vec![Key::from("loss"), Key::Index(index), Key::from(key)];
    let known: Vec<&str> = loss::registry().iter().map(|e| e.name).collect();
    let name = match block.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(loc.at(&here("name"), format!("loss.name: expected a loss name as a string, one of {known:?}")))
        }
        None => {
            return Err(loc.at(
                &[Key::from("loss"), Key::Index(index)],
                format!("[[loss]] block {} has no name; expected one of {known:?}", index + 1),
            ))
        }
    };
    let Some(entry) = loss::find(&name) else {
        return Err(loc.at(&here("name"), format!("unknown loss \"{name}\"; expected one of {known:?}")));
    };
    for key in block.keys() {
        if key != "name" && key != "zip" && !entry.params.iter().any(|p| p.name == key) {
            let allowed: Vec<&str> = entry.params.iter().map(|p| p.name).collect();
            return Err(
                loc.at(&here(key), format!("unknown key \"{key}\" for loss {name}; its parameters are {allowed:?}"))
            );
        }
    }
    let zip_groups = zip_groups(loc, index, block, &name)?;
    let mut axes: Vec<(Vec<&'static str>, Vec<Vec<ParamValue>>)> = Vec::new();
    for spec in entry.params {
        let values = match block.get(spec.name) {
            None => vec![spec.default.value()],
            Some(toml::Value::Array(items)) => {
                if items.is_empty() {
                    return Err(loc.at(
                        &here(spec.name),
                        format!(
                            "{name}.{}: an empty list sweeps nothing; give {} or a non-empty list",
                            spec.name,
                            spec.kind.describe()
                        ),
                    ));
                }
                let mut values = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let mut keys = here(spec.name);
                    keys.push(Key::Index(i));
                    values.push(convert(item, spec).map_err(|m| loc.at(&keys, format!("{name}.{}: {m}", spec.name)))?);
                }
                values
            }
            Some(v) => {
                vec![convert(v, spec).map_err(|m| loc.at(&here(spec.name), format!("{name}.{}: {m}", spec.name)))?]
            }
        };
        match zip_groups.iter().position(|g| g.iter().any(|k| k == spec.name)) {
            Some(g) => {
                let axis =
                    axes.iter_mut().find(|(names, _)| names.iter().any(|n| zip_groups[g].contains(&n.to_string())));
                match axis {
                    Some((names, rows)) => {
                        if rows.len() != values.len() {
                            return Err(loc.at(
                                &here(spec.name),
                                format!(
                                    "{name}.{}: zipped axes must have equal lengths ({} vs {})",
                                    spec.name,
                                    values.len(),
                                    rows.len()
                                ),
                            ));
                        }
                        names.push(spec.name);
                        for (row, v) in rows.iter_mut().zip(values) {
                            row.push(v);
                        }
                    }
                    None => axes.push((vec![spec.name], values.into_iter().map(|v| vec![v]).collect())),
                }
            }
            None => axes.push((vec![spec.name], values.into_iter().map(|v| vec![v]).collect())),
        }
    }
    let mut grid: Vec<BTreeMap<String, ParamValue>> = vec![BTreeMap::new()];
    for (names, rows) in &axes {
        grid = grid
            .into_iter()
            .flat_map(|partial| {
                rows.iter().map(move |row| {
                    let mut p = partial.clone();
                    for (n, v) in names.iter().zip(row) {
                        p.insert(n.to_string(), v.clone());
                    }
                    p
                })
            })
            .collect();
    }
    let configs: Vec<LossConfig> = grid.into_iter().map(|params| LossConfig { name: name.clone(), params }).collect();
    for c in &configs {
        loss::validate(c).map_err(|m| loc.at(&[Key::from("loss"), Key::Index(index)], m))?;
    }
    Ok(configs)
}

/// The `zip = [["s", "m"], …]` groups of a block: parameter names that vary together.
fn zip_groups(loc: &Locator, index: usize, block: &toml::Table, loss: &str) -> Result<Vec<Vec<String>>, SpecError> {
    let keys = vec![Key::from("loss"), Key::Index(index), Key::from("zip")];
    let Some(value) = block.get("zip") else { return Ok(Vec::new()) };
    let expected = || format!("{loss}.zip: expected a list of lists of parameter names, e.g. zip = [[\"s\", \"m\"]]");
    let groups = value.as_array().ok_or_else(|| loc.at(&keys, expected()))?;
    let mut out = Vec::new();
    for group in groups {
        let names = group.as_array().ok_or_else(|| loc.at(&keys, expected()))?;
        let mut names_out = Vec::new();
        for n in names {
            let n = n.as_str().ok_or_else(|| loc.at(&keys, expected()))?;
            match block.get(n) {
                Some(toml::Value::Array(_)) => names_out.push(n.to_string()),
                Some(_) => {
                    return Err(loc.at(&keys, format!("{loss}.zip: \"{n}\" is not a list, so it cannot be zipped")))
                }
                None => return Err(loc.at(&keys, format!("{loss}.zip: \"{n}\" is not a parameter set in this block"))),
            }
        }
        if out.iter().flatten().any(|n: &String| names_out.contains(n)) {
            return Err(loc.at(&keys, format!("{loss}.zip: a parameter may be in one zip group only")));
        }
        out.push(names_out);
    }
    Ok(out)
}

/// Type-checks and range-checks one TOML value against a parameter spec.
fn convert(value: &toml::Value, spec: &loss::ParamSpec) -> Result<ParamValue, String> {
    let wrong = || format!("expected {}, found {}", spec.kind.describe(), describe(value));
    let v = match (spec.kind, value) {
        (ParamKind::Float, toml::Value::Float(f)) => ParamValue::Float(*f),
        (ParamKind::Float, toml::Value::Integer(i)) => ParamValue::Float(*i as f64),
        (ParamKind::Int, toml::Value::Integer(i)) => ParamValue::Int(*i),
        (ParamKind::Bool, toml::Value::Boolean(b)) => ParamValue::Bool(*b),
        (ParamKind::Choice(options), toml::Value::String(s)) if options.contains(&s.as_str()) => {
            ParamValue::Str(s.clone())
        }
        _ => return Err(wrong()),
    };
    (spec.check)(&v).map_err(|expected| format!("expected {expected}, found {}", describe(value)))?;
    Ok(v)
}

fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("\"{s}\""),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
        other => other.to_string(),
    }
}
