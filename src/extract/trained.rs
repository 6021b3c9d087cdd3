//! A trained trial as a feature extractor: the trial directory's `config.toml` rebuilds the
//! network (backbone, embedding and head shapes) and the checkpoint restores its weights
//! (through [`crate::model::weights`]); the network embeds images as a
//! [`super::features::Embedder`].

use crate::error::InputError;
use crate::model::{self, weights, Network};
use crate::spec::{DeviceChoice, TrialConfig};
use crate::store::trial_files;
use std::path::{Path, PathBuf};
use tch::Device;

/// A trial's network, loaded for inference.
pub struct Extractor {
    pub net: Network,
    pub config: TrialConfig,
    pub device: Device,
    /// The optimiser steps the checkpoint was saved after, if it records them.
    pub steps: Option<i64>,
}

/// The trial's `config.toml`.
pub fn read_config(dir: &Path) -> Result<TrialConfig, InputError> {
    let path = dir.join(trial_files::CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        InputError::file(&path, format!("cannot read the trial configuration ({e}); --model expects a trial directory"))
    })?;
    let config: TrialConfig = toml::from_str(&text)
        .map_err(|e| InputError::file(&path, format!("not a trial configuration: {}", e.message())))?;
    config.check().map_err(|m| InputError::file(&path, format!("invalid trial configuration: {m}")))?;
    Ok(config)
}

/// The checkpoint file holding a trial's weights (where a new one would be, if there is none).
pub fn checkpoint_file(dir: &Path) -> PathBuf {
    let checkpoint = dir.join(trial_files::CHECKPOINT);
    trial_files::checkpoint_state(&checkpoint).unwrap_or_else(|| checkpoint.join(trial_files::CHECKPOINT_STATE))
}

impl Extractor {
    /// Rebuilds the trial's network and loads its weights. Whether the head has a class bias
    /// is read from the checkpoint itself.
    pub fn open(dir: &Path, device: DeviceChoice) -> Result<Extractor, InputError> {
        let config = read_config(dir)?;
        let device = model::device(device).map_err(|m| InputError::file("--device", m))?;
        let file = checkpoint_file(dir);
        if !file.is_file() {
            return Err(InputError::file(&file, "no model checkpoint: the trial has not saved its weights"));
        }
        let loaded = weights::read(&file).map_err(|m| InputError::file(&file, m))?;
        let net = Network::new(
            &config.model,
            config.data.channels,
            config.data.image_size,
            config.data.identities,
            weights::holds(&loaded, "head.bias"),
            config.seed,
            device,
        );
        weights::copy_into(&loaded, &net.vs).map_err(|m| InputError::file(&file, m))?;
        Ok(Extractor { net, config, device, steps: weights::steps(&loaded) })
    }
}
