//! The experiment file's tables as typed structs (`deny_unknown_fields` everywhere), with
//! defaults, and the value checks that serde cannot express.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn default_image_size() -> usize {
    32
}
fn default_channels() -> usize {
    1
}

/// Real face data (`kind = "folder"` or `"recordio"`) defaults to insightface's 112×112 RGB
/// crops rather than the synthetic 32×32 grey: fills `data.image_size` and `data.channels` into
/// the experiment's table where it leaves them out; `true` when it did.
pub fn real_data_defaults(experiment: &mut toml::Table) -> bool {
    let Some(data) = experiment.get_mut("data").and_then(toml::Value::as_table_mut) else { return false };
    if !matches!(data.get("kind").and_then(toml::Value::as_str), Some("folder" | "recordio")) {
        return false;
    }
    let mut filled = false;
    for (key, value) in [("image_size", 112), ("channels", 3)] {
        if !data.contains_key(key) {
            data.insert(key.into(), toml::Value::Integer(value));
            filled = true;
        }
    }
    filled
}
fn default_difficulty() -> f64 {
    0.5
}

/// Where training images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// The built-in procedural identities.
    Synthetic,
    /// A directory with one sub-directory of images per identity.
    Folder,
    /// insightface's MXNet RecordIO pack: `train.rec`, `train.idx` (and `property`) in a directory.
    Recordio,
}

/// `data.on_bad_image`: what an unreadable or undecodable training image does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BadImagePolicy {
    /// The trial stops with the file and the record or byte offset.
    #[default]
    Stop,
    /// The image is left out of its batch and counted in status.json.
    Skip,
}

impl BadImagePolicy {
    fn is_stop(&self) -> bool {
        *self == BadImagePolicy::Stop
    }
}

/// `[data.augment]`: random transformations of training images, drawn per (seed, epoch, image).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentSpec {
    /// Mirror left–right with probability ½.
    #[serde(default)]
    pub flip: bool,
    /// A random square crop whose side is this fraction of the image (`[lo, hi]`, drawn
    /// uniformly), anywhere in the image, resized back to `image_size`. Absent: no crop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<[f64; 2]>,
}

fn default_prefetch() -> usize {
    4
}
fn is_default_prefetch(v: &usize) -> bool {
    *v == default_prefetch()
}
fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn default_data_kind() -> DataKind {
    DataKind::Synthetic
}

/// `[data]`: the built-in synthetic identities, or an image folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    #[serde(default = "default_data_kind")]
    pub kind: DataKind,
    /// For `kind = "folder"`: the directory `<path>/<identity>/<image>.{jpg,png}`; for
    /// `kind = "recordio"`: the directory holding `train.rec` and `train.idx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
    /// Training identities (classes); for a folder, the first this many identity directories by name.
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
    /// Unreadable training images: stop the trial (default) or skip them.
    #[serde(default, skip_serializing_if = "BadImagePolicy::is_stop")]
    pub on_bad_image: BadImagePolicy,
    /// Random flip / crop of training images (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<AugmentSpec>,
    /// Threads decoding and augmenting training images ahead of the step; 0 = all cores.
    /// An execution setting: left out of trial ids.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub workers: usize,
    /// Batches decoded ahead of the training step (the bound of the prefetch queue). An
    /// execution setting: left out of trial ids.
    #[serde(default = "default_prefetch", skip_serializing_if = "is_default_prefetch")]
    pub prefetch: usize,
}

fn default_widths() -> Vec<usize> {
    vec![16, 32, 64]
}
fn default_embedding() -> usize {
    64
}

/// `model.backbone`: the network before the embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backbone {
    /// conv3×3 → BN → ReLU → max-pool stages of `model.widths` channels.
    #[default]
    Cnn,
    /// insightface's IResNet (ArcFace's LResNetxxE-IR) with 18, 34, 50, 100 layers.
    Iresnet18,
    Iresnet34,
    Iresnet50,
    Iresnet100,
    /// MobileFaceNet (Chen et al. 2018, Table 1).
    Mobilefacenet,
    /// insightface's `mbf` (arcface_torch's `get_mbf`): a wider MobileFaceNet variant.
    Mbf,
}

impl Backbone {
    pub fn is_cnn(&self) -> bool {
        *self == Backbone::Cnn
    }

    /// 18, 34, 50 or 100 for an IResNet.
    pub fn iresnet_depth(self) -> Option<usize> {
        match self {
            Backbone::Iresnet18 => Some(18),
            Backbone::Iresnet34 => Some(34),
            Backbone::Iresnet50 => Some(50),
            Backbone::Iresnet100 => Some(100),
            Backbone::Cnn | Backbone::Mobilefacenet | Backbone::Mbf => None,
        }
    }

    /// The name the experiment file uses.
    pub fn name(self) -> &'static str {
        match self {
            Backbone::Cnn => "cnn",
            Backbone::Iresnet18 => "iresnet18",
            Backbone::Iresnet34 => "iresnet34",
            Backbone::Iresnet50 => "iresnet50",
            Backbone::Iresnet100 => "iresnet100",
            Backbone::Mobilefacenet => "mobilefacenet",
            Backbone::Mbf => "mbf",
        }
    }
}

/// `[model]`: the backbone and the embedding layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default, skip_serializing_if = "Backbone::is_cnn")]
    pub backbone: Backbone,
    /// `cnn` only: channels of each stage; every stage halves the resolution.
    #[serde(default = "default_widths")]
    pub widths: Vec<usize>,
    /// Embedding dimension D.
    #[serde(default = "default_embedding")]
    pub embedding: usize,
    /// Partial FC (insightface's `sample_rate`): each step computes the loss over every class in
    /// the batch and uniformly drawn others, ⌊rate·C⌋ in all; 1 uses every class.
    #[serde(default = "default_sample_rate", skip_serializing_if = "is_one")]
    pub sample_rate: f64,
}

fn default_sample_rate() -> f64 {
    1.0
}

fn is_one(x: &f64) -> bool {
    *x == 1.0
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            backbone: Backbone::Cnn,
            widths: default_widths(),
            embedding: default_embedding(),
            sample_rate: default_sample_rate(),
        }
    }
}

impl ModelSpec {
    /// The class centres each step samples under Partial FC out of `classes` (insightface:
    /// `int(sample_rate * num_classes)`; the batch's own classes are kept even beyond it).
    pub fn sampled_classes(&self, classes: usize) -> usize {
        ((self.sample_rate * classes as f64) as usize).min(classes)
    }
}

/// Where a network runs: `auto` (CUDA when libtorch sees a GPU), `cpu` or `cuda`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
    /// Checkpoint every this many steps (and at every epoch end); 0 = epoch ends only.
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Memory layout of images and convolution weights; `auto` picks the faster one per device.
    #[serde(default)]
    pub memory_format: MemoryFormat,
    /// `fp32`, or `amp`: the backbone under autocast (float16 on CUDA with gradient scaling,
    /// bfloat16 on the CPU), the losses and cosines in float32.
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    /// Dynamic loss scaling (GradScaler's rule): `auto` scales exactly when float16 runs (`amp`
    /// on CUDA), `on` always (also on the CPU), `off` never.
    #[serde(default, skip_serializing_if = "LossScaling::is_auto")]
    pub loss_scaling: LossScaling,
    /// The loss scale's start (GradScaler's `init_scale`).
    #[serde(default = "default_init_scale", skip_serializing_if = "is_default_init_scale")]
    pub scaler_init_scale: f64,
    /// Good steps in a row after which the loss scale doubles (GradScaler's `growth_interval`:
    /// 2,000 in PyTorch, 100 in insightface's arcface_torch).
    #[serde(default = "default_growth_interval", skip_serializing_if = "is_default_growth_interval")]
    pub scaler_growth_interval: usize,
    /// Clip the backbone's gradient norm to this before each step, as
    /// `torch.nn.utils.clip_grad_norm_` (insightface's arcface_torch clips at 5); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
}

fn default_init_scale() -> f64 {
    65536.0
}

fn is_default_init_scale(x: &f64) -> bool {
    *x == default_init_scale()
}

fn default_growth_interval() -> usize {
    2000
}

fn is_default_growth_interval(n: &usize) -> bool {
    *n == default_growth_interval()
}

/// `train.loss_scaling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossScaling {
    #[default]
    Auto,
    On,
    Off,
}

impl LossScaling {
    pub fn is_auto(&self) -> bool {
        *self == LossScaling::Auto
    }
}

/// `train.precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Amp,
}

impl Precision {
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }
}

/// `train.memory_format`: how images and 4-D convolution weights are laid out in memory. The
/// values are the same either way; only the kernels' summation order (hence rounding) differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryFormat {
    /// `channels_last` on every device (on this project's 2-core CPU it is the faster one;
    /// see README, Benchmarks; on CUDA it is what cuDNN's tensor-core convolutions prefer).
    #[default]
    Auto,
    /// NHWC memory behind NCHW-shaped tensors.
    ChannelsLast,
    /// PyTorch's default NCHW layout.
    Contiguous,
}

impl MemoryFormat {
    /// Whether training runs channels-last on this device.
    pub fn channels_last(self) -> bool {
        !matches!(self, MemoryFormat::Contiguous)
    }
}

/// A scalar or a list of them (a sweep axis).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn values(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Label-noise kinds: `flip` (closed set: the label becomes another training identity's),
/// `outlier` (open set: the image is replaced by one of an identity outside the training set,
/// label kept), `mixed` (half and half). `none` is what a ratio of 0 resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseKind {
    None,
    Flip,
    Outlier,
    Mixed,
}

fn default_noise_kind() -> OneOrMany<NoiseKind> {
    OneOrMany::One(NoiseKind::Flip)
}
fn default_outlier_identities() -> usize {
    100
}

/// `[noise]`: label noise on the training set; `ratio` and `kind` are global sweep axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseSpec {
    /// Fraction of training images made noisy (a number or a list).
    pub ratio: OneOrMany<f64>,
    #[serde(default = "default_noise_kind")]
    pub kind: OneOrMany<NoiseKind>,
    /// Which images are noisy, and how, follows from this seed; the same for every loss.
    #[serde(default)]
    pub seed: u64,
    /// Identities outside training and held-out sets that outlier images are drawn from.
    #[serde(default = "default_outlier_identities")]
    pub outlier_identities: usize,
}

/// The noise of one trial.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseSetting {
    pub kind: NoiseKind,
    pub ratio: f64,
    pub seed: u64,
    pub outlier_identities: usize,
}

impl NoiseSetting {
    pub const CLEAN: NoiseSetting = NoiseSetting { kind: NoiseKind::None, ratio: 0.0, seed: 0, outlier_identities: 0 };

    pub fn is_clean(&self) -> bool {
        self.kind == NoiseKind::None
    }

    /// `flip0.2`, `outlier0.4`, `none`.
    pub fn label(&self) -> String {
        match self.kind {
            NoiseKind::None => "none".into(),
            kind => format!("{}{}", format!("{kind:?}").to_lowercase(), crate::loss::format_float(self.ratio)),
        }
    }
}

/// The flip test of feature extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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

fn default_distance() -> String {
    "squared-l2".into()
}
fn default_lfw_thresholds() -> String {
    "0:4:0.01".into()
}

/// `[eval.lfw]`: LFW verification, built-in (pairs over the held-out identities) or on real files
/// (`pairs` + `images`, or a `bin` pack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LfwSpec {
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Matched pairs per fold (and as many mismatched), as in LFW View 2 (300).
    #[serde(default = "default_pairs_per_fold")]
    pub pairs_per_fold: usize,
    /// "squared-l2" (insightface) or "cosine".
    #[serde(default = "default_distance")]
    pub distance: String,
    /// Threshold grid `start:stop:step` (stop excluded).
    #[serde(default = "default_lfw_thresholds")]
    pub thresholds: String,
    /// Real protocol: LFW View 2 pairs.txt (with `images`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<std::path::PathBuf>,
    /// Real protocol: the LFW-layout image directory `<name>/<name>_0001.jpg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<std::path::PathBuf>,
    /// Real protocol: an insightface .bin pack (lfw.bin, cfp_fp.bin, agedb_30.bin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin: Option<std::path::PathBuf>,
}

impl Default for LfwSpec {
    fn default() -> Self {
        LfwSpec {
            folds: default_folds(),
            pairs_per_fold: default_pairs_per_fold(),
            distance: default_distance(),
            thresholds: default_lfw_thresholds(),
            pairs: None,
            images: None,
            bin: None,
        }
    }
}

fn default_megaface_far() -> f64 {
    1e-6
}
fn default_at_most() -> String {
    "at-most".into()
}
fn default_nearest() -> String {
    "nearest".into()
}

/// `[eval.megaface]`: MegaFace Challenge 1, built-in (probe identities and distractors from the
/// held-out identities) or on real files (devkit lists of aligned images).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MegafaceSpec {
    /// Built-in: held-out identities used as probes (default: a fifth of them, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_identities: Option<usize>,
    /// FAR of the TAR read-out.
    #[serde(default = "default_megaface_far")]
    pub far: f64,
    /// "at-most" (highest TAR with FAR ≤ target) or "nearest" (nearest ROC point).
    #[serde(default = "default_at_most")]
    pub far_readout: String,
    /// Real protocol: the FaceScrub probe list (JSON with "id" and "path").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<std::path::PathBuf>,
    /// Real protocol: distractor lists (JSON with "path"), one per size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distractors: Vec<std::path::PathBuf>,
    /// Real protocol: the root the probe list's paths are relative to (aligned images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_images: Option<std::path::PathBuf>,
    /// Real protocol: the root the distractor lists' paths are relative to (aligned images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distractor_images: Option<std::path::PathBuf>,
    /// Cleaned variant: insightface's facescrub_noises.txt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_noise: Option<std::path::PathBuf>,
    /// Cleaned variant: insightface's megaface_noises.txt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distractor_noise: Option<std::path::PathBuf>,
}

impl Default for MegafaceSpec {
    fn default() -> Self {
        MegafaceSpec {
            probe_identities: None,
            far: default_megaface_far(),
            far_readout: default_at_most(),
            probes: None,
            distractors: Vec::new(),
            probe_images: None,
            distractor_images: None,
            probe_noise: None,
            distractor_noise: None,
        }
    }
}

fn default_templates_per_identity() -> usize {
    3
}
fn default_max_media_size() -> usize {
    3
}
fn default_max_impostor_pairs() -> usize {
    200_000
}

/// `[eval.ijbc]`: IJB-C 1:1 and 1:N, built-in (templates from the held-out identities) or on
/// real files (the meta directory and the loose-crop images, aligned by their five landmarks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IjbcSpec {
    /// Built-in: templates per identity (the first enrols in a gallery, the others are probes).
    #[serde(default = "default_templates_per_identity")]
    pub templates_per_identity: usize,
    /// Built-in: images per media are drawn from 1..=max_media_size.
    #[serde(default = "default_max_media_size")]
    pub max_media_size: usize,
    /// Built-in: every impostor template pair up to this many, else a seeded sample of this many.
    #[serde(default = "default_max_impostor_pairs")]
    pub max_impostor_pairs: usize,
    /// "nearest" (insightface) or "at-most".
    #[serde(default = "default_nearest")]
    pub far_readout: String,
    /// Keep image feature norms when pooling (default: normalise each image first).
    #[serde(default)]
    pub keep_norm: bool,
    /// Real protocol: weight images by their detector score.
    #[serde(default)]
    pub detector_scores: bool,
    /// Real protocol: the meta directory (ijbc_face_tid_mid.txt, ijbc_name_5pts_score.txt, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<std::path::PathBuf>,
    /// Real protocol: the image directory the names of ijbc_name_5pts_score.txt are in (loose_crop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<std::path::PathBuf>,
}

impl Default for IjbcSpec {
    fn default() -> Self {
        IjbcSpec {
            templates_per_identity: default_templates_per_identity(),
            max_media_size: default_max_media_size(),
            max_impostor_pairs: default_max_impostor_pairs(),
            far_readout: default_nearest(),
            keep_norm: false,
            detector_scores: false,
            meta: None,
            images: None,
        }
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
    /// Bootstrap resamples of the held-out identities behind each metric's 95 % interval
    /// (0: no intervals). Not part of a trial's id.
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
    #[serde(default)]
    pub lfw: LfwSpec,
    #[serde(default)]
    pub megaface: MegafaceSpec,
    #[serde(default)]
    pub ijbc: IjbcSpec,
    /// `[eval.bins]`: more insightface .bin verification sets by name (`cfp_fp = "cfp_fp.bin"`,
    /// `agedb_30 = "agedb_30.bin"`), each scored as `eval.lfw.bin` is (k-fold accuracy, same
    /// options) and reported as a protocol of its own, as insightface's training callback verifies
    /// on several at once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bins: BTreeMap<String, std::path::PathBuf>,
}

impl Default for EvalSpec {
    fn default() -> Self {
        EvalSpec {
            protocols: default_protocols(),
            every_epochs: 0,
            flip: default_flip(),
            bootstrap: default_bootstrap(),
            lfw: LfwSpec::default(),
            megaface: MegafaceSpec::default(),
            ijbc: IjbcSpec::default(),
            bins: BTreeMap::new(),
        }
    }
}

fn default_bootstrap() -> usize {
    1000
}

/// Protocols `[eval] protocols` may name.
pub const KNOWN_PROTOCOLS: &[&str] = &["lfw", "megaface", "ijbc"];

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
    pub noise: Option<NoiseSpec>,
    /// `[sweep]`: dotted spec keys with lists of values (and `zip` groups); read by the expander.
    pub sweep: Option<toml::Table>,
    pub select: Option<SelectSpec>,
    /// `[report]`: how `report` compares the settings (read back from experiment.toml).
    pub report: Option<ReportSpec>,
}

/// Which comparisons the report's Comparisons section makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparisons {
    /// Every setting against the baseline.
    #[default]
    Baseline,
    /// Every pair of settings.
    All,
}

/// What the cells of tables.tex show beside the mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatexCells {
    /// `mean [lo, hi]`: the 95 % interval.
    #[default]
    Interval,
    /// `mean ± std` over seeds.
    Std,
}

/// `[report]`: the report's comparisons and its LaTeX tables. Changes no trial.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// The setting every other is compared with: a loss name (its first setting) or a setting
    /// as the report labels it (`cosface m=0.35, s=30, train.lr=0.1`). Default: P2SGrad's
    /// setting when it ran, else the best on the first protocol's headline metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    #[serde(default)]
    pub comparisons: Comparisons,
    #[serde(default)]
    pub latex_cells: LatexCells,
}

impl RawExperiment {
    /// Makes every relative path of the file (data, protocol files) relative to `dir`, the
    /// experiment file's directory, so a run does not depend on the working directory.
    pub fn anchor_paths(&mut self, dir: &std::path::Path) {
        let anchor = |p: &mut std::path::PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        let (lfw, mega, ijbc) = (&mut self.eval.lfw, &mut self.eval.megaface, &mut self.eval.ijbc);
        let singles = [
            &mut self.data.path,
            &mut lfw.pairs,
            &mut lfw.images,
            &mut lfw.bin,
            &mut mega.probes,
            &mut mega.probe_images,
            &mut mega.distractor_images,
            &mut mega.probe_noise,
            &mut mega.distractor_noise,
            &mut ijbc.meta,
            &mut ijbc.images,
        ];
        singles.into_iter().flatten().for_each(anchor);
        mega.distractors.iter_mut().for_each(anchor);
        self.eval.bins.values_mut().for_each(anchor);
    }

    /// Training images the data yields at most (a folder may hold fewer).
    pub fn training_images(&self) -> usize {
        self.data.identities * self.data.images_per_identity
    }
}

/// Whether a larger or a smaller value of the selection metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    #[default]
    Max,
    Min,
}

/// `[select]`: tune on validation, report on test (Musgrave et al., "A Metric Learning Reality
/// Check", ECCV 2020). The held-out identities are split into validation and test identities;
/// the search trials (every setting × `train.seeds`) are evaluated on validation only; per loss
/// (and per value of the swept keys that are not tuned: the conditions) the setting with the
/// best mean validation metric is trained again on `seeds` and evaluated on test only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectSpec {
    /// `<protocol>/<metric>` on the validation identities, e.g. "lfw/accuracy_mean".
    pub metric: String,
    #[serde(default)]
    pub goal: Goal,
    /// The swept keys chosen on validation: loss parameters by name (`s`, `m`), spec keys dotted
    /// (`train.lr`). Every other swept key is a condition, selected within.
    pub tune: Vec<String>,
    /// Seeds of the final trials, disjoint from `train.seeds`.
    pub seeds: Vec<u64>,
    /// Held-out identities used for validation (the first ones); the rest are the test identities.
    /// Default: half of `data.heldout_identities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_identities: Option<usize>,
    /// How the search spends its epochs: every setting trained to the end, or successive halving.
    #[serde(default)]
    pub method: SearchMethod,
    /// Successive halving's reduction factor η: at each rung the best 1/η of a group's settings
    /// go on (at least one).
    #[serde(default = "default_eta")]
    pub eta: usize,
    /// Successive halving's first rung, in epochs; the rungs are `min_epochs`·η^k below the
    /// trial's `train.epochs`, and `train.epochs` itself.
    #[serde(default = "default_min_epochs")]
    pub min_epochs: usize,
}

fn default_eta() -> usize {
    3
}

fn default_min_epochs() -> usize {
    1
}

/// How `[select]` searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    /// Every setting trained for its full `train.epochs`.
    #[default]
    Grid,
    /// Successive halving (Jamieson & Talwalkar 2016; asynchronous across groups and shards as
    /// in ASHA, Li et al. 2020): settings stop at rungs unless among the best 1/η there.
    Halving,
}

impl SelectSpec {
    /// (protocol, metric) of `metric`.
    pub fn protocol_metric(&self) -> Option<(&str, &str)> {
        self.metric.split_once('/')
    }

    /// Validation identities for `heldout` held-out identities.
    pub fn validation_identities(&self, heldout: usize) -> usize {
        self.validation_identities.unwrap_or(heldout / 2)
    }

    /// The rungs of a trial of `epochs` epochs under halving, in epochs: `min_epochs`·η^k below
    /// `epochs`, then `epochs`; `[epochs]` under the grid.
    pub fn rungs(&self, epochs: usize) -> Vec<usize> {
        let mut rungs = Vec::new();
        if self.method == SearchMethod::Halving {
            let mut r = self.min_epochs.max(1);
            while r < epochs {
                rungs.push(r);
                r = r.saturating_mul(self.eta.max(2));
            }
        }
        rungs.push(epochs);
        rungs
    }
}

/// Which part of the held-out identities a trial is evaluated on, under `[select]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    pub part: SplitPart,
    /// The first this many held-out identities are the validation identities; the rest are test.
    pub validation_identities: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitPart {
    /// A search trial: evaluated on the validation identities.
    Validation,
    /// A final trial of a setting chosen on validation: evaluated on the test identities.
    Test,
}

impl SplitPart {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitPart::Validation => "validation",
            SplitPart::Test => "test",
        }
    }
}

/// A value check: the key path (within the file) and what is expected, or `None` if fine.
pub type Violation = (Vec<super::error::Key>, String);

/// Checks the values serde accepted but the harness cannot use.
/// With `files`, paths named in the file must exist (`run`); without, only their form is
/// checked (`--dry-run`, so a set-up for another machine validates here).
pub fn check_values(raw: &RawExperiment, files: bool) -> Option<Violation> {
    use super::error::Key;
    let at = |table: &str, key: &str, msg: &str| Some((vec![Key::from(table), Key::from(key)], msg.to_string()));
    let name_ok = !raw.name.is_empty() && raw.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Some((
            vec![Key::from("name")],
            "name: expected a non-empty name of letters, digits, '-' and '_' (it names the results directory)".into(),
        ));
    }
    // The loss blocks are checked with the whole file (a sweep's combinations come without them).
    if let Some(baseline) = raw.report.as_ref().and_then(|r| r.baseline.as_deref()).filter(|_| !raw.losses.is_empty()) {
        let losses: Vec<&str> = raw.losses.iter().filter_map(|l| l.get("name")?.as_str()).collect();
        let named = |l: &&str| baseline == *l || baseline.strip_prefix(*l).is_some_and(|rest| rest.starts_with(' '));
        if !losses.iter().any(named) {
            return at(
                "report",
                "baseline",
                &format!(
                    "report.baseline: expected one of the file's losses ({}) or one of their settings, found \"{baseline}\"",
                    losses.join(", ")
                ),
            );
        }
    }
    let d = &raw.data;
    if d.identities < 2 {
        return at("data", "identities", "data.identities: expected at least 2 training identities");
    }
    // Held-out identities feed the built-in protocols (and [select]'s split); with every
    // protocol on real files, none is needed and every identity can train.
    let e = &raw.eval;
    let on_real_files = |p: &String| match p.as_str() {
        "lfw" => e.lfw.pairs.is_some() || e.lfw.bin.is_some(),
        "megaface" => e.megaface.probes.is_some(),
        "ijbc" => e.ijbc.meta.is_some(),
        _ => false,
    };
    let all_real = e.protocols.iter().all(on_real_files) && raw.select.is_none();
    if d.heldout_identities == 1 || (d.heldout_identities == 0 && !all_real) {
        return at(
            "data",
            "heldout_identities",
            "data.heldout_identities: expected at least 2 held-out identities (0 only when every [eval] protocol runs on real files and there is no [select])",
        );
    }
    match (d.kind, &d.path) {
        (DataKind::Synthetic, Some(_)) => {
            return at(
                "data",
                "path",
                "data.path: only for kind = \"folder\" or \"recordio\"; synthetic data needs no files",
            )
        }
        (DataKind::Folder, None) => {
            return at(
                "data",
                "kind",
                "data.path: kind = \"folder\" needs path = \"<dir with one sub-directory per identity>\"",
            )
        }
        (DataKind::Folder, Some(p)) if files && !p.is_dir() => {
            return at("data", "path", &format!("data.path: {} is not a directory", p.display()))
        }
        (DataKind::Recordio, None) => {
            return at(
                "data",
                "kind",
                "data.path: kind = \"recordio\" needs path = \"<dir with train.rec and train.idx>\"",
            )
        }
        (DataKind::Recordio, Some(p)) if files => {
            for file in ["train.rec", "train.idx"] {
                if !p.join(file).is_file() {
                    return at("data", "path", &format!("data.path: {} has no {file}", p.display()));
                }
            }
        }
        _ => {}
    }
    if d.kind != DataKind::Synthetic
        && raw.noise.as_ref().is_some_and(|n| n.kind.values().iter().any(|k| *k != NoiseKind::Flip))
    {
        return at(
            "noise",
            "kind",
            "noise.kind: outlier noise renders synthetic identities; with folder or recordio data use \"flip\"",
        );
    }
    if let Some([lo, hi]) = d.augment.and_then(|a| a.crop) {
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Some((
                vec![Key::from("data"), Key::from("augment"), Key::from("crop")],
                format!("data.augment.crop: [{lo}, {hi}]; expected [lo, hi] with 0 < lo <= hi <= 1 (fractions of the image side)"),
            ));
        }
    }
    if d.prefetch == 0 {
        return at("data", "prefetch", "data.prefetch: expected at least 1 batch");
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
    if !m.backbone.is_cnn() && m.widths != default_widths() {
        return at(
            "model",
            "widths",
            "model.widths: only for backbone = \"cnn\"; the other backbones have fixed widths",
        );
    }
    if !m.backbone.is_cnn() && d.image_size < 16 {
        return at(
            "data",
            "image_size",
            &format!(
                "data.image_size: backbone \"{}\" halves the resolution four times; expected at least 16 (112 is its design size)",
                m.backbone.name()
            ),
        );
    }
    if m.widths.is_empty() || m.widths.contains(&0) {
        return at("model", "widths", "model.widths: expected a non-empty list of positive channel counts");
    }
    if m.embedding < 2 {
        return at("model", "embedding", "model.embedding: expected an embedding dimension of at least 2");
    }
    if !(m.sample_rate > 0.0 && m.sample_rate <= 1.0) {
        return at(
            "model",
            "sample_rate",
            &format!("model.sample_rate: expected a fraction of the classes in (0, 1], found {}", m.sample_rate),
        );
    }
    if m.backbone.is_cnn() && d.image_size >> m.widths.len() == 0 {
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
    if !(t.scaler_init_scale.is_finite() && t.scaler_init_scale > 0.0) {
        return at("train", "scaler_init_scale", "train.scaler_init_scale: expected a positive number");
    }
    if t.scaler_growth_interval == 0 {
        return at("train", "scaler_growth_interval", "train.scaler_growth_interval: expected at least 1 step");
    }
    if let Some(c) = t.clip_grad_norm.filter(|c| !(c.is_finite() && *c > 0.0)) {
        return at("train", "clip_grad_norm", &format!("train.clip_grad_norm: expected a positive norm, found {c}"));
    }
    if t.batch_size < 2 {
        return at(
            "train",
            "batch_size",
            "train.batch_size: expected at least 2 (BatchNorm in training mode maps a batch of one to its bias)",
        );
    }
    if d.kind == DataKind::Synthetic && t.batch_size > raw.training_images() {
        return at(
            "train",
            "batch_size",
            &format!(
                "train.batch_size: {} is more than the {} training images (data.identities × data.images_per_identity)",
                t.batch_size,
                raw.training_images()
            ),
        );
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
    if let Some(noise) = &raw.noise {
        let ratios = noise.ratio.values();
        if ratios.is_empty() {
            return at("noise", "ratio", "noise.ratio: expected a fraction or a non-empty list of fractions");
        }
        if let Some(i) = ratios.iter().position(|r| !(0.0..1.0).contains(r)) {
            return Some((
                vec![Key::from("noise"), Key::from("ratio"), Key::Index(i)],
                format!("noise.ratio: expected a fraction 0 <= ratio < 1, found {}", ratios[i]),
            ));
        }
        let kinds = noise.kind.values();
        if kinds.is_empty() || kinds.contains(&NoiseKind::None) {
            return at(
                "noise",
                "kind",
                "noise.kind: expected \"flip\", \"outlier\", \"mixed\" or a non-empty list of them",
            );
        }
        if noise.outlier_identities == 0 {
            return at("noise", "outlier_identities", "noise.outlier_identities: expected at least 1");
        }
    }
    check_eval(raw, files)
}

/// The `[eval]` part of [`check_values`].
fn check_eval(raw: &RawExperiment, files: bool) -> Option<Violation> {
    use super::error::Key;
    let at = |keys: &[&str], msg: String| Some((keys.iter().map(|k| Key::from(*k)).collect::<Vec<_>>(), msg));
    let e = &raw.eval;
    for (i, p) in e.protocols.iter().enumerate() {
        if !KNOWN_PROTOCOLS.contains(&p.as_str()) {
            return Some((
                vec![Key::from("eval"), Key::from("protocols"), Key::Index(i)],
                format!("eval.protocols: unknown protocol \"{p}\"; expected one of {KNOWN_PROTOCOLS:?}"),
            ));
        }
        if e.protocols[..i].contains(p) {
            return Some((
                vec![Key::from("eval"), Key::from("protocols"), Key::Index(i)],
                format!("eval.protocols: \"{p}\" is listed twice"),
            ));
        }
    }
    let missing = |p: &std::path::Path| files && !p.exists();
    let l = &e.lfw;
    if l.folds < 2 {
        return at(&["eval", "lfw", "folds"], "eval.lfw.folds: expected at least 2 folds".into());
    }
    if l.pairs_per_fold == 0 {
        return at(&["eval", "lfw", "pairs_per_fold"], "eval.lfw.pairs_per_fold: expected at least 1".into());
    }
    if !["squared-l2", "cosine"].contains(&l.distance.as_str()) {
        return at(
            &["eval", "lfw", "distance"],
            format!("eval.lfw.distance: \"{}\"; expected \"squared-l2\" or \"cosine\"", l.distance),
        );
    }
    if let Err(msg) = threshold_grid(&l.thresholds) {
        return at(&["eval", "lfw", "thresholds"], format!("eval.lfw.thresholds: {msg}"));
    }
    match (&l.pairs, &l.images, &l.bin) {
        (Some(_), None, _) => {
            return at(&["eval", "lfw", "pairs"], "eval.lfw.pairs: also give images = \"<LFW image directory>\"".into())
        }
        (None, Some(_), _) => {
            return at(&["eval", "lfw", "images"], "eval.lfw.images: also give pairs = \"<pairs.txt>\"".into())
        }
        (Some(_), Some(_), Some(_)) => {
            return at(
                &["eval", "lfw", "bin"],
                "eval.lfw.bin: give either a .bin pack or pairs + images, not both".into(),
            )
        }
        _ => {}
    }
    for (name, path) in &e.bins {
        let taken = KNOWN_PROTOCOLS.contains(&name.as_str());
        let well_formed = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if taken || !well_formed {
            return at(
                &["eval", "bins", name.as_str()],
                format!("eval.bins.{name}: expected a name of letters, digits and '_' other than {KNOWN_PROTOCOLS:?} (e.g. cfp_fp)"),
            );
        }
        if missing(path) {
            return at(
                &["eval", "bins", name.as_str()],
                format!("eval.bins.{name}: {} does not exist", path.display()),
            );
        }
    }
    for (key, path) in [("pairs", &l.pairs), ("images", &l.images), ("bin", &l.bin)] {
        if let Some(p) = path.as_deref().filter(|p| missing(p)) {
            return at(&["eval", "lfw", key], format!("eval.lfw.{key}: {} does not exist", p.display()));
        }
    }
    let m = &e.megaface;
    // (Without held-out identities no built-in protocol runs: nothing to split.)
    if let Some(k) = m.probe_identities.filter(|_| raw.data.heldout_identities > 0) {
        if k == 0 || k >= raw.data.heldout_identities {
            return at(
                &["eval", "megaface", "probe_identities"],
                format!(
                    "eval.megaface.probe_identities: expected 1 to {} (data.heldout_identities - 1: the rest are distractors)",
                    raw.data.heldout_identities - 1
                ),
            );
        }
    }
    if !(m.far > 0.0 && m.far < 1.0) {
        return at(
            &["eval", "megaface", "far"],
            "eval.megaface.far: expected a rate between 0 and 1, e.g. 1e-6".into(),
        );
    }
    for (table, value) in [("megaface", &m.far_readout), ("ijbc", &e.ijbc.far_readout)] {
        if !["nearest", "at-most"].contains(&value.as_str()) {
            return at(
                &["eval", table, "far_readout"],
                format!("eval.{table}.far_readout: \"{value}\"; expected \"nearest\" or \"at-most\""),
            );
        }
    }
    let real_megaface =
        m.probes.is_some() || !m.distractors.is_empty() || m.probe_images.is_some() || m.distractor_images.is_some();
    if real_megaface {
        for (key, given) in [
            ("probes", m.probes.is_some()),
            ("distractors", !m.distractors.is_empty()),
            ("probe_images", m.probe_images.is_some()),
            ("distractor_images", m.distractor_images.is_some()),
        ] {
            if !given {
                return at(
                    &["eval", "megaface"],
                    format!("eval.megaface.{key}: missing; the real protocol needs probes, distractors, probe_images and distractor_images"),
                );
            }
        }
        if m.distractors.len() > 8 {
            return at(&["eval", "megaface", "distractors"], "eval.megaface.distractors: at most 8 lists".into());
        }
    }
    let singles = [
        ("probes", &m.probes),
        ("probe_images", &m.probe_images),
        ("distractor_images", &m.distractor_images),
        ("probe_noise", &m.probe_noise),
        ("distractor_noise", &m.distractor_noise),
    ];
    for (key, path) in singles {
        if let Some(p) = path.as_deref().filter(|p| missing(p)) {
            return at(&["eval", "megaface", key], format!("eval.megaface.{key}: {} does not exist", p.display()));
        }
    }
    for (i, p) in m.distractors.iter().enumerate() {
        if missing(p) {
            return Some((
                vec![Key::from("eval"), Key::from("megaface"), Key::from("distractors"), Key::Index(i)],
                format!("eval.megaface.distractors: {} does not exist", p.display()),
            ));
        }
    }
    let j = &e.ijbc;
    let builtin_ijbc = e.protocols.iter().any(|p| p == "ijbc") && j.meta.is_none();
    if j.templates_per_identity < 2 || (builtin_ijbc && j.templates_per_identity > raw.data.images_per_identity) {
        return at(
            &["eval", "ijbc", "templates_per_identity"],
            format!(
                "eval.ijbc.templates_per_identity: expected 2 to {} (data.images_per_identity): one template enrols, the others probe",
                raw.data.images_per_identity
            ),
        );
    }
    if j.max_media_size == 0 {
        return at(&["eval", "ijbc", "max_media_size"], "eval.ijbc.max_media_size: expected at least 1".into());
    }
    if j.max_impostor_pairs == 0 {
        return at(&["eval", "ijbc", "max_impostor_pairs"], "eval.ijbc.max_impostor_pairs: expected at least 1".into());
    }
    match (&j.meta, &j.images) {
        (Some(_), None) => {
            return at(
                &["eval", "ijbc", "meta"],
                "eval.ijbc.meta: also give images = \"<loose_crop directory>\"".into(),
            )
        }
        (None, Some(_)) => {
            return at(&["eval", "ijbc", "images"], "eval.ijbc.images: also give meta = \"<meta directory>\"".into())
        }
        _ => {}
    }
    if j.detector_scores && j.meta.is_none() {
        return at(
            &["eval", "ijbc", "detector_scores"],
            "eval.ijbc.detector_scores: only the real protocol (meta, images) has detector scores".into(),
        );
    }
    for (key, path) in [("meta", &j.meta), ("images", &j.images)] {
        if let Some(p) = path.as_deref().filter(|p| missing(p)) {
            return at(&["eval", "ijbc", key], format!("eval.ijbc.{key}: {} does not exist", p.display()));
        }
    }
    None
}

/// Checks a `start:stop:step` threshold grid.
fn threshold_grid(text: &str) -> Result<(), String> {
    let parts: Vec<f64> = text
        .split(':')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("\"{text}\": expected start:stop:step, e.g. \"0:4:0.01\""))?;
    match parts.as_slice() {
        &[start, stop, step] if step > 0.0 && stop > start && start.is_finite() && stop.is_finite() => Ok(()),
        _ => Err(format!("\"{text}\": expected start:stop:step with stop > start and step > 0")),
    }
}
