//! Datasets: the built-in synthetic identities ([`synthetic`]) or an image folder ([`folder`]),
//! label noise on top ([`noise`]), and the image sets of real evaluation files ([`images`]). Every dataset is held as an [`ImageSet`] of u8 pixels that
//! turns index lists into float batches.

pub mod folder;
pub mod images;
pub mod noise;
pub mod synthetic;

use crate::error::InputError;
use crate::spec::{DataKind, DataSpec};
use tch::{Device, Kind, Tensor};

/// The training identities of `spec`, synthetic or from its folder.
pub fn training_set(spec: &DataSpec) -> Result<ImageSet, InputError> {
    match (spec.kind, &spec.path) {
        (DataKind::Folder, Some(root)) => folder::load(spec, root, 0, spec.identities),
        _ => Ok(synthetic::training_set(spec)),
    }
}

/// The held-out identities of `spec` (disjoint from the training ones).
pub fn heldout_set(spec: &DataSpec) -> Result<ImageSet, InputError> {
    match (spec.kind, &spec.path) {
        (DataKind::Folder, Some(root)) => folder::load(spec, root, spec.identities, spec.heldout_identities),
        _ => Ok(synthetic::heldout_set(spec)),
    }
}

/// Images (u8, [n, c, h, w] row-major) with one label per image.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    /// Class index within this set (0..num_classes).
    pub labels: Vec<i64>,
    pub num_classes: usize,
    pub channels: usize,
    pub size: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn image_len(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// Images `indices` as floats in [-1, 1], shape [b, c, h, w], on `device`.
    pub fn images(&self, indices: &[usize], device: Device) -> Tensor {
        let len = self.image_len();
        let mut buf = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            buf.extend_from_slice(&self.pixels[i * len..(i + 1) * len]);
        }
        let shape = [indices.len() as i64, self.channels as i64, self.size as i64, self.size as i64];
        Tensor::from_slice(&buf)
            .reshape(shape)
            .to_device(device)
            .to_kind(Kind::Float)
            .g_mul_scalar(2.0 / 255.0)
            .g_sub_scalar(1.0)
    }

    /// The images of identities `range` (labels relabelled from 0), e.g. a validation split.
    pub fn identities(&self, range: std::ops::Range<usize>) -> ImageSet {
        let len = self.image_len();
        let keep: Vec<usize> = (0..self.len()).filter(|&i| range.contains(&(self.labels[i] as usize))).collect();
        ImageSet {
            pixels: keep.iter().flat_map(|&i| self.pixels[i * len..(i + 1) * len].iter().copied()).collect(),
            labels: keep.iter().map(|&i| self.labels[i] - range.start as i64).collect(),
            num_classes: range.len(),
            channels: self.channels,
            size: self.size,
        }
    }

    /// Labels of `indices`, int64 [b], on `device`.
    pub fn labels(&self, indices: &[usize], device: Device) -> Tensor {
        let l: Vec<i64> = indices.iter().map(|&i| self.labels[i]).collect();
        Tensor::from_slice(&l).to_device(device)
    }
}
