//! IJB-C's meta files (insightface's `IJBC/meta/` set).
//!
//! - `ijbc_face_tid_mid.txt`: `image template_id media_id` per face image (the feature rows).
//! - `ijbc_template_pair_label.txt`: `template_1 template_2 label` (1 genuine, 0 impostor).
//! - `ijbc_name_5pts_score.txt`: `image x1 y1 … x5 y5 detector_score`, in the same image order.
//! - `ijbc_1N_gallery_G1.csv`, `ijbc_1N_gallery_G2.csv`, `ijbc_1N_probe_mixed.csv`: comma-separated
//!   with a header row; the first two columns are TEMPLATE_ID and SUBJECT_ID, one row per image.
//!
//! The large files are parsed on bytes; every error names the file and the line.

use crate::error::InputError;
use crate::metrics::textfile::{self, parse_u64};
use std::path::Path;

/// The image list: per feature row, its name, template and media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageList {
    pub names: Vec<String>,
    pub templates: Vec<u32>,
    pub medias: Vec<u32>,
}

/// 1:1 template pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PairList {
    pub t1: Vec<u32>,
    pub t2: Vec<u32>,
    pub genuine: Vec<bool>,
}

/// Templates of a 1:N file (gallery or probe set), one entry per distinct template in
/// increasing id order, with the subject of its first row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateSubjects {
    pub templates: Vec<u32>,
    pub subjects: Vec<u32>,
}

impl TemplateSubjects {
    /// From (template, subject) rows: distinct templates, sorted, each with its first subject.
    pub fn from_rows(rows: &[(u32, u32)]) -> TemplateSubjects {
        let mut first: std::collections::BTreeMap<u32, u32> = Default::default();
        for &(t, s) in rows {
            first.entry(t).or_insert(s);
        }
        TemplateSubjects { templates: first.keys().copied().collect(), subjects: first.values().copied().collect() }
    }
}

fn id(path: &Path, line: usize, field: &[u8], what: &str) -> Result<u32, InputError> {
    parse_u64(field).and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
        InputError::line(
            path,
            line,
            format!("expected {what} (a non-negative integer), found {:?}", String::from_utf8_lossy(field)),
        )
    })
}

fn fields_exact<'a>(
    path: &Path,
    line: usize,
    text: &'a [u8],
    n: usize,
    what: &str,
) -> Result<Vec<&'a [u8]>, InputError> {
    let f: Vec<&[u8]> = textfile::fields(text).collect();
    if f.len() != n {
        return Err(InputError::line(
            path,
            line,
            format!("expected {n} fields ({what}), found {}: {:?}", f.len(), String::from_utf8_lossy(text)),
        ));
    }
    Ok(f)
}

/// Reads `ijbc_face_tid_mid.txt`.
pub fn read_image_list(path: &Path) -> Result<ImageList, InputError> {
    parse_image_list(path, &textfile::read(path)?)
}

/// Parses the bytes of `ijbc_face_tid_mid.txt`; `path` only names the file in errors.
pub fn parse_image_list(path: &Path, bytes: &[u8]) -> Result<ImageList, InputError> {
    let mut out = ImageList { names: Vec::new(), templates: Vec::new(), medias: Vec::new() };
    for (n, line) in textfile::lines(bytes) {
        let f = fields_exact(path, n, line, 3, "image template_id media_id")?;
        out.names.push(String::from_utf8_lossy(f[0]).into_owned());
        out.templates.push(id(path, n, f[1], "a template id")?);
        out.medias.push(id(path, n, f[2], "a media id")?);
    }
    if out.names.is_empty() {
        return Err(InputError::file(path, "no images listed"));
    }
    Ok(out)
}

/// Reads `ijbc_template_pair_label.txt`.
pub fn read_pairs(path: &Path) -> Result<PairList, InputError> {
    parse_pairs(path, &textfile::read(path)?)
}

/// Parses the bytes of `ijbc_template_pair_label.txt`; `path` only names the file in errors.
pub fn parse_pairs(path: &Path, bytes: &[u8]) -> Result<PairList, InputError> {
    let approx = bytes.len() / 16;
    let mut out = PairList {
        t1: Vec::with_capacity(approx),
        t2: Vec::with_capacity(approx),
        genuine: Vec::with_capacity(approx),
    };
    for (n, line) in textfile::lines(bytes) {
        let mut f = textfile::fields(line);
        let (a, b, l, extra) = (f.next(), f.next(), f.next(), f.next());
        let (Some(a), Some(b), Some(l), None) = (a, b, l, extra) else {
            return Err(InputError::line(
                path,
                n,
                format!("expected 3 fields (template_1 template_2 label), found {:?}", String::from_utf8_lossy(line)),
            ));
        };
        out.t1.push(id(path, n, a, "a template id")?);
        out.t2.push(id(path, n, b, "a template id")?);
        out.genuine.push(match l {
            b"1" => true,
            b"0" => false,
            other => {
                return Err(InputError::line(
                    path,
                    n,
                    format!("label {:?}: expected 1 (genuine) or 0 (impostor)", String::from_utf8_lossy(other)),
                ))
            }
        });
    }
    if out.t1.is_empty() {
        return Err(InputError::file(path, "no pairs listed"));
    }
    Ok(out)
}

/// Reads the detector scores of `ijbc_name_5pts_score.txt`, checking that its images are those
/// of `images`, in the same order.
pub fn read_scores(path: &Path, images: &ImageList, images_path: &Path) -> Result<Vec<f32>, InputError> {
    Ok(read_landmarks(path, images, images_path)?.1)
}

/// Five landmarks (x, y): left eye, right eye, nose, left and right mouth corners.
pub type Landmarks = [[f32; 2]; 5];

/// Reads `ijbc_name_5pts_score.txt`: per image its five landmarks (x, y) and detector score,
/// checking that its images are those of `images`, in the same order.
pub fn read_landmarks(
    path: &Path,
    images: &ImageList,
    images_path: &Path,
) -> Result<(Vec<Landmarks>, Vec<f32>), InputError> {
    parse_landmarks(path, &textfile::read(path)?, images, images_path)
}

/// Parses the bytes of `ijbc_name_5pts_score.txt` (see [`read_landmarks`]); `path` only names the
/// file in errors.
pub fn parse_landmarks(
    path: &Path,
    bytes: &[u8],
    images: &ImageList,
    images_path: &Path,
) -> Result<(Vec<Landmarks>, Vec<f32>), InputError> {
    let mut scores = Vec::with_capacity(images.names.len());
    let mut landmarks = Vec::with_capacity(images.names.len());
    for (n, line) in textfile::lines(bytes) {
        let f = fields_exact(path, n, line, 12, "image, five landmark points, detector score")?;
        let k = scores.len();
        let name = String::from_utf8_lossy(f[0]);
        match images.names.get(k) {
            Some(expected) if *expected == name => {}
            Some(expected) => {
                return Err(InputError::line(
                    path,
                    n,
                    format!(
                        "image {name:?}, but row {} of {} is {expected:?}; the files must list the same images in the same order",
                        k + 1,
                        images_path.display()
                    ),
                ))
            }
            None => {
                return Err(InputError::line(
                    path,
                    n,
                    format!("more images than the {} of {}", images.names.len(), images_path.display()),
                ))
            }
        }
        let mut values = [0f32; 11];
        for (v, field) in values.iter_mut().zip(&f[1..]) {
            *v = std::str::from_utf8(field)
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| {
                    InputError::line(path, n, format!("expected a number, found {:?}", String::from_utf8_lossy(field)))
                })?;
        }
        let mut points = [[0f32; 2]; 5];
        for (i, p) in points.iter_mut().enumerate() {
            *p = [values[2 * i], values[2 * i + 1]];
        }
        landmarks.push(points);
        scores.push(values[10]);
    }
    if scores.len() != images.names.len() {
        return Err(InputError::file(
            path,
            format!("{} images; {} lists {}", scores.len(), images_path.display(), images.names.len()),
        ));
    }
    Ok((landmarks, scores))
}

/// Reads a 1:N CSV (gallery or probe): TEMPLATE_ID, SUBJECT_ID, … with an optional header row.
pub fn read_1n(path: &Path) -> Result<TemplateSubjects, InputError> {
    parse_1n(path, &textfile::read(path)?)
}

/// Parses the bytes of a 1:N CSV; `path` only names the file in errors.
pub fn parse_1n(path: &Path, bytes: &[u8]) -> Result<TemplateSubjects, InputError> {
    let mut rows = Vec::new();
    for (i, (n, line)) in textfile::lines(bytes).enumerate() {
        let mut f = line.split(|&b| b == b',').map(|f| f.trim_ascii());
        let (t, s) = (f.next().unwrap_or_default(), f.next());
        if i == 0 && parse_u64(t).is_none() {
            continue; // the header row
        }
        let Some(s) = s else {
            return Err(InputError::line(path, n, "expected TEMPLATE_ID,SUBJECT_ID,… (comma-separated)"));
        };
        rows.push((id(path, n, t, "a template id")?, id(path, n, s, "a subject id")?));
    }
    if rows.is_empty() {
        return Err(InputError::file(path, "no templates listed"));
    }
    Ok(TemplateSubjects::from_rows(&rows))
}
