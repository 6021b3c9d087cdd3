//! A trained backbone under insightface's names: the state dict that arcface_torch's
//! `get_model(name, num_features = D)` (`recognition/arcface_torch/backbones`) loads with
//! `strict = True`. Defined for the IResNets (`r18` … `r100`, whose modules are named as here)
//! and `mbf` (whose nested `layers` sequences are mapped unit by unit), for 3 × 112 × 112 inputs:
//! arcface_torch builds its first convolution for 3 channels and its last layers for a 7 × 7 map.
//! Batch norms get PyTorch's `num_batches_tracked` (the trial's training steps).

use crate::spec::shard::MBF_UNITS;
use crate::spec::Backbone;
use tch::Tensor;

/// The input arcface_torch's backbones are built for: (channels, size).
pub const INPUT: (usize, usize) = (3, 112);

/// arcface_torch's `get_model` name of a backbone, where it has one.
pub fn model_name(backbone: Backbone) -> Option<&'static str> {
    match backbone {
        Backbone::Iresnet18 => Some("r18"),
        Backbone::Iresnet34 => Some("r34"),
        Backbone::Iresnet50 => Some("r50"),
        Backbone::Iresnet100 => Some("r100"),
        Backbone::Mbf => Some("mbf"),
        Backbone::Cnn | Backbone::Mobilefacenet => None,
    }
}

/// `mbf`'s name of one of its modules here (`stem`, `blocks.7.expand`, `gdc`, …), without the
/// parameter's own name; `None` for a name `mbf` does not have.
fn mbf_module(path: &str) -> Option<String> {
    // A conv unit here (conv, bn, prelu) is arcface_torch's ConvBlock/LinearBlock: `layers.{0,1,2}`.
    let unit_part = |part: &str| match part {
        "conv" => Some("layers.0"),
        "bn" => Some("layers.1"),
        "prelu" => Some("layers.2"),
        _ => None,
    };
    let mut parts = path.split('.');
    let head = parts.next()?;
    let module = match head {
        "stem" => "layers.0".to_string(),
        "stem_dw" => "layers.1".to_string(),
        "conv_sep" => "conv_sep".to_string(),
        "gdc" => "features.layers.0".to_string(),
        "blocks" => {
            let index: usize = parts.next()?.parse().ok()?;
            // Rows of MBF_UNITS are arcface_torch's `layers[2..]`: a DepthWise (one strided unit)
            // or a Residual of DepthWise units (`layers.{k}`).
            let (mut first, mut found) = (0, None);
            for (row, &(_, _, _, stride, count)) in MBF_UNITS.iter().enumerate() {
                if index < first + count {
                    found = Some((row, index - first, stride));
                    break;
                }
                first += count;
            }
            let (row, k, stride) = found?;
            let unit = match parts.next()? {
                "expand" => "layers.0",
                "depthwise" => "layers.1",
                "project" => "layers.2",
                _ => return None,
            };
            if stride == 1 {
                format!("layers.{}.layers.{k}.{unit}", row + 2)
            } else {
                format!("layers.{}.{unit}", row + 2)
            }
        }
        _ => return None,
    };
    let part = parts.next()?;
    parts.next().is_none().then_some(())?;
    Some(format!("{module}.{}", unit_part(part)?))
}

/// insightface's name of the backbone variable `name` (a `VarStore` name under `backbone.`).
fn renamed(backbone: Backbone, name: &str) -> Option<String> {
    let rest = name.strip_prefix("backbone.")?;
    if backbone == Backbone::Mbf {
        let (path, param) = rest.rsplit_once('.')?;
        return match path {
            "fc" => Some(format!("features.layers.2.{param}")),
            "features" => Some(format!("features.layers.3.{param}")),
            _ => Some(format!("{}.{param}", mbf_module(path)?)),
        };
    }
    model_name(backbone).map(|_| rest.to_string())
}

/// The backbone's variables (`VarStore` names and tensors) as arcface_torch's state dict, sorted
/// by name; `Err` names the backbone without one, or a variable with no insightface name.
pub fn state_dict(backbone: Backbone, vars: &[(String, Tensor)], steps: i64) -> Result<Vec<(String, Tensor)>, String> {
    if model_name(backbone).is_none() {
        return Err(format!(
            "arcface_torch has no {} backbone; insightface names exist for the IResNets and mbf (export it to ONNX instead)",
            backbone.name()
        ));
    }
    let mut out = Vec::new();
    for (name, t) in vars.iter().filter(|(n, _)| n.starts_with("backbone.")) {
        let theirs = renamed(backbone, name).ok_or_else(|| format!("no insightface name for {name}"))?;
        if let Some(module) = theirs.strip_suffix(".running_mean") {
            out.push((format!("{module}.num_batches_tracked"), Tensor::from(steps)));
        }
        out.push((theirs, t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbf_units_map_onto_arcface_torch_modules() {
        assert_eq!(mbf_module("stem.conv").as_deref(), Some("layers.0.layers.0"));
        assert_eq!(mbf_module("stem_dw.prelu").as_deref(), Some("layers.1.layers.2"));
        // Block 0 is the first strided DepthWise; blocks 1-4 the first Residual.
        assert_eq!(mbf_module("blocks.0.expand.conv").as_deref(), Some("layers.2.layers.0.layers.0"));
        assert_eq!(mbf_module("blocks.4.project.bn").as_deref(), Some("layers.3.layers.3.layers.2.layers.1"));
        assert_eq!(mbf_module("blocks.5.depthwise.conv").as_deref(), Some("layers.4.layers.1.layers.0"));
        assert_eq!(mbf_module("blocks.14.expand.prelu").as_deref(), Some("layers.7.layers.1.layers.0.layers.2"));
        assert_eq!(mbf_module("blocks.15.expand.conv"), None);
        assert_eq!(mbf_module("gdc.bn").as_deref(), Some("features.layers.0.layers.1"));
    }
}
