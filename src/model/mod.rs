//! The network every trial trains: a backbone (`model.backbone`: the small CNN — conv3×3 → BN →
//! ReLU → 2×2 max-pool per stage, then a linear embedding layer with batch norm — or
//! [`iresnet`] / [`mobilefacenet`], whose own output layers make the embedding), and the
//! class-weight matrix W (C×D) of the head (plus a bias for the losses that use one). Parameters
//! are created on the CPU from the init seed, in a fixed order, so every trial of a seed starts
//! from identical values.
//!
//! Initialisation is PyTorch's module defaults, so the same network built in PyTorch starts from
//! the same distribution (and `tests/parity.rs` trains both from the same values): Conv2d and
//! Linear weights `kaiming_uniform_(a = √5)`, i.e. U(−1/√fan_in, 1/√fan_in); the Linear bias
//! U(−1/√fan_in, 1/√fan_in); BatchNorm γ = 1, β = 0. The class weights W are N(0, 1/D) per entry,
//! so ‖W_j‖ ≈ 1 (the cosine losses' ∂cos/∂W ∝ 1/‖W_j‖ starts at a sane size); the class bias
//! (softmax, L2-softmax) starts at 0. PReLU slopes start at 0.25 (`nn.PReLU`).

pub mod amp;
pub mod cnn;
pub mod insightface;
pub mod iresnet;
pub mod layers;
pub mod mbf;
pub mod mobilefacenet;
pub mod onnx;
pub mod partial_fc;
pub mod weights;

use crate::spec::{Backbone, DeviceChoice, ModelSpec};
use sha2::{Digest, Sha256};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// The same values in channels-last memory: an NCHW-shaped view of NHWC storage with the
/// canonical channels-last strides, as `tensor.to(memory_format=torch.channels_last)` makes them
/// (also for size-1 dimensions, which decide the kernels libtorch picks: a permute-contiguous-
/// permute round trip would keep a one-channel image's NCHW strides).
pub fn channels_last(t: &Tensor) -> Tensor {
    let s = t.size();
    let mut out = Tensor::empty([s[0], s[2], s[3], s[1]], (t.kind(), t.device())).permute([0, 3, 1, 2]);
    out.copy_(t);
    out
}

/// PyTorch's default weight init for Conv2d and Linear, `kaiming_uniform_(a = √5)`: the gain
/// √(2 / (1 + a²)) = 1/√3 makes the bound √3 · gain / √fan_in = 1/√fan_in.
pub(crate) const TORCH_DEFAULT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Uniform,
    fan: nn::init::FanInOut::FanIn,
    non_linearity: nn::init::NonLinearity::ExplicitGain(0.577_350_269_189_625_8),
};

/// BatchNorm's ε, PyTorch's default.
pub const BN_EPS: f64 = 1e-5;

/// PyTorch's BatchNorm defaults: γ = 1, β = 0, ε = 1e-5, momentum 0.1.
pub(crate) fn batch_norm() -> nn::BatchNormConfig {
    nn::BatchNormConfig {
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        eps: BN_EPS,
        ..Default::default()
    }
}

/// Resolves `device = "auto" | "cpu" | "cuda"`; `Err` when CUDA is asked for and libtorch sees none.
pub fn device(choice: DeviceChoice) -> Result<Device, String> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err("device \"cuda\" asked for, but libtorch sees no CUDA device".into()),
    }
}

/// How a trial's device is recorded: `cpu`, `cuda:0`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A backbone with its embedding layer: trained through `ModuleT`, exported through `ToOnnx`.
pub trait BackboneNet: ModuleT + onnx::ToOnnx {}
impl<T: ModuleT + onnx::ToOnnx> BackboneNet for T {}

/// Backbone + embedding layer + head parameters, all in one `VarStore`.
pub struct Network {
    pub vs: nn::VarStore,
    backbone: Box<dyn BackboneNet>,
    /// Images and convolution weights live in channels-last memory (see [`Network::use_channels_last`]).
    channels_last: bool,
    /// Class weights W, [C, D].
    pub class_weights: Tensor,
    /// Class bias b, [C], when the loss uses one.
    pub class_bias: Option<Tensor>,
}

impl Network {
    /// Builds the network with parameters drawn from `init_seed` (on the CPU), then moves it to `device`.
    pub fn new(
        spec: &ModelSpec,
        channels: usize,
        image_size: usize,
        classes: usize,
        with_bias: bool,
        init_seed: u64,
        device: Device,
    ) -> Network {
        // libtorch's generator is global: hold it for the whole draw so that trials built in
        // parallel (threads of one process) each get exactly their seed's values.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _draw = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tch::manual_seed(init_seed as i64);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let bb = root.sub("backbone");
        let emb = spec.embedding as i64;
        let (c, size) = (channels as i64, image_size as i64);
        let backbone: Box<dyn BackboneNet> = match spec.backbone {
            Backbone::Cnn => Box::new(cnn::Cnn::new(&bb, spec, c, size)),
            Backbone::Mobilefacenet => Box::new(mobilefacenet::MobileFaceNet::new(&bb, c, size, emb)),
            Backbone::Mbf => Box::new(mbf::Mbf::new(&bb, c, size, emb)),
            iresnet => Box::new(iresnet::IResNet::new(&bb, iresnet.iresnet_depth().expect("an IResNet"), c, size, emb)),
        };
        let head = root.sub("head");
        let stdev = 1.0 / (emb as f64).sqrt();
        let class_weights = head.var("weight", &[classes as i64, emb], nn::Init::Randn { mean: 0.0, stdev });
        let class_bias = with_bias.then(|| head.var("bias", &[classes as i64], nn::Init::Const(0.0)));
        vs.set_device(device);
        Network { vs, backbone, class_weights, class_bias, channels_last: false }
    }

    /// Moves every 4-D weight to channels-last memory in place (values unchanged; the variables
    /// keep their identity, so optimisers and checkpoints see the same tensors); from now on
    /// [`Network::embed`] lays its input out the same way.
    pub fn use_channels_last(&mut self) {
        let _guard = tch::no_grad_guard();
        for (_, mut var) in self.vs.variables() {
            if var.dim() == 4 {
                var.set_data(&channels_last(&var));
            }
        }
        self.channels_last = true;
    }

    /// Embeddings x (before normalisation), [B, D].
    pub fn embed(&self, images: &Tensor, train: bool) -> Tensor {
        if self.channels_last {
            self.backbone.forward_t(&channels_last(images), train)
        } else {
            self.backbone.forward_t(images, train)
        }
    }

    /// The backbone and its embedding layer in inference mode as an ONNX model whose input is
    /// `N × channels × size × size` (normalised as [`crate::data`] does) and whose output is the
    /// `N × embedding` embedding ([`onnx`]).
    pub fn to_onnx(&self, channels: i64, size: i64, doc: &str) -> tract_onnx::pb::ModelProto {
        let embedding = self.class_weights.size()[1];
        onnx::Graph::model(channels, size, embedding, self.backbone.as_ref(), doc)
    }

    /// The trainable backbone tensors (everything but the head), in name order.
    pub fn backbone_params(&self) -> Vec<Tensor> {
        let vars = self.vs.variables();
        let mut names: Vec<&String> =
            vars.iter().filter(|(k, v)| k.starts_with("backbone.") && v.requires_grad()).map(|(k, _)| k).collect();
        names.sort();
        names.into_iter().map(|k| vars[k].shallow_clone()).collect()
    }

    /// SHA-256 (first 16 hex digits) of the backbone and class-weight values, in name order.
    /// The class bias, which only some losses have, is left out so all trials compare.
    pub fn init_checksum(&self) -> String {
        let vars = self.vs.variables();
        let mut names: Vec<&String> = vars.keys().filter(|k| k.as_str() != "head.bias").collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in names {
            let t = vars[name].to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1);
            let values: Vec<f32> = Vec::try_from(&t).expect("parameters are float tensors");
            hasher.update(name.as_bytes());
            for v in values {
                hasher.update(v.to_le_bytes());
            }
        }
        crate::digest::short_hex(hasher)
    }
}
