//! MobileFaceNet as Table 1 of Chen et al. 2018 ("MobileFaceNets: Efficient CNNs for Accurate
//! Real-Time Face Verification on Mobile Devices", arXiv:1804.07573): conv3×3 at stride 2 (64),
//! depthwise conv3×3 (64), the bottleneck rows (t, c, n, s) = (2, 64, 5, 2), (4, 128, 1, 2),
//! (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1), conv1×1 (512), a linear global depthwise
//! convolution over the whole remaining map (7×7 at 112×112), and the linear 1×1 convolution to
//! the embedding, which on a 1×1 map is a Linear layer, followed by BatchNorm1d with γ fixed at 1
//! as insightface's heads. Every convolution is followed by BN, and by PReLU unless linear. A
//! bottleneck is MobileNetV2's inverted residual: expand 1×1 (t × input channels), depthwise
//! 3×3 (the row's stride in its first unit), linear project 1×1, with a residual connection
//! where the shape is kept.

use super::layers::{ConvUnit, EmbeddingHead, InvertedResidual};
use super::onnx::{Graph, ToOnnx};
use super::TORCH_DEFAULT;
use crate::spec::shard::MOBILEFACENET_BOTTLENECKS as BOTTLENECKS;
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug)]
pub struct MobileFaceNet {
    conv1: ConvUnit,
    dw_conv1: ConvUnit,
    blocks: Vec<InvertedResidual>,
    conv2: ConvUnit,
    gdconv: ConvUnit,
    head: EmbeddingHead,
}

impl MobileFaceNet {
    pub fn new(vs: &nn::Path, channels: i64, size: i64, embedding: i64) -> MobileFaceNet {
        let conv1 = ConvUnit::new(vs / "conv1", channels, 64, 3, 2, 1, 1, false, TORCH_DEFAULT);
        let dw_conv1 = ConvUnit::new(vs / "dw_conv1", 64, 64, 3, 1, 1, 64, false, TORCH_DEFAULT);
        let (mut blocks, mut cin, mut side) = (Vec::new(), 64, (size + 1) / 2);
        let path = vs / "blocks";
        for (t, c, n, s) in BOTTLENECKS {
            for i in 0..n {
                let at = &path / blocks.len().to_string();
                let stride = if i == 0 { s } else { 1 };
                blocks.push(InvertedResidual::new(at, (cin, cin * t, c), stride, &|_, _| TORCH_DEFAULT));
                cin = c;
            }
            if s == 2 {
                side = (side + 1) / 2;
            }
        }
        let conv2 = ConvUnit::new(vs / "conv2", 128, 512, 1, 1, 0, 1, false, TORCH_DEFAULT);
        let gdconv = ConvUnit::new(vs / "gdconv", 512, 512, side, 1, 0, 512, true, TORCH_DEFAULT);
        let head = EmbeddingHead::new(vs, 512, embedding);
        MobileFaceNet { conv1, dw_conv1, blocks, conv2, gdconv, head }
    }
}

impl ModuleT for MobileFaceNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.dw_conv1.forward_t(&self.conv1.forward_t(x, train), train);
        for b in &self.blocks {
            x = b.forward_t(&x, train);
        }
        let x = self.gdconv.forward_t(&self.conv2.forward_t(&x, train), train);
        self.head.forward_t(&x, train)
    }
}

impl ToOnnx for MobileFaceNet {
    fn to_onnx(&self, g: &mut Graph, x: &str) -> String {
        let stem = self.conv1.to_onnx(g, x);
        let mut x = self.dw_conv1.to_onnx(g, &stem);
        for b in &self.blocks {
            x = b.to_onnx(g, &x);
        }
        let conv2 = self.conv2.to_onnx(g, &x);
        let gd = self.gdconv.to_onnx(g, &conv2);
        self.head.to_onnx(g, &gd)
    }
}
