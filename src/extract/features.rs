//! Feature extraction from a network (a trained one, or an ONNX model): batched, in eval mode,
//! with the flip-test variants (none, sum of plain and flipped, concatenation), and an optional
//! progress bar.

use crate::data::ImageSet;
use crate::metrics::Features;
use crate::model::Network;
use crate::spec::FlipMode;
use tch::{Device, Kind, Tensor};

/// What embeds a batch of images: network input `[n, c, h, w]` (floats in [−1, 1], as
/// [`crate::data::input_tensor`] makes them) to features `[n, d]`.
pub trait Embedder {
    fn embed_batch(&self, images: &Tensor) -> Tensor;
}

impl Embedder for Network {
    fn embed_batch(&self, images: &Tensor) -> Tensor {
        self.embed(images, false)
    }
}

/// Features of every image in `set`; `progress` draws a bar on stderr.
pub fn extract_features(
    net: &dyn Embedder,
    set: &ImageSet,
    flip: FlipMode,
    batch: usize,
    device: Device,
    progress: bool,
) -> Features {
    let _guard = tch::no_grad_guard();
    let bar = crate::progress::bar(set.len() as u64, "features", "images", progress);
    let mut rows = Vec::new();
    let mut dim = 0;
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let images = set.images(chunk, device);
        let plain = net.embed_batch(&images);
        let feats = match flip {
            FlipMode::None => plain,
            FlipMode::Sum => plain + net.embed_batch(&images.flip([3])),
            FlipMode::Concat => Tensor::cat(&[plain, net.embed_batch(&images.flip([3]))], 1),
        };
        dim = feats.size()[1] as usize;
        let flat = feats.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1);
        rows.extend(Vec::<f32>::try_from(&flat).expect("features are float"));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Features::new(set.len(), dim, rows)
}
