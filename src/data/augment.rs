//! Random transformations of training images (`[data.augment]`): a random square crop resized
//! back to the image size (bilinear), then a horizontal flip with probability ½. The draws for
//! an image depend only on (trial seed, epoch, image index), never on which worker decodes it or
//! when, so a trial's batches are the same on every run, resumed or not.

use crate::spec::AugmentSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The augmentation of one trial.
#[derive(Debug, Clone, Copy)]
pub struct Augment {
    spec: AugmentSpec,
    seed: u64,
}

/// What was drawn for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// (side, x0, y0) of the crop in pixels of the image (fractional), if cropping.
    pub crop: Option<(f32, f32, f32)>,
    pub flip: bool,
}

impl Augment {
    /// `None` when the spec asks for nothing.
    pub fn new(spec: Option<AugmentSpec>, seed: u64) -> Option<Augment> {
        spec.filter(|s| s.flip || s.crop.is_some()).map(|spec| Augment { spec, seed })
    }

    /// The draws for image `index` in `epoch` (of a `size` × `size` image).
    pub fn draw(&self, epoch: usize, index: usize, size: usize) -> Draw {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&(epoch as u64).to_le_bytes());
        key[16..24].copy_from_slice(&(index as u64).to_le_bytes());
        key[24..].copy_from_slice(b"augment\0");
        let mut rng = ChaCha8Rng::from_seed(key);
        let crop = self.spec.crop.map(|[lo, hi]| {
            let fraction = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
            let side = (fraction * size as f64) as f32;
            let room = size as f32 - side;
            (side, rng.gen::<f32>() * room, rng.gen::<f32>() * room)
        });
        let flip = self.spec.flip && rng.gen::<bool>();
        Draw { crop, flip }
    }

    /// Applies the draws of image `index` in `epoch` to `image` (u8 CHW, `channels` × `size`²).
    pub fn apply(&self, epoch: usize, index: usize, image: &mut [u8], channels: usize, size: usize) {
        let draw = self.draw(epoch, index, size);
        if let Some((side, x0, y0)) = draw.crop {
            crop_resize(image, channels, size, side, x0, y0);
        }
        if draw.flip {
            for row in image.chunks_exact_mut(size) {
                row.reverse();
            }
        }
        debug_assert_eq!(image.len(), channels * size * size);
    }
}

/// Source coordinate, lower neighbour and its weight for each output coordinate of a crop of
/// `side` pixels from `start` resized to `size` (pixel centres aligned, as bilinear resizing
/// with `align_corners = false`).
fn taps(size: usize, side: f32, start: f32) -> Vec<(usize, usize, f32)> {
    let scale = side / size as f32;
    (0..size)
        .map(|u| {
            let x = (start + (u as f32 + 0.5) * scale - 0.5).clamp(0.0, (size - 1) as f32);
            let lo = x.floor() as usize;
            (lo, (lo + 1).min(size - 1), x - lo as f32)
        })
        .collect()
}

/// Replaces `image` by its square crop (`side` pixels at (`x0`, `y0`)) resized back to `size`.
fn crop_resize(image: &mut [u8], channels: usize, size: usize, side: f32, x0: f32, y0: f32) {
    let (xs, ys) = (taps(size, side, x0), taps(size, side, y0));
    let plane = size * size;
    let mut source = vec![0u8; plane];
    for c in 0..channels {
        let out = &mut image[c * plane..(c + 1) * plane];
        source.copy_from_slice(out);
        for (v, &(y_lo, y_hi, wy)) in ys.iter().enumerate() {
            let (top, bottom) = (&source[y_lo * size..(y_lo + 1) * size], &source[y_hi * size..(y_hi + 1) * size]);
            for (u, &(x_lo, x_hi, wx)) in xs.iter().enumerate() {
                let t = top[x_lo] as f32 + (top[x_hi] as f32 - top[x_lo] as f32) * wx;
                let b = bottom[x_lo] as f32 + (bottom[x_hi] as f32 - bottom[x_lo] as f32) * wx;
                out[v * size + u] = (t + (b - t) * wy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}
