//! LFW and the other insightface verification packs on their real formats.
//!
//! - `pairs.txt` (View 2): first line `folds pairs_per_fold` (`10 300`), then per fold
//!   `pairs_per_fold` matched lines `name i j` followed by as many mismatched lines
//!   `name1 i name2 j`; image `i` of `name` is `<name>/<name>_<iiii>.jpg`.
//! - An image list (`IMAGES.txt`, one relative path per line) naming the rows of a feature file.
//! - insightface `.bin` packs (LFW, CFP-FP, AgeDB-30): a pickle of (encoded images, is-same
//!   list); images 2k and 2k+1 form pair k.
//!
//! The metric is [`verification::kfold_accuracy`] with [`LfwOptions`]; the default is
//! insightface's variant (squared L2 on normalised features, thresholds 0.00..3.99).

use super::verification::{self, Pair};
use super::{pickle, textfile, Features, ProtocolResult};
use crate::error::InputError;
use std::collections::HashMap;
use std::path::Path;

/// One line of `pairs.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairLine {
    /// 1-based line in the file.
    pub line: usize,
    pub left: String,
    pub right: String,
    pub same: bool,
}

/// A parsed `pairs.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairsFile {
    pub folds: usize,
    pub per_fold: usize,
    pub pairs: Vec<PairLine>,
}

/// The relative path of image `index` (1-based) of `name`: `<name>/<name>_<index:04>.jpg`.
pub fn image_path(name: &str, index: u32) -> String {
    format!("{name}/{name}_{index:04}.jpg")
}

/// Reads a View 2 `pairs.txt`.
pub fn read_pairs(path: &Path) -> Result<PairsFile, InputError> {
    parse_pairs(path, &textfile::read(path)?)
}

/// Parses the bytes of a View 2 `pairs.txt`; `path` only names the file in errors.
pub fn parse_pairs(path: &Path, bytes: &[u8]) -> Result<PairsFile, InputError> {
    let mut lines = textfile::lines(bytes);
    let (hl, header) = lines.next().ok_or_else(|| InputError::file(path, "empty file; expected a header `10 300`"))?;
    let head = textfile::split_exact(path, hl, header, None, 1, "folds and pairs per fold")?;
    if head.len() != 2 {
        return Err(InputError::line(
            path,
            hl,
            "expected the View 2 header `folds pairs_per_fold` (e.g. `10 300`); a one-number header is View 1 \
             (pairsDevTrain/pairsDevTest), which is not a k-fold protocol",
        ));
    }
    let folds: usize = textfile::parse(path, hl, head[0], "a fold count")?;
    let per_fold: usize = textfile::parse(path, hl, head[1], "a pair count per fold")?;
    if folds < 2 || per_fold == 0 {
        return Err(InputError::line(
            path,
            hl,
            format!("header `{folds} {per_fold}`: expected at least 2 folds of 1 pair"),
        ));
    }
    let index = |line: usize, field: &str| -> Result<u32, InputError> {
        match field.parse::<u32>() {
            Ok(i) if i >= 1 => Ok(i),
            _ => Err(InputError::line(path, line, format!("expected a 1-based image number, found {field:?}"))),
        }
    };
    let total = folds.checked_mul(per_fold).and_then(|n| n.checked_mul(2)).ok_or_else(|| {
        InputError::line(path, hl, format!("header `{folds} {per_fold}`: more pairs than any file can hold"))
    })?;
    // A pair line takes at least 6 bytes: the header alone must not size the allocation.
    let mut pairs = Vec::with_capacity(total.min(bytes.len() / 6));
    for (n, line) in lines {
        let f = textfile::split_exact(path, n, line, None, 3, "name i j, or name1 i name2 j")?;
        let k = pairs.len();
        let want_same = (k % (2 * per_fold)) < per_fold;
        let pair = match f.len() {
            3 => PairLine {
                line: n,
                left: image_path(f[0], index(n, f[1])?),
                right: image_path(f[0], index(n, f[2])?),
                same: true,
            },
            4 => PairLine {
                line: n,
                left: image_path(f[0], index(n, f[1])?),
                right: image_path(f[2], index(n, f[3])?),
                same: false,
            },
            c => {
                return Err(InputError::line(
                    path,
                    n,
                    format!("expected 3 fields (name i j) or 4 (name1 i name2 j), found {c}"),
                ))
            }
        };
        if k >= total {
            return Err(InputError::line(path, n, format!("more pairs than the header's {folds} × 2 × {per_fold}")));
        }
        if pair.same != want_same {
            let (fold, at) = (k / (2 * per_fold) + 1, k % (2 * per_fold) + 1);
            let want = if want_same { "a matched pair (name i j)" } else { "a mismatched pair (name1 i name2 j)" };
            return Err(InputError::line(
                path,
                n,
                format!("expected {want} as pair {at} of fold {fold}: each fold is {per_fold} matched then {per_fold} mismatched pairs"),
            ));
        }
        pairs.push(pair);
    }
    if pairs.len() != total {
        return Err(InputError::file(
            path,
            format!("{} pairs; the header `{folds} {per_fold}` promises {}", pairs.len(), total),
        ));
    }
    Ok(PairsFile { folds, per_fold, pairs })
}

/// The distinct images of `pairs` in order of first appearance, and the pairs as indices into it.
pub fn unique_images(pairs: &PairsFile) -> (Vec<String>, Vec<Pair>) {
    fn id<'a>(index: &mut HashMap<&'a str, usize>, images: &mut Vec<String>, path: &'a str) -> usize {
        let next = index.len();
        *index.entry(path).or_insert_with(|| {
            images.push(path.to_string());
            next
        })
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut images = Vec::new();
    let mut out = Vec::with_capacity(pairs.pairs.len());
    for p in &pairs.pairs {
        let a = id(&mut index, &mut images, &p.left);
        let b = id(&mut index, &mut images, &p.right);
        out.push(Pair { a, b, same: p.same });
    }
    (images, out)
}

/// Reads an image list: one relative path per line (row i of the features is line i's image).
pub fn read_list(path: &Path) -> Result<Vec<String>, InputError> {
    parse_list(path, &textfile::read(path)?)
}

/// Parses the bytes of an image list; `path` only names the file in errors.
pub fn parse_list(path: &Path, bytes: &[u8]) -> Result<Vec<String>, InputError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (n, line) in textfile::lines(bytes) {
        let entry = std::str::from_utf8(line)
            .map_err(|_| InputError::line(path, n, "line is not valid UTF-8 text"))?
            .trim()
            .to_string();
        if let Some(first) = seen.insert(entry.clone(), n) {
            return Err(InputError::line(path, n, format!("{entry:?} is listed twice (first at line {first})")));
        }
        out.push(entry);
    }
    Ok(out)
}

/// The pairs of `pairs` as rows of a feature file whose rows are the images of `list`.
pub fn pairs_from_list(
    pairs_path: &Path,
    pairs: &PairsFile,
    list_path: &Path,
    list: &[String],
) -> Result<Vec<Pair>, InputError> {
    let row: HashMap<&str, usize> = list.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
    let find = |p: &PairLine, img: &str| {
        row.get(img).copied().ok_or_else(|| {
            InputError::line(
                pairs_path,
                p.line,
                format!("image {img:?} is not in the image list {}", list_path.display()),
            )
        })
    };
    pairs.pairs.iter().map(|p| Ok(Pair { a: find(p, &p.left)?, b: find(p, &p.right)?, same: p.same })).collect()
}

/// An insightface verification pack: encoded images and one is-same flag per image pair.
#[derive(Debug, Clone, PartialEq)]
pub struct BinPack {
    pub images: Vec<Vec<u8>>,
    pub issame: Vec<bool>,
}

impl BinPack {
    /// Pair k is images 2k and 2k+1.
    pub fn pairs(&self) -> Vec<Pair> {
        self.issame.iter().enumerate().map(|(k, &same)| Pair { a: 2 * k, b: 2 * k + 1, same }).collect()
    }
}

/// Reads a `.bin` pack.
pub fn read_bin(path: &Path) -> Result<BinPack, InputError> {
    parse_bin(path, &textfile::read(path)?)
}

/// Parses the bytes of a `.bin` pack; `path` only names the file in errors.
pub fn parse_bin(path: &Path, bytes: &[u8]) -> Result<BinPack, InputError> {
    let value = pickle::parse(bytes)
        .map_err(|e| InputError { location: format!("{}: byte {}", path.display(), e.offset), message: e.message })?;
    let shape_err =
        |m: String| InputError::file(path, format!("{m}; expected a pickled (list of encoded images, list of bools)"));
    let pickle::Value::Tuple(mut parts) = value else {
        return Err(shape_err(format!("the pickle holds a {}", value.kind())));
    };
    if parts.len() != 2 {
        return Err(shape_err(format!("the pickle holds a tuple of {}", parts.len())));
    }
    let flags = parts.pop().expect("two parts");
    let bins = parts.pop().expect("two parts");
    let (pickle::Value::List(bins), pickle::Value::List(flags)) = (bins, flags) else {
        return Err(shape_err("the tuple does not hold two lists".into()));
    };
    let images = bins
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            pickle::Value::Bytes(b) => Ok(std::rc::Rc::try_unwrap(b).unwrap_or_else(|rc| (*rc).clone())),
            other => Err(InputError::record(path, i, format!("image entry is a {}, expected bytes", other.kind()))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let issame = flags
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            pickle::Value::Bool(b) => Ok(b),
            pickle::Value::Int(0) => Ok(false),
            pickle::Value::Int(1) => Ok(true),
            other => Err(InputError::record(path, i, format!("is-same entry is a {}, expected a bool", other.kind()))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if images.len() != 2 * issame.len() {
        return Err(InputError::file(
            path,
            format!("{} images for {} pairs; expected two images per pair", images.len(), issame.len()),
        ));
    }
    Ok(BinPack { images, issame })
}

/// The distance between two features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Distance {
    /// ‖a/‖a‖ − b/‖b‖‖², in [0, 4] (insightface).
    SquaredL2,
    /// 1 − cos(a, b), in [0, 2].
    Cosine,
}

impl Distance {
    pub fn name(self) -> &'static str {
        match self {
            Distance::SquaredL2 => "squared-l2-normalised",
            Distance::Cosine => "cosine",
        }
    }
}

/// Thresholds `start, start + step, …` below `stop` (numpy's `arange`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdGrid {
    pub start: f64,
    pub stop: f64,
    pub step: f64,
}

impl Default for ThresholdGrid {
    fn default() -> Self {
        ThresholdGrid { start: 0.0, stop: 4.0, step: 0.01 }
    }
}

impl ThresholdGrid {
    /// The grid values: `start + i·step` for `i` in `0..ceil((stop − start)/step)`, as numpy.
    pub fn values(&self) -> Vec<f64> {
        let n = ((self.stop - self.start) / self.step).ceil().max(0.0) as usize;
        (0..n).map(|i| self.start + i as f64 * self.step).collect()
    }

    pub fn text(&self) -> String {
        format!("{}:{}:{}", self.start, self.stop, self.step)
    }
}

impl std::str::FromStr for ThresholdGrid {
    type Err = String;
    /// `start:stop:step`, e.g. `0:4:0.01`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<f64> = s
            .split(':')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("threshold grid {s:?}: expected start:stop:step, e.g. 0:4:0.01"))?;
        match parts.as_slice() {
            &[start, stop, step] if step > 0.0 && stop > start && start.is_finite() && stop.is_finite() => {
                Ok(ThresholdGrid { start, stop, step })
            }
            _ => Err(format!("threshold grid {s:?}: expected start:stop:step with stop > start and step > 0")),
        }
    }
}

/// Metric settings; the default is insightface's variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LfwOptions {
    pub distance: Distance,
    pub thresholds: ThresholdGrid,
    pub folds: usize,
}

impl Default for LfwOptions {
    fn default() -> Self {
        LfwOptions { distance: Distance::SquaredL2, thresholds: ThresholdGrid::default(), folds: 10 }
    }
}

/// k-fold accuracy of `pairs` over the rows of `features`.
/// The distance of every pair.
pub fn distances(features: &Features, pairs: &[Pair], distance: Distance) -> Vec<f64> {
    pairs
        .iter()
        .map(|p| match distance {
            Distance::SquaredL2 => verification::squared_l2_normalised(&features.data, features.dim, p.a, p.b),
            Distance::Cosine => verification::cosine_distance(&features.data, features.dim, p.a, p.b),
        })
        .collect()
}

pub fn evaluate(
    features: &Features,
    pairs: &[Pair],
    opts: &LfwOptions,
) -> (verification::FoldAccuracy, ProtocolResult) {
    let dist = distances(features, pairs, opts.distance);
    let same: Vec<bool> = pairs.iter().map(|p| p.same).collect();
    let acc = verification::kfold_accuracy(&dist, &same, opts.folds, &opts.thresholds.values());
    let mut result = ProtocolResult::new("lfw");
    result.set("distance", opts.distance.name());
    result.set("thresholds", opts.thresholds.text());
    result.set("folds", format!("{} contiguous (sklearn KFold)", opts.folds));
    result.set("threshold_rule", "max accuracy on the other folds, first on ties; predict same if distance < t");
    result.set("std", "population");
    result.set("pairs", pairs.len());
    result.metric("accuracy_mean", acc.mean);
    result.metric("accuracy_std", acc.std);
    (acc, result)
}
