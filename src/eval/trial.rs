//! A trained trial as a feature extractor: the trial directory's `config.toml` rebuilds the
//! network (backbone, embedding and head shapes), the checkpoint restores its weights, and
//! [`Extractor::extract`] embeds image sets with a flip variant.

use super::{features, Features};
use crate::data::ImageSet;
use crate::error::InputError;
use crate::loss::{self, LossContext};
use crate::model::Network;
use crate::spec::{FlipMode, TrialConfig};
use crate::train::checkpoint;
use std::path::{Path, PathBuf};
use tch::Device;

/// A trial's network, loaded for inference.
pub struct Extractor {
    pub net: Network,
    pub config: TrialConfig,
    pub device: Device,
}

/// The trial's `config.toml`.
pub fn read_config(dir: &Path) -> Result<TrialConfig, InputError> {
    let path = dir.join(crate::store::trial_files::CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        InputError::file(&path, format!("cannot read the trial configuration ({e}); --model expects a trial directory"))
    })?;
    toml::from_str(&text).map_err(|e| InputError::file(&path, format!("not a trial configuration: {}", e.message())))
}

/// (channels, image size) the trial's network takes.
pub fn input_shape(dir: &Path) -> Result<(usize, usize), InputError> {
    let cfg = read_config(dir)?;
    Ok((cfg.data.channels, cfg.data.image_size))
}

/// `auto` (CUDA when available), `cpu` or `cuda`.
pub fn parse_device(text: &str) -> Result<Device, InputError> {
    match text {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        "cuda" => Err(InputError::file("--device", "cuda requested but libtorch sees no CUDA device")),
        other => Err(InputError::file("--device", format!("{other:?}: expected auto, cpu or cuda"))),
    }
}

/// The checkpoint holding a trial's weights (written by `train::checkpoint`).
pub fn checkpoint_file(dir: &Path) -> PathBuf {
    checkpoint::state_file(&dir.join("checkpoint"))
}

impl Extractor {
    /// Rebuilds the trial's network and loads its weights.
    pub fn open(dir: &Path, device: &str) -> Result<Extractor, InputError> {
        let config = read_config(dir)?;
        let device = parse_device(device)?;
        let ctx = LossContext { num_classes: config.data.identities as i64 };
        let with_bias = loss::build(&config.loss, &ctx).uses_bias();
        let net = Network::new(
            &config.model,
            config.data.channels,
            config.data.image_size,
            config.data.identities,
            with_bias,
            config.seed,
            device,
        );
        let weights = checkpoint_file(dir);
        if !weights.is_file() {
            return Err(InputError::file(&weights, "no model checkpoint: the trial has not saved its weights"));
        }
        checkpoint::load_weights(&dir.join("checkpoint"), &net.vs).map_err(|m| InputError::file(&weights, m))?;
        Ok(Extractor { net, config, device })
    }

    /// Features of `set` (images already at the network's input shape).
    pub fn extract(&self, set: &ImageSet, flip: FlipMode, batch: usize, progress: bool) -> Features {
        features::extract_features(&self.net, set, flip, batch, self.device, progress)
    }
}
