//! The bodies of the fuzz targets, one function per parser of outside input. They are shared by
//! the cargo-fuzz targets (`fuzz/fuzz_targets/<target>.rs`, one line each) and the stable replay
//! test (`tests/fuzz_regressions.rs`), which runs every seed and every kept crash through them.
//!
//! A target panics only on a bug: a rejected input must be an error naming the file (and, where
//! the parser knows them, the line or record), and an accepted one must satisfy its format's
//! invariants. Panics, aborts, allocations beyond libFuzzer's RSS limit and hangs are what the
//! fuzzer reports. Each returns whether the parser accepted the input (the replay test checks
//! that the seeds meant to be valid are).

use p2sbench::data::images;
use p2sbench::error::InputError;
use p2sbench::metrics::ijbc::meta;
use p2sbench::metrics::megaface::formats;
use p2sbench::metrics::{lfw, npy, pickle, Features};
use std::path::Path;

/// A target's body: runs one input, returns whether the parser accepted it.
pub type Target = fn(&[u8]) -> bool;

/// Every target: its name (the fuzz target, and the folder of its seeds and regressions) and body.
pub const TARGETS: &[(&str, Target)] = &[
    ("spec_toml", spec_toml),
    ("lfw_pairs", lfw_pairs),
    ("image_list", image_list),
    ("bin_pack", bin_pack),
    ("npy", npy),
    ("megaface_list", megaface_list),
    ("megaface_mat", megaface_mat),
    ("megaface_noise", megaface_noise),
    ("ijbc_images", ijbc_images),
    ("ijbc_pairs", ijbc_pairs),
    ("ijbc_landmarks", ijbc_landmarks),
    ("ijbc_1n", ijbc_1n),
    ("image_decode", image_decode),
    ("recordio", recordio),
    ("onnx", onnx),
];

/// The file name every error must carry.
const FILE: &str = "fuzz-input";

/// The value of an accepted input, or `None` after checking that the error names the file.
fn accepted<T>(r: Result<T, InputError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(e.location.starts_with(FILE), "error not located in the file: {e}");
            assert!(!e.message.trim().is_empty(), "error without a message at {}", e.location);
            None
        }
    }
}

/// Experiment TOML (`spec::parse_with`, without file-existence checks).
pub fn spec_toml(data: &[u8]) -> bool {
    // The loader reads the file as UTF-8 text; other bytes are an I/O error before parsing.
    let Ok(text) = std::str::from_utf8(data) else { return false };
    match p2sbench::spec::parse_with(Path::new(FILE), text, false) {
        Ok(exp) => {
            assert!(!exp.trials.is_empty(), "an accepted experiment has trials");
            let ids: std::collections::BTreeSet<String> = exp.trials.iter().map(|t| t.id()).collect();
            assert_eq!(ids.len(), exp.trials.len(), "trial ids are unique");
            true
        }
        Err(e) => {
            assert!(e.to_string().starts_with(FILE), "error not located in the file: {e}");
            false
        }
    }
}

/// LFW `pairs.txt` (View 2).
pub fn lfw_pairs(data: &[u8]) -> bool {
    let Some(p) = accepted(lfw::parse_pairs(Path::new(FILE), data)) else { return false };
    assert_eq!(p.pairs.len(), p.folds * 2 * p.per_fold);
    let (images, pairs) = lfw::unique_images(&p);
    assert!(pairs.iter().all(|q| q.a < images.len() && q.b < images.len()));
    true
}

/// An image list (`IMAGES.txt`): one path per line, no duplicates.
pub fn image_list(data: &[u8]) -> bool {
    let Some(list) = accepted(lfw::parse_list(Path::new(FILE), data)) else { return false };
    let distinct: std::collections::HashSet<&String> = list.iter().collect();
    assert_eq!(distinct.len(), list.len(), "an accepted list has no duplicates");
    true
}

/// insightface `.bin` packs (the pickle reader and the pack's shape checks).
pub fn bin_pack(data: &[u8]) -> bool {
    if let Ok(value) = pickle::parse(data) {
        let held = held(&value, &mut Default::default());
        assert!(held <= data.len(), "a {}-byte pickle holds {held} bytes", data.len());
    }
    let Some(pack) = accepted(lfw::parse_bin(Path::new(FILE), data)) else { return false };
    assert_eq!(pack.images.len(), 2 * pack.issame.len());
    let total: usize = pack.images.iter().map(Vec::len).sum();
    assert!(total <= data.len(), "{total} bytes of images from a {}-byte pack", data.len());
    true
}

/// `.npy` feature files.
pub fn npy(data: &[u8]) -> bool {
    let Some(f) = accepted(npy::decode(Path::new(FILE), data)) else { return false };
    assert_eq!(f.data.len(), f.rows * f.dim);
    assert!(4 * f.data.len() < data.len(), "the data section fits in the file");
    let again = npy::decode(Path::new(FILE), &npy::encode(&f)).expect("what encode writes, decode reads");
    assert!(same_bits(&again, &f), "encode then decode gives the array back");
    true
}

/// MegaFace devkit JSON lists, as a distractor list and as a probe list.
pub fn megaface_list(data: &[u8]) -> bool {
    let mut any = false;
    for need_ids in [false, true] {
        if let Some(list) = accepted(formats::parse_list(Path::new(FILE), data, need_ids)) {
            assert!(!list.paths.is_empty());
            assert!(!need_ids || list.ids.is_some());
            assert!(list.ids.as_ref().is_none_or(|ids| ids.len() == list.paths.len()));
            any = true;
        }
    }
    any
}

/// MegaFace per-image feature files (OpenCV mat header + f32 data).
pub fn megaface_mat(data: &[u8]) -> bool {
    let mut out = vec![1.0];
    let Some(n) = accepted(formats::decode_mat(Path::new(FILE), data, &mut out)) else { return false };
    assert_eq!(out.len(), n);
    assert_eq!(16 + 4 * n, data.len());
    true
}

/// MegaFace noise lists (`facescrub_noises.txt`, `megaface_noises.txt`).
pub fn megaface_noise(data: &[u8]) -> bool {
    let Some(noise) = accepted(formats::parse_noise_list(Path::new(FILE), data)) else { return false };
    for name in &noise {
        assert!(!name.contains('\t') && name.trim() == name, "a name is one trimmed field: {name:?}");
        assert!(formats::is_noise(&noise, name, 1) || name.contains('/'));
    }
    true
}

/// IJB-C `ijbc_face_tid_mid.txt`.
pub fn ijbc_images(data: &[u8]) -> bool {
    let Some(list) = accepted(meta::parse_image_list(Path::new(FILE), data)) else { return false };
    assert!(!list.names.is_empty());
    assert_eq!(list.names.len(), list.templates.len());
    assert_eq!(list.names.len(), list.medias.len());
    true
}

/// IJB-C `ijbc_template_pair_label.txt`.
pub fn ijbc_pairs(data: &[u8]) -> bool {
    let Some(pairs) = accepted(meta::parse_pairs(Path::new(FILE), data)) else { return false };
    assert!(!pairs.t1.is_empty());
    assert_eq!(pairs.t1.len(), pairs.t2.len());
    assert_eq!(pairs.t1.len(), pairs.genuine.len());
    true
}

/// IJB-C `ijbc_name_5pts_score.txt`, checked against an `ijbc_face_tid_mid.txt`: the input is the
/// image list, a NUL byte, then the landmark file.
pub fn ijbc_landmarks(data: &[u8]) -> bool {
    let Some(split) = data.iter().position(|&b| b == 0) else { return false };
    let images_path = Path::new("fuzz-images");
    let Ok(images) = meta::parse_image_list(images_path, &data[..split]) else { return false };
    let parsed = meta::parse_landmarks(Path::new(FILE), &data[split + 1..], &images, images_path);
    let Some((landmarks, scores)) = accepted(parsed) else { return false };
    assert_eq!(landmarks.len(), images.names.len());
    assert_eq!(scores.len(), images.names.len());
    assert!(scores.iter().chain(landmarks.iter().flatten().flatten()).all(|v| v.is_finite()));
    true
}

/// IJB-C 1:N gallery and probe CSVs.
pub fn ijbc_1n(data: &[u8]) -> bool {
    let Some(ts) = accepted(meta::parse_1n(Path::new(FILE), data)) else { return false };
    assert!(!ts.templates.is_empty());
    assert_eq!(ts.templates.len(), ts.subjects.len());
    assert!(ts.templates.windows(2).all(|w| w[0] < w[1]), "templates in increasing order");
    true
}

/// The one image decoder (JPEG/PNG → channels × size² pixels), as `.bin` pack records reach it.
/// The first byte picks the network input: grey (even) or RGB (odd), 1 to 64 pixels square.
pub fn image_decode(data: &[u8]) -> bool {
    let Some((&pick, encoded)) = data.split_first() else { return false };
    let channels = if pick & 1 == 0 { 1 } else { 3 };
    let size = 1 + (pick >> 1) as usize % 64;
    let decoded = images::load_encoded(Path::new(FILE), &[encoded.to_vec()], channels, size);
    let Some(set) = accepted(decoded) else { return false };
    assert_eq!(set.pixels.len(), channels * size * size);
    true
}

/// insightface RecordIO packs (`data::recordio`): the input as `train.idx` text, and as
/// `train.rec` with the index its record headers imply (so that the fuzzer explores records
/// rather than index mismatches), opened as identity 0 of 8×8 grey images with every image read.
/// It is accepted when the pack opens.
pub fn recordio(data: &[u8]) -> bool {
    use p2sbench::data::recordio::{self as rio, RecordFile, RecordSet};
    use p2sbench::data::Dataset;
    if let Some(index) = accepted(rio::parse_index(Path::new(FILE), data)) {
        assert!(index.len() <= 4 * data.len() + 1025, "an index larger than its text allows");
    }
    // The index dmlc-core's writer would have made: the offset of each record's first part.
    let (mut offsets, mut pos) = (Vec::new(), 0usize);
    while pos + 8 <= data.len() && data[pos..pos + 4] == rio::MAGIC.to_le_bytes() && offsets.len() < 4096 {
        let word = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
        if word >> 29 <= 1 {
            offsets.push(Some(pos as u64));
        }
        pos += 8 + ((word & ((1 << 29) - 1)) as usize).next_multiple_of(4);
    }
    let index = rio::RecordIndex::from_offsets(offsets);
    let spec: p2sbench::spec::DataSpec =
        toml::from_str("identities = 1\nheldout_identities = 2\nimages_per_identity = 16\nimage_size = 8\n")
            .expect("a data table");
    let rec = RecordFile::in_memory(Path::new(FILE), data.to_vec());
    // A record's labels from its header alone are those of the whole record.
    for (_, offset) in index.listed() {
        if let (Ok(head), Ok(whole)) = (rec.labels_at(offset), rec.record_at(offset)) {
            assert_eq!(Some(head), rio::unpack(&whole).ok().map(|r| r.labels), "header labels at byte {offset}");
        }
    }
    let Some(set) = accepted(RecordSet::select(&spec, rec, Path::new(FILE), &index, 0, 1)) else { return false };
    assert!(set.len() <= 16 && set.class_labels().iter().all(|&l| l == 0));
    for i in 0..set.len() {
        let mut out = vec![0u8; 64];
        let _ = accepted(set.read(i, &mut out));
    }
    true
}

/// The bytes and text a pickle value holds, counting memo copies (shared) once.
fn held(value: &pickle::Value, seen: &mut std::collections::HashSet<usize>) -> usize {
    let mut once = |ptr: *const u8, len: usize| if seen.insert(ptr as usize) { len } else { 0 };
    match value {
        pickle::Value::Bytes(b) => once(b.as_ptr(), b.len()),
        pickle::Value::Str(s) => once(s.as_ptr(), s.len()),
        pickle::Value::List(items) | pickle::Value::Tuple(items) => items.iter().map(|v| held(v, seen)).sum(),
        _ => 0,
    }
}

/// `Features` equality by bits (NaN payloads included).
fn same_bits(a: &Features, b: &Features) -> bool {
    a.rows == b.rows && a.dim == b.dim && a.data.iter().zip(&b.data).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// ONNX face models (`eval --onnx`): the protobuf, the input and output checks, the operators,
/// tract's analysis and optimisation, and a batch of zeros through the graph.
pub fn onnx(data: &[u8]) -> bool {
    let Some(model) = accepted(p2sbench::extract::onnx::OnnxModel::from_bytes(Path::new(FILE), data)) else {
        return false;
    };
    assert!(matches!(model.channels, 1 | 3) && (1..=4096).contains(&model.size), "an accepted input shape");
    assert!(model.dim >= 1, "an accepted embedding");
    true
}
