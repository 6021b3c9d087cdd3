//! Small real-file protocol inputs written to a directory, for the tests that score them: an LFW
//! `.bin` pack, a MegaFace devkit layout (probe and distractor lists, aligned images) and an IJB-C
//! meta directory with loose crops, landmarks and detector scores. Images are 24×24 RGB JPEGs of
//! smooth patterns, one pattern per "person".

use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

/// What [`write`] wrote, and what went into it.
pub struct RealFiles {
    pub dir: PathBuf,
    /// The .bin pack's encoded images (pair k is images 2k and 2k + 1) and pair flags.
    pub pack_images: Vec<Vec<u8>>,
    pub same: Vec<bool>,
    /// MegaFace: probe paths (under fs/), their identities, distractor paths (under mf/).
    pub probes: Vec<String>,
    pub probe_ids: [u32; 4],
    pub distractors: Vec<String>,
    /// IJB-C: each crop (crops/<k>.jpg), its landmarks and detector score.
    pub crops: Vec<Vec<u8>>,
    pub landmarks: Vec<[[f32; 2]; 5]>,
    pub scores: Vec<f32>,
}

impl RealFiles {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// A 24×24 RGB JPEG of a smooth pattern: a plane wave per channel with `wave`'s frequencies and
/// phases, plus `noise` levels of per-pixel noise drawn from `noise_seed`.
pub fn jpeg(wave: &[f32; 3], noise: u8, noise_seed: u64) -> Vec<u8> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(noise_seed);
    let mut px = Vec::with_capacity(24 * 24 * 3);
    for y in 0..24 {
        for x in 0..24 {
            for c in 0..3 {
                let phase = wave[0] * x as f32 + wave[1] * y as f32 + wave[2] * (c + 1) as f32;
                let v = 128.0 + 90.0 * phase.sin() + r.gen_range(0..=noise) as f32;
                px.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    super::recordio::jpeg(&px, 24)
}

/// A random wave for [`jpeg`]: one "person".
pub fn wave(r: &mut rand_chacha::ChaCha8Rng) -> [f32; 3] {
    [r.gen_range(0.05..0.6), r.gen_range(0.05..0.6), r.gen_range(0.0..6.3)]
}

/// The ArcFace template's landmarks on a 24 × 24 crop, moved by (dx, dy) and scaled by `zoom`
/// about the crop's centre.
pub fn landmarks(dx: f32, dy: f32, zoom: f32) -> [[f32; 2]; 5] {
    let mut out = [[0.0; 2]; 5];
    for (o, p) in out.iter_mut().zip(p2sbench::metrics::align::ARCFACE_TEMPLATE) {
        *o = [12.0 + (p[0] * 24.0 / 112.0 - 12.0) * zoom + dx, 12.0 + (p[1] * 24.0 / 112.0 - 12.0) * zoom + dy];
    }
    out
}

/// Writes under `d`: lfw.bin (40 pairs in 4 folds); fs.json, mf_6.json, mf_2.json with images
/// under fs/ and mf/ (4 probes of 2 identities, 6 distractors in two lists); meta/ and crops/
/// (16 loose crops of 4 subjects, 8 templates of 2 images, each its own media; galleries G1, G2
/// and mixed probes).
pub fn write(d: &Path) -> RealFiles {
    let write = |rel: &str, bytes: &[u8]| {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    };
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // LFW: matched pairs the same person's pattern with other noise, mismatched ones a person and
    // a look-alike (the pattern changed a little).
    let same: Vec<bool> = (0..40).map(|k| (k * 7 + k / 3) % 2 == 0).collect();
    let mut pack_images = Vec::new();
    for (k, &s) in same.iter().enumerate() {
        let left = wave(&mut r);
        let right =
            if s { left } else { [left[0] + r.gen_range(-0.1..0.1), left[1] + r.gen_range(-0.1..0.1), left[2]] };
        pack_images.push(jpeg(&left, 40, 2 * k as u64));
        pack_images.push(jpeg(&right, 40, 2 * k as u64 + 1));
    }
    assert!(pack_images.iter().all(|i| i.len() >= 256), "BINBYTES records");
    write("lfw.bin", &super::pickle_pack(&pack_images, &same));
    // MegaFace.
    let people = [wave(&mut r), wave(&mut r)];
    let probes: Vec<String> = (0..4).map(|k| format!("p{}/{k}.jpg", k / 2)).collect();
    for (k, path) in probes.iter().enumerate() {
        write(&format!("fs/{path}"), &jpeg(&people[k / 2], 60, 100 + k as u64));
    }
    let distractors: Vec<String> = (0..6).map(|k| format!("a/b/{k}.jpg")).collect();
    for (k, path) in distractors.iter().enumerate() {
        write(&format!("mf/{path}"), &jpeg(&wave(&mut r), 40, 150 + k as u64));
    }
    write("fs.json", serde_json::json!({"id": ["p0", "p0", "p1", "p1"], "path": probes}).to_string().as_bytes());
    write("mf_6.json", serde_json::json!({ "path": distractors }).to_string().as_bytes());
    write("mf_2.json", serde_json::json!({"path": &distractors[..2]}).to_string().as_bytes());
    // IJB-C: each crop has its own landmarks (the face moved and scaled) and detector score.
    let subjects: Vec<[f32; 3]> = (0..4).map(|_| wave(&mut r)).collect();
    let (mut tid, mut pts, mut crops, mut marks, mut scores) = (String::new(), String::new(), vec![], vec![], vec![]);
    for k in 0..16usize {
        let crop = jpeg(&subjects[k / 4], 50, 200 + k as u64);
        write(&format!("crops/{k}.jpg"), &crop);
        let lm = landmarks((k % 5) as f32 * 0.8 - 1.6, (k % 3) as f32 * 0.9 - 0.9, 0.8 + 0.03 * k as f32);
        let score = 0.5 + 0.03 * k as f32;
        tid.push_str(&format!("{k}.jpg {} {}\n", k / 2 + 1, k + 1));
        let lm_text: Vec<String> = lm.iter().flat_map(|p| [p[0].to_string(), p[1].to_string()]).collect();
        pts.push_str(&format!("{k}.jpg {} {score}\n", lm_text.join(" ")));
        crops.push(crop);
        marks.push(lm);
        scores.push(score);
    }
    let mut pair_lines = String::new();
    for t1 in 1..=8u32 {
        for t2 in t1 + 1..=8 {
            pair_lines.push_str(&format!("{t1} {t2} {}\n", u8::from((t1 - 1) / 2 == (t2 - 1) / 2)));
        }
    }
    write("meta/ijbc_face_tid_mid.txt", tid.as_bytes());
    write("meta/ijbc_name_5pts_score.txt", pts.as_bytes());
    write("meta/ijbc_template_pair_label.txt", pair_lines.as_bytes());
    write("meta/ijbc_1N_gallery_G1.csv", b"TEMPLATE_ID,SUBJECT_ID\n1,1\n3,2\n");
    write("meta/ijbc_1N_gallery_G2.csv", b"TEMPLATE_ID,SUBJECT_ID\n5,3\n7,4\n");
    write("meta/ijbc_1N_probe_mixed.csv", b"TEMPLATE_ID,SUBJECT_ID\n2,1\n4,2\n6,3\n8,4\n");
    RealFiles {
        dir: d.to_path_buf(),
        pack_images,
        same,
        probes,
        probe_ids: [0, 0, 1, 1],
        distractors,
        crops,
        landmarks: marks,
        scores,
    }
}
