//! Encoded images (JPEG files, `.bin` pack entries) → an [`ImageSet`] a network can embed:
//! decoded in parallel, converted to the network's channels (grey or RGB) and resized to its
//! input size (bilinear). Errors name the file or the pack record.

use crate::data::ImageSet;
use crate::error::InputError;
use image::imageops::FilterType;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Decodes one encoded image into `channels` × `size` × `size` u8 pixels (CHW).
pub fn decode(bytes: &[u8], channels: usize, size: usize) -> Result<Vec<u8>, String> {
    let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode the image: {e}"))?;
    let s = size as u32;
    match channels {
        1 => {
            let grey = image::imageops::resize(&img.to_luma8(), s, s, FilterType::Triangle);
            Ok(grey.into_raw())
        }
        3 => {
            let rgb = image::imageops::resize(&img.to_rgb8(), s, s, FilterType::Triangle);
            let hwc = rgb.into_raw();
            let plane = size * size;
            let mut chw = vec![0u8; 3 * plane];
            for (p, px) in hwc.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    chw[c * plane + p] = px[c];
                }
            }
            Ok(chw)
        }
        other => Err(format!("unsupported channel count {other}")),
    }
}

fn assemble(decoded: Vec<Vec<u8>>, channels: usize, size: usize) -> ImageSet {
    let n = decoded.len();
    ImageSet { pixels: decoded.concat(), labels: vec![0; n], num_classes: 1, channels, size }
}

/// Loads `root/<relative>` for every relative path, in order.
pub fn load_files(root: &Path, relative: &[String], channels: usize, size: usize) -> Result<ImageSet, InputError> {
    let paths: Vec<PathBuf> = relative.iter().map(|rel| root.join(rel)).collect();
    load_paths(&paths, channels, size)
}

/// Loads every file of `paths`, in order.
pub fn load_paths(paths: &[PathBuf], channels: usize, size: usize) -> Result<ImageSet, InputError> {
    let decoded = paths
        .par_iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).map_err(|e| InputError::file(path, format!("cannot read the image: {e}")))?;
            decode(&bytes, channels, size).map_err(|m| InputError::file(path, m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(assemble(decoded, channels, size))
}

/// Decodes in-memory encoded images (the records of a `.bin` pack at `source`).
pub fn load_encoded(source: &Path, encoded: &[Vec<u8>], channels: usize, size: usize) -> Result<ImageSet, InputError> {
    let decoded = encoded
        .par_iter()
        .enumerate()
        .map(|(i, bytes)| decode(bytes, channels, size).map_err(|m| InputError::record(source, i, m)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(assemble(decoded, channels, size))
}
