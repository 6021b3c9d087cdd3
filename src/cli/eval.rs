//! `p2sbench eval <protocol>`: scores features (a `.npy` file, devkit feature files) or a trained
//! trial on a protocol's real files and prints the metrics, as text or as one JSON object
//! `{"protocol": ..., "variant": {...}, "metrics": {...}}`.

use crate::data::images;
use crate::error::InputError;
use crate::extract::features::{extract_features, Embedder};
use crate::extract::onnx::OnnxModel;
use crate::extract::suite::Suite;
use crate::extract::trained;
use crate::metrics::lfw::{self, Distance, LfwOptions, ThresholdGrid};
use crate::metrics::megaface::formats::FeatureLayout;
use crate::metrics::megaface::run::{evaluate_files, MegafaceFiles};
use crate::metrics::megaface::MegafaceOptions;
use crate::metrics::roc::FarReadout;
use crate::metrics::{check_finite, ijbc, npy, Features, ProtocolResult};
use crate::spec::{DataSpec, DeviceChoice, EvalSpec, FlipMode, IjbcSpec, MegafaceSpec};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

const LFW_METRICS: &str = "Metrics: accuracy_mean, accuracy_std (fractions; k-fold accuracy over the pairs' folds).";
const MEGAFACE_METRICS: &str = "Metrics: rank1@distractors=N (rank-1 identification rate with each distractor list, \
N = the list's length), tar@far=1e-6 (TAR with the largest list).";
const IJBC_METRICS: &str = "Metrics: tar@far=1e-6 … tar@far=1e-1 and auc (1:1); with the 1:N files also rank1, \
rank5, rank10, tpir@fpir=1e-2, tpir@fpir=1e-1 (mean of galleries G1 and G2) and g1/…, g2/… (each gallery).";

/// The protocols.
#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// LFW-style 10-fold verification accuracy (also CFP-FP, AgeDB-30 as insightface .bin packs).
    ///
    /// Inputs, one of: --pairs with --features and --list (features of listed images);
    /// --pairs with --images and --model or --onnx (a trained trial or an ONNX model embeds the
    /// images of an LFW-layout directory <name>/<name>_0001.jpg); --bin with --model or --onnx
    /// (or with --features, rows in pack order). Default metric: insightface's (squared L2 on
    /// normalised features, thresholds 0.00..3.99, contiguous folds, first maximum on ties,
    /// population std).
    #[command(after_help = LFW_METRICS)]
    Lfw(LfwArgs),
    /// MegaFace Challenge 1: FaceScrub probes against distractor lists, per-image feature files
    /// or images embedded by --model or --onnx.
    ///
    /// Features are read from <root>/<path><suffix> for every path of the lists (the devkit's
    /// layout); with --model or --onnx, the lists' aligned images under --probe-images and
    /// --distractor-images are embedded instead (as an experiment's [eval.megaface] does).
    /// Rank-1: each probe against each other image of its identity added to the distractors. Give one --distractors list per size (10 … 1000000); they are scored in one
    /// streaming pass. --probe-noise / --distractor-noise select the cleaned variant.
    #[command(after_help = MEGAFACE_METRICS)]
    Megaface(MegafaceArgs),
    /// IJB-C 1:1 verification (and 1:N identification when the gallery/probe files are present).
    ///
    /// --features holds one row per line of ijbc_face_tid_mid.txt, in its order; with --model or
    /// --onnx, the loose crops under --images are aligned by their 5 landmarks
    /// (ijbc_name_5pts_score.txt) and embedded instead (as an experiment's [eval.ijbc] does).
    /// Image features are L2-normalised (unless --keep-norm), optionally weighted by detector
    /// score (--scores), averaged within media, summed over media and normalised per template.
    #[command(after_help = IJBC_METRICS)]
    Ijbc(IjbcArgs),
}

#[derive(Args, Debug)]
pub struct LfwArgs {
    /// LFW View 2 pairs.txt.
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Features (.npy, f32 [n, d]): row i is the image on line i of --list (or of the --bin pack).
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// Image list: one relative path (<name>/<name>_0001.jpg) per line.
    #[arg(long)]
    pub list: Option<PathBuf>,
    /// LFW-layout image directory (with --pairs and --model).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// insightface .bin pack (lfw.bin, cfp_fp.bin, agedb_30.bin).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Distance between features.
    #[arg(long, value_enum, default_value = "squared-l2")]
    pub distance: Distance,
    /// Threshold grid start:stop:step (stop excluded).
    #[arg(long, default_value = "0:4:0.01")]
    pub thresholds: ThresholdGrid,
    /// Folds (default: the pairs file's header; 10 for .bin packs).
    #[arg(long)]
    pub folds: Option<usize>,
    #[command(flatten)]
    pub model_opts: ModelOpts,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The network that embeds images, and how.
#[derive(Args, Debug, Clone)]
pub struct ModelOpts {
    /// A trained trial's directory (results/<experiment>/trials/<id>) to embed images with.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// An ONNX face model to embed images with (run by tract): one input N × C × H × W (H = W),
    /// one N × D output. Images are given as insightface's model zoo gives them: RGB,
    /// (x − 127.5) / 127.5, or 0..255 when the graph's first nodes subtract and scale (Sub… and
    /// Mul… names, the mxnet conversions).
    #[arg(long, conflicts_with = "model")]
    pub onnx: Option<PathBuf>,
    /// Flip test: none, sum (plain + flipped) or concat.
    #[arg(long, value_enum, default_value = "sum")]
    pub flip: FlipMode,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Device: auto (CUDA if available), cpu or cuda.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Also write the extracted features here (.npy); with --images, the image of each row goes to
    /// the same path with a .txt extension (a list for --features/--list). (LFW only.)
    #[arg(long)]
    pub export_features: Option<PathBuf>,
    /// MegaFace and IJB-C with a model: bootstrap resamples behind each metric's 95 % interval
    /// (probe identities; templates), as in an experiment's [eval]; 0: none.
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
}

#[derive(Args, Debug)]
pub struct MegafaceArgs {
    /// FaceScrub probe list (JSON with "id" and "path").
    #[arg(long)]
    pub probes: PathBuf,
    /// Distractor list (JSON with "path"); repeat for several sizes.
    #[arg(long, required = true)]
    pub distractors: Vec<PathBuf>,
    /// Feature root: probes under <root>/facescrub, distractors under <root>/megaface.
    #[arg(long)]
    pub features_root: Option<PathBuf>,
    /// Probe feature root (overrides <features-root>/facescrub).
    #[arg(long)]
    pub probe_root: Option<PathBuf>,
    /// Distractor feature root (overrides <features-root>/megaface).
    #[arg(long)]
    pub distractor_root: Option<PathBuf>,
    /// Appended to each list path to name its feature file (the devkit's file ending).
    #[arg(long, default_value = "_p2sbench.bin")]
    pub suffix: String,
    /// insightface facescrub_noises.txt: noisy probes are replaced by their identity's centre.
    #[arg(long)]
    pub probe_noise: Option<PathBuf>,
    /// insightface megaface_noises.txt: noisy distractors are removed.
    #[arg(long)]
    pub distractor_noise: Option<PathBuf>,
    /// FAR of the TAR read-out.
    #[arg(long, default_value_t = 1e-6)]
    pub far: f64,
    /// How TAR is read off the ROC curve.
    #[arg(long, value_enum, default_value = "at-most")]
    pub far_readout: FarReadout,
    /// Distractors per streamed block.
    #[arg(long, default_value_t = 4096)]
    pub block: usize,
    /// With --model or --onnx: the probes' aligned images (list paths are relative to it).
    #[arg(long)]
    pub probe_images: Option<PathBuf>,
    /// With --model or --onnx: the distractors' aligned images.
    #[arg(long)]
    pub distractor_images: Option<PathBuf>,
    #[command(flatten)]
    pub model_opts: ModelOpts,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IjbcArgs {
    /// The meta directory (ijbc_face_tid_mid.txt, ijbc_template_pair_label.txt, …; or its parent).
    #[arg(long)]
    pub meta: PathBuf,
    /// Image features (.npy, f32 [n, d]) in the order of ijbc_face_tid_mid.txt.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// With --model or --onnx: the loose crops named in ijbc_face_tid_mid.txt.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Weight each image by its detector score (ijbc_name_5pts_score.txt).
    #[arg(long)]
    pub scores: bool,
    /// Keep image feature norms (default: L2-normalise each image feature first).
    #[arg(long)]
    pub keep_norm: bool,
    /// How TAR is read off the ROC curve.
    #[arg(long, value_enum, default_value = "nearest")]
    pub far_readout: FarReadout,
    #[command(flatten)]
    pub model_opts: ModelOpts,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs an `eval` command.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    let (result, json) = match cmd {
        EvalCommand::Lfw(a) => {
            let json = a.json;
            (run_lfw(a)?, json)
        }
        EvalCommand::Megaface(a) => {
            let json = a.json;
            (run_megaface(a)?, json)
        }
        EvalCommand::Ijbc(a) => {
            let json = a.json;
            (run_ijbc(a)?, json)
        }
    };
    if json {
        println!("{}", serde_json::to_string(&result.to_json())?);
    } else {
        print!("{}", result.to_text());
    }
    Ok(())
}

fn usage(message: &str) -> anyhow::Error {
    InputError { location: "p2sbench eval".into(), message: message.into() }.into()
}

/// Reads a `.npy` feature file and checks it holds only finite values.
pub fn read_features(path: &Path) -> Result<Features, InputError> {
    let f = npy::read(path)?;
    check_finite(&f, path)?;
    Ok(f)
}

fn check_rows(features: &Features, path: &Path, want: usize, of: &str) -> Result<(), InputError> {
    if features.rows != want {
        return Err(InputError::file(path, format!("{} feature rows, but {of} has {want}", features.rows)));
    }
    Ok(())
}

/// The network images are embedded with: a trained trial (--model) or an ONNX model (--onnx).
struct Embedding {
    net: Box<dyn Embedder>,
    channels: usize,
    size: usize,
    device: tch::Device,
    /// How results name it: ("model", "trial <dir>") or ("onnx", "<file>, input …").
    variant: (&'static str, String),
}

impl Embedding {
    fn open(o: &ModelOpts) -> anyhow::Result<Option<Embedding>> {
        Ok(match (&o.model, &o.onnx) {
            (Some(dir), None) => {
                let ex = trained::Extractor::open(dir, o.device)?;
                let (channels, size) = (ex.config.data.channels, ex.config.data.image_size);
                let variant = ("model", format!("trial {}", dir.display()));
                Some(Embedding { net: Box::new(ex.net), channels, size, device: ex.device, variant })
            }
            (None, Some(file)) => {
                let m = OnnxModel::open(file)?;
                let input = if m.raw_pixels { "0..255" } else { "(x - 127.5) / 127.5" };
                let variant = ("onnx", format!("{}, input {input}", file.display()));
                Some(Embedding {
                    channels: m.channels,
                    size: m.size,
                    device: tch::Device::Cpu,
                    variant,
                    net: Box::new(m),
                })
            }
            (None, None) => None,
            (Some(_), Some(_)) => return Err(usage("give one of --model and --onnx")),
        })
    }

    fn embed(&self, set: &crate::data::ImageSet, o: &ModelOpts) -> anyhow::Result<Features> {
        let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let features = extract_features(self.net.as_ref(), set, o.flip, o.batch, self.device, progress);
        if let Some(path) = &o.export_features {
            npy::write(path, &features)?;
        }
        Ok(features)
    }

    /// Scores the real-file protocol `eval` selects as an experiment's evaluation does
    /// ([`Suite`]), on this network.
    fn run_suite(&self, eval: EvalSpec) -> anyhow::Result<ProtocolResult> {
        let data: DataSpec = serde_json::from_value(serde_json::json!({
            "identities": 0, "heldout_identities": 0, "images_per_identity": 0,
            "image_size": self.size, "channels": self.channels,
        }))?;
        let suite = Suite::new(&eval, &data, &[])?;
        let none = crate::data::ImageSet {
            pixels: Vec::new(),
            labels: Vec::new(),
            num_classes: 0,
            channels: self.channels,
            size: self.size,
        };
        let mut results = suite.run(&eval, &data, self.net.as_ref(), &none, self.device)?;
        let mut result = results.pop().expect("the one protocol selected");
        result.set(self.variant.0, self.variant.1.clone());
        Ok(result)
    }
}

fn run_lfw(a: LfwArgs) -> anyhow::Result<ProtocolResult> {
    let net = Embedding::open(&a.model_opts)?;
    let mut opts = LfwOptions { distance: a.distance, thresholds: a.thresholds, folds: 10 };
    let (features, pairs, source) = if let Some(bin_path) = &a.bin {
        let pack = lfw::read_bin(bin_path)?;
        let features = match (&a.features, &net) {
            (Some(f), None) => {
                let features = read_features(f)?;
                check_rows(&features, f, pack.images.len(), &bin_path.display().to_string())?;
                features
            }
            (None, Some(net)) => {
                let set = images::load_encoded(bin_path, &pack.images, net.channels, net.size)?;
                net.embed(&set, &a.model_opts)?
            }
            _ => return Err(usage("--bin needs exactly one of --model TRIAL_DIR, --onnx MODEL and --features F.npy")),
        };
        (features, pack.pairs(), format!("bin pack {}", bin_path.display()))
    } else {
        let pairs_path = a.pairs.as_ref().ok_or_else(|| {
            usage("give --pairs PAIRS (with --features and --list, or --images and --model) or --bin")
        })?;
        let pairs_file = lfw::read_pairs(pairs_path)?;
        opts.folds = pairs_file.folds;
        match (&a.features, &a.list, &a.images, &net) {
            (Some(f), Some(list_path), None, None) => {
                let list = lfw::read_list(list_path)?;
                let features = read_features(f)?;
                check_rows(&features, f, list.len(), &list_path.display().to_string())?;
                let pairs = lfw::pairs_from_list(pairs_path, &pairs_file, list_path, &list)?;
                (features, pairs, format!("pairs {} + features", pairs_path.display()))
            }
            (None, None, Some(dir), Some(net)) => {
                let (images, pairs) = lfw::unique_images(&pairs_file);
                let set = images::load_files(dir, &images, net.channels, net.size)?;
                let features = net.embed(&set, &a.model_opts)?;
                if let Some(path) = &a.model_opts.export_features {
                    crate::store::write_atomic(&path.with_extension("txt"), (images.join("\n") + "\n").as_bytes())?;
                }
                (features, pairs, format!("pairs {} + images {}", pairs_path.display(), dir.display()))
            }
            _ => return Err(usage("--pairs needs either --features and --list, or --images and --model or --onnx")),
        }
    };
    if let Some(folds) = a.folds {
        opts.folds = folds;
    }
    if opts.folds < 2 || opts.folds > pairs.len() {
        return Err(usage(&format!("--folds {}: expected 2 to {} (the number of pairs)", opts.folds, pairs.len())));
    }
    let (_, mut result) = lfw::evaluate(&features, &pairs, &opts);
    result.variant.insert(0, ("source".into(), source.into()));
    if let Some(net) = &net {
        result.set("flip", crate::extract::suite::flip_label(a.model_opts.flip));
        result.set(net.variant.0, net.variant.1.clone());
    }
    Ok(result)
}

fn run_megaface(a: MegafaceArgs) -> anyhow::Result<ProtocolResult> {
    if !(a.far > 0.0 && a.far < 1.0) {
        return Err(usage("--far: expected a rate between 0 and 1"));
    }
    if let Some(net) = Embedding::open(&a.model_opts)? {
        let (Some(probe_images), Some(distractor_images)) = (a.probe_images, a.distractor_images) else {
            return Err(usage("--model and --onnx embed images: give --probe-images DIR and --distractor-images DIR"));
        };
        let megaface = MegafaceSpec {
            far: a.far,
            far_readout: if a.far_readout == FarReadout::Nearest { "nearest" } else { "at-most" }.into(),
            probes: Some(a.probes),
            distractors: a.distractors,
            probe_images: Some(probe_images),
            distractor_images: Some(distractor_images),
            probe_noise: a.probe_noise,
            distractor_noise: a.distractor_noise,
            ..MegafaceSpec::default()
        };
        return net.run_suite(suite_spec("megaface", &a.model_opts, |e| e.megaface = megaface));
    }
    let root = |sub: &str, own: &Option<PathBuf>, flag: &str| -> anyhow::Result<PathBuf> {
        own.clone()
            .or_else(|| a.features_root.as_ref().map(|r| r.join(sub)))
            .ok_or_else(|| usage(&format!("give --features-root DIR (or {flag})")))
    };
    let layout = FeatureLayout {
        probe_root: root("facescrub", &a.probe_root, "--probe-root")?,
        distractor_root: root("megaface", &a.distractor_root, "--distractor-root")?,
        suffix: a.suffix.clone(),
    };
    let files = MegafaceFiles {
        probes: a.probes,
        distractors: a.distractors,
        layout,
        probe_noise: a.probe_noise,
        distractor_noise: a.distractor_noise,
    };
    let opts = MegafaceOptions { far: a.far, readout: a.far_readout, block: a.block.max(1) };
    Ok(evaluate_files(&files, &opts)?)
}

fn run_ijbc(a: IjbcArgs) -> anyhow::Result<ProtocolResult> {
    if let Some(net) = Embedding::open(&a.model_opts)? {
        let (Some(images), None) = (&a.images, &a.features) else {
            return Err(usage("--model and --onnx embed the loose crops: give --images DIR, not --features"));
        };
        let ijbc = IjbcSpec {
            meta: Some(a.meta),
            images: Some(images.clone()),
            detector_scores: a.scores,
            keep_norm: a.keep_norm,
            far_readout: if a.far_readout == FarReadout::Nearest { "nearest" } else { "at-most" }.into(),
            ..IjbcSpec::default()
        };
        return net.run_suite(suite_spec("ijbc", &a.model_opts, |e| e.ijbc = ijbc));
    }
    let Some(features_path) = &a.features else {
        return Err(usage("give --features F.npy, or --images DIR with --model or --onnx"));
    };
    let files = ijbc::MetaFiles::locate(&a.meta)?;
    let (protocol, images) = ijbc::load(&files)?;
    let features = read_features(features_path)?;
    check_rows(&features, features_path, images.names.len(), &files.images.display().to_string())?;
    let detector_scores = if a.scores {
        if !files.scores.is_file() {
            return Err(InputError::file(&files.scores, "missing: --scores reads the detector scores from it").into());
        }
        Some(ijbc::meta::read_scores(&files.scores, &images, &files.images)?)
    } else {
        None
    };
    let pool = ijbc::PoolOptions { detector_scores, keep_norm: a.keep_norm };
    let mut result = ijbc::evaluate(&protocol, &features, &pool, a.far_readout);
    result
        .variant
        .insert(0, ("source".into(), format!("meta {}", files.images.parent().unwrap_or(&a.meta).display()).into()));
    Ok(result)
}

/// An `[eval]` selecting only `protocol`, with the model options' flip and bootstrap.
fn suite_spec(protocol: &str, o: &ModelOpts, set: impl FnOnce(&mut EvalSpec)) -> EvalSpec {
    let mut eval =
        EvalSpec { protocols: vec![protocol.to_string()], flip: o.flip, bootstrap: o.bootstrap, ..EvalSpec::default() };
    set(&mut eval);
    eval
}
