//! Feature extraction from a trained network: batched, in eval mode, with the flip-test
//! variants (none, sum of plain and flipped, concatenation).

use crate::data::ImageSet;
use crate::model::Network;
use crate::spec::FlipMode;
use tch::{Device, Kind, Tensor};

/// Features of every image in `set`, as row-major f32 [n, dim]; returns (features, dim).
pub fn extract(net: &Network, set: &ImageSet, flip: FlipMode, batch: usize, device: Device) -> (Vec<f32>, usize) {
    let _guard = tch::no_grad_guard();
    let mut rows = Vec::new();
    let mut dim = 0;
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let images = set.images(chunk, device);
        let plain = net.embed(&images, false);
        let feats = match flip {
            FlipMode::None => plain,
            FlipMode::Sum => plain + net.embed(&images.flip([3]), false),
            FlipMode::Concat => Tensor::cat(&[plain, net.embed(&images.flip([3]), false)], 1),
        };
        dim = feats.size()[1] as usize;
        let flat = feats.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1);
        rows.extend(Vec::<f32>::try_from(&flat).expect("features are float"));
    }
    (rows, dim)
}
