//! Reading an experiment's results back from disk for `plot` and `report`: trials.parquet and
//! every trial's steps.parquet, evals.parquet and (when the run wrote them) angles.parquet,
//! concatenated across trials with the columns that exist (a column only some trials have, such as
//! the clean/noisy telemetry of a noise study, is null elsewhere). Nothing is retrained and
//! nothing is assumed about optional files: what is absent is `None`, what is present but
//! unreadable or missing a required column is an [`InputError`] naming the file.

use crate::error::InputError;
use crate::loss::{LossConfig, ParamKind, ParamValue};
use crate::store::selection::Selection;
use crate::store::{self, trial_files, ExperimentDir};
use anyhow::Result;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A trial's θ_y histograms (issue 5's telemetry; absent in older runs).
pub const ANGLES: &str = "angles.parquet";

/// Trial states whose steps.parquet and evals.parquet must exist (the runner writes both for them).
const FINISHED: &[&str] = &["done", "diverged"];

/// Columns trials.parquet must have.
const TRIAL_COLUMNS: &[&str] = &["trial", "loss", "seed", "status", "noise_kind", "noise_ratio"];
/// Columns evals.parquet must have.
const EVAL_COLUMNS: &[&str] = &["step", "protocol", "variant", "metric", "value"];
/// Columns angles.parquet must have.
const ANGLE_COLUMNS: &[&str] = &["step", "bin_lo_deg", "bin_hi_deg", "count"];

/// An experiment's results as data frames.
#[derive(Debug, Clone)]
pub struct Results {
    pub dir: ExperimentDir,
    /// The experiment's name (from experiment.toml, else the directory name).
    pub name: String,
    /// experiment.toml as written by `run`, when present.
    pub spec: Option<toml::Value>,
    /// trials.parquet plus the derived column `setting` (loss and hyper-parameters, the key that
    /// seeds are averaged over).
    pub trials: DataFrame,
    /// Each setting's loss configuration, typed from trials.parquet's parameter columns (settings
    /// of losses this build does not know are absent).
    pub settings: BTreeMap<String, LossConfig>,
    /// Each setting's swept keys and training overrides (`train.lr=3`), where it has any.
    pub axes: BTreeMap<String, String>,
    /// Under `[select]`: the search trials (evaluated on validation), kept apart from `trials`
    /// so that no table or figure of test results mixes them in.
    pub search: Option<DataFrame>,
    /// Under `[select]`: what was chosen (`selection.json`).
    pub selection: Option<Selection>,
    /// Every trial's steps.parquet rows.
    pub steps: Option<DataFrame>,
    /// Every trial's evals.parquet rows.
    pub evals: Option<DataFrame>,
    /// Every trial's angles.parquet rows, with a `trial` column.
    pub angles: Option<DataFrame>,
}

fn missing(path: &Path, what: &str) -> anyhow::Error {
    InputError::file(path, format!("missing: {what}")).into()
}

fn malformed(path: &Path, e: anyhow::Error) -> anyhow::Error {
    InputError::file(path, format!("not a readable parquet file ({e:#})")).into()
}

fn read(path: &Path, required: &[&str]) -> Result<DataFrame> {
    let df = store::read_parquet(path).map_err(|e| malformed(path, e))?;
    let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
    let absent: Vec<&str> = required.iter().copied().filter(|c| !names.contains(c)).collect();
    if !absent.is_empty() {
        return Err(InputError::file(
            path,
            format!("missing column(s) {} (has: {})", absent.join(", "), names.join(", ")),
        )
        .into());
    }
    Ok(df)
}

/// The strings of column `name` (nulls as "").
pub fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let c = df.column(name)?.cast(&DataType::String)?;
    let ca = c.str()?;
    Ok((0..ca.len()).map(|i| ca.get(i).unwrap_or("").to_string()).collect())
}

/// The values of column `name` as f64 (nulls and non-numbers as `None`).
pub fn floats(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let c = df.column(name)?.cast(&DataType::Float64)?;
    let ca = c.f64()?;
    Ok((0..ca.len()).map(|i| ca.get(i)).collect())
}

/// Whether `df` has a column `name`.
pub fn has_column(df: &DataFrame, name: &str) -> bool {
    df.get_column_names().iter().any(|c| c.as_str() == name)
}

/// `clean`, or `flip 20%`: a noise setting for tables and legends.
pub fn noise_label(kind: &str, ratio: f64) -> String {
    if ratio == 0.0 || kind == "none" {
        "clean".into()
    } else {
        format!("{kind} {}%", (ratio * 1000.0).round() / 10.0)
    }
}

/// Concatenates frames whose columns may differ: the union of columns (first-seen order and
/// type), nulls where a frame lacks one.
pub fn concat_diagonal(frames: Vec<DataFrame>) -> Result<Option<DataFrame>> {
    let mut schema: Vec<(PlSmallStr, DataType)> = Vec::new();
    for df in &frames {
        for c in df.get_columns() {
            if !schema.iter().any(|(n, _)| n == c.name()) {
                schema.push((c.name().clone(), c.dtype().clone()));
            }
        }
    }
    let mut out: Option<DataFrame> = None;
    for df in frames {
        let n = df.height();
        let mut cols = Vec::with_capacity(schema.len());
        for (name, dtype) in &schema {
            cols.push(match df.column(name) {
                Ok(c) => c.cast(dtype)?,
                Err(_) => Column::full_null(name.clone(), n, dtype),
            });
        }
        let aligned = DataFrame::new(cols)?;
        match out.as_mut() {
            None => out = Some(aligned),
            Some(acc) => {
                acc.vstack_mut(&aligned)?;
            }
        }
    }
    // One chunk, not one per trial: polars' kernels recurse over chunks, and a thousand of them
    // overflowed a worker thread's stack.
    if let Some(df) = out.as_mut() {
        df.as_single_chunk_par();
    }
    Ok(out)
}

impl Results {
    /// Loads `dir` (a `results/<experiment>/` directory).
    pub fn load(dir: &Path) -> Result<Results> {
        Results::load_parts(dir, true)
    }

    /// [`Results::load`] without the step telemetry and angle histograms (`steps` and `angles`
    /// stay `None`): what the report reads.
    pub fn load_evaluations(dir: &Path) -> Result<Results> {
        Results::load_parts(dir, false)
    }

    /// Loads `dir`; the per-trial files are read in parallel, the telemetry only with `telemetry`.
    fn load_parts(dir: &Path, telemetry: bool) -> Result<Results> {
        let dir = ExperimentDir { root: dir.to_path_buf() };
        if !dir.root.is_dir() {
            return Err(missing(&dir.root, "no such results directory (run `p2sbench run <experiment.toml>` first)"));
        }
        let spec_path = dir.spec();
        let spec = if spec_path.exists() {
            let text = std::fs::read_to_string(&spec_path)
                .map_err(|e| InputError::file(&spec_path, format!("cannot read: {e}")))?;
            Some(
                toml::from_str::<toml::Value>(&text)
                    .map_err(|e| InputError::file(&spec_path, format!("not valid TOML: {e}")))?,
            )
        } else {
            None
        };
        let name = spec
            .as_ref()
            .and_then(|s| s.get("name")?.as_str().map(str::to_string))
            .or_else(|| dir.root.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();

        let table = dir.trials_table();
        if !table.exists() {
            return Err(missing(&table, "no trials table (is this a results/<experiment> directory?)"));
        }
        let all = with_setting(read(&table, TRIAL_COLUMNS)?)?;
        let settings = typed_settings(&all)?;
        let axes = if has_column(&all, "axes") {
            strings(&all, "setting")?.into_iter().zip(strings(&all, "axes")?).filter(|(_, a)| !a.is_empty()).collect()
        } else {
            BTreeMap::new()
        };
        let (trials, search) = if has_column(&all, "split") {
            let search = all.clone().lazy().filter(col("split").eq(lit("validation"))).collect()?;
            let tested = all.clone().lazy().filter(col("split").neq(lit("validation"))).collect()?;
            (tested, (search.height() > 0).then_some(search))
        } else {
            (all.clone(), None)
        };
        let selection = Selection::read(&dir.root)?;
        let ids = strings(&all, "trial")?;
        let states = strings(&all, "status")?;

        // Each trial's file of a kind, when present; required of a finished trial for `required`.
        let state: BTreeMap<&str, &str> =
            ids.iter().map(String::as_str).zip(states.iter().map(String::as_str)).collect();
        let frames = |file: &str, columns: &[&str], required: bool| -> Result<Option<DataFrame>> {
            super::cache::trial_frames(&dir.root, file, &ids, |id| {
                let path = dir.trial(id).join(file);
                if path.exists() {
                    Ok(Some(with_trial(read(&path, columns)?, id)?))
                } else if required && FINISHED.contains(&state[id]) {
                    Err(missing(&path, &format!("trial {id} is marked {} in trials.parquet", state[id])))
                } else {
                    Ok(None)
                }
            })
        };
        let steps = if telemetry { frames(trial_files::STEPS, &["step"], true)? } else { None };
        let evals = frames(trial_files::EVALS, EVAL_COLUMNS, true)?;
        let angles = if telemetry { frames(ANGLES, ANGLE_COLUMNS, false)? } else { None };
        Ok(Results {
            dir,
            name,
            spec,
            trials,
            settings,
            axes,
            search,
            selection,
            steps,
            evals: evals.map(with_uncertainty_columns).transpose()?,
            angles,
        })
    }

    /// A setting for figure labels and tables: the loss, its numeric parameters, and the others
    /// only where they differ from the loss's default (as trial ids do).
    pub fn setting_label(&self, setting: &str) -> String {
        let Some(loss) = self.settings.get(setting) else { return setting.to_string() };
        let axes = self.axes.get(setting).cloned().unwrap_or_default();
        let rest: Vec<String> = [loss.short_params(), axes].into_iter().filter(|p| !p.is_empty()).collect();
        if rest.is_empty() {
            loss.name.clone()
        } else {
            format!("{} {}", loss.name, rest.join(", "))
        }
    }

    /// Every trial of trials.parquet: the tested ones, then the search trials under `[select]`.
    pub fn all_trials(&self) -> Result<DataFrame> {
        Ok(match &self.search {
            Some(search) => concat_diagonal(vec![self.trials.clone(), search.clone()])?.expect("two frames"),
            None => self.trials.clone(),
        })
    }

    /// Path of a file inside the results directory, for messages.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.root.join(rel)
    }

    /// A value from experiment.toml, by dotted path (`data.identities`).
    pub fn spec_value(&self, dotted: &str) -> Option<&toml::Value> {
        let mut v = self.spec.as_ref()?;
        for key in dotted.split('.') {
            v = v.get(key)?;
        }
        Some(v)
    }

    /// The number of training classes (`data.identities`), when the spec says.
    pub fn classes(&self) -> Option<usize> {
        self.spec_value("data.identities")?.as_integer().map(|v| v as usize)
    }

    /// The distinct noise settings `(kind, ratio)` of the trials, clean first, then by kind and ratio.
    pub fn noise_settings(&self) -> Result<Vec<(String, f64)>> {
        let kinds = strings(&self.trials, "noise_kind")?;
        let ratios = floats(&self.trials, "noise_ratio")?;
        let mut out: Vec<(String, f64)> = kinds.into_iter().zip(ratios).map(|(k, r)| (k, r.unwrap_or(0.0))).collect();
        out.sort_by(|a, b| (a.0 != "none").cmp(&(b.0 != "none")).then(a.0.cmp(&b.0)).then(a.1.total_cmp(&b.1)));
        out.dedup();
        Ok(out)
    }

    /// Whether the trials span more than one noise setting.
    pub fn has_noise_study(&self) -> Result<bool> {
        Ok(self.noise_settings()?.len() > 1)
    }
}

/// Runs `f` (parallel reads of per-trial parquet files) on a pool whose threads have 64 MiB
/// stacks: polars' parquet reader is built unoptimised (Cargo.toml) and its metadata decoding
/// overflowed rayon's default 2 MiB worker stack.
pub fn reading<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| rayon::ThreadPoolBuilder::new().stack_size(64 << 20).build().ok());
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Adds the uncertainty columns of evals.parquet (null) where every file predates them.
fn with_uncertainty_columns(mut df: DataFrame) -> Result<DataFrame> {
    let n = df.height();
    for (name, dtype) in [
        ("ci_lo", DataType::Float64),
        ("ci_hi", DataType::Float64),
        ("ci_unit", DataType::String),
        ("comparisons", DataType::Int64),
        ("resolvable", DataType::Boolean),
    ] {
        if !has_column(&df, name) {
            df.with_column(Column::full_null(name.into(), n, &dtype))?;
        }
    }
    Ok(df)
}

/// Adds the `trial` column when a per-trial file lacks it.
fn with_trial(mut df: DataFrame, id: &str) -> Result<DataFrame> {
    if !has_column(&df, "trial") {
        let n = df.height();
        df.with_column(Column::new("trial".into(), vec![id; n]))?;
    }
    Ok(df)
}

/// Adds `setting` (the unit seeds are averaged over) where the runner did not write it (results
/// from before sweeps: the loss and its parameters), and `params` where absent.
fn with_setting(mut trials: DataFrame) -> Result<DataFrame> {
    let losses = strings(&trials, "loss")?;
    if !has_column(&trials, "params") {
        trials.with_column(Column::new("params".into(), vec![String::new(); losses.len()]))?;
    }
    if !has_column(&trials, "setting") {
        let params = strings(&trials, "params")?;
        let setting: Vec<String> = losses
            .iter()
            .zip(&params)
            .map(|(l, p)| if p.is_empty() { l.clone() } else { format!("{l} {p}") })
            .collect();
        trials.with_column(Column::new("setting".into(), setting))?;
    }
    Ok(trials)
}

/// Each setting's [`LossConfig`] from the typed parameter columns (one column per parameter
/// name: numbers as floats, choices and switches as text); a parameter without a column, or
/// null in it, takes its default.
fn typed_settings(trials: &DataFrame) -> Result<BTreeMap<String, LossConfig>> {
    let (losses, settings) = (strings(trials, "loss")?, strings(trials, "setting")?);
    let mut out = BTreeMap::new();
    for (row, (loss, setting)) in losses.iter().zip(&settings).enumerate() {
        let Some(entry) = crate::loss::find(loss) else { continue };
        if out.contains_key(setting) {
            continue;
        }
        let mut params = BTreeMap::new();
        for p in entry.params {
            let value = if !has_column(trials, p.name) {
                None
            } else {
                match p.kind {
                    ParamKind::Float => floats(trials, p.name)?[row].map(ParamValue::Float),
                    ParamKind::Int => floats(trials, p.name)?[row].map(|v| ParamValue::Int(v as i64)),
                    ParamKind::Bool => text_at(trials, p.name, row)?.and_then(|t| t.parse().ok()).map(ParamValue::Bool),
                    ParamKind::Choice(options) => {
                        text_at(trials, p.name, row)?.filter(|t| options.contains(&t.as_str())).map(ParamValue::Str)
                    }
                }
            };
            params.insert(p.name.to_string(), value.unwrap_or_else(|| p.default.value()));
        }
        out.insert(setting.clone(), LossConfig { name: loss.clone(), params });
    }
    Ok(out)
}

/// Row `row` of text column `name`; `None` where null.
fn text_at(df: &DataFrame, name: &str, row: usize) -> Result<Option<String>> {
    let c = df.column(name)?.cast(&DataType::String)?;
    Ok(c.str()?.get(row).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_labels() {
        assert_eq!(noise_label("flip", 0.2), "flip 20%");
        assert_eq!(noise_label("none", 0.0), "clean");
    }

    #[test]
    fn diagonal_concat_fills_missing_columns_with_nulls() {
        let a = df!("x" => [1.0, 2.0]).unwrap();
        let b = df!("x" => [3.0], "y" => ["b"]).unwrap();
        let c = concat_diagonal(vec![a, b]).unwrap().unwrap();
        assert_eq!(c.height(), 3);
        assert_eq!(strings(&c, "y").unwrap(), ["", "", "b"]);
        assert_eq!(floats(&c, "x").unwrap(), [Some(1.0), Some(2.0), Some(3.0)]);
    }
}
