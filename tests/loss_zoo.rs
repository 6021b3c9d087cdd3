//! Every registered loss verified against an independent closed form, in double precision:
//! the loss value, ∂L/∂cos, ∂L/∂‖x‖ and ∂L/∂‖W_j‖ (read by autograd with the cosine matrix and
//! the norms as leaves); ∂L/∂x and ∂L/∂W through a real cos = normalize(x)·normalize(W)ᵀ graph
//! against the chain rule of LOSSES.md; a central finite difference of the loss value against the
//! autograd directional derivative; finite values at cos = ±1 exactly; the combined margin
//! against SphereFace, ArcFace and CosFace; the stateful losses' state updates.
//!
//! The batches put target angles near 0° and near 180°, in ArcFace's fallback region (θ + m > π)
//! and feature norms below, inside and above MagFace's [l_a, u_a].
mod common;

use common::loss_config as config;
use p2sbench::loss::{self, CosineBatch, LossConfig, LossContext, ParamValue};
use std::f64::consts::PI;
use tch::{Device, Kind, Tensor};

const B: i64 = 8;
const C: i64 = 11;
const D: i64 = 16;
const TOL: f64 = 1e-5;
const OPTS: (Kind, Device) = (Kind::Double, Device::Cpu);

fn f(v: f64) -> ParamValue {
    ParamValue::Float(v)
}

fn text(v: &str) -> ParamValue {
    ParamValue::Str(v.into())
}

/// The settings under test: every registered loss at its defaults, plus the variants.
fn cases() -> Vec<LossConfig> {
    let mut out: Vec<LossConfig> = loss::registry().iter().map(|e| config(e.name, &[])).collect();
    out.extend([
        config("l2softmax", &[("alpha", f(3.0))]),
        config("normface", &[("s", f(30.0))]),
        config("cosface", &[("s", f(16.0)), ("m", f(0.2))]),
        config("arcface", &[("s", f(16.0)), ("m", f(0.5))]),
        config("arcface", &[("gradient", text("straight-through"))]),
        config("arcface", &[("easy_margin", ParamValue::Bool(true)), ("s", f(16.0))]),
        config("sphereface", &[("m", ParamValue::Int(2))]),
        config("sphereface", &[("m", ParamValue::Int(3)), ("base", f(0.0))]),
        config("sphereface_norm", &[("s", f(16.0)), ("base", f(0.0)), ("lambda_min", f(0.0))]),
        config("combined", &[("s", f(16.0)), ("m1", f(1.35)), ("m2", f(0.0)), ("m3", f(0.0))]),
        config("combined", &[("s", f(16.0)), ("m1", f(0.9)), ("m2", f(0.4)), ("m3", f(0.15))]),
        config("combined", &[("s", f(16.0)), ("m1", f(2.0)), ("m2", f(0.3)), ("m3", f(0.1))]),
        config("adacos", &[("mode", text("fixed"))]),
        config("curricularface", &[("s", f(16.0)), ("m", f(0.3))]),
        config("adaface", &[("s", f(16.0)), ("h", f(1.0)), ("t_alpha", f(1.0))]),
        config("magface", &[("easy_margin", ParamValue::Bool(false)), ("s", f(16.0))]),
        config("p2sgrad", &[("reduction", text("mse-mean"))]),
    ]);
    out
}

// ---------------------------------------------------------------------------------------------
// Inputs: features and class weights with chosen target angles.

struct Geometry {
    x: Tensor,
    w: Tensor,
    bias: Tensor,
    labels: Tensor,
}

/// Random x [B, D] and W [C, D] with target angles (degrees) of rows 0..4 set to 0.6 (near 0),
/// 179.4 (near π), 165 (ArcFace's fallback at m = 0.5) and 120, and row norms `norms`.
fn geometry(seed: i64, norms: [f64; B as usize]) -> Geometry {
    tch::manual_seed(seed);
    let labels = Tensor::randperm(C, (Kind::Int64, Device::Cpu)).narrow(0, 0, B);
    let x = Tensor::randn([B, D], OPTS);
    let x = &x / x.norm_scalaropt_dim(2, [1], true) * Tensor::from_slice(&norms).to_kind(Kind::Double).unsqueeze(1);
    let w = Tensor::randn([C, D], OPTS) * 0.7;
    let chosen = [0.6, 179.4, 165.0, 120.0];
    for (i, deg) in chosen.iter().enumerate() {
        let xi = x.get(i as i64);
        let xhat = &xi / xi.norm();
        let r = Tensor::randn([D], OPTS);
        let u = &r - &xhat * (&r * &xhat).sum(Kind::Double);
        let u = &u / u.norm();
        let a = deg * PI / 180.0;
        let norm = 0.5 + i as f64 * 0.4;
        let wj = (&xhat * a.cos() + u * a.sin()) * norm;
        let label = labels.int64_value(&[i as i64]);
        let mut row = w.get(label);
        row.copy_(&wj);
    }
    Geometry { x, w, bias: Tensor::randn([C], OPTS) * 0.1, labels }
}

const SMALL_NORMS: [f64; 8] = [1.0, 2.5, 0.7, 3.0, 1.5, 2.0, 0.9, 4.0];
const WIDE_NORMS: [f64; 8] = [3.0, 12.0, 25.0, 60.0, 95.0, 130.0, 8.0, 40.0];

/// The cosine-level view of a geometry, all leaves (values only).
struct Batch {
    cos: Tensor,
    feat_norm: Tensor,
    weight_norm: Tensor,
    bias: Tensor,
    labels: Tensor,
}

impl Geometry {
    fn batch(&self) -> Batch {
        let xn = self.x.norm_scalaropt_dim(2, [1], true);
        let wn = self.w.norm_scalaropt_dim(2, [1], true);
        Batch {
            cos: (&self.x / &xn).matmul(&(&self.w / &wn).tr()),
            feat_norm: xn,
            weight_norm: wn.tr(),
            bias: self.bias.shallow_clone(),
            labels: self.labels.shallow_clone(),
        }
    }
}

impl Batch {
    fn one_hot(&self) -> Tensor {
        self.labels.one_hot(self.cos.size()[1]).to_kind(Kind::Double)
    }

    fn target(&self, t: &Tensor) -> Tensor {
        t.gather(1, &self.labels.unsqueeze(1), false)
    }

    /// A tensor that is `others` off the target column and `target` ([B, 1]) on it.
    fn put_target(&self, others: &Tensor, target: &Tensor) -> Tensor {
        let oh = self.one_hot();
        others * (oh.ones_like() - &oh) + target * &oh
    }
}

// ---------------------------------------------------------------------------------------------
// The implementation: value and autograd gradients at the cosine level.

struct Autograd {
    value: f64,
    scale: f64,
    g: Tensor,
    d_feat_norm: Tensor,
    d_weight_norm: Tensor,
}

fn build(cfg: &LossConfig, step: i64, frozen: bool) -> Box<dyn loss::Loss> {
    let mut l = loss::build(cfg, &LossContext { num_classes: C });
    l.on_step(step);
    l.set_frozen(frozen);
    l
}

fn autograd(cfg: &LossConfig, b: &Batch, step: i64, frozen: bool) -> Autograd {
    let mut l = build(cfg, step, frozen);
    let cos = b.cos.detach().set_requires_grad(true);
    let fnorm = b.feat_norm.detach().set_requires_grad(true);
    let wnorm = b.weight_norm.detach().set_requires_grad(true);
    let bias = l.uses_bias().then_some(&b.bias);
    let out = l.forward(&CosineBatch { cos: &cos, feat_norm: &fnorm, weight_norm: &wnorm, bias, labels: &b.labels });
    // The zero term keeps every leaf on the graph, so unused ones get a zero gradient.
    let total = &out.loss + (fnorm.sum(Kind::Double) + wnorm.sum(Kind::Double)) * 0.0;
    let mut grads = Tensor::run_backward(&[&total], &[&cos, &fnorm, &wnorm], false, false);
    let d_weight_norm = grads.pop().unwrap();
    let d_feat_norm = grads.pop().unwrap();
    Autograd {
        value: out.loss.double_value(&[]),
        scale: out.scale,
        g: grads.pop().unwrap(),
        d_feat_norm,
        d_weight_norm,
    }
}

// ---------------------------------------------------------------------------------------------
// The closed forms, written with plain tensor ops.

struct Oracle {
    value: f64,
    scale: f64,
    g: Tensor,
    d_feat_norm: Tensor,
    d_weight_norm: Tensor,
}

/// Logits f and their elementwise partial derivatives.
struct Logits {
    f: Tensor,
    df_dcos: Tensor,
    df_dfeat: Tensor,
    df_dweight: Tensor,
}

fn softmax_ce(l: Logits, b: &Batch, scale: f64) -> Oracle {
    let oh = b.one_hot();
    let p = l.f.softmax(-1, Kind::Double);
    let r = (p - &oh) / B as f64;
    let value = -(l.f.log_softmax(-1, Kind::Double) * &oh).sum(Kind::Double).double_value(&[]) / B as f64;
    Oracle {
        value,
        scale,
        g: &r * l.df_dcos,
        d_feat_norm: (&r * l.df_dfeat).sum_dim_intlist(1, true, Kind::Double),
        d_weight_norm: (&r * l.df_dweight).sum_dim_intlist(0, true, Kind::Double),
    }
}

/// Scaled cosine logits with target ψ (and ψ' = dψ/dcos θ_y): f = s·[cos θ_j, ψ].
fn angular(b: &Batch, s: f64, psi: &Tensor, psi_prime: &Tensor) -> Logits {
    let zero = b.cos.zeros_like();
    Logits {
        f: b.put_target(&b.cos, psi) * s,
        df_dcos: b.put_target(&b.cos.ones_like(), psi_prime) * s,
        df_dfeat: zero.shallow_clone(),
        df_dweight: zero,
    }
}

fn choose(cond: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    let c = cond.to_kind(Kind::Double);
    a * &c + b * (c.ones_like() - &c)
}

fn sin_of(cos: &Tensor) -> Tensor {
    (cos.square().neg() + 1.0).sqrt()
}

/// ArcFace's target and ψ': cos(θ + m) where θ + m ≤ π (or cos θ > 0 with easy margin), else
/// the fallback; `m` is a scalar or per-sample [B, 1] tensor. Also ∂ψ/∂m.
fn arc(cos_y: &Tensor, m: &Tensor, easy: bool) -> (Tensor, Tensor, Tensor) {
    let theta = cos_y.acos();
    let shifted = (&theta + m).cos();
    let shifted_prime = (&theta + m).sin() / sin_of(cos_y);
    let shifted_dm = (&theta + m).sin().neg();
    if easy {
        let region = cos_y.gt(0.0);
        (
            choose(&region, &shifted, cos_y),
            choose(&region, &shifted_prime, &cos_y.ones_like()),
            choose(&region, &shifted_dm, &cos_y.zeros_like()),
        )
    } else {
        let region = (&theta + m).le(PI);
        let fallback = cos_y - m * m.sin();
        let fallback_dm = (m.sin() + m * m.cos()).neg();
        (
            choose(&region, &shifted, &fallback),
            choose(&region, &shifted_prime, &cos_y.ones_like()),
            choose(&region, &shifted_dm, &fallback_dm),
        )
    }
}

fn scalar_like(t: &Tensor, v: f64) -> Tensor {
    t.full_like(v)
}

/// (−1)^k·cos φ − 2k and its derivative in θ, φ = m1·θ + m2, k = ⌊φ/π⌋ (capped at k_max).
fn continued(theta: &Tensor, m1: f64, m2: f64, k_max: Option<f64>) -> (Tensor, Tensor) {
    let phi = theta * m1 + m2;
    let mut k = (&phi / PI).floor();
    if let Some(max) = k_max {
        k = k.clamp_max(max);
    }
    let sign = (k.remainder(2.0) * -2.0) + 1.0;
    let value = &sign * phi.cos() - &k * 2.0;
    let d_theta = (sign * phi.sin() * m1).neg();
    (value, d_theta)
}

/// CurricularFace's t after a batch: 0.01·mean_i(cos θ_iy) + 0.99·`t` (the official code's EMA).
fn curricular_t(b: &Batch, t: f64) -> f64 {
    0.01 * b.target(&b.cos).mean(Kind::Double).double_value(&[]) + 0.99 * t
}

/// CurricularFace with the curriculum parameter `t` in force.
fn curricularface_oracle(cfg: &LossConfig, b: &Batch, t: f64) -> Oracle {
    let (cos, ones, zeros) = (&b.cos, b.cos.ones_like(), b.cos.zeros_like());
    let cos_y = b.target(cos);
    let (s, m) = (cfg.f64("s"), cfg.f64("m"));
    let (psi, psi_prime, _) = arc(&cos_y, &scalar_like(&cos_y, m), false);
    let hard = cos.gt_tensor(&(cos_y.acos() + m).cos());
    let others = choose(&hard, &(cos * (cos + t)), cos);
    let others_d = choose(&hard, &(cos * 2.0 + t), &ones);
    let l = Logits {
        f: b.put_target(&others, &psi) * s,
        df_dcos: b.put_target(&others_d, &psi_prime) * s,
        df_dfeat: zeros.copy(),
        df_dweight: zeros,
    };
    softmax_ce(l, b, s)
}

/// AdaFace's (μ, σ) after a batch: the EMA (weight t_alpha) of the batch's mean and unbiased
/// std of the clamped feature norms, from `(mu, sigma)`.
fn adaface_stats(cfg: &LossConfig, b: &Batch, (mu, sigma): (f64, f64)) -> (f64, f64) {
    let alpha = cfg.f64("t_alpha");
    let a: Vec<f64> = Vec::try_from(b.feat_norm.clamp(0.001, 100.0).flatten(0, -1)).unwrap();
    let n = a.len() as f64;
    let mean = a.iter().sum::<f64>() / n;
    let std = (a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    (alpha * mean + (1.0 - alpha) * mu, alpha * std + (1.0 - alpha) * sigma)
}

/// AdaFace with the norm statistics `mu`, `sigma` in force.
fn adaface_oracle(cfg: &LossConfig, b: &Batch, mu: f64, sigma: f64) -> Oracle {
    let (cos, zeros) = (&b.cos, b.cos.zeros_like());
    let (s, m, h) = (cfg.f64("s"), cfg.f64("m"), cfg.f64("h"));
    let eps = 1e-3;
    let inside = cos.gt(-1.0 + eps).logical_and(&cos.lt(1.0 - eps)).to_kind(Kind::Double);
    let c = cos.clamp(-1.0 + eps, 1.0 - eps);
    let z = ((b.feat_norm.clamp(0.001, 100.0) - mu) / (sigma + eps) * h).clamp(-1.0, 1.0);
    let c_y = b.target(&c);
    let theta = c_y.acos();
    let theta_m = &theta - &z * m;
    let in_range = theta_m.gt(eps).logical_and(&theta_m.lt(PI - eps)).to_kind(Kind::Double);
    let theta_m = theta_m.clamp(eps, PI - eps);
    let psi = theta_m.cos() - (&z * m + m);
    let psi_prime = theta_m.sin() / theta.sin() * in_range * b.target(&inside);
    let l = Logits {
        f: b.put_target(&c, &psi) * s,
        df_dcos: b.put_target(&inside, &psi_prime) * s,
        df_dfeat: zeros.copy(),
        df_dweight: zeros,
    };
    softmax_ce(l, b, s)
}

fn oracle(cfg: &LossConfig, b: &Batch, step: i64, frozen: bool) -> Oracle {
    let cos = &b.cos;
    let cos_y = b.target(cos);
    let oh = b.one_hot();
    let ones = cos.ones_like();
    let zeros = cos.zeros_like();
    match cfg.name.as_str() {
        "softmax" => {
            let norms = &b.feat_norm * &b.weight_norm;
            let l = Logits {
                f: cos * &norms + &b.bias,
                df_dcos: norms.expand([B, C], false),
                df_dfeat: cos * &b.weight_norm,
                df_dweight: cos * &b.feat_norm,
            };
            softmax_ce(l, b, 1.0)
        }
        "l2softmax" => {
            let alpha = cfg.f64("alpha");
            let l = Logits {
                f: cos * &b.weight_norm * alpha + &b.bias,
                df_dcos: (&ones * &b.weight_norm) * alpha,
                df_dfeat: zeros,
                df_dweight: cos * alpha,
            };
            softmax_ce(l, b, alpha)
        }
        "normface" => {
            let s = cfg.f64("s");
            softmax_ce(angular(b, s, &cos_y, &cos_y.ones_like()), b, s)
        }
        "cosface" => {
            let s = cfg.f64("s");
            softmax_ce(angular(b, s, &(&cos_y - cfg.f64("m")), &cos_y.ones_like()), b, s)
        }
        "arcface" => {
            let s = cfg.f64("s");
            let m = scalar_like(&cos_y, cfg.f64("m"));
            let (psi, mut psi_prime, _) = arc(&cos_y, &m, cfg.bool("easy_margin"));
            if cfg.str("gradient") == "straight-through" {
                psi_prime = cos_y.ones_like();
            }
            softmax_ce(angular(b, s, &psi, &psi_prime), b, s)
        }
        "sphereface" | "sphereface_norm" => {
            let m = cfg.f64("m");
            let iter = (step + 1) as f64;
            let lambda =
                (cfg.f64("base") * (1.0 + cfg.f64("gamma") * iter).powf(-cfg.f64("power"))).max(cfg.f64("lambda_min"));
            let theta = cos_y.acos();
            let (psi, dpsi_dtheta) = continued(&theta, m, 0.0, Some(m - 1.0));
            let psi_prime = dpsi_dtheta / theta.sin().neg();
            let target = (&cos_y * lambda + psi) / (1.0 + lambda);
            let target_prime = (psi_prime + lambda) / (1.0 + lambda);
            let angular_logits = b.put_target(cos, &target);
            let d = b.put_target(&ones, &target_prime);
            if cfg.name == "sphereface" {
                let l = Logits {
                    f: &angular_logits * &b.feat_norm,
                    df_dcos: d * &b.feat_norm,
                    df_dfeat: angular_logits,
                    df_dweight: zeros,
                };
                softmax_ce(l, b, 1.0)
            } else {
                let s = cfg.f64("s");
                softmax_ce(
                    Logits { f: angular_logits * s, df_dcos: d * s, df_dfeat: zeros.copy(), df_dweight: zeros },
                    b,
                    s,
                )
            }
        }
        "combined" => {
            let s = cfg.f64("s");
            let theta = cos_y.acos();
            let (value, d_theta) = continued(&theta, cfg.f64("m1"), cfg.f64("m2"), None);
            let psi = value - cfg.f64("m3");
            let psi_prime = d_theta / theta.sin().neg();
            softmax_ce(angular(b, s, &psi, &psi_prime), b, s)
        }
        "adacos" => {
            let s0 = 2f64.sqrt() * ((C - 1) as f64).ln();
            let s = if cfg.str("mode") == "dynamic" && !frozen {
                let b_avg = ((cos * s0).exp() * (&ones - &oh)).sum(Kind::Double).double_value(&[]) / B as f64;
                let mut angles: Vec<f64> = Vec::<f64>::try_from(cos_y.acos().flatten(0, -1)).unwrap();
                angles.sort_by(f64::total_cmp);
                let median = angles[(angles.len() - 1) / 2];
                b_avg.ln() / median.min(PI / 4.0).cos()
            } else {
                s0
            };
            softmax_ce(angular(b, s, &cos_y, &cos_y.ones_like()), b, s)
        }
        "curricularface" => {
            // t starts at 0 and, unless frozen, takes this batch's mean target cosine in first.
            let t = if frozen { 0.0 } else { curricular_t(b, 0.0) };
            curricularface_oracle(cfg, b, t)
        }
        "adaface" => {
            // μ and σ start at 20 and 100 and, unless frozen, take this batch's statistics in first.
            let (mu, sigma) = if frozen { (20.0, 100.0) } else { adaface_stats(cfg, b, (20.0, 100.0)) };
            adaface_oracle(cfg, b, mu, sigma)
        }
        "magface" => {
            let s = cfg.f64("s");
            let (l_a, u_a, l_m, u_m, lambda_g) =
                (cfg.f64("l_a"), cfg.f64("u_a"), cfg.f64("l_margin"), cfg.f64("u_margin"), cfg.f64("lambda_g"));
            let fnorm = &b.feat_norm;
            let a = fnorm.clamp(l_a, u_a);
            let in_a = fnorm.gt(l_a).logical_and(&fnorm.lt(u_a)).to_kind(Kind::Double);
            let slope = (u_m - l_m) / (u_a - l_a);
            let margin = (&a - l_a) * slope + l_m;
            let (psi, psi_prime, psi_dm) = arc(&cos_y, &margin, cfg.bool("easy_margin"));
            let l = Logits {
                f: b.put_target(cos, &psi) * s,
                df_dcos: b.put_target(&ones, &psi_prime) * s,
                df_dfeat: b.put_target(&zeros, &(psi_dm * slope * &in_a)) * s,
                df_dweight: zeros.copy(),
            };
            let mut o = softmax_ce(l, b, s);
            let reg = (&a / (u_a * u_a) + a.reciprocal()).mean(Kind::Double).double_value(&[]);
            o.value += lambda_g * reg;
            o.d_feat_norm += (a.square().reciprocal().neg() + 1.0 / (u_a * u_a)) * in_a * (lambda_g / B as f64);
            o
        }
        "p2sgrad" => {
            let residual = cos - &oh;
            let (value, g) = if cfg.str("reduction") == "paper" {
                (residual.square().sum(Kind::Double).double_value(&[]) * 0.5 / B as f64, &residual / B as f64)
            } else {
                (residual.square().mean(Kind::Double).double_value(&[]), &residual * (2.0 / (B * C) as f64))
            };
            Oracle {
                value,
                scale: 1.0,
                g,
                d_feat_norm: b.feat_norm.zeros_like(),
                d_weight_norm: b.weight_norm.zeros_like(),
            }
        }
        other => panic!("no closed form for loss {other}: add one to tests/loss_zoo.rs"),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks.

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn finite(t: &Tensor) -> bool {
    t.isfinite().all().int64_value(&[]) == 1
}

fn check_against_oracle(cfg: &LossConfig, b: &Batch, step: i64, frozen: bool, what: &str) {
    let label = format!("{} ({}) {what}", cfg.name, cfg.params_text());
    let auto = autograd(cfg, b, step, frozen);
    let o = oracle(cfg, b, step, frozen);
    assert!(
        (auto.value - o.value).abs() < 1e-9 * (1.0 + o.value.abs()),
        "{label}: value {} vs {}",
        auto.value,
        o.value
    );
    assert!(
        (auto.scale - o.scale).abs() < 1e-12 * (1.0 + o.scale.abs()),
        "{label}: scale {} vs {}",
        auto.scale,
        o.scale
    );
    for (name, a, e) in [
        ("∂L/∂cos", &auto.g, &o.g),
        ("∂L/∂‖x‖", &auto.d_feat_norm, &o.d_feat_norm),
        ("∂L/∂‖W‖", &auto.d_weight_norm, &o.d_weight_norm),
    ] {
        assert!(finite(a), "{label}: {name} not finite");
        let d = max_diff(a, e);
        assert!(d < TOL, "{label}: {name} max |autograd − closed form| = {d:e}\nautograd {a}\nclosed {e}");
    }
}

#[test]
fn every_loss_has_a_case_and_a_closed_form() {
    let cases = cases();
    for entry in loss::registry() {
        assert!(cases.iter().any(|c| c.name == entry.name), "{} has no test case", entry.name);
    }
}

#[test]
fn values_and_cosine_gradients_match_closed_forms() {
    for (seed, norms) in [(1, SMALL_NORMS), (2, WIDE_NORMS), (3, SMALL_NORMS)] {
        let b = geometry(seed, norms).batch();
        let theta_y: Vec<f64> = Vec::try_from(b.target(&b.cos).acos().flatten(0, -1) * (180.0 / PI)).unwrap();
        assert!(theta_y[0] < 1.0 && theta_y[1] > 179.0 && (theta_y[2] - 165.0).abs() < 1e-6);
        for cfg in cases() {
            check_against_oracle(&cfg, &b, 0, false, &format!("seed {seed}"));
            check_against_oracle(&cfg, &b, 0, true, &format!("seed {seed}, frozen"));
        }
    }
}

#[test]
fn feature_and_weight_gradients_follow_the_chain_rule() {
    for (seed, norms) in [(4, SMALL_NORMS), (5, WIDE_NORMS)] {
        let geo = geometry(seed, norms);
        let b = geo.batch();
        for cfg in cases() {
            let label = format!("{} ({}) seed {seed}", cfg.name, cfg.params_text());
            let o = oracle(&cfg, &b, 0, false);
            let x = geo.x.detach().set_requires_grad(true);
            let w = geo.w.detach().set_requires_grad(true);
            let out = forward_through_graph(&cfg, &x, &w, &geo, false);
            let grads = Tensor::run_backward(&[&out], &[&x, &w], false, false);
            // ∂L/∂x_i = Σ_j g_ij (Ŵ_j − cos_ij x̂_i)/‖x_i‖ + ∂L/∂‖x_i‖ x̂_i, and likewise for W_j.
            let xhat = &geo.x / &b.feat_norm;
            let what = &geo.w / b.weight_norm.tr();
            let gc = &o.g * &b.cos;
            let dx = (o.g.matmul(&what) - &xhat * gc.sum_dim_intlist(1, true, Kind::Double)) / &b.feat_norm
                + &xhat * &o.d_feat_norm;
            let dw = (o.g.tr().matmul(&xhat) - &what * gc.sum_dim_intlist(0, true, Kind::Double).tr())
                / b.weight_norm.tr()
                + &what * o.d_weight_norm.tr();
            let ex = max_diff(&grads[0], &dx);
            let ew = max_diff(&grads[1], &dw);
            assert!(ex < TOL, "{label}: ∂L/∂x max diff {ex:e}");
            assert!(ew < TOL, "{label}: ∂L/∂W max diff {ew:e}");
        }
    }
}

/// The loss through cos = normalize(x)·normalize(W)ᵀ, as the training loop builds it.
fn forward_through_graph(cfg: &LossConfig, x: &Tensor, w: &Tensor, geo: &Geometry, frozen: bool) -> Tensor {
    let mut l = build(cfg, 0, frozen);
    let xn = x.norm_scalaropt_dim(2, [1], true);
    let wn = w.norm_scalaropt_dim(2, [1], true);
    let cos = (x / &xn).matmul(&(w / &wn).tr());
    let wn_row = wn.tr();
    let bias = l.uses_bias().then_some(&geo.bias);
    l.forward(&CosineBatch { cos: &cos, feat_norm: &xn, weight_norm: &wn_row, bias, labels: &geo.labels }).loss
}

/// (central finite difference, autograd) of the loss along (vx, vw), adaptive state frozen.
fn directional(cfg: &LossConfig, geo: &Geometry, vx: &Tensor, vw: &Tensor) -> (f64, f64) {
    let h = 1e-6;
    let x = geo.x.detach().set_requires_grad(true);
    let w = geo.w.detach().set_requires_grad(true);
    let out = forward_through_graph(cfg, &x, &w, geo, true);
    let grads = Tensor::run_backward(&[&out], &[&x, &w], false, false);
    let analytic = ((&grads[0] * vx).sum(Kind::Double) + (&grads[1] * vw).sum(Kind::Double)).double_value(&[]);
    let at = |sign: f64| {
        let _guard = tch::no_grad_guard();
        forward_through_graph(cfg, &(&geo.x + vx * (sign * h)), &(&geo.w + vw * (sign * h)), geo, true)
            .double_value(&[])
    };
    ((at(1.0) - at(-1.0)) / (2.0 * h), analytic)
}

#[test]
fn finite_differences_agree_with_autograd() {
    for (seed, norms) in [(6, SMALL_NORMS), (7, WIDE_NORMS)] {
        let geo = geometry(seed, norms);
        tch::manual_seed(100 + seed);
        let vx = Tensor::randn([B, D], OPTS);
        let vw = Tensor::randn([C, D], OPTS);
        // The same direction with the radial part of vx removed: ‖x_i‖ is unchanged to first order.
        let xhat = &geo.x / geo.x.norm_scalaropt_dim(2, [1], true);
        let tangential = &vx - &xhat * (&vx * &xhat).sum_dim_intlist(1, true, Kind::Double);
        for cfg in cases() {
            let label = format!("{} ({}) seed {seed}", cfg.name, cfg.params_text());
            if cfg.name == "arcface" && cfg.str("gradient") == "straight-through" {
                // A designed gradient (ψ' := 1): the value is exact ArcFace's, the gradient is not
                // its derivative. The finite difference of the value matches the exact variant.
                let mut exact = cfg.clone();
                exact.params.insert("gradient".into(), text("exact"));
                let (numeric, analytic) = directional(&cfg, &geo, &vx, &vw);
                let (_, analytic_exact) = directional(&exact, &geo, &vx, &vw);
                assert!((numeric - analytic_exact).abs() < 1e-5 * (1.0 + analytic_exact.abs()), "{label}");
                assert!((numeric - analytic).abs() > 1e-4 * (1.0 + analytic.abs()), "{label}: not straight-through");
                continue;
            }
            let (numeric, analytic) = directional(&cfg, &geo, &tangential, &vw);
            let err = (numeric - analytic).abs();
            assert!(err < 1e-5 * (1.0 + analytic.abs()), "{label}: finite difference {numeric} vs autograd {analytic}");
            let (numeric, analytic) = directional(&cfg, &geo, &vx, &vw);
            let err = (numeric - analytic).abs();
            if cfg.name == "adaface" {
                // AdaFace's margin reads ‖x‖ without gradient (as the official code does), so along a
                // direction that changes the norms the loss moves but its gradient does not see it.
                assert!(err > 1e-4 * (1.0 + analytic.abs()), "{label}: the norm should be stop-gradient");
            } else {
                assert!(
                    err < 1e-5 * (1.0 + analytic.abs()),
                    "{label}: finite difference {numeric} vs autograd {analytic}"
                );
            }
        }
    }
}

#[test]
fn no_nan_or_inf_at_cos_exactly_plus_minus_one() {
    let b = geometry(8, WIDE_NORMS).batch();
    let oh = b.one_hot();
    let patterns = [
        ("all +1", b.cos.ones_like()),
        ("all −1", b.cos.ones_like().neg()),
        ("target +1, others −1", &oh * 2.0 - 1.0),
        ("target −1, others +1", oh.ones_like() - &oh * 2.0),
    ];
    for cfg in cases() {
        for (what, cos) in &patterns {
            for frozen in [false, true] {
                let batch = Batch {
                    cos: cos.copy(),
                    feat_norm: b.feat_norm.copy(),
                    weight_norm: b.weight_norm.copy(),
                    bias: b.bias.copy(),
                    labels: b.labels.copy(),
                };
                let a = autograd(&cfg, &batch, 0, frozen);
                let label = format!("{} ({}) at {what}", cfg.name, cfg.params_text());
                assert!(a.value.is_finite() && a.scale.is_finite(), "{label}: value {} scale {}", a.value, a.scale);
                assert!(finite(&a.g) && finite(&a.d_feat_norm) && finite(&a.d_weight_norm), "{label}: gradient");
            }
        }
    }
}

#[test]
fn combined_margin_equals_sphereface_arcface_and_cosface() {
    let b = geometry(9, SMALL_NORMS).batch();
    let same = |a: &LossConfig, c: &LossConfig, rows: &Tensor| {
        let (x, y) = (autograd(a, &b, 0, false), autograd(c, &b, 0, false));
        let label = format!("{} ({}) vs {} ({})", a.name, a.params_text(), c.name, c.params_text());
        assert!((x.value - y.value).abs() < 1e-10, "{label}: {} vs {}", x.value, y.value);
        let d = max_diff(&(&x.g * rows), &(&y.g * rows));
        assert!(d < 1e-8, "{label}: ∂L/∂cos differs by {d:e}");
    };
    let all = b.cos.ones_like();
    for (s, m) in [(16.0, 0.35), (64.0, 0.2)] {
        same(&config("cosface", &[("s", f(s)), ("m", f(m))]), &combined(s, 1.0, 0.0, m), &all);
    }
    for m in [1_i64, 2, 3, 4] {
        let sphere = config(
            "sphereface_norm",
            &[("s", f(30.0)), ("m", ParamValue::Int(m)), ("base", f(0.0)), ("lambda_min", f(0.0))],
        );
        same(&sphere, &combined(30.0, m as f64, 0.0, 0.0), &all);
    }
    same(&config("normface", &[("s", f(20.0))]), &combined(20.0, 1.0, 0.0, 0.0), &all);

    // ArcFace: equal while θ_y + m ≤ π; the batch's row 2 (θ_y = 165°) is in ArcFace's fallback.
    let m = 0.5;
    let arcface = config("arcface", &[("s", f(16.0)), ("m", f(m))]);
    let comb = combined(16.0, 1.0, m, 0.0);
    let theta_y = b.target(&b.cos).acos();
    let valid = (&theta_y + m).le(PI);
    assert_eq!(valid.to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]), B - 2, "rows 1 and 2 are beyond π − m");
    let keep = valid.to_kind(Kind::Bool).squeeze_dim(1);
    let rows = Tensor::arange(B, (Kind::Int64, Device::Cpu)).masked_select(&keep);
    let sub = Batch {
        cos: b.cos.index_select(0, &rows),
        feat_norm: b.feat_norm.index_select(0, &rows),
        weight_norm: b.weight_norm.copy(),
        bias: b.bias.copy(),
        labels: b.labels.index_select(0, &rows),
    };
    let (x, y) = (autograd(&arcface, &sub, 0, false), autograd(&comb, &sub, 0, false));
    assert!((x.value - y.value).abs() < 1e-10 && max_diff(&x.g, &y.g) < 1e-10, "arcface vs combined(1, m, 0)");
    // Beyond π − m they part: ArcFace takes cos θ − m·sin m, the combined margin −cos(θ + m) − 2.
    let (full_arc, full_comb) = (autograd(&arcface, &b, 0, false), autograd(&comb, &b, 0, false));
    assert!((full_arc.value - full_comb.value).abs() > 1e-6, "the fallback region should differ");
}

fn combined(s: f64, m1: f64, m2: f64, m3: f64) -> LossConfig {
    config("combined", &[("s", f(s)), ("m1", f(m1)), ("m2", f(m2)), ("m3", f(m3))])
}

#[test]
fn sphereface_lambda_follows_the_original_schedule() {
    let b = geometry(10, SMALL_NORMS).batch();
    let cfg = config("sphereface", &[]);
    for step in [0_i64, 10, 100, 2000] {
        // The oracle computes λ = max(5, 1000·(1 + 0.12·(step + 1))^(−1)) independently.
        let a = autograd(&cfg, &b, step, false);
        let o = oracle(&cfg, &b, step, false);
        assert!((a.value - o.value).abs() < 1e-9, "step {step}: {} vs {}", a.value, o.value);
    }
    // λ decays: early steps are close to plain softmax on ‖x‖·cos θ, late ones are not.
    let early = autograd(&cfg, &b, 0, false).value;
    let late = autograd(&cfg, &b, 5000, false).value;
    let plain = autograd(&config("sphereface", &[("m", ParamValue::Int(1))]), &b, 0, false).value;
    assert!((early - plain).abs() < (late - plain).abs(), "early {early}, late {late}, softmax {plain}");
}

#[test]
fn adacos_dynamic_scale_is_updated_from_each_batch_and_reported() {
    let cfg = config("adacos", &[]);
    let s0 = 2f64.sqrt() * ((C - 1) as f64).ln();
    let mut l = build(&cfg, 0, false);
    let b1 = geometry(11, SMALL_NORMS).batch();
    let b2 = geometry(12, SMALL_NORMS).batch();
    let run = |l: &mut Box<dyn loss::Loss>, b: &Batch| {
        l.forward(&CosineBatch {
            cos: &b.cos,
            feat_norm: &b.feat_norm,
            weight_norm: &b.weight_norm,
            bias: None,
            labels: &b.labels,
        })
        .scale
    };
    let s1 = run(&mut l, &b1);
    assert!((s1 - oracle(&cfg, &b1, 0, false).scale).abs() < 1e-12 && (s1 - s0).abs() > 1e-6);
    // The second step starts from s1, not s0: B_avg uses the previous scale.
    let s2 = run(&mut l, &b2);
    let oh = b2.one_hot();
    let b_avg = ((&b2.cos * s1).exp() * (oh.ones_like() - &oh)).sum(Kind::Double).double_value(&[]) / B as f64;
    let mut angles: Vec<f64> = Vec::try_from(b2.target(&b2.cos).acos().flatten(0, -1)).unwrap();
    angles.sort_by(f64::total_cmp);
    let expected = b_avg.ln() / angles[(B as usize - 1) / 2].min(PI / 4.0).cos();
    assert!((s2 - expected).abs() < 1e-10, "{s2} vs {expected}");
    l.set_frozen(true);
    assert_eq!(run(&mut l, &b1), s2, "a frozen AdaCos keeps its scale");
    let mut fixed = build(&config("adacos", &[("mode", text("fixed"))]), 0, false);
    assert!((run(&mut fixed, &b1) - s0).abs() < 1e-12);
}

#[test]
fn curricularface_and_adaface_state_carries_over_steps() {
    // Two forwards on the same batch: the second uses the state the first left (t, μ, σ), so the
    // values differ, the second is the closed form with that state carried over, and re-running
    // the pair from fresh losses reproduces them (the state is per loss object, nothing global).
    let b = geometry(13, WIDE_NORMS).batch();
    for cfg in [config("curricularface", &[]), config("adaface", &[("t_alpha", f(0.5))])] {
        let mut l = build(&cfg, 0, false);
        let cb = CosineBatch {
            cos: &b.cos,
            feat_norm: &b.feat_norm,
            weight_norm: &b.weight_norm,
            bias: None,
            labels: &b.labels,
        };
        let first = l.forward(&cb).loss.double_value(&[]);
        let second = l.forward(&cb).loss.double_value(&[]);
        assert!((first - oracle(&cfg, &b, 0, false).value).abs() < 1e-9);
        assert!((first - second).abs() > 1e-9, "{}: state did not change", cfg.name);
        // Step 2 against the closed form with the state step 1 left, updated by this batch again.
        let expected = if cfg.name == "curricularface" {
            curricularface_oracle(&cfg, &b, curricular_t(&b, curricular_t(&b, 0.0))).value
        } else {
            let (mu, sigma) = adaface_stats(&cfg, &b, adaface_stats(&cfg, &b, (20.0, 100.0)));
            adaface_oracle(&cfg, &b, mu, sigma).value
        };
        assert!((second - expected).abs() < 1e-9, "{}: step 2 gives {second}, the closed form {expected}", cfg.name);
        let mut again = build(&cfg, 0, false);
        assert_eq!(again.forward(&cb).loss.double_value(&[]), first);
        assert_eq!(again.forward(&cb).loss.double_value(&[]), second);
    }
}

#[test]
fn cross_parameter_constraints_are_checked() {
    assert!(loss::validate(&config("magface", &[])).is_ok());
    let err = loss::validate(&config("magface", &[("l_a", f(120.0))])).unwrap_err();
    assert!(err.contains("magface") && err.contains("l_a"), "{err}");
    let err = loss::validate(&config("magface", &[("u_margin", f(2.0))])).unwrap_err();
    assert!(err.contains("u_margin"), "{err}");
    for entry in loss::registry() {
        assert!(loss::validate(&config(entry.name, &[])).is_ok(), "{}: defaults rejected", entry.name);
    }
}
