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

/// Lower and upper source neighbour and the upper one's weight (in 1/256) for each output
/// coordinate of a crop of `side` pixels from `start` resized to `size` (pixel centres aligned,
/// as bilinear resizing with `align_corners = false`).
fn taps(size: usize, side: f32, start: f32) -> Vec<(usize, usize, u32)> {
    let scale = side / size as f32;
    (0..size)
        .map(|u| {
            let x = (start + (u as f32 + 0.5) * scale - 0.5).clamp(0.0, (size - 1) as f32);
            let lo = x.floor() as usize;
            (lo, (lo + 1).min(size - 1), ((x - lo as f32) * 256.0).round() as u32)
        })
        .collect()
}

/// Replaces `image` by its square crop (`side` pixels at (`x0`, `y0`)) resized back to `size`:
/// bilinear in 8-bit fixed point, rows first (only the source rows the crop reaches), then
/// columns (a few integer operations per pixel, so that augmenting costs little beside decoding).
fn crop_resize(image: &mut [u8], channels: usize, size: usize, side: f32, x0: f32, y0: f32) {
    let (xs, ys) = (taps(size, side, x0), taps(size, side, y0));
    let (first, last) = (ys[0].0, ys[size - 1].1);
    let plane = size * size;
    // Source rows first..=last resampled along x, scaled by 256 (at most 255 · 256: fits u16).
    let mut rows = vec![0u16; (last - first + 1) * size];
    for c in 0..channels {
        let out = &mut image[c * plane..(c + 1) * plane];
        for (source, row) in out.chunks_exact(size).skip(first).zip(rows.chunks_exact_mut(size)) {
            for (r, &(lo, hi, w)) in row.iter_mut().zip(&xs) {
                *r = (source[lo] as u32 * (256 - w) + source[hi] as u32 * w) as u16;
            }
        }
        for (target, &(lo, hi, w)) in out.chunks_exact_mut(size).zip(&ys) {
            let top = &rows[(lo - first) * size..(lo - first + 1) * size];
            let bottom = &rows[(hi - first) * size..(hi - first + 1) * size];
            for ((o, &t), &b) in target.iter_mut().zip(top).zip(bottom) {
                *o = ((t as u32 * (256 - w) + b as u32 * w + (1 << 15)) >> 16) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_image_crop_is_the_identity_and_a_flip_mirrors_rows() {
        let image: Vec<u8> = (0..2 * 4 * 4).map(|v| (v * 7) as u8).collect();
        let mut same = image.clone();
        crop_resize(&mut same, 2, 4, 4.0, 0.0, 0.0);
        assert_eq!(same, image);
        let mut half = vec![0, 100, 0, 0, 100, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        crop_resize(&mut half, 1, 4, 2.0, 0.0, 0.0);
        // The top-left 2×2 block stretched to 4×4: the first row samples 0, 100, 0 at
        // x = 0, 0.25, 0.75, 1.25.
        assert_eq!(half[..4], [0, 25, 75, 75]);
        let aug = Augment::new(Some(AugmentSpec { flip: true, crop: None }), 9).unwrap();
        let flipped = (0..64).find(|&i| aug.draw(0, i, 4).flip).unwrap();
        let mut mirrored = image.clone();
        aug.apply(0, flipped, &mut mirrored, 2, 4);
        assert_eq!(mirrored[..4], [21, 14, 7, 0]);
        assert!((0..64).any(|i| aug.draw(0, i, 4) != aug.draw(1, i, 4)), "each epoch draws anew");
    }
}
