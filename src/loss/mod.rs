//! The loss zoo. Every loss sees a batch only through [`CosineBatch`]: the cosine matrix
//! cos θ (B×C, a graph node, so ∂L/∂cos can be read with `run_backward`) plus the feature
//! and class-weight norms for the losses that are not scale-free. A loss returns its
//! batch-mean value and the logit scale in force. The registry maps a `[[loss]]` block's
//! `name` to its parameter specification and constructor.

mod adacos;
mod adaface;
mod arcface;
mod combined;
mod cosface;
mod curricularface;
mod l2softmax;
mod magface;
mod normface;
mod p2sgrad;
mod params;
mod softmax;
mod sphereface;

pub use params::{format_float, LossConfig, ParamKind, ParamSpec, ParamValue};

use tch::{Kind, Tensor};

/// Clamp applied to cosines before any `acos` or `sqrt(1 - cos²)`.
pub const COS_EPS: f64 = 1e-7;

/// What every loss sees of a batch.
pub struct CosineBatch<'a> {
    /// cos θ_ij, shape [B, C].
    pub cos: &'a Tensor,
    /// ‖x_i‖, shape [B, 1].
    pub feat_norm: &'a Tensor,
    /// ‖W_j‖, shape [1, C].
    pub weight_norm: &'a Tensor,
    /// Class bias b_j, shape [C], for the losses that ask for one.
    pub bias: Option<&'a Tensor>,
    /// Labels y_i, shape [B], int64.
    pub labels: &'a Tensor,
}

impl CosineBatch<'_> {
    /// One-hot of the labels, [B, C], in the cosine's kind.
    pub fn one_hot(&self) -> Tensor {
        let num_classes = self.cos.size()[1];
        self.labels.one_hot(num_classes).to_kind(self.cos.kind())
    }

    /// cos θ_iy, shape [B, 1].
    pub fn target_cos(&self) -> Tensor {
        self.cos.gather(1, &self.labels.unsqueeze(1), false)
    }
}

/// A loss's answer for one batch.
pub struct LossOutput {
    /// Batch-mean loss (the surrogate's value for P2SGrad).
    pub loss: Tensor,
    /// The logit scale in force: s, α for L2-softmax, AdaCos's current value, 1 where none.
    pub scale: f64,
    /// Margin-free logits used for training accuracy ([B, C]); `None` means use cos θ.
    pub plain_logits: Option<Tensor>,
    /// The logits the cross-entropy sees, margins applied ([B, C]), so that P_ij = softmax_j;
    /// `None` for P2SGrad, which has no logits.
    pub logits: Option<Tensor>,
}

/// A cosine-softmax loss (or P2SGrad's designed gradient, expressed as a surrogate).
pub trait Loss: Send {
    /// Computes the batch-mean loss. `&mut self` lets adaptive losses update their state.
    fn forward(&mut self, batch: &CosineBatch) -> LossOutput;
    /// Whether the head should carry a class bias b_j (softmax, L2-softmax).
    fn uses_bias(&self) -> bool {
        false
    }
    /// Called by the training loop before each step's forward with the number of optimiser
    /// steps taken so far (0 before the first). Losses with a schedule (SphereFace's λ) read it.
    fn on_step(&mut self, _step: i64) {}
    /// While frozen, an adaptive loss (AdaCos dynamic, CurricularFace, AdaFace) uses its state
    /// as it stands and does not update it from the batch; unfrozen (the default) it updates.
    fn set_frozen(&mut self, _frozen: bool) {}
    /// The adaptive state (AdaCos's scale, CurricularFace's t, AdaFace's norm statistics) as
    /// numbers, saved in checkpoints so a resumed trial continues exactly; empty when stateless.
    fn state(&self) -> Vec<f64> {
        Vec::new()
    }
    /// Restores what [`Loss::state`] returned.
    fn set_state(&mut self, _state: &[f64]) {}
}

/// Softmax cross-entropy of `logits` against the batch labels, averaged over the batch.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.log_softmax(-1, None::<Kind>).g_nll_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100)
}

/// Cross-entropy on `logits` as a [`LossOutput`] that carries them (margin-free logits = cos θ).
pub fn softmax_output(logits: Tensor, labels: &Tensor, scale: f64) -> LossOutput {
    LossOutput { loss: cross_entropy(&logits, labels), scale, plain_logits: None, logits: Some(logits) }
}

/// cos θ clamped to [−1 + ε, 1 − ε] ([`COS_EPS`]), safe for `acos` and `sqrt(1 − cos²)`.
pub fn clamp_cos(cos: &Tensor) -> Tensor {
    cos.clamp(-1.0 + COS_EPS, 1.0 - COS_EPS)
}

/// Logits that are `others` ([B, C]) everywhere but the target column, which is `target` ([B, 1]).
pub fn with_target(others: &Tensor, target: &Tensor, labels: &Tensor) -> Tensor {
    others.scatter(1, &labels.unsqueeze(1), target)
}

/// One loss in the registry: its name, parameters (with defaults) and constructor.
pub struct LossEntry {
    pub name: &'static str,
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
    /// Checks that involve several parameters at once (MagFace's l_a < u_a); `Err` says what is expected.
    pub validate: fn(&LossConfig) -> Result<(), String>,
    pub build: fn(&LossConfig, &LossContext) -> Box<dyn Loss>,
}

/// Facts about the experiment a loss may need at construction (AdaCos's fixed scale needs C).
#[derive(Debug, Clone, Copy)]
pub struct LossContext {
    pub num_classes: i64,
}

/// Every loss the harness knows, in the order `--help` lists them.
pub fn registry() -> &'static [LossEntry] {
    &[
        softmax::ENTRY,
        l2softmax::ENTRY,
        normface::ENTRY,
        sphereface::ENTRY,
        sphereface::NORMALISED_ENTRY,
        cosface::ENTRY,
        arcface::ENTRY,
        combined::ENTRY,
        adacos::ENTRY,
        curricularface::ENTRY,
        adaface::ENTRY,
        magface::ENTRY,
        p2sgrad::ENTRY,
    ]
}

/// Looks a loss up by its `name`.
pub fn find(name: &str) -> Option<&'static LossEntry> {
    registry().iter().find(|e| e.name == name)
}

/// Checks a configuration's cross-parameter constraints (single values are checked by the
/// parameter specs when the spec is read). `Err` names the loss and what is expected.
pub fn validate(config: &LossConfig) -> Result<(), String> {
    match find(&config.name) {
        Some(entry) => (entry.validate)(config).map_err(|m| format!("{}: {m}", config.name)),
        None => Err(format!("unknown loss \"{}\"", config.name)),
    }
}

/// Builds the loss a resolved configuration names.
pub fn build(config: &LossConfig, ctx: &LossContext) -> Box<dyn Loss> {
    let entry = find(&config.name).expect("loss names are validated when the spec is read");
    (entry.build)(config, ctx)
}
