//! The MegaFace devkit's file formats.
//!
//! - Lists (`facescrub_features_list.json`, `megaface_features_list.json_<size>_<set>`): a JSON
//!   object with `"path"` (image paths relative to a feature root) and, for probes, `"id"` (the
//!   identity of each path).
//! - Per-image feature files: an OpenCV-mat header of four little-endian int32 — rows, cols,
//!   stride (bytes per row), type (5 = CV_32FC1) — then rows × cols f32. insightface writes a
//!   512-d feature as rows = 512, cols = 1, stride = 4, type = 5; the file is `<root>/<path><suffix>`.
//! - Noise lists (insightface's `facescrub_noises.txt`, `megaface_noises.txt`): one image per
//!   line, `#` comments; a line of tab-separated fields names the image in its last field.

use crate::error::InputError;
use crate::metrics::textfile;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// OpenCV's type code for single-channel f32.
pub const CV_32FC1: i32 = 5;

/// A devkit list: image paths and, for probe lists, their identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevkitList {
    pub paths: Vec<String>,
    pub ids: Option<Vec<String>>,
}

/// Reads a devkit JSON list; `need_ids` for the probe list.
pub fn read_list(path: &Path, need_ids: bool) -> Result<DevkitList, InputError> {
    parse_list(path, &textfile::read(path)?, need_ids)
}

/// Parses the bytes of a devkit JSON list; `path` only names the file in errors.
pub fn parse_list(path: &Path, bytes: &[u8], need_ids: bool) -> Result<DevkitList, InputError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| InputError::line(path, e.line(), format!("invalid JSON at column {}: {e}", e.column())))?;
    let obj = value.as_object().ok_or_else(|| {
        InputError::file(path, "expected a JSON object with a \"path\" list (the devkit's list format)")
    })?;
    let strings = |key: &str| -> Result<Option<Vec<String>>, InputError> {
        let Some(v) = obj.get(key) else { return Ok(None) };
        let arr = v.as_array().ok_or_else(|| InputError::file(path, format!("\"{key}\" is not a list")))?;
        arr.iter()
            .enumerate()
            .map(|(i, e)| match e {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                other => Err(InputError::record(path, i, format!("\"{key}\"[{i}] is {other}, expected a string"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    let paths = strings("path")?.ok_or_else(|| InputError::file(path, "no \"path\" list"))?;
    let ids = strings("id")?;
    if need_ids && ids.is_none() {
        return Err(InputError::file(path, "no \"id\" list: a probe list names the identity of every path"));
    }
    if let Some(ids) = &ids {
        if ids.len() != paths.len() {
            return Err(InputError::file(path, format!("{} ids for {} paths", ids.len(), paths.len())));
        }
    }
    if paths.is_empty() {
        return Err(InputError::file(path, "the \"path\" list is empty"));
    }
    Ok(DevkitList { paths, ids })
}

/// The bytes of a feature file for `feature` (rows = len, cols = 1, stride = 4, CV_32FC1).
pub fn encode_mat(feature: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 4 * feature.len());
    for v in [feature.len() as i32, 1, 4, CV_32FC1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in feature {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a feature file into `out` (cleared first); returns the feature dimension.
pub fn decode_mat(path: &Path, bytes: &[u8], out: &mut Vec<f32>) -> Result<usize, InputError> {
    if bytes.len() < 16 {
        return Err(InputError::file(
            path,
            format!("truncated: {} bytes, shorter than the 16-byte mat header", bytes.len()),
        ));
    }
    let h: Vec<i32> = bytes[..16].chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let (rows, cols, stride, kind) = (h[0], h[1], h[2], h[3]);
    if kind != CV_32FC1 {
        return Err(InputError::file(
            path,
            format!("mat type {kind}; expected {CV_32FC1} (CV_32FC1, one f32 channel)"),
        ));
    }
    if rows <= 0 || cols <= 0 {
        return Err(InputError::file(
            path,
            format!("mat header rows = {rows}, cols = {cols}; expected positive sizes"),
        ));
    }
    let row_bytes = 4 * i64::from(cols);
    if i64::from(stride) != row_bytes {
        return Err(InputError::file(
            path,
            format!("mat stride {stride} bytes for {cols} f32 columns; expected a continuous matrix ({row_bytes})"),
        ));
    }
    let data = &bytes[16..];
    let need = row_bytes as u128 * rows as u128;
    if data.len() as u128 != need {
        let what = if (data.len() as u128) < need { "truncated" } else { "too long" };
        return Err(InputError::file(
            path,
            format!("{what}: a {rows}×{cols} f32 mat needs {need} data bytes, found {}", data.len()),
        ));
    }
    let n = data.len() / 4;
    out.clear();
    out.extend(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    Ok(n)
}

/// Reads one feature file.
pub fn read_mat(path: &Path) -> Result<Vec<f32>, InputError> {
    let bytes =
        std::fs::read(path).map_err(|e| InputError::file(path, format!("cannot read the feature file: {e}")))?;
    let mut out = Vec::new();
    decode_mat(path, &bytes, &mut out)?;
    Ok(out)
}

/// Writes one feature file.
pub fn write_mat(path: &Path, feature: &[f32]) -> anyhow::Result<()> {
    crate::store::write_atomic(path, &encode_mat(feature))
}

/// Reads a noise list: the set of image names it lists.
pub fn read_noise_list(path: &Path) -> Result<HashSet<String>, InputError> {
    parse_noise_list(path, &textfile::read(path)?)
}

/// Parses the bytes of a noise list; `path` only names the file in errors.
pub fn parse_noise_list(path: &Path, bytes: &[u8]) -> Result<HashSet<String>, InputError> {
    let mut out = HashSet::new();
    for (n, line) in textfile::lines(bytes) {
        let text = std::str::from_utf8(line).map_err(|_| InputError::line(path, n, "line is not valid UTF-8 text"))?;
        let text = text.trim();
        if text.starts_with('#') {
            continue;
        }
        let name = text.split('\t').next_back().unwrap_or(text).trim();
        out.insert(name.to_string());
    }
    Ok(out)
}

/// Where feature files live: `<root>/<path><suffix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureLayout {
    pub probe_root: PathBuf,
    pub distractor_root: PathBuf,
    pub suffix: String,
}

impl FeatureLayout {
    pub fn probe(&self, path: &str) -> PathBuf {
        self.probe_root.join(format!("{path}{}", self.suffix))
    }

    pub fn distractor(&self, path: &str) -> PathBuf {
        self.distractor_root.join(format!("{path}{}", self.suffix))
    }
}

/// Whether `path` is named by a noise list: by its last `components` path components (FaceScrub
/// noise names files, MegaFace noise names `a/b/file`).
pub fn is_noise(noise: &HashSet<String>, path: &str, components: usize) -> bool {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let tail = parts[parts.len().saturating_sub(components)..].join("/");
    noise.contains(&tail)
}
