//! Parallel trials: a 4-trial sweep (CosFace at four scales) run with `--jobs 1` and `--jobs 2`
//! on all cores, wall-clock time of each and the speed-up. Run with `make bench` or
//! `cargo bench --bench jobs`.

use p2sbench::runner::{self, RunOptions};
use p2sbench::spec;
use std::path::Path;
use std::time::Instant;

const SWEEP: &str = r#"name = "jobs"
[data]
identities = 100
heldout_identities = 40
images_per_identity = 20
image_size = 32
seed = 3
[model]
widths = [16, 32, 64]
embedding = 64
[train]
epochs = 3
batch_size = 128
device = "cpu"
log_every = 10
[[loss]]
name = "cosface"
s = [16.0, 24.0, 32.0, 64.0]
m = 0.35
[eval]
protocols = ["lfw"]
"#;

fn main() {
    let exp = spec::parse(Path::new("jobs.toml"), SWEEP).expect("valid sweep");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("4-trial sweep (CosFace, 3 epochs of 2,000 images each), {cores} cores");
    let mut times = Vec::new();
    for jobs in [1, 2] {
        let out = tempfile::tempdir().expect("temporary directory");
        let started = Instant::now();
        runner::run_experiment(&exp, &RunOptions { jobs, ..RunOptions::new(out.path()) }).expect("sweep runs");
        let secs = started.elapsed().as_secs_f64();
        println!("  --jobs {jobs}: {secs:6.1} s ({} libtorch thread(s) per trial)", (cores / jobs).max(1));
        times.push(secs);
    }
    println!("  speed-up of --jobs 2 over --jobs 1: {:.2}x", times[0] / times[1]);
}
