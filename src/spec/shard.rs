//! `--shard I/N`: the I-th of N disjoint subsets of a run's trials, so that N processes (the
//! tasks of a Slurm job array) can share one experiment. Trials are dealt largest expected cost
//! first, each to the shard with the least cost so far (ties: the lower shard; equal costs: file
//! order): the shards are balanced, and every process that reads the same file with the same
//! filters computes the same split.

use super::TrialConfig;
use crate::error::InputError;

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based, below `count`.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses `I/N` (0 ≤ I < N).
    pub fn parse(text: &str) -> Result<Shard, InputError> {
        let bad = |message: String| InputError { location: "--shard".into(), message };
        let Some((i, n)) = text.split_once('/') else {
            return Err(bad(format!("\"{text}\" is not I/N (e.g. --shard 0/4: the first of four shards)")));
        };
        let number = |s: &str| {
            s.trim().parse::<usize>().map_err(|_| bad(format!("\"{s}\" in \"{text}\" is not a whole number")))
        };
        let (index, count) = (number(i)?, number(n)?);
        if count == 0 || index >= count {
            return Err(bad(format!("\"{text}\": expected 0 ≤ I < N")));
        }
        Ok(Shard { index, count })
    }

    /// This shard's trials, in file order.
    pub fn pick(&self, trials: &[TrialConfig]) -> Vec<TrialConfig> {
        let owner = assign(trials, self.count);
        trials.iter().zip(owner).filter(|(_, s)| *s == self.index).map(|(t, _)| t.clone()).collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of each trial (longest expected cost first onto the least-loaded shard).
pub fn assign(trials: &[TrialConfig], shards: usize) -> Vec<usize> {
    let costs: Vec<f64> = trials.iter().map(expected_cost).collect();
    let mut order: Vec<usize> = (0..trials.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a])); // stable: equal costs keep file order
    let mut load = vec![0.0f64; shards.max(1)];
    let mut owner = vec![0; trials.len()];
    for k in order {
        let lightest = (0..load.len()).min_by(|&a, &b| load[a].total_cmp(&load[b])).expect("at least one shard");
        owner[k] = lightest;
        load[lightest] += costs[k];
    }
    owner
}

/// A trial's expected training cost in arbitrary units: epochs × training images × the
/// multiply-adds of the backbone's convolutions per image (each stage a 3×3 convolution at its
/// resolution, which then halves). Real-file evaluation and data loading are not counted.
pub fn expected_cost(t: &TrialConfig) -> f64 {
    let (mut per_image, mut side, mut channels) = (0.0, t.data.image_size as f64, t.data.channels as f64);
    for &w in &t.model.widths {
        per_image += side * side * channels * w as f64 * 9.0;
        channels = w as f64;
        side = (side / 2.0).floor().max(1.0);
    }
    let images = (t.data.identities * t.data.images_per_identity) as f64;
    t.train.epochs as f64 * images * per_image.max(1.0)
}
