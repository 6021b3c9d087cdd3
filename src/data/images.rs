//! Encoded images (JPEG files, `.bin` pack entries) → an [`ImageSet`] a network can embed:
//! decoded in parallel, converted to the network's channels (grey or RGB) and resized to its
//! input size (bilinear) by [`crate::data::folder`]'s decoder. Errors name the file or the pack
//! record.

use crate::data::{folder, ImageSet};
use crate::error::InputError;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

pub use crate::data::folder::load_paths;

/// Loads `root/<relative>` for every relative path, in order.
pub fn load_files(root: &Path, relative: &[String], channels: usize, size: usize) -> Result<ImageSet, InputError> {
    let paths: Vec<PathBuf> = relative.iter().map(|rel| root.join(rel)).collect();
    load_paths(&paths, channels, size)
}

/// Decodes in-memory encoded images (the records of a `.bin` pack at `source`).
pub fn load_encoded(source: &Path, encoded: &[Vec<u8>], channels: usize, size: usize) -> Result<ImageSet, InputError> {
    let decoded = encoded
        .par_iter()
        .enumerate()
        .map(|(i, bytes)| folder::decode(bytes, channels, size).map_err(|m| InputError::record(source, i, m)))
        .collect::<Result<Vec<_>, _>>()?;
    let n = decoded.len();
    Ok(ImageSet { pixels: decoded.concat(), labels: vec![0; n], num_classes: 1, channels, size })
}
