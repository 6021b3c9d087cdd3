//! Forward + backward images/s of each backbone at 3 × 112 × 112 (512-d output) on the CPU, in
//! training mode and channels-last memory (p2sbench's default), beside the same network in
//! PyTorch (bench/torch_backbone.py, with the torch the set-up installed) at the same batch and
//! thread count. The two run interleaved (p2sbench, PyTorch, p2sbench, …) for several rounds; the
//! figures are medians with min–max, the ratio is of medians.
//!
//! `make bench` runs it. `P2SBENCH_BENCH_BACKBONES` (comma-separated, default all),
//! `P2SBENCH_BENCH_BATCH` (default 8), `P2SBENCH_BENCH_SECONDS` (the length of one measurement,
//! default 3 s: as many steps as fit, at least one) and `P2SBENCH_BENCH_ROUNDS` (default 5) size it.
//! On the GPU machine (scripts/gpu-check.sh) `P2SBENCH_BENCH_DEVICE=cuda` runs both sides on
//! CUDA, `P2SBENCH_BENCH_AMP=1` under autocast (float16 there, as `train.precision = "amp"`), and
//! `P2SBENCH_PYTHON` names the Python with PyTorch.

mod common;

use common::{env_or, summary, PythonTimer};
use p2sbench::model::Network;
use p2sbench::spec::{Backbone, ModelSpec};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() {
    let batch: usize = env_or("P2SBENCH_BENCH_BATCH", 8);
    let seconds: f64 = env_or("P2SBENCH_BENCH_SECONDS", 3.0);
    let rounds: usize = env_or("P2SBENCH_BENCH_ROUNDS", 5);
    let wanted: String =
        env_or("P2SBENCH_BENCH_BACKBONES", "mobilefacenet,iresnet18,iresnet34,iresnet50,iresnet100".to_string());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let device_name: String = env_or("P2SBENCH_BENCH_DEVICE", "cpu".to_string());
    let device = if device_name == "cuda" { Device::Cuda(0) } else { Device::Cpu };
    let amp = env_or("P2SBENCH_BENCH_AMP", 0) == 1;
    // CUDA runs asynchronously: a step is timed to the end of its kernels.
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    tch::set_num_threads(threads as i32);
    println!(
        "forward + backward at 3×112×112, 512-d, batch {batch}, {threads} threads, channels-last, on {device_name}{}; {rounds} interleaved rounds of about {seconds} s each",
        if amp { " under autocast" } else { "" }
    );
    for name in wanted.split(',') {
        let Some(backbone) = [
            Backbone::Mobilefacenet,
            Backbone::Mbf,
            Backbone::Iresnet18,
            Backbone::Iresnet34,
            Backbone::Iresnet50,
            Backbone::Iresnet100,
        ]
        .into_iter()
        .find(|b| b.name() == name.trim()) else {
            println!("  {name}: not a backbone");
            continue;
        };
        let spec = ModelSpec { backbone, embedding: 512, ..ModelSpec::default() };
        let mut net = Network::new(&spec, 3, 112, 10, false, 1, device);
        net.use_channels_last();
        tch::manual_seed(1);
        let x = p2sbench::model::channels_last(&Tensor::randn([batch as i64, 3, 112, 112], (Kind::Float, device)));
        let probe = Tensor::randn([batch as i64, 512], (Kind::Float, device));
        let params: Vec<Tensor> = net.vs.trainable_variables();
        let step = || {
            for p in &params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            let out = if amp {
                p2sbench::model::amp::autocast(device, || net.embed(&x, true)).to_kind(Kind::Float)
            } else {
                net.embed(&x, true)
            };
            (out * &probe).sum(Kind::Float).backward();
        };
        step();
        sync();
        let started = Instant::now();
        step();
        sync();
        let steps = ((seconds / started.elapsed().as_secs_f64()).round() as usize).max(1);
        let mut args = vec![name.to_string(), batch.to_string(), threads.to_string(), device_name.clone()];
        args.extend(amp.then(|| "amp".to_string()));
        let mut torch = match PythonTimer::start("bench/torch_backbone.py", &args) {
            Ok(t) => Some(t),
            Err(e) => {
                println!("  {name}: PyTorch not measured: {e}");
                None
            }
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let started = Instant::now();
            for _ in 0..steps {
                step();
            }
            sync();
            ours.push(started.elapsed().as_secs_f64() / steps as f64);
            if let Some(t) = torch.as_mut() {
                theirs.push(t.seconds_per_step(steps));
            }
        }
        let (m, lo, hi) = summary(&ours);
        let rate = |s: f64| batch as f64 / s;
        print!("  {name:<14} p2sbench {:6.1} images/s [{:.1}–{:.1}]", rate(m), rate(hi), rate(lo));
        if !theirs.is_empty() {
            let (tm, tlo, thi) = summary(&theirs);
            print!(
                "   PyTorch {:6.1} images/s [{:.1}–{:.1}]   ratio {:.2} (target ≥ 0.95)",
                rate(tm),
                rate(thi),
                rate(tlo),
                tm / m
            );
        }
        println!();
    }
}
