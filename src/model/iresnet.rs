//! IResNet, the backbone of ArcFace (insightface's `iresnet18/34/50/100`, the LResNetxxE-IR of
//! the ArcFace paper): a 3×3 stem convolution at stride 1 (64 channels) → BN → PReLU, four
//! stages of "improved" residual units at 64, 128, 256 and 512 channels, each stage halving the
//! resolution in its first unit, then the "E" output: BN → flatten → dropout → Linear →
//! BatchNorm1d with γ fixed at 1. A unit is BN → conv3×3 → BN → PReLU → conv3×3 (the stage's
//! stride) → BN, added to the input (through a strided conv1×1 → BN where the shape changes).
//! Variables are named as insightface's PyTorch module names them (`layer1.0.conv1.weight`, …).
//!
//! Initialisation as insightface's: every convolution N(0, 0.1²), BatchNorm γ = 1 and β = 0,
//! PReLU slopes 0.25, the Linear layer PyTorch's default.
//!
//! Dropout: insightface's `arcface_torch` builds these networks with dropout 0 (its default),
//! which is what is here; a non-zero rate would draw masks from libtorch's global generator,
//! which resumed and parallel trials cannot reproduce.

use super::layers::{bn2d, conv_normal, Conv, EmbeddingHead, Prelu};
use super::onnx::{Graph, ToOnnx};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use crate::spec::shard::{iresnet_layers as layers, IRESNET_WIDTHS as WIDTHS};

/// The standard deviation of insightface's convolution init.
const CONV_STDEV: f64 = 0.1;

#[derive(Debug)]
struct Unit {
    bn1: nn::BatchNorm,
    conv1: Conv,
    bn2: nn::BatchNorm,
    prelu: Prelu,
    conv2: Conv,
    bn3: nn::BatchNorm,
    downsample: Option<(Conv, nn::BatchNorm)>,
}

impl Unit {
    fn new(vs: nn::Path, cin: i64, cout: i64, stride: i64) -> Unit {
        Unit {
            bn1: bn2d(&vs / "bn1", cin),
            conv1: conv_normal(&vs / "conv1", cin, cout, 3, 1, CONV_STDEV),
            bn2: bn2d(&vs / "bn2", cout),
            prelu: Prelu::new(&vs / "prelu", cout),
            conv2: conv_normal(&vs / "conv2", cout, cout, 3, stride, CONV_STDEV),
            bn3: bn2d(&vs / "bn3", cout),
            downsample: (stride != 1 || cin != cout).then(|| {
                let d = &vs / "downsample";
                (conv_normal(&d / "0", cin, cout, 1, stride, CONV_STDEV), bn2d(&d / "1", cout))
            }),
        }
    }
}

impl ModuleT for Unit {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.bn1.forward_t(x, train).apply(&self.conv1);
        let out = self.prelu.forward(&self.bn2.forward_t(&out, train)).apply(&self.conv2);
        let out = self.bn3.forward_t(&out, train);
        match &self.downsample {
            Some((c, bn)) => out + bn.forward_t(&x.apply(c), train),
            None => out + x,
        }
    }
}

impl ToOnnx for Unit {
    fn to_onnx(&self, g: &mut Graph, x: &str) -> String {
        let b1 = g.batch_norm(x, &self.bn1);
        let c1 = g.conv(&b1, &self.conv1);
        let b2 = g.batch_norm(&c1, &self.bn2);
        let p = g.prelu(&b2, &self.prelu);
        let c2 = g.conv(&p, &self.conv2);
        let out = g.batch_norm(&c2, &self.bn3);
        let shortcut = match &self.downsample {
            Some((c, bn)) => {
                let d = g.conv(x, c);
                g.batch_norm(&d, bn)
            }
            None => x.to_string(),
        };
        g.add(&out, &shortcut)
    }
}

/// IResNet-`depth` (18, 34, 50 or 100) for `channels` × `size`² images and a `embedding`-d output.
#[derive(Debug)]
pub struct IResNet {
    conv1: Conv,
    bn1: nn::BatchNorm,
    prelu: Prelu,
    units: Vec<Unit>,
    bn2: nn::BatchNorm,
    head: EmbeddingHead,
}

impl IResNet {
    pub fn new(vs: &nn::Path, depth: usize, channels: i64, size: i64, embedding: i64) -> IResNet {
        let conv1 = conv_normal(vs / "conv1", channels, 64, 3, 1, CONV_STDEV);
        let bn1 = bn2d(vs / "bn1", 64);
        let prelu = Prelu::new(vs / "prelu", 64);
        let (mut units, mut cin, mut side) = (Vec::new(), 64, size);
        for (stage, (&width, &count)) in WIDTHS.iter().zip(&layers(depth)).enumerate() {
            let layer = vs / format!("layer{}", stage + 1);
            for i in 0..count {
                units.push(Unit::new(&layer / i.to_string(), cin, width, if i == 0 { 2 } else { 1 }));
                cin = width;
            }
            side = (side + 1) / 2;
        }
        let bn2 = bn2d(vs / "bn2", 512);
        let head = EmbeddingHead::new(vs, 512 * side * side, embedding);
        IResNet { conv1, bn1, prelu, units, bn2, head }
    }
}

impl ModuleT for IResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.prelu.forward(&self.bn1.forward_t(&x.apply(&self.conv1), train));
        for unit in &self.units {
            x = unit.forward_t(&x, train);
        }
        self.head.forward_t(&self.bn2.forward_t(&x, train), train)
    }
}

impl ToOnnx for IResNet {
    fn to_onnx(&self, g: &mut Graph, x: &str) -> String {
        let c = g.conv(x, &self.conv1);
        let b = g.batch_norm(&c, &self.bn1);
        let mut x = g.prelu(&b, &self.prelu);
        for unit in &self.units {
            x = unit.to_onnx(g, &x);
        }
        let b2 = g.batch_norm(&x, &self.bn2);
        self.head.to_onnx(g, &b2)
    }
}
