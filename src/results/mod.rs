//! The results layer: an experiment's results directory read back into typed frames
//! ([`load`]), reduced with polars ([`aggregate`]: last evaluation per trial, mean ± std over
//! seeds, spreads, noise drops, representative settings), and the metric-name grammar of
//! evals.parquet ([`names`]). Both `plot` and `report` stand on it; it never trains and never
//! draws.

pub mod aggregate;
mod cache;
pub mod compare;
mod load;
mod manifest;
pub mod names;

pub use load::*;
pub use manifest::*;
