//! p2sbench: a harness that trains identical networks under cosine-softmax losses (P2SGrad,
//! CosFace, ArcFace, L2-softmax, softmax, …), logs ∂L/∂cos θ and the other gradient telemetry to
//! parquet, and evaluates on face-recognition protocols.
//!
//! Data flows one way: [`spec`] → trials → ([`data`], [`model`], [`loss`]) → [`train`] (calling
//! [`extract`] through an interface it owns) → [`store`]; [`results`] reads the store back for
//! [`plot`] and [`report`]; [`runner`] drives the chain and [`cli`] maps commands onto it.
//! ARCHITECTURE.md lists the layers and the imports each module may make (checked by
//! `tests/architecture.rs`).

// Layer 1: no tensors above the loss zoo, no knowledge of experiments.
pub mod digest;
pub mod error;
pub mod loss;
pub mod metrics;
pub mod progress;
pub mod stats;
pub mod store;
// Layer 2: experiments, networks, datasets; results read back; the figure toolkit.
pub mod data;
pub mod figure;
pub mod model;
pub mod results;
pub mod spec;
// Layer 3: training, feature extraction, analysis.
pub mod analysis;
pub mod extract;
pub mod select;
pub mod train;
// Layer 4: figures and reports from the results.
pub mod export;
pub mod plot;
pub mod report;
// Layer 5: orchestration and the command line.
pub mod cli;
pub mod runner;
