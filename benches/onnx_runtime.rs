//! `eval --onnx`'s runtime, tract, beside onnxruntime: images/s embedding a batch with the same
//! exported model (`p2sbench export`'s ONNX of each backbone at 3 × 112 × 112, 512-d, weights
//! from the init seed) on this machine's cores — tract in process (the batch split across the
//! cores, as `eval --onnx` runs it), onnxruntime 1.32 through the set-up's Python
//! (bench/onnx_runtime.py, as many intra-op threads) — and, for reference, the same network in
//! libtorch as `eval --model` runs a trained trial (eval mode, no gradients). The three run
//! interleaved (tract, onnxruntime, libtorch, tract, …); the figures are medians with min–max,
//! the ratios are of medians.
//!
//! `make bench` runs it. `P2SBENCH_BENCH_BACKBONES` (default mbf,iresnet18,iresnet50),
//! `P2SBENCH_BENCH_BATCH` (default 32), `P2SBENCH_BENCH_SECONDS` (one measurement, default 3 s)
//! and `P2SBENCH_BENCH_ROUNDS` (default 5) size it.

mod common;

use common::{env_or, summary, PythonTimer};
use p2sbench::extract::features::Embedder;
use p2sbench::extract::onnx::OnnxModel;
use p2sbench::model::Network;
use p2sbench::spec::{Backbone, ModelSpec};
use prost::Message;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() {
    let batch: usize = env_or("P2SBENCH_BENCH_BATCH", 32);
    let seconds: f64 = env_or("P2SBENCH_BENCH_SECONDS", 3.0);
    let rounds: usize = env_or("P2SBENCH_BENCH_ROUNDS", 5);
    let wanted: String = env_or("P2SBENCH_BENCH_BACKBONES", "mbf,iresnet18,iresnet50".to_string());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let dir = tempfile::tempdir().expect("a scratch directory");
    println!(
        "inference at 3×112×112, 512-d, batch {batch}, {threads} threads: tract (eval --onnx) against onnxruntime and libtorch (eval --model); {rounds} interleaved rounds of about {seconds} s each"
    );
    for name in wanted.split(',') {
        let Some(backbone) = [Backbone::Mobilefacenet, Backbone::Mbf, Backbone::Iresnet18, Backbone::Iresnet50]
            .into_iter()
            .find(|b| b.name() == name.trim())
        else {
            println!("  {name}: not a backbone here");
            continue;
        };
        let spec = ModelSpec { backbone, embedding: 512, ..ModelSpec::default() };
        let net = Network::new(&spec, 3, 112, 10, false, 1, Device::Cpu);
        let file = dir.path().join(format!("{name}.onnx"));
        std::fs::write(&file, net.to_onnx(3, 112, name).encode_to_vec()).expect("the model is written");
        let tract = OnnxModel::open(&file).expect("tract opens the export");
        tch::manual_seed(1);
        let x = Tensor::rand([batch as i64, 3, 112, 112], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let run = || {
            let _ = tract.embed_batch(&x);
        };
        run();
        let started = Instant::now();
        run();
        let steps = ((seconds / started.elapsed().as_secs_f64()).round() as usize).max(1);
        let args = [file.display().to_string(), batch.to_string(), threads.to_string()];
        let mut ort = match PythonTimer::start("bench/onnx_runtime.py", &args) {
            Ok(t) => Some(t),
            Err(e) => {
                println!("  {name}: onnxruntime not measured: {e}");
                None
            }
        };
        let ort_steps = ort.as_mut().map(|o| {
            let once = o.seconds_per_step(1);
            ((seconds / once).round() as usize).max(1)
        });
        tch::set_num_threads(threads as i32);
        let libtorch = || {
            let _ = tch::no_grad(|| net.embed(&x, false));
        };
        libtorch();
        let started = Instant::now();
        libtorch();
        let torch_steps = ((seconds / started.elapsed().as_secs_f64()).round() as usize).max(1);
        let (mut ours, mut theirs, mut torch) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let started = Instant::now();
            for _ in 0..steps {
                run();
            }
            ours.push(batch as f64 * steps as f64 / started.elapsed().as_secs_f64());
            if let (Some(o), Some(n)) = (ort.as_mut(), ort_steps) {
                theirs.push(batch as f64 / o.seconds_per_step(n));
            }
            let started = Instant::now();
            for _ in 0..torch_steps {
                libtorch();
            }
            torch.push(batch as f64 * torch_steps as f64 / started.elapsed().as_secs_f64());
        }
        let (m, lo, hi) = summary(&ours);
        let (l, llo, lhi) = summary(&torch);
        print!("  {name:<10} tract {m:6.1} images/s [{lo:.1}, {hi:.1}]  libtorch {l:6.1} [{llo:.1}, {lhi:.1}]");
        if theirs.is_empty() {
            println!("  tract/libtorch {:.2}", m / l);
        } else {
            let (t, tlo, thi) = summary(&theirs);
            println!(
                "  onnxruntime {t:6.1} [{tlo:.1}, {thi:.1}]  tract/onnxruntime {:.2}  tract/libtorch {:.2}",
                m / t,
                m / l
            );
        }
    }
}
