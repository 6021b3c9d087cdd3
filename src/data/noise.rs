//! Label noise on the training set, deterministic from the noise seed and independent of the
//! loss, so every loss of an experiment sees the same noisy images. `flip` gives an image another
//! training identity's label (closed set); `outlier` replaces the image with one of an identity
//! outside both the training and held-out sets and keeps the label (open set); `mixed` does half
//! of each. The result carries a per-image mask so telemetry can split clean from noisy samples.

use super::synthetic;
use super::Dataset;
use crate::spec::{DataSpec, NoiseKind, NoiseSetting};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// The training set one trial sees: images, the labels it trains with, and which are noisy.
#[derive(Clone)]
pub struct TrainSet {
    /// The images: the clean set, or under outlier noise an in-memory copy with images replaced.
    pub images: Arc<dyn Dataset>,
    /// The label each image is trained with (flip noise changed some).
    pub labels: Vec<i64>,
    /// `noisy[i]`: image i's label or pixels were corrupted. Empty for a clean set.
    pub noisy: Vec<bool>,
}

impl TrainSet {
    pub fn is_clean(&self) -> bool {
        self.noisy.is_empty()
    }

    pub fn noisy_count(&self) -> usize {
        self.noisy.iter().filter(|&&n| n).count()
    }
}

/// The first identity of the outlier pool: after the training and held-out identities.
pub fn first_outlier_identity(spec: &DataSpec) -> usize {
    spec.identities + spec.heldout_identities
}

/// Applies `noise` to the clean training set `clean` (made from `spec`). Outlier noise renders
/// synthetic identities into an in-memory copy, so it needs an in-memory set (the spec allows it
/// only for synthetic data).
pub fn apply(clean: &Arc<dyn Dataset>, spec: &DataSpec, noise: &NoiseSetting) -> TrainSet {
    let labels = clean.class_labels().to_vec();
    if noise.is_clean() {
        return TrainSet { images: clean.clone(), labels, noisy: Vec::new() };
    }
    let n = clean.len();
    let count = ((noise.ratio * n as f64).round() as usize).min(n);
    let mut rng = ChaCha8Rng::seed_from_u64(noise.seed ^ 0x006e_6f69_7365);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let chosen = &order[..count];
    let flips = match noise.kind {
        NoiseKind::Flip => count,
        NoiseKind::Outlier => 0,
        NoiseKind::Mixed => count / 2,
        NoiseKind::None => unreachable!("handled above"),
    };
    let mut set = TrainSet { images: clean.clone(), labels, noisy: vec![false; n] };
    let mut replaced = (flips < count)
        .then(|| clean.in_memory().expect("outlier noise needs an in-memory (synthetic) training set").clone());
    let classes = clean.num_classes() as i64;
    let image_len = clean.channels() * clean.size() * clean.size();
    for (k, &i) in chosen.iter().enumerate() {
        set.noisy[i] = true;
        if k < flips {
            let shift = rng.gen_range(1..classes.max(2));
            set.labels[i] = (set.labels[i] + shift) % classes;
        } else if let Some(images) = replaced.as_mut() {
            let identity = first_outlier_identity(spec) + rng.gen_range(0..noise.outlier_identities.max(1));
            let image = rng.gen_range(0..spec.images_per_identity);
            let pixels = synthetic::render_one(spec, identity, image);
            images.pixels[i * image_len..(i + 1) * image_len].copy_from_slice(&pixels);
        }
    }
    if let Some(images) = replaced {
        set.images = Arc::new(images);
    }
    set
}
