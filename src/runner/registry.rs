//! trials.parquet, the table of every trial with its status, kept current during a run at a
//! cost per trial that does not grow with the study. Each trial's status.json is the truth
//! (with its results in brief, [`TrialStatus::results`], so no trial's parquet is opened here);
//! the table is built from them in full when a run opens it, when `[select]` may have new final
//! trials, and at the end; in between, a finished trial updates its row in memory and the table
//! is written at a bounded rate, merged under the tables lock with the rows other processes
//! (shards) wrote, so that no writer drops another's rows.

use super::Checksums;
use crate::loss::ParamValue;
use crate::spec::{Experiment, TrialConfig};
use crate::store::{self, ExperimentDir, State, TrialStatus};
use anyhow::Result;
use polars::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the trial directories say now: the trials trials.parquet lists (every trial of the
/// file and, under `[select]`, the final trials of every group whose search is complete), with
/// the choices and the pending groups of `[select]`.
pub struct Known {
    pub trials: Vec<TrialConfig>,
    pub choices: Vec<crate::select::Choice>,
    pub pending: Vec<crate::select::Pending>,
}

/// The shortest time between two writes of trials.parquet during a run.
const FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// A write of the table waits at least this many times its last write's duration, so that
/// writing the table takes at most about 1/FLUSH_COST_FACTOR of a run's time at any size.
const FLUSH_COST_FACTOR: u32 = 200;

/// The bookkeeping of one run: trials.parquet's rows in memory, written when due.
pub struct Registry {
    dir: ExperimentDir,
    table: Mutex<Table>,
}

struct Table {
    trials: Vec<TrialConfig>,
    index: HashMap<String, usize>,
    rows: Vec<Row>,
    dirty: bool,
    written: Instant,
    write_cost: Duration,
}

impl Registry {
    /// The registry of `exp`'s results directory, with the table rebuilt from every trial
    /// directory ([`Registry::reload`]).
    pub fn open(exp: &Experiment, dir: &ExperimentDir) -> Result<(Registry, Known)> {
        let table = Table {
            trials: Vec::new(),
            index: HashMap::new(),
            rows: Vec::new(),
            dirty: false,
            written: Instant::now(),
            write_cost: Duration::ZERO,
        };
        let registry = Registry { dir: dir.clone(), table: Mutex::new(table) };
        let known = registry.reload(exp)?;
        Ok((registry, known))
    }

    /// Rebuilds trials.parquet (and under `[select]` selection.json) from the trial directories'
    /// status files, under the tables lock, and returns what they say.
    pub fn reload(&self, exp: &Experiment) -> Result<Known> {
        let mut table = self.table.lock().expect("no poisoned lock");
        let started = Instant::now();
        let _tables = store::lock_tables(&self.dir.root)?;
        let (choices, pending) = crate::select::choose(exp, &self.dir)?;
        let mut trials = exp.trials.clone();
        if let Some(select) = &exp.select {
            trials.extend(crate::select::final_trials(select, &choices));
            crate::select::record(exp, select, &choices).write(&self.dir.root)?;
        }
        let ids: Vec<String> = trials.iter().map(TrialConfig::id).collect();
        let rows: Vec<Row> = ids.iter().map(|id| Row::read(&self.dir.trial(id))).collect();
        write_table(&self.dir, &trials, &rows)?;
        *table = Table {
            index: ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect(),
            trials: trials.clone(),
            rows,
            dirty: false,
            written: Instant::now(),
            write_cost: started.elapsed(),
        };
        Ok(Known { trials, choices, pending })
    }

    /// After trial `id`'s status.json changed: its row read again, and the table written when
    /// due (see [`FLUSH_INTERVAL`], [`FLUSH_COST_FACTOR`]).
    pub fn record(&self, id: &str) -> Result<()> {
        let mut table = self.table.lock().expect("no poisoned lock");
        if let Some(&i) = table.index.get(id) {
            table.rows[i] = Row::read(&self.dir.trial(id));
            table.dirty = true;
        }
        let due = FLUSH_INTERVAL.max(table.write_cost * FLUSH_COST_FACTOR);
        if table.dirty && table.written.elapsed() >= due {
            self.write(&mut table)?;
        }
        Ok(())
    }

    /// Writes the table now if a row changed since it was last written.
    pub fn flush(&self) -> Result<()> {
        let mut table = self.table.lock().expect("no poisoned lock");
        if table.dirty {
            self.write(&mut table)?;
        }
        Ok(())
    }

    /// Writes trials.parquet under the tables lock, each row the more recent of this process's
    /// and the table's on disk (which other processes may have written since).
    fn write(&self, table: &mut Table) -> Result<()> {
        let started = Instant::now();
        let _tables = store::lock_tables(&self.dir.root)?;
        for (id, theirs) in rows_on_disk(&self.dir) {
            if let Some(&i) = table.index.get(&id) {
                if theirs.progress() > table.rows[i].progress() {
                    table.rows[i] = theirs;
                }
            }
        }
        write_table(&self.dir, &table.trials, &table.rows)?;
        table.dirty = false;
        table.written = Instant::now();
        table.write_cost = started.elapsed();
        Ok(())
    }
}

/// The columns of trials.parquet that the trial directories hold (status, checksums, final
/// metrics), last in the table, in this order.
const STATUS_COLUMNS: [&str; 11] = [
    "status",
    "attempts",
    "diverged_step",
    "error",
    "device",
    "skipped_images",
    "init_checksum",
    "data_order_checksum",
    "lfw_accuracy_mean",
    "lfw_accuracy_std",
    "seconds",
];

/// One trial's [`STATUS_COLUMNS`].
#[derive(Debug, Clone, Default, PartialEq)]
struct Row {
    state: State,
    attempts: i64,
    diverged_step: Option<i64>,
    error: Option<String>,
    device: Option<String>,
    skipped_images: u64,
    init_checksum: Option<String>,
    data_order_checksum: Option<String>,
    lfw_accuracy_mean: Option<f64>,
    lfw_accuracy_std: Option<f64>,
    seconds: Option<f64>,
}

impl Row {
    /// The row of the trial in `trial_dir` (pending when it has no status).
    fn read(trial_dir: &Path) -> Row {
        let Some(status) = TrialStatus::read(trial_dir) else { return Row::default() };
        let checksums = Checksums::read(trial_dir);
        let results = status.results_in(trial_dir).ok().flatten();
        let lfw = |metric: &str| results.as_ref().and_then(|r| r.final_value("lfw", metric));
        let (mean, std) = (lfw("accuracy_mean"), lfw("accuracy_std"));
        Row {
            state: status.state,
            attempts: status.attempts as i64,
            diverged_step: status.diverged_step,
            error: status.error,
            device: status.device,
            skipped_images: status.skipped_images,
            init_checksum: checksums.as_ref().map(|c| c.init.clone()),
            data_order_checksum: checksums.map(|c| c.data_order),
            lfw_accuracy_mean: mean,
            lfw_accuracy_std: std,
            seconds: Some(status.seconds),
        }
    }

    /// How far along the trial is: a trial's statuses only ever grow in this order (an attempt
    /// starts running, then finishes; the next attempt counts one more).
    fn progress(&self) -> (i64, u8, f64) {
        let stage = match self.state {
            State::Pending => 0,
            State::Running => 1,
            State::Paused => 2,
            State::Done | State::Failed | State::Diverged | State::Pruned => 3,
        };
        (self.attempts, stage, self.seconds.unwrap_or(0.0))
    }
}

/// trials.parquet with the trials' statuses read from their directories: one row per trial,
/// with every hyper-parameter and swept key as a column.
pub fn write_trials_table(dir: &ExperimentDir, trials: &[TrialConfig]) -> Result<()> {
    let rows: Vec<Row> = trials.iter().map(|t| Row::read(&dir.trial(&t.id()))).collect();
    write_table(dir, trials, &rows)
}

fn write_table(dir: &ExperimentDir, trials: &[TrialConfig], rows: &[Row]) -> Result<()> {
    let ids: Vec<String> = trials.iter().map(TrialConfig::id).collect();
    let mut columns = vec![
        Column::new("trial".into(), ids),
        Column::new("loss".into(), trials.iter().map(|t| t.loss.name.as_str()).collect::<Vec<_>>()),
        Column::new("params".into(), trials.iter().map(|t| t.loss.params_text()).collect::<Vec<_>>()),
    ];
    columns.push(Column::new("axes".into(), trials.iter().map(|t| t.axes_text()).collect::<Vec<_>>()));
    columns.push(Column::new("setting".into(), trials.iter().map(|t| t.setting()).collect::<Vec<_>>()));
    let names: BTreeSet<&String> = trials.iter().flat_map(|t| t.loss.params.keys()).collect();
    for name in names {
        let values: Vec<Option<&ParamValue>> = trials.iter().map(|t| t.loss.params.get(name)).collect();
        let column = if values.iter().flatten().all(|v| v.as_f64().is_some()) {
            Column::new(name.as_str().into(), values.iter().map(|v| v.and_then(ParamValue::as_f64)).collect::<Vec<_>>())
        } else {
            Column::new(name.as_str().into(), values.iter().map(|v| v.map(ParamValue::short)).collect::<Vec<_>>())
        };
        columns.push(column);
    }
    let axes: BTreeSet<&String> = trials.iter().flat_map(|t| t.axes.keys()).collect();
    for name in axes {
        let values: Vec<Option<&toml::Value>> = trials.iter().map(|t| t.axes.get(name)).collect();
        let number = |v: &toml::Value| v.as_float().or(v.as_integer().map(|i| i as f64));
        let column = if values.iter().flatten().all(|v| number(v).is_some()) {
            Column::new(name.as_str().into(), values.iter().map(|v| v.and_then(number)).collect::<Vec<_>>())
        } else {
            Column::new(
                name.as_str().into(),
                values.iter().map(|v| v.map(crate::spec::short_value)).collect::<Vec<_>>(),
            )
        };
        columns.push(column);
    }
    columns.extend([
        Column::new("split".into(), trials.iter().map(|t| t.split.map_or("", |s| s.part.as_str())).collect::<Vec<_>>()),
        Column::new(
            "validation_identities".into(),
            trials.iter().map(|t| t.split.map(|s| s.validation_identities as i64)).collect::<Vec<_>>(),
        ),
        Column::new("seed".into(), trials.iter().map(|t| t.seed as i64).collect::<Vec<_>>()),
        Column::new("noise".into(), trials.iter().map(|t| t.noise.label()).collect::<Vec<_>>()),
        Column::new(
            "noise_kind".into(),
            trials.iter().map(|t| format!("{:?}", t.noise.kind).to_lowercase()).collect::<Vec<_>>(),
        ),
        Column::new("noise_ratio".into(), trials.iter().map(|t| t.noise.ratio).collect::<Vec<_>>()),
    ]);
    columns.extend(status_columns(rows));
    let mut df = DataFrame::new(columns)?;
    store::write_parquet(&dir.trials_table(), &mut df)
}

fn status_columns(rows: &[Row]) -> Vec<Column> {
    let column = |i: usize| PlSmallStr::from(STATUS_COLUMNS[i]);
    vec![
        Column::new(column(0), rows.iter().map(|r| r.state.as_str()).collect::<Vec<_>>()),
        Column::new(column(1), rows.iter().map(|r| r.attempts).collect::<Vec<_>>()),
        Column::new(column(2), rows.iter().map(|r| r.diverged_step).collect::<Vec<_>>()),
        Column::new(column(3), rows.iter().map(|r| r.error.clone()).collect::<Vec<_>>()),
        Column::new(column(4), rows.iter().map(|r| r.device.clone()).collect::<Vec<_>>()),
        Column::new(column(5), rows.iter().map(|r| r.skipped_images).collect::<Vec<_>>()),
        Column::new(column(6), rows.iter().map(|r| r.init_checksum.clone()).collect::<Vec<_>>()),
        Column::new(column(7), rows.iter().map(|r| r.data_order_checksum.clone()).collect::<Vec<_>>()),
        Column::new(column(8), rows.iter().map(|r| r.lfw_accuracy_mean).collect::<Vec<_>>()),
        Column::new(column(9), rows.iter().map(|r| r.lfw_accuracy_std).collect::<Vec<_>>()),
        Column::new(column(10), rows.iter().map(|r| r.seconds).collect::<Vec<_>>()),
    ]
}

/// The rows of trials.parquet as it is on disk, by trial id; none when it is absent or does not
/// read as a table of this version.
fn rows_on_disk(dir: &ExperimentDir) -> Vec<(String, Row)> {
    let Ok(df) = store::read_parquet(&dir.trials_table()) else { return Vec::new() };
    parse_rows(&df).unwrap_or_default()
}

fn parse_rows(df: &DataFrame) -> PolarsResult<Vec<(String, Row)>> {
    let text = |name: &str| -> PolarsResult<Vec<Option<String>>> {
        Ok(df.column(name)?.str()?.into_iter().map(|v| v.map(str::to_string)).collect())
    };
    let int = |name: &str| -> PolarsResult<Vec<Option<i64>>> {
        Ok(df.column(name)?.cast(&DataType::Int64)?.i64()?.into_iter().collect())
    };
    let float = |name: &str| -> PolarsResult<Vec<Option<f64>>> { Ok(df.column(name)?.f64()?.into_iter().collect()) };
    let ids = text("trial")?;
    let states = text(STATUS_COLUMNS[0])?;
    let attempts = int(STATUS_COLUMNS[1])?;
    let diverged = int(STATUS_COLUMNS[2])?;
    let errors = text(STATUS_COLUMNS[3])?;
    let devices = text(STATUS_COLUMNS[4])?;
    let skipped = int(STATUS_COLUMNS[5])?;
    let init = text(STATUS_COLUMNS[6])?;
    let order = text(STATUS_COLUMNS[7])?;
    let mean = float(STATUS_COLUMNS[8])?;
    let std = float(STATUS_COLUMNS[9])?;
    let seconds = float(STATUS_COLUMNS[10])?;
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        let Some(state) = states[i].as_deref().and_then(parse_state) else { continue };
        out.push((
            id.unwrap_or_default(),
            Row {
                state,
                attempts: attempts[i].unwrap_or(0),
                diverged_step: diverged[i],
                error: errors[i].clone(),
                device: devices[i].clone(),
                skipped_images: skipped[i].unwrap_or(0) as u64,
                init_checksum: init[i].clone(),
                data_order_checksum: order[i].clone(),
                lfw_accuracy_mean: mean[i],
                lfw_accuracy_std: std[i],
                seconds: seconds[i],
            },
        ));
    }
    Ok(out)
}

fn parse_state(text: &str) -> Option<State> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

/// Before `plot` and `report`: the status columns of trials.parquet read again from the trial
/// directories, under the tables lock, so that the table shows what every shard (and a shard
/// stopped before it could write the table) left there. The rows stay as they are. Returns the
/// tables lock, to be held while rendering; `None` without a trials.parquet.
pub fn refresh_statuses(root: &Path) -> Result<Option<store::DirLock>> {
    let dir = ExperimentDir { root: root.to_path_buf() };
    if !dir.trials_table().is_file() {
        return Ok(None);
    }
    let lock = store::lock_tables(root)?;
    // A table that does not read is left to the report's loader, which names what is wrong.
    let Ok(table) = store::read_parquet(&dir.trials_table()) else { return Ok(Some(lock)) };
    let Ok(ids) = table.column("trial").and_then(|c| c.str().cloned()) else { return Ok(Some(lock)) };
    let rows: Vec<Row> = ids.into_iter().map(|id| Row::read(&dir.trial(id.unwrap_or_default()))).collect();
    let kept: Vec<Column> =
        table.get_columns().iter().filter(|c| !STATUS_COLUMNS.contains(&c.name().as_str())).cloned().collect();
    let mut df = DataFrame::new(kept.into_iter().chain(status_columns(&rows)).collect())?;
    store::write_parquet(&dir.trials_table(), &mut df)?;
    Ok(Some(lock))
}
