//! The figure toolkit every command that draws shares: [`style`] (embedded DejaVu font, one
//! colour per loss, the figure frame with its legend column, PNG + SVG + PDF saving) and [`panel`]
//! (x–y panels with linear or log axes, panel grids). It knows nothing of results files.

pub mod panel;
pub mod style;
