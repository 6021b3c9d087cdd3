//! Dynamic loss scaling, the rule of `torch.cuda.amp.GradScaler`: the loss is multiplied by the
//! scale before the backward pass (so small float16 gradients do not flush to zero), the
//! gradients are divided by it before the step, and a step whose loss or gradients hold an inf
//! or NaN is skipped and halves the scale; `growth_interval` good steps in a row double it
//! (`train.scaler_growth_interval`: PyTorch's 2,000 by default, insightface's 100). Initial scale
//! `train.scaler_init_scale` (2¹⁶). It runs with float16 (`amp` on CUDA), or wherever
//! `train.loss_scaling = "on"`.
//!
//! A float16 overflow is not a divergence: only [`MAX_SKIPPED_IN_A_ROW`] skipped steps in a row
//! are (the scale has then been halved that many times, 2¹⁶ → 2⁻⁴, and still the loss or the
//! gradients are not finite).
//!
//! bfloat16 (autocast on the CPU) has float32's range and needs no scaling, as in PyTorch.

use tch::Tensor;

pub const INITIAL_SCALE: f64 = 65536.0;
const GROWTH_FACTOR: f64 = 2.0;
const BACKOFF_FACTOR: f64 = 0.5;

/// Skipped steps in a row that make a trial diverged.
pub const MAX_SKIPPED_IN_A_ROW: i64 = 20;

/// The scaler's state, saved in checkpoints so that a resumed trial scales as an uninterrupted one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradScaler {
    pub scale: f64,
    /// Good steps since the scale last changed.
    pub good_steps: i64,
    /// Steps skipped since the last good one.
    pub skipped_in_a_row: i64,
    /// Good steps in a row that double the scale (from the trial's config; not checkpointed).
    pub growth_interval: i64,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler::new(INITIAL_SCALE, 2000)
    }
}

impl GradScaler {
    pub fn new(init_scale: f64, growth_interval: i64) -> GradScaler {
        GradScaler { scale: init_scale, good_steps: 0, skipped_in_a_row: 0, growth_interval }
    }

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
            self.skipped_in_a_row = 0;
            self.good_steps += 1;
            if self.good_steps == self.growth_interval {
                self.scale *= GROWTH_FACTOR;
                self.good_steps = 0;
            }
        } else {
            self.skipped_in_a_row += 1;
            self.scale *= BACKOFF_FACTOR;
            self.good_steps = 0;
        }
        finite
    }

    /// Whether the skipped steps in a row have reached [`MAX_SKIPPED_IN_A_ROW`]: a divergence.
    pub fn diverged(&self) -> bool {
        self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW
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
        assert_eq!((scaler.scale, scaler.good_steps, scaler.skipped_in_a_row), (INITIAL_SCALE, 1, 0));
        let bad = param_with_grad(&[1.0, f32::INFINITY]);
        assert!(!scaler.unscale(&[p, bad]));
        assert_eq!((scaler.scale, scaler.good_steps, scaler.skipped_in_a_row), (INITIAL_SCALE / 2.0, 0, 1));
        let loss = Tensor::from(3.0f32);
        assert_eq!(scaler.scale_loss(&loss).double_value(&[]), 3.0 * INITIAL_SCALE / 2.0);
    }

    #[test]
    fn only_a_run_of_skipped_steps_is_a_divergence() {
        let mut scaler = GradScaler::default();
        for _ in 0..MAX_SKIPPED_IN_A_ROW - 1 {
            assert!(!scaler.unscale(&[param_with_grad(&[f32::NAN])]));
        }
        assert!(!scaler.diverged());
        assert!(scaler.unscale(&[param_with_grad(&[1.0])]), "a good step ends the run");
        assert_eq!(scaler.skipped_in_a_row, 0);
        for _ in 0..MAX_SKIPPED_IN_A_ROW {
            assert!(!scaler.unscale(&[param_with_grad(&[f32::INFINITY])]));
        }
        assert!(scaler.diverged());
    }

    #[test]
    fn the_scale_doubles_after_the_growth_interval_of_good_steps() {
        for interval in [2000, 100] {
            let mut scaler = GradScaler { good_steps: interval - 1, ..GradScaler::new(8.0, interval) };
            assert!(scaler.unscale(&[param_with_grad(&[8.0])]));
            assert_eq!((scaler.scale, scaler.good_steps), (16.0, 0), "interval {interval}");
        }
    }
}
