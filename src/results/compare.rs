//! Paired comparisons between settings of one experiment, on the final evaluations of its done
//! trials.
//!
//! Trials of one experiment that share a seed start from the same parameters, see the same
//! batches and are scored on the same held-out identities; resample `b` of their identity
//! bootstraps draws the same identities. A comparison is therefore a linear contrast of cells
//! (a setting's metric at a noise setting), computed per seed and per identity resample:
//! [`crate::stats::paired_contrast`] combines the spread of the contrast over the common seeds
//! (a t with K − 1 degrees of freedom) with its identity-bootstrap variance (shared by the
//! seeds), and with a single seed is the identity bootstrap's percentile interval. It stays
//! sound at the seed counts these studies afford (two seeds leave a t-test over seeds with one
//! degree of freedom, one seed none at all), and the pairing removes the variation both settings
//! share.
//!
//! The replicates come from each trial's bootstrap.parquet (its last evaluation); a trial
//! without one (no `[eval] bootstrap`, or results older than intervals) takes part through its
//! point value alone.

use super::aggregate::ColumnKey;
use super::{floats, strings, Results};
use crate::stats::{self, Contrast, SeedValues, Term};
use crate::store::trial_files;
use anyhow::Result;
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// A setting's metric at one noise setting: what a comparison compares.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub setting: String,
    pub noise_kind: String,
    /// The noise ratio's bits (an exact key).
    pub noise_ratio: u64,
    pub key: ColumnKey,
}

impl Cell {
    pub fn new(setting: &str, noise_kind: &str, noise_ratio: f64, key: &ColumnKey) -> Cell {
        Cell {
            setting: setting.to_string(),
            noise_kind: noise_kind.to_string(),
            noise_ratio: noise_ratio.to_bits(),
            key: key.clone(),
        }
    }
}

/// The most identity replicates a comparison uses per trial, and a seed that
/// [`crate::stats::paired_contrast`] no longer draws from (it is deterministic).
pub const RESAMPLES: usize = 2000;
const SEED: u64 = 0xc0a1_e5ce;

/// The level under which a difference is called significant (after Holm where several
/// comparisons share a table).
pub const ALPHA: f64 = 0.05;

/// Every done trial's final value and replicates, by cell and seed.
#[derive(Default)]
pub struct Paired {
    cells: HashMap<Cell, BTreeMap<i64, SeedValues>>,
}

impl Paired {
    /// Reads the final evaluations of the done trials, and their bootstrap replicates, for the
    /// columns `keys`.
    pub fn load(r: &Results, keys: &[ColumnKey]) -> Result<Paired> {
        let Some(lf) = super::aggregate::final_evals(r) else { return Ok(Paired::default()) };
        let df = lf.collect()?;
        let (trial, setting, kind) = (strings(&df, "trial")?, strings(&df, "setting")?, strings(&df, "noise_kind")?);
        let (protocol, variant, metric) =
            (strings(&df, "protocol")?, strings(&df, "variant")?, strings(&df, "metric")?);
        let (ratio, seed, value, step) =
            (floats(&df, "noise_ratio")?, floats(&df, "seed")?, floats(&df, "value")?, floats(&df, "step")?);
        let wanted: Vec<usize> = (0..df.height())
            .filter(|&i| {
                keys.iter().any(|k| k.protocol == protocol[i] && k.variant == variant[i] && k.metric == metric[i])
            })
            .filter(|&i| value[i].is_some_and(f64::is_finite))
            .collect();
        let mut trials: Vec<String> = wanted.iter().map(|&i| trial[i].clone()).collect();
        trials.sort_unstable();
        trials.dedup();
        let replicates = read_replicates(r, &trials)?;
        let mut cells: HashMap<Cell, BTreeMap<i64, SeedValues>> = HashMap::new();
        for i in wanted {
            let key =
                ColumnKey { protocol: protocol[i].clone(), variant: variant[i].clone(), metric: metric[i].clone() };
            let reps = replicates
                .get(&trial[i])
                .and_then(|m| m.get(&(step[i].unwrap_or(0.0) as i64, key.clone())))
                .cloned()
                .unwrap_or_default();
            let cell = Cell::new(&setting[i], &kind[i], ratio[i].unwrap_or(0.0), &key);
            let values = SeedValues { point: value[i].unwrap_or(f64::NAN), replicates: reps };
            cells.entry(cell).or_default().insert(seed[i].unwrap_or(0.0) as i64, values);
        }
        Ok(Paired { cells })
    }

    /// A cell's values per seed.
    pub fn seeds(&self, cell: &Cell) -> Option<&BTreeMap<i64, SeedValues>> {
        self.cells.get(cell)
    }

    /// The contrast Σ coef·cell, paired over seeds and identity resamples; `None` when a cell is
    /// missing, the cells share no seed, or nothing varies (one seed without replicates).
    pub fn contrast(&self, terms: &[(f64, &Cell)]) -> Option<Contrast> {
        let maps: Vec<&BTreeMap<i64, SeedValues>> =
            terms.iter().map(|(_, cell)| self.cells.get(cell)).collect::<Option<_>>()?;
        // A resample some trial could not score (NaN: no mated search drawn) is left out of every
        // term, so the replicates stay paired.
        let r = maps.iter().flat_map(|m| m.values().map(|v| v.replicates.len())).min().unwrap_or(0);
        let scored = |i: usize| maps.iter().all(|m| m.values().all(|v| v.replicates[i].is_finite()));
        let keep: Vec<usize> = (0..r).filter(|&i| scored(i)).collect();
        let cleaned: Vec<BTreeMap<i64, SeedValues>> = if keep.len() < r {
            maps.iter()
                .map(|m| {
                    m.iter()
                        .map(|(&s, v)| {
                            let replicates = keep.iter().map(|&i| v.replicates[i]).collect();
                            (s, SeedValues { point: v.point, replicates })
                        })
                        .collect()
                })
                .collect()
        } else {
            Vec::new()
        };
        let seeds = |k: usize| if cleaned.is_empty() { maps[k] } else { &cleaned[k] };
        let terms: Vec<Term> =
            terms.iter().enumerate().map(|(k, (coef, _))| Term { coef: *coef, seeds: seeds(k) }).collect();
        stats::paired_contrast(&terms, RESAMPLES, SEED, stats::LEVEL)
    }

    /// X − Y.
    pub fn difference(&self, x: &Cell, y: &Cell) -> Option<Contrast> {
        self.contrast(&[(1.0, x), (-1.0, y)])
    }
}

/// Whether the spread (max − min of the seed means) over `cells` (the settings of one grid)
/// exceeds what the seeds alone produce: the p-value of [`stats::spread_permutation_test`] on
/// the seeds every cell has. `None` with fewer than two such seeds.
pub fn spread_test(paired: &Paired, cells: &[Cell]) -> Option<f64> {
    let maps: Vec<&BTreeMap<i64, SeedValues>> = cells.iter().map(|c| paired.seeds(c)).collect::<Option<_>>()?;
    let common: Vec<i64> = maps.first()?.keys().copied().filter(|s| maps.iter().all(|m| m.contains_key(s))).collect();
    let values: Vec<Vec<f64>> = common.iter().map(|s| maps.iter().map(|m| m[s].point).collect()).collect();
    stats::spread_permutation_test(&values, PERMUTATIONS, SEED)
}

/// Permutations of [`spread_test`].
pub const PERMUTATIONS: usize = 10_000;

/// One trial's replicates by (step, column).
type Replicates = HashMap<(i64, ColumnKey), Vec<f32>>;

/// The bootstrap.parquet replicates of `trials`, by trial (trials without the file have none).
fn read_replicates(r: &Results, trials: &[String]) -> Result<HashMap<String, Replicates>> {
    let read = |id: &str| -> Result<Option<DataFrame>> {
        let path = r.dir.trial(id).join(trial_files::BOOTSTRAP);
        if !path.is_file() {
            return Ok(None);
        }
        let df = crate::store::read_parquet(&path)
            .map_err(|e| crate::error::InputError::file(&path, format!("not a readable parquet file ({e:#})")))?;
        let mut df = df.lazy().with_column(lit(id).alias("trial")).collect()?;
        // Each row's replicates as little-endian f32 bytes: the cache writes and reads a binary
        // column several times faster than a list column.
        let packed: Vec<Option<Vec<u8>>> = (0..df.height())
            .map(|i| -> Result<Option<Vec<u8>>> {
                let Some(series) = df.column("replicates")?.list()?.get_as_series(i) else { return Ok(None) };
                let values = series.cast(&DataType::Float32)?;
                Ok(Some(values.f32()?.into_iter().flat_map(|v| v.unwrap_or(f32::NAN).to_le_bytes()).collect()))
            })
            .collect::<Result<_>>()?;
        df.with_column(Column::new("replicates".into(), packed))?;
        Ok(Some(df))
    };
    let mut out: HashMap<String, Replicates> = HashMap::new();
    let Some(df) = super::cache::trial_frames(&r.dir.root, trial_files::BOOTSTRAP, trials, read)? else {
        return Ok(out);
    };
    if df.height() == 0 {
        return Ok(out);
    }
    let (trial, protocol, variant, metric) =
        (strings(&df, "trial")?, strings(&df, "protocol")?, strings(&df, "variant")?, strings(&df, "metric")?);
    let step = floats(&df, "step")?;
    let packed = df.column("replicates")?.binary()?.clone();
    for i in 0..df.height() {
        let Some(bytes) = packed.get(i) else { continue };
        let values: Vec<f32> =
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("four bytes"))).collect();
        let key = ColumnKey { protocol: protocol[i].clone(), variant: variant[i].clone(), metric: metric[i].clone() };
        out.entry(trial[i].clone()).or_default().insert((step[i].unwrap_or(0.0) as i64, key), values);
    }
    Ok(out)
}

/// The verdict on a difference X − Y of a metric where `higher_is_better`, at adjusted p-value
/// `p`.
pub fn verdict(estimate: f64, p: f64, higher_is_better: bool) -> &'static str {
    if p >= ALPHA || estimate == 0.0 {
        "no detectable difference"
    } else if (estimate > 0.0) == higher_is_better {
        "better"
    } else {
        "worse"
    }
}
