//! Feature extraction from a trained network: batched, in eval mode, with the flip-test
//! variants (none, sum of plain and flipped, concatenation), and an optional progress bar.

use crate::data::ImageSet;
use crate::metrics::Features;
use crate::model::Network;
use crate::spec::FlipMode;
use tch::{Device, Kind, Tensor};

/// Features of every image in `set`; `progress` draws a bar on stderr.
pub fn extract_features(
    net: &Network,
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
        let plain = net.embed(&images, false);
        let feats = match flip {
            FlipMode::None => plain,
            FlipMode::Sum => plain + net.embed(&images.flip([3]), false),
            FlipMode::Concat => Tensor::cat(&[plain, net.embed(&images.flip([3]), false)], 1),
        };
        dim = feats.size()[1] as usize;
        let flat = feats.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1);
        rows.extend(Vec::<f32>::try_from(&flat).expect("features are float"));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Features::new(set.len(), dim, rows)
}
