//! Training-step throughput of the quickstart network on CPU, against the same network, loss,
//! batch and thread count written as a plain PyTorch loop (bench/torch_step.py, run with the
//! torch that set-up installed), and the cost of telemetry (log every step vs never).
//!
//! Run with `make bench` (or `cargo bench --bench train_step`). `P2SBENCH_BENCH_STEPS` sets the
//! number of timed steps (default 60), `P2SBENCH_BENCH_LOSS` the loss (default cosface).

use p2sbench::data::noise;
use p2sbench::runner;
use p2sbench::spec::{self, TrialConfig};
use p2sbench::train;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Seconds per step of `cfg` with telemetry every `log_every` steps (warm-up steps excluded).
fn seconds_per_step(cfg: &TrialConfig, data: &runner::TrialData, log_every: usize) -> f64 {
    let mut cfg = cfg.clone();
    cfg.train.log_every = log_every;
    cfg.eval.protocols.clear();
    let warmup = 5;
    let mut started = None;
    let mut last = None;
    let mut timed = 0;
    let train_set = noise::apply(&data.train, &cfg.data, &cfg.noise);
    // The clock stops at the last step, so the end-of-training evaluation is not counted.
    let evaluation = runner::HeldoutEvaluation { cfg: &cfg, data };
    let _ = train::train_trial(&cfg, &train_set, &evaluation, tch::Device::Cpu, None, &mut |step| {
        if step as usize == warmup {
            started = Some(Instant::now());
        } else if step as usize > warmup {
            timed += 1;
            last = Some(Instant::now());
        }
    });
    let started = started.expect("enough steps for the warm-up");
    last.expect("timed steps").duration_since(started).as_secs_f64() / timed.max(1) as f64
}

fn main() {
    let steps: usize = env_or("P2SBENCH_BENCH_STEPS", 60);
    let loss: String = env_or("P2SBENCH_BENCH_LOSS", "cosface".to_string());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    tch::set_num_threads(threads as i32);
    let exp = spec::load(Path::new("experiments/quickstart.toml")).expect("quickstart parses");
    let mut cfg = exp.trials.iter().find(|t| t.loss.name == loss).expect("loss in quickstart").clone();
    let batch = cfg.train.batch_size;
    let per_epoch = cfg.data.identities * cfg.data.images_per_identity / batch;
    cfg.train.epochs = (steps + 5).div_ceil(per_epoch);
    cfg.train.lr_milestones.clear();
    let data = runner::shared_data(&cfg).expect("quickstart data");
    let total = cfg.train.epochs * per_epoch;
    println!(
        "quickstart network, loss {loss} ({}), batch {batch}, {threads} threads, {} steps timed",
        cfg.loss.params_text(),
        total - 5
    );
    let off = seconds_per_step(&cfg, &data, usize::MAX);
    let on = seconds_per_step(&cfg, &data, 1);
    println!("  p2sbench, telemetry off:        {:8.2} ms/step  {:8.0} images/s", off * 1e3, batch as f64 / off);
    println!(
        "  p2sbench, telemetry every step: {:8.2} ms/step  (+{:.0} % for the gradient logging)",
        on * 1e3,
        (on / off - 1.0) * 100.0
    );

    let python = format!(
        "{}/venv/bin/python",
        std::env::var("P2SBENCH_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/p2sbench", std::env::var("HOME").unwrap_or_default()))
    );
    let widths: Vec<String> = cfg.model.widths.iter().map(|w| w.to_string()).collect();
    let out = Command::new(&python)
        .arg("bench/torch_step.py")
        .args(["--classes", &cfg.data.identities.to_string()])
        .args(["--images", &(cfg.data.identities * cfg.data.images_per_identity).to_string()])
        .args(["--size", &cfg.data.image_size.to_string(), "--channels", &cfg.data.channels.to_string()])
        .args(["--widths", &widths.join(","), "--embedding", &cfg.model.embedding.to_string()])
        .args(["--batch", &batch.to_string(), "--threads", &threads.to_string(), "--steps", &(total - 5).to_string()])
        .args(["--loss", &loss, "--s", &cfg.loss.params.get("s").and_then(|v| v.as_f64()).unwrap_or(30.0).to_string()])
        .args(["--m", &cfg.loss.params.get("m").and_then(|v| v.as_f64()).unwrap_or(0.35).to_string()])
        .args(["--lr", &cfg.train.lr.to_string()])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let torch: f64 = text.trim().parse().expect("torch_step.py prints seconds per step");
            println!(
                "  plain PyTorch loop:             {:8.2} ms/step  {:8.0} images/s",
                torch * 1e3,
                batch as f64 / torch
            );
            println!("  ratio p2sbench/PyTorch (telemetry off): {:.2}x the time per step", off / torch);
        }
        Ok(o) => println!("  plain PyTorch loop: failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("  plain PyTorch loop: cannot run {python}: {e}"),
    }
}
