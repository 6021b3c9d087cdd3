//! Analysis without training. [`curves`] evaluates, for any loss setting and number of classes,
//! the target probability P_y, the target coefficient g_y = ∂L/∂cos θ_y and the feature-gradient
//! magnitude ‖∂L/∂x‖ against the target angle θ_y, through the same [`crate::loss::Loss`]
//! objects training uses; [`spec`] turns the `curves` command's `--loss` specs and sweep flags
//! into settings; [`output`] writes them as a table, CSV, JSON or a PNG/SVG figure (the
//! `p2sbench curves` command itself is [`crate::cli::curves`]).

pub mod capacity;
pub mod curves;
pub mod output;
pub mod spec;

pub use curves::{compute, grid, Curve, CurvePoint, CurveSpec};
