//! MegaFace Challenge 1: FaceScrub probes against 10…10⁶ distractors.
//!
//! Rank-1 identification as the devkit computes it: for every ordered pair (probe p, other image
//! g of p's identity), g is added to the distractors and p must score g strictly above every
//! distractor. TAR @ FAR: positives are the same-identity probe pairs, negatives every
//! probe × distractor pair, read out by [`FarReadout`]. Scores are cosine similarities
//! (features L2-normalised), which rank as the devkit's L2 distances on normalised features.
//!
//! Distractors are streamed in blocks: rayon workers each take a block, read and normalise it,
//! score all probes against it with one sgemm, and keep only what the metrics need — per probe
//! and distractor set the highest distractor score, and per set the highest negatives
//! ([`TopScores`]) that TAR @ FAR can depend on. Several distractor sets (the devkit's sizes) are
//! scored in the same pass; each distractor row carries a bit per set it belongs to.
//! File formats are in [`formats`].

pub mod formats;
pub mod run;

use super::gemm;
use super::roc::{negatives_needed, FarReadout, Roc, TopScores};
use super::{normalise_rows, rate_label, Features, ProtocolResult};
use crate::error::InputError;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Distractor rows read in blocks.
pub trait DistractorSource: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn dim(&self) -> usize;
    /// Writes rows `start..start + count` (raw features) into `out` ([count, dim]).
    fn read(&self, start: usize, count: usize, out: &mut [f32]) -> Result<(), InputError>;
}

/// Distractors already in memory (row-major [n, dim]).
pub struct InMemory<'a> {
    pub data: &'a [f32],
    pub dim: usize,
}

impl DistractorSource for InMemory<'_> {
    fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn read(&self, start: usize, count: usize, out: &mut [f32]) -> Result<(), InputError> {
        out.copy_from_slice(&self.data[start * self.dim..(start + count) * self.dim]);
        Ok(())
    }
}

/// Distractors as devkit feature files, one per row.
pub struct MatFiles {
    pub paths: Vec<std::path::PathBuf>,
    pub dim: usize,
}

impl DistractorSource for MatFiles {
    fn len(&self) -> usize {
        self.paths.len()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn read(&self, start: usize, count: usize, out: &mut [f32]) -> Result<(), InputError> {
        let mut row = Vec::with_capacity(self.dim);
        for (i, path) in self.paths[start..start + count].iter().enumerate() {
            let bytes = std::fs::read(path)
                .map_err(|e| InputError::file(path, format!("cannot read the feature file: {e}")))?;
            let d = formats::decode_mat(path, &bytes, &mut row)?;
            if d != self.dim {
                return Err(InputError::file(path, format!("{d}-d feature; the probes are {}-d", self.dim)));
            }
            out[i * self.dim..(i + 1) * self.dim].copy_from_slice(&row);
        }
        Ok(())
    }
}

/// Which distractor sets each source row belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct DistractorSets {
    /// The name of each set in metric names: its size (the devkit list's length, e.g. `1000000`).
    pub names: Vec<String>,
    /// Per source row, bit s set if the row is in set s; `None`: every row is in every set.
    pub masks: Option<Vec<u8>>,
}

impl DistractorSets {
    /// One set holding every row.
    pub fn all(name: impl Into<String>) -> DistractorSets {
        DistractorSets { names: vec![name.into()], masks: None }
    }

    /// Nested sets: set s holds the first `sizes[s]` rows.
    pub fn prefixes(sizes: &[usize], rows: usize) -> DistractorSets {
        assert!(sizes.len() <= 8, "at most 8 distractor sets");
        let masks = (0..rows)
            .map(|r| sizes.iter().enumerate().filter(|(_, &n)| r < n).fold(0u8, |m, (s, _)| m | 1 << s))
            .collect();
        DistractorSets { names: sizes.iter().map(|s| s.to_string()).collect(), masks: Some(masks) }
    }

    fn count(&self, set: usize, rows: usize) -> usize {
        match &self.masks {
            None => rows,
            Some(m) => m.iter().filter(|&&b| b & (1 << set) != 0).count(),
        }
    }
}

/// Settings of the protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MegafaceOptions {
    pub far: f64,
    pub readout: FarReadout,
    /// Distractors per block.
    pub block: usize,
}

impl Default for MegafaceOptions {
    fn default() -> Self {
        MegafaceOptions { far: 1e-6, readout: FarReadout::AtMost, block: 4096 }
    }
}

/// The outcome for one distractor set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetOutcome {
    pub name: String,
    pub distractors: usize,
    pub rank1: f64,
    /// `None` when there are no same-identity probe pairs.
    pub tar: Option<f64>,
    pub threshold: Option<f32>,
    /// Impostor comparisons behind `tar`: every probe × distractor pair.
    pub negatives: u64,
    /// What the metrics are recomputed from when probe identities are resampled
    /// ([`super::bootstrap`]).
    pub parts: SetParts,
}

/// A distractor set's outcome taken apart by probe: per probe the rank-1 hits and trials; the
/// positives with their identity; the highest negatives with their probe.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetParts {
    pub probe_hits: Vec<(u32, u32)>,
    pub positives: Vec<(f32, u32)>,
    pub top_negatives: Vec<(f32, u32)>,
    /// Whether some negatives were not kept (they all score at or below the lowest kept one).
    pub partial: bool,
}

/// Per-worker state: the running maxima and highest negatives.
struct Acc {
    /// [set][probe] highest distractor score.
    max: Vec<Vec<f32>>,
    top: Vec<TopScores>,
}

impl Acc {
    fn merge(&mut self, other: Acc) {
        for (mine, theirs) in self.max.iter_mut().zip(other.max) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a = a.max(b);
            }
        }
        for (mine, theirs) in self.top.iter_mut().zip(other.top) {
            mine.merge(theirs);
        }
    }
}

/// Highest value of a slice (8 lanes, so it vectorises); −∞ when empty.
#[inline]
fn max_of(v: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            m[k] = if c[k] > m[k] { c[k] } else { m[k] };
        }
    }
    let mut best = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &x in rest {
        best = best.max(x);
    }
    best
}

/// Scores `probes` (identities `probe_ids`) against the distractor sets of `source`.
/// `probes` must already be what is compared (cleaned); rows are L2-normalised here.
pub fn evaluate(
    probes: &Features,
    probe_ids: &[u32],
    source: &dyn DistractorSource,
    sets: &DistractorSets,
    opts: &MegafaceOptions,
) -> Result<Vec<SetOutcome>, InputError> {
    let (p, d) = (probes.rows, probes.dim);
    assert_eq!(probe_ids.len(), p);
    assert_eq!(source.dim(), d, "probe and distractor dimensions differ");
    let rows = source.len();
    let nsets = sets.names.len();
    let mut probe_data = probes.data.clone();
    normalise_rows(&mut probe_data, d);
    let counts: Vec<usize> = (0..nsets).map(|s| sets.count(s, rows)).collect();
    // Twice what the point estimate needs (and 64 more), so that a resample that weights the
    // probes differently still reads TAR from kept negatives.
    let caps: Vec<usize> =
        counts.iter().map(|&c| (2 * negatives_needed(opts.far, (p * c) as u64) + 64).min(p * c)).collect();
    let block = opts.block.max(1);
    let blocks = rows.div_ceil(block);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<InputError>> = Mutex::new(None);
    let workers = rayon::current_num_threads().min(blocks.max(1));
    let accs: Vec<Acc> = (0..workers)
        .into_par_iter()
        .map(|_| {
            let mut acc = Acc {
                max: vec![vec![f32::NEG_INFINITY; p]; nsets],
                top: caps.iter().map(|&k| TopScores::new(k)).collect(),
            };
            let mut feats = vec![0f32; block * d];
            let mut scores = vec![0f32; p * block];
            let mut cols: Vec<Vec<u32>> = vec![Vec::new(); nsets];
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= blocks || failed.load(Ordering::Relaxed) {
                    break;
                }
                let start = b * block;
                let count = block.min(rows - start);
                let buf = &mut feats[..count * d];
                if let Err(e) = source.read(start, count, buf) {
                    failed.store(true, Ordering::Relaxed);
                    first_error.lock().expect("error slot").get_or_insert(e);
                    break;
                }
                normalise_rows(buf, d);
                let s = &mut scores[..p * count];
                gemm::scores_into(&probe_data, p, buf, count, d, s);
                // Columns of each set in this block; `None` = the whole block.
                let whole: Vec<bool> = (0..nsets)
                    .map(|set| match &sets.masks {
                        None => true,
                        Some(m) => {
                            cols[set].clear();
                            cols[set].extend((0..count as u32).filter(|&c| m[start + c as usize] & (1 << set) != 0));
                            cols[set].len() == count
                        }
                    })
                    .collect();
                for set in 0..nsets {
                    if !whole[set] && cols[set].is_empty() {
                        continue;
                    }
                    let (max, top) = (&mut acc.max[set], &mut acc.top[set]);
                    for (probe, row) in s.chunks_exact(count).enumerate() {
                        if whole[set] {
                            let m = max_of(row);
                            max[probe] = max[probe].max(m);
                            if m > top.threshold() {
                                top.offer_tagged(row, probe as u32);
                            }
                        } else {
                            let mut t = top.threshold();
                            let mut m = f32::NEG_INFINITY;
                            for &c in &cols[set] {
                                let v = row[c as usize];
                                m = m.max(v);
                                if v > t {
                                    top.push_tagged(v, probe as u32);
                                    t = top.threshold();
                                }
                            }
                            max[probe] = max[probe].max(m);
                        }
                    }
                }
            }
            acc
        })
        .collect();
    if let Some(e) = first_error.into_inner().expect("error slot") {
        return Err(e);
    }
    let mut accs = accs.into_iter();
    let mut acc = accs.next().expect("at least one worker");
    for other in accs {
        acc.merge(other);
    }
    // Probe × probe similarities for the mates.
    let gram = gemm::scores(&probe_data, p, &probe_data, p, d);
    let mut by_id: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (i, &id) in probe_ids.iter().enumerate() {
        by_id.entry(id).or_default().push(i);
    }
    let mut positives = Vec::new();
    for (&id, members) in &by_id {
        for (x, &a) in members.iter().enumerate() {
            for &b in &members[x + 1..] {
                positives.push((gram[a * p + b], id));
            }
        }
    }
    let positive_scores: Vec<f32> = positives.iter().map(|p| p.0).collect();
    let mut out = Vec::with_capacity(nsets);
    for (set, top) in acc.top.into_iter().enumerate() {
        let max = &acc.max[set];
        let mut probe_hits = vec![(0u32, 0u32); p];
        for members in by_id.values() {
            for &probe in members {
                for &mate in members {
                    if mate != probe {
                        probe_hits[probe].1 += 1;
                        probe_hits[probe].0 += u32::from(gram[probe * p + mate] > max[probe]);
                    }
                }
            }
        }
        let (hits, trials) = probe_hits.iter().fold((0u64, 0u64), |(h, t), &(a, b)| (h + a as u64, t + b as u64));
        let negatives = (p * counts[set]) as u64;
        let top_negatives = top.into_sorted_tagged();
        let kept: Vec<f32> = top_negatives.iter().map(|n| n.0).collect();
        let roc = Roc::from_top(&positive_scores, &kept, negatives);
        let read = roc.tar_at_far(opts.far, opts.readout);
        out.push(SetOutcome {
            name: sets.names[set].clone(),
            distractors: counts[set],
            rank1: if trials > 0 { hits as f64 / trials as f64 } else { f64::NAN },
            tar: read.map(|r| r.tar),
            threshold: read.map(|r| r.threshold),
            negatives,
            parts: SetParts {
                probe_hits,
                positives: positives.clone(),
                partial: (top_negatives.len() as u64) < negatives,
                top_negatives,
            },
        });
    }
    Ok(out)
}

/// The protocol's result record for `outcomes`.
pub fn result(outcomes: &[SetOutcome], opts: &MegafaceOptions, source: &str, cleaning: &str) -> ProtocolResult {
    let mut r = ProtocolResult::new("megaface");
    r.set("source", source);
    r.set("cleaning", cleaning);
    r.set("score", "cosine (features L2-normalised)");
    r.set(
        "rank1_rule",
        "each probe vs each other image of its identity added to the distractors; the mate must score strictly above every distractor",
    );
    r.set("tar_pairs", "positives: same-identity probe pairs; negatives: every probe x distractor pair");
    r.set("far_readout", opts.readout.name());
    r.set("roc", "a point per distinct score (highest negatives kept while streaming)");
    r.set(
        "distractors",
        serde_json::Value::Object(
            outcomes.iter().map(|o| (o.name.clone(), serde_json::Value::from(o.distractors))).collect(),
        ),
    );
    for o in outcomes {
        r.metric(format!("rank1@distractors={}", o.name), o.rank1);
    }
    // TAR @ FAR is the largest set's (MegaFace reports it at 10⁶ distractors).
    let largest = outcomes.iter().max_by_key(|o| (o.distractors, o.name.parse::<usize>().unwrap_or(0)));
    if let Some(o) = largest {
        if let Some(tar) = o.tar {
            let name = format!("tar@far={}", rate_label(opts.far));
            r.metric(name.clone(), tar);
            r.resolution(&name, o.negatives, opts.far);
        }
    }
    r
}

/// The `cleaning` variant text: `raw`, or what insightface's noise lists changed (probes
/// replaced, distractor entries removed), for the lists that were given.
pub fn cleaning_label(probes_replaced: Option<usize>, distractors_removed: Option<usize>) -> String {
    let mut parts = Vec::new();
    if let Some(n) = probes_replaced {
        parts.push(format!("{n} FaceScrub probes replaced by their identity centre"));
    }
    if let Some(n) = distractors_removed {
        parts.push(format!("{n} MegaFace distractor entries removed"));
    }
    if parts.is_empty() {
        "raw".into()
    } else {
        format!("insightface noise lists: {}", parts.join("; "))
    }
}

/// insightface's cleaning of FaceScrub probes: each noisy probe's feature is replaced by the
/// L2-normalised mean of its identity's clean (normalised) probes. Returns how many were replaced.
pub fn replace_noisy_probes(probes: &mut Features, ids: &[u32], noisy: &[bool]) -> usize {
    let d = probes.dim;
    let mut sums: std::collections::HashMap<u32, Vec<f64>> = Default::default();
    for i in 0..probes.rows {
        if !noisy[i] {
            let row = probes.row(i);
            let norm = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
            let sum = sums.entry(ids[i]).or_insert_with(|| vec![0.0; d]);
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += v as f64 / norm;
            }
        }
    }
    let mut replaced = 0;
    for i in 0..probes.rows {
        if let (true, Some(sum)) = (noisy[i], sums.get(&ids[i])) {
            let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            for (dst, s) in probes.data[i * d..(i + 1) * d].iter_mut().zip(sum) {
                *dst = (s / norm) as f32;
            }
            replaced += 1;
        }
    }
    replaced
}
