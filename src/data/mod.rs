//! Datasets: the built-in synthetic identities ([`synthetic`]), image folders ([`folder`]) and
//! insightface RecordIO packs ([`recordio`]), label noise on top ([`noise`]), and the image sets
//! of real evaluation files ([`images`]). Training reads any of them through [`Dataset`], batch by
//! batch, decoded and augmented ahead of the step by [`loader`]; synthetic data and every
//! evaluation set are held in memory as an [`ImageSet`] of u8 pixels, while folders and RecordIO
//! packs are read from disk as the batches need them, so memory stays bounded whatever their size.

pub mod augment;
pub mod folder;
pub mod images;
pub mod loader;
pub mod noise;
pub mod recordio;
pub mod synthetic;

use crate::error::InputError;
use crate::spec::{BadImagePolicy, DataKind, DataSpec};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// What a dataset knows without reading pixels: one label per image, the class count, and the
/// shape every image is read in.
pub struct Layout<'a> {
    /// Class index of each image (0..num_classes).
    pub labels: &'a [i64],
    pub num_classes: usize,
    pub channels: usize,
    /// Images are `size` × `size`.
    pub size: usize,
}

/// A labelled set of images of one shape that training reads by index.
pub trait Dataset: Send + Sync {
    fn layout(&self) -> Layout<'_>;
    fn len(&self) -> usize {
        self.layout().labels.len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Classes: labels are `0..num_classes()`.
    fn num_classes(&self) -> usize {
        self.layout().num_classes
    }
    fn channels(&self) -> usize {
        self.layout().channels
    }
    /// Images are `size` × `size`.
    fn size(&self) -> usize {
        self.layout().size
    }
    /// One label per image.
    fn class_labels(&self) -> &[i64] {
        self.layout().labels
    }
    /// Writes image `i` (u8, channels × size × size, CHW) into `out`; `Err` names the file and
    /// the record or byte offset that could not be read or decoded.
    fn read(&self, i: usize, out: &mut [u8]) -> Result<(), InputError>;
    /// The pixels, when the set is held in memory (label noise that replaces images needs them).
    fn in_memory(&self) -> Option<&ImageSet> {
        None
    }
}

/// The training identities of `spec`: synthetic (in memory), or read from the folder or
/// RecordIO pack as training goes.
pub fn training_set(spec: &DataSpec) -> Result<Arc<dyn Dataset>, InputError> {
    Ok(match (spec.kind, &spec.path) {
        (DataKind::Folder, Some(root)) => Arc::new(folder::FolderSet::open(spec, root, 0, spec.identities)?),
        (DataKind::Recordio, Some(root)) => Arc::new(recordio::RecordSet::open(spec, root, 0, spec.identities)?),
        _ => Arc::new(synthetic::training_set(spec)),
    })
}

/// The held-out identities of `spec` (disjoint from the training ones), decoded into memory.
pub fn heldout_set(spec: &DataSpec) -> Result<ImageSet, InputError> {
    let (first, count) = (spec.identities, spec.heldout_identities);
    match (spec.kind, &spec.path) {
        (DataKind::Folder, Some(root)) => {
            load_all(&folder::FolderSet::open(spec, root, first, count)?, spec.on_bad_image)
        }
        (DataKind::Recordio, Some(root)) => {
            load_all(&recordio::RecordSet::open(spec, root, first, count)?, spec.on_bad_image)
        }
        _ => Ok(synthetic::heldout_set(spec)),
    }
}

/// Every image of `set` decoded into memory (in parallel, as a batch of [`loader`]); under
/// `Skip` unreadable images are left out, under `Stop` the first one is the error.
pub fn load_all(set: &dyn Dataset, policy: BadImagePolicy) -> Result<ImageSet, InputError> {
    let all: Vec<usize> = (0..set.len()).collect();
    let options = loader::LoaderOptions { workers: 1, prefetch: 1, policy, augment: None };
    let read = loader::load_batch(set, &all, 0, &options)?;
    let labels = read.indices.iter().map(|&i| set.class_labels()[i]).collect();
    Ok(ImageSet {
        pixels: read.pixels,
        labels,
        num_classes: set.num_classes(),
        channels: set.channels(),
        size: set.size(),
    })
}

/// u8 images (`n` × channels × size², CHW each) as the network's input: floats in [−1, 1],
/// 2x/255 − 1 (the same map as insightface's (x/255 − 0.5)/0.5), shape [n, c, h, w], on `device`.
pub fn input_tensor(pixels: &[u8], n: usize, channels: usize, size: usize, device: Device) -> Tensor {
    let shape = [n as i64, channels as i64, size as i64, size as i64];
    Tensor::from_slice(pixels)
        .reshape(shape)
        .to_device(device)
        .to_kind(Kind::Float)
        .g_mul_scalar(2.0 / 255.0)
        .g_sub_scalar(1.0)
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

    /// Images `indices` as floats in [-1, 1], shape [b, c, h, w], on `device` ([`input_tensor`]).
    pub fn images(&self, indices: &[usize], device: Device) -> Tensor {
        let len = self.image_len();
        let mut buf = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            buf.extend_from_slice(&self.pixels[i * len..(i + 1) * len]);
        }
        input_tensor(&buf, indices.len(), self.channels, self.size, device)
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

impl Dataset for ImageSet {
    fn layout(&self) -> Layout<'_> {
        Layout { labels: &self.labels, num_classes: self.num_classes, channels: self.channels, size: self.size }
    }
    fn read(&self, i: usize, out: &mut [u8]) -> Result<(), InputError> {
        let len = self.image_len();
        out.copy_from_slice(&self.pixels[i * len..(i + 1) * len]);
        Ok(())
    }
    fn in_memory(&self) -> Option<&ImageSet> {
        Some(self)
    }
}
