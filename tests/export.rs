//! `p2sbench export` and `eval --onnx`: quickstart trials (the quickstart experiment, cut to a few
//! images, one epoch, with its CNN and with the IResNet-18, MobileFaceNet and mbf backbones)
//! exported and opened by code this project did not write — onnxruntime, insightface's
//! model-zoo loader, arcface_torch's IResNet (reference/export_reference.py, in the set-up's
//! venv: scripts/setup-python-export.sh) — each giving p2sbench's own embeddings; tract (`eval
//! --onnx`) giving them too; and bad input located with exit code 2 and nothing written.

mod common;

use p2sbench::extract::features::Embedder;
use p2sbench::extract::onnx::OnnxModel;
use p2sbench::extract::trained::Extractor;
use p2sbench::metrics::{npy, Features};
use p2sbench::spec::DeviceChoice;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Kind, Tensor};

fn p2sbench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(args).output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// experiments/quickstart.toml cut down to 8 identities of 4 images, one epoch, P2SGrad, on the
/// CPU, with `model` lines added under [model] and the images `size` × `size` × `channels`.
fn quickstart(size: usize, channels: usize, model: &str) -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.toml")).unwrap();
    let mut text = text;
    for (from, to) in [
        ("identities = 100           # training", "identities = 8 # training"),
        ("heldout_identities = 100", "heldout_identities = 4"),
        ("images_per_identity = 30", "images_per_identity = 4"),
        ("image_size = 32", &format!("image_size = {size}")),
        ("channels = 1", &format!("channels = {channels}")),
        ("[model]\n", &format!("[model]\n{model}\n")),
        ("epochs = 30", "epochs = 1"),
        ("batch_size = 64", "batch_size = 16"),
        ("lr_milestones = [20, 26]", "lr_milestones = []"),
        ("device = \"auto\"", "device = \"cpu\""),
        ("protocols = [\"lfw\", \"megaface\", \"ijbc\"]", "protocols = [\"lfw\"]"),
    ] {
        assert!(text.contains(from), "quickstart.toml has no {from:?} any more");
        text = text.replacen(from, to, 1);
    }
    text + "\n[eval.lfw]\nfolds = 2\npairs_per_fold = 4\n"
}

/// Trains the P2SGrad trial of [`quickstart`] under `dir` and returns its directory.
fn train(dir: &Path, name: &str, size: usize, channels: usize, model: &str) -> PathBuf {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(
        &file,
        quickstart(size, channels, model).replace("name = \"quickstart\"", &format!("name = \"{name}\"")),
    )
    .unwrap();
    let out = dir.join("results");
    let (code, _, err) = p2sbench(&["run", s(&file), "--out", s(&out), "--only", "loss=p2sgrad"]);
    assert_eq!(code, 0, "{err}");
    let trials: Vec<PathBuf> =
        std::fs::read_dir(out.join(name).join("trials")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(trials.len(), 1);
    trials[0].clone()
}

fn export(trial: &Path, to: &str, out: &Path) {
    let (code, stdout, err) = p2sbench(&["export", s(trial), "--to", to, "--out", s(out)]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains(s(out)), "{stdout}");
}

/// Seeded network input: `n` images of `c` × `size`², values in [−1, 1].
fn input(n: usize, c: usize, size: usize, seed: u64) -> Tensor {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n * c * size * size).map(|_| r.gen_range(-1.0f32..1.0)).collect();
    Tensor::from_slice(&v).reshape([n as i64, c as i64, size as i64, size as i64])
}

fn rows(t: &Tensor) -> Features {
    let s = t.size();
    let flat = t.to_kind(Kind::Float).contiguous().flatten(0, -1);
    Features::new(s[0] as usize, (s[1..].iter().product::<i64>()) as usize, Vec::try_from(&flat).unwrap())
}

/// max |a − b| / max |b|.
fn relative(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) as f64;
    let scale = b.iter().map(|y| y.abs()).fold(0f32, f32::max) as f64;
    diff / scale
}

fn python(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/export_reference.py");
    let out = Command::new(common::reference_python()).arg(script).args(args).output().expect("python runs");
    assert!(out.status.success(), "export_reference.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into()
}

/// arcface_torch's IResNet file the set-up took from PyPI (scripts/setup-python-export.sh).
fn arcface_backbone() -> PathBuf {
    let venv = common::reference_python().ancestors().nth(2).unwrap().to_path_buf();
    let file = venv.parent().unwrap().join("reference/modelscope-1.40.2/arcface_backbone.py");
    assert!(file.is_file(), "no {} (run `make test`, which installs it)", file.display());
    file
}

/// p2sbench's embeddings of `x` by the trial's checkpoint.
fn own(trial: &Path, x: &Tensor) -> Tensor {
    let ex = Extractor::open(trial, DeviceChoice::Cpu).unwrap();
    tch::no_grad(|| ex.net.embed(x, false))
}

#[test]
fn exports_of_every_backbone_open_in_onnxruntime_tract_insightface_and_arcface_torch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("cnn", 32, 1, ""),
        ("iresnet", 112, 3, "backbone = \"iresnet18\""),
        ("mobilefacenet", 32, 3, "backbone = \"mobilefacenet\""),
        ("mbf", 112, 3, "backbone = \"mbf\""),
    ];
    for (i, (name, size, c, model)) in cases.into_iter().enumerate() {
        let trial = train(d, name, size, c, model);
        let onnx = d.join(format!("{name}.onnx"));
        export(&trial, "onnx", &onnx);
        let description: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(format!("{name}.onnx.json"))).unwrap()).unwrap();
        assert_eq!(description["loss"], "p2sgrad");
        assert_eq!(description["trial"], trial.file_name().unwrap().to_str().unwrap());
        assert_eq!(description["input"]["size"], size);
        assert_eq!(description["input"]["channels"], c);
        assert_eq!(description["normalisation"]["mean"], 127.5);
        assert_eq!(description["normalisation"]["std"], 127.5);
        assert_eq!(description["training_steps"], 2);

        let x = input(5, c, size, i as u64);
        let ours = rows(&own(&trial, &x));
        let x_path = d.join(format!("{name}-x.npy"));
        npy::write(&x_path, &rows(&x)).unwrap();
        let y_path = d.join(format!("{name}-y.npy"));
        python(&["onnxruntime", s(&onnx), s(&x_path), &c.to_string(), &size.to_string(), s(&y_path)]);
        let theirs = npy::read(&y_path).unwrap();
        assert_eq!((theirs.rows, theirs.dim), (5, 128), "{name}");
        let r = relative(&theirs.data, &ours.data);
        assert!(r < 1e-5, "{name}: onnxruntime against p2sbench, relative {r:e}");

        let tract = OnnxModel::open(&onnx).unwrap();
        assert_eq!((tract.channels, tract.size, tract.fixed_batch, tract.raw_pixels), (c, size, None, false));
        let r = relative(&rows(&tract.embed_batch(&x)).data, &ours.data);
        assert!(r < 1e-5, "{name}: tract against p2sbench, relative {r:e}");
        if name == "iresnet" {
            insightface_loads_the_iresnet_export_both_ways(d, &trial);
        }
    }
}

/// 112 × 112 RGB images of smooth random patterns (0..255 integers), channels last.
fn faces(n: usize) -> Vec<u8> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut px = Vec::with_capacity(n * 112 * 112 * 3);
    for _ in 0..n {
        let w: Vec<f32> = (0..9).map(|_| r.gen_range(0.02f32..0.3)).collect();
        for y in 0..112 {
            for x in 0..112 {
                for c in 0..3 {
                    let v = 128.0 + 100.0 * (w[c] * x as f32 + w[3 + c] * y as f32 + w[6 + c] * 10.0).sin();
                    px.push(v.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    px
}

/// insightface's loader on the ONNX export and arcface_torch's IResNet on the insightface-named
/// export of an IResNet-18 trial at 3 × 112 × 112.
fn insightface_loads_the_iresnet_export_both_ways(d: &Path, trial: &Path) {
    // The ONNX model through insightface's model zoo: recognised as a recognition model, fed
    // aligned 112 × 112 images its own way (BGR in, swapped, (x − 127.5) / 127.5).
    let onnx = d.join("r18.onnx");
    export(trial, "onnx", &onnx);
    let n = 6;
    let hwc = faces(n);
    let images = d.join("faces.npy");
    npy::write(&images, &Features::new(n, 112 * 112 * 3, hwc.iter().map(|&v| v as f32).collect())).unwrap();
    let feats = d.join("insightface.npy");
    let info: serde_json::Value =
        serde_json::from_str(python(&["insightface", s(&onnx), s(&images), "112", s(&feats)]).trim()).unwrap();
    assert_eq!(info["class"], "ArcFaceONNX", "{info}");
    assert_eq!(info["taskname"], "recognition", "{info}");
    assert_eq!((info["input_mean"].as_f64(), info["input_std"].as_f64()), (Some(127.5), Some(127.5)), "{info}");
    // p2sbench's embeddings of the same pixels (CHW, its own normalisation).
    let chw = Tensor::from_slice(&hwc).reshape([n as i64, 112, 112, 3]).permute([0, 3, 1, 2]).contiguous();
    let chw: Vec<u8> = Vec::try_from(chw.flatten(0, -1)).unwrap();
    let x = p2sbench::data::input_tensor(&chw, n, 3, 112, tch::Device::Cpu);
    let ours = rows(&own(trial, &x));
    let theirs = npy::read(&feats).unwrap();
    assert_eq!((theirs.rows, theirs.dim), (n, 128));
    let r = relative(&theirs.data, &ours.data);
    assert!(r < 1e-4, "insightface's features against p2sbench's: relative {r:e}");

    // The safetensors file through arcface_torch's IResNet, strict=True.
    let weights = d.join("r18.safetensors");
    export(trial, "insightface", &weights);
    let description: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r18.safetensors.json")).unwrap()).unwrap();
    assert_eq!(description["arcface_torch"]["get_model"], "r18");
    assert_eq!(description["arcface_torch"]["num_features"], 128);
    let x = input(4, 3, 112, 5);
    let x_path = d.join("x.npy");
    npy::write(&x_path, &rows(&x)).unwrap();
    let out = d.join("arcface_torch.npy");
    python(&["arcface_torch", s(&arcface_backbone()), s(&weights), "2,2,2,2", "128", s(&x_path), s(&out)]);
    let r = relative(&npy::read(&out).unwrap().data, &rows(&own(trial, &x)).data);
    assert!(r < 1e-5, "arcface_torch's IResNet-18 against p2sbench: relative {r:e}");
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = p2sbench(args);
    assert_eq!(code, 0, "p2sbench {args:?}: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {out}"))
}

#[test]
fn eval_scores_the_trial_and_its_onnx_export_identically_on_every_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = common::real_files::write(&d.join("real"));
    let trial = train(d, "cnn", 32, 1, "");
    let onnx = d.join("cnn.onnx");
    export(&trial, "onnx", &onnx);
    let f = |rel: &str| files.path(rel).display().to_string();
    let protocols: [Vec<String>; 3] = [
        ["lfw", "--bin", &f("lfw.bin")].map(String::from).to_vec(),
        ["megaface", "--probes", &f("fs.json"), "--distractors", &f("mf_6.json"), "--distractors", &f("mf_2.json")]
            .into_iter()
            .chain(["--probe-images", &f("fs"), "--distractor-images", &f("mf"), "--far", "1e-2"])
            .map(String::from)
            .collect(),
        ["ijbc", "--meta", &f("meta"), "--images", &f("crops"), "--scores"].map(String::from).to_vec(),
    ];
    for args in &protocols {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let by = |flag: &str, model: &Path| {
            eval_json(&[&["eval"], &args[..], &[flag, s(model), "--device", "cpu", "--json"]].concat())
        };
        let trained = by("--model", &trial);
        let exported = by("--onnx", &onnx);
        assert_eq!(exported["metrics"], trained["metrics"], "{}", args[0]);
        assert!(!trained["metrics"].as_object().unwrap().is_empty(), "{trained}");
        assert_eq!(exported["variant"]["flip"], "sum");
        let via = exported["variant"]["onnx"].as_str().unwrap();
        assert!(via.contains("cnn.onnx") && via.contains("127.5"), "{via}");
        assert!(trained["variant"]["model"].as_str().unwrap().contains("trial"), "{trained}");
    }
}

/// Writes [`common::one_node_onnx`]'s model to `path`.
fn onnx_file(path: &Path, input: &[i64], output: Option<&[i64]>, op: &str) {
    std::fs::write(path, common::one_node_onnx(input, output, op)).unwrap();
}

#[test]
fn bad_models_and_trials_are_located_errors_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = common::real_files::write(&d.join("real"));
    let bin = files.path("lfw.bin");
    let features = d.join("features.npy");
    let eval_onnx = |model: &Path| {
        let args = ["eval", "lfw", "--bin", s(&bin), "--onnx", s(model), "--export-features", s(&features)];
        let (code, _, err) = p2sbench(&args);
        assert_eq!(code, 2, "{err}");
        assert!(!features.exists(), "nothing is written");
        err
    };
    // The control: a well-formed one-node model scores (its embedding is the flattened image).
    let good = d.join("good.onnx");
    onnx_file(&good, &[-1, 3, 4, 4], Some(&[-1, 48]), "Flatten");
    let v = eval_json(&["eval", "lfw", "--bin", s(&bin), "--onnx", s(&good), "--json"]);
    assert!(v["metrics"]["accuracy_mean"].as_f64().unwrap() > 0.5, "{v}");

    // The same model with its batch fixed (at 1, and at 3: the last batch padded), and as the
    // mxnet conversions are, normalising its input itself (nodes named Sub… and Mul…, which
    // insightface's loader, and eval --onnx, then give raw 0..255 pixels): the same metrics.
    let metrics = |model: &Path| eval_json(&["eval", "lfw", "--bin", s(&bin), "--onnx", s(model), "--json"]);
    for batch in [1, 3] {
        let fixed = d.join(format!("fixed{batch}.onnx"));
        onnx_file(&fixed, &[batch, 3, 4, 4], Some(&[batch, 48]), "Flatten");
        assert_eq!(OnnxModel::open(&fixed).unwrap().fixed_batch, Some(batch as usize));
        assert_eq!(metrics(&fixed)["metrics"], v["metrics"], "batch {batch}");
    }
    // Named otherwise, the same arithmetic is not taken for normalisation: the input is mapped
    // and then shifted again, which changes the features.
    for (file, (sub, mul), input, same) in
        [("raw.onnx", ("Sub_0", "Mul_1"), "input 0..255", true), ("shifted.onnx", ("centre", "scale"), "127.5", false)]
    {
        let model = d.join(file);
        let chain = [(sub, "Sub", Some(127.5)), (mul, "Mul", Some(1.0 / 127.5)), ("flatten", "Flatten", None)];
        std::fs::write(&model, common::onnx_chain(&[-1, 3, 4, 4], Some(&[-1, 48]), &chain)).unwrap();
        let r = metrics(&model);
        assert!(r["variant"]["onnx"].as_str().unwrap().contains(input), "{r}");
        assert_eq!(r["metrics"] == v["metrics"], same, "{file}: {r}");
    }

    let not_images = d.join("vectors.onnx");
    onnx_file(&not_images, &[-1, 48], Some(&[-1, 48]), "Identity");
    let err = eval_onnx(&not_images);
    assert!(err.contains("vectors.onnx: input \"input\"") && err.contains("N × C × H × W"), "{err}");

    let maps = d.join("maps.onnx");
    onnx_file(&maps, &[-1, 3, 4, 4], Some(&[-1, 3, 4, 4]), "Identity");
    let err = eval_onnx(&maps);
    assert!(err.contains("maps.onnx: output \"embedding\"") && err.contains("N × D"), "{err}");
    // Undeclared, the output's rank is what tract infers.
    let undeclared = d.join("undeclared.onnx");
    onnx_file(&undeclared, &[-1, 3, 4, 4], None, "Identity");
    let err = eval_onnx(&undeclared);
    assert!(err.contains("undeclared.onnx: output \"embedding\"") && err.contains("rank 4"), "{err}");

    // An output whose first dimension is not the batch (a transpose, then flatten).
    let transposed = d.join("transposed.onnx");
    let chain = [("t", "Transpose", None), ("f", "Flatten", None)];
    std::fs::write(&transposed, common::onnx_chain(&[-1, 3, 4, 4], None, &chain)).unwrap();
    let err = eval_onnx(&transposed);
    assert!(err.contains("transposed.onnx: graph") && err.contains("images gave an output of shape [4, "), "{err}");
    // An input of bytes, not floats.
    let bytes_in = d.join("bytes.onnx");
    {
        use prost::Message;
        let mut model =
            tract_onnx::pb::ModelProto::decode(&common::one_node_onnx(&[-1, 3, 4, 4], Some(&[-1, 48]), "Flatten")[..])
                .unwrap();
        let input = &mut model.graph.as_mut().unwrap().input[0];
        if let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) = input.r#type.as_mut().unwrap().value.as_mut() {
            t.elem_type = tract_onnx::pb::tensor_proto::DataType::Uint8 as i32;
        }
        std::fs::write(&bytes_in, model.encode_to_vec()).unwrap();
    }
    let err = eval_onnx(&bytes_in);
    assert!(err.contains("bytes.onnx: input \"input\": element type 2"), "{err}");

    let unknown = d.join("unknown.onnx");
    onnx_file(&unknown, &[-1, 3, 4, 4], Some(&[-1, 48]), "FaceMagic");
    let err = eval_onnx(&unknown);
    assert!(err.contains("unknown.onnx: node 0 \"the_node\"") && err.contains("unknown operator FaceMagic"), "{err}");

    let truncated = d.join("truncated.onnx");
    std::fs::write(&truncated, &std::fs::read(&good).unwrap()[..20]).unwrap();
    let err = eval_onnx(&truncated);
    assert!(err.contains("truncated.onnx") && err.contains("not an ONNX model"), "{err}");

    // A trial without a checkpoint; a CNN trial asked for insightface's names.
    let trial = train(d, "cnn", 32, 1, "");
    let out = d.join("out.onnx");
    let no_checkpoint = d.join("no-checkpoint");
    std::fs::create_dir(&no_checkpoint).unwrap();
    std::fs::copy(trial.join("config.toml"), no_checkpoint.join("config.toml")).unwrap();
    let small_mbf = train(d, "mbf32", 32, 3, "backbone = \"mbf\"");
    for (dir, to, message) in [
        (&no_checkpoint, "onnx", "no model checkpoint"),
        (&trial, "insightface", "arcface_torch has no cnn backbone"),
        (&small_mbf, "insightface", "arcface_torch's mbf takes 3 × 112 × 112 images; this trial's are 3 × 32 × 32"),
    ] {
        let (code, _, err) = p2sbench(&["export", s(dir), "--to", to, "--out", s(&out)]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(s(dir)) && err.contains(message), "{err}");
        assert!(!out.exists() && !d.join("out.onnx.json").exists(), "nothing is written");
    }
    let (code, _, err) = p2sbench(&["export", s(&d.join("results/cnn")), "--trial", "nope", "--out", s(&out)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no trial with an id starting with \"nope\""), "{err}");
    // By results directory and id prefix, the same file as by trial directory.
    let id = trial.file_name().unwrap().to_str().unwrap();
    let (code, _, err) = p2sbench(&["export", s(&d.join("results/cnn")), "--trial", &id[..8], "--out", s(&out)]);
    assert_eq!(code, 0, "{err}");
    let direct = d.join("direct.onnx");
    export(&trial, "onnx", &direct);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&direct).unwrap());
}
