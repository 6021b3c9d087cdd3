//! `--shard I/N`: the I-th of N disjoint subsets of a run's trials, so that N processes (the
//! tasks of a Slurm job array) can share one experiment. Trials are dealt largest expected cost
//! first, each to the shard with the least cost so far (ties: the lower shard; equal costs: file
//! order): the shards are balanced, and every process that reads the same file with the same
//! filters computes the same split.

use super::{Backbone, ModelSpec, TrialConfig};
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
/// backbone's multiply-adds per image ([`multiply_adds`]). Real-file evaluation and data loading
/// are not counted.
pub fn expected_cost(t: &TrialConfig) -> f64 {
    let images = (t.data.identities * t.data.images_per_identity) as f64;
    t.train.epochs as f64 * images * multiply_adds(&t.model, t.data.channels, t.data.image_size).max(1.0)
}

/// IResNet's stage widths (insightface's `iresnet.py`; used by `model::iresnet` and the cost).
pub const IRESNET_WIDTHS: [i64; 4] = [64, 128, 256, 512];

/// IResNet-`depth`'s units per stage.
pub fn iresnet_layers(depth: usize) -> [usize; 4] {
    match depth {
        18 => [2, 2, 2, 2],
        34 => [3, 4, 6, 3],
        50 => [3, 4, 14, 3],
        100 => [3, 13, 30, 3],
        other => panic!("no IResNet-{other}"),
    }
}

/// MobileFaceNet's bottleneck rows (expansion t, channels c, repeats n, stride s), Table 1 of
/// Chen et al. 2018 (used by `model::mobilefacenet` and the cost).
pub const MOBILEFACENET_BOTTLENECKS: [(i64, i64, usize, i64); 5] =
    [(2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1)];

/// insightface's `mbf` after its stem: units (input channels, output channels, hidden channels,
/// stride), each a 1×1 expansion to the hidden channels, a depthwise 3×3 at the stride and a
/// linear 1×1 projection, with a residual connection at stride 1 (arcface_torch's `get_mbf`:
/// scale 2, blocks (1, 4, 6, 2); used by `model::mbf` and the cost).
pub const MBF_UNITS: [(i64, i64, i64, i64, usize); 6] = [
    (128, 128, 128, 2, 1),
    (128, 128, 128, 1, 4),
    (128, 256, 256, 2, 1),
    (256, 256, 256, 1, 6),
    (256, 256, 512, 2, 1),
    (256, 256, 256, 1, 2),
];

/// Multiply-adds of one forward pass of `model`'s backbone (embedding layer included) on a
/// `channels` × `size`² image: its convolutions and Linear layers, not normalisation or
/// activations, as `torch.utils.flop_counter` and the published figures count them.
pub fn multiply_adds(model: &ModelSpec, channels: usize, size: usize) -> f64 {
    let (c, s, e) = (channels as f64, size as f64, model.embedding as f64);
    match model.backbone {
        Backbone::Cnn => {
            let (mut macs, mut side, mut cin) = (0.0, s, c);
            for &w in &model.widths {
                macs += side * side * cin * w as f64 * 9.0;
                cin = w as f64;
                side = (side / 2.0).floor().max(1.0);
            }
            macs + side * side * cin * e
        }
        Backbone::Mobilefacenet => mobilefacenet_multiply_adds(c, s, e),
        Backbone::Mbf => mbf_multiply_adds(c, s, e),
        iresnet => iresnet_multiply_adds(iresnet.iresnet_depth().expect("an IResNet"), c, s, e),
    }
}

fn iresnet_multiply_adds(depth: usize, channels: f64, size: f64, embedding: f64) -> f64 {
    let mut side = size;
    let mut macs = side * side * channels * 64.0 * 9.0;
    let mut cin = 64.0;
    for (&width, &count) in IRESNET_WIDTHS.iter().zip(&iresnet_layers(depth)) {
        let (w, out) = (width as f64, (side / 2.0).ceil());
        macs += side * side * cin * w * 9.0 + out * out * w * w * 9.0 + out * out * cin * w;
        macs += (count - 1) as f64 * 2.0 * out * out * w * w * 9.0;
        (side, cin) = (out, w);
    }
    macs + 512.0 * side * side * embedding
}

fn mbf_multiply_adds(channels: f64, size: f64, embedding: f64) -> f64 {
    let mut side = (size / 2.0).ceil();
    // The stem: conv3×3 at stride 2 (128), then a grouped conv3×3 (64 groups of 2 channels).
    let mut macs = side * side * (channels * 128.0 * 9.0 + 128.0 * 2.0 * 9.0);
    for (cin, cout, hidden, stride, count) in MBF_UNITS {
        for _ in 0..count {
            let out = if stride == 2 { (side / 2.0).ceil() } else { side };
            let (cin, cout, hidden) = (cin as f64, cout as f64, hidden as f64);
            macs += side * side * cin * hidden + out * out * hidden * 9.0 + out * out * hidden * cout;
            side = out;
        }
    }
    // conv_sep (1×1 to 512), the global depthwise conv over the map, the Linear to the embedding.
    macs + side * side * 256.0 * 512.0 + side * side * 512.0 + 512.0 * embedding
}

fn mobilefacenet_multiply_adds(channels: f64, size: f64, embedding: f64) -> f64 {
    let mut side = (size / 2.0).ceil();
    let mut macs = side * side * (channels * 64.0 * 9.0 + 64.0 * 9.0);
    let mut cin = 64.0;
    for (t, c, n, s) in MOBILEFACENET_BOTTLENECKS {
        for i in 0..n {
            let hidden = cin * t as f64;
            let out = if i == 0 && s == 2 { (side / 2.0).ceil() } else { side };
            macs += side * side * cin * hidden + out * out * (hidden * 9.0 + hidden * c as f64);
            (side, cin) = (out, c as f64);
        }
    }
    macs + side * side * (128.0 * 512.0 + 512.0) + 512.0 * embedding
}
