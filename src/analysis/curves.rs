//! P_y(θ), g_y(θ) and ‖∂L/∂x‖(θ) of one loss setting, computed through the loss's own
//! [`Loss`](crate::loss::Loss) implementation with autograd, so the curves are what training uses.
//!
//! Geometry of each point: one sample (batch of one) whose target angle is θ_y and whose
//! non-target classes all sit at 90° (cos θ_j = 0, so Σ_{j≠y} e^{f_j} = C − 1 for every loss
//! here); the non-target class directions are orthogonal to each other and to x̂, the target
//! direction lies in the plane of x̂ and one more axis; ‖W_j‖ = 1, biases 0, ‖x‖ = `feat_norm`.
//! Then ∂cos θ_j/∂x are orthogonal to each other and to x̂, and
//!
//!     ‖∂L/∂x‖² = (∂L/∂‖x‖)² + (g_y·sin θ_y/‖x‖)² + Σ_{j≠y} (g_j/‖x‖)²
//!
//! with g = ∂L/∂cos θ and ∂L/∂‖x‖ read by autograd on the [1, C] cosine row and the norm.
//! Each point uses a freshly built loss that sees that one sample: adaptive state (AdaCos's s,
//! CurricularFace's t, AdaFace's norm statistics) takes its first update from that sample, as on
//! the first training step; SphereFace's λ is its value at step 0 (set `base = 0` for λ = lambda_min).
//! `p_target` is softmax_y of the logits the loss's cross-entropy sees; P2SGrad has no logits and
//! its stand-in for P, cos θ_y, is reported instead.

use crate::loss::{self, CosineBatch, LossConfig, LossContext};
use tch::{Device, Kind, Tensor};

/// One setting to draw: a loss configuration and the number of classes C.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveSpec {
    pub loss: LossConfig,
    pub classes: i64,
}

/// The curves at one target angle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub theta_deg: f64,
    /// P_y (or cos θ_y for P2SGrad).
    pub p_target: f64,
    /// g_y = ∂L/∂cos θ_y for this one sample.
    pub coef_target: f64,
    /// ‖∂L/∂x‖ under the geometry of the module doc.
    pub grad_norm_feature: f64,
    /// The logit scale the loss reported.
    pub scale: f64,
}

/// One setting's curves.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub spec: CurveSpec,
    pub feat_norm: f64,
    pub points: Vec<CurvePoint>,
}

/// θ_y from 0° to 180° every `step_deg` degrees (180° always included).
pub fn grid(step_deg: f64) -> Vec<f64> {
    let n = (180.0 / step_deg).floor() as usize;
    let mut out: Vec<f64> = (0..=n).map(|i| i as f64 * step_deg).collect();
    if 180.0 - out[n] > 1e-9 {
        out.push(180.0);
    }
    out
}

/// Evaluates one setting at every angle of `grid_deg`.
pub fn compute(spec: &CurveSpec, grid_deg: &[f64], feat_norm: f64) -> Curve {
    let points = grid_deg.iter().map(|&deg| point(spec, deg, feat_norm)).collect();
    Curve { spec: spec.clone(), feat_norm, points }
}

fn point(spec: &CurveSpec, theta_deg: f64, feat_norm: f64) -> CurvePoint {
    let opts = (Kind::Double, Device::Cpu);
    let c = spec.classes;
    let mut l = loss::build(&spec.loss, &LossContext { num_classes: c });
    let cos_y = theta_deg.to_radians().cos();
    // Exact at the ends of the grid (cos 90° in floating point is 6e-17, not 0).
    let cos_y = if theta_deg == 0.0 {
        1.0
    } else if theta_deg == 180.0 {
        -1.0
    } else if theta_deg == 90.0 {
        0.0
    } else {
        cos_y
    };
    let mut values = vec![0.0; c as usize];
    values[0] = cos_y;
    let cos = Tensor::from_slice(&values).view([1, c]).set_requires_grad(true);
    let norm = Tensor::full([1, 1], feat_norm, opts).set_requires_grad(true);
    let weight_norm = Tensor::ones([1, c], opts);
    let bias = Tensor::zeros([c], opts);
    let labels = Tensor::zeros([1], (Kind::Int64, Device::Cpu));
    let out = l.forward(&CosineBatch {
        cos: &cos,
        feat_norm: &norm,
        weight_norm: &weight_norm,
        bias: l.uses_bias().then_some(&bias),
        labels: &labels,
    });
    // The zero term keeps ‖x‖ on the graph for the losses that do not use it.
    let total = &out.loss + norm.sum(Kind::Double) * 0.0;
    let grads = Tensor::run_backward(&[&total], &[&cos, &norm], false, false);
    let g = &grads[0];
    let g_y = g.double_value(&[0, 0]);
    let d_norm = grads[1].double_value(&[0, 0]);
    let others_sq = g.narrow(1, 1, c - 1).square().sum(Kind::Double).double_value(&[]);
    let sin_y = (1.0 - cos_y * cos_y).max(0.0).sqrt();
    let grad_norm_feature =
        (d_norm * d_norm + (g_y * sin_y / feat_norm).powi(2) + others_sq / (feat_norm * feat_norm)).sqrt();
    let p_target = match &out.logits {
        Some(logits) => logits.detach().softmax(-1, Kind::Double).double_value(&[0, 0]),
        None => cos_y,
    };
    CurvePoint { theta_deg, p_target, coef_target: g_y, grad_norm_feature, scale: out.scale }
}
