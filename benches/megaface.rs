//! MegaFace Challenge 1 at full size: 3,530 probes (80 identities) × 1,000,000 distractors,
//! 512-d synthetic features, every devkit size (10 … 10⁶) in one streamed pass. Prints the time,
//! the peak resident memory (VmHWM) and the peak beyond the distractor features themselves
//! (target: ≤ 60 s on two cores, ≤ 2 GB beyond the features). Then the same probes against
//! distractors read from devkit feature files (MEGAFACE_BENCH_FILES of them, default 50,000).
//!
//! Run: `cargo bench --bench megaface` (`make bench` runs it with the other benchmarks).

use p2sbench::metrics::megaface::formats::{self, FeatureLayout};
use p2sbench::metrics::megaface::run::{evaluate_files, MegafaceFiles};
use p2sbench::metrics::megaface::{self, DistractorSets, InMemory, MegafaceOptions};
use p2sbench::metrics::Features;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::time::Instant;

const PROBES: usize = 3530;
const IDENTITIES: usize = 80;
const DISTRACTORS: usize = 1_000_000;
const DIM: usize = 512;

/// A `/proc/self/status` field in bytes (VmHWM: peak resident set; VmRSS: current).
fn status_bytes(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Rows of uniform noise in [-1, 1), generated in parallel from `seed`.
fn noise(rows: usize, seed: u64) -> Vec<f32> {
    let mut data = vec![0f32; rows * DIM];
    data.par_chunks_mut(DIM * 1024).enumerate().for_each(|(c, chunk)| {
        let mut r = ChaCha8Rng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        chunk.iter_mut().for_each(|v| *v = r.gen_range(-1.0f32..1.0));
    });
    data
}

fn main() {
    let threads = rayon::current_num_threads();
    let base_rss = status_bytes("VmRSS:");
    // Probes: identity centre + 2.2 × noise (same-identity cosine ≈ 0.17, near the top distractor scores of a million); distractors: noise.
    let centres = noise(IDENTITIES, 1);
    let mut probes = noise(PROBES, 2);
    let ids: Vec<u32> = (0..PROBES).map(|i| (i * IDENTITIES / PROBES) as u32).collect();
    for (i, row) in probes.chunks_mut(DIM).enumerate() {
        let c = &centres[ids[i] as usize * DIM..(ids[i] as usize + 1) * DIM];
        row.iter_mut().zip(c).for_each(|(v, &m)| *v = 2.2 * *v + m);
    }
    let probes = Features::new(PROBES, DIM, probes);
    let t = Instant::now();
    let distractors = noise(DISTRACTORS, 3);
    let feature_bytes = (distractors.len() * 4) as u64;
    println!(
        "megaface: {PROBES} probes ({IDENTITIES} identities) x {DISTRACTORS} distractors x {DIM}-d, {threads} threads; \
         synthetic features generated in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let sizes = [10, 100, 1_000, 10_000, 100_000, 1_000_000];
    let sets = DistractorSets::prefixes(&sizes, DISTRACTORS);
    let source = InMemory { data: &distractors, dim: DIM };
    let opts = MegafaceOptions::default();
    let t = Instant::now();
    let out = megaface::evaluate(&probes, &ids, &source, &sets, &opts).expect("in-memory distractors");
    let seconds = t.elapsed().as_secs_f64();
    let peak = status_bytes("VmHWM:");
    for o in &out {
        println!("  rank-1 @ {:>9} distractors: {:.4}", o.name, o.rank1);
    }
    let tar = out.last().and_then(|o| o.tar);
    println!("  TAR @ FAR=1e-6 (1M, at-most read-out): {}", tar.map_or("n/a".into(), |t| format!("{t:.4}")));
    println!(
        "megaface full size: {seconds:.1} s ({:.0} M scores/s); peak RSS {:.2} GiB, distractor features {:.2} GiB, \
         peak beyond the features {:.2} GiB (process baseline {:.2} GiB)",
        (PROBES * DISTRACTORS) as f64 / seconds / 1e6,
        gib(peak),
        gib(feature_bytes),
        gib(peak.saturating_sub(feature_bytes)),
        gib(base_rss)
    );
    drop(distractors);

    // Streaming from devkit feature files.
    let files: usize = std::env::var("MEGAFACE_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    if files == 0 {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let layout = FeatureLayout {
        probe_root: root.join("facescrub"),
        distractor_root: root.join("megaface"),
        suffix: "_bench.bin".into(),
    };
    let probe_paths: Vec<String> = (0..PROBES).map(|i| format!("id{}/img{i}.png", ids[i])).collect();
    probe_paths.par_iter().enumerate().for_each(|(i, p)| formats::write_mat(&layout.probe(p), probes.row(i)).unwrap());
    let rows = noise(files, 4);
    let distractor_paths: Vec<String> = (0..files).map(|i| format!("{}/{}@N00/{i}_0.jpg", i % 1000, i % 97)).collect();
    distractor_paths
        .par_iter()
        .enumerate()
        .for_each(|(i, p)| formats::write_mat(&layout.distractor(p), &rows[i * DIM..(i + 1) * DIM]).unwrap());
    let probes_json = root.join("facescrub.json");
    let id_text: Vec<String> = ids.iter().map(|i| format!("id{i}")).collect();
    std::fs::write(&probes_json, serde_json::json!({"id": id_text, "path": probe_paths}).to_string()).unwrap();
    let list = root.join(format!("megaface_features_list.json_{files}_1"));
    std::fs::write(&list, serde_json::json!({ "path": distractor_paths }).to_string()).unwrap();
    let job = MegafaceFiles {
        probes: probes_json,
        distractors: vec![list],
        layout,
        probe_noise: None,
        distractor_noise: None,
    };
    let t = Instant::now();
    let r = evaluate_files(&job, &opts).expect("feature files");
    let seconds = t.elapsed().as_secs_f64();
    println!(
        "megaface from {files} feature files (page cache warm from writing): {seconds:.1} s, {:.0} files/s; rank-1 {:.4}",
        files as f64 / seconds,
        r.get(&format!("rank1@distractors={files}")).unwrap_or(f64::NAN)
    );
}
