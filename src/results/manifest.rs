//! `plots/plots.json`: what `plot` drew (and skipped, with why), the index `report` embeds
//! figures from, so neither has to know the other.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest file inside `plots/`.
pub const MANIFEST: &str = "plots.json";

/// A rendered figure: `plots/<stem>.png` and `plots/<stem>.svg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureInfo {
    pub stem: String,
    pub title: String,
    /// One sentence on what the figure shows and how it was aggregated.
    pub caption: String,
}

/// A figure kind that was not drawn, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub kind: String,
    pub reason: String,
}

/// What `plot` wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub figures: Vec<FigureInfo>,
    pub skipped: Vec<Skipped>,
}

impl Manifest {
    /// Reads `plots/plots.json` of an experiment directory; `None` when absent.
    pub fn read(experiment_dir: &Path) -> Result<Option<Manifest>> {
        let path = experiment_dir.join("plots").join(MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        let m = serde_json::from_str(&text)
            .map_err(|e| crate::error::InputError::file(&path, format!("malformed plot manifest: {e}")))?;
        Ok(Some(m))
    }
}
