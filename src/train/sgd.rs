//! SGD with momentum and weight decay, PyTorch's update rule (dampening 0, no Nesterov):
//! d = g + wd·p; buf = d on the first step, else μ·buf + d; p ← p − lr·buf. Written out here
//! (rather than tch's optimiser) because its momentum buffers must be saved in checkpoints.

use tch::nn::VarStore;
use tch::Tensor;

pub struct Sgd {
    /// Trainable variables, sorted by name.
    pub params: Vec<(String, Tensor)>,
    /// Momentum buffers, one per parameter once it has had a gradient.
    pub buffers: Vec<Option<Tensor>>,
    pub momentum: f64,
    pub weight_decay: f64,
    pub lr: f64,
}

impl Sgd {
    pub fn new(vs: &VarStore, momentum: f64, weight_decay: f64, lr: f64) -> Sgd {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = params.iter().map(|_| None).collect();
        Sgd { params, buffers, momentum, weight_decay, lr }
    }

    pub fn zero_grad(&self) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    pub fn step(&mut self) {
        let _guard = tch::no_grad_guard();
        for ((_, p), buffer) in self.params.iter().zip(self.buffers.iter_mut()) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let d = if self.weight_decay != 0.0 { &g + p * self.weight_decay } else { g.copy() };
            let update = match buffer {
                Some(buf) if self.momentum != 0.0 => {
                    let _ = buf.g_mul_scalar_(self.momentum).g_add_(&d);
                    buf.shallow_clone()
                }
                _ if self.momentum != 0.0 => {
                    *buffer = Some(d.copy());
                    d
                }
                _ => d,
            };
            let mut p = p.shallow_clone();
            let _ = p.g_sub_(&(update * self.lr));
        }
    }
}
