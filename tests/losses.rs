//! Each loss's ∂L/∂cos (read by autograd) against the closed forms of LOSSES.md, on random
//! inputs in double precision, tolerance 1e-5; and the loss values against direct computations.

mod common;

use common::loss_config as config;
use p2sbench::loss::{self, CosineBatch, LossConfig, LossContext, ParamValue};
use tch::{Kind, Tensor};

const B: i64 = 7;
const C: i64 = 11;

struct Inputs {
    cos: Tensor,
    feat_norm: Tensor,
    weight_norm: Tensor,
    bias: Tensor,
    labels: Tensor,
}

fn inputs(seed: i64) -> Inputs {
    tch::manual_seed(seed);
    let opts = (Kind::Double, tch::Device::Cpu);
    Inputs {
        cos: (Tensor::rand([B, C], opts) * 1.98 - 0.99).set_requires_grad(true),
        feat_norm: Tensor::rand([B, 1], opts) * 5.0 + 0.5,
        weight_norm: Tensor::rand([1, C], opts) * 2.0 + 0.5,
        bias: Tensor::randn([C], opts) * 0.1,
        labels: Tensor::randint(C, [B], (Kind::Int64, tch::Device::Cpu)),
    }
}

/// (loss value, ∂L/∂cos) through autograd.
fn loss_and_grad(cfg: &LossConfig, x: &Inputs) -> (f64, Tensor) {
    let mut l = loss::build(cfg, &LossContext { num_classes: C });
    let bias = l.uses_bias().then_some(&x.bias);
    let out = l.forward(&CosineBatch {
        cos: &x.cos,
        feat_norm: &x.feat_norm,
        weight_norm: &x.weight_norm,
        bias,
        labels: &x.labels,
    });
    let g = Tensor::run_backward(&[&out.loss], &[&x.cos], false, false).remove(0);
    (out.loss.double_value(&[]), g)
}

fn one_hot(x: &Inputs) -> Tensor {
    x.labels.one_hot(C).to_kind(Kind::Double)
}

fn assert_close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    let diff = (a - b).abs().max().double_value(&[]);
    assert!(diff < tol, "{what}: max |autograd − closed form| = {diff:e}");
}

/// Softmax-family closed form: g = (P − onehot) ⊙ s ⊙ ψ'(target) / B.
fn softmax_family_grad(logits: &Tensor, scale: &Tensor, psi_prime_target: &Tensor, x: &Inputs) -> Tensor {
    let p = logits.softmax(-1, Kind::Double);
    let oh = one_hot(x);
    let psi_prime = oh.ones_like() + &oh * (psi_prime_target - 1.0);
    (p - &oh) * scale * psi_prime / B as f64
}

fn ce(logits: &Tensor, x: &Inputs) -> f64 {
    let logp = logits.log_softmax(-1, Kind::Double);
    -logp.gather(1, &x.labels.unsqueeze(1), false).mean(Kind::Double).double_value(&[])
}

#[test]
fn p2sgrad_gradient_is_cos_minus_one_hot() {
    for seed in 0..3 {
        let x = inputs(seed);
        let (value, g) = loss_and_grad(&config("p2sgrad", &[]), &x);
        let residual = x.cos.detach() - one_hot(&x);
        assert_close(&g, &(&residual / B as f64), 1e-12, "p2sgrad paper");
        let expected = residual.square().sum(Kind::Double).double_value(&[]) * 0.5 / B as f64;
        assert!((value - expected).abs() < 1e-12);
        let (value, g) = loss_and_grad(&config("p2sgrad", &[("reduction", ParamValue::Str("mse-mean".into()))]), &x);
        assert_close(&g, &(&residual * (2.0 / (B * C) as f64)), 1e-12, "p2sgrad mse-mean");
        let expected = residual.square().mean(Kind::Double).double_value(&[]);
        assert!((value - expected).abs() < 1e-12);
    }
}

#[test]
fn softmax_and_l2softmax_match_closed_forms() {
    let x = inputs(3);
    let cos = x.cos.detach();
    let norms = &x.feat_norm * &x.weight_norm;
    let logits = &cos * &norms + &x.bias;
    let (value, g) = loss_and_grad(&config("softmax", &[]), &x);
    assert_close(
        &g,
        &softmax_family_grad(&logits, &norms, &Tensor::ones([B, 1], (Kind::Double, tch::Device::Cpu)), &x),
        1e-5,
        "softmax",
    );
    assert!((value - ce(&logits, &x)).abs() < 1e-10);

    let alpha = 12.5;
    let scale = &x.weight_norm * alpha;
    let logits = &cos * &scale + &x.bias;
    let (value, g) = loss_and_grad(&config("l2softmax", &[("alpha", ParamValue::Float(alpha))]), &x);
    assert_close(
        &g,
        &softmax_family_grad(
            &logits,
            &scale.expand([B, C], false),
            &Tensor::ones([B, 1], (Kind::Double, tch::Device::Cpu)),
            &x,
        ),
        1e-5,
        "l2softmax",
    );
    assert!((value - ce(&logits, &x)).abs() < 1e-10);
}

#[test]
fn cosface_matches_closed_form() {
    let x = inputs(4);
    let (s, m) = (30.0, 0.35);
    let cos = x.cos.detach();
    let logits = (&cos - one_hot(&x) * m) * s;
    let (value, g) = loss_and_grad(&config("cosface", &[("s", ParamValue::Float(s)), ("m", ParamValue::Float(m))]), &x);
    let scale = cos.full_like(s);
    assert_close(
        &g,
        &softmax_family_grad(&logits, &scale, &Tensor::ones([B, 1], (Kind::Double, tch::Device::Cpu)), &x),
        1e-5,
        "cosface",
    );
    assert!((value - ce(&logits, &x)).abs() < 1e-10);
}

#[test]
fn arcface_exact_straight_through_and_fallback_match_closed_forms() {
    let (s, m) = (64.0, 0.5);
    for seed in 5..9 {
        let x = inputs(seed);
        let cos = x.cos.detach();
        let cos_y = cos.gather(1, &x.labels.unsqueeze(1), false);
        let theta = cos_y.acos();
        let in_range = (&theta + m).le(std::f64::consts::PI);
        let target = (&theta + m).cos().where_self(&in_range, &(&cos_y - m * m.sin()));
        let psi_prime = ((&theta + m).sin() / theta.sin()).where_self(&in_range, &cos_y.ones_like());
        let oh = one_hot(&x);
        let logits = (&cos + &oh * (&target - &cos_y)) * s;
        let scale = cos.full_like(s);
        let (value, g) =
            loss_and_grad(&config("arcface", &[("s", ParamValue::Float(s)), ("m", ParamValue::Float(m))]), &x);
        assert_close(&g, &softmax_family_grad(&logits, &scale, &psi_prime, &x), 1e-5, "arcface exact");
        assert!((value - ce(&logits, &x)).abs() < 1e-9);
        let (value_st, g_st) = loss_and_grad(
            &config(
                "arcface",
                &[
                    ("s", ParamValue::Float(s)),
                    ("m", ParamValue::Float(m)),
                    ("gradient", ParamValue::Str("straight-through".into())),
                ],
            ),
            &x,
        );
        assert_close(
            &g_st,
            &softmax_family_grad(&logits, &scale, &cos_y.ones_like(), &x),
            1e-5,
            "arcface straight-through",
        );
        assert!((value_st - value).abs() < 1e-12, "straight-through changes the gradient, not the value");
    }
}

#[test]
fn arcface_fallback_region_is_exercised() {
    // Targets at θ > π − m take cos θ − m·sin m with ψ' = 1.
    let (s, m) = (16.0, 0.5);
    let x = inputs(1);
    let cos = x.cos.detach().fill_(-0.95).set_requires_grad(true);
    let x = Inputs { cos, ..x };
    let (value, g) = loss_and_grad(&config("arcface", &[("s", ParamValue::Float(s)), ("m", ParamValue::Float(m))]), &x);
    let cos = x.cos.detach();
    let oh = one_hot(&x);
    let logits = (&cos - &oh * (m * m.sin())) * s;
    assert_close(
        &g,
        &softmax_family_grad(&logits, &cos.full_like(s), &Tensor::ones([B, 1], (Kind::Double, tch::Device::Cpu)), &x),
        1e-5,
        "arcface fallback",
    );
    assert!((value - ce(&logits, &x)).abs() < 1e-10);
}

#[test]
fn no_loss_produces_nan_at_cos_plus_minus_one() {
    for entry in loss::registry() {
        for edge in [1.0, -1.0] {
            let x = inputs(2);
            let cos = x.cos.detach().fill_(edge).set_requires_grad(true);
            let x = Inputs { cos, ..x };
            let (value, g) = loss_and_grad(&config(entry.name, &[]), &x);
            assert!(value.is_finite(), "{} loss at cos = {edge}: {value}", entry.name);
            let finite = g.isfinite().all().int64_value(&[]) == 1;
            assert!(finite, "{} gradient at cos = {edge} is not finite", entry.name);
        }
    }
}

/// Softmax's logits are written ‖x‖·‖W_j‖·cos θ_ij + b_j (cos on the graph, so g is defined);
/// from real features and weights in float, they and their gradients equal F.linear's
/// (x·Wᵀ + b) to float precision.
#[test]
fn softmax_on_the_cosine_graph_equals_the_linear_layer() {
    tch::manual_seed(11);
    let opts = (Kind::Float, tch::Device::Cpu);
    let x = (Tensor::randn([B, 16], opts) * 3.0).set_requires_grad(true);
    let w = (Tensor::randn([C, 16], opts) * 0.3).set_requires_grad(true);
    let bias = (Tensor::randn([C], opts) * 0.1).set_requires_grad(true);
    let labels = Tensor::randint(C, [B], (Kind::Int64, tch::Device::Cpu));
    let feat_norm = x.norm_scalaropt_dim(2, [1], true);
    let w_norm = w.norm_scalaropt_dim(2, [1], true);
    let cos = (&x / feat_norm.clamp_min(1e-12)).matmul(&(&w / w_norm.clamp_min(1e-12)).tr());
    let mut softmax = loss::build(&config("softmax", &[]), &LossContext { num_classes: C });
    let out = softmax.forward(&CosineBatch {
        cos: &cos,
        feat_norm: &feat_norm,
        weight_norm: &w_norm.tr(),
        bias: Some(&bias),
        labels: &labels,
    });
    let linear = x.linear(&w, Some(&bias));
    assert_close(out.logits.as_ref().unwrap(), &linear, 1e-5, "softmax logits vs x·Wᵀ + b");
    let ours = Tensor::run_backward(&[&out.loss], &[&x, &w, &bias], false, false);
    let reference = loss::cross_entropy(&linear, &labels);
    let theirs = Tensor::run_backward(&[&reference], &[&x, &w, &bias], false, false);
    for (name, (a, b)) in ["x", "W", "b"].iter().zip(ours.iter().zip(&theirs)) {
        assert_close(a, b, 1e-5, &format!("∂L/∂{name}"));
    }
}
