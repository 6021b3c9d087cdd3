//! IJB-C at full size: 469,375 images in 23,124 templates of 3,531 subjects, 15,658,489 template
//! pairs (19,557 genuine), 512-d synthetic features, written as the real meta files and a .npy.
//! Times the 1:1 protocol from the files — parse, read features, pool, score, ROC and read-out
//! (target: ≤ 30 s on two cores) — and then 1:N on galleries G1/G2 and 19,593 mixed probes.
//!
//! Run: `cargo bench --bench ijbc` (`make bench` runs it with the other benchmarks).

use p2sbench::metrics::ijbc::{self, MetaFiles, PoolOptions};
use p2sbench::metrics::roc::FarReadout;
use p2sbench::metrics::{npy, Features};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::io::Write;
use std::time::Instant;

const IMAGES: usize = 469_375;
const TEMPLATES: usize = 23_124;
const SUBJECTS: usize = 3_531;
const GENUINE: usize = 19_557;
const PAIRS: usize = 15_658_489;
const DIM: usize = 512;
const G1: usize = 1_772;

fn subject(template: usize) -> usize {
    template % SUBJECTS
}

fn main() {
    let threads = rayon::current_num_threads();
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = dir.path().join("meta");
    std::fs::create_dir_all(&meta).unwrap();
    let t = Instant::now();
    // Image i belongs to template i mod T; media group up to five images of a template.
    let template_of = |i: usize| i % TEMPLATES;
    let media_of = |i: usize| template_of(i) * 8 + (i / TEMPLATES) % 5;
    let mut w = std::io::BufWriter::new(std::fs::File::create(meta.join("ijbc_face_tid_mid.txt")).unwrap());
    for i in 0..IMAGES {
        writeln!(w, "{}.jpg {} {}", i + 1, template_of(i) + 1, media_of(i) + 1).unwrap();
    }
    drop(w);
    let mut r = ChaCha8Rng::seed_from_u64(7);
    let mut pairs: Vec<(usize, usize, u8)> = Vec::with_capacity(PAIRS);
    while pairs.len() < GENUINE {
        let a = r.gen_range(0..TEMPLATES);
        let b = subject(a) + SUBJECTS * r.gen_range(0..TEMPLATES / SUBJECTS);
        if b != a && b < TEMPLATES {
            pairs.push((a, b, 1));
        }
    }
    // Impostors: enrolment templates (the first 4,000) against the others, as IJB-C's list pairs them.
    while pairs.len() < PAIRS {
        let (a, b) = (r.gen_range(0..4_000), r.gen_range(4_000..TEMPLATES));
        if subject(a) != subject(b) {
            pairs.push((a, b, 0));
        }
    }
    pairs.par_sort_unstable();
    let mut w = std::io::BufWriter::new(std::fs::File::create(meta.join("ijbc_template_pair_label.txt")).unwrap());
    for &(a, b, l) in &pairs {
        writeln!(w, "{} {} {l}", a + 1, b + 1).unwrap();
    }
    drop(w);
    drop(pairs);
    let csv = |name: &str, rows: &mut dyn Iterator<Item = (usize, usize)>| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(meta.join(name)).unwrap());
        writeln!(w, "TEMPLATE_ID,SUBJECT_ID,FILENAME").unwrap();
        for (t, s) in rows {
            writeln!(w, "{},{},img/{t}.jpg", t + 1, s + 1).unwrap();
        }
    };
    csv("ijbc_1N_gallery_G1.csv", &mut (0..G1).map(|s| (s, s)));
    csv("ijbc_1N_gallery_G2.csv", &mut (G1..SUBJECTS).map(|s| (s, s)));
    csv("ijbc_1N_probe_mixed.csv", &mut (SUBJECTS..TEMPLATES).map(|t| (t, subject(t))));
    // Features: the subject's centre + 10 × noise (template features then separate imperfectly).
    let mut centres = vec![0f32; SUBJECTS * DIM];
    ChaCha8Rng::seed_from_u64(8).fill(&mut centres[..]);
    centres.iter_mut().for_each(|v| *v = *v * 2.0 - 1.0);
    let mut data = vec![0f32; IMAGES * DIM];
    data.par_chunks_mut(DIM).enumerate().for_each(|(i, row)| {
        let mut r = ChaCha8Rng::seed_from_u64(1_000 + i as u64);
        let c = &centres[subject(template_of(i)) * DIM..][..DIM];
        row.iter_mut().zip(c).for_each(|(v, &m)| *v = m + 10.0 * r.gen_range(-1.0f32..1.0));
    });
    let features_path = dir.path().join("features.npy");
    npy::write(&features_path, &Features::new(IMAGES, DIM, data)).unwrap();
    println!(
        "ijbc: {IMAGES} images, {TEMPLATES} templates, {PAIRS} pairs ({GENUINE} genuine), {DIM}-d, {threads} threads; \
         files written in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let total = Instant::now();
    let t = Instant::now();
    let files = MetaFiles::locate(dir.path()).unwrap();
    let (protocol, _) = ijbc::load(&files).unwrap();
    let parse = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let features = npy::read(&features_path).unwrap();
    let read = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let templates = ijbc::pool(&features, &protocol.templates, &protocol.medias, &PoolOptions::default());
    let pool = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let scores = ijbc::pair_scores(&templates, &protocol.pairs);
    let score = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let metrics = ijbc::one_to_one(&scores, &protocol.pairs.genuine, FarReadout::Nearest);
    let roc = t.elapsed().as_secs_f64();
    let one_to_one = total.elapsed().as_secs_f64();
    for (name, value) in &metrics {
        println!("  {name:<14} {value:.4}");
    }
    println!(
        "ijbc 1:1 full size: {one_to_one:.1} s (parse meta {parse:.1} s, read .npy {read:.1} s, pool {pool:.1} s, \
         score {score:.1} s, ROC + read-out {roc:.1} s)"
    );
    let t = Instant::now();
    let n = protocol.one_to_n.as_ref().expect("1:N files written");
    for (g, gallery) in n.galleries.iter().enumerate() {
        let m = ijbc::one_to_n_gallery(&templates, gallery, &n.probes);
        let text: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        println!("  G{}: {}", g + 1, text.join(", "));
    }
    println!("ijbc 1:N (G1, G2 x {} probes): {:.1} s", n.probes.templates.len(), t.elapsed().as_secs_f64());
}
