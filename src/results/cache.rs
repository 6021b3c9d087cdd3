//! Every trial's file of one kind (steps, evals, angles or bootstrap parquet) concatenated into
//! one file under `.cache/`, so that loading a study of ten thousand trials reads a few files
//! rather than tens of thousands. Each trial's rows are keyed by its own file's size and
//! modification time: a trial whose file changed, or that is new, is read from its own file,
//! and the cache is written again. The trial files stay the record; `.cache/` can be deleted at
//! any time, and a cache that does not read is ignored.

use super::load::concat_diagonal;
use crate::store;
use anyhow::Result;
use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The cache's format: 1 stores bootstrap replicates as f32 bytes (`results::compare`).
const VERSION: u32 = 1;

/// What the cache of one file kind holds: each trial's key and rows, in the cache's order.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    /// [`VERSION`] when written; a cache of another version is ignored.
    #[serde(default)]
    version: u32,
    /// The cache parquet's byte size: a cache file and manifest from different writes disagree.
    bytes: u64,
    trials: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    trial: String,
    key: FileKey,
    rows: usize,
}

/// A trial file's size and modification time (nanoseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FileKey(u64, u64);

fn file_key(path: &Path) -> Option<FileKey> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(FileKey(meta.len(), modified.as_nanos() as u64))
}

fn paths(root: &Path, file: &str) -> (PathBuf, PathBuf) {
    let dir = store::ExperimentDir { root: root.to_path_buf() }.cache();
    (dir.join(file), dir.join(format!("{file}.json")))
}

/// The cache of `file` in the results directory `root`, when it reads and agrees with itself.
fn read_cache(root: &Path, file: &str) -> Option<(Manifest, DataFrame)> {
    let (data, manifest) = paths(root, file);
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(manifest).ok()?).ok()?;
    if manifest.version != VERSION || std::fs::metadata(&data).ok()?.len() != manifest.bytes {
        return None;
    }
    let frame = store::read_parquet(&data).ok()?;
    (frame.height() == manifest.trials.iter().map(|e| e.rows).sum::<usize>()).then_some((manifest, frame))
}

fn write_cache(root: &Path, file: &str, frame: &mut DataFrame, trials: Vec<Entry>) -> Result<()> {
    let (data, manifest) = paths(root, file);
    store::write_derived_parquet(&data, frame)?;
    let bytes = std::fs::metadata(&data)?.len();
    store::write_atomic(&manifest, &serde_json::to_vec(&Manifest { version: VERSION, bytes, trials })?)
}

/// The frames of `file` of the trials `ids` (each read by `read` from its own file: `None` where
/// it has none), concatenated in that order; `None` when no trial has one. Trials whose file is
/// unchanged since the cache was written come from the cache; the cache is written again when
/// anything differs (a failure to write it is not an error: the next load reads the files).
pub fn trial_frames(
    root: &Path,
    file: &str,
    ids: &[String],
    read: impl Fn(&str) -> Result<Option<DataFrame>> + Sync,
) -> Result<Option<DataFrame>> {
    let keys: Vec<Option<FileKey>> = ids
        .par_iter()
        .map(|id| file_key(&store::ExperimentDir { root: root.to_path_buf() }.trial(id).join(file)))
        .collect();
    let cached = read_cache(root, file);
    // Each cached trial's key and row range.
    let mut ranges: HashMap<&str, (FileKey, usize, usize)> = HashMap::new();
    if let Some((manifest, _)) = &cached {
        let mut offset = 0;
        for e in &manifest.trials {
            ranges.insert(&e.trial, (e.key, offset, e.rows));
            offset += e.rows;
        }
    }
    let hit = |i: usize| keys[i].and_then(|k| ranges.get(ids[i].as_str()).filter(|r| r.0 == k).copied());
    let misses: Vec<usize> = (0..ids.len()).filter(|&i| hit(i).is_none()).collect();
    let fresh: HashMap<usize, DataFrame> = super::reading(|| {
        misses
            .par_iter()
            .map(|&i| Ok(read(&ids[i])?.map(|df| (i, df))))
            .collect::<Result<Vec<_>>>()
            .map(|v| v.into_iter().flatten().collect())
    })?;
    let wanted: Vec<Entry> = (0..ids.len())
        .filter_map(|i| {
            let key = keys[i]?;
            let rows = match hit(i) {
                Some((_, _, rows)) => rows,
                None => fresh.get(&i)?.height(),
            };
            Some(Entry { trial: ids[i].clone(), key, rows })
        })
        .collect();
    if let Some((manifest, frame)) = &cached {
        if fresh.is_empty() && manifest.trials == wanted {
            return Ok(Some(frame.clone()));
        }
    }
    // Consecutive cached trials are one slice of the cache.
    let mut parts: Vec<DataFrame> = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    let flush = |run: &mut Option<(usize, usize)>, parts: &mut Vec<DataFrame>| {
        if let (Some((start, len)), Some((_, frame))) = (run.take(), &cached) {
            parts.push(frame.slice(start as i64, len));
        }
    };
    for i in 0..ids.len() {
        match (hit(i), fresh.get(&i)) {
            (Some((_, start, rows)), _) => match run.as_mut() {
                Some((s, len)) if *s + *len == start => *len += rows,
                _ => {
                    flush(&mut run, &mut parts);
                    run = Some((start, rows));
                }
            },
            (None, Some(df)) => {
                flush(&mut run, &mut parts);
                parts.push(df.clone());
            }
            (None, None) => {}
        }
    }
    flush(&mut run, &mut parts);
    let Some(mut all) = concat_diagonal(parts)? else { return Ok(None) };
    // Only trials keyed by a file of their own are cached (a trial with rows but no file key
    // would be read again anyway).
    if wanted.iter().map(|e| e.rows).sum::<usize>() == all.height() {
        let _ = write_cache(root, file, &mut all, wanted);
    }
    Ok(Some(all))
}
