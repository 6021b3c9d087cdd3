//! Feature extraction: a network and images → features, and the evaluation an experiment's
//! `[eval]` selects, run on a network during training.
//!
//! - [`features`]: batched embedding in eval mode with the flip-test variants.
//! - [`suite`]: the protocols `[eval]` selects (built-in ones over the held-out identities,
//!   real-file ones read once), run on a network; scoring is [`crate::metrics`]'s.
//! - [`onnx`]: an ONNX face model (tract) as the same kind of extractor (`eval --onnx`).
//! - [`trained`]: a trained trial directory (its `config.toml` and checkpoint) as a network.

pub mod features;
pub mod onnx;
pub mod suite;
pub mod trained;
