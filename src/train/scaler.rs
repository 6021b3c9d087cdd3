//! Dynamic loss scaling for float16 training (`train.precision = "amp"` on CUDA), the rule of
//! `torch.cuda.amp.GradScaler` with its defaults: the loss is multiplied by the scale before the
//! backward pass (so small float16 gradients do not flush to zero), the gradients are divided by
//! it before the step, and a step whose gradients hold an inf or NaN is skipped and halves the
//! scale; 2,000 good steps in a row double it. Initial scale 2¹⁶.
//!
//! bfloat16 (autocast on the CPU) has float32's range and needs no scaling, as in PyTorch.

use tch::Tensor;

pub const INITIAL_SCALE: f64 = 65536.0;
const GROWTH_FACTOR: f64 = 2.0;
const BACKOFF_FACTOR: f64 = 0.5;
const GROWTH_INTERVAL: i64 = 2000;

/// The scaler's state, saved in checkpoints so that a resumed trial scales as an uninterrupted one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradScaler {
    pub scale: f64,
    /// Good steps since the scale last changed.
    pub good_steps: i64,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler { scale: INITIAL_SCALE, good_steps: 0 }
    }
}

impl GradScaler {
    /// The loss to call `backward` on.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        loss * self.scale
    }

    /// Divides the gradients of `params` by the scale in place and updates the scale; returns
    /// whether the step may be taken (every gradient finite). One host synchronisation.
    pub fn unscale(&mut self, params: &[Tensor]) -> bool {
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = params.iter().map(Tensor::grad).filter(Tensor::defined).collect();
        let mut finite = true;
        if let Some(first) = grads.first() {
            let mut all_finite = Tensor::ones([], (tch::Kind::Bool, first.device()));
            for g in &grads {
                let _ = g.shallow_clone().g_mul_scalar_(1.0 / self.scale);
                all_finite = all_finite.logical_and(&g.isfinite().all());
            }
            finite = all_finite.int64_value(&[]) != 0;
        }
        if finite {
            self.good_steps += 1;
            if self.good_steps == GROWTH_INTERVAL {
                self.scale *= GROWTH_FACTOR;
                self.good_steps = 0;
            }
        } else {
            self.scale *= BACKOFF_FACTOR;
            self.good_steps = 0;
        }
        finite
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn param_with_grad(values: &[f32]) -> Tensor {
        let p = Tensor::zeros([values.len() as i64], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        (&p * Tensor::from_slice(values)).sum(Kind::Float).backward();
        p
    }

    #[test]
    fn finite_gradients_are_unscaled_and_an_overflow_skips_the_step_and_halves_the_scale() {
        let mut scaler = GradScaler::default();
        let p = param_with_grad(&[65536.0, -131072.0]);
        assert!(scaler.unscale(std::slice::from_ref(&p)));
        assert_eq!(Vec::<f32>::try_from(p.grad()).unwrap(), vec![1.0, -2.0]);
        assert_eq!(scaler, GradScaler { scale: INITIAL_SCALE, good_steps: 1 });
        let bad = param_with_grad(&[1.0, f32::INFINITY]);
        assert!(!scaler.unscale(&[p, bad]));
        assert_eq!(scaler, GradScaler { scale: INITIAL_SCALE / 2.0, good_steps: 0 });
        let loss = Tensor::from(3.0f32);
        assert_eq!(scaler.scale_loss(&loss).double_value(&[]), 3.0 * INITIAL_SCALE / 2.0);
    }

    #[test]
    fn the_scale_doubles_after_the_growth_interval_of_good_steps() {
        let mut scaler = GradScaler { scale: 8.0, good_steps: GROWTH_INTERVAL - 1 };
        assert!(scaler.unscale(&[param_with_grad(&[8.0])]));
        assert_eq!(scaler, GradScaler { scale: 16.0, good_steps: 0 });
    }
}
