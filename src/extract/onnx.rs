//! An ONNX face model as a feature extractor (`p2sbench eval --onnx`), run by tract (pure Rust).
//! The file is checked before anything runs: one float input `N × C × H × W` with H = W, one
//! output that is 2-D, every operator one tract knows, and one batch of zeros through it; each
//! problem is an [`InputError`] naming the file and the input, output or node.
//!
//! Pixels reach the model as insightface's model-zoo loader (`ArcFaceONNX`) hands them: RGB,
//! (x − 127.5) / 127.5 — the map training here uses — unless the graph's first eight nodes are
//! named as subtracting (`Sub…`, `_minus…`) and scaling (`Mul…`, `_mul…`) the input itself (the
//! models converted from mxnet), which then get raw 0–255 pixels.

use super::features::Embedder;
use crate::error::InputError;
use prost::Message;
use rayon::prelude::*;
use std::path::Path;
use tch::{Kind, Tensor};
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// The largest image side accepted (a face crop is 112 or so; this keeps a bad file from
/// asking for a batch of zeros larger than memory).
const MAX_SIDE: i64 = 4096;

/// A checked, optimised ONNX model ready to embed images.
pub struct OnnxModel {
    plan: Arc<TypedRunnableModel>,
    pub channels: usize,
    pub size: usize,
    /// The batch size the graph fixes, if it fixes one (batches are then cut and padded to it).
    pub fixed_batch: Option<usize>,
    /// The graph normalises its input itself: it is given 0–255 pixels.
    pub raw_pixels: bool,
    /// The embedding's dimension.
    pub dim: usize,
}

fn dims_of(value: &pb::ValueInfoProto) -> Option<Vec<Option<i64>>> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) = value.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(Value::DimValue(v)) => Some(*v),
                _ => None,
            })
            .collect(),
    )
}

fn shape_text(dims: &[Option<i64>]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect();
    format!("[{}]", parts.join(", "))
}

/// insightface's test (`ArcFaceONNX.__init__`): the first eight nodes' names.
fn normalises_itself(graph: &pb::GraphProto) -> bool {
    let first = &graph.node[..graph.node.len().min(8)];
    let named = |prefixes: [&str; 2]| first.iter().any(|n| prefixes.iter().any(|p| n.name.starts_with(p)));
    named(["Sub", "_minus"]) && named(["Mul", "_mul"])
}

impl OnnxModel {
    /// Reads and checks `path`, and prepares it for batches of images.
    pub fn open(path: &Path) -> Result<OnnxModel, InputError> {
        let bytes =
            std::fs::read(path).map_err(|e| InputError::file(path, format!("cannot read the ONNX file: {e}")))?;
        OnnxModel::from_bytes(path, &bytes)
    }

    /// [`OnnxModel::open`] on the bytes of the file `path` (which errors name). A panic inside
    /// tract on a malformed graph is reported as an error about the file too.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<OnnxModel, InputError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| OnnxModel::checked(path, bytes))).unwrap_or_else(
            |panic| {
                let message = crate::error::panic_message(panic.as_ref()).unwrap_or("a panic").to_string();
                Err(InputError::file(path, format!("tract cannot read the graph: {message}")))
            },
        )
    }

    fn checked(path: &Path, bytes: &[u8]) -> Result<OnnxModel, InputError> {
        let at =
            |what: String, message: String| InputError { location: format!("{}: {what}", path.display()), message };
        let onnx = tract_onnx::onnx();
        let proto =
            pb::ModelProto::decode(bytes).map_err(|e| InputError::file(path, format!("not an ONNX model: {e}")))?;
        let graph = proto.graph.as_ref().ok_or_else(|| InputError::file(path, "an ONNX model without a graph"))?;
        for (i, node) in graph.node.iter().enumerate() {
            if !onnx.op_register.0.contains_key(&node.op_type) {
                let domain = if node.domain.is_empty() { String::new() } else { format!(" (domain {})", node.domain) };
                return Err(at(
                    format!("node {i} \"{}\"", node.name),
                    format!(
                        "unknown operator {}{domain}: tract, which runs eval --onnx, does not implement it",
                        node.op_type
                    ),
                ));
            }
        }
        let initialised: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        // Every value read must be defined: a graph input, an initialiser or a node's output.
        let defined: std::collections::HashSet<&str> = graph
            .input
            .iter()
            .map(|v| v.name.as_str())
            .chain(initialised.iter().copied())
            .chain(graph.node.iter().flat_map(|n| n.output.iter().map(String::as_str)))
            .collect();
        for (i, node) in graph.node.iter().enumerate() {
            if let Some(missing) = node.input.iter().find(|v| !v.is_empty() && !defined.contains(v.as_str())) {
                let message = format!("reads \"{missing}\", which no input, initialiser or node defines");
                return Err(at(format!("node {i} \"{}\"", node.name), message));
            }
        }
        if let Some(missing) = graph.output.iter().find(|v| !defined.contains(v.name.as_str())) {
            let message = "no input, initialiser or node defines it".to_string();
            return Err(at(format!("output \"{}\"", missing.name), message));
        }
        let inputs: Vec<&pb::ValueInfoProto> =
            graph.input.iter().filter(|v| !initialised.contains(v.name.as_str())).collect();
        let [input] = inputs[..] else {
            return Err(InputError::file(path, format!("{} inputs; a face model takes one image batch", inputs.len())));
        };
        let input_at = || format!("input \"{}\"", input.name);
        if let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
                let message = format!("element type {} (ONNX's code): expected float32 (1)", t.elem_type);
                return Err(at(input_at(), message));
            }
        }
        let dims = dims_of(input).ok_or_else(|| at(input_at(), "no tensor shape declared".into()))?;
        let expect = "expected N × C × H × W (C = 1 or 3, H = W fixed, at most 4096)";
        let [batch, Some(c), Some(h), Some(w)] = dims[..] else {
            return Err(at(input_at(), format!("shape {}: {expect}", shape_text(&dims))));
        };
        if !(c == 1 || c == 3) || h != w || !(1..=MAX_SIDE).contains(&h) {
            return Err(at(input_at(), format!("shape {}: {expect}", shape_text(&dims))));
        }
        let [output] = &graph.output[..] else {
            let n = graph.output.len();
            return Err(InputError::file(path, format!("{n} outputs; a face model has one, the embedding")));
        };
        let output_at = || format!("output \"{}\"", output.name);
        if let Some(out_dims) = dims_of(output) {
            if out_dims.len() != 2 {
                let shape = shape_text(&out_dims);
                return Err(at(output_at(), format!("shape {shape}: expected N × D (one embedding per image)")));
            }
        }
        let fixed_batch = batch.filter(|&b| b > 0).map(|b| b as usize);
        if fixed_batch.is_some_and(|b| b > 4096) {
            return Err(at(input_at(), format!("a fixed batch of {} images; at most 4096", fixed_batch.unwrap_or(0))));
        }
        let raw_pixels = normalises_itself(graph);
        let fail = |e: TractError| at("graph".into(), format!("tract cannot prepare it: {e:#}"));
        let mut model = onnx.model_for_proto_model(&proto).map_err(fail)?;
        let n: TDim = match fixed_batch {
            Some(b) => (b as i64).into(),
            None => model.symbols.sym("N").into(),
        };
        model = model.with_input_fact(0, f32::fact([n, c.into(), h.into(), w.into()]).into()).map_err(fail)?;
        let typed = model.into_optimized().map_err(fail)?;
        let out_fact = typed.output_fact(0).map_err(fail)?;
        if out_fact.rank() != 2 {
            return Err(at(output_at(), format!("rank {}: expected N × D (one embedding per image)", out_fact.rank())));
        }
        let plan = typed.into_runnable().map_err(fail)?;
        let mut onnx_model =
            OnnxModel { plan, channels: c as usize, size: h as usize, fixed_batch, raw_pixels, dim: 0 };
        let zeros = Tensor::zeros([fixed_batch.unwrap_or(2) as i64, c, h, h], (Kind::Float, tch::Device::Cpu));
        let probe =
            onnx_model.run(&zeros).map_err(|e| at("graph".into(), format!("fails on a batch of zeros: {e:#}")))?;
        onnx_model.dim = probe.size()[1] as usize;
        if onnx_model.dim == 0 {
            return Err(at(output_at(), "an embedding of 0 dimensions".into()));
        }
        Ok(onnx_model)
    }

    /// Runs one batch `[n, c, h, w]` (network input as training makes it) through the model.
    fn run(&self, images: &Tensor) -> TractResult<Tensor> {
        let images = images.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
        let images = if self.raw_pixels { (images + 1.0) * 127.5 } else { images };
        let n = images.size()[0] as usize;
        let per_image = self.channels * self.size * self.size;
        let values: Vec<f32> = Vec::try_from(images.flatten(0, -1)).expect("float images");
        // Batches of the fixed size (the last padded with zeros), or one part per thread.
        let part = self.fixed_batch.unwrap_or_else(|| n.div_ceil(rayon::current_num_threads()).max(1));
        let parts: Vec<TractResult<Vec<f32>>> = values
            .par_chunks(part * per_image)
            .map(|chunk| {
                let rows = chunk.len() / per_image;
                let batch = self.fixed_batch.unwrap_or(rows);
                let mut data = chunk.to_vec();
                data.resize(batch * per_image, 0.0);
                let shape = [batch, self.channels, self.size, self.size];
                let input = tract_ndarray::Array4::from_shape_vec(shape, data)?.into_tensor();
                let out = self.plan.run(tvec!(input.into_tvalue()))?;
                let view = out[0].to_plain_array_view::<f32>()?;
                if view.shape().len() != 2 || view.shape()[0] != batch {
                    anyhow::bail!("a batch of {batch} images gave an output of shape {:?}", view.shape());
                }
                let dim = view.shape()[1];
                Ok(view.iter().copied().take(rows * dim).collect())
            })
            .collect();
        let mut rows = Vec::with_capacity(n * self.dim.max(1));
        for p in parts {
            rows.extend(p?);
        }
        let dim = rows.len() / n.max(1);
        Ok(Tensor::from_slice(&rows).reshape([n as i64, dim as i64]))
    }
}

impl Embedder for OnnxModel {
    fn embed_batch(&self, images: &Tensor) -> Tensor {
        // The model ran on zeros when it was opened; what fails now is not the input's fault.
        self.run(images).unwrap_or_else(|e| panic!("the ONNX model failed on a batch: {e:#}"))
    }
}
