//! The experiment file's tables as typed structs (`deny_unknown_fields` everywhere), with
//! defaults, and the value checks that serde cannot express.

use serde::{Deserialize, Serialize};

fn default_image_size() -> usize {
    32
}
fn default_channels() -> usize {
    1
}
fn default_difficulty() -> f64 {
    0.5
}

/// `[data]`: the built-in synthetic identities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Training identities (classes).
    pub identities: usize,
    /// Identities held out for evaluation, disjoint from the training ones.
    pub heldout_identities: usize,
    pub images_per_identity: usize,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// 0 = easy (little nuisance variation, well separated identities) … 1 = hard.
    #[serde(default = "default_difficulty")]
    pub difficulty: f64,
    /// Seed of the identities and their images.
    #[serde(default)]
    pub seed: u64,
}

fn default_widths() -> Vec<usize> {
    vec![16, 32, 64]
}
fn default_embedding() -> usize {
    64
}

/// `[model]`: the CNN backbone and the embedding layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Channels of each stage; every stage halves the resolution.
    #[serde(default = "default_widths")]
    pub widths: Vec<usize>,
    /// Embedding dimension D.
    #[serde(default = "default_embedding")]
    pub embedding: usize,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec { widths: default_widths(), embedding: default_embedding() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
}

fn default_lr() -> f64 {
    0.1
}
fn default_momentum() -> f64 {
    0.9
}
fn default_weight_decay() -> f64 {
    5e-4
}
fn default_gamma() -> f64 {
    0.1
}
fn default_seeds() -> Vec<u64> {
    vec![1]
}
fn default_device() -> DeviceChoice {
    DeviceChoice::Auto
}
fn default_log_every() -> usize {
    10
}

/// `[train]`: schedule, optimiser, seeds and execution settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Epochs after which the learning rate is multiplied by `lr_gamma`.
    #[serde(default)]
    pub lr_milestones: Vec<usize>,
    #[serde(default = "default_gamma")]
    pub lr_gamma: f64,
    /// One trial per seed and loss setting; a seed fixes the initial parameters and the data order.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default = "default_device")]
    pub device: DeviceChoice,
    /// libtorch intra-op threads; 0 = all cores.
    #[serde(default)]
    pub threads: usize,
    /// Telemetry row every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlipMode {
    /// Plain features only.
    None,
    /// Plain + horizontally flipped, summed (then normalised by the protocol).
    Sum,
    /// Plain and flipped concatenated.
    Concat,
}

fn default_protocols() -> Vec<String> {
    vec!["lfw".into()]
}
fn default_flip() -> FlipMode {
    FlipMode::Sum
}
fn default_folds() -> usize {
    10
}
fn default_pairs_per_fold() -> usize {
    300
}

/// `[eval.lfw]`: the LFW-style verification protocol on held-out identities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LfwSpec {
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Matched pairs per fold (and as many mismatched), as in LFW View 2 (300).
    #[serde(default = "default_pairs_per_fold")]
    pub pairs_per_fold: usize,
}

impl Default for LfwSpec {
    fn default() -> Self {
        LfwSpec { folds: default_folds(), pairs_per_fold: default_pairs_per_fold() }
    }
}

/// `[eval]`: which protocols run, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    #[serde(default = "default_protocols")]
    pub protocols: Vec<String>,
    /// Evaluate every N epochs as well as at the end; 0 = only at the end.
    #[serde(default)]
    pub every_epochs: usize,
    #[serde(default = "default_flip")]
    pub flip: FlipMode,
    #[serde(default)]
    pub lfw: LfwSpec,
}

impl Default for EvalSpec {
    fn default() -> Self {
        EvalSpec { protocols: default_protocols(), every_epochs: 0, flip: default_flip(), lfw: LfwSpec::default() }
    }
}

/// Protocols `[eval] protocols` may name.
pub const KNOWN_PROTOCOLS: &[&str] = &["lfw"];

/// The whole file as serde sees it; `[[loss]]` blocks stay raw tables because their keys
/// depend on the loss named.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub data: DataSpec,
    #[serde(default)]
    pub model: ModelSpec,
    pub train: TrainSpec,
    #[serde(default, rename = "loss")]
    pub losses: Vec<toml::Table>,
    #[serde(default)]
    pub eval: EvalSpec,
}

/// A value check: the key path (within the file) and what is expected, or `None` if fine.
pub type Violation = (Vec<super::error::Key>, String);

/// Checks the values serde accepted but the harness cannot use.
pub fn check_values(raw: &RawExperiment) -> Option<Violation> {
    use super::error::Key;
    let at = |table: &str, key: &str, msg: &str| Some((vec![Key::from(table), Key::from(key)], msg.to_string()));
    let name_ok = !raw.name.is_empty() && raw.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Some((
            vec![Key::from("name")],
            "name: expected a non-empty name of letters, digits, '-' and '_' (it names the results directory)".into(),
        ));
    }
    let d = &raw.data;
    if d.identities < 2 {
        return at("data", "identities", "data.identities: expected at least 2 training identities");
    }
    if d.heldout_identities < 2 {
        return at("data", "heldout_identities", "data.heldout_identities: expected at least 2 held-out identities");
    }
    if d.images_per_identity < 2 {
        return at("data", "images_per_identity", "data.images_per_identity: expected at least 2");
    }
    if !(8..=256).contains(&d.image_size) {
        return at("data", "image_size", "data.image_size: expected 8 to 256 pixels");
    }
    if d.channels != 1 && d.channels != 3 {
        return at("data", "channels", "data.channels: expected 1 (grey) or 3 (colour)");
    }
    if !(0.0..=1.0).contains(&d.difficulty) {
        return at("data", "difficulty", "data.difficulty: expected a number from 0 (easy) to 1 (hard)");
    }
    let m = &raw.model;
    if m.widths.is_empty() || m.widths.contains(&0) {
        return at("model", "widths", "model.widths: expected a non-empty list of positive channel counts");
    }
    if m.embedding < 2 {
        return at("model", "embedding", "model.embedding: expected an embedding dimension of at least 2");
    }
    if d.image_size >> m.widths.len() == 0 {
        return at(
            "model",
            "widths",
            "model.widths: too many stages for data.image_size (each stage halves the resolution)",
        );
    }
    let t = &raw.train;
    if t.epochs == 0 {
        return at("train", "epochs", "train.epochs: expected at least 1");
    }
    if t.batch_size == 0 {
        return at("train", "batch_size", "train.batch_size: expected at least 1");
    }
    if !(t.lr > 0.0 && t.lr.is_finite()) {
        return at("train", "lr", "train.lr: expected a learning rate > 0");
    }
    if !(0.0..1.0).contains(&t.momentum) {
        return at("train", "momentum", "train.momentum: expected 0 <= momentum < 1");
    }
    if !(t.weight_decay >= 0.0 && t.weight_decay.is_finite()) {
        return at("train", "weight_decay", "train.weight_decay: expected a number >= 0");
    }
    if !(t.lr_gamma > 0.0 && t.lr_gamma <= 1.0) {
        return at("train", "lr_gamma", "train.lr_gamma: expected 0 < lr_gamma <= 1");
    }
    if t.lr_milestones.windows(2).any(|w| w[0] >= w[1]) || t.lr_milestones.iter().any(|&e| e == 0 || e >= t.epochs) {
        return at(
            "train",
            "lr_milestones",
            "train.lr_milestones: expected strictly increasing epochs between 1 and epochs - 1",
        );
    }
    if t.seeds.is_empty() {
        return at("train", "seeds", "train.seeds: expected at least one seed");
    }
    if t.log_every == 0 {
        return at("train", "log_every", "train.log_every: expected at least 1");
    }
    let e = &raw.eval;
    for (i, p) in e.protocols.iter().enumerate() {
        if !KNOWN_PROTOCOLS.contains(&p.as_str()) {
            return Some((
                vec![Key::from("eval"), Key::from("protocols"), Key::Index(i)],
                format!("eval.protocols: unknown protocol \"{p}\"; expected one of {KNOWN_PROTOCOLS:?}"),
            ));
        }
    }
    if e.lfw.folds < 2 {
        return Some((
            vec![Key::from("eval"), Key::from("lfw"), Key::from("folds")],
            "eval.lfw.folds: expected at least 2 folds".into(),
        ));
    }
    if e.lfw.pairs_per_fold == 0 {
        return Some((
            vec![Key::from("eval"), Key::from("lfw"), Key::from("pairs_per_fold")],
            "eval.lfw.pairs_per_fold: expected at least 1".into(),
        ));
    }
    None
}
