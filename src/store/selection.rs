//! `selection.json`: what `[select]` chose, written by the runner once the search of a group is
//! complete, so that the report can show the search space, its cost and the choice without
//! recomputing them.

use crate::error::InputError;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file inside `results/<experiment>/`.
pub const FILE: &str = "selection.json";

/// The protocol and the choices made so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// `<protocol>/<metric>`, read on the validation identities.
    pub metric: String,
    /// `max` or `min`.
    pub goal: String,
    /// The tuned keys.
    pub tune: Vec<String>,
    pub validation_identities: usize,
    pub test_identities: usize,
    pub search_seeds: Vec<u64>,
    pub final_seeds: Vec<u64>,
    pub choices: Vec<ChoiceRecord>,
}

/// One loss/condition group's choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRecord {
    /// The loss and the group's conditions.
    pub group: String,
    /// Each tuned key with the values searched, in file order.
    pub search_space: Vec<(String, Vec<String>)>,
    pub settings_searched: usize,
    pub search_trials: usize,
    /// Seconds the group's search trials took, summed.
    pub search_seconds: f64,
    /// The chosen values of the tuned keys (`m=0.35, train.lr=0.1`).
    pub chosen: String,
    /// The chosen setting's mean validation metric over the search seeds.
    pub validation_score: f64,
    /// The final trials' setting, as trials.parquet's `setting` (loss, parameters, axes).
    pub setting: String,
    /// The final trials' ids.
    pub final_trials: Vec<String>,
    /// Under successive halving: every rung's decisions and the epochs spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halving: Option<HalvingRecord>,
}

/// One group's successive halving: what each rung decided, and what it cost against the grid.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HalvingRecord {
    pub eta: usize,
    pub rungs: Vec<RungDecision>,
    /// Epochs the group's search trials trained, summed over trials.
    pub trial_epochs: usize,
    /// Epochs the same trials would have trained under the grid (each its `train.epochs`).
    pub grid_trial_epochs: usize,
}

/// The decision at one rung: each setting that reached it, its mean validation metric there over
/// the search seeds, and whether it went on (at the last rung: whether it was chosen).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RungDecision {
    /// Epochs trained at the rung (of the group's first setting, where settings differ).
    pub epochs: usize,
    pub settings: Vec<RungSetting>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RungSetting {
    /// The tuned values (`train.lr=0.1`).
    pub setting: String,
    /// `None` when every seed failed or diverged, or when the setting had trained to the end
    /// before halving (no evaluation at this rung; it goes on without taking a place).
    pub score: Option<f64>,
    pub promoted: bool,
}

impl Selection {
    pub fn write(&self, experiment_dir: &Path) -> Result<()> {
        super::write_atomic(&experiment_dir.join(FILE), serde_json::to_string_pretty(self)?.as_bytes())
    }

    /// `None` when the experiment has no `[select]` (or no group has finished its search).
    pub fn read(experiment_dir: &Path) -> Result<Option<Selection>> {
        let path = experiment_dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| InputError::file(&path, format!("cannot read: {e}")))?;
        let s = serde_json::from_str(&text).map_err(|e| InputError::file(&path, format!("malformed: {e}")))?;
        Ok(Some(s))
    }
}
