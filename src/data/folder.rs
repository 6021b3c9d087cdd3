//! Image-folder datasets: `<path>/<identity>/<image>.{jpg,jpeg,png}`. Identity directories are
//! taken in name order: the first `identities` train, the next `heldout_identities` are held out.
//! Each identity contributes at most `images_per_identity` images (in name order). A
//! [`FolderSet`] keeps only the paths and labels; an image is read and decoded (converted to the
//! network's channels, resized bilinearly to `image_size`) when a batch needs it, so memory does
//! not grow with the dataset. This module also holds the one image decoder. Errors name the
//! directory or file.

use super::{Dataset, ImageSet, Layout};
use crate::error::InputError;
use crate::spec::DataSpec;
use image::imageops::FilterType;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The largest image side accepted, in pixels. Face crops are far smaller; a header declaring more
/// is refused before any pixel is allocated, so a corrupt file cannot stall a run for minutes.
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// Decodes one encoded image (JPEG or PNG) of at most [`MAX_IMAGE_SIDE`] px a side.
pub fn decode_bounded(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    let mut reader = image::io::Reader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot decode the image: {e}"))?;
    let mut limits = image::io::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => {
            format!("cannot decode the image: larger than {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} px, or too large to decode in 512 MiB")
        }
        e => format!("cannot decode the image: {e}"),
    })
}

/// Decodes one encoded image (JPEG or PNG) into `channels` × `size` × `size` u8 pixels (CHW).
pub fn decode(bytes: &[u8], channels: usize, size: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; channels * size * size];
    decode_into(bytes, channels, size, &mut out)?;
    Ok(out)
}

/// [`decode`] into `out` (`channels` × `size`² bytes). An image already `size` × `size` is not
/// resized (the common case of aligned 112×112 face crops).
pub fn decode_into(bytes: &[u8], channels: usize, size: usize, out: &mut [u8]) -> Result<(), String> {
    let img = decode_bounded(bytes)?;
    let s = size as u32;
    let same = img.width() == s && img.height() == s;
    match channels {
        1 => {
            let luma = img.to_luma8();
            let luma = if same { luma } else { image::imageops::resize(&luma, s, s, FilterType::Triangle) };
            out.copy_from_slice(luma.as_raw());
        }
        3 => {
            let rgb = img.into_rgb8();
            let rgb = if same { rgb } else { image::imageops::resize(&rgb, s, s, FilterType::Triangle) };
            let plane = size * size;
            let (r, rest) = out.split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            for (p, px) in rgb.as_raw().chunks_exact(3).enumerate() {
                r[p] = px[0];
                g[p] = px[1];
                b[p] = px[2];
            }
        }
        other => return Err(format!("unsupported channel count {other}")),
    }
    Ok(())
}

/// Decodes `paths` in parallel, in order, into one image set (labels all 0: the caller sets them).
pub fn load_paths(paths: &[PathBuf], channels: usize, size: usize) -> Result<ImageSet, InputError> {
    let decoded = paths
        .par_iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).map_err(|e| InputError::file(path, format!("cannot read the image: {e}")))?;
            decode(&bytes, channels, size).map_err(|m| InputError::file(path, m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n = decoded.len();
    Ok(ImageSet { pixels: decoded.concat(), labels: vec![0; n], num_classes: 1, channels, size })
}

fn sorted_entries(dir: &Path, want_dirs: bool) -> Result<Vec<PathBuf>, InputError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| InputError::file(dir, format!("cannot list the directory: {e}")))?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            if want_dirs {
                p.is_dir()
            } else {
                let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
                p.is_file() && matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png"))
            }
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Identities `first..first + count` (in directory-name order) of a folder dataset, read from
/// disk image by image.
pub struct FolderSet {
    paths: Vec<PathBuf>,
    labels: Vec<i64>,
    num_classes: usize,
    channels: usize,
    size: usize,
}

impl FolderSet {
    /// Lists identities `first..first + count` of the folder dataset at `root` (no image is read).
    pub fn open(spec: &DataSpec, root: &Path, first: usize, count: usize) -> Result<FolderSet, InputError> {
        let identities = sorted_entries(root, true)?;
        if identities.len() < first + count {
            return Err(InputError::file(
                root,
                format!(
                    "has {} identity directories; data.identities + data.heldout_identities needs {}",
                    identities.len(),
                    first + count
                ),
            ));
        }
        let mut paths = Vec::new();
        let mut labels = Vec::new();
        for (label, dir) in identities[first..first + count].iter().enumerate() {
            let images = sorted_entries(dir, false)?;
            if images.is_empty() {
                return Err(InputError::file(dir, "holds no .jpg, .jpeg or .png image"));
            }
            for path in images.into_iter().take(spec.images_per_identity) {
                paths.push(path);
                labels.push(label as i64);
            }
        }
        Ok(FolderSet { paths, labels, num_classes: count, channels: spec.channels, size: spec.image_size })
    }
}

impl Dataset for FolderSet {
    fn layout(&self) -> Layout<'_> {
        Layout { labels: &self.labels, num_classes: self.num_classes, channels: self.channels, size: self.size }
    }
    fn read(&self, i: usize, out: &mut [u8]) -> Result<(), InputError> {
        let path = &self.paths[i];
        let bytes = std::fs::read(path).map_err(|e| InputError::file(path, format!("cannot read the image: {e}")))?;
        decode_into(&bytes, self.channels, self.size, out).map_err(|m| InputError::file(path, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::GrayImage::from_pixel(width, height, image::Luma([7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageOutputFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn images_larger_than_the_limit_are_refused_before_decoding() {
        assert_eq!(decode(&png(MAX_IMAGE_SIDE, 2), 1, 2).unwrap(), vec![7; 4]);
        for (w, h) in [(MAX_IMAGE_SIDE + 1, 1), (1, MAX_IMAGE_SIDE + 1)] {
            let e = decode(&png(w, h), 1, 2).unwrap_err();
            assert!(e.contains("larger than 4096×4096 px"), "{e}");
        }
    }
}
