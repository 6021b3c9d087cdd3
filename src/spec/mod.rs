//! Experiment specs: reading and validating the TOML file, expanding it into trials (the grid
//! product of each `[[loss]]` block's sweep axes × seeds), and the trials' content-addressed ids.
//! Nothing here touches tensors or the disk beyond reading the file.

mod error;
pub mod filter;
mod ranges;
mod schema;
pub mod shard;
mod sweep;

pub use error::{line_col, SpecError};
pub use schema::{
    AugmentSpec, Backbone, BadImagePolicy, DataKind, DataSpec, DeviceChoice, EvalSpec, FlipMode, Goal, IjbcSpec,
    LfwSpec, LossScaling, MegafaceSpec, MemoryFormat, ModelSpec, NoiseKind, NoiseSetting, NoiseSpec, OneOrMany,
    Precision, RawExperiment, SearchMethod, SelectSpec, Split, SplitPart, TrainSpec, KNOWN_PROTOCOLS,
};
pub use sweep::short as short_value;

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
    /// Every trial the file names: with `[select]`, the search trials (the final ones follow
    /// from their results, see [`final_trials`]).
    pub trials: Vec<TrialConfig>,
    pub select: Option<SelectSpec>,
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
    /// The swept spec keys (`[sweep]`) and the loss block's training overrides that made this
    /// trial, dotted (`train.lr`), with their values; the settings themselves are already in
    /// `data`, `model`, `train` and `eval`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub axes: BTreeMap<String, toml::Value>,
    /// Under `[select]`: the held-out part this trial is evaluated on (search trials: validation;
    /// final trials: test). Absent: every held-out identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
}

impl TrialConfig {
    /// The experiment file's rules applied to a stored trial configuration (a trial directory's
    /// config.toml, perhaps written by another version): its loss exists and has exactly its
    /// parameters, and its values pass the file's checks. `Err` says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let Some(entry) = loss::find(&self.loss.name) else {
            let known: Vec<&str> = loss::registry().iter().map(|e| e.name).collect();
            return Err(format!("unknown loss \"{}\"; expected one of {known:?}", self.loss.name));
        };
        for p in entry.params {
            if !self.loss.params.contains_key(p.name) {
                return Err(format!("loss {}: parameter {} is missing", self.loss.name, p.name));
            }
        }
        if let Some(extra) = self.loss.params.keys().find(|k| !entry.params.iter().any(|p| p.name == k.as_str())) {
            return Err(format!("loss {}: unknown parameter {extra}", self.loss.name));
        }
        loss::validate(&self.loss)?;
        let raw = RawExperiment {
            name: self.experiment.clone(),
            description: String::new(),
            data: self.data.clone(),
            model: self.model.clone(),
            train: self.train.clone(),
            losses: Vec::new(),
            eval: self.eval.clone(),
            noise: None,
            sweep: None,
            select: None,
            report: None,
        };
        schema::check_values(&raw, false).map_or(Ok(()), |(_, message)| Err(message))
    }

    /// `arcface-s64-m0.5-seed1-1a2b3c`: readable parameters, then a hash of the resolved config
    /// (execution settings — device, threads, checkpointing, the seed list — excluded).
    pub fn id(&self) -> String {
        let noise = if self.noise.is_clean() { String::new() } else { format!("-{}", self.noise.label()) };
        let axes: String = self
            .axes
            .iter()
            .map(|(k, v)| format!("-{}{}", k.rsplit('.').next().unwrap_or(k), sweep::short(v)))
            .collect();
        let split = match self.split {
            Some(s) if s.part == SplitPart::Test => "-test",
            _ => "",
        };
        format!("{}{axes}{noise}{split}-seed{}-{}", self.loss.label(), self.seed, &self.content_hash()[..6])
    }

    /// The trial without its seed and noise, as the tables group trials (`cosface m=0.35, s=30,
    /// train.lr=0.1`): the loss, its parameters and the axes. trials.parquet's `setting` column.
    pub fn setting(&self) -> String {
        let rest: Vec<String> =
            [self.loss.params_text(), self.axes_text()].into_iter().filter(|p| !p.is_empty()).collect();
        if rest.is_empty() {
            self.loss.name.clone()
        } else {
            format!("{} {}", self.loss.name, rest.join(", "))
        }
    }

    /// `train.lr=3, data.identities=50`: the axes for tables and summaries.
    pub fn axes_text(&self) -> String {
        self.axes.iter().map(|(k, v)| format!("{k}={}", sweep::short(v))).collect::<Vec<_>>().join(", ")
    }

    /// SHA-256 (hex) over the canonical JSON of the settings that change a trial's results.
    pub fn content_hash(&self) -> String {
        let mut value = serde_json::to_value(self).expect("trial configs serialise");
        if let Some(train) = value.get_mut("train").and_then(|t| t.as_object_mut()) {
            for key in ["seeds", "device", "threads", "checkpoint_every", "memory_format"] {
                train.remove(key);
            }
        }
        if let Some(data) = value.get_mut("data").and_then(|t| t.as_object_mut()) {
            for key in ["workers", "prefetch"] {
                data.remove(key);
            }
        }
        if let Some(eval) = value.get_mut("eval").and_then(|t| t.as_object_mut()) {
            eval.remove("bootstrap");
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
    let mut raw: RawExperiment = toml::from_str(source).map_err(|e| {
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => loc.at_offset(span.start, message),
            None => loc.at(&[], message),
        }
    })?;
    let mut base: toml::Table = toml::from_str(source).map_err(|e| loc.at(&[], e.to_string()))?;
    if schema::real_data_defaults(&mut base) {
        raw = base.clone().try_into().map_err(|e: toml::de::Error| loc.at(&[], e.message().trim().to_string()))?;
    }
    let mut dimension = 0;
    if let Some(table) = raw.sweep.as_mut() {
        ranges::expand(table, &[Key::from("sweep")], &mut dimension).map_err(|(k, m)| loc.at(&k, m))?;
    }
    for (i, block) in raw.losses.iter_mut().enumerate() {
        ranges::expand(block, &[Key::from("loss"), Key::Index(i)], &mut dimension).map_err(|(k, m)| loc.at(&k, m))?;
    }
    let file_dir = std::path::absolute(path).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default();
    raw.anchor_paths(&file_dir);
    if let Some((keys, message)) = schema::check_values(&raw, files) {
        return Err(loc.at(&keys, message));
    }
    if raw.losses.is_empty() {
        return Err(loc.at(&[], "no [[loss]] blocks: expected at least one, e.g.\n[[loss]]\nname = \"p2sgrad\""));
    }
    for key in ["loss", "sweep", "select"] {
        base.remove(key);
    }
    let expander = Expander { loc: &loc, base, files, file_dir };
    let (sweep, sweep_places) = expander.sweep_axes(raw.sweep.as_ref())?;
    let sweep_names: Vec<String> = sweep.iter().flat_map(|a| a.names.iter().cloned()).collect();
    let noises = noise_settings(raw.noise.as_ref());
    let split = raw.select.as_ref().map(|s| Split {
        part: SplitPart::Validation,
        validation_identities: s.validation_identities(raw.data.heldout_identities),
    });
    let mut trials = Vec::new();
    let mut swept = sweep_names.clone();
    for (index, block) in raw.losses.iter().enumerate() {
        let block_settings = expand_loss_block(&expander, index, block, &sweep_names)?;
        swept.extend(block_settings.swept);
        let places: Places = sweep_places.clone().into_iter().chain(block_settings.places).collect();
        for (loss, overrides) in block_settings.settings {
            for combo in sweep::grid(&sweep) {
                let axes: BTreeMap<String, toml::Value> = overrides.iter().cloned().chain(combo).collect();
                let spec = expander.resolve(&axes, &places, &[Key::from("loss"), Key::Index(index)])?;
                for noise in &noises {
                    for &seed in &spec.train.seeds {
                        // A trial's own config names only its seed: the list of every seed in
                        // each of a sweep's trials would grow with the square of the sweep.
                        let train = TrainSpec { seeds: vec![seed], ..spec.train.clone() };
                        trials.push(TrialConfig {
                            experiment: raw.name.clone(),
                            seed,
                            loss: loss.clone(),
                            data: spec.data.clone(),
                            model: spec.model.clone(),
                            train,
                            eval: spec.eval.clone(),
                            noise: *noise,
                            axes: axes.clone(),
                            split,
                        });
                    }
                }
            }
        }
    }
    if let Some(select) = &raw.select {
        check_select(&loc, select, &raw, &swept)?;
        check_halving(&loc, select, &trials)?;
    }
    let mut seen = BTreeMap::new();
    for (i, t) in trials.iter().enumerate() {
        if let Some(j) = seen.insert(t.id(), i) {
            return Err(loc.at(
                &[],
                format!("trials {} and {} are the same trial ({}); remove the duplicate setting", j + 1, i + 1, t.id()),
            ));
        }
    }
    Ok(Experiment {
        path: path.to_path_buf(),
        source: source.to_string(),
        name: raw.name,
        description: raw.description,
        trials,
        select: raw.select,
    })
}

/// Spec keys a sweep or a loss block may not set: the seed axis has its own key, and execution
/// settings do not change what a trial computes (they are left out of its id).
const NOT_SWEPT: &[&str] = &[
    "train.seeds",
    "train.device",
    "train.threads",
    "train.checkpoint_every",
    "train.memory_format",
    "data.workers",
    "data.prefetch",
];

/// Training settings a `[[loss]]` block may override for its own trials; everything else (the
/// data, the network, the batches) is shared so that every trial of a seed starts alike.
pub const PER_LOSS: &[&str] =
    &["train.lr", "train.weight_decay", "train.momentum", "train.epochs", "train.lr_milestones", "train.lr_gamma"];

/// Spec keys whose single value is itself a list (a sweep of them is a list of lists).
const LIST_VALUED: &[&str] = &["model.widths", "train.lr_milestones", "eval.protocols", "eval.megaface.distractors"];

/// Where each swept key is written (its key path) and its values, for locating errors.
type Places = BTreeMap<String, (Vec<Key>, Vec<toml::Value>)>;

/// Resolves swept values against the file: each combination is the file's tables with the
/// values set, read and checked as the file itself is.
struct Expander<'a> {
    loc: &'a Locator<'a>,
    /// The file without `[[loss]]`, `[sweep]` and `[select]`.
    base: toml::Table,
    files: bool,
    /// The experiment file's directory: relative paths are relative to it.
    file_dir: PathBuf,
}

impl Expander<'_> {
    /// The file's tables with `axes` set, read and value-checked; `Err` says what is wrong.
    fn try_resolve(&self, axes: &BTreeMap<String, toml::Value>) -> Result<RawExperiment, String> {
        let mut table = self.base.clone();
        for (name, value) in axes {
            sweep::set(&mut table, name, value.clone());
        }
        let mut raw: RawExperiment =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.message().trim().to_string())?;
        raw.anchor_paths(&self.file_dir);
        match schema::check_values(&raw, self.files) {
            Some((_, message)) => Err(message),
            None => Ok(raw),
        }
    }

    /// [`Expander::try_resolve`]. An error is located at the axis value that fails on its own
    /// (`places`: where each axis is written, with its values), else at `at`, naming the
    /// combination.
    fn resolve(
        &self,
        axes: &BTreeMap<String, toml::Value>,
        places: &Places,
        at: &[Key],
    ) -> Result<RawExperiment, SpecError> {
        self.try_resolve(axes).map_err(|m| {
            for (name, value) in axes {
                let Some((keys, values)) = places.get(name) else { continue };
                if self.try_resolve(&BTreeMap::from([(name.clone(), value.clone())])).is_err() {
                    let mut here = keys.clone();
                    if let Some(i) = values.iter().position(|v| v == value) {
                        here.push(Key::Index(i));
                    }
                    let message = if m.starts_with(&format!("{name}:")) { m.clone() } else { format!("{name}: {m}") };
                    return self.loc.at(&here, message);
                }
            }
            let combo: Vec<String> = axes.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            self.loc.at(at, format!("with {}: {m}", combo.join(", ")))
        })
    }

    /// Checks one swept key (named `name`, written at `at`) and each of its values on its own.
    fn check_axis(&self, name: &str, values: &[toml::Value], at: &[Key]) -> Result<(), SpecError> {
        let known_table = ["data.", "model.", "train.", "eval."].iter().any(|t| name.starts_with(t));
        if !known_table || NOT_SWEPT.contains(&name) {
            let why = if NOT_SWEPT.contains(&name) {
                "it does not change what a trial computes (train.seeds is the seed axis)"
            } else {
                "expected a key of [data], [model], [train] or [eval], dotted (e.g. \"train.lr\"); [noise] has its own axes"
            };
            return Err(self.loc.at(at, format!("{name}: cannot be swept: {why}")));
        }
        if values.is_empty() {
            return Err(self.loc.at(at, format!("{name}: an empty list sweeps nothing")));
        }
        // The type of each value on its own; value checks need the whole combination (a milestone
        // can be valid only with the epochs it is zipped with) and run in `resolve`.
        for (i, v) in values.iter().enumerate() {
            let mut table = self.base.clone();
            sweep::set(&mut table, name, v.clone());
            let read: Result<RawExperiment, toml::de::Error> = toml::Value::Table(table).try_into();
            if let Err(e) = read {
                let m = e.message().trim().to_string();
                if m.contains("unknown field") {
                    return Err(self.loc.at(at, format!("{name}: unknown key ({m})")));
                }
                let mut here = at.to_vec();
                here.push(Key::Index(i));
                return Err(self.loc.at(&here, format!("{name}: {m}")));
            }
        }
        Ok(())
    }

    /// The `[sweep]` table's axes (tied by its `zip` groups), and where each is written.
    fn sweep_axes(&self, sweep: Option<&toml::Table>) -> Result<(Vec<sweep::Axis<toml::Value>>, Places), SpecError> {
        let Some(table) = sweep else { return Ok((Vec::new(), Places::new())) };
        let mut singles: Vec<sweep::Single<toml::Value>> = Vec::new();
        for (name, value, at) in sweep::dotted(table, &[Key::from("sweep")], &["zip"]) {
            let list_valued = LIST_VALUED.contains(&name.as_str());
            if !sweep::is_sweep(value, list_valued) {
                let shape = if list_valued { "a list of lists" } else { "a list of values" };
                return Err(self.loc.at(&at, format!("sweep.{name}: expected {shape} to sweep")));
            }
            if singles.iter().any(|s| s.name == name) {
                return Err(self.loc.at(&at, format!("sweep.{name}: swept twice (once quoted, once as a table?)")));
            }
            let values = value.as_array().cloned().unwrap_or_default();
            self.check_axis(&name, &values, &at)?;
            singles.push(sweep::Single { name, values, at });
        }
        let places = singles.iter().map(|s| (s.name.clone(), (s.at.clone(), s.values.clone()))).collect();
        let zip_at = [Key::from("sweep"), Key::from("zip")];
        let zip = sweep::zip_groups(table.get("zip"), &zip_at, "sweep").map_err(|(k, m)| self.loc.at(&k, m))?;
        Ok((sweep::tie(singles, &zip, &zip_at, "sweep").map_err(|(k, m)| self.loc.at(&k, m))?, places))
    }
}

/// `[select]` against the file: a metric of a protocol that runs on built-in (held-out) data,
/// tuned keys that are swept, fresh seeds, and two splits of at least two identities.
fn check_select(loc: &Locator, select: &SelectSpec, raw: &RawExperiment, swept: &[String]) -> Result<(), SpecError> {
    let at = |key: &str| vec![Key::from("select"), Key::from(key)];
    let Some((protocol, metric)) = select.protocol_metric().filter(|(p, m)| !p.is_empty() && !m.is_empty()) else {
        return Err(
            loc.at(&at("metric"), "select.metric: expected \"<protocol>/<metric>\", e.g. \"lfw/accuracy_mean\"")
        );
    };
    if !raw.eval.protocols.iter().any(|p| p == protocol) {
        return Err(loc.at(
            &at("metric"),
            format!("select.metric: protocol \"{protocol}\" is not in eval.protocols {:?}", raw.eval.protocols),
        ));
    }
    let real = match protocol {
        "lfw" => raw.eval.lfw.pairs.is_some() || raw.eval.lfw.bin.is_some(),
        "megaface" => raw.eval.megaface.probes.is_some(),
        _ => raw.eval.ijbc.meta.is_some(),
    };
    if real {
        return Err(loc.at(
            &at("metric"),
            format!("select.metric: {protocol} runs on real files here; selection needs its built-in form on the validation identities"),
        ));
    }
    if metric.contains(char::is_whitespace) {
        return Err(loc.at(&at("metric"), format!("select.metric: \"{metric}\" is not a metric name")));
    }
    if select.tune.is_empty() {
        return Err(loc.at(&at("tune"), "select.tune: name at least one swept key to tune (e.g. [\"train.lr\"])"));
    }
    for (i, name) in select.tune.iter().enumerate() {
        if !swept.contains(name) {
            return Err(loc.at(
                &[Key::from("select"), Key::from("tune"), Key::Index(i)],
                format!("select.tune: \"{name}\" is not swept anywhere (swept: {swept:?})"),
            ));
        }
    }
    if select.seeds.is_empty() {
        return Err(loc.at(&at("seeds"), "select.seeds: expected at least one seed for the final trials"));
    }
    if let Some(i) = select.seeds.iter().position(|s| raw.train.seeds.contains(s)) {
        return Err(loc.at(
            &[Key::from("select"), Key::from("seeds"), Key::Index(i)],
            format!(
                "select.seeds: {} is also a search seed (train.seeds); the final trials need fresh seeds",
                select.seeds[i]
            ),
        ));
    }
    let heldout = raw.data.heldout_identities;
    let v = select.validation_identities(heldout);
    if v < 2 || heldout < v + 2 {
        return Err(loc.at(
            &at("validation_identities"),
            format!(
                "select.validation_identities: {v} of {heldout} held-out identities; validation and test need at least 2 each"
            ),
        ));
    }
    Ok(())
}

/// `[select]`'s successive halving against the trials: η of at least 2, and a first rung below
/// every trial's `train.epochs` (else it would be the grid).
fn check_halving(loc: &Locator, select: &SelectSpec, trials: &[TrialConfig]) -> Result<(), SpecError> {
    if select.method != SearchMethod::Halving {
        return Ok(());
    }
    let at = |key: &str| vec![Key::from("select"), Key::from(key)];
    if select.eta < 2 {
        return Err(loc.at(&at("eta"), format!("select.eta: {} keeps every setting; expected 2 or more", select.eta)));
    }
    let shortest = trials.iter().map(|t| t.train.epochs).min().unwrap_or(0);
    if select.min_epochs == 0 || select.min_epochs >= shortest {
        return Err(loc.at(
            &at("min_epochs"),
            format!(
                "select.min_epochs: {} is not between 1 and the shortest trial's train.epochs {shortest} (exclusive); halving needs a rung before the last",
                select.min_epochs
            ),
        ));
    }
    Ok(())
}

/// One `[[loss]]` block's settings: each loss configuration with the block's training
/// overrides, and the names of the block's swept axes.
struct BlockSettings {
    settings: Vec<(LossConfig, Vec<(String, toml::Value)>)>,
    swept: Vec<String>,
    /// Where each training override is written, with its values.
    places: Places,
}

/// A value of one of a loss block's axes: a loss parameter or a training override.
#[derive(Debug, Clone)]
enum BlockValue {
    Param(ParamValue),
    Override(toml::Value),
}

/// One `[[loss]]` block → its settings: the grid product of its list values (loss parameters
/// and `train.*` overrides), except that the axes named together in a `zip` group vary together.
fn expand_loss_block(
    expander: &Expander,
    index: usize,
    block: &toml::Table,
    sweep_names: &[String],
) -> Result<BlockSettings, SpecError> {
    let loc = expander.loc;
    let block_at = [Key::from("loss"), Key::Index(index)];
    let here = |key: &str| vec![Key::from("loss"), Key::Index(index), Key::from(key)];
    let known: Vec<&str> = loss::registry().iter().map(|e| e.name).collect();
    let name = match block.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(loc.at(&here("name"), format!("loss.name: expected a loss name as a string, one of {known:?}")))
        }
        None => {
            return Err(
                loc.at(&block_at, format!("[[loss]] block {} has no name; expected one of {known:?}", index + 1))
            )
        }
    };
    let Some(entry) = loss::find(&name) else {
        return Err(loc.at(&here("name"), format!("unknown loss \"{name}\"; expected one of {known:?}")));
    };
    let mut singles: Vec<sweep::Single<BlockValue>> = Vec::new();
    let mut swept = Vec::new();
    let mut places = Places::new();
    for (key, value, at) in sweep::dotted(block, &block_at, &["name", "zip"]) {
        if let Some(spec) = entry.params.iter().find(|p| p.name == key) {
            let values = match value {
                toml::Value::Array(items) if items.is_empty() => {
                    return Err(loc.at(
                        &at,
                        format!(
                            "{name}.{key}: an empty list sweeps nothing; give {} or a non-empty list",
                            spec.kind.describe()
                        ),
                    ))
                }
                toml::Value::Array(items) => {
                    swept.push(key.clone());
                    let mut values = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let mut keys = at.clone();
                        keys.push(Key::Index(i));
                        values.push(convert(item, spec).map_err(|m| loc.at(&keys, format!("{name}.{key}: {m}")))?);
                    }
                    values
                }
                v => vec![convert(v, spec).map_err(|m| loc.at(&at, format!("{name}.{key}: {m}")))?],
            };
            singles.push(sweep::Single { name: key, values: values.into_iter().map(BlockValue::Param).collect(), at });
            continue;
        }
        if !key.contains('.') {
            let allowed: Vec<&str> = entry.params.iter().map(|p| p.name).collect();
            return Err(loc.at(
                &at,
                format!(
                    "unknown key \"{key}\" for loss {name}; its parameters are {allowed:?}, and a block may override {PER_LOSS:?}"
                ),
            ));
        }
        if !PER_LOSS.contains(&key.as_str()) {
            return Err(loc.at(
                &at,
                format!("{name}: \"{key}\" cannot differ between losses (every trial of a seed shares the data, the network and the batches); a block may override {PER_LOSS:?}"),
            ));
        }
        if sweep_names.contains(&key) {
            return Err(loc.at(&at, format!("{name}: \"{key}\" is swept in [sweep] already; sweep it in one place")));
        }
        let values = if sweep::is_sweep(value, LIST_VALUED.contains(&key.as_str())) {
            swept.push(key.clone());
            value.as_array().cloned().unwrap_or_default()
        } else {
            vec![value.clone()]
        };
        expander.check_axis(&key, &values, &at)?;
        places.insert(key.clone(), (at.clone(), values.clone()));
        singles.push(sweep::Single { name: key, values: values.into_iter().map(BlockValue::Override).collect(), at });
    }
    for spec in entry.params {
        if !singles.iter().any(|s| s.name == spec.name) {
            singles.push(sweep::Single {
                name: spec.name.to_string(),
                values: vec![BlockValue::Param(spec.default.value())],
                at: block_at.to_vec(),
            });
        }
    }
    let zip_at = here("zip");
    let zip = sweep::zip_groups(block.get("zip"), &zip_at, &name).map_err(|(k, m)| loc.at(&k, m))?;
    let axes = sweep::tie(singles, &zip, &zip_at, &name).map_err(|(k, m)| loc.at(&k, m))?;
    let mut settings = Vec::new();
    for combo in sweep::grid(&axes) {
        let mut params = BTreeMap::new();
        let mut overrides = Vec::new();
        for (k, v) in combo {
            match v {
                BlockValue::Param(p) => {
                    params.insert(k, p);
                }
                BlockValue::Override(o) => overrides.push((k, o)),
            }
        }
        let config = LossConfig { name: name.clone(), params };
        loss::validate(&config).map_err(|m| loc.at(&block_at, m))?;
        settings.push((config, overrides));
    }
    Ok(BlockSettings { settings, swept, places })
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
