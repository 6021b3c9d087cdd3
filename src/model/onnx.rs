//! The network in inference mode as an ONNX graph (`p2sbench export`): a small builder of ONNX
//! nodes and initialisers (the protobuf types are tract-onnx's), and [`ToOnnx`], which every
//! backbone part implements beside its `forward_t`, so a backbone's structure is written in one
//! file. Batch norm is exported as `BatchNormalization` with the running statistics (what
//! `forward_t(x, false)` computes), dropout not at all (rate 0, see [`super::iresnet`]).
//!
//! Conventions (insightface's model zoo, arcface_torch's `torch2onnx.py`): one float input
//! `N × C × H × W` with a symbolic batch size, already normalised ((x − 127.5) / 127.5, RGB), one
//! output `N × D` (the embedding, not normalised); opset 13. No node's name starts with `Sub` or
//! `Mul`: insightface's loader reads such names among the first nodes as normalisation inside the
//! model and would then feed raw pixels.

use super::layers::{Conv, Prelu};
use tch::nn;
use tch::{Kind, Tensor};
use tract_onnx::pb;

/// The opset the exported graphs are written for.
pub const OPSET: i64 = 13;
/// The graph's input and output names.
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "embedding";

/// A network part written as ONNX nodes: reads the value named `x`, returns its output's name.
pub trait ToOnnx {
    fn to_onnx(&self, g: &mut Graph, x: &str) -> String;
}

/// Nodes and initialisers being written, in order.
#[derive(Default)]
pub struct Graph {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

fn float_value(name: &str, dims: &[pb::tensor_shape_proto::dimension::Value]) -> pb::ValueInfoProto {
    let dim = dims.iter().map(|v| pb::tensor_shape_proto::Dimension { value: Some(v.clone()), ..Default::default() });
    let tensor = pb::type_proto::Tensor {
        elem_type: pb::tensor_proto::DataType::Float as i32,
        shape: Some(pb::TensorShapeProto { dim: dim.collect() }),
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(tensor)), ..Default::default() }),
        ..Default::default()
    }
}

impl Graph {
    /// A float initialiser holding `t`'s values (as float32, little-endian), named `name`.
    fn constant(&mut self, name: String, t: &Tensor) -> String {
        let values: Vec<f32> = Vec::try_from(t.to_device(tch::Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
            .expect("network variables are float tensors");
        self.initializers.push(pb::TensorProto {
            dims: t.size(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Appends a node of `op` reading `inputs`; its one output is named after the node.
    fn node(&mut self, op: &str, inputs: Vec<String>, attribute: Vec<pb::AttributeProto>) -> String {
        let name = self.next(op);
        self.nodes.push(pb::NodeProto {
            input: inputs,
            output: vec![name.clone()],
            name: name.clone(),
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
        name
    }

    /// The name the next node, of `op`, will get (its initialisers are named after it).
    fn next(&self, op: &str) -> String {
        format!("{}_{}", op.to_lowercase(), self.nodes.len())
    }

    pub fn conv(&mut self, x: &str, conv: &Conv) -> String {
        let at = self.next("Conv");
        let mut inputs = vec![x.to_string(), self.constant(format!("{at}.weight"), &conv.conv.ws)];
        if let Some(b) = &conv.conv.bs {
            inputs.push(self.constant(format!("{at}.bias"), b));
        }
        let size = conv.conv.ws.size();
        let (s, p) = (conv.stride, conv.padding);
        let attrs = vec![
            attr_ints("kernel_shape", &size[2..]),
            attr_ints("strides", &[s, s]),
            attr_ints("pads", &[p, p, p, p]),
            attr_int("group", conv.groups),
        ];
        self.node("Conv", inputs, attrs)
    }

    /// Batch norm with the running statistics, over axis 1 (of `N × C × …` or `N × C`).
    pub fn batch_norm(&mut self, x: &str, bn: &nn::BatchNorm) -> String {
        let at = self.next("BatchNormalization");
        let channels = bn.running_mean.size()[0];
        let ones = Tensor::ones([channels], (Kind::Float, tch::Device::Cpu));
        let zeros = Tensor::zeros([channels], (Kind::Float, tch::Device::Cpu));
        let inputs = vec![
            x.to_string(),
            self.constant(format!("{at}.weight"), bn.ws.as_ref().unwrap_or(&ones)),
            self.constant(format!("{at}.bias"), bn.bs.as_ref().unwrap_or(&zeros)),
            self.constant(format!("{at}.running_mean"), &bn.running_mean),
            self.constant(format!("{at}.running_var"), &bn.running_var),
        ];
        self.node("BatchNormalization", inputs, vec![attr_float("epsilon", super::BN_EPS as f32)])
    }

    /// PReLU with one slope per channel of an `N × C × H × W` value.
    pub fn prelu(&mut self, x: &str, p: &Prelu) -> String {
        let at = self.next("PRelu");
        let slope = self.constant(format!("{at}.slope"), &p.weight().reshape([-1, 1, 1]));
        self.node("PRelu", vec![x.to_string(), slope], vec![])
    }

    /// `x Wᵀ + b` of an `N × in` value.
    pub fn linear(&mut self, x: &str, linear: &nn::Linear) -> String {
        let at = self.next("Gemm");
        let mut inputs = vec![x.to_string(), self.constant(format!("{at}.weight"), &linear.ws)];
        if let Some(b) = &linear.bs {
            inputs.push(self.constant(format!("{at}.bias"), b));
        }
        self.node("Gemm", inputs, vec![attr_int("transB", 1)])
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", vec![x.to_string()], vec![])
    }

    /// 2×2 max-pooling at stride 2 (`max_pool2d(2)`: no padding, the remainder dropped).
    pub fn max_pool_2x2(&mut self, x: &str) -> String {
        let attrs = vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])];
        self.node("MaxPool", vec![x.to_string()], attrs)
    }

    /// `N × …` to `N × (product of the rest)`.
    pub fn flatten(&mut self, x: &str) -> String {
        self.node("Flatten", vec![x.to_string()], vec![attr_int("axis", 1)])
    }

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", vec![a.to_string(), b.to_string()], vec![])
    }

    /// The whole model: `body` written from the input, its result renamed to the output.
    pub fn model(channels: i64, size: i64, embedding: i64, body: &dyn ToOnnx, doc: &str) -> pb::ModelProto {
        use pb::tensor_shape_proto::dimension::Value;
        let mut g = Graph::default();
        let out = body.to_onnx(&mut g, INPUT);
        g.node("Identity", vec![out], vec![]);
        g.nodes.last_mut().expect("the node just added").output = vec![OUTPUT.to_string()];
        let batch = Value::DimParam("N".into());
        let graph = pb::GraphProto {
            node: g.nodes,
            name: "p2sbench".into(),
            initializer: g.initializers,
            input: vec![float_value(
                INPUT,
                &[batch.clone(), Value::DimValue(channels), Value::DimValue(size), Value::DimValue(size)],
            )],
            output: vec![float_value(OUTPUT, &[batch, Value::DimValue(embedding)])],
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
            producer_name: "p2sbench".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(graph),
            ..Default::default()
        }
    }
}
