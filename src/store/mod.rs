//! The results layout on disk (DESIGN.md "Results layout"), atomic writes (temporary name, then
//! rename, so a reader never sees half a file), parquet read/write through polars, the
//! per-trial status file, and the locks that let several processes (shards) share one results
//! directory.

pub mod run_info;
pub mod schema;
pub mod selection;

use anyhow::{Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `results/<experiment>/` and the paths inside it.
#[derive(Debug, Clone)]
pub struct ExperimentDir {
    pub root: PathBuf,
}

impl ExperimentDir {
    pub fn new(results_root: &Path, experiment: &str) -> ExperimentDir {
        ExperimentDir { root: results_root.join(experiment) }
    }
    pub fn spec(&self) -> PathBuf {
        self.root.join("experiment.toml")
    }
    pub fn trials_table(&self) -> PathBuf {
        self.root.join("trials.parquet")
    }
    pub fn trial(&self, id: &str) -> PathBuf {
        self.root.join("trials").join(id)
    }
    pub fn plots(&self) -> PathBuf {
        self.root.join("plots")
    }
    pub fn report(&self) -> PathBuf {
        self.root.join("report.md")
    }
    pub fn report_html(&self) -> PathBuf {
        self.root.join("report.html")
    }
    /// Every trial's result files of one kind in one file each (`results::cache`), rebuilt from
    /// the trial directories whenever they change; safe to delete.
    pub fn cache(&self) -> PathBuf {
        self.root.join(".cache")
    }
    /// The report's tables as LaTeX.
    pub fn tables_tex(&self) -> PathBuf {
        self.root.join("tables.tex")
    }
}

/// Files inside one trial's directory.
pub mod trial_files {
    pub const CONFIG: &str = "config.toml";
    pub const STATUS: &str = "status.json";
    pub const STEPS: &str = "steps.parquet";
    pub const EVALS: &str = "evals.parquet";
    pub const ANGLES: &str = "angles.parquet";
    /// The last evaluation's bootstrap replicates (see `schema::bootstrap_frame`).
    pub const BOOTSTRAP: &str = "bootstrap.parquet";
    pub const CHECKSUMS: &str = "checksums.json";
    pub const CHECKPOINT: &str = "checkpoint";
    /// The file inside `CHECKPOINT` that holds the tensors (and, by existing, marks a checkpoint).
    pub const CHECKPOINT_STATE: &str = "state.safetensors";
    /// The same in libtorch's format, as versions before safetensors checkpoints wrote it: still read.
    pub const LEGACY_CHECKPOINT_STATE: &str = "state.pt";

    /// The tensor file of the checkpoint in `dir`, if there is one (the legacy name if only it exists).
    pub fn checkpoint_state(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        [CHECKPOINT_STATE, LEGACY_CHECKPOINT_STATE].iter().map(|name| dir.join(name)).find(|p| p.exists())
    }
}

/// A writer's temporary name beside `path`, unique to its host and process: shards on several
/// machines share one results directory.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{}", hostname(), std::process::id()))
}

/// This machine's name, reduced to characters safe in a file name.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name: String = String::from_utf8_lossy(&buf[..end])
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    if ok && !name.is_empty() {
        name
    } else {
        "host".into()
    }
}

/// Gives every thread the process spawns from now on (polars' and rayon's pools included) a
/// 64 MiB stack, unless `RUST_MIN_STACK` is set: polars is built unoptimised (Cargo.toml), and
/// its parquet reader's recursion over nested columns (bootstrap.parquet's replicate lists)
/// overflowed the default 2 MiB of a pool thread at a thousand trials. Call it first in `main`,
/// before any thread exists (the standard library reads the variable once).
pub fn large_thread_stacks() {
    if std::env::var_os("RUST_MIN_STACK").is_none() {
        std::env::set_var("RUST_MIN_STACK", (64usize << 20).to_string());
    }
}

/// Writes `path` through a temporary file in the same directory: `write` fills the file at
/// the path it is given, the data is synced to the disk, then the file is renamed over `path`.
/// On any failure (a full disk) the temporary file is removed and `path` is untouched, so no
/// file is ever left half-written; the error names `path`.
pub fn write_via_temp(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    through_temp(path, true, write)
}

/// [`write_via_temp`], syncing the data before the rename only with `sync`.
fn through_temp(path: &Path, sync: bool, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = temp_path(path);
    let result = write(&tmp)
        .and_then(|()| if sync { Ok(std::fs::File::open(&tmp)?.sync_all()?) } else { Ok(()) })
        .and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Writes `bytes` to `path` atomically ([`write_via_temp`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temp(path, |tmp| Ok(std::fs::write(tmp, bytes)?))
}

/// Writes a data frame as parquet, atomically ([`write_via_temp`]), Snappy-compressed: a
/// results directory holds many small files, and polars' zstd reader sets up a decompression
/// context per column chunk, which cost a fifth of reading ten thousand trials.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<()> {
    write_via_temp(path, |tmp| {
        ParquetWriter::new(std::fs::File::create(tmp)?).with_compression(ParquetCompression::Snappy).finish(df)?;
        Ok(())
    })
}

/// Writes a data frame as parquet through a temporary name ([`write_via_temp`]) but without
/// syncing it, uncompressed and without column statistics: for files derived from others
/// (`results::cache`), whose reader checks them and falls back to the originals, where a sync of
/// tens of megabytes would cost more than rebuilding them after a crash.
pub fn write_derived_parquet(path: &Path, df: &mut DataFrame) -> Result<()> {
    let none = StatisticsOptions { min_value: false, max_value: false, distinct_count: false, null_count: false };
    through_temp(path, false, |tmp| {
        ParquetWriter::new(std::fs::File::create(tmp)?)
            .with_compression(ParquetCompression::Uncompressed)
            .with_statistics(none)
            .finish(df)?;
        Ok(())
    })
}

/// Whether `error` comes from a full disk (or quota): the run stops then, since every further
/// trial would fail the same way.
pub fn is_storage_full(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| matches!(e.raw_os_error(), Some(28 | 122)))
            || cause.to_string().contains("No space left on device")
    })
}

/// Reads a parquet file written by [`write_parquet`].
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    if path.components().any(|c| c.as_os_str() == "trials") {
        TRIAL_PARQUET_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // One thread per file: the readers of many files already run them side by side, and
    // polars' per-file parallelism only hands tiny files between threads.
    let reader = ParquetReader::new(file).read_parallel(ParallelStrategy::None);
    anyhow::Context::with_context(reader.finish(), || format!("reading parquet {}", path.display()))
}

static TRIAL_PARQUET_READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many parquet files inside trial directories (`trials/<id>/*.parquet`) this process has
/// read through [`read_parquet`]: bookkeeping that must not open them is tested by it.
pub fn trial_parquet_reads() -> usize {
    TRIAL_PARQUET_READS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A trial's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Pending,
    Running,
    Done,
    Failed,
    Diverged,
    /// Trained to a rung of successive halving, waiting for its group's decision there.
    Paused,
    /// Stopped at a rung of successive halving: not among the best 1/η of its group there.
    Pruned,
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Diverged => "diverged",
            State::Paused => "paused",
            State::Pruned => "pruned",
        }
    }
}

/// `status.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrialStatus {
    pub state: State,
    pub attempts: u32,
    /// Seconds spent training and evaluating, summed over attempts.
    pub seconds: f64,
    pub error: Option<String>,
    /// The step at which a non-finite value appeared, for diverged trials.
    pub diverged_step: Option<i64>,
    /// Where the trial's last attempt trained: `cpu`, `cuda:0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Training images left out as unreadable (`data.on_bad_image = "skip"`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_images: u64,
    /// The step of the checkpoint the last attempt resumed from (absent when it started afresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<i64>,
    /// For a finished trial: what its result files hold that bookkeeping needs, so that a run
    /// skipping it, trials.parquet and `[select]` never open them. Absent in directories written
    /// before it existed (their files are read instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<TrialResults>,
    /// Under successive halving: every rung the trial has reached, with its evaluation there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rungs: Vec<RungResult>,
}

/// A rung of successive halving a trial reached ([`TrialStatus::rungs`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RungResult {
    /// Epochs trained at the rung.
    pub epochs: usize,
    /// The evaluation at the rung, as [`TrialResults::finals`].
    pub values: BTreeMap<String, BTreeMap<String, Option<f64>>>,
}

impl RungResult {
    /// `protocol`/`metric` at the rung (NaN where it was not a number).
    pub fn value(&self, protocol: &str, metric: &str) -> Option<f64> {
        lookup(&self.values, protocol, metric)
    }
}

fn lookup(values: &BTreeMap<String, BTreeMap<String, Option<f64>>>, protocol: &str, metric: &str) -> Option<f64> {
    values.get(protocol)?.get(metric).map(|v| v.unwrap_or(f64::NAN))
}

/// A finished trial's results in brief ([`TrialStatus::results`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrialResults {
    /// The byte size of each result file as written: a done trial whose files differ (cut
    /// short, replaced) runs again.
    pub files: BTreeMap<String, u64>,
    /// The last evaluation's value of every metric by protocol and metric (headline rows: not a
    /// `part=` variant); `null` for a value that is not a number.
    pub finals: BTreeMap<String, BTreeMap<String, Option<f64>>>,
    /// Mean training-batch accuracy over the logged steps of the last epoch trained.
    pub train_accuracy: Option<f64>,
}

impl TrialResults {
    /// What a status records of a trial's rows, with the byte sizes of its result `files`: the
    /// last evaluated value of every metric (headline rows only: rows of one part of a protocol
    /// carry `part=` in their variant) and the last epoch's mean training-batch accuracy.
    pub fn of(files: BTreeMap<String, u64>, steps: &[schema::StepRow], evals: &[schema::EvalRow]) -> TrialResults {
        let mut last: BTreeMap<(&str, &str), (i64, f64)> = BTreeMap::new();
        for r in evals.iter().filter(|r| !r.variant.contains("part=")) {
            let entry = last.entry((&r.protocol, &r.metric)).or_insert((r.step, r.value));
            if r.step >= entry.0 {
                *entry = (r.step, r.value);
            }
        }
        let mut finals: BTreeMap<String, BTreeMap<String, Option<f64>>> = BTreeMap::new();
        for ((protocol, metric), (_, value)) in last {
            finals
                .entry(protocol.to_string())
                .or_default()
                .insert(metric.to_string(), value.is_finite().then_some(value));
        }
        let train_accuracy = steps.last().map(|last| {
            let accs: Vec<f64> = steps.iter().filter(|r| r.epoch == last.epoch).map(|r| r.train_acc).collect();
            accs.iter().sum::<f64>() / accs.len() as f64
        });
        TrialResults { files, finals, train_accuracy }
    }

    /// The same read from a trial's steps and evals parquet (without file sizes), for trial
    /// directories written before statuses recorded their results.
    pub fn read_files(trial_dir: &Path) -> Result<TrialResults> {
        let rows = |file: &str| {
            let path = trial_dir.join(file);
            read_parquet(&path).map(|df| (path, df))
        };
        let (path, steps) = rows(trial_files::STEPS)?;
        let steps =
            schema::steps_from_frame(&steps).with_context(|| format!("{}: not step telemetry", path.display()))?;
        let (path, evals) = rows(trial_files::EVALS)?;
        let evals = schema::evals_from_frame(&evals).with_context(|| format!("{}: not evaluations", path.display()))?;
        Ok(TrialResults::of(BTreeMap::new(), &steps, &evals))
    }

    /// The last evaluated value of `protocol`/`metric` (NaN where it was not a number); `None`
    /// when the trial has no such metric.
    pub fn final_value(&self, protocol: &str, metric: &str) -> Option<f64> {
        lookup(&self.finals, protocol, metric)
    }

    /// The first of a trial's result files in `trial_dir` whose size is not the recorded one,
    /// as a message naming it.
    pub fn changed_file(&self, trial_dir: &Path) -> Option<String> {
        self.files.iter().find_map(|(name, &size)| {
            let path = trial_dir.join(name);
            match std::fs::metadata(&path) {
                Ok(m) if m.len() == size => None,
                Ok(m) => Some(format!(
                    "{}: parquet file of {} bytes where status.json recorded {size}",
                    path.display(),
                    m.len()
                )),
                Err(e) => Some(format!("{}: {e}", path.display())),
            }
        })
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TrialStatus {
    /// The trial's results in brief: as its status records them, or, for a finished trial of a
    /// directory written before statuses did, read from its files; `None` for a trial that has
    /// none (pending, running, failed).
    pub fn results_in(&self, trial_dir: &Path) -> Result<Option<std::borrow::Cow<'_, TrialResults>>> {
        match (&self.results, self.state) {
            (Some(results), _) => Ok(Some(std::borrow::Cow::Borrowed(results))),
            (None, State::Done | State::Diverged) => {
                Ok(Some(std::borrow::Cow::Owned(TrialResults::read_files(trial_dir)?)))
            }
            (None, _) => Ok(None),
        }
    }

    /// status.json, or `None` when it is absent or unreadable.
    pub fn read(trial_dir: &Path) -> Option<TrialStatus> {
        Self::read_checked(trial_dir).ok().flatten()
    }

    /// status.json: `Ok(None)` when absent, `Err` naming the file when it cannot be read or parsed.
    pub fn read_checked(trial_dir: &Path) -> Result<Option<TrialStatus>, String> {
        let path = trial_dir.join(trial_files::STATUS);
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: cannot read it: {e}", path.display())),
            Ok(text) => text,
        };
        serde_json::from_str(&text).map(Some).map_err(|e| format!("{}: not a trial status: {e}", path.display()))
    }

    pub fn write(&self, trial_dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        write_atomic(&trial_dir.join(trial_files::STATUS), text.as_bytes())
    }
}

/// A lock held until dropped: an advisory `flock` on a file, which the kernel releases when the
/// holder exits, so a killed run never leaves anything locked. On a shared filesystem the locks
/// hold across machines where the filesystem supports `flock` (NFSv4, Lustre mounted with
/// `-o flock`, GPFS, BeeGFS); README "Running on a cluster".
pub struct DirLock {
    _file: std::fs::File,
}

/// How [`flock`] takes a lock.
#[derive(Clone, Copy)]
enum Mode {
    /// Exclusive; `None` at once when held.
    Exclusive,
    /// Shared with other shared holders; `None` at once when held exclusively.
    Shared,
    /// Exclusive, waiting for the holder.
    Wait,
}

/// Locks `path` (creating it and its directory); `None` when another holder has it.
fn flock(path: &Path, mode: Mode) -> Result<Option<DirLock>> {
    use std::os::unix::io::AsRawFd;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let op = match mode {
        Mode::Exclusive => libc::LOCK_EX | libc::LOCK_NB,
        Mode::Shared => libc::LOCK_SH | libc::LOCK_NB,
        Mode::Wait => libc::LOCK_EX,
    };
    loop {
        // SAFETY: flock on a descriptor we own; no memory is shared with the call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(Some(DirLock { _file: file }));
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(None),
            _ => return Err(error).with_context(|| format!("locking {}", path.display())),
        }
    }
}

fn in_use(dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is in use by another p2sbench run (lock {}); wait for it to finish or use another --out",
        dir.display(),
        dir.join(".lock").display()
    )
}

/// Takes the lock of the results directory `dir` (creating it) for a whole run, or fails if
/// another run holds it (alone, or as a shard).
pub fn lock(dir: &Path) -> Result<DirLock> {
    flock(&dir.join(".lock"), Mode::Exclusive)?.ok_or_else(|| in_use(dir))
}

/// The lock of a results directory as a shard (`run --shard`) takes it: shared with the other
/// shards, refused while an unsharded run holds [`lock`].
pub fn lock_shared(dir: &Path) -> Result<DirLock> {
    flock(&dir.join(".lock"), Mode::Shared)?.ok_or_else(|| in_use(dir))
}

/// The lock of one trial (`<trial dir>/.lock`), held while it trains; `None` when another
/// process (or worker) is training it.
pub fn try_lock_trial(trial_dir: &Path) -> Result<Option<DirLock>> {
    flock(&trial_dir.join(".lock"), Mode::Exclusive)
}

/// The lock of what is built from the trial directories (trials.parquet, selection.json, the
/// plots and the report): waits for the holder, so that the processes rebuilding them take
/// turns and the last one reads every trial that finished before it.
pub fn lock_tables(dir: &Path) -> Result<DirLock> {
    Ok(flock(&dir.join(".tables.lock"), Mode::Wait)?.expect("a waiting lock is always taken"))
}
