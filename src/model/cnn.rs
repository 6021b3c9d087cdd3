//! The small CNN backbone: per stage conv3×3 (no bias, padding 1) → BatchNorm2d → ReLU → 2×2
//! max-pool, then flatten → Linear (with bias) → BatchNorm1d, the embedding. Variables are
//! `conv{i}`, `bn{i}`, `embedding`, `embedding_bn`; weights start from PyTorch's defaults.

use super::layers::Conv;
use super::onnx::{Graph, ToOnnx};
use super::{batch_norm, TORCH_DEFAULT};
use crate::spec::ModelSpec;
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug)]
pub struct Cnn {
    stages: Vec<(Conv, nn::BatchNorm)>,
    embedding: nn::Linear,
    embedding_bn: nn::BatchNorm,
}

impl Cnn {
    pub fn new(bb: &nn::Path, spec: &ModelSpec, channels: i64, image_size: i64) -> Cnn {
        let (mut stages, mut in_ch, mut side) = (Vec::new(), channels, image_size);
        for (i, &w) in spec.widths.iter().enumerate() {
            let w = w as i64;
            let conv = Conv::new(bb / format!("conv{i}"), (in_ch, w), 3, 1, 1, 1, false, TORCH_DEFAULT);
            stages.push((conv, nn::batch_norm2d(bb / format!("bn{i}"), w, batch_norm())));
            in_ch = w;
            side /= 2;
        }
        let emb = spec.embedding as i64;
        let config = nn::LinearConfig { ws_init: TORCH_DEFAULT, bs_init: None, bias: true };
        let embedding = nn::linear(bb / "embedding", in_ch * side * side, emb, config);
        let embedding_bn = nn::batch_norm1d(bb / "embedding_bn", emb, batch_norm());
        Cnn { stages, embedding, embedding_bn }
    }
}

impl ModuleT for Cnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = x.shallow_clone();
        for (conv, bn) in &self.stages {
            x = bn.forward_t(&x.apply(conv), train).relu().max_pool2d_default(2);
        }
        self.embedding_bn.forward_t(&x.flatten(1, -1).apply(&self.embedding), train)
    }
}

impl ToOnnx for Cnn {
    fn to_onnx(&self, g: &mut Graph, x: &str) -> String {
        let mut x = x.to_string();
        for (conv, bn) in &self.stages {
            let c = g.conv(&x, conv);
            let b = g.batch_norm(&c, bn);
            let r = g.relu(&b);
            x = g.max_pool_2x2(&r);
        }
        let flat = g.flatten(&x);
        let fc = g.linear(&flat, &self.embedding);
        g.batch_norm(&fc, &self.embedding_bn)
    }
}
