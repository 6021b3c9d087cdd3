//! The network's variables in a checkpoint file: every variable (parameters and batch-norm
//! statistics) stored as `var/<name>`, beside whatever else the writer keeps there (training
//! adds its optimiser state). Loading trained weights for feature extraction lives here, so
//! reading a trained network needs nothing from training.

use std::path::Path;
use tch::nn::VarStore;
use tch::Tensor;

const PREFIX: &str = "var/";
/// The optimiser steps a checkpoint was saved after (written by training).
pub const STEP: &str = "meta/step";

/// Every variable of `vs` as (`var/<name>`, CPU tensor), in name order, for a checkpoint file.
pub fn named_variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter().map(|(name, t)| (format!("{PREFIX}{name}"), t.to_device(tch::Device::Cpu))).collect()
}

/// Reads every named tensor of a checkpoint file (safetensors, or libtorch's format for a
/// `.pt` file); `Err` says why the file cannot be read.
pub fn read(file: &Path) -> Result<Vec<(String, Tensor)>, String> {
    let loaded = match file.extension().and_then(|e| e.to_str()) {
        Some("pt") => Tensor::load_multi(file),
        _ => Tensor::read_safetensors(file),
    };
    // libtorch's message, without the C++ frames that follow its first line.
    loaded.map_err(|e| format!("cannot read the checkpoint: {}", e.to_string().lines().next().unwrap_or_default()))
}

/// Writes named tensors as a safetensors file at `file`. (libtorch's own writer aborts the
/// process when a write fails, a full disk for one; this one returns the error.)
pub fn write(named: &[(String, Tensor)], file: &Path) -> Result<(), tch::TchError> {
    let contiguous: Vec<(&str, Tensor)> =
        named.iter().map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&contiguous, file)
}

/// Whether the tensors read from a checkpoint hold the network variable `name` (`head.bias`).
pub fn holds(loaded: &[(String, Tensor)], name: &str) -> bool {
    let key = format!("{PREFIX}{name}");
    loaded.iter().any(|(n, _)| *n == key)
}

/// Copies the saved network variables into `vs`; `Err` names the tensor that is missing or has
/// another shape than the network's.
pub fn copy_into(loaded: &[(String, Tensor)], vs: &VarStore) -> Result<(), String> {
    let device = vs.device();
    let _guard = tch::no_grad_guard();
    for (name, mut var) in vs.variables() {
        let key = format!("{PREFIX}{name}");
        let saved = loaded
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, t)| t)
            .ok_or_else(|| format!("no tensor {key}: the checkpoint does not match the trial's config.toml"))?;
        if saved.size() != var.size() {
            return Err(format!("{key} has shape {:?}, the network expects {:?}", saved.size(), var.size()));
        }
        var.copy_(&saved.to_device(device));
    }
    Ok(())
}

/// The optimiser steps a checkpoint was saved after, if it records them.
pub fn steps(loaded: &[(String, Tensor)]) -> Option<i64> {
    loaded.iter().find(|(n, _)| n == STEP).map(|(_, t)| t.int64_value(&[0]))
}
