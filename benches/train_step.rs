//! Training-step throughput of the quickstart network on CPU: p2sbench in contiguous and in
//! channels-last memory, p2sbench with telemetry on every step, and the same network, loss,
//! batch and thread count as a plain PyTorch loop (bench/torch_step.py with the torch that the
//! set-up installed), contiguous and channels-last.
//!
//! The machine is shared and noisy, so the contenders run interleaved (A B C D E, A B C D E, …)
//! for several rounds and the figures are medians with their spread (min–max over rounds); the
//! ratios are of medians within this one run.
//!
//! Run with `make bench` (or `cargo bench --bench train_step`). `P2SBENCH_BENCH_STEPS` sets the
//! timed steps per measurement (default 40), `P2SBENCH_BENCH_ROUNDS` the rounds (default 7),
//! `P2SBENCH_BENCH_LOSS` the loss (default cosface).

mod common;

use common::{env_or, summary};
use p2sbench::data::noise;
use p2sbench::runner;
use p2sbench::spec::{self, MemoryFormat, TrialConfig};
use p2sbench::train;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const WARMUP: usize = 5;

/// Seconds per step of `cfg` over `steps` steps after the warm-up.
fn p2sbench_step(cfg: &TrialConfig, data: &runner::TrialData, steps: usize) -> f64 {
    let train_set = noise::apply(&data.train, &cfg.data, &cfg.noise);
    let evaluation = runner::HeldoutEvaluation { cfg, data, stop: None };
    let (mut started, mut last, mut timed) = (None, None, 0usize);
    // The clock stops at the last timed step, so the end-of-training evaluation is not counted.
    let _ = train::train_trial(cfg, &train_set, &evaluation, tch::Device::Cpu, None, &mut |step| {
        let step = step as usize;
        if step == WARMUP {
            started = Some(Instant::now());
        } else if step > WARMUP && step <= WARMUP + steps {
            timed += 1;
            last = Some(Instant::now());
        }
    });
    last.expect("timed steps").duration_since(started.expect("warm-up steps")).as_secs_f64() / timed as f64
}

/// Seconds per step of bench/torch_step.py (its own warm-up excluded), or why it could not run.
fn torch_step(cfg: &TrialConfig, threads: usize, steps: usize, channels_last: bool) -> Result<f64, String> {
    let python = format!(
        "{}/venv/bin/python",
        std::env::var("P2SBENCH_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/p2sbench", std::env::var("HOME").unwrap_or_default()))
    );
    let widths: Vec<String> = cfg.model.widths.iter().map(|w| w.to_string()).collect();
    let param = |k: &str, default: f64| cfg.loss.params.get(k).and_then(|v| v.as_f64()).unwrap_or(default).to_string();
    let mut cmd = Command::new(&python);
    cmd.arg("bench/torch_step.py")
        .args(["--classes", &cfg.data.identities.to_string()])
        .args(["--images", &(cfg.data.identities * cfg.data.images_per_identity).to_string()])
        .args(["--size", &cfg.data.image_size.to_string(), "--channels", &cfg.data.channels.to_string()])
        .args(["--widths", &widths.join(","), "--embedding", &cfg.model.embedding.to_string()])
        .args(["--batch", &cfg.train.batch_size.to_string(), "--threads", &threads.to_string()])
        .args(["--steps", &steps.to_string(), "--loss", &cfg.loss.name])
        .args(["--s", &param("s", 30.0), "--m", &param("m", 0.35), "--lr", &cfg.train.lr.to_string()]);
    if channels_last {
        cmd.arg("--channels-last");
    }
    let out = cmd.output().map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("torch_step.py printed no number: {e}"))
}

fn main() {
    let steps: usize = env_or("P2SBENCH_BENCH_STEPS", 40);
    let rounds: usize = env_or("P2SBENCH_BENCH_ROUNDS", 7);
    let loss: String = env_or("P2SBENCH_BENCH_LOSS", "cosface".to_string());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    tch::set_num_threads(threads as i32);
    let exp = spec::load(Path::new("experiments/quickstart.toml")).expect("quickstart parses");
    let mut cfg = exp.trials.iter().find(|t| t.loss.name == loss).expect("loss in quickstart").clone();
    let batch = cfg.train.batch_size;
    let per_epoch = cfg.data.identities * cfg.data.images_per_identity / batch;
    cfg.train.epochs = (steps + WARMUP + 1).div_ceil(per_epoch);
    cfg.train.lr_milestones.clear();
    cfg.train.log_every = usize::MAX;
    cfg.eval.protocols.clear();
    let data = runner::shared_data(&cfg).expect("quickstart data");
    println!(
        "quickstart network, loss {loss} ({}), batch {batch}, {threads} threads; {rounds} interleaved rounds of {steps} timed steps",
        cfg.loss.params_text()
    );
    let with_format = |format: MemoryFormat, log_every: usize| {
        let mut c = cfg.clone();
        c.train.memory_format = format;
        c.train.log_every = log_every;
        c
    };
    type Contender<'a> = (&'static str, Box<dyn Fn() -> Result<f64, String> + 'a>);
    let contenders: Vec<Contender> = vec![
        (
            "p2sbench, contiguous",
            Box::new(|| Ok(p2sbench_step(&with_format(MemoryFormat::Contiguous, usize::MAX), &data, steps))),
        ),
        (
            "p2sbench, channels-last",
            Box::new(|| Ok(p2sbench_step(&with_format(MemoryFormat::ChannelsLast, usize::MAX), &data, steps))),
        ),
        (
            "p2sbench, default, telemetry every step",
            Box::new(|| Ok(p2sbench_step(&with_format(MemoryFormat::Auto, 1), &data, steps))),
        ),
        ("PyTorch loop, contiguous", Box::new(|| torch_step(&cfg, threads, steps, false))),
        ("PyTorch loop, channels-last", Box::new(|| torch_step(&cfg, threads, steps, true))),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for round in 0..rounds {
        for (k, (name, run)) in contenders.iter().enumerate() {
            match run() {
                Ok(seconds) => times[k].push(seconds),
                Err(e) if round == 0 => println!("  {name}: not measured: {e}"),
                Err(_) => {}
            }
        }
    }
    let medians: Vec<Option<f64>> = times.iter().map(|t| (!t.is_empty()).then(|| summary(t).0)).collect();
    for ((name, _), t) in contenders.iter().zip(&times) {
        if t.is_empty() {
            continue;
        }
        let (median, lo, hi) = summary(t);
        println!(
            "  {name:<42} {:7.2} ms/step [{:.2}–{:.2}]  {:7.0} images/s",
            median * 1e3,
            lo * 1e3,
            hi * 1e3,
            batch as f64 / median
        );
    }
    let ratio = |a: usize, b: usize| Some(medians[b]? / medians[a]?);
    if let Some(r) = ratio(1, 3) {
        println!(
            "  p2sbench (channels-last, the default) vs the plain PyTorch loop: {r:.2}x the images/s (target ≥ 1.30)"
        );
    }
    if let Some(r) = ratio(1, 4) {
        println!("  p2sbench (channels-last) vs the channels-last PyTorch loop: {r:.2}x the images/s (target ≥ 0.95)");
    }
    if let Some(r) = ratio(2, 1) {
        println!("  telemetry every step: +{:.1} % time per step over none (target ≤ 5 %)", (1.0 / r - 1.0) * 100.0);
    }
    if let Some(r) = ratio(1, 0) {
        println!("  channels-last vs contiguous in p2sbench: {r:.2}x as fast");
    }
}
