//! SGD with momentum and weight decay, exactly as `torch.optim.SGD` computes it on the CPU
//! (dampening 0, no Nesterov), in place and without temporaries:
//!
//!     d   = g.add(p, alpha = wd)                 one fused multiply-add per element
//!     buf = d on the first step, else buf.mul_(μ).add_(d)
//!     p   = p.add_(buf, alpha = −lr)             one fused multiply-add per element
//!
//! ATen's `add` with `alpha` is `fmadd(other, alpha, self)` (a single rounding) with `alpha` cast
//! to the tensor's type, so on CPU float tensors the update runs over the raw values with
//! `f32::mul_add`, which rounds once too: the same bits as PyTorch (checked by tests/parity.rs).
//! The values are walked in memory order, so any dense layout works (channels-last weights
//! too) as long as parameter, gradient and buffer share it; momentum buffers take the
//! parameter's layout.
//! Other devices and types use libtorch's in-place ops (`addcmul_` with a one-element tensor
//! holding the factor), which round the product separately. Those factor tensors live on the
//! device and are made again only when the learning rate or the weight decay changes, so a CUDA
//! step copies nothing from the host (before, two scalar copies per parameter and step: about
//! 660 synchronisations per IResNet-50 step). Written here rather than taken from tch because
//! the momentum buffers must be visible to checkpoints (tch reaches neither fused nor foreach
//! SGD).

use rayon::prelude::*;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Elements per rayon task of the CPU update (small tensors stay on one thread).
const CHUNK: usize = 1 << 16;

pub struct Sgd {
    /// Trainable variables, sorted by name.
    pub params: Vec<(String, Tensor)>,
    /// Momentum buffers, one per parameter once it has had a gradient.
    pub buffers: Vec<Option<Tensor>>,
    pub momentum: f64,
    pub weight_decay: f64,
    pub lr: f64,
    /// Device-side factors of the tensor-op update, per device and type.
    factors: Vec<Factors>,
}

/// `weight_decay` and `−lr` as one-element tensors on a device, for the values they were made at.
struct Factors {
    device: Device,
    kind: Kind,
    made_at: (f64, f64),
    weight_decay: Tensor,
    neg_lr: Tensor,
}

/// Whether `t`'s elements fill a block of memory exactly (any dimension order: contiguous,
/// channels-last, …), so that walking that block visits each element once.
fn dense(t: &Tensor) -> bool {
    let mut dims: Vec<(i64, i64)> = t.stride().into_iter().zip(t.size()).filter(|&(_, n)| n != 1).collect();
    dims.sort_unstable();
    let mut expected = 1;
    for (stride, n) in dims {
        if stride != expected {
            return false;
        }
        expected *= n;
    }
    true
}

/// A CPU float tensor's values in memory order, when the update can run over them directly:
/// dense, and laid out like `like` (so that the i-th value of each is the same element). (A tch
/// `Tensor` is a handle, so mutable access comes from a shared reference.)
#[allow(clippy::mut_from_ref)]
fn values<'a>(t: &'a Tensor, like: &Tensor) -> Option<&'a mut [f32]> {
    if t.device() != Device::Cpu || t.kind() != Kind::Float || !dense(t) || t.stride() != like.stride() {
        return None;
    }
    // SAFETY: a dense CPU float tensor holds numel() f32 values from data_ptr(); the tensors
    // handed out here (a parameter, its gradient, its momentum buffer) are distinct storages,
    // laid out alike, and used only inside `Sgd::step`, under no_grad, while nothing else runs.
    Some(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) })
}

/// PyTorch's update over raw values: `buf` is `None` without momentum.
fn update(p: &mut [f32], g: &[f32], buf: Option<&mut [f32]>, first: bool, wd: f32, mu: f32, neg_lr: f32) {
    let decayed = |p: f32, g: f32| if wd != 0.0 { p.mul_add(wd, g) } else { g };
    match buf {
        Some(buf) => {
            for ((p, &g), b) in p.iter_mut().zip(g).zip(buf) {
                let d = decayed(*p, g);
                *b = if first { d } else { *b * mu + d };
                *p = b.mul_add(neg_lr, *p);
            }
        }
        None => {
            for (p, &g) in p.iter_mut().zip(g) {
                *p = decayed(*p, g).mul_add(neg_lr, *p);
            }
        }
    }
}

impl Sgd {
    pub fn new(vs: &VarStore, momentum: f64, weight_decay: f64, lr: f64) -> Sgd {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = params.iter().map(|_| None).collect();
        Sgd { params, buffers, momentum, weight_decay, lr, factors: Vec::new() }
    }

    pub fn zero_grad(&self) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// The index of the factors for `p`'s device and type at the current values, made (one
    /// host-to-device copy each) only when missing or stale.
    fn factors_for(&mut self, p: &Tensor) -> usize {
        let (device, kind, at) = (p.device(), p.kind(), (self.weight_decay, self.lr));
        let make = |v: f64| Tensor::from(v).to_kind(kind).to_device(device);
        match self.factors.iter().position(|f| f.device == device && f.kind == kind) {
            Some(i) if self.factors[i].made_at == at => i,
            Some(i) => {
                self.factors[i] = Factors { device, kind, made_at: at, weight_decay: make(at.0), neg_lr: make(-at.1) };
                i
            }
            None => {
                self.factors.push(Factors { device, kind, made_at: at, weight_decay: make(at.0), neg_lr: make(-at.1) });
                self.factors.len() - 1
            }
        }
    }

    pub fn step(&mut self) {
        let _guard = tch::no_grad_guard();
        let (wd, mu, lr) = (self.weight_decay, self.momentum, self.lr);
        let params: Vec<Tensor> = self.params.iter().map(|(_, p)| p.shallow_clone()).collect();
        let on_tensor_ops = |p: &Tensor| p.device() != Device::Cpu || p.kind() != Kind::Float;
        let slow: Vec<Option<usize>> = params.iter().map(|p| on_tensor_ops(p).then(|| self.factors_for(p))).collect();
        for (((_, p), buffer), slow) in self.params.iter().zip(self.buffers.iter_mut()).zip(slow) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let first = buffer.is_none();
            if first && mu != 0.0 {
                *buffer = Some(p.zeros_like());
            }
            let buffer = buffer.as_ref().filter(|_| mu != 0.0);
            let (pv, gv, bv) = (values(p, p), values(&g, p), buffer.map(|b| values(b, p)));
            let (Some(pv), Some(gv), None | Some(Some(_))) = (pv, gv, &bv) else {
                let f = &self.factors[slow.expect("factors for every non-CPU-float parameter")];
                Self::step_tensor_ops(p, &g, buffer, first, (wd != 0.0).then_some(&f.weight_decay), mu, &f.neg_lr);
                continue;
            };
            let (wd, mu, neg_lr) = (wd as f32, mu as f32, -lr as f32);
            match bv.flatten() {
                Some(bv) if pv.len() > CHUNK => pv
                    .par_chunks_mut(CHUNK)
                    .zip(gv.par_chunks(CHUNK))
                    .zip(bv.par_chunks_mut(CHUNK))
                    .for_each(|((p, g), b)| update(p, g, Some(b), first, wd, mu, neg_lr)),
                None if pv.len() > CHUNK => pv
                    .par_chunks_mut(CHUNK)
                    .zip(gv.par_chunks(CHUNK))
                    .for_each(|(p, g)| update(p, g, None, first, wd, mu, neg_lr)),
                bv => update(pv, gv, bv, first, wd, mu, neg_lr),
            }
        }
    }

    /// The same update through libtorch's in-place ops (GPU tensors, other dtypes), with the
    /// factors already on the device.
    fn step_tensor_ops(
        p: &Tensor,
        g: &Tensor,
        buffer: Option<&Tensor>,
        first: bool,
        wd: Option<&Tensor>,
        mu: f64,
        neg_lr: &Tensor,
    ) {
        let mut d = g.shallow_clone();
        if let Some(wd) = wd {
            let _ = d.addcmul_(p, wd);
        }
        let update = match buffer {
            Some(buf) => {
                let mut buf = buf.shallow_clone();
                if first {
                    buf.copy_(&d);
                } else {
                    let _ = buf.g_mul_scalar_(mu).g_add_(&d);
                }
                buf
            }
            None => d,
        };
        let _ = p.shallow_clone().addcmul_(&update, neg_lr);
    }
}

/// Scales the gradients of `params` so that their joint 2-norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does (the same ops in the same order: each gradient's norm,
/// the norm of those, `max_norm · 1/(norm + 1e-6)` clamped at 1, multiplied in place). The
/// factor stays on the device: no host synchronisation.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) {
    let _guard = tch::no_grad_guard();
    let grads: Vec<Tensor> = params.iter().map(Tensor::grad).filter(Tensor::defined).collect();
    if grads.is_empty() {
        return;
    }
    let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
    let total = Tensor::stack(&norms, 0).norm();
    let coef = ((total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
    for g in &grads {
        let _ = g.shallow_clone().g_mul_(&coef);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::Init;

    /// Runs `steps` SGD steps of L = Σ w² · c on one [n] variable of `kind`; returns its values.
    fn train(kind: Kind, n: i64, steps: usize) -> Vec<f64> {
        let mut vs = VarStore::new(Device::Cpu);
        tch::manual_seed(3);
        let var = vs.root().var("w", &[n], Init::Uniform { lo: -1.0, up: 1.0 });
        vs.set_kind(kind);
        let var = vs.root().get("w").unwrap_or(var);
        assert_eq!(var.kind(), kind);
        let mut sgd = Sgd::new(&vs, 0.9, 5e-4, 0.1);
        let c = Tensor::linspace(0.5, 2.0, n, (kind, Device::Cpu));
        for step in 0..steps {
            if step == 3 {
                sgd.lr = 0.01;
            }
            sgd.zero_grad();
            (var.square() * &c).sum(kind).backward();
            sgd.step();
        }
        Vec::<f64>::try_from(var.to_kind(Kind::Double)).unwrap()
    }

    #[test]
    fn the_tensor_op_update_makes_its_device_factors_once_per_learning_rate() {
        let mut vs = VarStore::new(Device::Cpu);
        let (x, y) = (vs.root().var("x", &[3], Init::Const(1.0)), vs.root().var("y", &[2], Init::Const(2.0)));
        let _ = (x, y);
        vs.set_kind(Kind::Double);
        let mut sgd = Sgd::new(&vs, 0.9, 5e-4, 0.1);
        let loss =
            || vs.variables().values().map(|v| v.square().sum(Kind::Double)).fold(Tensor::from(0.0f64), |a, b| a + b);
        for step in 0..4 {
            if step == 2 {
                sgd.lr = 0.01;
            }
            sgd.zero_grad();
            loss().backward();
            sgd.step();
            // Two parameters of one device and type: one set of factors, at the current values.
            assert_eq!(sgd.factors.len(), 1);
            assert_eq!(sgd.factors[0].made_at, (5e-4, sgd.lr));
            assert_eq!(sgd.factors[0].neg_lr.double_value(&[]), -sgd.lr);
        }
    }

    #[test]
    fn the_raw_update_and_the_tensor_op_update_are_the_same_rule() {
        // f32 runs over the raw values, f64 through libtorch's ops; a large variable is split
        // across rayon tasks.
        for n in [5, CHUNK as i64 * 2 + 7] {
            let (fast, ops) = (train(Kind::Float, n, 6), train(Kind::Double, n, 6));
            let worst = fast.iter().zip(&ops).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-6, "n = {n}: the two paths differ by {worst:e}");
            assert!(fast.iter().zip(train(Kind::Float, n, 0)).all(|(a, b)| *a != b), "nothing moved");
        }
    }
}
