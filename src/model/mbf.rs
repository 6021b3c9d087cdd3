//! insightface's `mbf` (arcface_torch's `backbones/mobilefacenet.py`, `get_mbf`: scale 2,
//! blocks (1, 4, 6, 2)), a MobileFaceNet twice as wide as Table 1's (which
//! [`super::mobilefacenet`] builds): a conv3×3 stem at stride 2 (128 channels) and a grouped
//! conv3×3 (64 groups), then the units of [`MBF_UNITS`] (each a 1×1 expansion, a depthwise 3×3
//! and a linear 1×1 projection, residual at stride 1), a 1×1 conv to 512, a linear global
//! depthwise conv over the map (7×7 at 112×112; over whatever map is left at other sizes), a
//! Linear without bias to the embedding and a BatchNorm1d whose scale is trained (unlike the
//! IResNets' fixed one). Every convolution is followed by BN, and by PReLU unless linear.
//! Convolutions and the Linear layer start from `kaiming_normal_(mode = "fan_out")`, BN at
//! γ = 1, β = 0, PReLU at 0.25, as there. Under mixed precision the last layers (from the 1×1
//! conv to 512 on) run in float32, as insightface's `fp16` mode runs them.
//!
//! Its parameter count at 512-d is insightface's own, 2,059,520 (tests/backbones.rs).

use super::layers::{ConvUnit, InvertedResidual};
use super::onnx::{Graph, ToOnnx};
use super::{amp, batch_norm};
use crate::spec::shard::MBF_UNITS;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// `kaiming_normal_(mode = "fan_out", nonlinearity = "relu")`: N(0, 2 / fan_out), where a
/// weight's fan-out is its output channels (rows) times its kernel's area.
fn kaiming_fan_out(fan_out: i64) -> nn::Init {
    nn::Init::Randn { mean: 0.0, stdev: (2.0 / fan_out as f64).sqrt() }
}

#[derive(Debug)]
pub struct Mbf {
    stem: ConvUnit,
    stem_dw: ConvUnit,
    blocks: Vec<InvertedResidual>,
    conv_sep: ConvUnit,
    gdc: ConvUnit,
    fc: nn::Linear,
    features: nn::BatchNorm,
}

impl Mbf {
    pub fn new(vs: &nn::Path, channels: i64, size: i64, embedding: i64) -> Mbf {
        let init = |cout: i64, kernel: i64| kaiming_fan_out(cout * kernel * kernel);
        let unit = |at: nn::Path, (cin, cout): (i64, i64), kernel, stride, padding, groups, linear| {
            ConvUnit::new(at, cin, cout, kernel, stride, padding, groups, linear, init(cout, kernel))
        };
        let stem = unit(vs / "stem", (channels, 128), 3, 2, 1, 1, false);
        let stem_dw = unit(vs / "stem_dw", (128, 128), 3, 1, 1, 64, false);
        let (mut blocks, mut side) = (Vec::new(), (size + 1) / 2);
        let path = vs / "blocks";
        for (cin, cout, hidden, stride, count) in MBF_UNITS {
            for _ in 0..count {
                let at = &path / blocks.len().to_string();
                blocks.push(InvertedResidual::new(at, (cin, hidden, cout), stride, &init));
                if stride == 2 {
                    side = (side + 1) / 2;
                }
            }
        }
        let conv_sep = unit(vs / "conv_sep", (256, 512), 1, 1, 0, 1, false);
        let gdc = unit(vs / "gdc", (512, 512), side, 1, 0, 512, true);
        let fc = nn::linear(
            vs / "fc",
            512,
            embedding,
            nn::LinearConfig { ws_init: kaiming_fan_out(embedding), bs_init: None, bias: false },
        );
        let features = nn::batch_norm1d(vs / "features", embedding, batch_norm());
        Mbf { stem, stem_dw, blocks, conv_sep, gdc, fc, features }
    }
}

impl ModuleT for Mbf {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.stem_dw.forward_t(&self.stem.forward_t(x, train), train);
        for b in &self.blocks {
            x = b.forward_t(&x, train);
        }
        amp::full_precision(x.device(), || {
            let x = x.to_kind(tch::Kind::Float);
            let x = self.gdc.forward_t(&self.conv_sep.forward_t(&x, train), train);
            self.features.forward_t(&x.flatten(1, -1).apply(&self.fc), train)
        })
    }
}

impl ToOnnx for Mbf {
    fn to_onnx(&self, g: &mut Graph, x: &str) -> String {
        let stem = self.stem.to_onnx(g, x);
        let mut x = self.stem_dw.to_onnx(g, &stem);
        for b in &self.blocks {
            x = b.to_onnx(g, &x);
        }
        let sep = self.conv_sep.to_onnx(g, &x);
        let gdc = self.gdc.to_onnx(g, &sep);
        let flat = g.flatten(&gdc);
        let fc = g.linear(&flat, &self.fc);
        g.batch_norm(&fc, &self.features)
    }
}
