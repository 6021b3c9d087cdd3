//! The class layer under Partial FC (`model.sample_rate`) on the CPU, at insightface's scale of
//! the head: C = 100,000 classes, D = 512, batch 128, CosFace. One step is what the trainer does
//! to the head: draw the sample (`model::partial_fc::sample`), gather the sampled rows, cosines,
//! the loss, its backward into the features and W, and the SGD step with momentum and weight
//! decay (PyTorch's dense update of all of W, as insightface's optimiser does it).
//!
//! Time: the rates interleaved (1, 0.3, 0.1, 1, 0.3, …), each turn an untimed step, a timed
//! forward + backward and a timed step with the SGD update; medians. Memory: each rate in a worker process of its
//! own (this binary again), the peak resident memory above what W, its momentum buffer and the
//! features hold before the first step (`VmHWM − VmRSS` from /proc/self/status).
//!
//! `cargo bench --bench partial_fc` (or `make bench`); PARTIAL_FC_ROUNDS (default 15) sets the
//! steps timed per rate, PARTIAL_FC_CLASSES (default 100000) the class count.

use p2sbench::loss::{self, LossConfig, LossContext};
use p2sbench::model::partial_fc;
use p2sbench::train::{self, sgd::Sgd};
use std::process::Command;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

const D: i64 = 512;
const BATCH: i64 = 128;
const RATES: [f64; 3] = [1.0, 0.3, 0.1];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The head: W [C, D] in a VarStore, SGD over it, the features, and CosFace.
struct Head {
    _vs: nn::VarStore,
    w: Tensor,
    opt: Sgd,
    x: Tensor,
    labels: Vec<i64>,
    loss: Box<dyn loss::Loss>,
    classes: usize,
}

impl Head {
    fn new(classes: usize) -> Head {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[classes as i64, D], nn::Init::Randn { mean: 0.0, stdev: 0.05 });
        let opt = Sgd::new(&vs, 0.9, 5e-4, 0.1);
        let x = Tensor::randn([BATCH, D], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        // 128 images of 64 identities, two each (a face-recognition batch draws identities).
        let labels: Vec<i64> = (0..BATCH).map(|i| i / 2 * 1_543 % classes as i64).collect();
        let entry = loss::find("cosface").expect("cosface is registered");
        let params = entry.params.iter().map(|p| (p.name.to_string(), p.default.value())).collect();
        let cosface = LossConfig { name: "cosface".into(), params };
        let loss = loss::build(&cosface, &LossContext { num_classes: classes as i64 });
        Head { _vs: vs, w, opt, x, labels, loss, classes }
    }

    /// One step at `rate` (step number `step` seeds the draw), through the trainer's class
    /// layer; with `update`, the SGD step too.
    fn step(&mut self, rate: f64, step: i64, update: bool) {
        let sampled = ((rate * self.classes as f64) as usize).min(self.classes);
        let sample = (rate < 1.0).then(|| partial_fc::sample(&self.labels, self.classes, sampled, 7, step));
        let out =
            train::class_step(self.loss.as_mut(), &self.x, (&self.w, None), &self.labels, sample.as_ref(), Device::Cpu)
                .out;
        self.opt.zero_grad();
        let _ = self.x.grad().f_zero_();
        out.loss.backward();
        if update {
            self.opt.step();
        }
    }
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).expect("a memory line");
        line.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()).expect("kB") / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    tch::set_num_threads(std::thread::available_parallelism().map_or(1, |n| n.get()) as i32);
    let classes = env("PARTIAL_FC_CLASSES", 100_000);
    if let Ok(rate) = std::env::var("PARTIAL_FC_WORKER") {
        // A worker: the peak memory of the steps at one rate above the head's own.
        let rate: f64 = rate.parse().expect("a rate");
        let mut head = Head::new(classes);
        head.step(rate, 0, true); // momentum buffer and gradient allocated, as in training
        let (rss, _) = memory();
        for step in 1..4 {
            head.step(rate, step, true);
        }
        let (_, peak) = memory();
        println!("{}", peak - rss);
        return;
    }
    let rounds = env("PARTIAL_FC_ROUNDS", 15);
    println!("Partial FC class layer: C = {classes}, D = {D}, batch {BATCH}, CosFace, CPU, {rounds} steps per rate interleaved");
    let mut head = Head::new(classes);
    head.step(1.0, 0, true);
    let mut times = vec![(Vec::new(), Vec::new()); RATES.len()];
    let mut step = 1;
    for _ in 0..rounds {
        for (i, &rate) in RATES.iter().enumerate() {
            // One untimed step at this rate first: the allocator then holds its buffers, as it
            // does in training, where every step is at one rate.
            head.step(rate, step, false);
            step += 1;
            let t = Instant::now();
            head.step(rate, step, false);
            times[i].0.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            head.step(rate, step + 1, true);
            times[i].1.push(t.elapsed().as_secs_f64() * 1e3);
            step += 2;
        }
    }
    let exe = std::env::current_exe().expect("this benchmark's path");
    let full = (median(times[0].0.clone()), median(times[0].1.clone()));
    println!("| rate | sampled K | forward + backward (ms, median) | with the SGD step (ms, median) | relative to rate 1 (with SGD) | peak memory above W (MiB) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (i, &rate) in RATES.iter().enumerate() {
        let out = Command::new(&exe)
            .env("PARTIAL_FC_WORKER", rate.to_string())
            .env("PARTIAL_FC_CLASSES", classes.to_string())
            .output()
            .expect("a worker");
        let peak: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(f64::NAN);
        let (fb, with_sgd) = (median(times[i].0.clone()), median(times[i].1.clone()));
        println!(
            "| {rate} | {} | {fb:.1} | {with_sgd:.1} | {:.2}× ({:.2}× without SGD) | {peak:.1} |",
            ((rate * classes as f64) as usize).min(classes),
            with_sgd / full.1,
            fb / full.0
        );
    }
}
