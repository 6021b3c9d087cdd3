//! Image-folder datasets: `<path>/<identity>/<image>.{jpg,jpeg,png}`. Identity directories are
//! taken in name order: the first `identities` train, the next `heldout_identities` are held out.
//! Each identity contributes at most `images_per_identity` images (in name order). Images are
//! decoded in parallel, converted to the network's channels and resized (bilinear) to
//! `image_size`, and held in memory as u8: about `n · channels · image_size²` bytes. Errors name
//! the directory or file.

use super::ImageSet;
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
    let img = decode_bounded(bytes)?;
    let s = size as u32;
    match channels {
        1 => Ok(image::imageops::resize(&img.to_luma8(), s, s, FilterType::Triangle).into_raw()),
        3 => {
            let hwc = image::imageops::resize(&img.to_rgb8(), s, s, FilterType::Triangle).into_raw();
            let plane = size * size;
            let mut chw = vec![0u8; 3 * plane];
            for (p, px) in hwc.chunks_exact(3).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    chw[c * plane + p] = v;
                }
            }
            Ok(chw)
        }
        other => Err(format!("unsupported channel count {other}")),
    }
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

/// Loads identities `first..first + count` (in directory-name order) of the folder dataset.
pub fn load(spec: &DataSpec, root: &Path, first: usize, count: usize) -> Result<ImageSet, InputError> {
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
    let mut set = load_paths(&paths, spec.channels, spec.image_size)?;
    set.labels = labels;
    set.num_classes = count;
    Ok(set)
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
