//! The training input pipeline on 112×112 JPEGs: images/s of `data::loader` (the training path:
//! decoding threads, the bounded prefetch queue, random flip and crop) reading a RecordIO pack and
//! an image folder, beside the decoder alone on the same encoded bytes already in memory (same
//! thread count); then the resident memory over one streaming epoch of a pack much larger than
//! the prefetch queue.
//!
//! Interleaved rounds (decoder, pack, folder, decoder, …); figures are medians with min–max.
//! `make bench` runs it; `P2SBENCH_BENCH_IMAGES` (default 2048) and `P2SBENCH_BENCH_ROUNDS`
//! (default 9) size it.

mod common;

#[path = "../tests/common/recordio.rs"]
mod pack;

use common::{env_or, summary};
use p2sbench::data::augment::Augment;
use p2sbench::data::folder::{self, FolderSet};
use p2sbench::data::loader::{Loader, LoaderOptions};
use p2sbench::data::recordio::RecordSet;
use p2sbench::data::{synthetic, Dataset};
use p2sbench::spec::{AugmentSpec, BadImagePolicy, DataKind, DataSpec};
use rayon::prelude::*;
use std::sync::Arc;
use std::time::Instant;

const SIZE: usize = 112;
const PER_IDENTITY: usize = 32;
const BATCH: usize = 128;

fn data_spec(kind: DataKind, path: Option<&std::path::Path>, identities: usize) -> DataSpec {
    let text = format!("identities = {identities}\nheldout_identities = 2\nimages_per_identity = {PER_IDENTITY}\nimage_size = {SIZE}\nchannels = 3\n");
    let mut spec: DataSpec = toml::from_str(&text).expect("a data table");
    spec.kind = kind;
    spec.path = path.map(|p| p.to_path_buf());
    spec
}

/// JPEGs (quality 90) of synthetic identities, `identities` × PER_IDENTITY.
fn jpegs(identities: usize) -> Vec<Vec<Vec<u8>>> {
    let spec = data_spec(DataKind::Synthetic, None, identities);
    (0..identities)
        .into_par_iter()
        .map(|k| {
            (0..PER_IDENTITY)
                .map(|j| {
                    let chw = synthetic::render_one(&spec, k, j);
                    let plane = SIZE * SIZE;
                    let hwc: Vec<u8> = (0..plane).flat_map(|p| [chw[p], chw[plane + p], chw[2 * plane + p]]).collect();
                    pack::jpeg(&hwc, SIZE)
                })
                .collect()
        })
        .collect()
}

/// The loader's options: random flip (insightface's augmentation), and a random crop of 85–100 %
/// of the side resized back when `crop`.
fn options(workers: usize, crop: bool) -> LoaderOptions {
    let augment = AugmentSpec { flip: true, crop: crop.then_some([0.85, 1.0]) };
    LoaderOptions { workers, prefetch: 4, policy: BadImagePolicy::Stop, augment: Augment::new(Some(augment), 1) }
}

/// Images/s of one epoch of `set` through the loader; `on_batch` sees the progress (0..1).
fn loader_rate(set: &Arc<dyn Dataset>, opts: LoaderOptions, batch: usize, mut on_batch: impl FnMut(f64)) -> f64 {
    let order: Vec<usize> = (0..set.len()).collect();
    let batches: Vec<Vec<usize>> = order.chunks(batch).map(|b| b.to_vec()).collect();
    let total = batches.len();
    let started = Instant::now();
    let mut loader = Loader::start(set.clone(), batches, 0, opts);
    let (mut images, mut done) = (0, 0);
    while let Some(batch) = loader.next_batch() {
        images += batch.expect("readable images").indices.len();
        done += 1;
        on_batch(done as f64 / total as f64);
    }
    images as f64 / started.elapsed().as_secs_f64()
}

/// Images/s of the decoder alone on `workers` threads over encoded bytes in memory.
fn decoder_rate(encoded: &[Vec<u8>], pool: &rayon::ThreadPool) -> f64 {
    let started = Instant::now();
    pool.install(|| {
        encoded.par_iter().for_each_init(
            || vec![0u8; 3 * SIZE * SIZE],
            |out, bytes| folder::decode_into(bytes, 3, SIZE, out).expect("a JPEG"),
        )
    });
    encoded.len() as f64 / started.elapsed().as_secs_f64()
}

/// Resident set size of this process, bytes.
fn rss() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) * 1024.0
}

fn main() {
    let images: usize = env_or("P2SBENCH_BENCH_IMAGES", 2048);
    let rounds: usize = env_or("P2SBENCH_BENCH_ROUNDS", 9);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let identities = images.div_ceil(PER_IDENTITY);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let encoded = jpegs(identities + 2);
    let bytes: usize = encoded.iter().flatten().map(Vec::len).sum();
    pack::write_pack(&dir.path().join("pack"), &encoded, SIZE);
    for (k, list) in encoded.iter().enumerate() {
        let d = dir.path().join("folder").join(format!("id{k:05}"));
        std::fs::create_dir_all(&d).expect("a folder");
        for (j, jpeg) in list.iter().enumerate() {
            std::fs::write(d.join(format!("{j:03}.jpg")), jpeg).expect("a JPEG file");
        }
    }
    let training: Vec<Vec<u8>> = encoded[..identities].iter().flatten().cloned().collect();
    let recordio: Arc<dyn Dataset> = Arc::new(
        RecordSet::open(&data_spec(DataKind::Recordio, None, identities), &dir.path().join("pack"), 0, identities)
            .expect("the pack"),
    );
    let folder: Arc<dyn Dataset> = Arc::new(
        FolderSet::open(&data_spec(DataKind::Folder, None, identities), &dir.path().join("folder"), 0, identities)
            .expect("the folder"),
    );
    let pool = rayon::ThreadPoolBuilder::new().num_threads(workers).build().expect("threads");
    println!(
        "{} JPEGs of {SIZE}×{SIZE} (mean {:.1} kB), {workers} decoding threads, batches of {BATCH}; {rounds} interleaved rounds",
        training.len(),
        bytes as f64 / (encoded.len() * PER_IDENTITY) as f64 / 1e3
    );
    // Memory first, on a fresh heap: one epoch over the pack in batches of 32, queue = prefetch × 32 images.
    let small = 32;
    let queue = options(workers, true).prefetch * small;
    let before = rss();
    let mut samples = Vec::new();
    loader_rate(&recordio, options(workers, true), small, |progress| samples.push((progress, rss())));
    let peak =
        |from: f64, to: f64| samples.iter().filter(|(p, _)| *p > from && *p <= to).map(|s| s.1).fold(0.0, f64::max);
    let mb = |b: f64| (b - before) / 1e6;
    let bound = ((options(workers, true).prefetch + 2) * small * 3 * SIZE * SIZE) as f64 / 1e6;
    println!(
        "  streaming epoch of {} images = {:.1}× the prefetch queue ({queue} images): resident memory above the start, peak over the first 10 % {:+.1} MB, 10–50 % {:+.1} MB, 50–100 % {:+.1} MB (flat: every part within the loader's bound of prefetch + 2 batches = {bound:.1} MB)",
        recordio.len(),
        recordio.len() as f64 / queue as f64,
        mb(peak(0.0, 0.1)),
        mb(peak(0.1, 0.5)),
        mb(peak(0.5, 1.0)),
    );
    let mut rates = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        rates[0].push(decoder_rate(&training, &pool));
        rates[1].push(loader_rate(&recordio, options(workers, false), BATCH, |_| {}));
        rates[2].push(loader_rate(&folder, options(workers, false), BATCH, |_| {}));
        rates[3].push(loader_rate(&recordio, options(workers, true), BATCH, |_| {}));
    }
    let names = [
        "decoder alone (bytes in memory)",
        "loader from RecordIO (decode + flip)",
        "loader from a folder (decode + flip)",
        "loader from RecordIO (decode + flip + crop)",
    ];
    let medians: Vec<f64> = rates.iter().map(|r| summary(r).0).collect();
    for (name, r) in names.iter().zip(&rates) {
        let (m, lo, hi) = summary(r);
        println!("  {name:<42} {m:7.0} images/s [{lo:.0}–{hi:.0}]");
    }
    for (k, source) in [(1, "RecordIO, flip"), (2, "folder, flip"), (3, "RecordIO, flip + crop")] {
        println!(
            "  {source}: {:.0} images/s (target ≥ 1,500), {:.0} % of the decoder alone (target ≥ 90 %)",
            medians[k],
            medians[k] / medians[0] * 100.0
        );
    }
}
