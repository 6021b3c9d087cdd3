//! Building blocks of the backbones: a convolution that keeps its geometry, a convolution unit
//! (conv without bias → BatchNorm2d → PReLU unless linear), PReLU, the inverted residual, and the
//! embedding's last BatchNorm1d whose scale stays at 1, each with its ONNX form
//! ([`super::onnx::ToOnnx`]). Initialisation is PyTorch's module defaults (see
//! [`super::TORCH_DEFAULT`]): PReLU slopes 0.25, BatchNorm γ = 1 and β = 0.

use super::onnx::{Graph, ToOnnx};
use super::{batch_norm, TORCH_DEFAULT};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// A 2-D convolution with its stride, padding and groups (which tch keeps private, and the
/// ONNX export needs).
#[derive(Debug)]
pub struct Conv {
    pub conv: nn::Conv2D,
    pub stride: i64,
    pub padding: i64,
    pub groups: i64,
}

impl Conv {
    /// A `kernel`×`kernel` convolution whose weights are drawn from `ws_init` (and a bias from
    /// PyTorch's default, when `bias`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vs: nn::Path,
        (cin, cout): (i64, i64),
        kernel: i64,
        stride: i64,
        padding: i64,
        groups: i64,
        bias: bool,
        ws_init: nn::Init,
    ) -> Conv {
        let cfg = nn::ConvConfig { stride, padding, groups, bias, ws_init, ..Default::default() };
        Conv { conv: nn::conv2d(vs, cin, cout, kernel, cfg), stride, padding, groups }
    }
}

impl nn::Module for Conv {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.apply(&self.conv)
    }
}

/// A convolution without bias whose weights are drawn from N(0, `stdev`²) (insightface's
/// IResNet initialises every convolution with N(0, 0.1²)); padding keeps the size at stride 1.
pub fn conv_normal(vs: nn::Path, cin: i64, cout: i64, kernel: i64, stride: i64, stdev: f64) -> Conv {
    Conv::new(vs, (cin, cout), kernel, stride, kernel / 2, 1, false, nn::Init::Randn { mean: 0.0, stdev })
}

pub fn bn2d(vs: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(vs, channels, batch_norm())
}

/// PReLU with one slope per channel (`nn.PReLU(channels)`), 0.25 at init.
#[derive(Debug)]
pub struct Prelu {
    weight: Tensor,
}

impl Prelu {
    pub fn new(vs: nn::Path, channels: i64) -> Prelu {
        Prelu { weight: vs.var("weight", &[channels], nn::Init::Const(0.25)) }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        // Under autocast the activations may be half or bfloat16 while the slopes stay float.
        if x.kind() == self.weight.kind() {
            x.prelu(&self.weight)
        } else {
            x.prelu(&self.weight.to_kind(x.kind()))
        }
    }
}

/// conv → BN (→ PReLU unless `linear`): the unit MobileFaceNet is made of.
#[derive(Debug)]
pub struct ConvUnit {
    conv: Conv,
    bn: nn::BatchNorm,
    prelu: Option<Prelu>,
}

impl ConvUnit {
    /// The unit with its convolution's weights drawn from `ws_init` ([`TORCH_DEFAULT`]:
    /// PyTorch's default).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vs: nn::Path,
        cin: i64,
        cout: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        groups: i64,
        linear: bool,
        ws_init: nn::Init,
    ) -> ConvUnit {
        ConvUnit {
            conv: Conv::new(&vs / "conv", (cin, cout), kernel, stride, padding, groups, false, ws_init),
            bn: bn2d(&vs / "bn", cout),
            prelu: (!linear).then(|| Prelu::new(&vs / "prelu", cout)),
        }
    }
}

impl ModuleT for ConvUnit {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = self.bn.forward_t(&x.apply(&self.conv), train);
        match &self.prelu {
            Some(p) => p.forward(&x),
            None => x,
        }
    }
}

/// MobileNetV2's inverted residual with PReLU, the unit of both MobileFaceNets: expand 1×1 to
/// `hidden` channels, depthwise 3×3 at `stride`, linear projection 1×1 to `cout`, with a
/// residual connection where stride 1 keeps the channels. `init` gives each convolution's
/// weight init from its output channels and kernel size.
#[derive(Debug)]
pub struct InvertedResidual {
    expand: ConvUnit,
    depthwise: ConvUnit,
    project: ConvUnit,
    residual: bool,
}

impl InvertedResidual {
    pub fn new(
        vs: nn::Path,
        (cin, hidden, cout): (i64, i64, i64),
        stride: i64,
        init: &dyn Fn(i64, i64) -> nn::Init,
    ) -> InvertedResidual {
        InvertedResidual {
            expand: ConvUnit::new(&vs / "expand", cin, hidden, 1, 1, 0, 1, false, init(hidden, 1)),
            depthwise: ConvUnit::new(&vs / "depthwise", hidden, hidden, 3, stride, 1, hidden, false, init(hidden, 3)),
            project: ConvUnit::new(&vs / "project", hidden, cout, 1, 1, 0, 1, true, init(cout, 1)),
            residual: stride == 1 && cin == cout,
        }
    }
}

impl ToOnnx for ConvUnit {
    fn to_onnx(&self, g: &mut Graph, x: &str) -> String {
        let conv = g.conv(x, &self.conv);
        let x = g.batch_norm(&conv, &self.bn);
        match &self.prelu {
            Some(p) => g.prelu(&x, p),
            None => x,
        }
    }
}

impl ModuleT for InvertedResidual {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.project.forward_t(&self.depthwise.forward_t(&self.expand.forward_t(x, train), train), train);
        if self.residual {
            x + out
        } else {
            out
        }
    }
}

impl ToOnnx for InvertedResidual {
    fn to_onnx(&self, g: &mut Graph, x: &str) -> String {
        let expanded = self.expand.to_onnx(g, x);
        let depthwise = self.depthwise.to_onnx(g, &expanded);
        let out = self.project.to_onnx(g, &depthwise);
        if self.residual {
            g.add(x, &out)
        } else {
            out
        }
    }
}

/// The embedding output of insightface's backbones: Linear (with bias) → BatchNorm1d whose
/// scale γ is fixed at 1 (not trained; insightface sets `requires_grad = False`), β trained.
#[derive(Debug)]
pub struct EmbeddingHead {
    fc: nn::Linear,
    features: nn::BatchNorm,
}

impl EmbeddingHead {
    pub fn new(vs: &nn::Path, inputs: i64, embedding: i64) -> EmbeddingHead {
        let fc = nn::linear(
            vs / "fc",
            inputs,
            embedding,
            nn::LinearConfig { ws_init: TORCH_DEFAULT, bs_init: None, bias: true },
        );
        let features = nn::batch_norm1d(vs / "features", embedding, batch_norm());
        if let Some(gamma) = &features.ws {
            let _ = gamma.set_requires_grad(false);
        }
        EmbeddingHead { fc, features }
    }
}

impl ModuleT for EmbeddingHead {
    /// In float32 also under autocast, as insightface's `fp16` backbones run their last layers
    /// (`self.fc(x.float())`): the embedding the losses see is never rounded to 16 bits.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        super::amp::full_precision(x.device(), || {
            let x = x.flatten(1, -1).to_kind(tch::Kind::Float);
            self.features.forward_t(&x.apply(&self.fc), train)
        })
    }
}

impl ToOnnx for EmbeddingHead {
    fn to_onnx(&self, g: &mut Graph, x: &str) -> String {
        let flat = g.flatten(x);
        let fc = g.linear(&flat, &self.fc);
        g.batch_norm(&fc, &self.features)
    }
}
