//! p2sbench: a harness that trains identical networks under cosine-softmax losses (P2SGrad,
//! CosFace, ArcFace, L2-softmax, softmax, …), logs ∂L/∂cos θ and the other gradient telemetry to
//! parquet, and evaluates on face-recognition protocols.
//!
//! Data flows one way: [`spec`] → trials → ([`data`], [`model`], [`loss`]) → [`train`] →
//! [`eval`] → [`store`]; [`runner`] drives that chain and [`cli`] maps commands onto it.

pub mod analysis;
pub mod cli;
pub mod data;
pub mod digest;
pub mod error;
pub mod eval;
pub mod loss;
pub mod model;
pub mod plot;
pub mod report;
pub mod runner;
pub mod spec;
pub mod store;
pub mod train;
