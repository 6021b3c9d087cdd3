//! Helpers shared by the integration tests, one copy each: a tiny experiment that trains in
//! seconds, results frames compared without their wall-clock columns, proof that a rerun resumed
//! from a checkpoint, loss configurations, unit features at given angles, relative tensor
//! differences, insightface `.bin` packs, `.npy` bytes (and, in `recordio`, RecordIO packs).
#![allow(dead_code)]

use p2sbench::loss::{self, LossConfig, ParamValue};
use p2sbench::spec;
use std::collections::BTreeMap;
use std::path::Path;

/// A small but real experiment: every loss of the spine, 2 epochs on 16×16 synthetic faces.
pub const TINY: &str = r#"name = "tiny"
[data]
identities = 12
heldout_identities = 8
images_per_identity = 8
image_size = 16
difficulty = 0.3
seed = 3
[model]
widths = [8, 16]
embedding = 16
[train]
epochs = 2
batch_size = 16
lr = 0.05
lr_milestones = [1]
seeds = [1]
device = "cpu"
threads = 1
log_every = 2
[[loss]]
name = "p2sgrad"
[[loss]]
name = "cosface"
s = 16.0
m = 0.2
[[loss]]
name = "arcface"
s = 16.0
m = 0.3
[[loss]]
name = "l2softmax"
alpha = 8.0
[[loss]]
name = "softmax"
[eval]
every_epochs = 1
[eval.lfw]
folds = 4
pairs_per_fold = 10
"#;

/// A parquet file without its wall-clock columns (steps.parquet's `step_seconds`,
/// trials.parquet's `seconds`): what two runs of one experiment must agree on.
pub fn untimed_frame(path: &Path) -> polars::prelude::DataFrame {
    let df = p2sbench::store::read_parquet(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let timed: Vec<&str> = [p2sbench::store::schema::WALL_CLOCK_COLUMN, "seconds"]
        .into_iter()
        .filter(|c| df.get_column_names().iter().any(|n| n.as_str() == *c))
        .collect();
    df.drop_many(timed)
}

/// Whether two parquet files hold the same frame, wall-clock columns aside (nulls equal).
pub fn frames_equal(a: &Path, b: &Path) -> bool {
    untimed_frame(a).equals_missing(&untimed_frame(b))
}

/// The files of one trial that hold its results.
pub const TRIAL_FRAMES: [&str; 3] = ["steps.parquet", "evals.parquet", "angles.parquet"];

/// Every parquet file of every trial of `exp` under `root`, wall-clock column aside: what two
/// runs of one experiment must agree on.
pub fn trial_frames(root: &p2sbench::store::ExperimentDir, exp: &spec::Experiment) -> Vec<polars::prelude::DataFrame> {
    let mut frames = Vec::new();
    for t in &exp.trials {
        for file in TRIAL_FRAMES {
            frames.push(untimed_frame(&root.trial(&t.id()).join(file)));
        }
    }
    frames
}

/// Telemetry rows with the wall-clock column zeroed.
pub fn untimed(rows: Vec<p2sbench::store::schema::StepRow>) -> Vec<p2sbench::store::schema::StepRow> {
    rows.into_iter().map(|r| p2sbench::store::schema::StepRow { step_seconds: 0.0, ..r }).collect()
}

/// The step of the checkpoint in `trial_dir` (`meta/step` of checkpoint/state.safetensors), if
/// there is one: where a rerun must resume.
pub fn checkpoint_step(trial_dir: &Path) -> Option<i64> {
    let path = trial_dir.join("checkpoint").join("state.safetensors");
    if !path.exists() {
        return None;
    }
    let tensors = p2sbench::model::weights::read(&path).unwrap();
    let step = tensors.iter().find(|(n, _)| n == "meta/step").expect("a checkpoint holds meta/step");
    Some(step.1.int64_value(&[0]))
}

/// Asserts that the trial in `trial_dir` was resumed from its checkpoint at `step` by the run that
/// printed `log`: status.json's `resumed_from`, the runner's "resumed from step" line for this
/// trial, and no checkpoint set aside as unreadable.
pub fn assert_resumed(trial_dir: &Path, step: i64, log: &str) {
    let id = trial_dir.file_name().unwrap().to_string_lossy();
    let status = p2sbench::store::TrialStatus::read(trial_dir).expect("the trial has a status");
    assert_eq!(status.resumed_from, Some(step), "{id}: status.json's resumed_from\n{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with(&format!("{id}: done in ")))
        .unwrap_or_else(|| panic!("{id} did not finish: {log}"));
    assert!(line.ends_with(&format!(", resumed from step {step}")), "{id}: {line}");
    assert!(!trial_dir.join("checkpoint.unreadable").exists(), "{id}: its checkpoint was set aside");
}

/// A loss configuration: `name`'s defaults with `params` set (each must be a parameter of it).
pub fn loss_config(name: &str, params: &[(&str, ParamValue)]) -> LossConfig {
    let entry = loss::find(name).unwrap_or_else(|| panic!("{name} is registered"));
    let mut map: BTreeMap<String, ParamValue> =
        entry.params.iter().map(|p| (p.name.to_string(), p.default.value())).collect();
    for (k, v) in params {
        assert!(map.contains_key(*k), "{name} has no parameter {k}");
        map.insert(k.to_string(), v.clone());
    }
    LossConfig { name: name.into(), params: map }
}

/// Unit 2-d features at the given angles (degrees), one row per angle.
pub fn at_angles(degrees: &[f64]) -> Vec<f32> {
    degrees.iter().flat_map(|d| [d.to_radians().cos() as f32, d.to_radians().sin() as f32]).collect()
}

/// ‖a − b‖ / ‖b‖ (‖b‖ at least 1e-30), in double precision.
pub fn relative(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    let (a, b) = (a.to_kind(tch::Kind::Double), b.to_kind(tch::Kind::Double));
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-30)
}

/// An insightface `.bin` pack: a pickle of (list of encoded images, list of same-person flags),
/// written as Python 3's `pickle.dump` writes it (protocol 4, one frame, memoised values;
/// SHORT_BINBYTES with a 1-byte length for an image under 256 bytes, BINBYTES with a 4-byte
/// length from 256 bytes on).
pub fn pickle_pack(images: &[Vec<u8>], flags: &[bool]) -> Vec<u8> {
    let mut body = vec![b']', 0x94, b'('];
    for img in images {
        match u8::try_from(img.len()) {
            Ok(len) => body.extend([b'C', len]),
            Err(_) => {
                body.push(b'B');
                body.extend((img.len() as u32).to_le_bytes());
            }
        }
        body.extend(img);
        body.push(0x94);
    }
    body.extend([b'e', b']', 0x94, b'(']);
    body.extend(flags.iter().map(|&f| if f { 0x88 } else { 0x89 }));
    body.extend([b'e', 0x86, 0x94, b'.']);
    let mut out = vec![0x80, 4, 0x95];
    out.extend((body.len() as u64).to_le_bytes());
    out.extend(body);
    out
}

/// The Python of the set-up's virtual environment (the one that holds the torch wheel libtorch
/// comes from): `P2SBENCH_PYTHON`, else found from `LIBTORCH` (…/venv/lib/pythonX/site-packages/torch).
pub fn reference_python() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("P2SBENCH_PYTHON") {
        return std::path::PathBuf::from(p);
    }
    let libtorch = std::env::var("LIBTORCH").expect("LIBTORCH is set (run the tests with `make test`)");
    let venv = Path::new(&libtorch).ancestors().nth(4).expect("LIBTORCH is <venv>/lib/pythonX/site-packages/torch");
    let python = venv.join("bin/python");
    assert!(python.exists(), "no Python at {} (LIBTORCH={libtorch}); run `make test`", python.display());
    python
}

pub fn experiment(text: &str) -> spec::Experiment {
    spec::parse(Path::new("tiny.toml"), text).expect("the test experiment is valid")
}

/// A string column as owned strings (nulls as "").
pub fn strings(df: &polars::prelude::DataFrame, name: &str) -> Vec<String> {
    let col = df.column(name).unwrap().str().unwrap();
    (0..col.len()).map(|i| col.get(i).unwrap_or("").to_string()).collect()
}

/// A .npy file with a hand-written header dict (`major`: the format version, 1, 2 or 3).
pub fn npy_bytes(major: u8, dict: &str, data: &[f32]) -> Vec<u8> {
    let header = format!("{dict}\n");
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([major, 0]);
    if major == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    out
}
/// An ONNX model (its bytes) of one `op` node from an input of `input` dims to an output declared
/// with `output` dims (`None`: no shape declared); a dim of −1 is the symbolic batch.
pub fn one_node_onnx(input: &[i64], output: Option<&[i64]>, op: &str) -> Vec<u8> {
    onnx_chain(input, output, &[("the_node", op, None)])
}

/// An ONNX model (its bytes) of a chain of nodes, each (name, operator, a scalar second input);
/// the first reads the input, the last writes the output.
pub fn onnx_chain(input: &[i64], output: Option<&[i64]>, nodes: &[(&str, &str, Option<f32>)]) -> Vec<u8> {
    use p2sbench::model::onnx::{INPUT, OUTPUT};
    use prost::Message;
    use tract_onnx::pb;
    let value = |name: &str, dims: Option<&[i64]>| {
        use pb::tensor_shape_proto::dimension::Value;
        let shape = dims.map(|dims| pb::TensorShapeProto {
            dim: dims
                .iter()
                .map(|&d| pb::tensor_shape_proto::Dimension {
                    value: Some(if d < 0 { Value::DimParam("N".into()) } else { Value::DimValue(d) }),
                    ..Default::default()
                })
                .collect(),
        });
        let tensor = pb::type_proto::Tensor { elem_type: pb::tensor_proto::DataType::Float as i32, shape };
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(tensor)),
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let (mut node, mut initializer, mut from) = (Vec::new(), Vec::new(), INPUT.to_string());
    for (i, &(name, op, constant)) in nodes.iter().enumerate() {
        let to = if i + 1 == nodes.len() { OUTPUT.to_string() } else { format!("v{i}") };
        let mut inputs = vec![from.clone()];
        if let Some(c) = constant {
            initializer.push(pb::TensorProto {
                data_type: pb::tensor_proto::DataType::Float as i32,
                name: format!("c{i}"),
                float_data: vec![c],
                ..Default::default()
            });
            inputs.push(format!("c{i}"));
        }
        node.push(pb::NodeProto {
            input: inputs,
            output: vec![to.clone()],
            name: name.into(),
            op_type: op.into(),
            ..Default::default()
        });
        from = to;
    }
    let graph = pb::GraphProto {
        node,
        initializer,
        input: vec![value(INPUT, Some(input))],
        output: vec![value(OUTPUT, output)],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

pub mod real_files;
pub mod recordio;
pub mod results_fixture;
