//! `p2sbench export`: a trained trial's network out of the harness, as an ONNX model (every
//! backbone; [`crate::model::onnx`]) or as safetensors under insightface's names (the IResNets
//! and `mbf`; [`crate::model::insightface`]), each with a JSON file beside it (`<file>.json`:
//! the trial, the loss, the input and its normalisation). Nothing is written when the trial
//! cannot be exported, and each file appears whole (written through a temporary file).

use crate::error::InputError;
use crate::extract::trained::Extractor;
use crate::model::{insightface, weights};
use crate::spec::DeviceChoice;
use crate::store;
use prost::Message;
use serde_json::json;
use std::path::{Path, PathBuf};

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An ONNX model (opset 13) of the backbone and embedding layer in inference mode.
    Onnx,
    /// safetensors with arcface_torch's state-dict names (`get_model(name, num_features=D)`).
    Insightface,
}

/// The files written: the model and its JSON description.
#[derive(Debug)]
pub struct Written {
    pub model: PathBuf,
    pub description: PathBuf,
}

/// The JSON description's path for a model file: `<file>.json`.
pub fn description_path(model: &Path) -> PathBuf {
    let mut name = model.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Exports the trial at `trial_dir` to `out` in `format`.
pub fn export(trial_dir: &Path, format: Format, out: &Path) -> Result<Written, InputError> {
    let extractor = Extractor::open(trial_dir, DeviceChoice::Cpu)?;
    let cfg = &extractor.config;
    let (channels, size) = (cfg.data.channels, cfg.data.image_size);
    let steps = extractor.steps.unwrap_or(0);
    let mut description = json!({
        "trial": cfg.id(),
        "experiment": cfg.experiment,
        "loss": cfg.loss.name,
        "loss_setting": cfg.loss.label(),
        "backbone": cfg.model.backbone.name(),
        "embedding": cfg.model.embedding,
        "training_steps": steps,
        "input": {
            "layout": "NCHW",
            "channels": channels,
            "size": size,
            "colour": if channels == 3 { "RGB" } else { "grey" },
        },
        "normalisation": {
            "formula": "(x - 127.5) / 127.5 on 0..255 pixels, the map training used",
            "mean": 127.5,
            "std": 127.5,
        },
        "p2sbench": env!("CARGO_PKG_VERSION"),
    });
    let cannot_write = |e: anyhow::Error| InputError::file(out, format!("cannot write: {e:#}"));
    match format {
        Format::Onnx => {
            let doc = format!("p2sbench trial {} ({})", cfg.id(), cfg.loss.label());
            description["format"] = json!("onnx");
            description["onnx"] = json!({
                "opset": crate::model::onnx::OPSET,
                "input": crate::model::onnx::INPUT,
                "output": crate::model::onnx::OUTPUT,
            });
            let bytes = extractor.net.to_onnx(channels as i64, size as i64, &doc).encode_to_vec();
            store::write_atomic(out, &bytes).map_err(cannot_write)?;
        }
        Format::Insightface => {
            let backbone = cfg.model.backbone;
            let name = insightface::model_name(backbone);
            if let Some(name) = name {
                if (channels, size) != insightface::INPUT {
                    return Err(InputError::file(
                        trial_dir.join(store::trial_files::CONFIG),
                        format!(
                            "arcface_torch's {name} takes 3 × 112 × 112 images; this trial's are {channels} × {size} × {size} (export it to ONNX instead)"
                        ),
                    ));
                }
            }
            let vars: Vec<(String, tch::Tensor)> = extractor.net.vs.variables().into_iter().collect();
            let state = insightface::state_dict(backbone, &vars, steps)
                .map_err(|m| InputError::file(trial_dir.join(store::trial_files::CONFIG), m))?;
            description["format"] = json!("safetensors, insightface names");
            description["arcface_torch"] = json!({
                "get_model": name,
                "num_features": cfg.model.embedding,
                "load": "model.load_state_dict(safetensors.torch.load_file(path), strict=True)",
            });
            store::write_via_temp(out, |tmp| Ok(weights::write(&state, tmp)?)).map_err(cannot_write)?;
        }
    }
    let json_path = description_path(out);
    let text = serde_json::to_string_pretty(&description).expect("a JSON value") + "\n";
    store::write_atomic(&json_path, text.as_bytes())
        .map_err(|e| InputError::file(&json_path, format!("cannot write: {e:#}")))?;
    Ok(Written { model: out.to_path_buf(), description: json_path })
}
