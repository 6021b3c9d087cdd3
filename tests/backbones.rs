//! The paper backbones: parameter counts and multiply-adds against the published figures, and the
//! same outputs and gradients as the same networks written in PyTorch (reference/torchref.py,
//! after insightface's `iresnet.py` and Table 1 of the MobileFaceNet paper) from the same values.

mod common;

use common::relative;
use p2sbench::model::{weights, Network};
use p2sbench::spec::shard::multiply_adds;
use p2sbench::spec::{Backbone, ModelSpec};
use std::path::Path;
use std::process::Command;
use tch::{Device, Kind, Tensor};

fn spec(backbone: Backbone, embedding: usize) -> ModelSpec {
    ModelSpec { backbone, embedding, ..ModelSpec::default() }
}

/// Parameters as PyTorch counts them (`sum(p.numel() for p in net.parameters())`), and as a
/// deployed network counts them, with each batch norm folded into the layer before it (one
/// bias per channel, no separate γ and β; a Linear layer's bias merges into its batch norm).
fn parameter_counts(net: &Network) -> (i64, i64) {
    let vars = net.vs.variables();
    let backbone =
        |k: &String| k.starts_with("backbone.") && !k.ends_with("running_mean") && !k.ends_with("running_var");
    let torch: i64 = vars.iter().filter(|(k, _)| backbone(k)).map(|(_, v)| v.numel() as i64).sum();
    let bn = |k: &str| vars.contains_key(&format!("{}.running_mean", k.rsplit_once('.').unwrap().0));
    let folded: i64 = vars
        .iter()
        .filter(|(k, _)| backbone(k))
        .map(|(k, v)| match k.rsplit_once('.').unwrap().1 {
            "weight" if bn(k) => 0,
            "bias" if bn(k) => v.numel() as i64,
            "bias" => 0,
            _ => v.numel() as i64,
        })
        .sum();
    (torch, folded)
}

#[test]
fn parameter_counts_and_multiply_adds_are_the_published_ones() {
    let build = |b, e| Network::new(&spec(b, e), 3, 112, 10, false, 1, Device::Cpu);
    // PyTorch's count of reference/torchref.py's networks (exactly insightface's iresnet.py
    // layer for layer), at 3 × 112 × 112 and 512-d.
    let mut counts = Vec::new();
    for (backbone, params) in [
        (Backbone::Iresnet18, 24_025_600),
        (Backbone::Iresnet34, 34_139_328),
        (Backbone::Iresnet50, 43_590_848),
        (Backbone::Iresnet100, 65_156_160),
    ] {
        let count = parameter_counts(&build(backbone, 512)).0;
        assert_eq!(count, params, "{backbone:?}");
        counts.push(count);
    }
    // IResNet-100: 65.1320 M parameters, the OpenVINO model card of insightface's
    // LResNet100E-IR ("face-recognition-resnet100-arcface-onnx", MXNet source): within 0.05 %.
    assert!((counts[3] as f64 / 65.1320e6 - 1.0).abs() < 5e-4, "IResNet-100: {}", counts[3]);
    // FLOPs (multiply-adds) of insightface's recognition/arcface_torch/README.md model table:
    // r18 2.6 G, r50 6.3 G, r100 12.1 G; the counts here are torch.utils.flop_counter's on the
    // PyTorch networks (2,609,954,816, 6,309,330,944 and 12,089,606,144).
    for (backbone, published, exact) in [
        (Backbone::Iresnet18, 2.6e9, 2_609_954_816.0),
        (Backbone::Iresnet50, 6.3e9, 6_309_330_944.0),
        (Backbone::Iresnet100, 12.1e9, 12_089_606_144.0),
    ] {
        let macs = multiply_adds(&spec(backbone, 512), 3, 112);
        assert_eq!(macs, exact, "{backbone:?}");
        assert!((macs - published).abs() < 0.05e9, "{backbone:?}: {macs} against the published {published}");
    }
    // MobileFaceNet, 128-d: "0.99M" parameters and "221M" MAdds (Chen et al. 2018, Table 3; the
    // 4.0 MB model of the abstract). The paper's parameter figure is the deployed network's
    // (batch norms folded): 993,344; PyTorch counts γ and β apart, 1,003,264.
    let (torch, folded) = parameter_counts(&build(Backbone::Mobilefacenet, 128));
    assert_eq!((torch, folded), (1_003_264, 993_344));
    assert_eq!(format!("{:.2}", folded as f64 / 1e6), "0.99");
    let macs = multiply_adds(&spec(Backbone::Mobilefacenet, 128), 3, 112);
    assert_eq!(macs, 220_965_376.0, "torch.utils.flop_counter on the PyTorch network");
    assert_eq!((macs / 1e6).round(), 221.0);
    // insightface's `mbf`: the numbers its own code gives. arcface_torch's
    // backbones/mobilefacenet.py (deepinsight/insightface at 7fadd420), run with this set-up's
    // torch: get_mbf(False, 512) has 2,059,520 parameters (get_mbf(False, 128): 1,862,144), and
    // torch.utils.flop_counter counts 437,520,896 multiply-adds on a 3×112×112 image.
    assert_eq!(parameter_counts(&build(Backbone::Mbf, 512)).0, 2_059_520);
    assert_eq!(parameter_counts(&build(Backbone::Mbf, 128)).0, 1_862_144);
    assert_eq!(multiply_adds(&spec(Backbone::Mbf, 512), 3, 112), 437_520_896.0);
}

#[test]
fn every_backbone_computes_what_the_same_pytorch_network_computes() {
    let dir = tempfile::tempdir().unwrap();
    let python = common::reference_python();
    let (channels, size, embedding, batch) = (3, 32, 64, 3);
    for backbone in [
        Backbone::Iresnet18,
        Backbone::Iresnet34,
        Backbone::Iresnet50,
        Backbone::Iresnet100,
        Backbone::Mobilefacenet,
        Backbone::Mbf,
    ] {
        let name = backbone.name();
        let net = Network::new(&spec(backbone, embedding), channels, size, 10, false, 7, Device::Cpu);
        // insightface's N(0, 0.1²) convolutions grow activations ~7× per convolution until batch
        // norm has statistics; scaled down, eval mode stays finite through IResNet-100's 98.
        tch::no_grad(|| {
            for (_, mut v) in net.vs.variables().into_iter().filter(|(_, v)| v.dim() == 4) {
                let _ = v.g_mul_scalar_(0.05);
            }
        });
        tch::manual_seed(11);
        let input = Tensor::randn([batch, channels as i64, size as i64, size as i64], (Kind::Float, Device::Cpu));
        let probe = Tensor::randn([batch, embedding as i64], (Kind::Float, Device::Cpu));
        let mut tensors: Vec<(String, Tensor)> = weights::named_variables(&net.vs)
            .into_iter()
            .filter_map(|(k, t)| k.strip_prefix("var/backbone.").map(|k| (k.to_string(), t)))
            .collect();
        tensors.push(("input".into(), input.shallow_clone()));
        tensors.push(("probe".into(), probe.shallow_clone()));
        let (inputs, outputs, config) =
            (dir.path().join("in.safetensors"), dir.path().join("out.safetensors"), dir.path().join("config.json"));
        Tensor::write_safetensors(&tensors, &inputs).unwrap();
        let cfg = serde_json::json!({"backbone": name, "channels": channels, "size": size, "embedding": embedding, "threads": 2});
        std::fs::write(&config, cfg.to_string()).unwrap();

        let evaluated = tch::no_grad(|| net.embed(&input, false));
        let trained = net.embed(&input, true);
        (&trained * &probe).sum(Kind::Float).backward();

        let run = Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/backbone_parity.py"))
            .args([&inputs, &config, &outputs])
            .output()
            .unwrap();
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        let reference: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(&outputs).unwrap().into_iter().collect();
        assert!(evaluated.isfinite().all().int64_value(&[]) == 1, "{name}: eval-mode output not finite");
        assert!(relative(&evaluated, &reference["eval"]) < 1e-5, "{name}: eval-mode outputs differ");
        assert!(relative(&trained, &reference["train"]) < 1e-5, "{name}: train-mode outputs differ");
        let vars = net.vs.variables();
        let mut compared = 0;
        for (key, grad) in reference.iter().filter_map(|(k, g)| k.strip_prefix("grad/").map(|k| (k, g))) {
            let mine = vars[&format!("backbone.{key}")].grad();
            assert!(relative(&mine, grad) < 1e-4, "{name}: the gradient of {key} differs");
            compared += 1;
        }
        let trainable = vars.iter().filter(|(k, v)| k.starts_with("backbone.") && v.requires_grad()).count();
        assert_eq!(compared, trainable, "{name}: every trained parameter's gradient is compared");
    }
}

/// `common::TINY` with `backbone`, one epoch, the p2sgrad trial only, and `extra` in `[train]`.
fn tiny_with(backbone: &str, extra: &str) -> p2sbench::spec::Experiment {
    let text = common::TINY
        .replace("widths = [8, 16]", &format!("backbone = \"{backbone}\""))
        .replace("epochs = 2", &format!("epochs = 1\n{extra}"))
        .replace("lr_milestones = [1]\n", "");
    let exp = common::experiment(&text);
    p2sbench::spec::Experiment { trials: vec![exp.trials[0].clone()], ..exp }
}

#[test]
fn every_backbone_trains_in_the_runner_and_mixed_precision_is_deterministic() {
    use p2sbench::runner::{self, RunOptions};
    let dir = tempfile::tempdir().unwrap();
    let frames = |exp: &p2sbench::spec::Experiment, out: &Path| {
        runner::run_experiment(exp, &RunOptions::new(out)).unwrap();
        common::trial_frames(&p2sbench::store::ExperimentDir::new(out, &exp.name), exp)
    };
    // mbf starts from insightface's larger kaiming (fan-out) weights, and falls a little slower.
    for (backbone, fall) in [("iresnet18", 0.8), ("mobilefacenet", 0.8), ("mbf", 0.85)] {
        let mut exp = tiny_with(backbone, "");
        (exp.trials[0].train.log_every, exp.trials[0].train.epochs) = (1, 2);
        let out = dir.path().join(backbone);
        let summary = &runner::run_experiment(&exp, &RunOptions::new(&out)).unwrap()[0];
        assert_eq!(summary.state, p2sbench::store::State::Done, "{backbone}");
        assert!(summary.lfw_accuracy.is_some(), "{backbone}");
        // It learns: over the same 96 images, the second epoch's mean loss is well below the first's.
        let steps = p2sbench::store::ExperimentDir::new(&out, &exp.name).trial(&summary.id).join("steps.parquet");
        let steps = p2sbench::store::read_parquet(&steps).unwrap();
        let loss: Vec<f64> = steps.column("loss").unwrap().f64().unwrap().into_no_null_iter().collect();
        assert_eq!(loss.len(), 12, "{backbone}: a row for each of the 2 × 6 steps");
        let (first, second) = (loss[..6].iter().sum::<f64>(), loss[6..].iter().sum::<f64>());
        assert!(second < fall * first, "{backbone}: the loss did not fall: {loss:?}");
    }
    let fp32 = frames(&tiny_with("mobilefacenet", ""), &dir.path().join("fp32"));
    let amp = tiny_with("mobilefacenet", "precision = \"amp\"");
    let first = frames(&amp, &dir.path().join("amp1"));
    assert_eq!(first, frames(&amp, &dir.path().join("amp2")), "mixed precision on the CPU is deterministic");
    assert_ne!(first[0], fp32[0], "autocast changed the computation");
}

#[test]
fn autocast_runs_convolutions_in_bfloat16_on_the_cpu_and_the_embedding_in_float32() {
    use p2sbench::model::amp;
    use p2sbench::model::layers::EmbeddingHead;
    use tch::nn::ModuleT;
    let net = Network::new(&spec(Backbone::Mobilefacenet, 64), 3, 32, 10, false, 3, Device::Cpu);
    tch::manual_seed(5);
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    let full = tch::no_grad(|| net.embed(&x, true));
    let w = Tensor::randn([8, 3, 3, 3], (Kind::Float, Device::Cpu));
    let (conv, mixed) = amp::autocast(Device::Cpu, || {
        assert!(amp::is_enabled(Device::Cpu));
        let conv = x.conv2d(&w, None::<Tensor>, [1], [1], [1], 1);
        (conv.kind(), tch::no_grad(|| net.embed(&x, true)))
    });
    assert!(!amp::is_enabled(Device::Cpu), "the region restores the state");
    assert_eq!(conv, Kind::BFloat16);
    assert_eq!(mixed.kind(), Kind::Float, "the embedding comes out in float32");
    assert!(relative(&mixed, &full) > 1e-6, "autocast changed the trunk's computation");

    // The embedding head (Linear → BatchNorm1d) computes in float32 under autocast: on the
    // bfloat16 activations the trunk hands it, it gives what the same head gives outside autocast.
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let head = EmbeddingHead::new(&vs.root(), 512, 64);
    let trunk = Tensor::randn([8, 512, 1, 1], (Kind::Float, Device::Cpu)).to_kind(Kind::BFloat16);
    for train in [true, false] {
        let inside = tch::no_grad(|| amp::autocast(Device::Cpu, || head.forward_t(&trunk, train)));
        let outside = tch::no_grad(|| head.forward_t(&trunk, train));
        assert_eq!((inside.kind(), outside.kind()), (Kind::Float, Kind::Float));
        let difference = relative(&inside, &outside);
        assert!(difference < 1e-6, "train = {train}: the head under autocast differs by {difference:.2e}");
    }
}
